/**
 * Several instances serving one Telegram bot (webhook mode behind a load balancer, one
 * PostgreSQL): each update is handled once, and by the instance that holds the reply it is about.
 *
 * Owns: claiming each update in the database (a retry Telegram sends to another instance is
 * dropped there: `telegram_processed_updates`), and deciding where an update is handled. A
 * reply's live state — its stream, the text its messages show, its drafts — stays in the
 * instance that streams it, so an update about a reply another running instance streams (a
 * stop or accept reaction, a draft's stop button, the inline Stop button, a reply to one of its
 * messages, and in a private chat the next message while a reply there streams or is stopped)
 * is handed to that instance whole, over PostgreSQL NOTIFY, and handled there exactly as if
 * Telegram had sent it there: a stop stops at the text that instance showed, a correction is
 * aligned against its text and resumes there. The instance it came from waits for the
 * acknowledgement. When the instance streaming the reply is gone, a stop is answered clearly
 * (nothing is half-applied); a correction reaches this instance's core, which answers that the
 * reply can no longer be steered.
 *
 * Which generation a message belongs to comes from the database (the core records each
 * message of a reply as it is sent, `generations.platform_message_ids`, with
 * `generations.instance_id`); whether an instance runs, from its instance lock.
 */
import type { Context, NextFunction } from "grammy";
import type { Chat, Update } from "grammy/types";
import { TELEGRAM } from "./telegram-core-port.ts";
import type { TelegramDeps } from "./telegram-deps.ts";
import { draftKey, messageKey } from "./telegram-ids.ts";
import type { GenerationOwner, InstanceMessage, TelegramInstances } from "./telegram-instances.ts";
import { STOP_BUTTON_DATA } from "./telegram-reply-surface.ts";
import { addedEmoji } from "./telegram-stops.ts";

/** How long the instance that handed an update on waits for its acknowledgement (under the webhook's 9 s answer). */
const ACK_TIMEOUT_MS = 8_000;
/** A message another instance has just sent may not be recorded yet: look again this often, this many times. */
const RECORD_WAIT_MS = 100;
const RECORD_WAIT_ROUNDS = 5;
/** PostgreSQL's NOTIFY payload limit is 8000 bytes. */
const NOTIFY_MAX_BYTES = 7900;

/** Answer to a stop (or a change handed on and never acknowledged) for a reply whose instance has stopped. */
export const OWNER_GONE_NOTICE =
  "That reply was being written by another instance of this bot, which has stopped, so it can no longer be stopped or corrected. Ask again to start a new one.";
/** Answer to a correction too long for a NOTIFY payload. */
export const TOO_LONG_TO_FORWARD_NOTICE =
  "That message is too long to reach the reply it answers, which another instance of this bot is writing. Please send a shorter correction.";

type Route = { kind: "local" } | { kind: "forward"; to: string } | { kind: "gone" };
const LOCAL: Route = { kind: "local" };

/** What became of one update in this instance. */
interface UpdateState {
  /** Claimed by another instance (or earlier): not handled here. */
  duplicate?: boolean;
  /** Handed to another instance: settles once it acknowledged (or did not, and that was dealt with). */
  forwarded?: Promise<{ handledHere: boolean }>;
}

