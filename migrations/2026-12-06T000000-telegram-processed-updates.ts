/**
 * Several instances serving one Telegram bot behind a load balancer (issue 15): Telegram
 * retries a webhook delivery it got no answer to (same `update_id`, same bot), and the retry may
 * reach another instance, so which updates were handled is kept in the database, not only in
 * one process's memory. One row per update: the instance that claimed it, when it was handled,
 * and the instance it was forwarded to (an update about a reply another instance streams is
 * handled there; see src/platforms/telegram/telegram-instance-routing.ts). The rows hold ids
 * only, no text. Rows older than two days are pruned (Telegram keeps an update for 24 hours).
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("telegram_processed_updates")
    .addColumn("bot_id", "bigint", (c) => c.notNull())
    .addColumn("update_id", "bigint", (c) => c.notNull())
    .addColumn("instance_id", "text", (c) => c.notNull())
    .addColumn("forwarded_to", "text")
    .addColumn("claimed_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("handled_at", "timestamptz")
    .addPrimaryKeyConstraint("telegram_processed_updates_pk", ["bot_id", "update_id"])
    .execute();
  await db.schema.createIndex("telegram_processed_updates_claimed_idx").on("telegram_processed_updates").column("claimed_at").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("telegram_processed_updates").execute();
}
