/**
 * `steerbot worker [--once]`: runs the training jobs the bots queue, on this machine (the GPU
 * box), sharing only the PostgreSQL database with them.
 *
 * Owns: the worker process — it needs DATABASE_URL and the base model (model.path, or
 * training.base_model for the trainer), nothing else: no chat tokens, no bot. It holds its
 * instance lock for as long as it runs (how every other process tells that it crashed), loads
 * the base model (the trainer tokenizes and the gate evaluates through it), and runs one job at
 * a time: train, evaluate, store the adapter in the database, and activate it there when it wins —
 * which makes every bot instance fetch it and swap (LISTEN/NOTIFY). `--once` exits when no job is
 * left. SIGINT/SIGTERM stop taking jobs and hand the running one back to the queue: its run is
 * stopped (the trainer child has exited before the worker does; the run is recorded as
 * cancelled, saying why; the live adapter stays), the job is queued again for another worker —
 * or this one after a restart — and that attempt is not counted. A second signal exits at once.
 * A worker that dies without them (a crash, SIGKILL, a lost machine) has its job retried once by
 * another worker, then failed. Its heartbeat (every `metrics.heartbeat_seconds`) shows on
 * every instance's /status; with `metrics.enabled` it serves its own `GET /metrics` (job
 * durations, queue, heartbeats).
 * Exit codes: 0 done, 2 bad setup (no DATABASE_URL), 1 could not run.
 */
import path from "node:path";
import type { Command } from "commander";
import { engineLoader } from "../../app.ts";
import { dataDir } from "../../config/config.ts";
import type { Engine } from "../../engine/engine.ts";
import { AdapterActivator } from "../../training/adapter-activator.ts";
import { AdapterCache } from "../../training/adapter-cache.ts";
import { Metrics } from "../../observability/metrics.ts";
import { jobRunner } from "../../training/queue/job-runner.ts";
import { PgBossQueue } from "../../training/queue/pg-boss-queue.ts";
import { TrainingService } from "../../training/training-service.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";
import { checkMetricsListener, serveMetrics } from "../metrics-listener.ts";

export function register(program: Command): void {
  program
    .command("worker")
    .description("run queued training jobs on this machine (needs DATABASE_URL and the base model)")
    .option("--once", "exit when no job is left in the queue")
    .action(
      action(async (opts: { once?: boolean }) => {
        const ctx = appContext();
        const { config, secrets, log } = ctx;
        if (!secrets.databaseUrl) {
          throw new CliError(
            "steerbot worker needs DATABASE_URL (the PostgreSQL database the bots use): with the embedded database, the bot trains in its own process and needs no worker",
            EXIT.badInput,
          );
        }
        checkMetricsListener(ctx);
        const store = await openStore(ctx);
        let engine: Engine | undefined;
        let metricsServer: { close(): Promise<void> } | undefined;
        let queue: PgBossQueue | undefined;
        let why = "the worker stopped";
        let activator: AdapterActivator | undefined;
        try {
          await store.holdInstance({ role: "worker", runsJobs: true }, config.metrics.heartbeat_seconds);
          const metrics = new Metrics({ instanceId: store.instanceId, role: "worker", operations: () => store.operations(), onError: (err) => log.warn({ err }, "metrics: could not collect") });
          metricsServer = await serveMetrics(metrics, ctx);
          const loadEngine = engineLoader(config);
          engine = await loadEngine();
          const base = engine;
          const cache = new AdapterCache(store, path.join(dataDir(config), "adapters"));
          const adapterFile = (row: Parameters<AdapterCache["localFile"]>[0]) => cache.localFile(row);
          // A worker serves no replies: a swap only checks and loads the adapter it activates.
          activator = new AdapterActivator({ store, core: { useEngine: async () => {} }, engine, log, loadEngine, baseFingerprint: () => base.fingerprint(), adapterFile, recordsLive: false });
          const live = activator;
          const training = new TrainingService({ store, config, log, activator, baseFingerprint: () => base.fingerprint(), engine: () => live.engine, adapterFile });
          queue = new PgBossQueue({ store, log, databaseUrl: secrets.databaseUrl, checkSeconds: config.training.worker_check_seconds, jobTimeoutHours: config.training.job_timeout_hours });
          const stopped = new Promise<void>((resolve) => {
            const stop = (signal: NodeJS.Signals) => {
              // without these listeners a second signal ends the process at once
              process.off("SIGINT", stop).off("SIGTERM", stop);
              log.info({ signal }, "worker stopping: no new jobs; the running one goes back to the queue");
              why = `the worker stopped (${signal}) and handed the job back to the queue`;
              resolve();
            };
            process.on("SIGINT", stop).on("SIGTERM", stop);
          });
          await queue.start({ work: metrics.timeJobs(jobRunner({ store, training, log }), store.jobs) });
          log.info({ instance: store.instanceId, database: store.location, once: !!opts.once }, "training worker ready");
          process.stderr.write(`steerbot worker: waiting for training jobs on ${store.location}${opts.once ? " (--once: exits when the queue is empty)" : ""}\n`);
          await (opts.once ? Promise.race([queue.drained(), stopped]) : stopped);
        } finally {
          // hands a running job back and waits for its run (and trainer) to stop
          await queue?.stop(why).catch((err) => log.warn({ err }, "could not stop the training queue"));
          await metricsServer?.close().catch(() => {});
          await activator?.engine.dispose().catch(() => {});
          if (engine && activator?.engine !== engine) await engine.dispose().catch(() => {});
          await store.close();
        }
      }),
    );
}
