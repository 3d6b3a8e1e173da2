/**
 * The Telegram front end of steerbot.
 *
 * Owns: the grammY bot, its transport (long polling with @grammyjs/runner, or a webhook on a
 * node http server), retries (@grammyjs/auto-retry on the API), and the mapping of Telegram
 * events to core calls:
 *   - a question (any message in a private chat; a mention, a reply to the bot or /ask in a
 *     group; answered in its forum topic) → `core.ask`, streamed through a reply surface;
 *   - a stop reaction (default 👎) or the draft stop button → `core.stop`; 👍 → `core.accept`;
 *   - a reply to the bot's message (with Telegram's quote, if any), or in a private chat the
 *     next message after a stop → `core.correct`;
 *   - admin/privacy commands (see telegram-admin-commands.ts).
 * Handlers never wait for a generation: `core.ask`/`core.correct` run in the background, so a
 * stop reaction is handled while the reply is still streaming. Each update, once its handlers
 * have returned, is announced on `handled` (see ../handled-events.ts); `idle()` waits for the
 * background work.
 */
import http from "node:http";
import { autoRetry } from "@grammyjs/auto-retry";
import { run, sequentialize, type RunnerHandle } from "@grammyjs/runner";
import { Bot, webhookCallback, type Context } from "grammy";
import type { Message, ReactionType } from "grammy/types";
import { pushBounded, STOP_LATENCY_WINDOW } from "../bounded-samples.ts";
import { HandledEvents, type HandledEvent } from "../handled-events.ts";
import type { StopMetrics } from "../platform-metrics.ts";
import { RecentKeys } from "../recent-keys.ts";
import type { Actor, Correction, Outcome, ReplySurface, ThreadRef } from "../../core/ports.ts";
import { ChatPacer, noteAttempt } from "./chat-pacer.ts";
import { installAdminCommands, TELEGRAM_COMMANDS, threadOf } from "./telegram-admin-commands.ts";
import { TelegramActors } from "./telegram-actors.ts";
import { resolveTelegramConfig, TELEGRAM_PACING_FLOORS, type TelegramConfig } from "./telegram-config.ts";
import { TELEGRAM, type TelegramCore } from "./telegram-core-port.ts";
import { DraftRegistry, TelegramDraftSurface } from "./telegram-draft-surface.ts";
import { draftKey, messageKey } from "./telegram-ids.ts";
import type { TelegramLog } from "./telegram-log.ts";
import { GroupChecks } from "./telegram-group-checks.ts";
import { PendingSends } from "./telegram-pending-sends.ts";
import { STOP_BUTTON_DATA, TelegramReplySurface } from "./telegram-reply-surface.ts";
import { PartOffsets } from "./telegram-part-offsets.ts";

/** Updates the bot asks for; reactions must be named explicitly or Telegram never sends them. */
export const ALLOWED_UPDATES = ["message", "message_reaction", "callback_query", "stopped_message_generation", "my_chat_member"] as const;

export interface TelegramBotOptions {
  token: string;
  core: TelegramCore;
  config?: Partial<TelegramConfig>;
  log: TelegramLog;
  /** Bot API root (tests point this at the fake server). */
  apiRoot?: string;
  /** How many stop latencies `metrics.stopLatencyMs` keeps (newest; default 1000). */
  stopLatencyWindow?: number;
  /** How many drafts (and draft → message links) the bot remembers (oldest forgotten; default 10 000). */
  maxDrafts?: number;
  /** Pacing below Telegram's floors (tests against a fake Bot API only; see resolveTelegramConfig). */
  fastPacing?: boolean;
}

/** Counters for the benchmark and `/status`-style diagnostics (stop counters: ../platform-metrics.ts). */
export interface TelegramMetrics extends StopMetrics {
  /** 429s Telegram answered (each retried by auto-retry). */
  rateLimited: number;
  /** Calls still failing with 429 after every retry: these reach the user as a missing edit. */
  rateLimitSurfaced: number;
  /** Other failed calls (after retries), "message is not modified" excluded. */
  apiFailures: number;
}

