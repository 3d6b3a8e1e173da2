/**
 * Shows one streamed reply in a private chat as a Telegram draft, then as a real message.
 *
 * Owns: `sendMessageDraft` streaming (Bot API 9.x; the user sees the text grow, with Telegram's
 * own stop button) and turning each finished draft into a persistent message. Drafts have no
 * message id, so the core gets `<chatId>:d<draftId>`; the {@link DraftRegistry} remembers which
 * real message a draft became, so reactions and replies on that message reach the same reply.
 */
import type { Api } from "grammy";
import type { ReplySurface } from "../../core/ports.ts";
import type { ChatPacer } from "./chat-pacer.ts";
import type { PartOffsets } from "./telegram-part-offsets.ts";
import type { PendingSends } from "./telegram-pending-sends.ts";
import { classifyApiError } from "./telegram-api-errors.ts";
import { draftKey, messageKey, parseMessageKey } from "./telegram-ids.ts";
import { isCutBack, TELEGRAM_MAX_MESSAGE_LENGTH, translate, visibleText, type GrammySignal } from "./telegram-reply-surface.ts";

interface DraftState {
  chatId: number;
  draftId: number;
  threadId?: number;
  replyToMessageId?: number;
  /** Last text shown in the draft. */
  text: string;
  /** The text last put on the wire for it (draft or edit of its message), to recognise a cut-back. */
  wire?: string;
  /** Set once the draft was persisted as a message. */
  realMessageId?: number;
  finishing?: Promise<void>;
}

/** How many drafts, and draft → message links, a bot remembers by default. */
export const MAX_DRAFTS = 10_000;

/**
 * Drafts of the whole bot: draft key → state, real message key → draft key. Both maps are capped
 * at `max` entries, the oldest forgotten first (a Map iterates in insertion order): a bot in
 * many private chats makes a draft per reply part for as long as it runs. A forgotten link only
 * means that a reaction or reply to a very old draft's message reaches the core under the
 * message's own key, which the core no longer knows either; it answers as for any old message.
 */
export class DraftRegistry {
  private readonly drafts = new Map<string, DraftState>();
  private readonly aliases = new Map<string, string>();

  constructor(private readonly max = MAX_DRAFTS) {}

  add(state: DraftState): string {
    const key = draftKey(state.chatId, state.draftId);
    this.drafts.delete(key);
    this.drafts.set(key, state);
    trim(this.drafts, this.max);
    return key;
  }

  get(key: string): DraftState | undefined {
    return this.drafts.get(key);
  }

  /** The id the core knows for a real message key (a draft key if the message was a draft). */
  coreKey(realKey: string): string {
    return this.aliases.get(realKey) ?? realKey;
  }

  link(key: string, realKey: string): void {
    this.aliases.delete(realKey);
    this.aliases.set(realKey, key);
    trim(this.aliases, this.max);
  }
}

/** Deletes the oldest entries of `m` until at most `max` remain. */
function trim(m: Map<string, unknown>, max: number): void {
  while (m.size > Math.max(1, max)) m.delete(m.keys().next().value as string);
}

export interface TelegramDraftSurfaceOptions {
  api: Api;
  pacer: ChatPacer;
  registry: DraftRegistry;
  chatId: number;
  threadId?: number;
  replyToMessageId?: number;
  minEditIntervalMs: number;
  /** Where each part starts in the reply (for quote positions); optional. */
  parts?: PartOffsets;
  /** Sends on the wire, for a stop pressed before the first draft call returned; optional. */
  pending?: PendingSends;
}

export class TelegramDraftSurface implements ReplySurface {
  readonly maxMessageLength = TELEGRAM_MAX_MESSAGE_LENGTH;
  readonly minEditIntervalMs: number;
  private readonly mine: string[] = [];
  /** Start of each part in the reply: parts are consecutive chunks of it. */
  private readonly starts = new Map<string, number>();

