/**
 * What each running instance serves now (issue 14, the studio's Adapters page): one row per
 * process (Store.instanceId), written by the adapter activator whenever its live adapter
 * changes and at start. Whether an instance still runs is its instance lock, not this row.
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("instance_adapters")
    .addColumn("instance_id", "text", (c) => c.primaryKey())
    .addColumn("adapter_version", "text")
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("instance_adapters").execute();
}
