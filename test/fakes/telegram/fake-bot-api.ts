/**
 * A fake Telegram Bot API server on 127.0.0.1 for tests and the benchmark.
 *
 * Owns: the part of the Bot API steerbot uses (getMe, getUpdates long polling, sendMessage,
 * editMessageText, sendMessageDraft, sendPhoto (multipart upload, as grammY sends an
 * `InputFile`), editMessageReplyMarkup, getChat (with `available_reactions`), setMessageReaction, deleteMessage, createForumTopic, answerCallbackQuery,
 * setMyCommands, getChatMember, setWebhook/deleteWebhook), a record of
 * every message state a user would have seen, injection of user updates (messages, replies with
 * quotes, reactions, button presses, draft stops, duplicates), and fault injection (per-chat 429
 * with `retry_after`, bot removed from a chat, one-off failures).
 *
 * A real grammY `Bot` talks to it with `client: { apiRoot: fake.apiRoot }`, so the adapter is
 * tested through the same HTTP/JSON it uses against Telegram.
 */
import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type ChatType = "private" | "group" | "supergroup";

export interface FakeUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}

export interface FakeChat {
  id: number;
  type: ChatType;
  title?: string;
  first_name?: string;
  is_forum?: boolean;
}

/** One message as the fake holds it; `versions` is every text the message showed, in order. */
export interface FakeMessage {
  chatId: number;
  message_id: number;
  from: FakeUser;
  text: string;
  versions: string[];
  date: number;
  message_thread_id?: number;
  reply_to_message_id?: number;
  deleted: boolean;
  reply_markup?: unknown;
  /** A photo message (sendPhoto): `text` is then its caption. */
  photo?: FakePhoto;
}

/** A photo the bot uploaded, with the bytes it sent. */
export interface FakePhoto {
  file_id: string;
  filename: string;
  bytes: Buffer;
  width: number;
  height: number;
}

export interface FakeDraft {
  chatId: number;
  draftId: number;
  message_thread_id?: number;
  versions: string[];
  can_stop: boolean;
}

/** Every Bot API call the fake answered, for assertions and figures. */
export interface ApiCall {
  method: string;
  payload: Record<string, unknown>;
  at: number;
  /** Error code answered, if the call failed. */
  error?: number;
}

export interface RateLimitOptions {
  /** Counted methods (sendMessage, editMessageText, sendMessageDraft) allowed per chat per window. */
  perChat: number;
  windowMs: number;
  /** `parameters.retry_after` answered, in seconds. */
  retryAfter: number;
  /** Counted calls a group (negative chat id) may take per minute (Telegram: 20). Unset: no group limit. */
  perGroupPerMinute?: number;
  /** Counted calls across all chats per second (Telegram: about 30). Unset: no global limit. */
  globalPerSecond?: number;
}

/** The limits Telegram documents for bots: ~1 message/s per chat, 20/min per group, ~30/s overall. */
export const TELEGRAM_LIMITS: RateLimitOptions = { perChat: 1, windowMs: 1000, retryAfter: 1, perGroupPerMinute: 20, globalPerSecond: 30 };

export interface FakeBotApiOptions {
  token?: string;
  botUsername?: string;
  rateLimit?: RateLimitOptions;
  /**
   * Time each send/edit/draft call takes, ms (a slow network; the model then runs ahead). The
   * change is applied half-way: users see it (and may react to it) while the bot still waits
   * for the answer, as with the real service.
   */
  latencyMs?: number;
  /** How long a draft stays visible after its last update (Bot API: a 30-second preview). */
  draftTtlMs?: number;
}

interface Waiter {
  resolve: (updates: unknown[]) => void;
  timer: NodeJS.Timeout;
  offset: number;
  limit: number;
  allowed: string[] | undefined;
}

/** Telegram's default when `allowed_updates` was never given: everything but these. */
const NOT_DEFAULT_UPDATES = new Set(["chat_member", "message_reaction", "message_reaction_count"]);
const RATE_LIMITED = new Set(["sendMessage", "editMessageText", "editMessageReplyMarkup", "sendMessageDraft", "sendPhoto"]);

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: Record<string, unknown>,
  ) {
    super(description);
  }
}

