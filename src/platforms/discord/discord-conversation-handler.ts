/**
 * Asks, stops, accepts and corrections on Discord: the conversation side of the adapter.
 *
 * Owns: deciding what a message or reaction means (a new question, a correction of a stopped
 * reply, a stop, an accept), where the answer streams (a new thread on the question, or in place
 * inside a thread/DM, in channels that have no threads — voice and stage text chats — and when
 * threads may not be created), showing the core's notices to the person they concern, and
 * telling the asker when Discord refused to show the reply (a read-only channel, no permission).
 *
 * In the bot's thread people also talk to each other: only a reply to the bot's message, or a
 * plain message of the thread's steerer (who asked) that addresses nobody else, is a correction. Permissions, duplicates of the same platform message,
 * storage and throttling are decided by the core; this class only maps Discord to core calls.
 */
import {
  ChannelType,
  DiscordAPIError,
  MessageFlags,
  RESTJSONErrorCodes,
  Routes,
  type ChatInputCommandInteraction,
  type Message,
  type MessageReaction,
  type PartialMessage,
  type PartialMessageReaction,
  type PartialUser,
  type REST,
  type User,
} from "discord.js";
import type { Actor, ThreadRef } from "../../core/ports.ts";
import { noteRateLimited, noteStop, type PlatformObserver } from "../platform-metrics.ts";
import { discordActor } from "./discord-actor.ts";
import { DISCORD, type DiscordCore } from "./discord-core.ts";
import { DiscordReplySurface, isMissingPermission, type SurfaceFailure } from "./discord-reply-surface.ts";
import type { DiscordMetrics, DiscordSettings } from "./discord-settings.ts";
import type { PlatformLog as DiscordLog } from "../platform-log.ts";

interface Deps {
  core: DiscordCore;
  rest: REST;
  log: DiscordLog;
  settings: DiscordSettings;
  metrics: DiscordMetrics;
  /** The app's metrics, told of the same stops and 429s (optional). */
  observer?: PlatformObserver;
  botUserId: () => string;
  /** True once the bot is shutting down: surfaces then end their streams. */
  isClosed: () => boolean;
  /** How many stop latencies `metrics.stopLatencyMs` keeps. */
  stopLatencyWindow: number;
}

/** Maps conversation events (messages, reactions, /ask) to core.ask/stop/correct/accept. */
export class DiscordConversationHandler {
  readonly #d: Deps;
  /**
   * Who asked in each conversation the bot answers (thread/DM channel id → user id): their
   * plain messages there correct an open reply; other people's do not. Bounded: oldest go first.
   */
  readonly #steerers = new Map<string, string>();

  constructor(deps: Deps) {
    this.#d = deps;
  }

