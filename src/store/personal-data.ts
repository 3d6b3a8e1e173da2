/**
 * Where a person's words and ids live in the database, and the one rule that keeps them there
 * only with consent (DESIGN.md §12).
 *
 * Owns: the list of every column that holds or copies user text or user ids
 * ({@link PERSONAL_COLUMNS}, with the columns that hold neither in {@link NON_PERSONAL_COLUMNS},
 * so a new column is classified before its tests pass); the write-time redaction of an
 * opted-out person's question; which steers training, held-out evaluation and export may use
 * ({@link PersonalData.usable}); who is forgotten (a pseudonym on the `users` row, never the id);
 * and `/forget`, which rewrites or deletes every copy of a person's words in one transaction.
 *
 * Why one module: the words of one message are copied into many places (the thread history, the
 * context of every later generation in the thread, its rendered prompt, other people's steers on
 * those generations, exports re-imported as steers). A rule spread over the repositories missed
 * some of them; here each copy is named once and forget walks all of them.
 */
import { createHash } from "node:crypto";
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from "kysely";
import type { ChatMessage } from "../core/steer-record.ts";
import type { Database } from "./database.ts";

/** Stands in for an opted-out person's question wherever the chat is stored. */
export const WITHHELD = "[withheld: the author opted out]";
/** Stands in for a forgotten person's words in other people's records that are kept. */
export const FORGOTTEN = "[forgotten]";

/**
 * Shorter spans of a person's are not searched for in other people's records (by forget) nor
 * withheld from a reply's text (after an opted-out person's correction): a correction
 * like "no" or "Yes." identifies no one and occurs in most texts, so searching for it would
 * wipe or deface unrelated records. Records built on such a span are still found by structure
 * (the generation it was typed into, the steers after it on that generation).
 */
const MIN_SEARCHED_CHARS = 4;

/** Every column that holds or copies a person's text (or their id), and what forget does to it. */
export const PERSONAL_COLUMNS = {
  users: {
    platform_user_id: "replaced by a pseudonym (sha256), so the person stays opted out without their id being kept",
    display_name: "cleared",
  },
  threads: { created_by: "cleared" },
  messages: {
    text: "the person's messages deleted; others' (the bot's answers, quotes) have the person's words replaced",
    author: "the person's messages deleted",
  },
  generations: {
    context_messages: "the generations they asked deleted; in the rest of the thread their words replaced",
    context_text: "as context_messages",
    final_text: "as context_messages (their corrections are part of the reply text)",
  },
  steers: {
    context: "a steer holding the person's words in any text column is deleted (see forget)",
    prefix: "as context",
    rejected: "as context",
    chosen: "as context",
    prefix_tokens: "deleted with the steer (the tokens of prefix)",
    rejected_tokens: "deleted with the steer",
    chosen_tokens: "deleted with the steer",
    author: "the person's steers deleted, bot (platform + author) and imported (author `platform:id`, or the bare id)",
    original_json: "deleted with the steer (an imported line, author and words)",
  },
  training_runs: { requested_by: "cleared (`platform:id` of who asked for the run)" },
  training_jobs: { requested_by: "cleared (`platform:id` of who queued the job; pg-boss's own job data never holds it)" },
} as const satisfies Partial<Record<keyof Database, Record<string, string>>>;

/** Text, JSON and array columns that hold neither user text nor user ids (machine data). */
export const NON_PERSONAL_COLUMNS = {
  users: ["platform", "trust"],
  threads: ["platform", "chat_id", "platform_thread_id"],
  messages: ["role", "platform_message_ids"],
  generations: ["model_fingerprint", "status", "platform_message_ids", "source_message_id", "timings", "instance_id"],
  steers: ["source", "form", "model_fingerprint", "platform", "correction_message_id", "trust_state", "content_hash"],
  adapters: ["version", "file_path", "sha256", "base_fingerprint", "state", "metrics"],
  training_runs: ["trigger", "objective", "hyperparameters", "state", "loss_curve", "eval_before", "eval_after", "log_tail", "error"],
  instance_adapters: ["instance_id", "adapter_version"],
  adapter_files: ["version", "sha256"],
  adapter_chunks: ["version"],
  training_jobs: ["id", "trigger", "singleton_key", "state", "worker_instance", "adapter_version", "notice", "error"],
  instance_heartbeats: ["instance_id", "role", "host"],
  telegram_processed_updates: ["instance_id", "forwarded_to"],
} as const satisfies Partial<Record<keyof Database, readonly string[]>>;

