/**
 * Training runs and adapters: what was trained, how it scored, which adapter is live.
 *
 * Owns: every SQL statement on `training_runs` and `adapters`, the cross-instance run lock
 * (a PostgreSQL advisory lock, which PGlite has too) and the NOTIFY that tells every running
 * bot the active adapter changed.
 */
import { sql, type Kysely } from "kysely";
import type { AdapterRow, AdapterState, Database, RunState } from "./database.ts";
import type { TryLock } from "./open-database.ts";

/** Advisory lock key of "a training run is going" (any constant shared by all instances). */
const RUN_LOCK_KEY = 0x5733_7261; // "W3ra"
export const ADAPTER_CHANNEL = "steerbot_adapters";

export type TrainingRunRow = Awaited<ReturnType<TrainingRepository["latestRun"]>>;

export class TrainingRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly tryLock: TryLock,
  ) {}

  /**
   * Runs `fn` while holding the run lock on one connection; returns `ran: false` (without
   * running) when another process or request holds it. `lost` aborts (with the reason) if the
   * lock's connection dies while `fn` runs: the server has freed the lock and another
   * instance may start a run, so `fn` must stop rather than run alongside it.
   */
  async withRunLock<T>(fn: (lost: AbortSignal) => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    const lost = new AbortController();
    const release = await this.tryLock(RUN_LOCK_KEY, (err) => lost.abort(err));
    if (!release) return { ran: false };
    try {
      return { ran: true, value: await fn(lost.signal) };
    } finally {
      await release();
    }
  }

  async runningRun() {
    return this.db.selectFrom("training_runs").selectAll().where("state", "=", "running").orderBy("id", "desc").executeTakeFirst();
  }

  async latestRun() {
    return this.db.selectFrom("training_runs").selectAll().orderBy("id", "desc").executeTakeFirst();
  }

  /** The newest runs first (the studio's Training page). */
  async recentRuns(limit = 20) {
    return this.db.selectFrom("training_runs").selectAll().orderBy("id", "desc").limit(limit).execute();
  }

  async lastSucceededAt(): Promise<Date | null> {
    const r = await this.db.selectFrom("training_runs").select("started_at").where("state", "=", "succeeded").orderBy("id", "desc").executeTakeFirst();
    return r?.started_at ?? null;
  }

  async createRun(r: { trigger: "cron" | "command" | "cli"; requestedBy?: string; objective: string; hyperparameters: Record<string, unknown>; state?: RunState }): Promise<number> {
    const row = await this.db
      .insertInto("training_runs")
      .values({ trigger: r.trigger, requested_by: r.requestedBy ?? null, objective: r.objective, hyperparameters: JSON.stringify(r.hyperparameters), state: r.state ?? "running" })
      .returning("id")
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async updateRun(
    id: number,
    set: Partial<{ state: RunState; steer_count: number; loss_curve: unknown; eval_before: unknown; eval_after: unknown; log_tail: string; error: string; finished: boolean }>,
  ): Promise<void> {
    const { finished, loss_curve, eval_before, eval_after, ...rest } = set;
    await this.db
      .updateTable("training_runs")
      .set({
        ...rest,
        ...(loss_curve !== undefined ? { loss_curve: JSON.stringify(loss_curve) } : {}),
        ...(eval_before !== undefined ? { eval_before: JSON.stringify(eval_before) } : {}),
        ...(eval_after !== undefined ? { eval_after: JSON.stringify(eval_after) } : {}),
        ...(finished ? { finished_at: new Date() } : {}),
      })
      .where("id", "=", id)
      .execute();
  }

  /** Runs a crash left `running` (no process holds the lock any more) become `failed`. */
  async failOrphanedRuns(reason: string): Promise<number> {
    const r = await this.db.updateTable("training_runs").set({ state: "failed", error: reason, finished_at: new Date() }).where("state", "=", "running").executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async addAdapter(a: { version: string; filePath: string; sha256: string; baseFingerprint: string; trainingRunId: number | null; state: AdapterState; metrics: Record<string, unknown> }): Promise<AdapterRow> {
    return this.db
      .insertInto("adapters")
      .values({
        version: a.version,
        file_path: a.filePath,
        sha256: a.sha256,
        base_fingerprint: a.baseFingerprint,
        training_run_id: a.trainingRunId,
        state: a.state,
        metrics: JSON.stringify(a.metrics),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async adapters(baseFingerprint?: string): Promise<AdapterRow[]> {
    let q = this.db.selectFrom("adapters").selectAll().orderBy("id");
    if (baseFingerprint) q = q.where("base_fingerprint", "=", baseFingerprint);
    return q.execute();
  }

  async adapter(version: string): Promise<AdapterRow | undefined> {
    return this.db.selectFrom("adapters").selectAll().where("version", "=", version).executeTakeFirst();
  }

  async activeAdapter(baseFingerprint: string): Promise<AdapterRow | undefined> {
    return this.db.selectFrom("adapters").selectAll().where("base_fingerprint", "=", baseFingerprint).where("state", "=", "active").executeTakeFirst();
  }

  async setAdapterState(id: number, state: AdapterState): Promise<void> {
    await this.db.updateTable("adapters").set({ state }).where("id", "=", id).execute();
  }

  /**
   * Makes `version` the active adapter of its base model (the previous one retired) and tells
   * every listening instance, in one transaction. `version` null = back to the base model.
   */
  async activate(baseFingerprint: string, version: string | null): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.updateTable("adapters").set({ state: "retired" }).where("base_fingerprint", "=", baseFingerprint).where("state", "=", "active").execute();
      if (version) await tx.updateTable("adapters").set({ state: "active", activated_at: new Date() }).where("version", "=", version).execute();
      await sql`select pg_notify(${ADAPTER_CHANNEL}, ${JSON.stringify({ base: baseFingerprint, version })})`.execute(tx);
    });
  }
}