  /** A message arrived: a question, a correction, or nothing for us. */
  async onMessage(message: Message): Promise<void> {
    const { core } = this.#d;
    const me = this.#d.botUserId();
    if (message.author.bot || message.author.id === me || message.system) return;
    const isDM = !message.guildId;
    const channel = message.channel;
    const inThread = !isDM && channel.isThread();
    // An explicit mention in the text: a reply pings its author (the bot) without being a question.
    const mentioned = new RegExp(`<@!?${me}>`).test(message.content);
    const text = stripMention(message.content, me);
    const actor = discordActor(message.author, message.member, message.guildId);

    // 1. A reply to one of the bot's messages is a correction of that reply. A reply to a bot
    //    message the core no longer knows (too old, or before a restart) goes to the core too,
    //    which answers with how to go on instead of the bot treating it as a new question.
    const replyTo = message.reference?.messageId;
    if (replyTo && (core.isBotMessage(DISCORD, replyTo) || message.mentions.repliedUser?.id === me)) {
      await this.#correct(message, actor, text, replyTo);
      return;
    }

    // 2. In a conversation the bot has here (thread or DM), the next message while a reply is
    //    open (stopped, or still generating: the core then stops it at the text shown) is a
    //    correction. After a finished or accepted reply it is a follow-up question, answered
    //    in place; to correct a finished reply, reply to its message.
    if (inThread || isDM) {
      const thread = this.#threadOf(message);
      const open = core.openReplyIn(thread);
      if (open?.state === "stopped" || open?.state === "generating") {
        // People talk to each other here too: a reply to someone else, a mention of someone
        // else, or anyone's chat but the steerer's is not addressed to the bot.
        if (isDM || (this.#isSteerer(message.channelId, actor.userId) && !addressesSomeoneElse(message, me))) {
          await this.#correct(message, actor, text, undefined);
        }
        return;
      }
      const botsThread = isDM || open !== undefined || (inThread && "ownerId" in channel && channel.ownerId === me);
      if (!botsThread && !mentioned) return;
      if (!this.#channelAllowed(message)) return;
      if (!text) return;
      await this.#ask({ actor, text, sourceMessageId: message.id, channelId: message.channelId, thread, replyTo: message.id });
      return;
    }

    // 3. A mention in a guild channel opens a thread on the question; a question the core will
    //    refuse gets its answer in place (a reply), not an empty thread.
    if (!mentioned || !this.#channelAllowed(message)) return;
    const here: ThreadRef = { platform: DISCORD, chatId: message.channelId, threadId: message.channelId };
    if (!text || core.permissions?.allows("ask", actor, here) === false || !canHoldThreads(channel.type)) {
      // Voice and stage text chats (and forum posts' own channels) cannot hold a thread: answer in place.
      await this.#ask({ actor, text, sourceMessageId: message.id, channelId: message.channelId, thread: here, replyTo: message.id });
      return;
    }
    const place = await this.#openThread(message.channelId, message.id, text);
    await this.#ask({
      actor,
      text,
      sourceMessageId: message.id,
      channelId: place.channelId,
      thread: { platform: DISCORD, chatId: message.channelId, threadId: place.channelId },
      replyTo: place.inPlace ? message.id : undefined,
    });
  }

  /** `/ask question:...`: echo the question publicly, then stream as for a mention. */
  async onAskCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    const question = interaction.options.getString("question", true).trim();
    const actor = discordActor(interaction.user, interaction.member, interaction.guildId);
    const channel = interaction.channel;
    const inPlace = !interaction.guildId || channel?.isThread() === true || (channel != null && !canHoldThreads(channel.type));
    if (interaction.guildId && !this.#channelIdAllowed(interaction.channelId, channel?.isThread() ? channel.parentId : null)) {
      await interaction.reply({ content: "I don't answer questions in this channel.", flags: MessageFlags.Ephemeral });
      return;
    }
    // A question the core will refuse is not echoed publicly: the refusal goes to the asker alone.
    const parentId = channel?.isThread() ? (channel.parentId ?? interaction.channelId) : interaction.channelId;
    const here: ThreadRef = { platform: DISCORD, chatId: parentId, threadId: interaction.channelId };
    if (this.#d.core.permissions?.allows("ask", actor, here) === false) {
      await interaction.deferReply({ flags: MessageFlags.Ephemeral });
      const outcome = await this.#d.core.ask({ thread: here, actor, text: question, sourceMessageId: interaction.id, surface: this.#surface(interaction.channelId, undefined) });
      await interaction.editReply({ content: (outcome.notice ?? "You are not allowed to ask here.").slice(0, 2000) });
      return;
    }
    const res = await interaction.reply({
      content: `**${actor.displayName}** asked: ${question}`.slice(0, 2000),
      allowedMentions: { parse: [] },
      withResponse: true,
    });
    const echoed = res.resource?.message;
    let channelId = interaction.channelId;
    let thread: ThreadRef;
    if (inPlace || !echoed) {
      thread = here;
    } else {
      const place = await this.#openThread(interaction.channelId, echoed.id, question);
      channelId = place.channelId;
      thread = { platform: DISCORD, chatId: interaction.channelId, threadId: place.channelId };
    }
    this.#rememberSteerer(channelId, actor.userId);
    const surface = this.#surface(channelId, undefined);
    const outcome = await this.#d.core.ask({ thread, actor, text: question, sourceMessageId: interaction.id, surface });
    // The interaction's follow-ups need no channel permission: the refusal reaches the asker.
    const notice = surface.failure ? refusedNotice(surface.failure, channelId) : outcome.notice;
    if (notice) await interaction.followUp({ content: notice.slice(0, 2000), flags: MessageFlags.Ephemeral }).catch((err) => {
      this.#d.log.warn({ err: String(err) }, "discord: could not answer /ask");
    });
  }