/** Words an opted-out person typed into a live reply (a correction that was applied, not stored). */
export interface WithheldSpan {
  generationId: number;
  threadDbId: number;
  platform: string;
  author: string;
  text: string;
}

/** Withheld spans kept at most (the oldest go first; their replies are long gone by then). */
const MAX_WITHHELD_SPANS = 2000;

export interface ForgetOutcome {
  /** The person's own steers deleted. */
  steers: number;
  /** The person's own messages deleted. */
  messages: number;
  /** Other records deleted because they were built on the person's words (steers, generations, the bot's answers to them). */
  othersDeleted: number;
  /** Other records kept with the person's words replaced by {@link FORGOTTEN}. */
  othersRewritten: number;
  /** Database ids of the threads the person took part in (the core drops its live replies there). */
  threadIds: number[];
}

/** The id a forgotten person's `users` row keeps: enough to recognise them, not to name them. */
export function pseudonym(platform: string, userId: string): string {
  return `forgotten:${createHash("sha256").update(`steerbot-forgotten\0${platform}\0${userId}`).digest("hex")}`;
}

function scrub(text: string, words: readonly string[]): string {
  let out = text;
  for (const w of words) if (out.includes(w)) out = out.split(w).join(FORGOTTEN);
  return out;
}

const holdsAny = (text: string | null, words: readonly string[]) => text !== null && words.some((w) => text.includes(w));

export class PersonalData {
  /**
   * Why in memory: an opted-out person's correction steers the live reply, so from then on the
   * reply's text (its final text, its message in the thread history, the prefix of a later
   * steer on it) holds their words. They must be recognised to be withheld when those are
   * written, and must not be stored to be recognised; they live as long as this process, as
   * the live reply does.
   */
  private withheld: WithheldSpan[] = [];

  constructor(private readonly db: Kysely<Database>) {}

  /** Remembers an opted-out person's correction so that every later write of that reply withholds it. */
  withhold(span: WithheldSpan): void {
    if (span.text.trim().length < MIN_SEARCHED_CHARS) return;
    this.withheld.push(span);
    if (this.withheld.length > MAX_WITHHELD_SPANS) this.withheld.shift();
  }

  get hasWithheld(): boolean {
    return this.withheld.length > 0;
  }

  /** `text` as it may be stored for this generation or thread: opted-out people's corrections replaced by {@link WITHHELD}. */
  redact(text: string, where: { generationId?: number; threadDbId?: number }): string {
    let out = text;
    const spans = this.withheld.filter((w) => w.generationId === where.generationId || w.threadDbId === where.threadDbId).sort((a, b) => b.text.length - a.text.length);
    for (const w of spans) if (out.includes(w.text)) out = out.split(w.text).join(WITHHELD);
    return out;
  }

  /**
   * The chat as it may be stored: the last message (the question being answered) withheld when
   * its author opted out. The rendered prompt (`context_text`) must be rendered from this, not
   * from what the model saw, and every steer on the generation takes its context from the
   * generation (SteerRepository.insert), so the question is stored nowhere.
   */
  static storableContext(messages: readonly ChatMessage[], authorOptedOut: boolean): ChatMessage[] {
    if (!authorOptedOut) return [...messages];
    return messages.map((m, i) => (i === messages.length - 1 && m.role === "user" ? { ...m, content: WITHHELD } : m));
  }

