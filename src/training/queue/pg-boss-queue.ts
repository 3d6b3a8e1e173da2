/**
 * The training queue on PostgreSQL: pg-boss (pinned 10.4.2, the newest line that supports
 * Node 20), shared by every bot instance and every `steerbot worker` on the database.
 *
 * Owns: the pg-boss queue `steerbot-training` (retry once, a job timeout as the last resort),
 * enqueueing with singleton keys, taking jobs to run, cancelling, and noticing crashed workers.
 *
 * Why pg-boss: it keeps jobs in the database all instances already share (no Redis), survives
 * restarts of either side, and has the retry, singleton, cancel and expiry semantics this needs.
 * pg-boss 10 has no worker heartbeat — a job whose worker died stays `active` until it expires
 * — so crashes are noticed the way instances already prove they are alive: a worker holds its
 * instance lock (a session advisory lock the server frees when the process or its connection
 * dies). Every process with a queue checks the running jobs' workers every
 * `training.worker_check_seconds`; one whose worker is gone is claimed in `training_jobs` (by
 * exactly one checker) and failed in pg-boss, which retries it once and then fails it for good.
 */
import { randomUUID } from "node:crypto";
import PgBoss from "pg-boss";
import type { Logger } from "../../log.ts";
import type { TrainingJobRow } from "../../store/database.ts";
import type { Store } from "../../store/store.ts";
import type { Enqueued, JobData, JobHandler, JobRequest, TrainingQueue } from "./training-queue.ts";

export const TRAINING_QUEUE = "steerbot-training";

export interface PgBossQueueOptions {
  store: Store;
  log: Logger;
  databaseUrl: string;
  /** How often running jobs' workers are checked (seconds). */
  checkSeconds: number;
  /** pg-boss fails (and retries once) a job active for longer than this. */
  jobTimeoutHours: number;
}

