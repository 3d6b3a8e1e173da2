/**
 * Shows one streamed reply in a Telegram chat by sending and editing messages.
 *
 * Owns: the Bot API calls behind `ReplySurface` for groups, forum topics and (unless drafts are
 * on) private chats: the first message answers the user's message, in its topic; later ones
 * (the core splits at 4096) follow in the same topic. "message is not modified" is success;
 * a deleted message or a chat the bot left is `SurfaceGoneError`, so the core stops cleanly.
 * Where reactions cannot stop it (see telegram-group-checks.ts) every message of the reply
 * carries an inline Stop button while it streams; `finish()` takes the buttons away.
 */
import type { Api } from "grammy";
import { SurfaceGoneError, type ReplySurface } from "../../core/ports.ts";
import type { ChatPacer } from "./chat-pacer.ts";
import type { PartOffsets } from "./telegram-part-offsets.ts";
import type { PendingSends } from "./telegram-pending-sends.ts";
import { classifyApiError } from "./telegram-api-errors.ts";
import { messageKey, parseMessageKey } from "./telegram-ids.ts";

export const TELEGRAM_MAX_MESSAGE_LENGTH = 4096;

/** grammY's Node build types signals with the abort-controller shim; a native one works at run time. */
export type GrammySignal = Parameters<Api["editMessageText"]>[4];
/** Telegram refuses empty messages; a reply that has produced nothing visible yet shows this. */
export const EMPTY_PLACEHOLDER = "…";

/** Callback data of the inline Stop button under a streaming reply. */
export const STOP_BUTTON_DATA = "stop";

/** The inline keyboard with the Stop button (Bot API InlineKeyboardMarkup). */
export const STOP_KEYBOARD = { inline_keyboard: [[{ text: "⏹ Stop", callback_data: STOP_BUTTON_DATA }]] };

/**
 * The text to send for `text`. Telegram strips leading and trailing whitespace from messages,
 * so a whitespace-only text would be refused as empty: show the placeholder instead.
 */
export function visibleText(text: string): string {
  return text.trim().length ? text : EMPTY_PLACEHOLDER;
}

export interface TelegramReplySurfaceOptions {
  api: Api;
  pacer: ChatPacer;
  chatId: number;
  /** Forum topic to post in. */
  threadId?: number;
  /** The user's message the first part answers. */
  replyToMessageId?: number;
  minEditIntervalMs: number;
  /** Where each message starts in the reply (for quote positions); optional. */
  parts?: PartOffsets;
  /** Sends on the wire, for stops that arrive before the bot knows the message id; optional. */
  pending?: PendingSends;
  /** Put the inline Stop button under each message while the reply streams. */
  stopButton?: boolean;
}

export class TelegramReplySurface implements ReplySurface {
  readonly maxMessageLength = TELEGRAM_MAX_MESSAGE_LENGTH;
  readonly minEditIntervalMs: number;
  private sent = 0;
  /** The text last put on the wire for each message (sent or edited), to recognise a cut-back. */
  private readonly wire = new Map<string, string>();
  /** Start of each message in the reply: parts are consecutive chunks of it. */
  private readonly starts = new Map<string, number>();
  private lastKey: string | undefined;

  constructor(private readonly o: TelegramReplySurfaceOptions) {
    this.minEditIntervalMs = o.minEditIntervalMs;
  }

  async send(text: string): Promise<string> {
    const replyTo = this.sent === 0 ? this.o.replyToMessageId : undefined;
    try {
      const sending = this.o.pacer.run(this.o.chatId, () =>
        this.o.api.sendMessage(this.o.chatId, visibleText(text), {
          ...(this.o.threadId !== undefined ? { message_thread_id: this.o.threadId } : {}),
          ...(replyTo !== undefined ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}),
          link_preview_options: { is_disabled: true },
          ...this.markup(),
        }),
      );
      const msg = await (this.o.pending ? this.o.pending.track(this.o.chatId, sending) : sending);
      this.sent++;
      const key = messageKey(this.o.chatId, msg.message_id);
      const prev = this.lastKey;
      const start = prev === undefined ? 0 : this.starts.get(prev)! + this.wire.get(prev)!.length;
      this.starts.set(key, start);
      this.lastKey = key;
      this.wire.set(key, text);
      this.o.parts?.note(key, start, text);
      return key;
    } catch (err) {
      throw translate(err, `send to chat ${this.o.chatId}`);
    }
  }

  async edit(messageId: string, text: string): Promise<void> {
    const { chatId, messageId: id } = parseMessageKey(messageId);
    // Taking the message back to a start of what it already showed (the cut after a stop) passes
    // the stop's hold: it must go out, or the message keeps text beyond the stored stop point.
    const cutBack = isCutBack(this.wire.get(messageId), text);
    try {
      await this.o.pacer.run(chatId, (signal) => {
        this.wire.set(messageId, text);
        if (this.starts.has(messageId)) this.o.parts?.note(messageId, this.starts.get(messageId)!, text);
        // An edit without the keyboard would remove the Stop button (Bot API editMessageText).
        return this.o.api.editMessageText(chatId, id, visibleText(text), { link_preview_options: { is_disabled: true }, ...this.markup() }, signal as GrammySignal);
      }, messageId, { cutBack });
    } catch (err) {
      if (classifyApiError(err) === "not-modified") return;
      throw translate(err, `edit ${messageId}`);
    }
  }

  /** The reply has ended (done, stopped or failed): take the Stop buttons away. Never throws. */
  async finish(): Promise<void> {
    if (!this.o.stopButton || this.finished) return;
    this.finished = true;
    for (const key of this.wire.keys()) {
      const { chatId, messageId } = parseMessageKey(key);
      await this.o.pacer
        .run(chatId, () => this.o.api.editMessageReplyMarkup(chatId, messageId, { reply_markup: { inline_keyboard: [] } }))
        .catch((err: unknown) => {
          if (classifyApiError(err) !== "not-modified") throw err;
        })
        .catch(() => undefined);
    }
  }

  private finished = false;

  private markup(): { reply_markup?: typeof STOP_KEYBOARD } {
    return this.o.stopButton && !this.finished ? { reply_markup: STOP_KEYBOARD } : {};
  }
}

/** Whether `next` shows strictly less than `onWire`, a start of it: an edit that only takes text back. */
export function isCutBack(onWire: string | undefined, next: string): boolean {
  return onWire !== undefined && next.length < onWire.length && onWire.startsWith(next);
}

/** `SurfaceGoneError` for errors that will never heal; the original error otherwise. */
export function translate(err: unknown, what: string): unknown {
  if (classifyApiError(err) === "gone") {
    return new SurfaceGoneError(`telegram: ${what}: ${(err as Error).message}`, { cause: err });
  }
  return err;
}