  /**
   * Steers training, held-out evaluation and export may use: not written by a person who opted
   * out or was forgotten (bot steers by platform + author; imported ones by the `platform:id`
   * author export writes), and holding no withheld text — a question or an opted-out person's
   * correction earlier in the reply (a pair around a placeholder teaches the placeholder).
   */
  static usable(eb: ExpressionBuilder<Database, "steers">): Expression<SqlBool> {
    const optedOut = eb
      .selectFrom("users")
      .select("users.id")
      .where("users.opted_out", "=", true)
      .where((u) =>
        u.or([
          u.and([u("users.platform", "=", u.ref("steers.platform")), u("users.platform_user_id", "=", u.ref("steers.author"))]),
          u.and([u("steers.platform", "is", null), u(sql<string>`users.platform || ':' || users.platform_user_id`, "=", u.ref("steers.author"))]),
        ]),
      );
    return eb.and([
      eb.not(eb.exists(optedOut)),
      eb.not(sql<boolean>`steers.context @> ${JSON.stringify([{ content: WITHHELD }])}::jsonb`),
      // a prefix or span with an opted-out person's correction withheld (SteerRepository.insert)
      sql<boolean>`strpos(steers.prefix || steers.rejected || steers.chosen, ${WITHHELD}) = 0`,
    ]);
  }

  /** Whether a stored text holds no withheld or forgotten words (a placeholder teaches the placeholder). */
  static holdsNoWithheldText(text: string): boolean {
    return !text.includes(WITHHELD) && !text.includes(FORGOTTEN);
  }

  /**
   * Generations whose reply training may hold as a replay anchor: holding no withheld or
   * forgotten text (in the context or the reply), and not asked by a person who opted out
   * since (their question message, found by the generation's source message, as forget
   * finds it).
   */
  static usableGeneration(eb: ExpressionBuilder<Database, "generations">): Expression<SqlBool> {
    const askedByOptedOut = eb
      .selectFrom("messages")
      .innerJoin("threads", "threads.id", "messages.thread_id")
      .innerJoin("users", (j) => j.onRef("users.platform", "=", "threads.platform").onRef("users.platform_user_id", "=", "messages.author"))
      .select("messages.id")
      .whereRef("messages.thread_id", "=", "generations.thread_id")
      .where("users.opted_out", "=", true)
      .where(sql<boolean>`generations.source_message_id = any(messages.platform_message_ids)`);
    return eb.and([
      eb.not(eb.exists(askedByOptedOut)),
      eb.not(sql<boolean>`generations.context_messages @> ${JSON.stringify([{ content: WITHHELD }])}::jsonb`),
      eb.not(sql<boolean>`generations.context_messages @> ${JSON.stringify([{ content: FORGOTTEN }])}::jsonb`),
      sql<boolean>`strpos(generations.final_text, ${WITHHELD}) = 0`,
      sql<boolean>`strpos(generations.final_text, ${FORGOTTEN}) = 0`,
    ]);
  }

  /**
   * Whether an imported steer's author (`platform:id`, as export writes it) is a forgotten
   * person: an old export imported again must not bring their steers back.
   */
  async forgottenAuthors(authors: readonly string[]): Promise<Set<string>> {
    const withPlatform = [...new Set(authors.filter((a) => a.indexOf(":") > 0))];
    if (withPlatform.length === 0) return new Set();
    const byPseudonym = new Map(withPlatform.map((a) => [pseudonym(a.slice(0, a.indexOf(":")), a.slice(a.indexOf(":") + 1)), a]));
    const rows = await this.db.selectFrom("users").select("platform_user_id").where("platform_user_id", "in", [...byPseudonym.keys()]).where("forgotten_at", "is not", null).execute();
    return new Set(rows.map((r) => byPseudonym.get(r.platform_user_id)!));
  }