/** The fake server. `start()` it, point grammY at `apiRoot`, `close()` it after the test. */
export class FakeBotApi extends EventEmitter {
  readonly token: string;
  readonly bot: FakeUser;
  readonly calls: ApiCall[] = [];
  /** Every getUpdates call (kept apart from `calls`: a polling bot makes one a second), with its error code if it failed. */
  readonly polls: ApiCall[] = [];
  readonly chats = new Map<number, FakeChat>();
  readonly messages = new Map<string, FakeMessage>();
  readonly drafts = new Map<string, FakeDraft>();
  readonly callbackAnswers: { callback_query_id: string; text?: string; at: number }[] = [];
  /** Open callback queries: id → when the button was pressed. */
  private readonly callbackQueries = new Map<string, number>();
  readonly botReactions: { chatId: number; messageId: number; reaction: unknown }[] = [];
  commands: unknown[] = [];
  webhook: { url: string; secret_token?: string; allowed_updates?: string[] } | undefined;
  rateLimit: RateLimitOptions | undefined;
  latencyMs: number;
  draftTtlMs: number;
  /** Number of 429s answered. */
  throttled = 0;

  private server: http.Server | undefined;
  private port = 0;
  private updates: { update_id: number; [k: string]: unknown }[] = [];
  private nextUpdateId = 1;
  private nextMessageIdByChat = new Map<number, number>();
  private nextTopicId = 1000;
  private nextCallbackId = 1;
  private waiters = new Set<Waiter>();
  private allowedUpdates: string[] | undefined;
  private recentByChat = new Map<number, number[]>();
  private removedFrom = new Set<number>();
  private memberStatus = new Map<string, string>();
  private failures: { method: string; code: number; description: string; times: number }[] = [];

  constructor(opts: FakeBotApiOptions = {}) {
    super();
    this.token = opts.token ?? "123456:TEST-TOKEN";
    this.bot = { id: Number(this.token.split(":")[0]), is_bot: true, first_name: "Steerbot", username: opts.botUsername ?? "steer_test_bot" };
    this.rateLimit = opts.rateLimit;
    this.latencyMs = opts.latencyMs ?? 0;
    this.draftTtlMs = opts.draftTtlMs ?? 30_000;
    this.setMaxListeners(1000);
  }

