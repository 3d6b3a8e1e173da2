/**
 * Conversations: threads, their messages and the generations (streamed replies) in them.
 *
 * Owns: every SQL statement on `threads`, `messages` and `generations`, including marking the
 * generations a crashed process left `streaming` as `interrupted` at start (and only those).
 */
import { sql, type Kysely } from "kysely";
import type { ChatMessage } from "../core/steer-record.ts";
import type { Database, GenerationRow, GenerationStatus, GenerationUpdate } from "./database.ts";
import { PersonalData } from "./personal-data.ts";

export interface ThreadKey {
  platform: string;
  chatId: string;
  threadId: string;
}

/** Which generation a platform message (or a chat's newest reply) belongs to, and which instance streams it. */
export interface GenerationOwner {
  generationId: number;
  /** Store.instanceId of the process that streams it; null before that was recorded. */
  instanceId: string | null;
  status: GenerationStatus;
}

export class ConversationRepository {
  constructor(
    private readonly db: Kysely<Database>,
    /** Withholds opted-out people's corrections from the reply texts written here. */
    private readonly personal: PersonalData,
    /** Written on every generation this process starts (see {@link markInterrupted}). */
    private readonly instanceId: string,
    /** Whether another process holds that instance's lock (it is alive). */
    private readonly instanceAlive: (instanceId: string) => Promise<boolean>,
  ) {}