  /**
   * Forgets a person, in one transaction (all of it or nothing): every column of
   * {@link PERSONAL_COLUMNS} that holds their words or id is rewritten or deleted, and their
   * `users` row keeps only a pseudonym, opted out, so nothing of theirs is stored or trained on
   * again and a re-imported export of their steers is refused.
   *
   * Other people's records holding the person's words:
   * - **steers are deleted**, not rewritten: a steer's context, prefix and spans are one
   *   training example, and with a placeholder in place of the question or of part of the
   *   prefix it becomes a pair about a text nobody wrote, which would teach the model the
   *   placeholder. The steers after theirs on the same reply are deleted too (their prefix
   *   holds the person's correction, even one too short to search for).
   * - **generations the person asked are deleted** (with the steers on them, and the bot's
   *   answer in the thread history, which may quote the question);
   * - **other generations and messages are kept with the words replaced** by {@link FORGOTTEN}:
   *   they are the history of other people's conversations in the same thread, not training
   *   data, and they keep their own words.
   * The search covers the threads the person took part in (history is copied only within a
   * thread) and every imported steer (an export re-imported carries any thread's text).
   */
  async forget(platform: string, userId: string): Promise<ForgetOutcome> {
    const me = `${platform}:${userId}`;
    const out = await this.db.transaction().execute(async (tx) => {
      const { mine, mySteers, threadIds } = await this.gather(tx, platform, userId);
      // What they wrote: their messages, their corrections, and the chat of steers imported under their name.
      const written = [
        ...mine.map((m) => m.text),
        ...mySteers.map((s) => s.chosen),
        ...mySteers.filter((s) => s.generation_id === null).flatMap((s) => s.context.filter((m) => m.role === "user").map((m) => m.content)),
      ];
      // trimmed too: a chat template may strip the whitespace around a message it renders
      const words = [...new Set(written.flatMap((w) => [w, w.trim()]).filter((w) => w.trim().length >= MIN_SEARCHED_CHARS))].sort((a, b) => b.length - a.length);

      const jsonWords = words.map((w) => JSON.stringify(w).slice(1, -1)); // as they appear inside an imported line
      let othersDeleted = 0;
      let othersRewritten = 0;

      // Generations they asked (their question message carries the generation's source message id).
      const asked: { id: number; thread_id: number; final_text: string | null }[] = [];
      for (const m of mine) {
        if (m.platform_message_ids.length === 0) continue;
        asked.push(
          ...(await tx.selectFrom("generations").select(["id", "thread_id", "final_text"]).where("thread_id", "=", m.thread_id).where("source_message_id", "in", m.platform_message_ids).execute()),
        );
      }
      const askedIds = new Set(asked.map((g) => g.id));

      // Steers: theirs, those after theirs on the same reply, and any holding their words.
      const doomed = new Set(mySteers.map((s) => s.id));
      for (const s of mySteers) {
        if (s.generation_id === null) continue;
        const later = await tx.selectFrom("steers").select("id").where("generation_id", "=", s.generation_id).where("ordinal", ">", s.ordinal).execute();
        for (const l of later) doomed.add(l.id);
      }
      const candidates = await tx
        .selectFrom("steers")
        .leftJoin("generations", "generations.id", "steers.generation_id")
        .select(["steers.id", "steers.generation_id", "steers.context", "steers.prefix", "steers.rejected", "steers.chosen", "steers.original_json"])
        .where((eb) => eb.or([eb("steers.source", "=", "import"), ...(threadIds.length ? [eb("generations.thread_id", "in", threadIds)] : [])]))
        .execute();
      for (const s of candidates) {
        if (s.generation_id !== null && askedIds.has(s.generation_id)) doomed.add(s.id);
        else if (s.context.some((m) => holdsAny(m.content, words)) || [s.prefix, s.rejected, s.chosen].some((t) => holdsAny(t, words)) || holdsAny(s.original_json, jsonWords)) doomed.add(s.id);
      }
      if (doomed.size) await tx.deleteFrom("steers").where("id", "in", [...doomed]).execute();
      othersDeleted += doomed.size - mySteers.length;

      // The bot's answers to them in the history (the same text as the generation's final text), then the generations.
      for (const g of asked) {
        if (g.final_text !== null) {
          const r = await tx.deleteFrom("messages").where("thread_id", "=", g.thread_id).where("role", "=", "assistant").where("author", "is", null).where("text", "=", g.final_text).executeTakeFirst();
          othersDeleted += Number(r.numDeletedRows);
        }
      }
      if (askedIds.size) await tx.deleteFrom("generations").where("id", "in", [...askedIds]).execute();
      othersDeleted += askedIds.size;

      if (mine.length) await tx.deleteFrom("messages").where("id", "in", mine.map((m) => m.id)).execute();

      // What stays in their threads keeps its own words and loses theirs.
      if (threadIds.length && words.length) {
        const gens = await tx.selectFrom("generations").select(["id", "context_messages", "context_text", "final_text"]).where("thread_id", "in", threadIds).execute();
        for (const g of gens) {
          const context = g.context_messages.map((m) => ({ ...m, content: scrub(m.content, words) }));
          const contextText = scrub(g.context_text, words);
          const finalText = g.final_text === null ? null : scrub(g.final_text, words);
          if (contextText === g.context_text && finalText === g.final_text && context.every((m, i) => m.content === g.context_messages[i]!.content)) continue;
          await tx.updateTable("generations").set({ context_messages: JSON.stringify(context), context_text: contextText, final_text: finalText }).where("id", "=", g.id).execute();
          othersRewritten++;
        }
        const msgs = await tx.selectFrom("messages").select(["id", "text"]).where("thread_id", "in", threadIds).execute();
        for (const m of msgs) {
          const text = scrub(m.text, words);
          if (text === m.text) continue;
          await tx.updateTable("messages").set({ text }).where("id", "=", m.id).execute();
          othersRewritten++;
        }
      }

      await tx.updateTable("threads").set({ created_by: null }).where("platform", "=", platform).where("created_by", "=", userId).execute();
      await tx.updateTable("training_runs").set({ requested_by: null }).where("requested_by", "=", me).execute();
      await tx.updateTable("training_jobs").set({ requested_by: null }).where("requested_by", "=", me).execute();

      // The person stays known as forgotten (and so opted out) under a pseudonym only.
      const alias = pseudonym(platform, userId);
      const hidden = { display_name: null, opted_out: true, forgotten_at: new Date() };
      const already = await tx.selectFrom("users").select("id").where("platform", "=", platform).where("platform_user_id", "=", alias).executeTakeFirst();
      if (already) {
        await tx.updateTable("users").set(hidden).where("id", "=", already.id).execute();
        await tx.deleteFrom("users").where("platform", "=", platform).where("platform_user_id", "=", userId).execute();
      } else {
        const renamed = await tx.updateTable("users").set({ ...hidden, platform_user_id: alias }).where("platform", "=", platform).where("platform_user_id", "=", userId).executeTakeFirst();
        if (Number(renamed.numUpdatedRows) === 0) await tx.insertInto("users").values({ platform, platform_user_id: alias, ...hidden }).execute();
      }

      return { steers: mySteers.length, messages: mine.length, othersDeleted, othersRewritten, threadIds };
    });
    // their corrections made while opted out: the replies holding them are dropped by the core
    this.withheld = this.withheld.filter((w) => !(w.platform === platform && w.author === userId));
    return out;
  }

