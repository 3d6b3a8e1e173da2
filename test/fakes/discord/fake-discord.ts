/**
 * A fake Discord on 127.0.0.1 that the real discord.js `Client` talks to.
 *
 * Owns: the REST v10 routes the bot uses (gateway info, @me, application commands, channel
 * messages, threads from messages, reactions, interaction callbacks and webhook follow-ups) with
 * real `X-RateLimit-*` headers and real 429s, the gateway (see fake-discord-gateway.ts), and the
 * "user side": helpers that post messages, react, run slash commands and click buttons the way
 * Discord would dispatch them. Every message keeps every version of its text, so tests assert
 * what a user would have seen.
 *
 * Documented limits it enforces, so a bot that ignores them fails here as it would on Discord:
 * send permissions per channel (403 50013), the 3 s initial-response deadline of an interaction
 * and its token's 15-minute life (on a clock tests can advance), threads only under text
 * channels (50024 elsewhere), link previews unless SUPPRESS_EMBEDS is set, the count of
 * invalid requests (401/403/429) that gets an IP banned at 10,000 in 10 minutes, and sharding
 * (see fake-discord-gateway.ts): a guild's events reach only the connection of its shard, DMs only
 * shard 0, an invalid shard is closed with 4010 and too few shards for the guilds with 4011.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { FakeDiscordGateway, type GuildsPerShard } from "./fake-discord-gateway.ts";
import {
  EPHEMERAL,
  FakeDiscordState,
  INITIAL_RESPONSE_DEADLINE_MS,
  INTERACTION_TOKEN_TTL_MS,
  snowflake,
  type FakeChannel,
  type FakeGuild,
  type FakeInteraction,
  type FakeMessage,
  type FakeUser,
} from "./fake-discord-state.ts";
import { RouteRateLimiter, type RateLimitRule } from "./route-rate-limiter.ts";

export interface FakeDiscordOptions {
  token?: string;
  /** Per-bucket limit; off by default (headers are still sent). */
  rateLimit?: RateLimitRule;
  /** Artificial latency added to every REST answer, ms. */
  latencyMs?: number;
  /**
   * `session_start_limit.max_concurrency` of GET /gateway/bot: IDENTIFYs allowed per 5 s per
   * bucket (`shard_id % max_concurrency`); one more is answered with op 9 Invalid Session, as
   * Discord does. Default 1, what most bots get.
   */
  maxConcurrency?: number;
  /** Guilds one shard may hold before IDENTIFY gets 4011 (Discord: 2500), and per recommended shard (Discord: 1000). */
  guildsPerShard?: Partial<GuildsPerShard>;
  /** `[id, count]`: the default guild lands on that shard of `count` (else wherever its id falls). */
  guildShard?: [number, number];
}

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  at: number;
}

type Handler = (req: IncomingMessage, params: string[], body: any, url: URL) => Promise<[number, unknown]> | [number, unknown];

interface Route {
  method: string;
  pattern: RegExp;
  /** Bucket template (Discord keys buckets by route + major parameter). */
  bucket: string;
  /** Index into params of the major parameter, or -1. */
  major: number;
  handler: Handler;
}

class ApiError {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly message: string,
  ) {}
}

/** Fake Discord server: REST + gateway + user-side helpers over one shared state. */
export class FakeDiscord {
  readonly state: FakeDiscordState;
  readonly token: string;
  readonly limiter: RouteRateLimiter;
  readonly requests: RequestLogEntry[] = [];
  latencyMs: number;
  readonly #server: Server;
  readonly #gateway: FakeDiscordGateway;
  readonly #routes: Route[] = [];
  #port = 0;

  /** Default cast: an admin, a trusted member, a plain member, a stranger. */
  readonly adminRole: string;
  readonly trustedRole: string;
  readonly general: FakeChannel;
  readonly noThreads: FakeChannel;
  /** A voice channel: it has a text chat, but no threads. */
  readonly voice: FakeChannel;
  /** Times of the invalid requests answered (401, 403, non-shared 429), on Date.now(). */
  readonly invalidRequests: number[] = [];