  constructor(private readonly o: TelegramDraftSurfaceOptions) {
    this.minEditIntervalMs = o.minEditIntervalMs;
  }

  async send(text: string): Promise<string> {
    // The core moved on to a next part: the previous one is final, persist it.
    const prev = this.mine.at(-1);
    if (prev) await this.persist(prev);
    const state: DraftState = {
      chatId: this.o.chatId,
      draftId: 1 + Math.floor(Math.random() * 2_000_000_000),
      threadId: this.o.threadId,
      replyToMessageId: this.mine.length === 0 ? this.o.replyToMessageId : undefined,
      text,
    };
    const start = prev === undefined ? 0 : this.starts.get(prev)! + (this.o.registry.get(prev)?.text.length ?? 0);
    const showing = this.showDraft(state, text);
    await (this.o.pending ? this.o.pending.track(this.o.chatId, showing) : showing);
    const key = this.o.registry.add(state);
    this.mine.push(key);
    this.starts.set(key, start);
    this.o.parts?.note(key, start, text);
    return key;
  }

  async edit(messageId: string, text: string): Promise<void> {
    const state = this.o.registry.get(messageId);
    if (state && state.realMessageId === undefined && !state.finishing) {
      await this.showDraft(state, text);
      state.text = text;
      this.o.parts?.note(messageId, this.starts.get(messageId) ?? 0, text);
      return;
    }
    if (state?.finishing) await state.finishing;
    const target = state ? { chatId: state.chatId, messageId: state.realMessageId! } : parseMessageKey(messageId);
    if (state) state.text = text;
    if (this.starts.has(messageId)) this.o.parts?.note(messageId, this.starts.get(messageId)!, text);
    const cutBack = isCutBack(state?.wire, text);
    try {
      await this.o.pacer.run(target.chatId, (signal) => {
        if (state) state.wire = text;
        return this.o.api.editMessageText(target.chatId, target.messageId, visibleText(text), { link_preview_options: { is_disabled: true } }, signal as GrammySignal);
      }, messageId, { cutBack });
    } catch (err) {
      if (classifyApiError(err) === "not-modified") return;
      throw translate(err, `edit ${messageId}`);
    }
  }

  /** Persists every draft of this surface still open (call when the generation has ended). */
  async finish(): Promise<void> {
    for (const key of this.mine) await this.persist(key);
  }

  private async showDraft(state: DraftState, text: string): Promise<void> {
    // The cut after a stop passes the stop's hold (see ChatPacer): the draft, and the message it
    // becomes, must end at the stored stop point.
    const cutBack = isCutBack(state.wire, text);
    try {
      await this.o.pacer.run(state.chatId, (signal) => {
        state.wire = text;
        return this.o.api.sendMessageDraft(state.chatId, state.draftId, text, {
          can_stop: true,
          keep_on_stop: true,
          ...(state.threadId !== undefined ? { message_thread_id: state.threadId } : {}),
        }, signal as GrammySignal);
      }, draftKey(state.chatId, state.draftId), { cutBack });
    } catch (err) {
      throw translate(err, `draft in chat ${state.chatId}`);
    }
  }

  private persist(key: string): Promise<void> {
    const state = this.o.registry.get(key);
    if (!state || state.realMessageId !== undefined) return Promise.resolve();
    state.finishing ??= (async () => {
      try {
        const msg = await this.o.pacer.run(state.chatId, () =>
          this.o.api.sendMessage(state.chatId, visibleText(state.text), {
            ...(state.threadId !== undefined ? { message_thread_id: state.threadId } : {}),
            ...(state.replyToMessageId !== undefined ? { reply_parameters: { message_id: state.replyToMessageId, allow_sending_without_reply: true } } : {}),
            link_preview_options: { is_disabled: true },
          }),
        );
        state.realMessageId = msg.message_id;
        this.o.registry.link(key, messageKey(state.chatId, msg.message_id));
      } catch (err) {
        throw translate(err, `persist draft ${key}`);
      }
    })();
    return state.finishing;
  }
}
