/**
 * What every CLI command needs first: the validated configuration, secrets from the
 * environment, a logger, and (on demand) the migrated store.
 *
 * Owns: turning every failure of a command (configuration, store, model, a bug) into one clear
 * line on stderr and the exit code scripts rely on (1 = could not run, 2 = bad input).
 */
import { ConfigError, dataDir, loadConfig, type AppConfig, type Secrets } from "../config/config.ts";
import { ModelUnavailableError } from "../engine/model-file.ts";
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

/**
 * The one line (and exit code) an error becomes. Errors meant for the person at the terminal
 * print their message; anything else is a bug, whose stack goes to stderr only with
 * STEERBOT_LOG__LEVEL=debug (or trace).
 */
export function reportError(e: unknown): number {
  const say = (text: string) => process.stderr.write(`steerbot: ${text}\n`);
  if (e instanceof CliError) {
    say(e.message);
    return e.exitCode;
  }
  if (e instanceof ConfigError) {
    say(e.message);
    return EXIT.badInput;
  }
  if (e instanceof StoreError || e instanceof ModelUnavailableError) {
    say(e.message);
    return EXIT.failure;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  if (/^(debug|trace)$/.test(process.env.STEERBOT_LOG__LEVEL ?? "")) say(`unexpected error: ${err.stack ?? err.message}`);
  else say(`unexpected error: ${err.message.split("\n")[0]} (STEERBOT_LOG__LEVEL=debug shows where)`);
  return EXIT.failure;
}

/** Wraps a command action: known errors become one line on stderr and an exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT.ok;
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}