  constructor(options: FakeDiscordOptions = {}) {
    this.state = new FakeDiscordState({ guildShard: options.guildShard });
    this.token = options.token ?? "fake-bot-token";
    this.limiter = new RouteRateLimiter(options.rateLimit);
    this.latencyMs = options.latencyMs ?? 0;
    this.#gateway = new FakeDiscordGateway(this.state, this.token, {
      maxConcurrency: options.maxConcurrency ?? 1,
      guildsPerShard: { max: 2500, recommended: 1000, ...options.guildsPerShard },
    });
    this.adminRole = this.state.addRole("admin");
    this.trustedRole = this.state.addRole("trusted");
    this.general = this.state.addTextChannel("general");
    this.noThreads = this.state.addTextChannel("no-threads");
    this.state.threadsDenied.add(this.noThreads.id);
    this.voice = this.state.addTextChannel("voice", 2);
    this.#server = createServer((req, res) => void this.#onRequest(req, res));
    this.#server.on("upgrade", (req, socket, head) => {
      if (req.url?.startsWith("/gateway")) this.#gateway.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
    this.#defineRoutes();
  }

  get gateway(): FakeDiscordGateway {
    return this.#gateway;
  }

  /** REST base to hand to discord.js: `rest: { api: fake.apiUrl }`. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.#port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.#port}/gateway`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#gateway.url = this.gatewayUrl;
  }

  async close(): Promise<void> {
    this.#gateway.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- user side ------------------------------------------------------------------------------

  addUser(username: string, roles: string[] = []): FakeUser {
    return this.state.addUser(username, roles);
  }

  /**
   * The bot joins another guild (with a text channel "general"); `shard: [id, count]` puts it
   * on that shard of `count`. Connected shards that own it get its GUILD_CREATE, as on Discord.
   */
  addGuild(name: string, opts: { shard?: [number, number] } = {}): FakeGuild & { general: FakeChannel } {
    const guild = this.state.addGuild(name, opts);
    const general = this.state.addTextChannel("general", 0, guild.id);
    this.#gateway.dispatch("GUILD_CREATE", this.state.guildJSON(guild.id));
    return { ...guild, general };
  }

  /** A mention of the bot as a user would type it. */
  get mention(): string {
    return `<@${this.state.bot.id}>`;
  }

  /** A user posts a message (optionally as a reply); MESSAGE_CREATE is dispatched. */
  say(user: FakeUser, channel: FakeChannel | string, content: string, opts: { replyTo?: string } = {}): FakeMessage {
    const ch = typeof channel === "string" ? this.state.channels.get(channel)! : channel;
    const msg = this.state.addMessage({
      channelId: ch.id,
      guildId: ch.guildId,
      authorId: user.id,
      content,
      replyToId: opts.replyTo,
    });
    this.dispatchMessageCreate(msg);
    return msg;
  }

  /** Dispatches MESSAGE_CREATE for a stored message (call twice to simulate a duplicate). */
  dispatchMessageCreate(msg: FakeMessage): void {
    const user = this.state.users.get(msg.authorId)!;
    this.#gateway.dispatch("MESSAGE_CREATE", {
      ...this.state.messageJSON(msg),
      channel_type: this.state.channels.get(msg.channelId)?.type,
      ...(msg.guildId ? { member: this.state.memberJSON(user, false, msg.guildId) } : {}),
    });
  }

  /** A user adds a reaction; MESSAGE_REACTION_ADD is dispatched (`times` > 1 repeats it). */
  react(user: FakeUser, messageId: string, emoji: string, times = 1): void {
    const msg = this.state.messages.get(messageId)!;
    msg.reactions.push({ emoji, userId: user.id });
    const d = {
      user_id: user.id,
      channel_id: msg.channelId,
      message_id: msg.id,
      ...(msg.guildId ? { guild_id: msg.guildId, member: this.state.memberJSON(user, true, msg.guildId) } : {}),
      emoji: { id: null, name: emoji },
      burst: false,
      burst_colors: [],
      type: 0,
      message_author_id: msg.authorId,
    };
    for (let i = 0; i < times; i++) this.#gateway.dispatch("MESSAGE_REACTION_ADD", d);
  }

  /** A DM channel between a user and the bot. */
  dm(user: FakeUser): FakeChannel {
    return this.state.dmChannelFor(user);
  }

  /**
   * A user runs a slash command. `options` are the API option objects, e.g.
   * `[{ type: 3, name: "question", value: "hi" }]` or a subcommand `[{ type: 1, name: "pending" }]`.
   */
  slash(user: FakeUser, channel: FakeChannel | string, name: string, options: unknown[] = []): FakeInteraction {
    const ch = typeof channel === "string" ? this.state.channels.get(channel)! : channel;
    return this.#interaction(user, ch, 2, { id: snowflake(), name, type: 1, options });
  }

  /** A user clicks a button on a message. */
  click(user: FakeUser, messageId: string, customId: string): FakeInteraction {
    const msg = this.state.messages.get(messageId)!;
    const ch = this.state.channels.get(msg.channelId)!;
    return this.#interaction(user, ch, 3, { custom_id: customId, component_type: 2 }, msg);
  }

  #interaction(user: FakeUser, ch: FakeChannel, type: number, data: unknown, message?: FakeMessage): FakeInteraction {
    const s = this.state;
    const it: FakeInteraction = {
      id: snowflake(),
      token: `tok-${Math.random().toString(36).slice(2)}${Date.now()}`,
      type,
      userId: user.id,
      channelId: ch.id,
      guildId: ch.guildId,
      callbacks: [],
      followUpIds: [],
      sourceMessageId: message?.id,
      createdAt: s.now(),
    };
    s.interactions.set(it.id, it);
    this.#gateway.dispatch("INTERACTION_CREATE", {
      id: it.id,
      application_id: s.applicationId,
      type,
      data,
      ...(ch.guildId
        ? { guild_id: ch.guildId, guild_locale: "en-US", member: { ...s.memberJSON(user, true, ch.guildId), permissions: "2248473465835073" } }
        : { user: s.userJSON(user) }),
      channel_id: ch.id,
      channel: s.channelJSON(ch),
      token: it.token,
      version: 1,
      app_permissions: "2248473465835073",
      locale: "en-US",
      entitlements: [],
      authorizing_integration_owners: { "0": ch.guildId ?? user.id },
      context: ch.guildId ? 0 : 1,
      attachment_size_limit: 10485760,
      ...(message ? { message: s.messageJSON(message) } : {}),
    });
    return it;
  }

  /** Raw dispatch for scenarios the helpers do not cover. */
  dispatch(t: string, d: unknown): void {
    this.#gateway.dispatch(t, d);
  }

  /** Resolves once `check` returns a truthy value (polled), or rejects after `timeoutMs`. */
  async waitFor<T>(check: () => T | undefined | null | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      if (Date.now() > end) throw new Error(`FakeDiscord.waitFor timed out after ${timeoutMs}ms: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Moves the fake's clock forward (interaction deadlines and token expiry), without waiting. */
  advanceClock(ms: number): void {
    this.state.clockOffsetMs += ms;
  }

  /** Invalid requests in the last 10 minutes: Discord bans the IP at 10,000. */
  get invalidRequestCount(): number {
    const since = Date.now() - 10 * 60_000;
    return this.invalidRequests.filter((t) => t >= since).length;
  }

  /** Count of REST requests that matched `method` and a path fragment. */
  count(method: string, pathIncludes = ""): number {
    return this.requests.filter((r) => r.method === method && r.path.includes(pathIncludes)).length;
  }

  // ---- REST -------------------------------------------------------------------------------------

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = req.method ?? "GET";
    // "@original" / "@me" arrive percent-encoded.
    const path = url.pathname.replace(/^\/api\/v\d+/, "").replace(/%40/gi, "@");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: any = undefined;
    if (chunks.length) {
      const type = String(req.headers["content-type"] ?? "");
      // Multipart bodies hold binary files: read them byte for byte, decode the JSON part as UTF-8.
      const raw = Buffer.concat(chunks).toString(type.startsWith("multipart/form-data") ? "latin1" : "utf8");
      if (type.startsWith("multipart/form-data")) {
        const m = /name="payload_json"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)\r\n--/.exec(raw);
        body = m ? JSON.parse(Buffer.from(m[1], "latin1").toString("utf8")) : {};
        // Files travel as parts named files[n]; remember their names.
        body.__files = [...raw.matchAll(/name="files\[\d+\]"; filename="([^"]*)"/g)].map((f) => f[1]);
      } else {
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
    }
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const reply = (status: number, payload: unknown, headers: Record<string, string> = {}): void => {
      this.requests.push({ method, path, status, at: Date.now() });
      if (status === 401 || status === 403 || (status === 429 && headers["X-RateLimit-Scope"] !== "shared")) this.invalidRequests.push(Date.now());
      if (res.destroyed) return;
      if (status === 204 || payload === undefined) {
        res.writeHead(status === 200 ? 204 : status, headers);
        res.end();
        return;
      }
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(payload));
    };
    const route = this.#routes.find((r) => r.method === method && r.pattern.test(path));
    if (!route) {
      reply(404, { message: "404: Not Found", code: 0 });
      return;
    }
    const params = route.pattern.exec(path)!.slice(1);
    if (!this.#authorized(req, path)) {
      reply(401, { message: "401: Unauthorized", code: 0 });
      return;
    }
    const decision = this.limiter.take(`${method} ${route.bucket}`, route.major >= 0 ? params[route.major] : "");
    if (decision.limited) {
      reply(
        429,
        { message: "You are being rate limited.", retry_after: decision.retryAfter, global: false },
        decision.headers,
      );
      return;
    }
    try {
      const [status, payload] = await route.handler(req, params, body, url);
      reply(status, payload, decision.headers);
    } catch (err) {
      if (err instanceof ApiError) reply(err.status, { message: err.message, code: err.code }, decision.headers);
      else reply(500, { message: String(err), code: 0 }, decision.headers);
    }
  }

  #authorized(req: IncomingMessage, path: string): boolean {
    if (path.startsWith("/interactions/") || path.startsWith("/webhooks/")) return true;
    return req.headers.authorization === `Bot ${this.token}`;
  }

  #route(method: string, template: string, handler: Handler, major = -1): void {
    const pattern = new RegExp(`^${template.replace(/:[a-z]+/g, "([^/]+)")}$`);
    this.#routes.push({ method, pattern, bucket: template, major, handler });
  }

  #channel(id: string): FakeChannel {
    const ch = this.state.channels.get(id);
    if (!ch) throw new ApiError(404, 10003, "Unknown Channel");
    return ch;
  }

  #message(channelId: string, id: string): FakeMessage {
    const m = this.state.messages.get(id);
    if (!m || m.channelId !== channelId) throw new ApiError(404, 10008, "Unknown Message");
    return m;
  }

  #interactionByToken(token: string): FakeInteraction {
    for (const it of this.state.interactions.values()) if (it.token === token) return it;
    throw new ApiError(404, 10015, "Unknown Webhook");
  }

  /** Deletes a message as a moderator would (the bot's next edit gets 10008). */
  deleteMessage(id: string): void {
    this.state.messages.delete(id);
  }

  #botPost(channelId: string, body: any, extra: Partial<FakeMessage> = {}): FakeMessage {
    const ch = this.#channel(channelId);
    const content = typeof body?.content === "string" ? body.content : "";
    if (content.length > 2000) throw new ApiError(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.");
    const replyTo = body?.message_reference?.message_id as string | undefined;
    if (!extra.interactionId && this.#sendDenied(ch)) throw new ApiError(403, 50013, "Missing Permissions");
    return this.state.addMessage({
      channelId: ch.id,
      guildId: ch.guildId,
      authorId: this.state.bot.id,
      content,
      flags: Number(body?.flags ?? 0),
      components: Array.isArray(body?.components) ? body.components : [],
      replyToId: replyTo && this.state.messages.has(replyTo) ? replyTo : undefined,
      attachments: Array.isArray(body?.__files) ? body.__files : [],
      ...extra,
    });
  }

  /** Send Messages denied here; a thread inherits a denial of its parent (read-only channel). */
  #sendDenied(ch: FakeChannel): boolean {
    const denied = this.state.sendDenied;
    return denied.has(ch.id) || (ch.parentId !== undefined && denied.has(ch.parentId));
  }

  /** An interaction's token, refused once its 15 minutes are over. */
  #liveToken(token: string): FakeInteraction {
    const it = this.#interactionByToken(token);
    if (this.state.now() - it.createdAt > INTERACTION_TOKEN_TTL_MS) throw new ApiError(401, 50027, "Invalid Webhook Token");
    return it;
  }

  #defineRoutes(): void {
    const s = this.state;
    this.#route("GET", "/gateway/bot", () => [
      200,
      { url: this.gatewayUrl, shards: this.#gateway.recommendedShards, session_start_limit: this.#gateway.sessionStartLimit },
    ]);
    this.#route("GET", "/gateway", () => [200, { url: this.gatewayUrl }]);
    this.#route("GET", "/users/@me", () => [200, { ...s.userJSON(s.bot), verified: true, mfa_enabled: false, flags: 0 }]);
    this.#route("GET", "/applications/@me", () => [
      200,
      { id: s.applicationId, name: "steerbot", description: "", bot_public: true, bot_require_code_grant: false, flags: 0, bot: s.userJSON(s.bot) },
    ]);
    const putCommands = (guildId: string | undefined, body: any): [number, unknown] => {
      const commands = (Array.isArray(body) ? body : []).map((c: Record<string, unknown>) => ({
        ...c,
        id: snowflake(),
        application_id: s.applicationId,
        version: snowflake(),
        ...(guildId ? { guild_id: guildId } : {}),
      }));
      s.commandSets.push({ guildId, commands });
      return [200, commands];
    };
    this.#route("PUT", "/applications/:app/commands", (_r, _p, body) => putCommands(undefined, body), 0);
    this.#route("PUT", "/applications/:app/guilds/:guild/commands", (_r, p, body) => putCommands(p[1], body), 0);
    this.#route("GET", "/applications/:app/commands", () => [200, s.commandSets.filter((c) => !c.guildId).at(-1)?.commands ?? []], 0);

    this.#route("GET", "/channels/:channel", (_r, p) => [200, s.channelJSON(this.#channel(p[0]))], 0);
    this.#route("POST", "/channels/:channel/messages", (_r, p, body) => {
      const m = this.#botPost(p[0], body);
      // Discord echoes the bot's own messages over the gateway; the bot must ignore them.
      this.dispatchMessageCreate(m);
      return [200, s.messageJSON(m)];
    }, 0);
    this.#route("GET", "/channels/:channel/messages", (_r, p) => {
      this.#channel(p[0]);
      return [200, s.messagesIn(p[0]).reverse().slice(0, 50).map((m) => s.messageJSON(m))];
    }, 0);
    this.#route("GET", "/channels/:channel/messages/:message", (_r, p) => [200, s.messageJSON(this.#message(p[0], p[1]))], 0);
    this.#route("PATCH", "/channels/:channel/messages/:message", (_r, p, body) => {
      const m = this.#message(p[0], p[1]);
      if (m.authorId !== s.bot.id) throw new ApiError(403, 50005, "Cannot edit a message authored by another user");
      if (typeof body?.content === "string" && body.content.length > 2000)
        throw new ApiError(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.");
      s.editMessage(m, body ?? {});
      return [200, s.messageJSON(m)];
    }, 0);
    this.#route("DELETE", "/channels/:channel/messages/:message", (_r, p) => {
      this.#message(p[0], p[1]);
      s.messages.delete(p[1]);
      return [204, undefined];
    }, 0);
    this.#route("POST", "/channels/:channel/messages/:message/threads", (_r, p, body) => {
      const parent = this.#channel(p[0]);
      const m = this.#message(p[0], p[1]);
      if (parent.type !== 0 && parent.type !== 5) throw new ApiError(400, 50024, "Cannot execute action on this channel type");
      if (s.threadsDenied.has(parent.id)) throw new ApiError(403, 50013, "Missing Permissions");
      if (m.threadId) throw new ApiError(400, 160004, "A thread has already been created for this message");
      const thread: FakeChannel = {
        id: m.id,
        type: 11,
        name: String(body?.name ?? "thread").slice(0, 100),
        guildId: parent.guildId,
        parentId: parent.id,
        ownerId: s.bot.id,
      };
      s.channels.set(thread.id, thread);
      m.threadId = thread.id;
      const json = s.channelJSON(thread);
      this.#gateway.dispatch("THREAD_CREATE", { ...json, newly_created: true });
      return [201, json];
    }, 0);
    this.#route("PUT", "/channels/:channel/messages/:message/reactions/:emoji/@me", (_r, p) => {
      const m = this.#message(p[0], p[1]);
      m.reactions.push({ emoji: decodeURIComponent(p[2]), userId: s.bot.id });
      return [204, undefined];
    }, 0);
    this.#route("DELETE", "/channels/:channel/messages/:message/reactions/:emoji/@me", () => [204, undefined], 0);
    this.#route("POST", "/channels/:channel/typing", () => [204, undefined], 0);
    this.#route("POST", "/users/@me/channels", (_r, _p, body) => {
      const user = s.users.get(String(body?.recipient_id));
      if (!user) throw new ApiError(400, 50035, "Invalid Form Body: recipient_id");
      return [200, s.channelJSON(s.dmChannelFor(user))];
    });

    this.#route("POST", "/interactions/:id/:token/callback", (_r, p, body, url) => {
      const it = s.interactions.get(p[0]);
      if (!it || it.token !== p[1]) throw new ApiError(404, 10062, "Unknown interaction");
      if (s.now() - it.createdAt > INITIAL_RESPONSE_DEADLINE_MS) throw new ApiError(404, 10062, "Unknown interaction");
      if (it.callbacks.length) throw new ApiError(400, 40060, "Interaction has already been acknowledged.");
      const type = Number(body?.type);
      it.callbacks.push(type);
      const data = body?.data ?? {};
      let message: FakeMessage | undefined;
      if (type === 4 || type === 5) {
        const ephemeral = (Number(data.flags ?? 0) & EPHEMERAL) !== 0;
        message = this.#botPost(it.channelId, type === 5 ? { ...data, content: "" } : data, {
          interactionId: it.id,
          ephemeralFor: ephemeral ? it.userId : undefined,
        });
        it.originalMessageId = message.id;
      } else if ((type === 6 || type === 7) && it.sourceMessageId) {
        // Component interactions: "@original" is the message the button sits on.
        message = s.messages.get(it.sourceMessageId);
        it.originalMessageId = it.sourceMessageId;
        if (message && type === 7) s.editMessage(message, data);
      }
      if (url.searchParams.get("with_response") === "true") {
        return [
          200,
          {
            interaction: {
              id: it.id,
              type: it.type,
              activity_instance_id: null,
              response_message_id: message?.id ?? null,
              response_message_loading: type === 5,
              response_message_ephemeral: message ? !!message.ephemeralFor : false,
            },
            resource: { type, ...(message ? { message: s.messageJSON(message) } : {}) },
          },
        ];
      }
      return [204, undefined];
    });
    const originalOf = (token: string): FakeMessage => {
      const it = this.#liveToken(token);
      const m = it.originalMessageId ? s.messages.get(it.originalMessageId) : undefined;
      if (!m) throw new ApiError(404, 10008, "Unknown Message");
      return m;
    };
    this.#route("GET", "/webhooks/:app/:token/messages/@original", (_r, p) => [200, s.messageJSON(originalOf(p[1]))], 1);
    this.#route("PATCH", "/webhooks/:app/:token/messages/@original", (_r, p, body) => {
      const m = originalOf(p[1]);
      s.editMessage(m, body ?? {});
      return [200, s.messageJSON(m)];
    }, 1);
    this.#route("PATCH", "/webhooks/:app/:token/messages/:message", (_r, p, body) => {
      const it = this.#liveToken(p[1]);
      const m = s.messages.get(p[2]);
      if (!m || m.interactionId !== it.id) throw new ApiError(404, 10008, "Unknown Message");
      s.editMessage(m, body ?? {});
      return [200, s.messageJSON(m)];
    }, 1);
    this.#route("POST", "/webhooks/:app/:token", (_r, p, body) => {
      const it = this.#liveToken(p[1]);
      const ephemeral = (Number(body?.flags ?? 0) & EPHEMERAL) !== 0;
      const m = this.#botPost(it.channelId, body, { interactionId: it.id, ephemeralFor: ephemeral ? it.userId : undefined });
      it.followUpIds.push(m.id);
      return [200, s.messageJSON(m)];
    }, 1);
  }
}
