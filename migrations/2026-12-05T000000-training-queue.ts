/**
 * Beyond one machine (issue 15): adapters stored in the database, and the training jobs every
 * instance can read.
 *
 * - `adapter_files` + `adapter_chunks`: an adapter's bytes as 1 MiB `bytea` chunks with the
 *   whole file's sha256 and size, so an instance on any machine fetches and verifies the adapter
 *   the database activated; the data directory is only a cache.
 * - `training_jobs`: one row per queued training job (pg-boss's id on PostgreSQL, a random id
 *   in-process on PGlite): its trigger, state, attempts, the worker running it, progress (step,
 *   loss, ETA) and outcome. The queue library keeps its own tables; this row is what the bots,
 *   the studio and the CLI show.
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("adapter_files")
    .addColumn("version", "text", (c) => c.primaryKey())
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("size", "bigint", (c) => c.notNull())
    .addColumn("chunk_size", "integer", (c) => c.notNull())
    .addColumn("chunks", "integer", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("adapter_chunks")
    .addColumn("version", "text", (c) => c.notNull().references("adapter_files.version").onDelete("cascade"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("data", "bytea", (c) => c.notNull())
    .addPrimaryKeyConstraint("adapter_chunks_pk", ["version", "seq"])
    .execute();

  await db.schema
    .createTable("training_jobs")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("trigger", "text", (c) => c.notNull().check(sql`trigger in ('cron', 'command', 'cli')`))
    .addColumn("requested_by", "text")
    .addColumn("singleton_key", "text")
    .addColumn("state", "text", (c) =>
      c.notNull().defaultTo("queued").check(sql`state in ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'busy')`),
    )
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("worker_instance", "text")
    .addColumn("run_id", "integer")
    .addColumn("step", "integer")
    .addColumn("steps", "integer")
    .addColumn("loss", "double precision")
    .addColumn("eta_seconds", "double precision")
    .addColumn("cancel_requested", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("adapter_version", "text")
    .addColumn("activated", "boolean")
    .addColumn("notice", "text")
    .addColumn("error", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("started_at", "timestamptz")
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("finished_at", "timestamptz")
    .execute();
  // In-process queue (PGlite): one job per singleton key, as pg-boss's singletonKey does on PostgreSQL.
  await sql`create unique index training_jobs_singleton on training_jobs (singleton_key) where singleton_key is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("training_jobs").execute();
  await db.schema.dropTable("adapter_chunks").execute();
  await db.schema.dropTable("adapter_files").execute();
}
