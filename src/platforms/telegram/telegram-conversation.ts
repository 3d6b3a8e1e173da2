/**
 * Questions and corrections from Telegram messages.
 *
 * Owns: deciding what a text message is — a question (any message in a private chat; a
 * mention, a reply to the bot or /ask in a group; answered in its forum topic) → `core.ask`;
 * a reply to the bot's message (with Telegram's quote, if any), or in a private chat the next
 * message after (or during) a stop → `core.correct` — and the reply surface each one streams
 * through: a draft in private chats (if on), edited messages elsewhere, with the inline Stop
 * button in groups where reactions cannot reach the bot. Generations run in the background
 * (`track`); when one ends, its draft is persisted or its Stop buttons removed, and the core's
 * notice is shown.
 */
import type { Context } from "grammy";
import type { Message } from "grammy/types";
import type { Correction, Outcome, ReplySurface, ThreadRef } from "../../core/ports.ts";
import { TELEGRAM } from "./telegram-core-port.ts";
import type { TelegramDeps } from "./telegram-deps.ts";
import { TelegramDraftSurface } from "./telegram-draft-surface.ts";
import { GroupChecks } from "./telegram-group-checks.ts";
import { messageKey } from "./telegram-ids.ts";
import { TelegramReplySurface } from "./telegram-reply-surface.ts";
import type { TelegramStops } from "./telegram-stops.ts";

export class TelegramConversation {
  constructor(
    private readonly d: TelegramDeps,
    private readonly stops: TelegramStops,
  ) {}

  async onText(ctx: Context): Promise<void> {
    const msg = ctx.msg!;
    const text = msg.text ?? "";
    if (text.startsWith("/")) return; // an unknown command, or one for another bot
    const chat = ctx.chat!;
    const isPrivate = chat.type === "private";
    const replied = this.repliedBotMessage(ctx, msg);

    if (replied) {
      const coreKey = this.d.drafts.coreKey(messageKey(chat.id, replied.message_id));
      if (this.isCorrectionTarget(msg, coreKey)) {
        // quote.position counts in the message replied to; the core aligns against the whole reply.
        const quote = msg.quote ? { text: msg.quote.text, position: this.d.parts.inReply(coreKey, msg.quote.position) } : undefined;
        return this.startCorrection(ctx, msg, text, coreKey, quote);
      }
    }
    if (isPrivate) {
      // "The next message in its thread": after a stop, a plain message is the correction; while
      // a reply streams, typing stops it at what was shown and corrects it (as on Discord).
      const open = this.d.core.openReplyIn(threadRef(msg));
      if (open?.state === "stopped" || open?.state === "generating") return this.startCorrection(ctx, msg, text, undefined, undefined);
      return this.startAsk(ctx, msg, text);
    }
    if (replied) return this.startAsk(ctx, msg, text);
    const stripped = this.stripMention(msg);
    if (stripped !== undefined) {
      if (!stripped) return this.d.notices.reply(ctx, "Ask me something after the mention.");
      return this.startAsk(ctx, msg, stripped);
    }
  }

  async startAsk(ctx: Context, msg: Message, text: string): Promise<void> {
    const actor = await this.d.actors.messageActor(msg);
    const surface = await this.surfaceFor(msg);
    const run = this.d.core.ask({
      thread: threadRef(msg),
      actor,
      text,
      sourceMessageId: messageKey(msg.chat.id, msg.message_id),
      surface,
    });
    this.d.track(this.finishReply(ctx, msg, surface, run, "ask"));
  }

