/**
 * The Discord bot: one discord.js client wired to the conversation core.
 *
 * Owns: the client's lifetime (login, ready, destroy), its intents and partials, routing gateway
 * events to the conversation and admin handlers, dropping repeated events, and keeping the
 * process alive through every failure: each handler is caught and logged, client/shard errors
 * are logged, and 429s are left to discord.js's REST queue (it waits `retry_after` per bucket
 * and retries; the queue of a bucket is FIFO, so the last edit of a message lands last).
 * Announces each gateway event it has finished with on `handled` (see handled-events.ts).
 *
 * Sharding (`discord.shards`, `discord.shard_count`; see discord-shards.ts): the client opens
 * one gateway connection per shard it runs, and Discord sends it only those shards' servers
 * (and the DMs when it runs shard 0). A shard Discord refuses (4010 Invalid shard, 4011 Sharding
 * required) fails `start()` with what to change, instead of waiting for a READY that never comes.
 * The logs and `metrics` name the shards.
 */
import {
  Client,
  Events,
  GatewayIntentBits,
  Partials,
  RESTEvents,
  Routes,
  type CloseEvent,
  type Interaction,
  type Message,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  type User,
} from "discord.js";
import { DiscordAdminHandler } from "./discord-admin-handler.ts";
import { registerCommands, type RegisterCommandsOptions } from "./discord-commands.ts";
import { DiscordConversationHandler } from "./discord-conversation-handler.ts";
import { DISCORD, type DiscordCore } from "./discord-core.ts";
import {
  emptyMetrics,
  resolveDiscordSettings,
  type DiscordConfigInput,
  type DiscordLog,
  type DiscordMetrics,
  type DiscordSettings,
} from "./discord-settings.ts";
import { RecentKeys } from "../recent-keys.ts";
import { STOP_LATENCY_WINDOW } from "../bounded-samples.ts";
import { HandledEvents, type HandledEvent } from "../handled-events.ts";
import { noteHandlerError, noteRateLimited, type PlatformObserver } from "../platform-metrics.ts";
import { shardOfGuild } from "./discord-shards.ts";

export interface DiscordBotOptions {
  token: string;
  core: DiscordCore;
  /** The app config (or any object with its `discord`, `stream` and `permissions` sections). */
  config?: DiscordConfigInput;
  log: DiscordLog;
  /** REST overrides; `api` points discord.js at another Discord (the test fake). */
  rest?: { api?: string };
  /** How many stop latencies `metrics.stopLatencyMs` keeps (newest; default 1000). */
  stopLatencyWindow?: number;
  /** The app's metrics (src/observability): told of the same stops, rate limits and handler errors as `metrics`. */
  observer?: PlatformObserver;
}

/** How long `stop()` waits for running handlers to finish before destroying the client. */
const STOP_GRACE_MS = 3000;

/** Gateway close codes after which discord.js gives a shard up (it never becomes ready). */
const REFUSED = new Map<number, string>([
  [4004, "Authentication failed"],
  [4010, "Invalid shard"],
  [4011, "Sharding required"],
  [4012, "Invalid API version"],
  [4013, "Invalid intents"],
  [4014, "Disallowed intents"],
]);

/** steerbot on Discord: `start()` logs in and answers; `stop()` disconnects cleanly. */
export class DiscordBot {
  readonly client: Client;
  readonly settings: DiscordSettings;
  readonly metrics: DiscordMetrics = emptyMetrics();
  /**
   * One announcement per gateway event (message, reaction, interaction) once its handler has
   * settled, duplicates and failures included: "the bot has processed the stranger's 🛑".
   */
  readonly handled = new HandledEvents();
  readonly #token: string;
  readonly #log: DiscordLog;
  readonly #observer: PlatformObserver | undefined;
  readonly #conversation: DiscordConversationHandler;
  readonly #admin: DiscordAdminHandler;
  readonly #seen = new RecentKeys();
  /**
   * Reactions repeat legitimately (remove 🛑, add it again to stop the resumed reply), so only
   * a repeat within seconds counts as the same gateway event delivered twice.
   */
  readonly #seenReactions = new RecentKeys(5000);
  readonly #inFlight = new Set<Promise<void>>();
  #started = false;
  #closing = false;

