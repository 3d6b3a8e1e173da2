/**
 * Running one training job: what a worker (or a bot with `training.run_here`) does with a job
 * it took from the queue.
 *
 * Owns: the job's row while it runs (the queue has marked it running for this process) — the
 * run's id, progress (step, loss, ETA) written about twice a second where every instance reads
 * it, a cancel asked on any instance read back with each progress write, and the outcome. When
 * another process holds the training lock (a run started outside the queue) the job waits for
 * it rather than being dropped. When the queue takes the job back (its signal: this process is
 * stopping, or the job ran too long) the run is stopped — the trainer child has exited when
 * this returns — and the handler rejects with the queue's reason, recording no end: the queue
 * hands the job back or fails the attempt. Outcomes are also kept in this process for
 * followers here (the loss chart is a file on this machine).
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../../log.ts";
import type { TrainingJobRow } from "../../store/database.ts";
import type { Store } from "../../store/store.ts";
import type { RunOutcome, TrainingService } from "../training-service.ts";
import type { JobData, JobHandler } from "./training-queue.ts";

/** Outcomes of the jobs this process ran, by job id (read by QueuedTraining followers here). */
export const localOutcomes = new Map<string, RunOutcome>();

/**
 * The runs of this process as they go: `text:<job id>` (the pipeline's progress texts) and
 * `step:<job id>` (every trainer step), for followers in this process — the ones on other
 * instances read the job's row.
 */
export const localJobEvents = new EventEmitter();
localJobEvents.setMaxListeners(0);

const PROGRESS_EVERY_MS = 500;
const BUSY_RETRY_MS = 5_000;

export function jobRunner(deps: { store: Store; training: TrainingService; log: Logger }): JobHandler {
  const { store, training, log } = deps;
  return async (job: TrainingJobRow, data: JobData, signal: AbortSignal) => {
    if (job.cancel_requested) {
      await store.jobs.finish(job.id, { state: "cancelled", notice: "cancelled before it started" });
      return;
    }
    log.info({ job: job.id, attempt: job.attempts, trigger: data.trigger }, "training job started");
    let lastWrite = 0;
    let writing = false;
    const started = Date.now();
    let out: RunOutcome;
    for (;;) {
      if (signal.aborted) throw signal.reason;
      out = await training.run({
        signal,
        trigger: data.trigger,
        actor: data.actor,
        requestedBy: job.requested_by ?? undefined,
        progress: (text) => {
          log.info({ job: job.id }, text);
          localJobEvents.emit(`text:${job.id}`, text);
        },
        onRunCreated: (runId) => store.jobs.setRunId(job.id, runId),
        onTrainerProgress: (p) => {
          localJobEvents.emit(`step:${job.id}`, p);
          if (writing || (Date.now() - lastWrite < PROGRESS_EVERY_MS && p.step < p.steps)) return;
          writing = true;
          lastWrite = Date.now();
          const perStep = (Date.now() - started) / 1000 / Math.max(1, p.step);
          store.jobs
            .progress(job.id, { step: p.step, steps: p.steps, loss: p.loss, etaSeconds: perStep * (p.steps - p.step) })
            .then((cancel) => {
              if (cancel && training.cancel()) log.info({ job: job.id }, "training job cancelled from another instance");
            })
            .catch((err) => log.warn({ err, job: job.id }, "could not record training progress"))
            .finally(() => (writing = false));
        },
      });
      // stopped by the queue (not by an admin): the queue says what becomes of the job
      if (signal.aborted && (out.state === "cancelled" || out.state === "busy")) throw signal.reason;
      if (out.state !== "busy") break;
      const now = await store.jobs.get(job.id);
      if (!now || now.cancel_requested) {
        out = { ok: false, state: "cancelled", notice: "Cancelled while waiting for another training run to end." };
        break;
      }
      await sleep(BUSY_RETRY_MS, signal);
    }
    localOutcomes.set(job.id, out);
    await store.jobs.finish(job.id, {
      state: out.state === "busy" ? "failed" : out.state,
      notice: out.notice,
      error: out.state === "failed" ? out.notice : undefined,
      adapterVersion: out.adapterVersion,
      activated: out.activated,
    });
    log.info({ job: job.id, state: out.state }, "training job ended");
  };
}

/** Waits ms, or less when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