  get apiRoot(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const t of this.draftTimers.values()) clearTimeout(t);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve([]);
    }
    this.waiters.clear();
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- chats and users

  addChat(chat: FakeChat): FakeChat {
    this.chats.set(chat.id, chat);
    return chat;
  }

  privateChat(user: FakeUser): FakeChat {
    return this.addChat({ id: user.id, type: "private", first_name: user.first_name });
  }

  /** Sets a user's status in a chat as getChatMember reports it ("member", "administrator", "creator"). */
  setMemberStatus(chatId: number, userId: number, status: string): void {
    this.memberStatus.set(`${chatId}:${userId}`, status);
  }

  /**
   * Makes the bot an administrator of a group (or takes that back). Telegram sends
   * `message_reaction` updates of a group only to bots that are its administrators.
   */
  setBotAdmin(chatId: number, admin = true): void {
    this.setMemberStatus(chatId, this.bot.id, admin ? "administrator" : "member");
  }

  /** Whether the bot is an administrator of `chatId` (always true for private chats). */
  botIsAdmin(chatId: number): boolean {
    if (this.chats.get(chatId)?.type === "private") return true;
    const st = this.memberStatus.get(`${chatId}:${this.bot.id}`);
    return st === "administrator" || st === "creator";
  }

  /** Reactions users may set in a chat (`ChatFullInfo.available_reactions`); undefined: all. */
  setAvailableReactions(chatId: number, emoji: string[] | undefined): void {
    if (emoji === undefined) this.availableReactions.delete(chatId);
    else this.availableReactions.set(chatId, emoji);
  }
  private availableReactions = new Map<number, string[]>();

  /** From now on every call for this chat answers 403 (the bot was removed / blocked). */
  removeBotFrom(chatId: number): void {
    this.removedFrom.add(chatId);
  }

  /** The user deletes a message: later edits answer "message to edit not found". */
  deleteByUser(chatId: number, messageId: number): void {
    const m = this.messages.get(`${chatId}:${messageId}`);
    if (m) m.deleted = true;
  }

  /** The next `times` calls of `method` fail with this error. */
  failNext(method: string, code: number, description: string, times = 1): void {
    this.failures.push({ method, code, description, times });
  }

  // ---------------------------------------------------------------- what users see

  message(chatId: number, messageId: number): FakeMessage | undefined {
    return this.messages.get(`${chatId}:${messageId}`);
  }

  /** Messages the bot sent to a chat (optionally one topic), oldest first, deleted ones left out. */
  botMessages(chatId: number, threadId?: number): FakeMessage[] {
    return [...this.messages.values()].filter(
      (m) => m.chatId === chatId && m.from.id === this.bot.id && !m.deleted && (threadId === undefined || m.message_thread_id === threadId),
    );
  }

  /** Text of the whole chat as a user sees it now (bot and user messages, in order). */
  transcript(chatId: number): string[] {
    return [...this.messages.values()].filter((m) => m.chatId === chatId && !m.deleted).map((m) => `${m.from.is_bot ? "bot" : m.from.first_name}: ${m.text}`);
  }

  callsOf(method: string): ApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Resolves when `predicate` holds (checked after every state change), or rejects after `timeoutMs`. */
  waitFor<T>(predicate: () => T | undefined | false | null, timeoutMs = 10_000, what = "condition"): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = predicate();
        if (v) {
          cleanup();
          resolve(v);
          return true;
        }
        return false;
      };
      const onChange = (): void => void check();
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`fake Bot API: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      // Also poll: the condition may depend on state outside the fake (the core's).
      const poll = setInterval(onChange, 20);
      const cleanup = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.off("change", onChange);
      };
      this.on("change", onChange);
      check();
    });
  }

  // ---------------------------------------------------------------- injecting updates

  /** A user writes a message. Returns the message as Telegram would deliver it. */
  userSends(
    chat: FakeChat,
    user: FakeUser,
    text: string,
    opts: { replyTo?: number; quote?: { text: string; position: number }; threadId?: number; entities?: unknown[] } = {},
  ): Record<string, unknown> {
    const message_id = this.allocMessageId(chat.id);
    const stored: FakeMessage = {
      chatId: chat.id,
      message_id,
      from: user,
      text,
      versions: [text],
      date: now(),
      message_thread_id: opts.threadId,
      reply_to_message_id: opts.replyTo,
      deleted: false,
    };
    this.messages.set(`${chat.id}:${message_id}`, stored);
    const msg: Record<string, unknown> = { message_id, from: user, chat, date: stored.date, text };
    if (opts.entities) msg.entities = opts.entities;
    else {
      // Telegram clients mark a leading /command with a bot_command entity.
      const cmd = /^\/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?/.exec(text);
      if (cmd) msg.entities = [{ type: "bot_command", offset: 0, length: cmd[0].length }];
    }
    if (opts.threadId !== undefined) {
      msg.message_thread_id = opts.threadId;
      msg.is_topic_message = true;
    }
    if (opts.replyTo !== undefined) {
      const target = this.messages.get(`${chat.id}:${opts.replyTo}`);
      if (target) msg.reply_to_message = this.toApiMessage(target);
    } else if (opts.threadId !== undefined) {
      // Telegram sets reply_to_message to the topic's service message for topic messages.
      msg.reply_to_message = { message_id: opts.threadId, chat, date: stored.date, forum_topic_created: { name: "topic", icon_color: 0 } };
    }
    if (opts.quote) msg.quote = { text: opts.quote.text, position: opts.quote.position, is_manual: true };
    this.pushUpdate({ message: msg });
    return msg;
  }

  /**
   * A user changes their reaction on a message (emoji lists, as Telegram reports them).
   * As in Telegram clients, a reaction the chat does not allow (`available_reactions`) cannot be
   * set, and a bot's reaction is no update: both return 0 and queue nothing.
   */
  userReacts(chat: FakeChat, user: FakeUser, messageId: number, newEmoji: string[], oldEmoji: string[] = []): number {
    const allowed = chat.type === "private" ? undefined : this.availableReactions.get(chat.id);
    if (allowed && newEmoji.some((e) => !oldEmoji.includes(e) && !allowed.includes(e))) return 0;
    if (user.is_bot) return 0;
    return this.pushUpdate({
      message_reaction: {
        chat,
        message_id: messageId,
        user,
        date: now(),
        old_reaction: oldEmoji.map((emoji) => ({ type: "emoji", emoji })),
        new_reaction: newEmoji.map((emoji) => ({ type: "emoji", emoji })),
      },
    });
  }

  /** A user presses an inline button of a bot message. Returns the callback query id. */
  userPresses(chat: FakeChat, user: FakeUser, messageId: number, data: string): string {
    const id = String(this.nextCallbackId++);
    this.callbackQueries.set(id, Date.now());
    const m = this.messages.get(`${chat.id}:${messageId}`);
    this.pushUpdate({
      callback_query: { id, from: user, chat_instance: String(chat.id), data, message: m ? this.toApiMessage(m) : { message_id: messageId, chat, date: now() } },
    });
    return id;
  }

  /** A user presses the stop button of a streamed draft (private chats). */
  userStopsDraft(chat: FakeChat, draftId: number, threadId?: number): number {
    return this.pushUpdate({ stopped_message_generation: { chat, draft_id: draftId, ...(threadId !== undefined ? { message_thread_id: threadId } : {}) } });
  }

  /** Queues a raw update (an id is assigned). Returns the update id. */
  pushUpdate(body: Record<string, unknown>): number {
    const update = { update_id: this.nextUpdateId++, ...body };
    this.updates.push(update);
    this.flushWaiters();
    this.emit("change");
    return update.update_id;
  }

  /**
   * A queued update as Telegram would send it (until a getUpdates offset confirmed it): what a
   * test posts to webhooks itself, e.g. to several instances behind a load balancer.
   */
  update(updateId: number): { update_id: number; [k: string]: unknown } | undefined {
    return this.updates.find((u) => u.update_id === updateId);
  }

  /** The id of the last update queued (0 before the first): the bot has seen them all once it handled 1..lastUpdateId. */
  get lastUpdateId(): number {
    return this.nextUpdateId - 1;
  }

  /** Updates not yet confirmed by a later getUpdates offset. */
  get pendingUpdates(): number {
    return this.updates.length;
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const m = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? "");
    const body = await readBody(req);
    if (!m) return send(res, 404, { ok: false, error_code: 404, description: "Not Found" });
    const [, token, method] = m as unknown as [string, string, string];
    if (token !== this.token) return send(res, 401, { ok: false, error_code: 401, description: "Unauthorized" });
    let payload: Record<string, unknown> = {};
    let files = new Map<string, { filename: string; bytes: Buffer }>();
    const multipart = /^multipart\/form-data;\s*boundary=(.+)$/i.exec(req.headers["content-type"] ?? "");
    try {
      if (multipart) ({ fields: payload, files } = parseMultipart(body, multipart[1]!.replace(/^"|"$/g, "")));
      else payload = body.length ? (JSON.parse(body.toString("utf8")) as Record<string, unknown>) : {};
    } catch {
      return send(res, 400, { ok: false, error_code: 400, description: "Bad Request: can't parse request body" });
    }
    const call: ApiCall = { method, payload, at: Date.now() };
    if (method !== "getUpdates") this.calls.push(call);
    else this.polls.push(call);
    try {
      const result = await this.dispatch(method, payload, req, res, files);
      if (res.writableEnded || res.destroyed) return;
      send(res, 200, { ok: true, result });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      call.error = e.code;
      send(res, e.code, { ok: false, error_code: e.code, description: e.description, ...(e.parameters ? { parameters: e.parameters } : {}) });
    } finally {
      if (method !== "getUpdates") this.emit("change");
    }
  }

  private async dispatch(
    method: string,
    p: Record<string, unknown>,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    uploads: Map<string, { filename: string; bytes: Buffer }>,
  ): Promise<unknown> {
    const failure = this.failures.find((f) => f.method === method && f.times > 0);
    if (failure) {
      failure.times--;
      throw new ApiError(failure.code, failure.description);
    }
    const chatId = p.chat_id === undefined ? undefined : Number(p.chat_id);
    if (chatId !== undefined && this.removedFrom.has(chatId)) throw new ApiError(403, "Forbidden: bot was kicked from the group chat");
    if (chatId !== undefined && RATE_LIMITED.has(method)) {
      this.checkRate(chatId);
      if (this.latencyMs > 0) {
        // The request travels, Telegram applies it, the answer travels back: for half the
        // latency users already see the change (and may react to it) while the bot waits.
        await sleep(this.latencyMs / 2);
        const result = this.answer(method, p, req, res, uploads, chatId);
        this.emit("change");
        await sleep(this.latencyMs / 2);
        return result;
      }
    }
    return this.answer(method, p, req, res, uploads, chatId);
  }

  private answer(
    method: string,
    p: Record<string, unknown>,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    uploads: Map<string, { filename: string; bytes: Buffer }>,
    chatId: number | undefined,
  ): unknown {
    switch (method) {
      case "getMe":
        return { ...this.bot, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false };
      case "getUpdates":
        return this.getUpdates(p, req, res);
      case "sendMessage":
        return this.sendMessage(p);
      case "editMessageText":
        return this.editMessageText(p);
      case "editMessageReplyMarkup":
        return this.editMessageReplyMarkup(p);
      case "sendMessageDraft":
        return this.sendMessageDraft(p);
      case "sendPhoto":
        return this.sendPhoto(p, uploads);
      case "deleteMessage": {
        const msg = this.requireMessage(p, "Bad Request: message to delete not found");
        msg.deleted = true;
        return true;
      }
      case "setMessageReaction":
        this.botReactions.push({ chatId: chatId!, messageId: Number(p.message_id), reaction: p.reaction });
        return true;
      case "createForumTopic": {
        const chat = this.requireChat(p);
        if (!chat.is_forum) throw new ApiError(400, "Bad Request: the chat is not a forum");
        return { message_thread_id: this.nextTopicId++, name: String(p.name), icon_color: 7322096 };
      }
      case "answerCallbackQuery": {
        // Telegram: a query must be answered within about 15 s ("query is too old") and only once.
        const id = String(p.callback_query_id);
        const asked = this.callbackQueries.get(id);
        if (!asked || Date.now() - asked > 15_000) throw new ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
        this.callbackQueries.delete(id);
        this.callbackAnswers.push({ callback_query_id: id, text: p.text as string | undefined, at: Date.now() });
        return true;
      }
      case "getChat": {
        const chat = this.requireChat(p);
        const avail = this.availableReactions.get(chat.id);
        return { ...chat, ...(avail ? { available_reactions: avail.map((emoji) => ({ type: "emoji", emoji })) } : {}) };
      }
      case "setMyCommands":
        this.commands = (p.commands as unknown[]) ?? [];
        return true;
      case "getChatMember": {
        const chat = this.requireChat(p);
        const userId = Number(p.user_id);
        const status = chat.type === "private" ? "member" : (this.memberStatus.get(`${chat.id}:${userId}`) ?? "member");
        if (userId === this.bot.id) return { status, user: this.bot };
        return { status, user: { id: userId, is_bot: false, first_name: `user${userId}` } };
      }
      case "setWebhook":
        this.webhook = { url: String(p.url), secret_token: p.secret_token as string | undefined, allowed_updates: p.allowed_updates as string[] | undefined };
        if (Array.isArray(p.allowed_updates)) this.allowedUpdates = p.allowed_updates as string[];
        return true;
      case "deleteWebhook":
        this.webhook = undefined;
        return true;
      default:
        throw new ApiError(404, `Not Found: method ${method} is not in the fake`);
    }
  }

  /** The next `count` sends/edits (any chat) are answered 429 with this `retry_after`, seconds. */
  storm(count: number, retryAfter = 1): void {
    this.stormLeft = count;
    this.stormRetryAfter = retryAfter;
  }
  private stormLeft = 0;
  private stormRetryAfter = 1;

  private checkRate(chatId: number): void {
    if (this.stormLeft > 0) {
      this.stormLeft--;
      this.throttled++;
      throw new ApiError(429, `Too Many Requests: retry after ${this.stormRetryAfter}`, { retry_after: this.stormRetryAfter });
    }
    const rl = this.rateLimit;
    if (!rl) return;
    const t = Date.now();
    const recent = (this.recentByChat.get(chatId) ?? []).filter((x) => t - x < rl.windowMs);
    if (recent.length >= rl.perChat) {
      this.recentByChat.set(chatId, recent);
      this.throttled++;
      throw new ApiError(429, `Too Many Requests: retry after ${rl.retryAfter}`, { retry_after: rl.retryAfter });
    }
    const limit429 = (): never => {
      this.throttled++;
      throw new ApiError(429, `Too Many Requests: retry after ${rl.retryAfter}`, { retry_after: rl.retryAfter });
    };
    if (rl.perGroupPerMinute !== undefined && chatId < 0) {
      const minute = (this.recentMinuteByChat.get(chatId) ?? []).filter((x) => t - x < 60_000);
      this.recentMinuteByChat.set(chatId, minute);
      if (minute.length >= rl.perGroupPerMinute) limit429();
      minute.push(t);
    }
    if (rl.globalPerSecond !== undefined) {
      this.recentGlobal = this.recentGlobal.filter((x) => t - x < 1000);
      if (this.recentGlobal.length >= rl.globalPerSecond) limit429();
      this.recentGlobal.push(t);
    }
    recent.push(t);
    this.recentByChat.set(chatId, recent);
  }
  private recentMinuteByChat = new Map<number, number[]>();
  private recentGlobal: number[] = [];

  private getUpdates(p: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown[]> | unknown[] {
    const offset = Number(p.offset ?? 0);
    const limit = Math.min(100, Math.max(1, Number(p.limit ?? 100)));
    const timeout = Number(p.timeout ?? 0);
    if (this.webhook) throw new ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    if (Array.isArray(p.allowed_updates)) this.allowedUpdates = p.allowed_updates as string[];
    if (offset > 0) {
      this.updates = this.updates.filter((u) => u.update_id >= offset);
    }
    const ready = this.take(offset, limit);
    if (ready.length || timeout <= 0) return ready;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve: (u) => {
          this.waiters.delete(waiter);
          clearTimeout(waiter.timer);
          resolve(u);
        },
        timer: setTimeout(() => waiter.resolve([]), timeout * 1000),
        offset,
        limit,
        allowed: this.allowedUpdates,
      };
      this.waiters.add(waiter);
      const gone = (): void => {
        if (!res.writableEnded) waiter.resolve([]);
      };
      req.on("close", gone);
      res.on("close", gone);
    });
  }

  private take(offset: number, limit: number): unknown[] {
    const allowed = this.allowedUpdates;
    const out: unknown[] = [];
    for (const u of this.updates) {
      if (u.update_id < offset) continue;
      const kind = Object.keys(u).find((k) => k !== "update_id")!;
      const ok = allowed && allowed.length ? allowed.includes(kind) : !NOT_DEFAULT_UPDATES.has(kind);
      if (!ok) continue;
      // Bot API: `message_reaction` reaches a bot only if it is an administrator of the chat.
      if (kind === "message_reaction" && !this.botIsAdmin(Number((u.message_reaction as { chat: FakeChat }).chat.id))) continue;
      out.push(u);
      if (out.length >= limit) break;
    }
    return out;
  }

  private flushWaiters(): void {
    for (const w of [...this.waiters]) {
      const ready = this.take(w.offset, w.limit);
      if (ready.length) w.resolve(ready);
    }
  }

  private sendMessage(p: Record<string, unknown>): unknown {
    const chat = this.requireChat(p);
    // Like Telegram: leading and trailing whitespace is stripped, the length limit is 4096.
    const text = String(p.text ?? "").trim();
    if (!text.length) throw new ApiError(400, "Bad Request: message text is empty");
    if (text.length > 4096) throw new ApiError(400, "Bad Request: message is too long");
    const threadId = p.message_thread_id === undefined ? undefined : Number(p.message_thread_id);
    if (threadId !== undefined && !chat.is_forum) throw new ApiError(400, "Bad Request: message thread not found");
    const rp = p.reply_parameters as { message_id?: number } | undefined;
    const message_id = this.allocMessageId(chat.id);
    const msg: FakeMessage = {
      chatId: chat.id,
      message_id,
      from: this.bot,
      text,
      versions: [text],
      date: now(),
      message_thread_id: threadId,
      reply_to_message_id: rp?.message_id,
      deleted: false,
      reply_markup: p.reply_markup,
    };
    this.messages.set(`${chat.id}:${message_id}`, msg);
    // A real message ends any draft of the chat.
    for (const [k, d] of this.drafts) {
      if (d.chatId !== chat.id) continue;
      this.drafts.delete(k);
      clearTimeout(this.draftTimers.get(k));
      this.draftTimers.delete(k);
    }
    return this.toApiMessage(msg);
  }

  private editMessageText(p: Record<string, unknown>): unknown {
    const msg = this.requireMessage(p, "Bad Request: message to edit not found");
    const text = String(p.text ?? "").trim();
    if (!text.length) throw new ApiError(400, "Bad Request: message text is empty");
    if (text.length > 4096) throw new ApiError(400, "Bad Request: MESSAGE_TOO_LONG");
    if (msg.from.id !== this.bot.id) throw new ApiError(400, "Bad Request: message can't be edited");
    if (text === msg.text && JSON.stringify(p.reply_markup ?? null) === JSON.stringify(msg.reply_markup ?? null)) {
      throw new ApiError(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    }
    msg.text = text;
    msg.versions.push(text);
    // Bot API: the edit's reply_markup is the message's inline keyboard from now on; an edit
    // without one removes the keyboard (a bot that forgets it loses its buttons mid-stream).
    msg.reply_markup = p.reply_markup;
    return this.toApiMessage(msg);
  }

  private editMessageReplyMarkup(p: Record<string, unknown>): unknown {
    const msg = this.requireMessage(p, "Bad Request: message to edit not found");
    if (msg.from.id !== this.bot.id) throw new ApiError(400, "Bad Request: message can't be edited");
    if (JSON.stringify(p.reply_markup ?? null) === JSON.stringify(msg.reply_markup ?? null)) {
      throw new ApiError(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    }
    msg.reply_markup = p.reply_markup;
    return this.toApiMessage(msg);
  }

  private nextFileId = 1;

  /** Photos the bot sent, in order (their messages are also in `messages`). */
  readonly photos: (FakePhoto & { chatId: number; message_id: number })[] = [];

  private sendPhoto(p: Record<string, unknown>, uploads: Map<string, { filename: string; bytes: Buffer }>): unknown {
    const chat = this.requireChat(p);
    const ref = String(p.photo ?? "");
    let photo: FakePhoto | undefined;
    if (ref.startsWith("attach://")) {
      const file = uploads.get(ref.slice("attach://".length));
      if (!file) throw new ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified");
      const size = imageSize(file.bytes);
      if (!size) throw new ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED");
      photo = { file_id: `photo-${this.nextFileId++}`, filename: file.filename, bytes: file.bytes, ...size };
    } else {
      // Re-sending a file_id the fake handed out before.
      photo = this.photos.find((x) => x.file_id === ref);
      if (!photo) throw new ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified");
    }
    const caption = String(p.caption ?? "").trim();
    if (caption.length > 1024) throw new ApiError(400, "Bad Request: message caption is too long");
    const threadId = p.message_thread_id === undefined ? undefined : Number(p.message_thread_id);
    if (threadId !== undefined && !chat.is_forum) throw new ApiError(400, "Bad Request: message thread not found");
    const rp = typeof p.reply_parameters === "object" ? (p.reply_parameters as { message_id?: number }) : undefined;
    const message_id = this.allocMessageId(chat.id);
    const msg: FakeMessage = {
      chatId: chat.id,
      message_id,
      from: this.bot,
      text: caption,
      versions: [caption],
      date: now(),
      message_thread_id: threadId,
      reply_to_message_id: rp?.message_id,
      deleted: false,
      reply_markup: p.reply_markup,
      photo,
    };
    this.messages.set(`${chat.id}:${message_id}`, msg);
    this.photos.push({ ...photo, chatId: chat.id, message_id });
    return this.toApiMessage(msg);
  }

  private sendMessageDraft(p: Record<string, unknown>): true {
    const chat = this.requireChat(p);
    if (chat.type !== "private") throw new ApiError(400, "Bad Request: drafts can be sent only to private chats");
    const draftId = Number(p.draft_id);
    if (!draftId) throw new ApiError(400, "Bad Request: draft_id must be non-zero");
    const text = String(p.text ?? "");
    if (text.length > 4096) throw new ApiError(400, "Bad Request: text is too long");
    const key = `${chat.id}:${draftId}`;
    const d = this.drafts.get(key) ?? { chatId: chat.id, draftId, versions: [], can_stop: false };
    d.versions.push(text);
    d.can_stop = Boolean(p.can_stop);
    // A draft is a temporary preview: it vanishes this long after its last update.
    clearTimeout(this.draftTimers.get(key));
    this.draftTimers.set(key, setTimeout(() => {
      this.drafts.delete(key);
      this.draftTimers.delete(key);
      this.expiredDrafts.push({ chatId: chat.id, draftId });
      this.emit("change");
    }, this.draftTtlMs).unref());
    if (p.message_thread_id !== undefined) d.message_thread_id = Number(p.message_thread_id);
    this.drafts.set(key, d);
    this.draftHistory.push({ chatId: chat.id, draftId, text });
    return true;
  }

  private readonly draftTimers = new Map<string, NodeJS.Timeout>();
  /** Drafts that expired (no update for `draftTtlMs`) before a message replaced them. */
  readonly expiredDrafts: { chatId: number; draftId: number }[] = [];

  /** Every draft text ever shown, in order (drafts vanish once a message is sent). */
  readonly draftHistory: { chatId: number; draftId: number; text: string }[] = [];

  private requireChat(p: Record<string, unknown>): FakeChat {
    const chat = this.chats.get(Number(p.chat_id));
    if (!chat) throw new ApiError(400, "Bad Request: chat not found");
    return chat;
  }

  private requireMessage(p: Record<string, unknown>, notFound: string): FakeMessage {
    this.requireChat(p);
    const msg = this.messages.get(`${Number(p.chat_id)}:${Number(p.message_id)}`);
    if (!msg || msg.deleted) throw new ApiError(400, notFound);
    return msg;
  }

  private allocMessageId(chatId: number): number {
    const id = this.nextMessageIdByChat.get(chatId) ?? 1;
    this.nextMessageIdByChat.set(chatId, id + 1);
    return id;
  }

  private toApiMessage(m: FakeMessage): Record<string, unknown> {
    const chat = this.chats.get(m.chatId)!;
    const out: Record<string, unknown> = { message_id: m.message_id, from: m.from, chat, date: m.date };
    if (m.photo) {
      const { file_id, width, height, bytes } = m.photo;
      out.photo = [{ file_id, file_unique_id: file_id, width, height, file_size: bytes.length }];
      if (m.text) out.caption = m.text;
    } else out.text = m.text;
    if (m.message_thread_id !== undefined) {
      out.message_thread_id = m.message_thread_id;
      out.is_topic_message = true;
    }
    if (m.reply_markup !== undefined) out.reply_markup = m.reply_markup;
    return out;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * A multipart/form-data body as grammY writes it: plain fields (objects JSON-encoded) and file
 * parts named by the `attach://<name>` references in the fields.
 */