  /** Database ids of the threads a person took part in (asked, steered, or opened). */
  async threadsOf(platform: string, userId: string): Promise<number[]> {
    return (await this.gather(this.db, platform, userId)).threadIds;
  }

  /** The person's messages and steers (bot and imported), and the threads they are in. */
  private async gather(tx: Kysely<Database>, platform: string, userId: string) {
    const me = `${platform}:${userId}`;
    const mine = await tx
      .selectFrom("messages")
      .innerJoin("threads", "threads.id", "messages.thread_id")
      .select(["messages.id", "messages.thread_id", "messages.text", "messages.platform_message_ids"])
      .where("threads.platform", "=", platform)
      .where("messages.author", "=", userId)
      .execute();
    const mySteers = await tx
      .selectFrom("steers")
      .leftJoin("generations", "generations.id", "steers.generation_id")
      .select(["steers.id", "steers.generation_id", "steers.ordinal", "steers.context", "steers.chosen", "generations.thread_id"])
      .where((eb) =>
        eb.or([
          eb.and([eb("steers.platform", "=", platform), eb("steers.author", "=", userId)]),
          eb.and([eb("steers.platform", "is", null), eb("steers.author", "in", [me, userId])]),
        ]),
      )
      .execute();
    const created = await tx.selectFrom("threads").select("id").where("platform", "=", platform).where("created_by", "=", userId).execute();

    const threadIds = [...new Set([...mine.map((m) => m.thread_id), ...mySteers.flatMap((s) => (s.thread_id === null ? [] : [s.thread_id])), ...created.map((t) => t.id)])];
    return { mine, mySteers, threadIds };
  }
}
