/**
 * The training queue on PostgreSQL: pg-boss (pinned 10.4.2, the newest line that supports
 * Node 20), shared by every bot instance and every `steerbot worker` on the database.
 *
 * Owns: the pg-boss queue `steerbot-training`, enqueueing with singleton keys, taking jobs to
 * run, handing a job back when this process stops, deciding when a job is retried and when it
 * has failed for good, cancelling, and noticing crashed workers.
 *
 * Why pg-boss: it keeps jobs in the database all instances already share (no Redis), survives
 * restarts of either side, and has the retry, singleton, cancel and expiry semantics this needs.
 *
 * Taking a job: pg-boss's `fetch` (which makes the job `active`) and marking the job's row
 * `running` for this process happen in one transaction on the store's connection (pg-boss
 * takes a `db` executor for that). A process that dies between the two leaves nothing behind:
 * the server rolls the transaction back and the job is still `created` for the next worker. With
 * pg-boss's own `work()` the fetch commits first — a worker dying before it marked the row had
 * left the job `active` and invisible to the crash check until it expired hours later.
 *
 * Crashes: pg-boss 10 has no worker heartbeat — a job whose worker died stays `active` until it
 * expires — so crashes are noticed the way instances already prove they are alive: a worker
 * holds its instance lock (a session advisory lock the server frees when the process or its
 * connection dies). Every process with a queue checks the running jobs' workers every
 * `training.worker_check_seconds`; one whose worker is gone is claimed in `training_jobs` (by
 * exactly one checker) and handed to pg-boss again.
 *
 * Attempts: a job runs at most {@link MAX_ATTEMPTS} times when its attempts end by a crash, an
 * error or the timeout (`attempts` in its row), then fails with the reason. A worker that stops
 * on purpose (SIGTERM/SIGINT, `App.close`) hands its running job back: the run is stopped
 * (recorded as cancelled, saying why), the row goes back to `queued` and that attempt is not
 * counted — a restart or a rolling deploy of the GPU box must not use up the job's retry. pg-boss
 * only delivers: a job's deliveries (attempts and hand-backs together) are capped at
 * 1 + {@link DELIVERY_RETRIES}, and a job steerbot ended is failed then cancelled there so that
 * it is never delivered again. The timeout is steerbot's (`training.job_timeout_hours`: the run
 * is stopped, a failed attempt); pg-boss's expiry, {@link EXPIRY_GRACE_SECONDS} later, is the last
 * resort for a worker that is alive but stuck.
 *
 * Waking: a job made ready (queued, retried, handed back) is announced with NOTIFY on
 * {@link JOB_CHANNEL}; an idle worker takes it at once, and otherwise polls every `pollMs`.
 */
import { randomUUID } from "node:crypto";
import { CompiledQuery, type Kysely } from "kysely";
import PgBoss from "pg-boss";
import type { Logger } from "../../log.ts";
import type { Database, JobState, TrainingJobRow } from "../../store/database.ts";
import { FINAL_JOB_STATES, JOB_CHANNEL } from "../../store/training-job-repository.ts";
import type { Store } from "../../store/store.ts";
import { JobInterrupted, type Enqueued, type JobData, type JobHandler, type JobRequest, type TrainingQueue } from "./training-queue.ts";

export const TRAINING_QUEUE = "steerbot-training";
/** A job is run at most this many times when its attempts end by a crash, an error or the timeout. */
export const MAX_ATTEMPTS = 2;
/** pg-boss delivers a job at most 1 + this many times: counted attempts and hand-backs together. */
export const DELIVERY_RETRIES = 8;
/** pg-boss's own expiry of an active job comes this long after steerbot's job timeout. */
export const EXPIRY_GRACE_SECONDS = 600;

export interface PgBossQueueOptions {
  store: Store;
  log: Logger;
  databaseUrl: string;
  /** How often running jobs' workers are checked (seconds). */
  checkSeconds: number;
  /** A run going longer than this is stopped, and the attempt fails (retried once). */
  jobTimeoutHours: number;
  /** How often an idle worker looks for a job when no NOTIFY woke it (ms; default 2000). */
  pollMs?: number;
  /** false: no LISTEN, the worker only polls (bench/queue.ts measures both). Default true. */
  listen?: boolean;
  /** Tests: called inside the transaction that takes a job, after pg-boss's fetch and before the row is marked running. */
  onTaking?: (jobId: string) => Promise<void>;
}

/** pg-boss's executor over a Kysely transaction: its statements join that transaction. */
function bossDb(tx: Kysely<Database>): PgBoss.Db {
  return { executeSql: async (text, values) => (await tx.executeQuery(CompiledQuery.raw(text, values ?? []))) as { rows: any[] } };
}

