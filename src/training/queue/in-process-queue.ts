/**
 * The training queue of the embedded default (PGlite, one process): jobs in `training_jobs`,
 * run one at a time in this process.
 *
 * Owns: ordering and running the jobs of this process. Why not pg-boss here: PGlite is one
 * session inside this process — nothing else can connect to it, so there is no other worker to
 * hand a job to, and pg-boss needs a PostgreSQL server it can open its own pool of connections
 * to. The same interface, job rows and runner keep the single-machine default working with no
 * extra command: a job left queued when the process stopped runs at the next start, and one
 * left running (the process died mid-run) is retried once, then failed with the reason. A job
 * running when the process stops on purpose is cancelled by the app (`App.close`), not handed
 * back: no other process could take it, and a bot that was stopped should not resume a run by
 * itself at its next start.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../../log.ts";
import type { TrainingJobRow } from "../../store/database.ts";
import type { Store } from "../../store/store.ts";
import type { Enqueued, JobData, JobHandler, JobRequest, TrainingQueue } from "./training-queue.ts";

export class InProcessQueue implements TrainingQueue {
  readonly kind = "in-process";
  private work: JobHandler | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly data = new Map<string, JobData>();
  private stopped = false;
  /** Never aborted: stopping this queue does not take a job back (see the head comment). */
  private readonly signal = new AbortController().signal;

  constructor(private readonly deps: { store: Store; log: Logger }) {}

  async start(opts: { work?: JobHandler } = {}): Promise<void> {
    this.work = opts.work;
    if (!this.work) return;
    const { store } = this.deps;
    for (const job of await store.jobs.unfinished()) {
      if (job.state === "running" && job.attempts >= 2) {
        await store.jobs.finish(job.id, { state: "failed", error: "the process running it ended twice before it finished", notice: "Training job failed: the process running it ended twice before it finished. The live adapter is unchanged." });
        continue;
      }
      this.schedule(job, { trigger: job.trigger });
    }
  }

  async enqueue(req: JobRequest): Promise<Enqueued> {
    const { store } = this.deps;
    if (req.trigger !== "cron") {
      const active = (await store.jobs.unfinished())[0];
      if (active) return { job: active, created: false };
    }
    const job = await store.jobs.insert({ id: randomUUID(), trigger: req.trigger, requestedBy: req.actor ? `${req.actor.platform}:${req.actor.userId}` : undefined, singletonKey: req.singletonKey });
    if (!job) return { job: (await store.jobs.bySingletonKey(req.singletonKey!))!, created: false };
    if (this.work) this.schedule(job, { trigger: req.trigger, actor: req.actor });
    return { job, created: true };
  }

  private schedule(job: TrainingJobRow, data: JobData): void {
    this.pending++;
    this.data.set(job.id, data);
    this.chain = this.chain
      .then(async () => {
        if (this.stopped) return;
        const row = await this.deps.store.jobs.markRunning(job.id, this.deps.store.instanceId);
        if (!row) return; // ended meanwhile (cancelled before it started)
        await this.work!(row, this.data.get(job.id) ?? data, this.signal);
      })
      .catch((err) => this.deps.log.error({ err, job: job.id }, "training job failed"))
      .finally(() => {
        this.pending--;
        this.data.delete(job.id);
      });
  }

  async cancel(jobId: string): Promise<TrainingJobRow | undefined> {
    return this.deps.store.jobs.requestCancel(jobId);
  }

  async drained(): Promise<void> {
    while (this.pending > 0) await this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}