  /**
   * Whether a reply to the bot's message `coreKey` corrects it. In a private chat, always (a
   * question there needs no reply). In a group, replying to the bot is also how people ask a
   * follow-up, so it corrects only when the user quoted part of the message, or the reply it
   * belongs to is the thread's open one and was stopped (or is still streaming).
   */
  private isCorrectionTarget(msg: Message, coreKey: string): boolean {
    if (!this.d.core.isBotMessage(TELEGRAM, coreKey)) return false;
    if (msg.quote || msg.chat.type === "private") return true;
    const open = this.d.core.openReplyIn(threadRef(msg));
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
    const handle = `@${this.d.bot.botInfo.username}`.toLowerCase();
    const mention = (msg.entities ?? []).find(
      (e) => e.type === "mention" && text.slice(e.offset, e.offset + e.length).toLowerCase() === handle,
    );
    if (mention) return (text.slice(0, mention.offset) + text.slice(mention.offset + mention.length)).replace(/\s+/g, " ").trim();
    // Clients always send an entity; accept a bare "@bot" too (forwarded text, old clients).
    const i = text.toLowerCase().indexOf(handle);
    if (i >= 0 && !/\w/.test(text.charAt(i + handle.length))) return (text.slice(0, i) + text.slice(i + handle.length)).replace(/\s+/g, " ").trim();
    return undefined;
  }

  private async startCorrection(ctx: Context, msg: Message, text: string, replyTo: string | undefined, quote: Correction["quote"]): Promise<void> {
    const actor = await this.d.actors.messageActor(msg);
    const surface = await this.surfaceFor(msg);
    const run = this.d.core.correct({
      thread: threadRef(msg),
      actor,
      replyToMessageId: replyTo,
      correction: { text, ...(quote ? { quote } : {}) },
      messageId: messageKey(msg.chat.id, msg.message_id),
      surface,
    });
    this.d.track(this.finishReply(ctx, msg, surface, run, "correct"));
  }

  /** After a generation: persist drafts or remove Stop buttons, show the core's notice to the user. */
  private async finishReply(ctx: Context, msg: Message, surface: ReplySurface, run: Promise<Outcome>, what: string): Promise<void> {
    let out: Outcome;
    try {
      out = await run;
    } catch (err) {
      // The core promises never to reject; if it does, say so in the log and move on.
      this.d.log.error({ err: String(err), what }, "telegram: core call rejected");
      out = { ok: false };
    }
    // The stream may end because a stop is being applied: persist the cut draft, not the text
    // before the cut (which would show, as a message, what the person never saw); take the
    // Stop buttons away only once the cut is on screen.
    await this.stops.settled(msg.chat.id);
    if (surface instanceof TelegramDraftSurface) {
      await surface.finish().catch((err) => this.d.log.warn({ err: String(err) }, "telegram: draft not persisted"));
    } else if (surface instanceof TelegramReplySurface) {
      await surface.finish();
    }
    if (out.notice) await this.d.notices.reply(ctx, out.notice, msg);
  }

  private async surfaceFor(msg: Message): Promise<ReplySurface> {
    const d = this.d;
    const threadId = msg.is_topic_message ? msg.message_thread_id : undefined;
    // The core need not plan edits faster than the chat can take them.
    const minEditIntervalMs = Math.max(d.config.minEditIntervalMs, d.pacer.gapFor(msg.chat.id));
    const base = { api: d.bot.api, pacer: d.pacer, chatId: msg.chat.id, threadId, replyToMessageId: msg.message_id, minEditIntervalMs, parts: d.parts, pending: d.pending };
    if (d.config.privateDrafts && msg.chat.type === "private") return new TelegramDraftSurface({ ...base, registry: d.drafts });
    // In a group a reaction reaches the bot only if it is an admin and the reaction is allowed:
    // where it cannot, the reply carries a Stop button (the first reply there also says why).
    const stopButton = GroupChecks.isGroup(msg.chat) && !(await d.groups.verdict(msg.chat.id, threadId)).reactionsWork;
    return new TelegramReplySurface({ ...base, stopButton });
  }
}

/** The core's thread of a message: its forum topic, or the chat. */
export function threadRef(msg: Message): ThreadRef {
  const chatId = String(msg.chat.id);
  const topic = msg.is_topic_message && msg.message_thread_id !== undefined ? String(msg.message_thread_id) : chatId;
  return { platform: TELEGRAM, chatId, threadId: topic };
}