  async upsertThread(key: ThreadKey, createdBy?: string): Promise<number> {
    const row = await this.db
      .insertInto("threads")
      .values({ platform: key.platform, chat_id: key.chatId, platform_thread_id: key.threadId, created_by: createdBy ?? null })
      .onConflict((oc) => oc.constraint("threads_platform_unique").doUpdateSet({ platform: key.platform }))
      .returning("id")
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async addMessage(threadId: number, m: { role: ChatMessage["role"]; text: string; author?: string; platformMessageIds?: string[] }): Promise<number> {
    const row = await this.db
      .insertInto("messages")
      .values({ thread_id: threadId, role: m.role, text: this.personal.redact(m.text, { threadDbId: threadId }), author: m.author ?? null, platform_message_ids: m.platformMessageIds ?? [] })
      .returning("id")
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async updateMessageText(id: number, text: string, db: Kysely<Database> = this.db): Promise<void> {
    if (this.personal.hasWithheld) {
      const m = await db.selectFrom("messages").select("thread_id").where("id", "=", id).executeTakeFirst();
      if (m) text = this.personal.redact(text, { threadDbId: m.thread_id });
    }
    await db.updateTable("messages").set({ text }).where("id", "=", id).execute();
  }

  /**
   * The newest `limit` messages of the thread in order (the model's context is chosen from
   * them, see core/context-budget.ts), and how many messages the thread has in all.
   */
  async history(threadId: number, limit: number): Promise<{ messages: ChatMessage[]; total: number }> {
    const rows = await this.db
      .selectFrom("messages")
      .select(["role", "text", sql<number>`count(*) over ()`.as("total")])
      .where("thread_id", "=", threadId)
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return { messages: rows.reverse().map((r) => ({ role: r.role, content: r.text })), total: Number(rows[0]?.total ?? 0) };
  }

  /**
   * The threads of one chat on one platform, newest first, each with its first question as a
   * title (the studio's history of conversations).
   */
  async threadsOf(platform: string, chatId: string, limit = 100): Promise<{ id: number; threadId: string; createdAt: Date; title: string; messages: number }[]> {
    const rows = await this.db
      .selectFrom("threads as t")
      .select((eb) => [
        "t.id",
        "t.platform_thread_id",
        "t.created_at",
        eb.selectFrom("messages as m").select("m.text").whereRef("m.thread_id", "=", "t.id").where("m.role", "=", "user").orderBy("m.id").limit(1).as("title"),
        eb.selectFrom("messages as m").select((e) => e.fn.countAll<number>().as("n")).whereRef("m.thread_id", "=", "t.id").as("messages"),
      ])
      .where("t.platform", "=", platform)
      .where("t.chat_id", "=", chatId)
      .orderBy("t.id", "desc")
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, threadId: r.platform_thread_id, createdAt: r.created_at, title: r.title ?? "", messages: Number(r.messages ?? 0) }));
  }

  /** The thread's id for its platform key, when it exists (nothing is created). */
  async findThread(key: ThreadKey): Promise<number | undefined> {
    const row = await this.db
      .selectFrom("threads")
      .select("id")
      .where("platform", "=", key.platform)
      .where("chat_id", "=", key.chatId)
      .where("platform_thread_id", "=", key.threadId)
      .executeTakeFirst();
    return row?.id;
  }

  async getGeneration(id: number): Promise<GenerationRow | undefined> {
    return this.db.selectFrom("generations").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** The stored reply text of each of these generations that has one (by id). */
  async finalTexts(generationIds: readonly number[]): Promise<Map<number, string>> {
    const ids = [...new Set(generationIds)];
    if (ids.length === 0) return new Map();
    const rows = await this.db.selectFrom("generations").select(["id", "final_text"]).where("id", "in", ids).where("final_text", "is not", null).execute();
    return new Map(rows.map((r) => [r.id, r.final_text!]));
  }

  /**
   * The newest replies nobody steered (ended `done`, no steer on them, usable by
   * {@link PersonalData.usableGeneration}), each with the question it answers (the last user
   * message of its context, after any system prompt): the retention term's replay anchors,
   * the model's ordinary answers that training should leave as they are.
   */
  async unsteeredReplies(limit: number): Promise<{ generationId: number; context: ChatMessage[]; reply: string }[]> {
    if (limit <= 0) return [];
    const rows = await this.db
      .selectFrom("generations")
      .select(["generations.id", "generations.context_messages", "generations.final_text"])
      .where("generations.status", "=", "done")
      .where(sql<boolean>`length(trim(coalesce(generations.final_text, ''))) > 0`)
      .where((eb) => eb.not(eb.exists(eb.selectFrom("steers").select("steers.id").whereRef("steers.generation_id", "=", "generations.id"))))
      .where((eb) => PersonalData.usableGeneration(eb))
      .orderBy("generations.id", "desc")
      .limit(limit)
      .execute();
    const out: { generationId: number; context: ChatMessage[]; reply: string }[] = [];
    for (const r of rows) {
      const question = r.context_messages.findLastIndex((m) => m.role === "user");
      if (question < 0) continue;
      const system = r.context_messages.filter((m, i) => m.role === "system" && i < question);
      out.push({ generationId: r.id, context: [...system, r.context_messages[question]!], reply: r.final_text! });
    }
    return out;
  }

  /**
   * Creates a generation; returns undefined when this source message already started one
   * (the platform delivered it twice).
   */
  async createGeneration(g: {
    threadId: number;
    contextMessages: ChatMessage[];
    contextText: string;
    /** Older messages of the thread left out of the context (see core/context-budget.ts). */
    droppedMessages?: number;
    modelFingerprint: string;
    adapterId?: number | null;
    sourceMessageId?: string;
  }): Promise<GenerationRow | undefined> {
    return this.db
      .insertInto("generations")
      .values({
        thread_id: g.threadId,
        context_messages: JSON.stringify(g.contextMessages),
        context_text: g.contextText,
        dropped_messages: g.droppedMessages ?? 0,
        model_fingerprint: g.modelFingerprint,
        adapter_id: g.adapterId ?? null,
        source_message_id: g.sourceMessageId ?? null,
        instance_id: this.instanceId,
      })
      .onConflict((oc) => oc.columns(["thread_id", "source_message_id"]).where("source_message_id", "is not", null).doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  async updateGeneration(id: number, set: GenerationUpdate, db: Kysely<Database> = this.db): Promise<void> {
    if (typeof set.final_text === "string") set = { ...set, final_text: this.personal.redact(set.final_text, { generationId: id }) };
    await db.updateTable("generations").set(set).where("id", "=", id).execute();
  }

  /**
   * Records a platform message of a generation as it is sent (the core's key for it, without
   * the platform), so that every instance finds the generation, and the instance streaming it,
   * from the message a stop or a correction names ({@link ownerOfMessage}).
   */
  async addPlatformMessage(id: number, messageId: string): Promise<void> {
    await this.db
      .updateTable("generations")
      .set({ platform_message_ids: sql`array_append(platform_message_ids, ${messageId}::text)` })
      .where("id", "=", id)
      .where(sql<boolean>`not (${messageId}::text = any(platform_message_ids))`)
      .execute();
  }

  /** The newest generation of `platform` that has the message `messageId` (as {@link addPlatformMessage} recorded it). */
  async ownerOfMessage(platform: string, messageId: string): Promise<GenerationOwner | undefined> {
    const row = await this.db
      .selectFrom("generations as g")
      .innerJoin("threads as t", "t.id", "g.thread_id")
      .select(["g.id", "g.instance_id", "g.status"])
      .where("t.platform", "=", platform)
      .where(sql<boolean>`g.platform_message_ids @> array[${messageId}::text]`)
      .orderBy("g.id", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && { generationId: row.id, instanceId: row.instance_id, status: row.status };
  }

  /** The newest generation in any thread of one chat (a private chat has one thread). */
  async newestInChat(platform: string, chatId: string): Promise<GenerationOwner | undefined> {
    const row = await this.db
      .selectFrom("generations as g")
      .innerJoin("threads as t", "t.id", "g.thread_id")
      .select(["g.id", "g.instance_id", "g.status"])
      .where("t.platform", "=", platform)
      .where("t.chat_id", "=", chatId)
      .orderBy("g.id", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && { generationId: row.id, instanceId: row.instance_id, status: row.status };
  }

  async finishGeneration(id: number, status: GenerationStatus, finalText: string, timings: Record<string, number>): Promise<void> {
    await this.updateGeneration(id, { status, final_text: finalText, timings: JSON.stringify(timings), finished_at: new Date() });
  }

  /**
   * Generations left `streaming` by a process that is gone died with it: those become
   * `interrupted`. Another bot on the same database streams its own right now — an instance
   * is alive while it holds its instance lock (Store.holdInstance), so those are left alone.
   */
  async markInterrupted(): Promise<number> {
    const owners = await this.db.selectFrom("generations").select("instance_id").distinct().where("status", "=", "streaming").execute();
    let marked = 0;
    for (const { instance_id: owner } of owners) {
      if (owner === this.instanceId || (owner !== null && (await this.instanceAlive(owner)))) continue;
      const r = await this.db
        .updateTable("generations")
        .set({ status: "interrupted", finished_at: new Date() })
        .where("status", "=", "streaming")
        .where((eb) => (owner === null ? eb("instance_id", "is", null) : eb("instance_id", "=", owner)))
        .executeTakeFirst();
      marked += Number(r.numUpdatedRows);
    }
    return marked;
  }
}