export class PgBossQueue implements TrainingQueue {
  readonly kind = "pg-boss";
  private readonly boss: PgBoss;
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private started = false;
  private checking: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PgBossQueueOptions) {
    this.boss = new PgBoss({ connectionString: opts.databaseUrl, max: 4, application_name: "steerbot-queue", schedule: false });
    // connection trouble is retried by pg-boss; never crash the bot over it
    this.boss.on("error", (err) => opts.log.warn({ err }, "training queue (pg-boss) error"));
  }

  async start(opts: { work?: JobHandler } = {}): Promise<void> {
    await this.boss.start();
    this.started = true;
    if (!(await this.boss.getQueue(TRAINING_QUEUE))) {
      await this.boss
        .createQueue(TRAINING_QUEUE, { name: TRAINING_QUEUE, policy: "standard", retryLimit: 1, retryDelay: 0, expireInSeconds: Math.round(this.opts.jobTimeoutHours * 3600) })
        .catch(async (e) => {
          if (!(await this.boss.getQueue(TRAINING_QUEUE))) throw e; // another instance created it meanwhile: fine
        });
    }
    const work = opts.work;
    if (work) {
      await this.boss.work<JobData>(TRAINING_QUEUE, { pollingIntervalSeconds: 1, batchSize: 1 }, async ([job]) => {
        if (!job) return;
        this.running++;
        try {
          const row = await this.opts.store.jobs.get(job.id);
          if (!row) return; // enqueued by a process that then removed it (a duplicate singleton)
          await work(row, job.data);
        } catch (e) {
          // an unexpected error: pg-boss fails the job (retrying it once); the row says what happened
          const reason = `the worker failed: ${(e as Error).message}`;
          const { store } = this.opts;
          const row = await store.jobs.get(job.id).catch(() => undefined);
          if (row && row.attempts >= 2) await store.jobs.finish(job.id, { state: "failed", error: reason, notice: `Training job failed after ${row.attempts} attempt(s): ${reason}. The live adapter is unchanged.` }).catch(() => {});
          else await store.jobs.claimFromDeadWorker(job.id, store.instanceId, reason).catch(() => {});
          throw e;
        } finally {
          this.running--;
        }
      });
    }
    this.timer = setInterval(() => void this.checkWorkers(), this.opts.checkSeconds * 1000);
    this.timer.unref();
    void this.checkWorkers();
  }

  async enqueue(req: JobRequest): Promise<Enqueued> {
    const { store } = this.opts;
    if (req.trigger !== "cron") {
      const active = (await store.jobs.unfinished())[0];
      if (active) return { job: active, created: false };
    }
    const id = randomUUID();
    const row = await store.jobs.insert({ id, trigger: req.trigger, requestedBy: req.actor ? `${req.actor.platform}:${req.actor.userId}` : undefined, singletonKey: req.singletonKey });
    if (!row) return { job: (await store.jobs.bySingletonKey(req.singletonKey!))!, created: false };
    // No actor in pg-boss's job data: who asked is personal data, kept only in training_jobs.requested_by,
    // which forgetting a person clears (pg-boss keeps finished jobs in its archive for days).
    const data: JobData = { trigger: req.trigger };
    let sent: string | null;
    try {
      sent = await this.boss.send(TRAINING_QUEUE, data, { id, retryLimit: 1, retryDelay: 0, ...(req.singletonKey ? { singletonKey: req.singletonKey, singletonHours: 24 } : {}) });
    } catch (e) {
      await store.jobs.remove(id).catch(() => {});
      throw e;
    }
    if (!sent) {
      // pg-boss already has a job for this singleton key in this slot
      await store.jobs.remove(id);
      const existing = req.singletonKey ? await store.jobs.bySingletonKey(req.singletonKey) : undefined;
      if (existing) return { job: existing, created: false };
      throw new Error("the training queue refused the job (a duplicate singleton key)");
    }
    return { job: row, created: true };
  }

  async cancel(jobId: string): Promise<TrainingJobRow | undefined> {
    const row = await this.opts.store.jobs.requestCancel(jobId);
    if (row) await this.boss.cancel(TRAINING_QUEUE, jobId);
    return row;
  }

  /**
   * Fails, in pg-boss, a job this process claimed from a worker that is gone: pg-boss retries
   * it once (the row goes back to queued) or fails it for good (the row says why).
   */
  private async afterFailure(jobId: string, reason: string): Promise<void> {
    const { store, log } = this.opts;
    const before = await store.jobs.get(jobId);
    await this.boss.fail(TRAINING_QUEUE, jobId, { reason });
    const after = await this.boss.getJobById(TRAINING_QUEUE, jobId);
    if (before?.run_id) await store.training.updateRun(before.run_id, { state: "failed", error: reason, finished: true }).catch(() => {});
    if (after?.state === "retry" || after?.state === "created") {
      log.warn({ job: jobId, reason }, "training job will be retried");
      return;
    }
    const attempts = before?.attempts ?? 0;
    await store.jobs.finish(jobId, { state: "failed", error: reason, notice: `Training job failed after ${attempts} attempt(s): ${reason}. The live adapter is unchanged.` });
    log.error({ job: jobId, reason }, "training job failed for good");
  }

  /** One pass of the crash check (serialised: one pass at a time in this process). */
  checkWorkers(): Promise<void> {
    this.checking = this.checking.then(async () => {
      const { store, log } = this.opts;
      try {
        for (const row of await store.jobs.unfinished()) {
          const worker = row.worker_instance;
          if (row.state !== "running" || !worker || worker === store.instanceId) continue;
          if (await store.instanceAlive(worker)) continue;
          const reason = `the worker running it (instance ${worker.slice(0, 8)}) ended mid-run`;
          if (await store.jobs.claimFromDeadWorker(row.id, worker, reason)) await this.afterFailure(row.id, reason);
        }
      } catch (err) {
        log.warn({ err }, "could not check the training workers");
      }
    });
    return this.checking;
  }

  async drained(): Promise<void> {
    for (;;) {
      if (this.running === 0 && (await this.boss.getQueueSize(TRAINING_QUEUE)) === 0) {
        // a job the worker just fetched is active, not queued: look once more after a poll
        await new Promise((r) => setTimeout(r, 1500));
        if (this.running === 0 && (await this.boss.getQueueSize(TRAINING_QUEUE)) === 0) return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.checking;
    if (this.started) await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 }).catch(() => {});
  }
}