export class PgBossQueue implements TrainingQueue {
  readonly kind = "pg-boss";
  private readonly boss: PgBoss;
  private timer: NodeJS.Timeout | undefined;
  private opened = false;
  private checking: Promise<void> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private stopping: JobInterrupted | undefined;
  /** Taking or running a job (drained() waits for it). */
  private busy = false;
  private current: AbortController | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;

  constructor(private readonly opts: PgBossQueueOptions) {
    this.boss = new PgBoss({ connectionString: opts.databaseUrl, max: 4, application_name: "steerbot-queue", schedule: false });
    // connection trouble is retried by pg-boss; never crash the bot over it
    this.boss.on("error", (err) => opts.log.warn({ err }, "training queue (pg-boss) error"));
  }

  private get expireInSeconds(): number {
    return Math.min(Math.round(this.opts.jobTimeoutHours * 3600) + EXPIRY_GRACE_SECONDS, 24 * 3600 - 60);
  }

  async start(opts: { work?: JobHandler } = {}): Promise<void> {
    try {
      this.opened = true; // a start that fails half-way has opened pg-boss's pool: stop() closes it
      await this.boss.start();
      if (!(await this.boss.getQueue(TRAINING_QUEUE))) {
        await this.boss
          .createQueue(TRAINING_QUEUE, { name: TRAINING_QUEUE, policy: "standard", retryLimit: DELIVERY_RETRIES, retryDelay: 0, expireInSeconds: this.expireInSeconds })
          .catch(async (e) => {
            if (!(await this.boss.getQueue(TRAINING_QUEUE))) throw e; // another instance created it meanwhile: fine
          });
      }
      if (opts.work) {
        if (this.opts.listen !== false) this.unlisten = await this.opts.store.listen(JOB_CHANNEL, () => this.wake());
        this.loop = this.workLoop(opts.work);
      }
      this.timer = setInterval(() => void this.checkWorkers(), this.opts.checkSeconds * 1000);
      this.timer.unref();
      void this.checkWorkers();
    } catch (e) {
      await this.stop().catch(() => {});
      throw e;
    }
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
      sent = await this.boss.send(TRAINING_QUEUE, data, {
        id,
        retryLimit: DELIVERY_RETRIES,
        retryDelay: 0,
        expireInSeconds: this.expireInSeconds,
        ...(req.singletonKey ? { singletonKey: req.singletonKey, singletonHours: 24 } : {}),
      });
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
    await store.jobs.notifyReady(id).catch(() => {}); // the workers poll anyway
    return { job: row, created: true };
  }

  async cancel(jobId: string): Promise<TrainingJobRow | undefined> {
    const row = await this.opts.store.jobs.requestCancel(jobId);
    if (row) await this.boss.cancel(TRAINING_QUEUE, jobId);
    return row;
  }

  // --- running jobs ---------------------------------------------------------------------------

  private async workLoop(work: JobHandler): Promise<void> {
    while (!this.stopping) {
      this.busy = true;
      let taken: Awaited<ReturnType<PgBossQueue["take"]>> = undefined;
      try {
        taken = await this.take();
      } catch (err) {
        this.opts.log.warn({ err }, "could not take a training job");
      }
      if (taken && taken !== "nothing to run") await this.runJob(taken.row, taken.data, work);
      this.busy = false;
      if (!taken && !this.stopping) await this.idle(this.opts.pollMs ?? 2000);
    }
  }

  /** pg-boss's fetch and the row marked running for this process, in one transaction. */
  private take(): Promise<{ row: TrainingJobRow; data: JobData } | "nothing to run" | undefined> {
    const { store } = this.opts;
    return store.transaction(async (tx) => {
      const db = bossDb(tx);
      const [job] = await this.boss.fetch<JobData>(TRAINING_QUEUE, { batchSize: 1, db });
      if (!job) return undefined;
      await this.opts.onTaking?.(job.id);
      const row = await store.jobs.in(tx).markRunning(job.id, store.instanceId);
      if (row) return { row, data: job.data };
      // no row (enqueued by a process that then removed it: a duplicate singleton) or it has ended
      await this.boss.complete(TRAINING_QUEUE, job.id, {}, { db });
      return "nothing to run";
    });
  }

