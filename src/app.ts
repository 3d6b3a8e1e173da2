/**
 * Assembling steerbot: configuration → store → engine → conversation core → training.
 *
 * Owns: the order things start in and stop in, so the CLI, the bots and the tests all build
 * the same application. At start, generations left `streaming` by a previous process are marked
 * `interrupted`, the active adapter (if any) is loaded, and the bot listens for adapter changes
 * made elsewhere (another instance, `steerbot adapters activate` on another machine).
 */
import path from "node:path";
import cron, { type ScheduledTask } from "node-cron";
import { ConfigError, dataDir, type AppConfig, type Secrets } from "./config/config.ts";
import { SteeringCore } from "./core/steering-core.ts";
import { Engine } from "./engine/engine.ts";
import type { Logger } from "./log.ts";
import { ADAPTER_CHANNEL } from "./store/training-repository.ts";
import { Store } from "./store/store.ts";
import { AdapterActivator } from "./training/adapter-activator.ts";
import { TrainingService } from "./training/training-service.ts";

export interface App {
  config: AppConfig;
  secrets: Secrets;
  log: Logger;
  store: Store;
  /** The engine the app started with (the core may have swapped to another since: `core.currentEngine`). */
  engine: Engine;
  core: SteeringCore;
  activator: AdapterActivator;
  training: TrainingService;
  close(): Promise<void>;
}

export interface AppOptions {
  config: AppConfig;
  secrets: Secrets;
  log: Logger;
  /** Use this store instead of opening the configured one. */
  store?: Store;
  /** Run the nightly training job (node-cron) in this process (`steerbot start`). */
  schedule?: boolean;
}

/** Loads the configured model, optionally with a LoRA adapter applied. */
export function engineLoader(config: AppConfig): (lora?: string) => Promise<Engine> {
  return (lora) =>
    Engine.load({
      model: config.model.path,
      threads: config.model.threads || undefined,
      contextSize: config.model.context_size,
      gpu: config.model.gpu,
      maxWaiting: config.generation.max_waiting,
      modelsDir: path.join(dataDir(config), "models"),
      lora,
    });
}

export async function createApp(opts: AppOptions): Promise<App> {
  const { config, secrets, log } = opts;
  const store = opts.store ?? (await Store.open({ databaseUrl: secrets.databaseUrl, dataDir: dataDir(config) }));
  const loadEngine = engineLoader(config);
  let engine: Engine;
  try {
    await store.holdInstance();
    const interrupted = await store.conversations.markInterrupted();
    if (interrupted) log.info({ interrupted }, "marked generations left streaming by processes that ended as interrupted");
    engine = await loadEngine();
  } catch (e) {
    if (!opts.store) await store.close();
    throw e;
  }
  const core = new SteeringCore({ store, engine, config, log });
  const baseFingerprint = () => engine.fingerprint();
  const activator = new AdapterActivator({ store, core, engine, log, loadEngine, baseFingerprint });
  const training = new TrainingService({
    store,
    config,
    log,
    activator,
    baseFingerprint,
    engine: () => activator.engine,
    limitGenerationThreads: (limit) => activator.engine.setThreadLimit(limit),
  });
  core.training = training;

  try {
    await activator.sync();
  } catch (e) {
    log.error({ err: e }, "the active adapter could not be loaded; serving the base model");
  }
  const sync = (why: string) => activator.sync().catch((err) => log.error({ err }, `${why} but the adapter was not applied`));
  const unlisten = await store.listen(ADAPTER_CHANNEL, () => void sync("adapter change heard"), {
    onDisconnected: (err) => log.warn({ err }, "lost the database connection that hears adapter changes; reconnecting"),
    // changes made while it was down were not heard: read the active adapter again
    onResubscribed: () => {
      log.info("hearing adapter changes again");
      void sync("reconnected");
    },
  });

  let task: ScheduledTask | undefined;
  if (opts.schedule && config.training.enabled) {
    if (!cron.validate(config.training.schedule)) throw new ConfigError(`training.schedule: "${config.training.schedule}" is not a valid cron expression`);
    task = cron.schedule(
      config.training.schedule,
      async () => {
        const out = await training.run({ trigger: "cron", progress: (t) => log.info(t) });
        log.info({ state: out.state }, out.notice ?? "nightly training ended");
      },
      { timezone: config.training.timezone, name: "steerbot-nightly-training" },
    );
    log.info({ schedule: config.training.schedule, timezone: config.training.timezone }, "nightly training scheduled");
  }

  return {
    config,
    secrets,
    log,
    store,
    engine,
    core,
    activator,
    training,
    async close() {
      await task?.stop();
      training.cancel();
      await unlisten().catch(() => {});
      await core.idle().catch(() => {});
      await activator.engine.dispose();
      if (activator.engine !== engine) await engine.dispose().catch(() => {});
      if (!opts.store) await store.close();
    },
  };
}
