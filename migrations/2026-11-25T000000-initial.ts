/**
 * The whole steer data model (DESIGN.md §2): threads, messages, generations, steers (text and
 * token ids), adapters, training runs, users. Runs unchanged on PostgreSQL and PGlite.
 */
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  const id = (col: any) => col.generatedAlwaysAsIdentity().primaryKey();
  const now = sql`now()`;

  await db.schema
    .createTable("users")
    .addColumn("id", "integer", id)
    .addColumn("platform", "text", (c) => c.notNull())
    .addColumn("platform_user_id", "text", (c) => c.notNull())
    .addColumn("display_name", "text")
    .addColumn("trust", "text", (c) => c.notNull().defaultTo("default").check(sql`trust in ('default', 'trusted', 'blocked')`))
    .addColumn("opted_out", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("forgotten_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addUniqueConstraint("users_platform_user_unique", ["platform", "platform_user_id"])
    .execute();

  await db.schema
    .createTable("threads")
    .addColumn("id", "integer", id)
    .addColumn("platform", "text", (c) => c.notNull())
    .addColumn("chat_id", "text", (c) => c.notNull())
    .addColumn("platform_thread_id", "text", (c) => c.notNull())
    .addColumn("created_by", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addUniqueConstraint("threads_platform_unique", ["platform", "chat_id", "platform_thread_id"])
    .execute();

  await db.schema
    .createTable("messages")
    .addColumn("id", "integer", id)
    .addColumn("thread_id", "integer", (c) => c.notNull().references("threads.id").onDelete("cascade"))
    .addColumn("role", "text", (c) => c.notNull().check(sql`role in ('system', 'user', 'assistant')`))
    .addColumn("author", "text")
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("platform_message_ids", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .execute();
  await db.schema.createIndex("messages_thread_idx").on("messages").columns(["thread_id", "id"]).execute();

  await db.schema
    .createTable("training_runs")
    .addColumn("id", "integer", id)
    .addColumn("trigger", "text", (c) => c.notNull().check(sql`trigger in ('cron', 'command', 'cli')`))
    .addColumn("requested_by", "text")
    .addColumn("objective", "text", (c) => c.notNull())
    .addColumn("hyperparameters", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("steer_count", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("state", "text", (c) =>
      c.notNull().defaultTo("queued").check(sql`state in ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')`),
    )
    .addColumn("loss_curve", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("eval_before", "jsonb")
    .addColumn("eval_after", "jsonb")
    .addColumn("log_tail", "text")
    .addColumn("error", "text")
    .addColumn("started_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addColumn("finished_at", "timestamptz")
    .execute();

  await db.schema
    .createTable("adapters")
    .addColumn("id", "integer", id)
    .addColumn("version", "text", (c) => c.notNull().unique())
    .addColumn("file_path", "text", (c) => c.notNull())
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("base_fingerprint", "text", (c) => c.notNull())
    .addColumn("training_run_id", "integer", (c) => c.references("training_runs.id").onDelete("set null"))
    .addColumn("state", "text", (c) =>
      c.notNull().defaultTo("candidate").check(sql`state in ('candidate', 'active', 'retired', 'rejected')`),
    )
    .addColumn("metrics", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addColumn("activated_at", "timestamptz")
    .execute();
  // At most one active adapter per base model.
  await sql`create unique index adapters_one_active on adapters (base_fingerprint) where state = 'active'`.execute(db);

  await db.schema
    .createTable("generations")
    .addColumn("id", "integer", id)
    .addColumn("thread_id", "integer", (c) => c.notNull().references("threads.id").onDelete("cascade"))
    .addColumn("context_messages", "jsonb", (c) => c.notNull())
    .addColumn("context_text", "text", (c) => c.notNull())
    .addColumn("model_fingerprint", "text", (c) => c.notNull())
    .addColumn("adapter_id", "integer", (c) => c.references("adapters.id").onDelete("set null"))
    .addColumn("status", "text", (c) =>
      c.notNull().defaultTo("streaming").check(sql`status in ('streaming', 'stopped', 'done', 'interrupted', 'failed')`),
    )
    .addColumn("final_text", "text")
    .addColumn("platform_message_ids", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn("source_message_id", "text")
    .addColumn("timings", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addColumn("finished_at", "timestamptz")
    .execute();
  // The same platform message asks once.
  await sql`create unique index generations_source_unique on generations (thread_id, source_message_id) where source_message_id is not null`.execute(db);

  await db.schema
    .createTable("steers")
    .addColumn("id", "integer", id)
    .addColumn("generation_id", "integer", (c) => c.references("generations.id").onDelete("cascade"))
    .addColumn("ordinal", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("source", "text", (c) => c.notNull().check(sql`source in ('bot', 'import')`))
    .addColumn("context", "jsonb", (c) => c.notNull())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("rejected", "text", (c) => c.notNull())
    .addColumn("chosen", "text", (c) => c.notNull())
    .addColumn("prefix_tokens", sql`integer[]`)
    .addColumn("rejected_tokens", sql`integer[]`)
    .addColumn("chosen_tokens", sql`integer[]`)
    .addColumn("divergence_char", "integer")
    .addColumn("divergence_token", "integer")
    .addColumn("shown_chars", "integer")
    .addColumn("shown_tokens", "integer")
    .addColumn("form", "text")
    .addColumn("model_fingerprint", "text")
    .addColumn("platform", "text")
    .addColumn("author", "text")
    .addColumn("correction_message_id", "text")
    .addColumn("trust_state", "text", (c) =>
      c.notNull().defaultTo("pending").check(sql`trust_state in ('approved', 'pending', 'rejected')`),
    )
    .addColumn("content_hash", "text", (c) => c.notNull())
    .addColumn("original_json", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(now))
    .addUniqueConstraint("steers_correction_unique", ["platform", "correction_message_id"])
    .execute();
  // An imported line is stored once however often the file is imported.
  await sql`create unique index steers_import_unique on steers (content_hash) where source = 'import'`.execute(db);
  await db.schema.createIndex("steers_generation_idx").on("steers").columns(["generation_id", "ordinal"]).execute();
  await db.schema.createIndex("steers_author_idx").on("steers").columns(["platform", "author"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["steers", "generations", "adapters", "training_runs", "messages", "threads", "users"]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