function parseMultipart(body: Buffer, boundary: string): { fields: Record<string, unknown>; files: Map<string, { filename: string; bytes: Buffer }> } {
  const fields: Record<string, unknown> = {};
  const files = new Map<string, { filename: string; bytes: Buffer }>();
  const delim = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delim);
  if (at < 0) throw new Error("no boundary");
  for (;;) {
    let start = at + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break; // closing delimiter
    if (body.subarray(start, start + 2).toString() === "\r\n") start += 2;
    const next = body.indexOf(delim, start);
    if (next < 0) throw new Error("unterminated part");
    let end = next;
    if (body.subarray(end - 2, end).toString() === "\r\n") end -= 2;
    const part = body.subarray(start, end);
    const sep = part.indexOf("\r\n\r\n");
    if (sep < 0) throw new Error("part without headers");
    const headers = part.subarray(0, sep).toString("utf8");
    const data = part.subarray(sep + 4);
    const disposition = /content-disposition:\s*form-data\s*;([^\r\n]*)/i.exec(headers)?.[1] ?? "";
    const name = /(?:^|;)\s*name="([^"]*)"/.exec(disposition)?.[1];
    const filename = /filename="?([^";]*)"?/.exec(disposition)?.[1];
    if (name === undefined) throw new Error("part without a name");
    if (filename !== undefined) files.set(name, { filename, bytes: Buffer.from(data) });
    else {
      const v = data.toString("utf8");
      fields[name] = /^[[{]/.test(v) ? JSON.parse(v) : v;
    }
    at = next;
  }
  return { fields, files };
}

/** Width and height of a PNG or JPEG; undefined for anything Telegram would not take as a photo. */
function imageSize(b: Buffer): { width: number; height: number } | undefined {
  if (b.length >= 24 && b.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))) return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    for (let i = 2; i + 9 < b.length; ) {
      if (b[i] !== 0xff) return undefined;
      const marker = b[i + 1]!;
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
      i += 2 + b.readUInt16BE(i + 2);
    }
  }
  return undefined;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

/** Makes test users with distinct ids. */
export function makeUser(id: number, name: string): FakeUser {
  return { id, is_bot: false, first_name: name, username: name.toLowerCase() };
}
