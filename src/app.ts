/**
 * Assembling steerbot: configuration → store → engine → conversation core → training.
 *
 * Owns: the order things start in and stop in, so the CLI, the bots and the tests all build
 * the same application. At start, generations left `streaming` by a previous process are marked
 * `interrupted`, the active adapter (if any) is loaded, and the bot listens for adapter changes
 * made elsewhere (another instance, `steerbot adapters activate` on another machine). The app's
 * Prometheus metrics (src/observability) are its own registry: the core and the jobs it runs
 * report to it, and the process records its heartbeat for /status and /metrics.
 */
import path from "node:path";
import cron, { type ScheduledTask } from "node-cron";
import { ConfigError, dataDir, type AppConfig, type Secrets } from "./config/config.ts";
import { SteeringCore } from "./core/steering-core.ts";
import { Engine } from "./engine/engine.ts";
import type { Logger } from "./log.ts";
import { Metrics } from "./observability/metrics.ts";
import { ADAPTER_CHANNEL } from "./store/training-repository.ts";
import { Store } from "./store/store.ts";
import { AdapterActivator } from "./training/adapter-activator.ts";
import { TrainingService } from "./training/training-service.ts";
import { AdapterCache } from "./training/adapter-cache.ts";
import { createTrainingQueue } from "./training/queue/create-queue.ts";
import { jobRunner } from "./training/queue/job-runner.ts";
import { QueuedTraining } from "./training/queue/queued-training.ts";
import { nightlyKey, type TrainingQueue } from "./training/queue/training-queue.ts";

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
  /** The training job queue (pg-boss on PostgreSQL, in-process on PGlite). */
  queue: TrainingQueue;
  /** This app's Prometheus metrics (served at /metrics by the studio and the metrics listener). */
  metrics: Metrics;
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
  // what can be checked before anything starts
  if (opts.schedule && config.training.enabled && !cron.validate(config.training.schedule)) {
    throw new ConfigError(`training.schedule: "${config.training.schedule}" is not a valid cron expression`);
  }
  const store = opts.store ?? (await Store.open({ databaseUrl: secrets.databaseUrl, dataDir: dataDir(config) }));
  if (store.kind === "pglite" && !config.training.run_here) {
    if (!opts.store) await store.close();
    throw new ConfigError("training.run_here: false needs DATABASE_URL (a PostgreSQL server a `steerbot worker` shares); the embedded database is this process's alone, so only this process can train on it");
  }
  const loadEngine = engineLoader(config);
  let engine: Engine;
  try {
    await store.holdInstance({ role: "bot", runsJobs: config.training.run_here }, config.metrics.heartbeat_seconds);
    const interrupted = await store.conversations.markInterrupted();
    if (interrupted) log.info({ interrupted }, "marked generations left streaming by processes that ended as interrupted");
    engine = await loadEngine();
    const format = engine.chatFormat();
    if (!format.fromFileTemplate)
      log.warn(
        { model: config.model.path, format: format.wrapper },
        "the model file has no chat template (tokenizer.chat_template), so prompts use node-llama-cpp's guess of its format; if it is a base (pretrained) model rather than an instruction-tuned one, its replies will continue the text instead of answering",
      );
  } catch (e) {
    if (!opts.store) await store.close();
    throw e;
  }
  const metrics: Metrics = new Metrics({
    instanceId: store.instanceId,
    role: "bot",
    operations: () => store.operations(),
    generating: (): number => core.generatingCount,
    onError: (err) => log.warn({ err }, "metrics: could not collect"),
  });
  const core = new SteeringCore({ store, engine, config, log, observer: metrics });
  const baseFingerprint = () => engine.fingerprint();
  const cache = new AdapterCache(store, path.join(dataDir(config), "adapters"));
  const adapterFile = (row: Parameters<AdapterCache["localFile"]>[0]) => cache.localFile(row);
  const activator = new AdapterActivator({ store, core, engine, log, loadEngine, baseFingerprint, adapterFile });
  const training = new TrainingService({
    store,
    config,
    log,
    activator,
    baseFingerprint,
    engine: () => activator.engine,
    limitGenerationThreads: (limit) => activator.engine.setThreadLimit(limit),
    adapterFile,
  });
  const queue = createTrainingQueue({ store, config, log, databaseUrl: secrets.databaseUrl });
  let unlisten: (() => Promise<void>) | undefined;
  let task: ScheduledTask | undefined;

  /** Stops what started, in reverse order; `close()` and a start that fails half-way. */
  const shutdown = async () => {
    await task?.stop();
    // first the queue: on PostgreSQL it hands a job running here back (and waits for its run
    // to stop); then whatever still runs here (in-process jobs, a run outside the queue) is cancelled
    await queue.stop("the bot running it stopped").catch((err) => log.warn({ err }, "could not stop the training queue"));
    training.cancel();
    await unlisten?.().catch(() => {});
    await core.idle().catch(() => {});
    await activator.engine.dispose().catch(() => {});
    if (activator.engine !== engine) await engine.dispose().catch(() => {});
    if (!opts.store) await store.close();
  };

  try {
    await queue.start({ work: config.training.run_here ? metrics.timeJobs(jobRunner({ store, training, log }), store.jobs) : undefined });
    core.training = new QueuedTraining({ store, queue, training, log });

    try {
      await activator.sync();
    } catch (e) {
      log.error({ err: e }, "the active adapter could not be loaded; serving the base model");
    }
    const sync = (why: string) => activator.sync().catch((err) => log.error({ err }, `${why} but the adapter was not applied`));
    unlisten = await store.listen(ADAPTER_CHANNEL, () => void sync("adapter change heard"), {
      onDisconnected: (err) => log.warn({ err }, "lost the database connection that hears adapter changes; reconnecting"),
      // changes made while it was down were not heard: read the active adapter again
      onResubscribed: () => {
        log.info("hearing adapter changes again");
        void sync("reconnected");
      },
    });

    if (opts.schedule && config.training.enabled) {
      task = cron.schedule(
        config.training.schedule,
        async () => {
          // every instance fires this; the singleton key makes their triggers one job
          const { job, created } = await queue.enqueue({ trigger: "cron", singletonKey: nightlyKey(new Date()) });
          log.info({ job: job.id, created }, created ? "nightly training job queued" : "nightly training job already queued by another instance");
        },
        { timezone: config.training.timezone, name: "steerbot-nightly-training" },
      );
      log.info({ schedule: config.training.schedule, timezone: config.training.timezone }, "nightly training scheduled");
    }
  } catch (e) {
    // no dangling queue workers, pools, listeners or engines behind a failed start
    await shutdown();
    throw e;
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
    queue,
    metrics,
    close: shutdown,
  };
}