  constructor(options: DiscordBotOptions) {
    this.#token = options.token;
    this.#log = options.log;
    this.#observer = options.observer;
    this.settings = resolveDiscordSettings(options.config);
    this.client = new Client({
      intents: [
        GatewayIntentBits.Guilds,
        GatewayIntentBits.GuildMessages,
        GatewayIntentBits.MessageContent,
        GatewayIntentBits.GuildMessageReactions,
        GatewayIntentBits.DirectMessages,
        GatewayIntentBits.DirectMessageReactions,
      ],
      // Reactions on messages sent before this process started (not cached) must still arrive,
      // and DM channels are never cached before their first event.
      partials: [Partials.Message, Partials.Reaction, Partials.Channel, Partials.User],
      rest: options.rest?.api ? { api: options.rest.api } : {},
      // Model output must never ping anyone, whatever it contains.
      allowedMentions: { parse: [] },
      // The shards this instance runs ({} = discord.js's default: one shard, no sharding).
      ...this.settings.shards,
    });
    const deps = {
      core: options.core,
      rest: this.client.rest,
      log: this.#log,
      settings: this.settings,
      metrics: this.metrics,
      observer: options.observer,
      botUserId: () => this.client.user?.id ?? "",
      isClosed: () => this.#closing,
      stopLatencyWindow: options.stopLatencyWindow ?? STOP_LATENCY_WINDOW,
    };
    this.#conversation = new DiscordConversationHandler(deps);
    this.#admin = new DiscordAdminHandler(options.core, this.#log, this.client.rest);
    this.#wire();
  }

