/**
 * Which running process streams a generation (issue 13): at start an instance marks as
 * `interrupted` only the `streaming` generations of instances that are gone (see
 * ConversationRepository.markInterrupted), not those another live bot on the same database
 * is streaming right now. Null: written before this column existed.
 */
import type { Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("generations").addColumn("instance_id", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("generations").dropColumn("instance_id").execute();
}