  private async runJob(row: TrainingJobRow, data: JobData, work: JobHandler): Promise<void> {
    const { store, log, jobTimeoutHours } = this.opts;
    const abort = (this.current = new AbortController());
    if (this.stopping) abort.abort(this.stopping); // stopped while taking it: straight back
    const timeout = setTimeout(() => abort.abort(new JobInterrupted("timeout", `it ran longer than training.job_timeout_hours (${jobTimeoutHours} h)`)), jobTimeoutHours * 3_600_000);
    try {
      await work(row, data, abort.signal);
      await this.boss.complete(TRAINING_QUEUE, row.id).catch((err) => log.warn({ err, job: row.id }, "could not complete the job in pg-boss (its row has ended: it will not run again)"));
    } catch (e) {
      const handBack = e instanceof JobInterrupted && e.why === "stopping";
      const reason = e instanceof JobInterrupted ? e.message : `the worker failed: ${(e as Error).message}`;
      if (!(e instanceof JobInterrupted)) log.error({ err: e, job: row.id }, "training job failed in the worker");
      try {
        if (!(await this.release(row.id, store.instanceId, { reason, counted: !handBack }))) {
          // not running here any more: ended by the handler before it threw (then pg-boss is told),
          // or claimed by a checker that found this process's instance lock lost (then leave it)
          const now = await store.jobs.get(row.id);
          if (now && FINAL_JOB_STATES.includes(now.state)) await this.boss.complete(TRAINING_QUEUE, row.id);
        }
      } catch (err) {
        // the row stays running under this process: when it ends, the crash check hands the job on
        log.error({ err, job: row.id }, "could not give the training job back to the queue");
      }
    } finally {
      clearTimeout(timeout);
      this.current = undefined;
    }
  }

  /**
   * After an attempt that did not end the job, in one transaction: the row goes back to
   * `queued` and pg-boss delivers the job again — or the job ends, when an admin asked to
   * cancel it, after {@link MAX_ATTEMPTS} counted attempts, or when pg-boss's deliveries ran out.
   * `counted`: a crash, an error or the timeout; not counted: handed back by a worker that
   * stops. `worker`: the attempt's (this process, or a dead one). False when the row was not that
   * worker's running job (another checker claimed it first).
   */
  private async release(jobId: string, worker: string, o: { reason: string; counted: boolean }): Promise<boolean> {
    const { store, log } = this.opts;
    const result = await store.transaction(async (tx) => {
      const jobs = store.jobs.in(tx);
      const db = bossDb(tx);
      if (!(await jobs.requeue(jobId, worker, { error: o.reason, counted: o.counted }))) return undefined;
      const row = (await jobs.get(jobId))!;
      let end: { state: JobState; error?: string; notice: string } | undefined;
      if (row.cancel_requested) end = { state: "cancelled", notice: "Training job cancelled; the live adapter is unchanged." };
      else if (o.counted && row.attempts >= MAX_ATTEMPTS) end = { state: "failed", error: o.reason, notice: `Training job failed after ${row.attempts} attempt(s): ${o.reason}. The live adapter is unchanged.` };
      await this.boss.fail(TRAINING_QUEUE, jobId, { reason: o.reason }, { db });
      if (!end) {
        const after = await this.boss.getJobById(TRAINING_QUEUE, jobId, { db, includeArchive: false });
        if (after?.state === "retry" || after?.state === "created") {
          await jobs.notifyReady(jobId);
          return { row, end };
        }
        end = { state: "failed", error: o.reason, notice: `Training job failed: the queue delivered it ${DELIVERY_RETRIES + 1} times (last: ${o.reason}). The live adapter is unchanged.` };
      }
      await this.boss.cancel(TRAINING_QUEUE, jobId, { db }); // ended here: never delivered again
      await jobs.finish(jobId, end);
      return { row, end };
    });
    if (!result) return false;
    const { row, end } = result;
    if (end) log.error({ job: jobId, reason: o.reason, state: end.state, attempts: row.attempts }, "training job ended without finishing");
    else if (o.counted) log.warn({ job: jobId, reason: o.reason, attempts: row.attempts }, "training job will be retried");
    else log.info({ job: jobId, reason: o.reason }, "training job handed back to the queue");
    return true;
  }

  private idle(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => this.wakeUp?.(), ms);
      this.wakeUp = () => {
        clearTimeout(t);
        this.wakeUp = undefined;
        resolve();
      };
    });
  }

  private wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
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
          if ((await this.release(row.id, worker, { reason, counted: true })) && row.run_id)
            await store.training.updateRun(row.run_id, { state: "failed", error: reason, finished: true }).catch(() => {});
        }
      } catch (err) {
        log.warn({ err }, "could not check the training workers");
      }
    });
    return this.checking;
  }

  async drained(): Promise<void> {
    for (;;) {
      if (!this.busy && (await this.boss.getQueueSize(TRAINING_QUEUE)) === 0 && !this.busy) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(why = "the process running it stopped"): Promise<void> {
    if (!this.stopping) this.stopping = new JobInterrupted("stopping", why);
    this.current?.abort(this.stopping);
    this.wake();
    clearInterval(this.timer);
    await this.loop; // the running job has stopped and is back in the queue
    await this.checking;
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch(() => {});
    if (this.opened) await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 }).catch(() => {});
  }
}