export class TelegramBot {
  readonly bot: Bot;
  readonly metrics: TelegramMetrics = { stopLatencyMs: [], stopsHandled: 0, rateLimited: 0, rateLimitSurfaced: 0, apiFailures: 0, handlerErrors: 0 };
  readonly config: TelegramConfig;
  /**
   * One announcement per update once its handlers have returned (also a duplicate dropped, or a
   * handler that threw): "the bot has processed the stranger's 👎". The generations a question
   * starts run on in the background; `idle()` waits for those.
   */
  readonly handled = new HandledEvents();
  private readonly stopLatencyWindow: number;
  private readonly core: TelegramCore;
  private readonly log: TelegramLog;
  private readonly pacer: ChatPacer;
  private readonly actors: TelegramActors;
  private readonly drafts: DraftRegistry;
  /** Where each reply message starts in its reply: Telegram's quote positions are per message. */
  private readonly parts = new PartOffsets();
  private readonly inflight = new Set<Promise<unknown>>();
  /** First sends still on the wire: a stop can arrive before the bot knows the message id. */
  private readonly pending = new PendingSends();
  private readonly groups: GroupChecks;
  /** Stops being applied, per chat: a draft is persisted only once they have cut it. */
  private readonly stopping = new Map<number, Set<Promise<unknown>>>();
  /** Recently seen update ids: Telegram redelivers after a crash or a lost confirmation. */
  private readonly seenUpdates = new RecentKeys();
  private runner: RunnerHandle | undefined;
  private server: http.Server | undefined;

  constructor(opts: TelegramBotOptions) {
    this.config = resolveTelegramConfig(opts.config, { fastPacing: opts.fastPacing });
    this.core = opts.core;
    this.log = opts.log;
    this.stopLatencyWindow = opts.stopLatencyWindow ?? STOP_LATENCY_WINDOW;
    this.drafts = new DraftRegistry(opts.maxDrafts);
    this.bot = new Bot(opts.token, opts.apiRoot ? { client: { apiRoot: opts.apiRoot } } : {});
    this.installApiTransformers();
    this.pacer = new ChatPacer(this.config.chatMinIntervalMs, this.config.groupChatMinIntervalMs, TELEGRAM_PACING_FLOORS.globalPerSecond);
    this.actors = new TelegramActors(this.bot.api, this.log);
    this.groups = new GroupChecks({
      api: this.bot.api,
      botId: () => this.bot.botInfo.id,
      stopReactions: this.config.stopReactions,
      log: this.log,
      notify: (chatId, text, threadId) => this.send(chatId, text, undefined, threadId),
    });
    this.installHandlers();
  }

  /** Connects (getMe), publishes the command menu, and starts polling or the webhook server. */
  async start(): Promise<void> {
    await this.bot.init();
    this.log.info({ username: this.bot.botInfo.username, mode: this.config.mode }, "telegram: bot connected");
    await this.bot.api.setMyCommands(TELEGRAM_COMMANDS).catch((err) => this.log.warn({ err: String(err) }, "telegram: setMyCommands failed"));
    // Configured groups learn at once whether a stop reaction can reach the bot there.
    for (const chatId of this.config.checkChats) if (chatId < 0) void this.groups.verdict(chatId);
    if (this.config.mode === "webhook") return this.startWebhook();
    // While a webhook is set, getUpdates answers 409 forever (a bot that ran in webhook mode
    // before): remove it first. Pending updates stay queued for the polling bot.
    await this.bot.api.deleteWebhook({ drop_pending_updates: false });
    this.runner = run(this.bot, {
      runner: {
        fetch: { allowed_updates: [...ALLOWED_UPDATES], timeout: this.config.pollTimeoutSeconds },
        // Fetch errors are logged by our API transformer instead of console.error.
        silent: true,
      },
    });
    void this.runner.task()?.catch((err) => this.log.error({ err: String(err) }, "telegram: polling stopped on an unrecoverable error"));
  }

