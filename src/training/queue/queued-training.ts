/**
 * What the bots' admin commands and the studio talk to when training goes through the queue:
 * `/retrain` enqueues a job and follows it to its end, wherever it runs.
 *
 * Owns: turning a queued job into the progress texts, step events and final notice the chat
 * platforms and the studio already show, read from `training_jobs` (so a job trained by a
 * worker on another machine reports the same way as one trained here), and cancelling a job
 * from any instance. Adapters (list, activate, rollback) stay with the training service.
 */
import type { TrainingControl } from "../../core/admin-commands.ts";
import type { Actor, Outcome, TrainingStep } from "../../core/ports.ts";
import type { Logger } from "../../log.ts";
import type { TrainingJobRow } from "../../store/database.ts";
import type { Store } from "../../store/store.ts";
import { FINAL_JOB_STATES } from "../../store/training-job-repository.ts";
import type { TrainingService } from "../training-service.ts";
import { localJobEvents, localOutcomes } from "./job-runner.ts";
import type { TrainProgress } from "../train-adapter.ts";
import type { TrainingQueue } from "./training-queue.ts";

const FOLLOW_EVERY_MS = 500;

export class QueuedTraining implements TrainingControl {
  constructor(private readonly deps: { store: Store; queue: TrainingQueue; training: TrainingService; log: Logger }) {}

  async retrain(actor: Actor, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome> {
    const { job, created } = await this.deps.queue.enqueue({ trigger: "command", actor });
    if (!created) {
      const since = job.started_at ?? job.created_at;
      return { ok: false, notice: `A training run is already going (job ${job.id.slice(0, 8)}, ${job.state} since ${since.toISOString().slice(0, 16).replace("T", " ")} UTC). Wait for it to finish.` };
    }
    await progress(`Training job ${job.id.slice(0, 8)} queued${this.deps.queue.kind === "pg-boss" ? " (a worker takes it)" : ""}…`).catch(() => {});
    return this.follow(job.id, progress, onStep);
  }

  /** Reports a job's progress until it ends; resolves to its notice. */
  async follow(jobId: string, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome> {
    // a job running in this process reports every text and step as it happens
    let localSteps = false;
    const onText = (text: string) => void progress(text).catch(() => {});
    const onLocalStep = (p: TrainProgress) => {
      localSteps = true;
      onStep?.({ step: p.step, steps: p.steps, loss: p.loss, etaSeconds: p.etaSeconds, tokensPerSecond: p.tokensPerSecond });
    };
    localJobEvents.on(`text:${jobId}`, onText);
    localJobEvents.on(`step:${jobId}`, onLocalStep);
    try {
      return await this.poll(jobId, progress, () => localSteps, onStep);
    } finally {
      localJobEvents.off(`text:${jobId}`, onText);
      localJobEvents.off(`step:${jobId}`, onLocalStep);
    }
  }

  private async poll(jobId: string, progress: (text: string) => Promise<void>, local: () => boolean, onStep?: (step: TrainingStep) => void): Promise<Outcome> {
    const { store } = this.deps;
    let lastStep = -1;
    let lastState = "queued";
    for (;;) {
      const row = await store.jobs.get(jobId);
      if (!row) return { ok: false, notice: `Training job ${jobId.slice(0, 8)} is gone.` };
      if (row.state !== lastState) {
        lastState = row.state;
        if (row.state === "running") await progress(`Training job ${jobId.slice(0, 8)} is running (attempt ${row.attempts})…`).catch(() => {});
        if (row.state === "queued" && row.error) await progress(`Training job ${jobId.slice(0, 8)}: ${row.error}; retrying…`).catch(() => {});
      }
      if (!local() && row.step !== null && row.steps !== null && row.step !== lastStep) {
        lastStep = row.step;
        onStep?.({ step: row.step, steps: row.steps, loss: row.loss ?? Number.NaN, etaSeconds: row.eta_seconds ?? Number.NaN, tokensPerSecond: Number.NaN });
      }
      if (FINAL_JOB_STATES.includes(row.state)) return this.outcome(row);
      await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
    }
  }

  private outcome(row: TrainingJobRow): Outcome {
    const local = localOutcomes.get(row.id);
    if (local) return local;
    return { ok: row.state === "succeeded" || row.state === "skipped", notice: row.notice ?? row.error ?? `Training job ${row.id.slice(0, 8)} ${row.state}.` };
  }

  adapters(action: "list" | "activate" | "rollback", version?: string): Promise<Outcome> {
    return this.deps.training.adapters(action, version);
  }

  describeActive(): Promise<string> {
    return this.deps.training.describeActive();
  }

  /** Stops the run going in this process (admin commands use {@link cancelJob}, which reaches any worker). */
  cancel(): boolean {
    return this.deps.training.cancel();
  }

  /** Cancels the queued or running job, wherever it runs. */
  async cancelJob(): Promise<Outcome> {
    // a run started here outside the queue (`steerbot train --from-db` in this process) stops at once
    if (this.deps.training.cancel()) return { ok: true, notice: "Cancelling the training run; the live adapter stays as it is." };
    const job = (await this.deps.store.jobs.unfinished())[0];
    if (!job) return { ok: false, notice: "No training run is going in this bot." };
    await this.deps.queue.cancel(job.id);
    return { ok: true, notice: `Cancelling training job ${job.id.slice(0, 8)} (${job.state}); the live adapter stays as it is.` };
  }
}
