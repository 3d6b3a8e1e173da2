/**
 * Approximate steers (issue 17, "Data in"): a steer derived from a later hunk of an edited reply
 * follows a prefix the model never produced (the earlier edits), so it is marked and training
 * includes or skips it (`training.approximate_steers`). Every steer stored before is exact.
 * Dated after the last migration so that databases already migrated apply it in order.
 */
import type { Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("steers").addColumn("approximate", "boolean", (c) => c.notNull().defaultTo(false)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("steers").dropColumn("approximate").execute();
}