  /**
   * Stops receiving updates, then waits (up to `graceMs`) for replies still streaming, so their
   * last edits land. The core is not stopped here: the app owns it.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.runner?.isRunning()) await this.runner.stop();
    this.runner = undefined;
    if (this.server) {
      const s = this.server;
      this.server = undefined;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  /** Resolves when no reply started by this bot is streaming and no handler task is pending. */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  /** Port of the webhook server (webhook mode), e.g. when configured as 0. */
  get webhookPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  // ------------------------------------------------------------------ transport

  private installApiTransformers(): void {
    // Innermost: log failures of single attempts (429s show up here at debug level). grammY
    // transformers see Telegram's errors as `{ ok: false }` results and network errors as throws.
    this.bot.api.config.use(async (prev, method, payload, signal) => {
      let res: Awaited<ReturnType<typeof prev>>;
      try {
        res = await prev(method, payload, signal);
      } catch (err) {
        if (!signal?.aborted) this.log.warn({ method, err: String(err) }, method === "getUpdates" ? "telegram: fetching updates failed; retrying" : "telegram: API call failed");
        throw err;
      }
      noteAttempt(signal as AbortSignal | undefined, !res.ok && res.error_code === 429);
      if (!res.ok) {
        const what = { method, code: res.error_code, description: res.description };
        if (res.error_code === 429) {
          this.metrics.rateLimited++;
          this.log.debug(what, "telegram: rate limited; retrying after retry_after");
        }
        else if (/message is not modified/.test(res.description)) this.log.debug(what, "telegram: edit changed nothing");
        else if (method === "getUpdates") this.log.warn(what, "telegram: fetching updates failed; retrying");
        else this.log.warn(what, "telegram: API call failed");
      }
      return res;
    });
    // Outermost: wait `retry_after` on 429 and retry network/5xx failures, so no text is lost.
    this.bot.api.config.use(autoRetry({ maxRetryAttempts: this.config.maxRetryAttempts, maxDelaySeconds: 120 }));
    // Outside the retries: what finally failed.
    this.bot.api.config.use(async (prev, method, payload, signal) => {
      const res = await prev(method, payload, signal);
      if (!res.ok && method !== "getUpdates" && !/message is not modified/.test(res.description)) {
        if (res.error_code === 429) this.metrics.rateLimitSurfaced++;
        else this.metrics.apiFailures++;
      }
      return res;
    });
  }

