/**
 * The world a fake Discord server remembers: users, guilds (the default one, and more where a
 * test adds them, on the shard it chooses) with roles and channels, threads, DMs, every message
 * with every version of its text, interactions and registered commands.
 *
 * Owns: the data and its API JSON shapes (v10). It knows nothing about HTTP or WebSockets, so
 * tests can assert on "what a user would see" straight from here.
 */

const DISCORD_EPOCH = 1420070400000;
let lastTimestamp = 0n;
let sequence = 0n;
/** Real-looking snowflakes (Discord epoch, increasing, unique), so discord.js's timestamp math works. */
export function snowflake(): string {
  let now = BigInt(Date.now() - DISCORD_EPOCH);
  if (now <= lastTimestamp) {
    now = lastTimestamp;
    sequence++;
    if (sequence > 0xfffn) {
      now++;
      sequence = 0n;
    }
  } else sequence = 0n;
  lastTimestamp = now;
  return ((now << 22n) | sequence).toString();
}

/**
 * A snowflake whose guild lands on `shard` of `count`: Discord routes a guild's events to shard
 * `(guild_id >> 22) % num_shards`, and `guild_id >> 22` is its creation time in ms.
 */
export function snowflakeOnShard(shard: number, count: number): string {
  const n = BigInt(count);
  let ts = BigInt(Date.now() - DISCORD_EPOCH);
  if (ts <= lastTimestamp) ts = lastTimestamp + 1n;
  ts += (BigInt(shard) - (ts % n) + n) % n;
  lastTimestamp = ts;
  sequence = 0n;
  return (ts << 22n).toString();
}

/** The shard Discord sends a guild's events to (`num_shards` shards in all). */
export function guildShard(guildId: string, numShards: number): number {
  return Number((BigInt(guildId) >> 22n) % BigInt(numShards));
}

export interface FakeGuild {
  id: string;
  name: string;
}

export interface FakeUser {
  id: string;
  username: string;
  bot?: boolean;
  /** Role ids this user holds in the fake guild. */
  roles: string[];
}

export interface FakeChannel {
  id: string;
  /** 0 text, 1 DM, 2 voice (with its text chat), 11 public thread, 13 stage. */
  type: number;
  name?: string;
  guildId?: string;
  parentId?: string;
  ownerId?: string;
  /** DM recipient. */
  recipientId?: string;
}

export interface FakeMessageVersion {
  content: string;
  at: number;
}

export interface FakeMessage {
  id: string;
  channelId: string;
  guildId?: string;
  authorId: string;
  content: string;
  /** Every text this message has shown, oldest first (what users saw over time). */
  versions: FakeMessageVersion[];
  flags: number;
  components: unknown[];
  replyToId?: string;
  /** Set for ephemeral interaction answers: only this user sees the message. */
  ephemeralFor?: string;
  /** The interaction this message answers, if any. */
  interactionId?: string;
  threadId?: string;
  createdAt: number;
  editedAt?: number;
  reactions: { emoji: string; userId: string }[];
  /** Link previews Discord generated for URLs in the content (none when SuppressEmbeds is set). */
  embeds: { url: string }[];
  /** Names of the files sent with the message. */
  attachments: string[];
}

export interface FakeInteraction {
  id: string;
  token: string;
  type: number;
  userId: string;
  channelId: string;
  guildId?: string;
  /** Callback types answered (4 message, 5 deferred, 6 deferred update, 7 update). */
  callbacks: number[];
  originalMessageId?: string;
  /** Message the interaction's button sits on (component interactions). */
  sourceMessageId?: string;
  followUpIds: string[];
  /** When the interaction was created, on the fake's clock (`FakeDiscordState.now()`). */
  createdAt: number;
}

export interface FakeCommandSet {
  guildId?: string;
  commands: Record<string, unknown>[];
}

export const EPHEMERAL = 64;
/** Message flag SUPPRESS_EMBEDS: no link previews for this message. */
export const SUPPRESS_EMBEDS = 4;
/** Interaction tokens stay valid this long (Discord docs: "Interaction tokens are valid for 15 minutes"). */
export const INTERACTION_TOKEN_TTL_MS = 15 * 60_000;
/** An interaction must get its initial response within 3 seconds, or Discord drops it. */
export const INITIAL_RESPONSE_DEADLINE_MS = 3000;

