/**
 * Which generation a platform message belongs to, for every instance (issue 15): the core now
 * records each message of a reply in `generations.platform_message_ids` as it is sent (that
 * column existed, unwritten), so an instance that receives a stop or a correction for a reply
 * another instance streams finds that instance (`generations.instance_id`). A GIN index answers
 * "the generation holding this message id", and (thread_id, id) "the newest generation of a
 * thread".
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index generations_platform_messages_idx on generations using gin (platform_message_ids)`.execute(db);
  await db.schema.createIndex("generations_thread_idx").on("generations").columns(["thread_id", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("generations_thread_idx").execute();
  await db.schema.dropIndex("generations_platform_messages_idx").execute();
}