  private async startWebhook(): Promise<void> {
    const w = this.config.webhook!;
    const path = w.path ?? "/telegram";
    const handle = webhookCallback(this.bot, "http", { secretToken: w.secretToken, onTimeout: "return", timeoutMilliseconds: 9_000 });
    this.server = http.createServer((req, res) => {
      if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== path) {
        res.writeHead(404).end();
        return;
      }
      handle(req, res).catch((err: unknown) => {
        this.log.error({ err: String(err) }, "telegram: webhook update failed");
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    // Loopback unless configured: a TLS-terminating proxy in front is the usual setup.
    await new Promise<void>((resolve) => this.server!.listen(w.port, w.host ?? "127.0.0.1", resolve));
    if (w.url) {
      await this.bot.api.setWebhook(w.url, { allowed_updates: [...ALLOWED_UPDATES], secret_token: w.secretToken });
    }
    this.log.info({ port: this.webhookPort, path }, "telegram: webhook server listening");
  }

  // ------------------------------------------------------------------ handlers

  private installHandlers(): void {
    // A safety net: the first middleware below already catches what handlers throw.
    this.bot.catch((err) => {
      this.metrics.handlerErrors++;
      this.log.error({ update: err.ctx?.update?.update_id, err: String(err.error) }, "telegram: update handler failed");
    });

    // Outermost: drop duplicate deliveries of one update (Telegram redelivers after a crash or a
    // lost confirmation; the core also dedupes by message id), count and log handler failures,
    // and announce each update on `handled` once everything below is done with it.
    this.bot.use(async (ctx, next) => {
      const u = ctx.update;
      const event = { kind: Object.keys(u).find((k) => k !== "update_id") ?? "unknown", id: String(u.update_id), userId: ctx.from ? String(ctx.from.id) : undefined };
      if (!this.seenUpdates.firstTime(String(u.update_id))) return this.handled.emit({ ...event, outcome: "duplicate" });
      let outcome: HandledEvent["outcome"] = "done";
      try {
        await next();
      } catch (err) {
        // Counted here rather than in bot.catch, so it is counted before the update is announced.
        outcome = "failed";
        this.metrics.handlerErrors++;
        this.log.error({ update: u.update_id, err: String(err) }, "telegram: update handler failed");
      } finally {
        this.handled.emit({ ...event, outcome });
      }
    });

    // Keep order within a chat (a stop before the correction that follows it). Handlers only
    // await short calls, never a generation, so nothing queues behind a streaming reply.
    this.bot.use(sequentialize((ctx: Context) => (ctx.chat ? String(ctx.chat.id) : undefined)));

    this.bot.on("message_reaction", (ctx) => this.onReaction(ctx));
    this.bot.on("stopped_message_generation", (ctx) => this.onDraftStopped(ctx));
    this.bot.callbackQuery(STOP_BUTTON_DATA, (ctx) => this.onStopButton(ctx));
    // Added to a group, or its rights there changed: check (in the background) whether reactions reach it.
    this.bot.on("my_chat_member", (ctx) => {
      const m = ctx.myChatMember!;
      if (GroupChecks.isGroup(m.chat) && (m.new_chat_member.status === "member" || m.new_chat_member.status === "administrator")) {
        this.track(this.groups.recheck(m.chat.id));
      }
    });

    this.bot.command("ask", async (ctx) => {
      const text = ctx.match.trim();
      if (!text) return this.reply(ctx, "Usage: /ask <your question>");
      await this.startAsk(ctx, ctx.msg, text);
    });
    this.bot.command("start", (ctx) => {
      const drafts = this.config.privateDrafts && ctx.chat.type === "private";
      const stopHow = drafts ? "press the stop button under my draft" : `react ${this.config.stopReactions[0]} to my message`;
      return this.reply(
        ctx,
        `Ask me anything. While I answer, ${stopHow} to stop me where I went wrong, then reply to my message with a short correction ` +
          `(quote the part that is wrong, write s/old/new/, or just write how it should go on); I continue from it. ` +
          `React ${this.config.acceptReactions[0]} to say an answer is good.`,
      );
    });
    installAdminCommands(this.bot, {
      core: this.core,
      actors: this.actors,
      log: this.log,
      track: (t) => this.track(t),
      reply: (ctx, text) => this.reply(ctx, text),
      pacer: this.pacer,
    });

    this.bot.on("message:text", (ctx) => this.onText(ctx));
  }

  private async onText(ctx: Context): Promise<void> {
    const msg = ctx.msg!;
    const text = msg.text ?? "";
    if (text.startsWith("/")) return; // an unknown command, or one for another bot
    const chat = ctx.chat!;
    const isPrivate = chat.type === "private";
    const replied = this.repliedBotMessage(ctx, msg);

    if (replied) {
      const coreKey = this.drafts.coreKey(messageKey(chat.id, replied.message_id));
      if (this.isCorrectionTarget(msg, coreKey)) {
        // quote.position counts in the message replied to; the core aligns against the whole reply.
        const quote = msg.quote ? { text: msg.quote.text, position: this.parts.inReply(coreKey, msg.quote.position) } : undefined;
        return this.startCorrection(ctx, msg, text, coreKey, quote);
      }
    }
    if (isPrivate) {
      // "The next message in its thread": after a stop, a plain message is the correction; while
      // a reply streams, typing stops it at what was shown and corrects it (as on Discord).
      const open = this.core.openReplyIn(this.threadRef(msg));
      if (open?.state === "stopped" || open?.state === "generating") return this.startCorrection(ctx, msg, text, undefined, undefined);
      return this.startAsk(ctx, msg, text);
    }
    if (replied) return this.startAsk(ctx, msg, text);
    const stripped = this.stripMention(msg);
    if (stripped !== undefined) {
      if (!stripped) return this.reply(ctx, "Ask me something after the mention.");
      return this.startAsk(ctx, msg, stripped);
    }
  }

  /**
   * Whether a reply to the bot's message `coreKey` corrects it. In a private chat, always (a
   * question there needs no reply). In a group, replying to the bot is also how people ask a
   * follow-up, so it corrects only when the user quoted part of the message, or the reply it
   * belongs to is the thread's open one and was stopped (or is still streaming).
   */
  private isCorrectionTarget(msg: Message, coreKey: string): boolean {
    if (!this.core.isBotMessage(TELEGRAM, coreKey)) return false;
    if (msg.quote || msg.chat.type === "private") return true;
    const open = this.core.openReplyIn(this.threadRef(msg));
    return open !== undefined && open.state !== "done" && open.messageIds.includes(coreKey);
  }

  /** The bot's message this one replies to, ignoring the implicit reply to a forum topic's root. */
  private repliedBotMessage(ctx: Context, msg: Message): Message | undefined {
    const r = msg.reply_to_message;
    if (!r || r.from?.id !== ctx.me.id) return undefined;
    if (msg.is_topic_message && r.message_id === msg.message_thread_id) return undefined;
    return r;
  }

  /** The text without the bot's @mention, or undefined when the bot is not mentioned. */
  private stripMention(msg: Message): string | undefined {
    const text = msg.text ?? "";
    const handle = `@${this.bot.botInfo.username}`.toLowerCase();
    const mention = (msg.entities ?? []).find(
      (e) => e.type === "mention" && text.slice(e.offset, e.offset + e.length).toLowerCase() === handle,
    );
    if (mention) return (text.slice(0, mention.offset) + text.slice(mention.offset + mention.length)).replace(/\s+/g, " ").trim();
    // Clients always send an entity; accept a bare "@bot" too (forwarded text, old clients).
    const i = text.toLowerCase().indexOf(handle);
    if (i >= 0 && !/\w/.test(text.charAt(i + handle.length))) return (text.slice(0, i) + text.slice(i + handle.length)).replace(/\s+/g, " ").trim();
    return undefined;
  }

  private async startAsk(ctx: Context, msg: Message, text: string): Promise<void> {
    const actor = await this.actors.messageActor(msg);
    const surface = await this.surfaceFor(msg);
    const run = this.core.ask({
      thread: this.threadRef(msg),
      actor,
      text,
      sourceMessageId: messageKey(msg.chat.id, msg.message_id),
      surface,
    });
    this.track(this.finishReply(ctx, msg, surface, run, "ask"));
  }

  private async startCorrection(ctx: Context, msg: Message, text: string, replyTo: string | undefined, quote: Correction["quote"]): Promise<void> {
    const actor = await this.actors.messageActor(msg);
    const surface = await this.surfaceFor(msg);
    const run = this.core.correct({
      thread: this.threadRef(msg),
      actor,
      replyToMessageId: replyTo,
      correction: { text, ...(quote ? { quote } : {}) },
      messageId: messageKey(msg.chat.id, msg.message_id),
      surface,
    });
    this.track(this.finishReply(ctx, msg, surface, run, "correct"));
  }

  /** After a generation: persist drafts, show the core's notice to the user. */
  private async finishReply(ctx: Context, msg: Message, surface: ReplySurface, run: Promise<Outcome>, what: string): Promise<void> {
    let out: Outcome;
    try {
      out = await run;
    } catch (err) {
      // The core promises never to reject; if it does, say so in the log and move on.
      this.log.error({ err: String(err), what }, "telegram: core call rejected");
      out = { ok: false };
    }
    // The stream may end because a stop is being applied: persist the cut draft, not the text
    // before the cut (which would show, as a message, what the person never saw); take the
    // Stop buttons away only once the cut is on screen.
    await Promise.allSettled([...(this.stopping.get(msg.chat.id) ?? [])]);
    if (surface instanceof TelegramDraftSurface) {
      await surface.finish().catch((err) => this.log.warn({ err: String(err) }, "telegram: draft not persisted"));
    } else if (surface instanceof TelegramReplySurface) {
      await surface.finish();
    }
    if (out.notice) await this.reply(ctx, out.notice, msg);
  }

  private async onReaction(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const r = ctx.messageReaction!;
    if (!r.user) return; // anonymous (a channel or an anonymous admin): nobody to hold responsible
    const added = addedEmoji(r.old_reaction, r.new_reaction);
    const stop = added.some((e) => this.config.stopReactions.includes(e));
    const accept = !stop && added.some((e) => this.config.acceptReactions.includes(e));
    if (!stop && !accept) return;
    const key = await this.knownKey(r.chat.id, () => this.drafts.coreKey(messageKey(r.chat.id, r.message_id)));
    if (!key) return;
    const actor = await this.actors.actor(r.user, r.chat);
    const out = stop ? await this.applyStop(r.chat.id, key, actor, t0) : await this.core.accept({ platform: TELEGRAM, messageId: key, actor });
    if (out.notice) {
      await this.send(r.chat.id, out.notice, r.message_id);
    }
  }

  private async onDraftStopped(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const s = ctx.update.stopped_message_generation!;
    const key = await this.knownKey(s.chat.id, () => draftKey(s.chat.id, s.draft_id));
    if (!key) return;
    const actor: Actor = { platform: TELEGRAM, userId: String(s.chat.id), displayName: s.chat.username ? `@${s.chat.username}` : s.chat.first_name, roles: [] };
    const out = await this.applyStop(s.chat.id, key, actor, t0);
    if (out.notice) await this.send(s.chat.id, out.notice, undefined, s.message_thread_id);
  }

  /**
   * The inline Stop button (groups where reactions cannot reach the bot): the same stop as the
   * reaction, at what the message showed. The press is answered once the core has decided, so
   * the answer says what happened.
   */
  private async onStopButton(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const q = ctx.callbackQuery!;
    const m = q.message;
    if (!m) return void (await ctx.answerCallbackQuery());
    const key = await this.knownKey(m.chat.id, () => this.drafts.coreKey(messageKey(m.chat.id, m.message_id)));
    if (!key) return void (await ctx.answerCallbackQuery({ text: "That reply has ended." }));
    const actor = await this.actors.actor(q.from, m.chat);
    const out = await this.applyStop(m.chat.id, key, actor, t0);
    await ctx.answerCallbackQuery({ text: (out.notice ?? (out.ok ? "Stopped where you saw it. Reply to my message with a correction." : "Only the person who asked (or an admin) can stop this reply.")).slice(0, 190) });
  }

  /**
   * The core's key for a message a stop or accept names, or undefined when it is none of the
   * bot's replies. A message the user could see but whose send has not yet returned to the bot
   * (the first part of a reply, on a slow network) is unknown to the core for a moment: wait
   * for the chat's sends in flight, then look again, so that such an early stop still stops.
   */
  private async knownKey(chatId: number, key: () => string): Promise<string | undefined> {
    // A few rounds at most: in a busy chat new sends keep starting, and none of them is the
    // message the person saw before the stop.
    for (let round = 0; ; round++) {
      const k = key();
      if (this.core.isBotMessage(TELEGRAM, k)) return k;
      if (round >= 3 || !this.pending.has(chatId)) return undefined;
      await this.pending.settled(chatId);
    }
  }

  /**
   * Applies a stop. Edits of this message still queued behind the chat's limit (or waiting out
   * a 429) were never shown: drop them, and refuse new ones while the core cuts (the cut-back
   * itself passes), so the stop is applied now and no unseen text appears after it.
   */
  private async applyStop(chatId: number, key: string, actor: Actor, t0: number): Promise<Outcome> {
    const release = this.pacer.hold(chatId, key);
    try {
      return await this.applying(chatId, this.core.stop({ platform: TELEGRAM, messageId: key, actor }));
    } finally {
      release();
      this.noteStop(t0);
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Registers a stop being applied in `chatId` until it settles (see `stopping`). */
  private applying<T>(chatId: number, stop: Promise<T>): Promise<T> {
    let set = this.stopping.get(chatId);
    if (!set) this.stopping.set(chatId, (set = new Set()));
    set.add(stop);
    void stop.finally(() => {
      set.delete(stop);
      if (!set.size) this.stopping.delete(chatId);
    }).catch(() => undefined);
    return stop;
  }

  /** Counts a handled stop and keeps its latency in the bounded window. */
  private noteStop(t0: number): void {
    this.metrics.stopsHandled++;
    pushBounded(this.metrics.stopLatencyMs, performance.now() - t0, this.stopLatencyWindow);
  }

  private async surfaceFor(msg: Message): Promise<ReplySurface> {
    const threadId = msg.is_topic_message ? msg.message_thread_id : undefined;
    // The core need not plan edits faster than the chat can take them.
    const minEditIntervalMs = Math.max(this.config.minEditIntervalMs, this.pacer.gapFor(msg.chat.id));
    const base = { api: this.bot.api, pacer: this.pacer, chatId: msg.chat.id, threadId, replyToMessageId: msg.message_id, minEditIntervalMs, parts: this.parts, pending: this.pending };
    if (this.config.privateDrafts && msg.chat.type === "private") return new TelegramDraftSurface({ ...base, registry: this.drafts });
    // In a group a reaction reaches the bot only if it is an admin and the reaction is allowed:
    // where it cannot, the reply carries a Stop button (the first reply there also says why).
    const stopButton = GroupChecks.isGroup(msg.chat) && !(await this.groups.verdict(msg.chat.id, threadId)).reactionsWork;
    return new TelegramReplySurface({ ...base, stopButton });
  }

  private threadRef(msg: Message): ThreadRef {
    const chatId = String(msg.chat.id);
    const topic = msg.is_topic_message && msg.message_thread_id !== undefined ? String(msg.message_thread_id) : chatId;
    return { platform: TELEGRAM, chatId, threadId: topic };
  }

  /** A notice as a reply to the message that caused it (Telegram has no ephemeral messages). */
  private async reply(ctx: Context, text: string, to: Message | undefined = ctx.msg): Promise<void> {
    if (!ctx.chat) return;
    const thread = to ? (to.is_topic_message ? to.message_thread_id : undefined) : threadOf(ctx).message_thread_id;
    await this.send(ctx.chat.id, text, to?.message_id, thread);
  }

  private async send(chatId: number, text: string, replyTo?: number, threadId?: number): Promise<void> {
    try {
      await this.pacer.run(chatId, () =>
        this.bot.api.sendMessage(chatId, text.slice(0, 4096), {
          ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
          ...(replyTo !== undefined ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}),
        }),
      );
    } catch (err) {
      this.log.warn({ chatId, err: String(err) }, "telegram: notice not delivered");
    }
  }

  private track(task: Promise<unknown>): void {
    const t = task.catch((err) => this.log.error({ err: String(err) }, "telegram: background task failed"));
    this.inflight.add(t);
    void t.finally(() => this.inflight.delete(t));
  }
}

function addedEmoji(old: ReactionType[], now: ReactionType[]): string[] {
  const before = new Set(old.filter((r) => r.type === "emoji").map((r) => (r as { emoji: string }).emoji));
  return now.filter((r) => r.type === "emoji" && !before.has((r as { emoji: string }).emoji)).map((r) => (r as { emoji: string }).emoji);
}