  /**
   * Logs in and resolves once every shard this instance runs says READY and its guilds have
   * arrived. Rejects (and closes every connection) when Discord refuses a shard.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#closing = false;
    let refused: { code: number; shardId: number } | undefined;
    let offRefused = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      this.client.once(Events.ClientReady, () => resolve());
      this.client.once(Events.Invalidated, () => reject(new Error("discord: session invalidated")));
      const onDisconnect = (ev: CloseEvent, shardId: number) => {
        if (!REFUSED.has(ev.code)) return;
        refused ??= { code: ev.code, shardId };
        reject(new Error(`discord: shard ${shardId} closed with ${ev.code}`));
      };
      this.client.on(Events.ShardDisconnect, onDisconnect);
      offRefused = () => this.client.off(Events.ShardDisconnect, onDisconnect);
    });
    try {
      await Promise.all([this.client.login(this.#token), ready]);
    } catch (err) {
      // discord.js may reject the login a moment before it reports the close code
      if (!refused) await new Promise((r) => setTimeout(r, 200));
      const reason = refused ? new Error(await this.#refusal(refused.code, refused.shardId)) : err;
      this.#started = false;
      await this.client.destroy().catch(() => {});
      throw reason;
    } finally {
      offRefused();
    }
    const ids = [...this.client.ws.shards.keys()].sort((a, b) => a - b);
    this.metrics.shards = { ids, count: this.#shardCount() };
    this.#log.info({ user: this.client.user?.tag, guilds: this.client.guilds.cache.size, shards: ids, shardCount: this.#shardCount() }, "discord: connected");
    if (!ids.includes(0)) {
      this.#log.info({ shards: ids }, "discord: shard 0 runs in another instance: it answers the DMs (Discord sends DMs to shard 0 only)");
    }
  }

  /** The total shard count of all instances (discord.js knows it once connected, also for "auto"). */
  #shardCount(): number {
    return this.client.options.shardCount ?? 1;
  }

  /** What to tell the operator when Discord closed a shard for good during the start. */
  async #refusal(code: number, shardId: number): Promise<string> {
    const count = this.#shardCount();
    const what = `discord: Discord refused shard ${shardId} of ${count} (${code} ${REFUSED.get(code)})`;
    if (code === 4010) return `${what}: shard ids run from 0 to discord.shard_count - 1, and every instance must use the same shard_count`;
    if (code === 4011) {
      const recommended = await this.client.rest
        .get(Routes.gatewayBot())
        .then((g) => (g as { shards?: number }).shards)
        .catch(() => undefined);
      return (
        `${what}: the bot is in too many servers for ${count} shard${count === 1 ? "" : "s"}; set discord.shard_count to ` +
        `${recommended ? `${recommended} (Discord's recommendation) ` : "Discord's recommendation (GET /gateway/bot) "}on every instance ` +
        `and split discord.shards among them, or run shards: auto in a single instance`
      );
    }
    if (code === 4004) return `${what}: check DISCORD_TOKEN`;
    if (code === 4014) return `${what}: enable the Message Content intent for the bot in the Discord Developer Portal`;
    return what;
  }

  /** Ends running streams, waits briefly for their handlers, then closes the gateway connection. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    // Streams end at their next edit (SurfaceGoneError): the core stops those generations at
    // the text shown instead of generating into a closed connection.
    this.#closing = true;
    const running = [...this.#inFlight];
    if (running.length) {
      await Promise.race([Promise.allSettled(running), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    }
    await this.client.destroy();
    this.#log.info({}, "discord: disconnected");
  }

  /**
   * Resolves when no event handler is running (handlers of questions and corrections run until
   * their reply has settled). With `handled`, a test can say "every event received so far is
   * done with": wait for a later event to be handled, then for `idle()`.
   */
  async idle(): Promise<void> {
    while (this.#inFlight.size) await Promise.allSettled([...this.#inFlight]);
  }

  /** Registers the slash commands (in one guild when `guildId` is given, else globally). */
  async registerCommands(options: Pick<RegisterCommandsOptions, "guildId"> = {}): Promise<number> {
    if (!this.client.token) this.client.rest.setToken(this.#token);
    const count = await registerCommands(this.client.rest, { ...options, applicationId: this.client.application?.id });
    this.#log.info({ count, guildId: options.guildId ?? "global" }, "discord: slash commands registered");
    return count;
  }

  #wire(): void {
    const c = this.client;
    const shardOf = (guildId: string | null | undefined) => shardOfGuild(guildId, this.#shardCount());
    c.on(Events.MessageCreate, (m) => this.#run({ kind: "message", id: m.id, userId: m.author.id, shardId: shardOf(m.guildId) }, () => this.#onMessage(m)));
    c.on(Events.MessageReactionAdd, (r, u) =>
      this.#run({ kind: "reaction", id: r.message.id, userId: u.id, shardId: shardOf(r.message.guildId) }, () => this.#onReaction(r, u)),
    );
    c.on(Events.InteractionCreate, (i) => this.#run({ kind: "interaction", id: i.id, userId: i.user.id, shardId: shardOf(i.guildId) }, () => this.#onInteraction(i)));
    c.on(Events.ShardReady, (shardId) => {
      const guilds = c.guilds.cache.filter((g) => g.shardId === shardId).size;
      this.#log.info({ shardId, shardCount: this.#shardCount(), guilds }, "discord: shard ready");
    });
    c.on(Events.Error, (err) => this.#log.error({ err: String(err) }, "discord: client error"));
    c.on(Events.ShardError, (err, shardId) => this.#log.error({ err: String(err), shardId }, "discord: gateway connection error"));
    c.on(Events.ShardDisconnect, (ev, shardId) => this.#log.warn({ code: ev.code, shardId }, "discord: gateway disconnected"));
    c.on(Events.ShardReconnecting, (shardId) => this.#log.info({ shardId }, "discord: gateway reconnecting"));
    c.on(Events.Warn, (msg) => this.#log.warn({ msg }, "discord: warning"));
    c.rest.on(RESTEvents.RateLimited, (info) => {
      this.metrics.rateLimitsAbsorbed++;
      noteRateLimited(this.#observer, DISCORD, "absorbed");
      this.#log.debug({ route: info.route, retryAfter: info.retryAfter, scope: info.scope }, "discord: rate limited, waiting");
    });
  }

  /** The handlers return "duplicate" when they dropped a repeated event, else nothing. */
  async #onMessage(message: Message): Promise<"duplicate" | void> {
    if (!this.#seen.firstTime(`m:${message.id}`)) return "duplicate";
    await this.#conversation.onMessage(message);
  }

  async #onReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser): Promise<"duplicate" | void> {
    const key = `r:${reaction.message.id}:${user.id}:${reaction.emoji.id ?? reaction.emoji.name}`;
    if (!this.#seenReactions.firstTime(key)) return "duplicate";
    await this.#conversation.onReaction(reaction, user);
  }

  async #onInteraction(interaction: Interaction): Promise<"duplicate" | void> {
    if (!this.#seen.firstTime(`i:${interaction.id}`)) return "duplicate";
    if (interaction.isChatInputCommand()) {
      if (interaction.commandName === "ask") await this.#conversation.onAskCommand(interaction);
      else await this.#admin.onCommand(interaction);
    } else if (interaction.isButton()) {
      await this.#admin.onButton(interaction);
    }
  }

  /**
   * Runs one handler detached from the gateway loop; a failure is logged, never thrown. When it
   * has settled, the event is announced on `handled`.
   */
  #run(event: Omit<HandledEvent, "outcome">, fn: () => Promise<"duplicate" | void>): void {
    const { kind, shardId } = event;
    if (shardId !== undefined) this.metrics.eventsByShard[shardId] = (this.metrics.eventsByShard[shardId] ?? 0) + 1;
    const p = (async () => {
      let outcome: HandledEvent["outcome"] = "done";
      try {
        if ((await fn()) === "duplicate") outcome = "duplicate";
      } catch (err) {
        outcome = "failed";
        noteHandlerError({ metrics: this.metrics, observer: this.#observer }, DISCORD);
        this.#log.error({ kind, shardId, err: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, `discord: ${kind} handler failed`);
      }
      this.handled.emit({ ...event, outcome });
    })();
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }
}
