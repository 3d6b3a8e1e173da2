/**
 * What every CLI command needs first: the validated configuration, secrets from the
 * environment, a logger, and (on demand) the migrated store.
 *
 * Owns: turning a configuration or store failure into one clear line on stderr and the exit
 * code scripts rely on (1 = could not run, 2 = bad input).
 */
import { ConfigError, dataDir, loadConfig, type AppConfig, type Secrets } from "../config/config.ts";
import { createLogger, type Logger } from "../log.ts";
import { StoreError } from "../store/open-database.ts";
import { Store } from "../store/store.ts";

export const EXIT = { ok: 0, failure: 1, badInput: 2 } as const;

/** An error whose message is meant for the person at the terminal, with the exit code to use. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
  }
}

export interface AppContext {
  config: AppConfig;
  secrets: Secrets;
  log: Logger;
  /** Nobody chose a model: `model.path` is the shipped default (see `LoadedConfig`). */
  modelPathIsDefault: boolean;
}

export function appContext(): AppContext {
  const { config, secrets, modelPathIsDefault } = loadConfig();
  return { config, secrets, modelPathIsDefault, log: createLogger(config.log.level) };
}

export async function openStore(ctx: AppContext): Promise<Store> {
  return Store.open({ databaseUrl: ctx.secrets.databaseUrl, dataDir: dataDir(ctx.config) });
}

/** Wraps a command action: known errors become one line on stderr and an exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT.ok;
    } catch (e) {
      if (e instanceof CliError) {
        process.stderr.write(`steerbot: ${e.message}\n`);
        process.exitCode = e.exitCode;
      } else if (e instanceof ConfigError) {
        process.stderr.write(`steerbot: ${e.message}\n`);
        process.exitCode = EXIT.badInput;
      } else if (e instanceof StoreError) {
        process.stderr.write(`steerbot: ${e.message}\n`);
        process.exitCode = EXIT.failure;
      } else {
        process.stderr.write(`steerbot: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = EXIT.failure;
      }
    }
  };
}
