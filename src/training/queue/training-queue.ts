/**
 * The training job queue's small interface, shared by the PostgreSQL queue (pg-boss, any
 * number of bots and workers on several machines) and the in-process queue (embedded PGlite,
 * one process), so the bots, the schedule and the CLI enqueue the same way on both.
 *
 * Owns: the shape of a job request and of enqueue's answer, and the nightly singleton key.
 */
import type { Actor } from "../../core/ports.ts";
import type { TrainingJobRow } from "../../store/database.ts";
import type { Trigger } from "../training-service.ts";

export interface JobRequest {
  trigger: Trigger;
  actor?: Actor;
  /**
   * Jobs with the same key are one job (the nightly trigger of several instances). Unique for
   * ever in `training_jobs`, so it names its slot (see {@link nightlyKey}).
   */
  singletonKey?: string;
}

export interface Enqueued {
  job: TrainingJobRow;
  /** false: an existing job (same singleton key, or a manual run already queued or running) is answered instead. */
  created: boolean;
}

/**
 * What a process that runs jobs does with one (job-runner.ts). The queue has marked the row
 * running for this process before it calls the handler (pg-boss: in the transaction that took
 * the job). `signal` aborts when the queue takes the job back — this process is stopping (the
 * job is handed back to the queue) or the job ran past `training.job_timeout_hours` — with a
 * {@link JobInterrupted} as its reason: the handler then stops the run and rejects with that
 * reason instead of recording an end; the queue records what happens next.
 */
export type JobHandler = (job: TrainingJobRow, data: JobData, signal: AbortSignal) => Promise<void>;

/** Why the queue took a running job back from its handler (the abort reason of the handler's signal). */
export class JobInterrupted extends Error {
  constructor(
    /** `stopping`: handed back, not counted as an attempt; `timeout`: a failed attempt. */
    readonly why: "stopping" | "timeout",
    message: string,
  ) {
    super(message);
    this.name = "JobInterrupted";
  }
}

/** What travels with a job (pg-boss job data; the in-process queue keeps it in memory). */
export interface JobData {
  trigger: Trigger;
  actor?: Actor;
}

export interface TrainingQueue {
  readonly kind: "pg-boss" | "in-process";
  /** Starts the queue; with a handler this process also runs jobs (a worker, or a bot with training.run_here). */
  start(opts?: { work?: JobHandler }): Promise<void>;
  enqueue(req: JobRequest): Promise<Enqueued>;
  /** Cancels a queued or running job from any instance; undefined when there is no such job. */
  cancel(jobId: string): Promise<TrainingJobRow | undefined>;
  /** Resolves once no job is queued (the worker's --once). */
  drained(): Promise<void>;
  /**
   * Stops taking jobs and stops the queue. pg-boss: a job running here is handed back to the
   * queue (another worker, or this one's next start, runs it; the attempt is not counted), and
   * this resolves once its run has stopped; `why` says why, in the job's row and run. In-process:
   * the caller cancels the run going here (the job is recorded as cancelled).
   */
  stop(why?: string): Promise<void>;
}

/**
 * The singleton key of the nightly trigger fired at `at`: the minute in UTC. Every instance's
 * node-cron fires the same schedule at the same minute, so all of them make one key, and the
 * next night makes another.
 */
export function nightlyKey(at: Date): string {
  return `nightly:${at.toISOString().slice(0, 16)}`;
}