  /** A reaction was added: the stop emoji stops a reply, the accept emoji accepts it. */
  async onReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser): Promise<void> {
    const receivedAt = performance.now();
    const { core, settings } = this.#d;
    if (user.id === this.#d.botUserId()) return;
    const emoji = reaction.emoji.name ?? "";
    const isStop = emoji === settings.stopEmoji;
    const isAccept = emoji === settings.acceptEmoji;
    if (!isStop && !isAccept) return;
    const messageId = reaction.message.id;
    if (!core.isBotMessage(DISCORD, messageId)) return;
    const guild = reaction.message.guild;
    const member = guild?.members.cache.get(user.id) ?? null;
    const actor = discordActor({ id: user.id, username: user.username ?? user.id, globalName: user.globalName }, member, guild?.id);
    if (isStop) {
      // Latency is measured only for stops that end a running generation (not a finished one).
      const open = core.openReplyIn(this.#threadOf(reaction.message));
      const running = open?.state === "generating" && open.messageIds.includes(messageId);
      const outcome = await core.stop({ platform: DISCORD, messageId, actor });
      if (outcome.ok && running) {
        noteStop(this.#d, DISCORD, performance.now() - receivedAt);
      }
      if (outcome.notice) await this.#notify(reaction.message, user.id, outcome.notice);
    } else {
      const outcome = await core.accept({ platform: DISCORD, messageId, actor });
      if (outcome.notice) await this.#notify(reaction.message, user.id, outcome.notice);
    }
  }

  async #correct(message: Message, actor: Actor, text: string, replyToMessageId: string | undefined): Promise<void> {
    if (!text) return;
    const surface = this.#surface(message.channelId, undefined);
    const outcome = await this.#d.core.correct({
      thread: this.#threadOf(message),
      actor,
      replyToMessageId,
      // Discord has no structured quote: "> quoted" lines stay in the text; the core parses them.
      correction: { text },
      messageId: message.id,
      surface,
    });
    if (surface.failure) await this.#tellRefused(surface.failure, message.channelId, actor.userId, undefined);
    else if (outcome.notice) await this.#replyNotice(message, outcome.notice);
  }

  async #ask(a: { actor: Actor; text: string; sourceMessageId: string; channelId: string; thread: ThreadRef; replyTo?: string }): Promise<void> {
    this.#rememberSteerer(a.channelId, a.actor.userId);
    const surface = this.#surface(a.channelId, a.replyTo);
    const outcome = await this.#d.core.ask({
      thread: a.thread,
      actor: a.actor,
      text: a.text,
      sourceMessageId: a.sourceMessageId,
      surface,
    });
    if (surface.failure) {
      // The question's own channel is where the asker looks; it may accept what the thread did not.
      const origin = a.thread.chatId !== a.channelId ? { channelId: a.thread.chatId, messageId: a.sourceMessageId } : undefined;
      await this.#tellRefused(surface.failure, a.channelId, a.actor.userId, origin);
    } else if (outcome.notice) {
      await this.#send(a.channelId, {
        content: `<@${a.actor.userId}> ${outcome.notice}`.slice(0, 2000),
        allowed_mentions: { users: [a.actor.userId] },
        ...(a.replyTo ? { message_reference: { message_id: a.replyTo, fail_if_not_exists: false } } : {}),
      });
    }
  }

  /**
   * Opens a public thread on a message; the thread's id is the message's id. Without the
   * permission to create threads the answer goes in place, and the log says why.
   */
  async #openThread(channelId: string, messageId: string, title: string): Promise<{ channelId: string; inPlace: boolean }> {
    try {
      const thread = (await this.#d.rest.post(Routes.threads(channelId, messageId), {
        body: { name: threadName(title), auto_archive_duration: 1440 },
      })) as { id: string };
      return { channelId: thread.id, inPlace: false };
    } catch (err) {
      if (err instanceof DiscordAPIError && err.code === RESTJSONErrorCodes.ThreadAlreadyCreatedForMessage) {
        return { channelId: messageId, inPlace: false }; // a thread's id is its starter message's id
      }
      if (isMissingPermission(err)) {
        this.#d.log.warn(
          { channelId, messageId },
          "discord: no permission to create threads in this channel (grant Create Public Threads); answering in place",
        );
        return { channelId, inPlace: true };
      }
      throw err;
    }
  }

  /** The first asker of a conversation is its steerer (a follow-up by someone else does not take it over). */
  #rememberSteerer(channelId: string, userId: string): void {
    if (this.#steerers.has(channelId)) return;
    this.#steerers.set(channelId, userId);
    if (this.#steerers.size > 10_000) this.#steerers.delete(this.#steerers.keys().next().value!);
  }

  /** True for the thread's asker; in a thread the bot has not seen an ask in (a restart), anyone. */
  #isSteerer(channelId: string, userId: string): boolean {
    const steerer = this.#steerers.get(channelId);
    return steerer === undefined || steerer === userId;
  }

  /**
   * Discord refused to show a reply (or kept failing): tell the asker once, in the question's
   * channel when there is one to try, else in a DM; every attempt is one request, never repeated.
   */
  async #tellRefused(failure: SurfaceFailure, channelId: string, userId: string, origin: { channelId: string; messageId: string } | undefined): Promise<void> {
    this.#d.log.warn({ channelId, kind: failure.kind, reason: failure.reason }, "discord: stopped streaming a reply: Discord refused or kept failing");
    const content = `<@${userId}> ${refusedNotice(failure, channelId)}`.slice(0, 2000);
    if (origin && (await this.#trySend(origin.channelId, {
      content,
      allowed_mentions: { users: [userId] },
      message_reference: { message_id: origin.messageId, fail_if_not_exists: false },
    }))) return;
    try {
      const dm = (await this.#d.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as { id: string };
      await this.#trySend(dm.id, { content, allowed_mentions: { parse: [] } });
    } catch (err) {
      this.#d.log.warn({ userId, err: String(err) }, "discord: could not open a DM to say why a reply stopped");
    }
  }

  #surface(channelId: string, replyTo: string | undefined): DiscordReplySurface {
    const metrics = this.#d.metrics;
    return new DiscordReplySurface(this.#d.rest, channelId, {
      minEditIntervalMs: this.#d.settings.minEditIntervalMs,
      isClosed: this.#d.isClosed,
      replyToMessageId: replyTo,
      onError: (op, err) => {
        metrics.surfaceErrors++;
        if ((err as { status?: number })?.status === 429) {
          metrics.rateLimitsSurfaced++;
          noteRateLimited(this.#d.observer, DISCORD, "surfaced");
        }
        this.#d.log.warn({ op, channelId, err: String(err) }, "discord: reply surface call failed");
      },
    });
  }

  #threadOf(message: Message | PartialMessage): ThreadRef {
    // A partial message (a reaction on an uncached one) may come with a partial channel.
    const ch = message.channel as Message["channel"] | null | undefined;
    const parent = message.guildId && ch?.isThread?.() ? (ch.parentId ?? message.channelId) : message.channelId;
    return { platform: DISCORD, chatId: parent, threadId: message.channelId };
  }

  #channelAllowed(message: Message): boolean {
    const ch = message.channel;
    if (!message.guildId) return true;
    return this.#channelIdAllowed(message.channelId, ch.isThread() ? ch.parentId : null);
  }

  /** `permissions.ask.channels` (empty = all); a thread counts as its parent channel too. */
  #channelIdAllowed(channelId: string, parentId: string | null): boolean {
    const allowed = this.#d.settings.askChannels;
    if (allowed.length === 0) return true;
    return allowed.includes(channelId) || (parentId !== null && allowed.includes(parentId));
  }

  async #replyNotice(message: Message, notice: string): Promise<void> {
    await this.#send(message.channelId, {
      content: notice.slice(0, 2000),
      allowed_mentions: { parse: [], replied_user: true },
      message_reference: { message_id: message.id, fail_if_not_exists: false },
    });
  }

  /** A notice after a reaction: reply to the reacted message, pinging only the reactor. */
  async #notify(message: Message | PartialMessage, userId: string, notice: string): Promise<void> {
    await this.#send(message.channelId, {
      content: `<@${userId}> ${notice}`.slice(0, 2000),
      allowed_mentions: { users: [userId] },
    });
  }

  async #send(channelId: string, body: Record<string, unknown>): Promise<void> {
    await this.#trySend(channelId, body);
  }

  /** One attempt to post a notice; false (logged) when Discord refused. */
  async #trySend(channelId: string, body: Record<string, unknown>): Promise<boolean> {
    try {
      await this.#d.rest.post(Routes.channelMessages(channelId), { body: { flags: MessageFlags.SuppressEmbeds, ...body } });
      return true;
    } catch (err) {
      this.#d.log.warn({ channelId, err: String(err) }, "discord: could not show a notice");
      return false;
    }
  }
}

