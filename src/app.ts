/**
 * Assembling steerbot: configuration → store → engine → conversation core.
 *
 * Owns: the order things start in and stop in, so the CLI, the bots and the tests all build
 * the same application. Streaming generations left by a previous process are marked
 * `interrupted` here, at start.
 */
import path from "node:path";
import { dataDir, type AppConfig, type Secrets } from "./config/config.ts";
import { SteeringCore } from "./core/steering-core.ts";
import { Engine } from "./engine/engine.ts";
import type { Logger } from "./log.ts";
import { Store } from "./store/store.ts";

export interface App {
  config: AppConfig;
  secrets: Secrets;
  log: Logger;
  store: Store;
  engine: Engine;
  core: SteeringCore;
  close(): Promise<void>;
}

export interface AppOptions {
  config: AppConfig;
  secrets: Secrets;
  log: Logger;
  /** Use this store instead of opening the configured one. */
  store?: Store;
}

export async function createApp(opts: AppOptions): Promise<App> {
  const { config, secrets, log } = opts;
  const store = opts.store ?? (await Store.open({ databaseUrl: secrets.databaseUrl, dataDir: dataDir(config) }));
  let engine: Engine;
  try {
    const interrupted = await store.conversations.markInterrupted();
    if (interrupted) log.info({ interrupted }, "marked generations left streaming by the last run as interrupted");
    engine = await Engine.load({
      model: config.model.path,
      threads: config.model.threads || undefined,
      contextSize: config.model.context_size,
      gpu: config.model.gpu,
      modelsDir: path.join(dataDir(config), "models"),
    });
  } catch (e) {
    if (!opts.store) await store.close();
    throw e;
  }
  const core = new SteeringCore({ store, engine, config, log });
  return {
    config,
    secrets,
    log,
    store,
    engine,
    core,
    async close() {
      await core.idle().catch(() => {});
      await engine.dispose();
      if (!opts.store) await store.close();
    },
  };
}
