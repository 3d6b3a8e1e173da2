/**
 * What an operator asks first — which instances run, how many training jobs wait, which one
 * runs (where, how far, how fast) and whether its worker is still alive — read in one go from
 * the repositories, for `/status`, the studio's Status page and the `/metrics` gauges alike.
 *
 * Owns: the shapes of those answers and how they are put together (no SQL here: the
 * repositories' reads). An instance's liveness is its instance lock; the worker's heartbeat age
 * is the time since its newest sign of life: a heartbeat row, or a progress write of its job.
 */
import type { RunningJobRow } from "./training-job-repository.ts";

/** One running process as far as it is known (a process of an older steerbot announced nothing). */
export interface InstanceStatus {
  instanceId: string;
  /** "bot" or "worker"; null: unknown (it wrote no heartbeat row). */
  role: string | null;
  host: string | null;
  pid: number | null;
  runsJobs: boolean | null;
  startedAt: Date | null;
  /** Seconds since its last heartbeat; null: unknown. */
  heartbeatAgeSeconds: number | null;
  /** The adapter it serves (null: the base model); undefined: it serves no replies (a worker) or never recorded it. */
  adapterVersion: string | null | undefined;
  /** This very process. */
  self: boolean;
}

export interface RunningJob {
  id: string;
  trigger: string;
  attempts: number;
  step: number | null;
  steps: number | null;
  loss: number | null;
  etaSeconds: number | null;
  startedAt: Date | null;
  /** The instance running it (Store.instanceId of its worker). */
  workerInstance: string | null;
  /** That instance, when it is among the running ones. */
  worker: InstanceStatus | undefined;
  /** Seconds since the worker's newest sign of life: its heartbeat or a progress write of this job. */
  workerHeartbeatAgeSeconds: number;
}

export interface Operations {
  /** Running instances, oldest first. */
  instances: InstanceStatus[];
  /** Training jobs waiting in the queue. */
  queueDepth: number;
  /** Jobs running now (one at a time in practice), oldest first. */
  running: RunningJob[];
}

export interface OperationsSources {
  instanceStatus(): Promise<InstanceStatus[]>;
  jobs: { countQueued(): Promise<number>; running(): Promise<RunningJobRow[]> };
}

export async function readOperations(src: OperationsSources): Promise<Operations> {
  const [instances, queueDepth, rows] = await Promise.all([src.instanceStatus(), src.jobs.countQueued(), src.jobs.running()]);
  const running = rows.map((r): RunningJob => {
    const worker = instances.find((i) => i.instanceId === r.worker_instance);
    const beat = worker?.heartbeatAgeSeconds ?? Number.POSITIVE_INFINITY;
    return {
      id: r.id,
      trigger: r.trigger,
      attempts: r.attempts,
      step: r.step,
      steps: r.steps,
      loss: r.loss,
      etaSeconds: r.eta_seconds,
      startedAt: r.started_at,
      workerInstance: r.worker_instance,
      worker,
      workerHeartbeatAgeSeconds: Math.min(beat, r.progress_age_seconds),
    };
  });
  return { instances, queueDepth, running };
}