/** The URLs in a text that Discord would unfurl (not the `<https://...>` form). */
export function unfurlableUrls(content: string): string[] {
  return [...content.matchAll(/(?<!<)https?:\/\/[^\s<>]+/g)].map((m) => m[0]);
}

export interface FakeRole {
  id: string;
  name: string;
  position: number;
  guildId: string;
}

/** Everything the fake Discord knows; read it in tests to see what users see. */
export class FakeDiscordState {
  /** The default guild: the default cast's roles and channels live here. */
  readonly guildId: string;
  /** Every guild the bot is in, the default one first. */
  readonly guilds = new Map<string, FakeGuild>();
  readonly bot: FakeUser;
  readonly applicationId: string;
  readonly roles = new Map<string, FakeRole>();
  readonly users = new Map<string, FakeUser>();
  readonly channels = new Map<string, FakeChannel>();
  readonly messages = new Map<string, FakeMessage>();
  readonly interactions = new Map<string, FakeInteraction>();
  readonly commandSets: FakeCommandSet[] = [];
  /** Channels where creating a thread answers 403 Missing Permissions. */
  readonly threadsDenied = new Set<string>();
  /**
   * Channels (threads included) where the bot lacks Send Messages: a read-only channel, or the
   * bot timed out. Sending there answers 403 50013 Missing Permissions.
   */
  readonly sendDenied = new Set<string>();
  /** Added to `Date.now()` by `now()`: tests jump past the 15-minute token life without waiting. */
  clockOffsetMs = 0;

  /** The fake's clock (interaction deadlines and token expiry read it). */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** `guildShard: [id, count]` puts the default guild on that shard of `count` (else where its id falls). */
  constructor(opts: { guildShard?: [number, number] } = {}) {
    this.guildId = opts.guildShard ? snowflakeOnShard(opts.guildShard[0], opts.guildShard[1]) : snowflake();
    this.bot = { id: snowflake(), username: "steerbot", bot: true, roles: [] };
    this.applicationId = this.bot.id;
    this.users.set(this.bot.id, this.bot);
    this.#addGuild(this.guildId, "Fake Guild");
  }

