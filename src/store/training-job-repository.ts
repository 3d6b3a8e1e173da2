/**
 * Training jobs as every instance sees them: queued, running (where, at which step, loss and
 * ETA), and how they ended.
 *
 * Owns: the SQL on `training_jobs`. The queue library (pg-boss on PostgreSQL) keeps its own
 * tables for delivery and retries; this table is the shared, readable record — progress is
 * written here by whichever worker runs the job, so any bot instance, the studio and the CLI
 * can show it, and a cancel asked on any instance is read back here by the worker.
 */
import { sql, type Kysely } from "kysely";
import type { Database, JobState, TrainingJobRow } from "./database.ts";

/** A running job with the age of its newest progress write (database server's clock). */
export type RunningJobRow = TrainingJobRow & { progress_age_seconds: number };

export const FINAL_JOB_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled", "skipped"];

/** NOTIFY channel: a job became ready to take (queued, retried, handed back); waiting workers look at once. */
export const JOB_CHANNEL = "steerbot_training_jobs";

export class TrainingJobRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** The same SQL in a transaction (the queue takes a job and marks it running in one). */
  in(tx: Kysely<Database>): TrainingJobRepository {
    return new TrainingJobRepository(tx);
  }

  /** Tells waiting workers a job is ready (sent when the transaction, if any, commits). */
  async notifyReady(id: string): Promise<void> {
    await sql`select pg_notify(${JOB_CHANNEL}, ${id})`.execute(this.db);
  }

  /**
   * Records a new queued job. Undefined when a job with the same singleton key exists already
   * (the second instance's nightly trigger): the caller reports that job instead.
   */
  async insert(j: { id: string; trigger: "cron" | "command" | "cli"; requestedBy?: string; singletonKey?: string }): Promise<TrainingJobRow | undefined> {
    return this.db
      .insertInto("training_jobs")
      .values({ id: j.id, trigger: j.trigger, requested_by: j.requestedBy ?? null, singleton_key: j.singletonKey ?? null })
      .onConflict((oc) => oc.column("singleton_key").where("singleton_key", "is not", null).doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  async get(id: string): Promise<TrainingJobRow | undefined> {
    return this.db.selectFrom("training_jobs").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async bySingletonKey(key: string): Promise<TrainingJobRow | undefined> {
    return this.db.selectFrom("training_jobs").selectAll().where("singleton_key", "=", key).executeTakeFirst();
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom("training_jobs").where("id", "=", id).execute();
  }

  /** Jobs not yet ended (queued or running), oldest first. */
  async unfinished(): Promise<TrainingJobRow[]> {
    return this.db.selectFrom("training_jobs").selectAll().where("state", "in", ["queued", "running"]).orderBy("created_at").execute();
  }

  /** How many jobs wait in the queue (the queue depth). */
  async countQueued(): Promise<number> {
    const r = await this.db.selectFrom("training_jobs").select((eb) => eb.fn.countAll<string>().as("n")).where("state", "=", "queued").executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /**
   * The jobs running now, oldest first, each with the seconds since its row was last written
   * (the worker writes progress about twice a second while the trainer steps).
   */
  async running(): Promise<RunningJobRow[]> {
    const rows = await this.db
      .selectFrom("training_jobs")
      .selectAll()
      .select(sql<number>`extract(epoch from (now() - updated_at))::float8`.as("progress_age_seconds"))
      .where("state", "=", "running")
      .orderBy("started_at")
      .execute();
    return rows.map((r) => ({ ...r, progress_age_seconds: Math.max(0, Number(r.progress_age_seconds)) }));
  }

  async recent(limit = 20): Promise<TrainingJobRow[]> {
    return this.db.selectFrom("training_jobs").selectAll().orderBy("created_at", "desc").limit(limit).execute();
  }

  /** A worker starts an attempt: returns the row (undefined if the job is unknown or already ended). */
  async markRunning(id: string, workerInstance: string): Promise<TrainingJobRow | undefined> {
    const now = new Date();
    return this.db
      .updateTable("training_jobs")
      .set((eb) => ({ state: "running", worker_instance: workerInstance, attempts: eb("attempts", "+", 1), started_at: now, updated_at: now, step: null, steps: null, loss: null, eta_seconds: null }))
      .where("id", "=", id)
      .where("state", "in", ["queued", "running"])
      .returningAll()
      .executeTakeFirst();
  }

  /** Progress of the running attempt; resolves to whether a cancel was asked meanwhile. */
  async progress(id: string, p: { step: number; steps: number; loss: number; etaSeconds: number }): Promise<boolean> {
    const r = await this.db
      .updateTable("training_jobs")
      .set({ step: p.step, steps: p.steps, loss: Number.isFinite(p.loss) ? p.loss : null, eta_seconds: Number.isFinite(p.etaSeconds) ? p.etaSeconds : null, updated_at: new Date() })
      .where("id", "=", id)
      .returning("cancel_requested")
      .executeTakeFirst();
    return r?.cancel_requested ?? false;
  }

  async setRunId(id: string, runId: number): Promise<void> {
    await this.db.updateTable("training_jobs").set({ run_id: runId, updated_at: new Date() }).where("id", "=", id).execute();
  }

  async finish(id: string, end: { state: JobState; notice?: string; error?: string; adapterVersion?: string; activated?: boolean }): Promise<void> {
    const now = new Date();
    await this.db
      .updateTable("training_jobs")
      .set({ state: end.state, notice: end.notice ?? null, error: end.error ?? null, adapter_version: end.adapterVersion ?? null, activated: end.activated ?? null, updated_at: now, finished_at: now })
      .where("id", "=", id)
      .execute();
  }

  /**
   * Asks for the job to stop: a queued job is cancelled at once, a running one when its worker
   * next reports progress. Returns the row as it is now (undefined: no such job).
   */
  async requestCancel(id: string): Promise<TrainingJobRow | undefined> {
    const now = new Date();
    await this.db.updateTable("training_jobs").set({ state: "cancelled", cancel_requested: true, notice: "cancelled before it started", updated_at: now, finished_at: now }).where("id", "=", id).where("state", "=", "queued").execute();
    return this.db.updateTable("training_jobs").set({ cancel_requested: true, updated_at: now }).where("id", "=", id).returningAll().executeTakeFirst();
  }

  /**
   * Takes a running job away from a worker that is gone (its instance lock is free), so that
   * exactly one process reports the crash to the queue: true for the one whose update matched.
   */
  async claimFromDeadWorker(id: string, deadWorker: string, error: string): Promise<boolean> {
    return this.requeue(id, deadWorker, { error, counted: true });
  }

  /**
   * Puts a job running on `worker` back to queued: after a crash or an error (`counted`: the
   * attempt stays in `attempts`), or handed back by a worker that is stopping (not counted:
   * `attempts` goes back down). True when the row was that worker's running job.
   */
  async requeue(id: string, worker: string, o: { error: string; counted: boolean }): Promise<boolean> {
    const r = await this.db
      .updateTable("training_jobs")
      .set((eb) => ({
        state: "queued",
        worker_instance: null,
        error: o.error,
        updated_at: new Date(),
        ...(o.counted ? {} : { attempts: eb("attempts", "-", 1) }),
      }))
      .where("id", "=", id)
      .where("worker_instance", "=", worker)
      .where("state", "=", "running")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
