/**
 * Observability (issue 15): every running process (a bot, the studio, a `steerbot worker`)
 * records who it is — role, host, pid, whether it takes training jobs — and, every
 * `metrics.heartbeat_seconds`, that it is still alive. `/status`, the studio's Status page and
 * `/metrics` show each one's heartbeat age (the running job's worker's above all). Whether an
 * instance still runs is still its instance lock; a row whose lock is free is dropped when read.
 * The times are the database server's (`now()`), so the ages hold across machines whose clocks
 * differ.
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("instance_heartbeats")
    .addColumn("instance_id", "text", (c) => c.primaryKey())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("host", "text", (c) => c.notNull())
    .addColumn("pid", "integer", (c) => c.notNull())
    .addColumn("runs_jobs", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("started_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("heartbeat_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("instance_heartbeats").execute();
}