export class TelegramInstanceRouting {
  private readonly states = new WeakMap<Update, UpdateState>();
  /** Updates another instance handed here → the instance they came from. */
  private readonly incoming = new WeakMap<Update, string>();
  /** Acknowledgements awaited: "botId:updateId" → resolve. */
  private readonly acks = new Map<string, () => void>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly d: TelegramDeps,
    private readonly port: TelegramInstances,
  ) {}

  /** Starts hearing the other instances (before updates arrive). */
  async start(): Promise<void> {
    this.unlisten = await this.port.listen((m) => this.onMessage(m), {
      onDisconnected: (err) => this.d.log.warn({ err: String(err) }, "telegram: lost the database connection that hears the other instances; reconnecting"),
      onResubscribed: () => this.d.log.info({}, "telegram: hearing the other instances again"),
    });
  }

  async stop(): Promise<void> {
    const u = this.unlisten;
    this.unlisten = undefined;
    await u?.().catch(() => {});
    for (const ack of this.acks.values()) ack();
  }

  /** Whether another instance handed this update here (it was claimed there). */
  isIncoming(update: Update): boolean {
    return this.incoming.has(update);
  }

  /**
   * Middleware, inside the per-chat order: claims the update (a repeat goes no further), then
   * lets it through to this instance's handlers, hands it to the instance that streams its
   * reply, or answers that that instance is gone.
   */
  readonly middleware = async (ctx: Context, next: NextFunction): Promise<void> => {
    const u = ctx.update;
    if (this.incoming.has(u)) return next();
    if (!(await this.claim(ctx))) {
      this.states.set(u, { duplicate: true });
      return;
    }
    let route: Route;
    try {
      route = await this.route(ctx);
    } catch (err) {
      this.d.log.error({ update: u.update_id, err: String(err) }, "telegram: could not tell which instance streams the reply; handling the update here");
      route = LOCAL;
    }
    if (route.kind === "gone") return this.answerGone(ctx);
    if (route.kind === "forward" && (await this.forward(ctx, route.to))) return;
    return next();
  };

  /**
   * After the update's handlers (outside the per-chat order): waits for the instance it was
   * handed to, records it handled, acknowledges an update handed here. Answers what it was.
   */
  async finish(ctx: Context): Promise<"duplicate" | "forwarded" | undefined> {
    const u = ctx.update;
    const state = this.states.get(u);
    if (state?.duplicate) return "duplicate";
    const botId = ctx.me.id;
    let outcome: "forwarded" | undefined;
    if (state?.forwarded) {
      outcome = "forwarded";
      if (!(await state.forwarded).handledHere) return outcome; // the instance it went to records it
    }
    await this.port.markHandled(botId, u.update_id).catch((err) => this.d.log.warn({ update: u.update_id, err: String(err) }, "telegram: could not record the update as handled"));
    const from = this.incoming.get(u);
    if (from) {
      await this.port
        .send({ kind: "done", to: from, from: this.port.self, botId, updateId: u.update_id })
        .catch((err) => this.d.log.warn({ update: u.update_id, err: String(err) }, "telegram: could not acknowledge a forwarded update"));
    }
    return outcome;
  }

  // ---------------------------------------------------------------------------------------

  private async claim(ctx: Context): Promise<boolean> {
    try {
      return await this.port.claim(ctx.me.id, ctx.update.update_id);
    } catch (err) {
      // Better handled twice (the core refuses a message it has seen) than not at all.
      this.d.log.error({ update: ctx.update.update_id, err: String(err) }, "telegram: could not claim the update in the database; handling it here");
      return true;
    }
  }

  private onMessage(m: InstanceMessage): void {
    if (m.to !== this.port.self) return;
    if (m.kind === "done") {
      this.acks.get(ackKey(m.botId, m.updateId))?.();
      return;
    }
    if (m.kind !== "update" || typeof m.update?.update_id !== "number") return;
    this.d.log.info({ update: m.update.update_id, from: m.from }, "telegram: handling an update another instance handed here");
    this.incoming.set(m.update, m.from);
    this.d.track(this.d.bot.handleUpdate(m.update));
  }

  /** Where this update is handled. */
  private async route(ctx: Context): Promise<Route> {
    const u = ctx.update;
    const { drafts, config } = this.d;
    if (u.message_reaction) {
      const r = u.message_reaction;
      if (!r.user) return LOCAL;
      const added = addedEmoji(r.old_reaction, r.new_reaction);
      const stop = added.some((e) => config.stopReactions.includes(e));
      if (!stop && !added.some((e) => config.acceptReactions.includes(e))) return LOCAL;
      return this.byMessage(r.chat, drafts.coreKey(messageKey(r.chat.id, r.message_id)), stop);
    }
    if (u.stopped_message_generation) {
      const s = u.stopped_message_generation;
      return this.byMessage(s.chat, draftKey(s.chat.id, s.draft_id), true);
    }
    const q = u.callback_query;
    if (q?.data === STOP_BUTTON_DATA && q.message) return this.byMessage(q.message.chat, drafts.coreKey(messageKey(q.message.chat.id, q.message.message_id)), true);
    const msg = u.message;
    if (msg?.text !== undefined && !msg.text.startsWith("/")) {
      const r = msg.reply_to_message;
      const toBot = r !== undefined && r.from?.id === ctx.me.id && !(msg.is_topic_message && r.message_id === msg.message_thread_id);
      if (toBot) {
        const key = drafts.coreKey(messageKey(msg.chat.id, r.message_id));
        if (this.d.core.isBotMessage(TELEGRAM, key)) return LOCAL;
        const owner = await this.port.ownerOfMessage(key);
        if (owner) return this.toOwner(owner, false);
      }
      if (msg.chat.type !== "private") return LOCAL;
      // In a private chat the next message corrects the reply there that streams or was stopped
      // (a reply to a message a draft became names no recorded message: the chat's newest reply).
      const newest = await this.port.newestInChat(String(msg.chat.id));
      if (newest && (toBot || newest.status === "streaming" || newest.status === "stopped")) return this.toOwner(newest, false);
    }
    return LOCAL;
  }

  /** A stop, accept or button on the bot's message `key` in `chat`. */
  private async byMessage(chat: Chat, key: string, stop: boolean): Promise<Route> {
    // Known here, or a send of this instance still on the wire (the stop handler waits for it).
    if (this.d.core.isBotMessage(TELEGRAM, key) || this.d.pending.has(chat.id)) return LOCAL;
    for (let round = 0; ; round++) {
      // In a private chat a draft's message is known by the draft's id only: the chat's newest reply.
      const owner = (await this.port.ownerOfMessage(key)) ?? (chat.type === "private" ? await this.port.newestInChat(String(chat.id)) : undefined);
      if (owner) return this.toOwner(owner, stop);
      // The first message of a reply another instance streams here may not be recorded yet.
      if (round >= RECORD_WAIT_ROUNDS) return LOCAL;
      const newest = await this.port.newestInChat(String(chat.id));
      if (!newest || newest.status !== "streaming" || newest.instanceId === null || newest.instanceId === this.port.self) return LOCAL;
      await new Promise((r) => setTimeout(r, RECORD_WAIT_MS));
    }
  }

  private async toOwner(owner: GenerationOwner, stop: boolean): Promise<Route> {
    if (owner.instanceId === null || owner.instanceId === this.port.self) return LOCAL;
    if (await this.port.alive(owner.instanceId)) return { kind: "forward", to: owner.instanceId };
    // Its instance is gone: a stop of a reply it was writing is answered here; anything else
    // reaches this instance's core, which knows no such reply and says so.
    return stop && owner.status === "streaming" ? { kind: "gone" } : LOCAL;
  }

  /** Hands the update to `to`; false when it could not be sent (then it is handled here). */
  private async forward(ctx: Context, to: string): Promise<boolean> {
    const u = ctx.update;
    const botId = ctx.me.id;
    const message: InstanceMessage = { kind: "update", to, from: this.port.self, update: compact(u) };
    if (Buffer.byteLength(JSON.stringify(message)) > NOTIFY_MAX_BYTES) {
      await this.d.notices.reply(ctx, TOO_LONG_TO_FORWARD_NOTICE);
      return true;
    }
    const key = ackKey(botId, u.update_id);
    let ack!: (ok: boolean) => void;
    const acked = new Promise<boolean>((r) => (ack = r));
    const timer = setTimeout(() => ack(false), ACK_TIMEOUT_MS);
    this.acks.set(key, () => ack(true));
    try {
      await this.port.markForwarded(botId, u.update_id, to);
      await this.port.send(message);
    } catch (err) {
      clearTimeout(timer);
      this.acks.delete(key);
      this.d.log.error({ update: u.update_id, to, err: String(err) }, "telegram: could not hand the update to the instance streaming its reply; handling it here");
      return false;
    }
    this.d.log.info({ update: u.update_id, to }, "telegram: update handed to the instance streaming its reply");
    const forwarded = (async () => {
      const ok = await acked;
      clearTimeout(timer);
      this.acks.delete(key);
      if (ok) return { handledHere: false };
      if (await this.port.alive(to).catch(() => true)) {
        this.d.log.warn({ update: u.update_id, to }, `telegram: no acknowledgement in ${ACK_TIMEOUT_MS} ms from the instance the update was handed to; it still runs and handles it`);
        return { handledHere: false };
      }
      this.d.log.warn({ update: u.update_id, to }, "telegram: the instance the update was handed to stopped before handling it");
      await this.answerGone(ctx);
      return { handledHere: true };
    })();
    this.states.set(u, { forwarded });
    return true;
  }

  /** Says that the reply's instance is gone, where the person will see it. */
  private async answerGone(ctx: Context): Promise<void> {
    const u = ctx.update;
    if (u.callback_query) {
      await ctx.answerCallbackQuery({ text: OWNER_GONE_NOTICE.slice(0, 190) }).catch((err) => this.d.log.warn({ err: String(err) }, "telegram: could not answer the button"));
    } else if (u.message_reaction) {
      await this.d.notices.send(u.message_reaction.chat.id, OWNER_GONE_NOTICE, u.message_reaction.message_id);
    } else if (u.stopped_message_generation) {
      await this.d.notices.send(u.stopped_message_generation.chat.id, OWNER_GONE_NOTICE, undefined, u.stopped_message_generation.message_thread_id);
    } else if (u.message) {
      await this.d.notices.reply(ctx, OWNER_GONE_NOTICE);
    }
  }
}

function ackKey(botId: number, updateId: number): string {
  return `${botId}:${updateId}`;
}

/**
 * The update as it is handed on: the message replied to keeps what the handlers read of it
 * (id, sender, chat, topic), not its text, so a NOTIFY payload holds a long reply's correction.
 */
function compact(u: Update): Update {
  const m = u.message;
  const r = m?.reply_to_message;
  if (!m || !r) return u;
  const { message_id, date, chat, from, message_thread_id, is_topic_message, forum_topic_created } = r;
  return { ...u, message: { ...m, reply_to_message: { message_id, date, chat, from, message_thread_id, is_topic_message, forum_topic_created } as typeof r } };
}