  #addGuild(id: string, name: string): FakeGuild {
    const guild = { id, name };
    this.guilds.set(id, guild);
    this.roles.set(id, { id, name: "@everyone", position: 0, guildId: id });
    return guild;
  }

  /** Another guild the bot is in; `shard: [id, count]` places it on that shard of `count`. */
  addGuild(name: string, opts: { shard?: [number, number] } = {}): FakeGuild {
    return this.#addGuild(opts.shard ? snowflakeOnShard(opts.shard[0], opts.shard[1]) : snowflake(), name);
  }

  addRole(name: string, guildId = this.guildId): string {
    const id = snowflake();
    this.roles.set(id, { id, name, position: [...this.roles.values()].filter((r) => r.guildId === guildId).length, guildId });
    return id;
  }

  addUser(username: string, roles: string[] = []): FakeUser {
    const user = { id: snowflake(), username, roles };
    this.users.set(user.id, user);
    return user;
  }

  addTextChannel(name: string, type = 0, guildId = this.guildId): FakeChannel {
    const ch: FakeChannel = { id: snowflake(), type, name, guildId };
    this.channels.set(ch.id, ch);
    return ch;
  }

  dmChannelFor(user: FakeUser): FakeChannel {
    for (const ch of this.channels.values()) if (ch.type === 1 && ch.recipientId === user.id) return ch;
    const ch: FakeChannel = { id: snowflake(), type: 1, recipientId: user.id };
    this.channels.set(ch.id, ch);
    return ch;
  }

  addMessage(m: Omit<FakeMessage, "id" | "versions" | "createdAt" | "reactions" | "flags" | "components" | "embeds" | "attachments"> &
    Partial<Pick<FakeMessage, "flags" | "components" | "attachments">>): FakeMessage {
    const now = Date.now();
    const msg: FakeMessage = {
      flags: 0,
      components: [],
      ...m,
      id: snowflake(),
      versions: [{ content: m.content, at: now }],
      createdAt: now,
      reactions: [],
      embeds: [],
      attachments: m.attachments ?? [],
    };
    this.unfurl(msg);
    this.messages.set(msg.id, msg);
    return msg;
  }

  editMessage(msg: FakeMessage, patch: { content?: unknown; components?: unknown; flags?: unknown; __files?: unknown }): void {
    if (Array.isArray(patch.__files) && patch.__files.length) msg.attachments = patch.__files as string[];
    if (typeof patch.content === "string" && patch.content !== msg.content) {
      msg.content = patch.content;
      msg.versions.push({ content: patch.content, at: Date.now() });
    }
    if (Array.isArray(patch.components)) msg.components = patch.components;
    // On edit only SUPPRESS_EMBEDS may change; flags left out keep their value.
    if (patch.flags !== undefined) msg.flags = (msg.flags & ~SUPPRESS_EMBEDS) | (Number(patch.flags) & SUPPRESS_EMBEDS);
    this.unfurl(msg);
    msg.editedAt = Date.now();
  }

  /** As Discord: a URL in the content gets a link preview unless the message has SUPPRESS_EMBEDS. */
  unfurl(msg: FakeMessage): void {
    if (msg.flags & SUPPRESS_EMBEDS) {
      msg.embeds = [];
      return;
    }
    for (const url of unfurlableUrls(msg.content)) if (!msg.embeds.some((e) => e.url === url)) msg.embeds.push({ url });
  }

  /** Messages of a channel in order, ephemeral answers excluded unless `forUser` may see them. */
  messagesIn(channelId: string, forUser?: string): FakeMessage[] {
    return [...this.messages.values()]
      .filter((m) => m.channelId === channelId && (!m.ephemeralFor || m.ephemeralFor === forUser))
      .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  /** Messages the bot wrote in a channel (threads are channels too), oldest first. */
  botMessagesIn(channelId: string): FakeMessage[] {
    return this.messagesIn(channelId).filter((m) => m.authorId === this.bot.id);
  }

  /** The thread opened on a message, if any. */
  threadOf(messageId: string): FakeChannel | undefined {
    const id = this.messages.get(messageId)?.threadId;
    return id ? this.channels.get(id) : undefined;
  }

  /** Every message an interaction produced (original + follow-ups), as the user saw them. */
  interactionMessages(interactionId: string): FakeMessage[] {
    const it = this.interactions.get(interactionId);
    if (!it) return [];
    const ids = [it.originalMessageId, ...it.followUpIds].filter((x): x is string => !!x);
    return ids.map((id) => this.messages.get(id)).filter((m): m is FakeMessage => !!m);
  }

  // ---- API JSON ------------------------------------------------------------------------------

  userJSON(u: FakeUser): Record<string, unknown> {
    return {
      id: u.id,
      username: u.username,
      discriminator: "0",
      global_name: u.bot ? null : u.username,
      avatar: null,
      ...(u.bot ? { bot: true } : {}),
      public_flags: 0,
    };
  }

  /** The user as a member of a guild (the default one unless given): their roles there. */
  memberJSON(u: FakeUser, withUser = true, guildId = this.guildId): Record<string, unknown> {
    return {
      ...(withUser ? { user: this.userJSON(u) } : {}),
      roles: u.roles.filter((r) => this.roles.get(r)?.guildId === guildId),
      joined_at: new Date(0).toISOString(),
      deaf: false,
      mute: false,
      flags: 0,
      pending: false,
      nick: null,
      avatar: null,
      premium_since: null,
      communication_disabled_until: null,
    };
  }

  roleJSON(r: FakeRole): Record<string, unknown> {
    return {
      id: r.id,
      name: r.name,
      color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
      hoist: false,
      icon: null,
      unicode_emoji: null,
      position: r.position,
      // @everyone: view, send, read history, create public threads, send in threads, add reactions
      permissions: r.id === r.guildId ? String((1n << 10n) | (1n << 11n) | (1n << 16n) | (1n << 35n) | (1n << 38n) | (1n << 6n)) : "0",
      managed: false,
      mentionable: false,
      flags: 0,
    };
  }

  channelJSON(ch: FakeChannel): Record<string, unknown> {
    if (ch.type === 1) {
      const u = this.users.get(ch.recipientId!)!;
      return { id: ch.id, type: 1, last_message_id: null, recipients: [this.userJSON(u)], flags: 0 };
    }
    if (ch.type === 11) {
      return {
        id: ch.id,
        type: 11,
        guild_id: ch.guildId,
        parent_id: ch.parentId,
        owner_id: ch.ownerId,
        name: ch.name,
        last_message_id: null,
        rate_limit_per_user: 0,
        message_count: 0,
        member_count: 1,
        total_message_sent: 0,
        flags: 0,
        thread_metadata: {
          archived: false,
          auto_archive_duration: 1440,
          archive_timestamp: new Date().toISOString(),
          locked: false,
          create_timestamp: new Date().toISOString(),
        },
      };
    }
    const voice = ch.type === 2 || ch.type === 13 ? { bitrate: 64000, user_limit: 0, rtc_region: null } : {};
    return {
      ...voice,
      id: ch.id,
      type: ch.type,
      guild_id: ch.guildId,
      name: ch.name,
      position: 0,
      permission_overwrites: [],
      parent_id: null,
      topic: null,
      nsfw: false,
      last_message_id: null,
      rate_limit_per_user: 0,
      flags: 0,
    };
  }

  messageJSON(m: FakeMessage): Record<string, unknown> {
    const author = this.users.get(m.authorId)!;
    const ref = m.replyToId ? this.messages.get(m.replyToId) : undefined;
    const thread = m.threadId ? this.channels.get(m.threadId) : undefined;
    return {
      id: m.id,
      channel_id: m.channelId,
      ...(m.guildId ? { guild_id: m.guildId } : {}),
      author: this.userJSON(author),
      content: m.content,
      timestamp: new Date(m.createdAt).toISOString(),
      edited_timestamp: m.editedAt ? new Date(m.editedAt).toISOString() : null,
      tts: false,
      mention_everyone: false,
      mentions: m.content.includes(`<@${this.bot.id}>`) ? [this.userJSON(this.bot)] : [],
      mention_roles: [],
      attachments: m.attachments.map((name, i) => ({ id: String(i + 1), filename: name, size: 1, url: `https://cdn.invalid/${name}`, proxy_url: `https://cdn.invalid/${name}` })),
      embeds: m.embeds.map((e) => ({ type: "link", url: e.url })),
      reactions: [],
      pinned: false,
      type: ref ? 19 : 0,
      flags: m.flags,
      components: m.components,
      ...(ref
        ? {
            message_reference: { type: 0, message_id: ref.id, channel_id: ref.channelId, guild_id: ref.guildId },
            referenced_message: { ...this.messageJSON({ ...ref, replyToId: undefined }) },
          }
        : {}),
      ...(thread ? { thread: this.channelJSON(thread) } : {}),
    };
  }

  guildJSON(guildId = this.guildId): Record<string, unknown> {
    const guild = this.guilds.get(guildId)!;
    const channels = [...this.channels.values()].filter((c) => (c.type === 0 || c.type === 2 || c.type === 13) && c.guildId === guildId);
    const threads = [...this.channels.values()].filter((c) => c.type === 11 && c.guildId === guildId);
    return {
      id: guild.id,
      name: guild.name,
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: [...this.users.values()].find((u) => !u.bot)?.id ?? this.bot.id,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [...this.roles.values()].filter((r) => r.guildId === guildId).map((r) => this.roleJSON(r)),
      emojis: [],
      stickers: [],
      soundboard_sounds: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: "en-US",
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      joined_at: new Date(0).toISOString(),
      large: false,
      unavailable: false,
      member_count: this.users.size,
      voice_states: [],
      members: [this.memberJSON(this.bot, true, guildId)],
      channels: channels.map((c) => this.channelJSON(c)),
      threads: threads.map((c) => this.channelJSON(c)),
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
    };
  }
}