/** Text channels and announcement channels can hold threads; voice/stage text chats cannot. */
function canHoldThreads(type: ChannelType): boolean {
  return type === ChannelType.GuildText || type === ChannelType.GuildAnnouncement;
}

/** A reply to another message than the bot's, or a mention of anyone but the bot (or of everyone/roles). */
function addressesSomeoneElse(message: Message, botId: string): boolean {
  const replied = message.mentions.repliedUser?.id;
  if (message.reference?.messageId && replied !== botId) return true;
  if (message.mentions.everyone || message.mentions.roles.size > 0) return true;
  return [...message.mentions.users.keys()].some((id) => id !== botId && id !== replied)
    || new RegExp(`<@[!&]?(?!${botId}>)\\d+>`).test(message.content);
}

/** What the asker is told when Discord would not show the reply. */
function refusedNotice(failure: SurfaceFailure, channelId: string): string {
  return failure.kind === "refused"
    ? `I stopped your reply: Discord does not let me post in <#${channelId}> (${failure.reason}). A server admin can give me Send Messages (and Send Messages in Threads) there; then ask again.`
    : `I stopped your reply: Discord kept failing to show it in <#${channelId}> (${failure.reason}). Please ask again in a while.`;
}

/** The text of a message without mentions of the bot. */
function stripMention(content: string, botId: string): string {
  return content.replace(new RegExp(`<@!?${botId}>`, "g"), "").trim();
}

/** A thread title from the question: one line, at most 80 characters. */
function threadName(question: string): string {
  const line = question.replace(/\s+/g, " ").trim();
  return (line.length > 80 ? `${line.slice(0, 79)}…` : line) || "steerbot";
}
