/**
 * Token-budgeted context (issue 13): a generation records how many of its thread's older
 * messages were left out of the model's context so that the rest fits with room for the reply.
 * `context_messages` stays exactly what the model saw; this says what it did not see.
 */
import type { Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("generations")
    .addColumn("dropped_messages", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("generations").dropColumn("dropped_messages").execute();
}
