/**
 * Stopping a streaming reply (and accepting one) from Telegram.
 *
 * Owns: the three ways a Telegram user stops a reply — a stop reaction (default 👎) on its
 * message, Telegram's own stop button on a private-chat draft, and the inline Stop button the
 * bot adds where reactions cannot reach it — turned into one `core.stop` at what the message
 * showed; an accept reaction (👍) into `core.accept`. A stop is applied at once: the chat's
 * queued edits of that message are dropped and new ones refused until the core has cut (the
 * cut-back itself passes). Stops being applied are kept per chat, so the end of the stream
 * (persisting a draft, removing the Stop button) waits until the cut is on screen.
 */
import type { Context } from "grammy";
import type { ReactionType } from "grammy/types";
import { noteStop } from "../platform-metrics.ts";
import type { Actor, Outcome } from "../../core/ports.ts";
import { TELEGRAM } from "./telegram-core-port.ts";
import type { TelegramDeps } from "./telegram-deps.ts";
import { draftKey, messageKey } from "./telegram-ids.ts";

export class TelegramStops {
  /** Stops being applied, per chat: a draft is persisted only once they have cut it. */
  private readonly stopping = new Map<number, Set<Promise<unknown>>>();

  constructor(private readonly d: TelegramDeps) {}

  /** Resolves when the stops being applied in `chatId` now have settled. */
  async settled(chatId: number): Promise<void> {
    await Promise.allSettled([...(this.stopping.get(chatId) ?? [])]);
  }

  async onReaction(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const r = ctx.messageReaction!;
    if (!r.user) return; // anonymous (a channel or an anonymous admin): nobody to hold responsible
    const { stopReactions, acceptReactions } = this.d.config;
    const added = addedEmoji(r.old_reaction, r.new_reaction);
    const stop = added.some((e) => stopReactions.includes(e));
    const accept = !stop && added.some((e) => acceptReactions.includes(e));
    if (!stop && !accept) return;
    const key = await this.knownKey(r.chat.id, () => this.d.drafts.coreKey(messageKey(r.chat.id, r.message_id)));
    if (!key) return;
    const actor = await this.d.actors.actor(r.user, r.chat);
    const out = stop ? await this.applyStop(r.chat.id, key, actor, t0) : await this.d.core.accept({ platform: TELEGRAM, messageId: key, actor });
    if (out.notice) await this.d.notices.send(r.chat.id, out.notice, r.message_id);
  }

  async onDraftStopped(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const s = ctx.update.stopped_message_generation!;
    const key = await this.knownKey(s.chat.id, () => draftKey(s.chat.id, s.draft_id));
    if (!key) return;
    const actor: Actor = { platform: TELEGRAM, userId: String(s.chat.id), displayName: s.chat.username ? `@${s.chat.username}` : s.chat.first_name, roles: [] };
    const out = await this.applyStop(s.chat.id, key, actor, t0);
    if (out.notice) await this.d.notices.send(s.chat.id, out.notice, undefined, s.message_thread_id);
  }

  /**
   * The inline Stop button (groups where reactions cannot reach the bot): the same stop as the
   * reaction, at what the message showed. The press is answered once the core has decided, so
   * the answer says what happened.
   */
  async onStopButton(ctx: Context): Promise<void> {
    const t0 = performance.now();
    const q = ctx.callbackQuery!;
    const m = q.message;
    if (!m) return void (await ctx.answerCallbackQuery());
    const key = await this.knownKey(m.chat.id, () => this.d.drafts.coreKey(messageKey(m.chat.id, m.message_id)));
    if (!key) return void (await ctx.answerCallbackQuery({ text: "That reply has ended." }));
    const actor = await this.d.actors.actor(q.from, m.chat);
    const out = await this.applyStop(m.chat.id, key, actor, t0);
    const text = out.notice ?? (out.ok ? "Stopped where you saw it. Reply to my message with a correction." : "Only the person who asked (or an admin) can stop this reply.");
    await ctx.answerCallbackQuery({ text: text.slice(0, 190) });
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
      if (this.d.core.isBotMessage(TELEGRAM, k)) return k;
      if (round >= 3 || !this.d.pending.has(chatId)) return undefined;
      await this.d.pending.settled(chatId);
    }
  }

  /**
   * Applies a stop. Edits of this message still queued behind the chat's limit (or waiting out
   * a 429) were never shown: drop them, and refuse new ones while the core cuts (the cut-back
   * itself passes), so the stop is applied now and no unseen text appears after it.
   */
  private async applyStop(chatId: number, key: string, actor: Actor, t0: number): Promise<Outcome> {
    const release = this.d.pacer.hold(chatId, key);
    try {
      return await this.applying(chatId, this.d.core.stop({ platform: TELEGRAM, messageId: key, actor }));
    } finally {
      release();
      noteStop(this.d, TELEGRAM, performance.now() - t0);
    }
  }

  /** Registers a stop being applied in `chatId` until it settles (see `stopping`). */
  private applying<T>(chatId: number, stop: Promise<T>): Promise<T> {
    let set = this.stopping.get(chatId);
    if (!set) this.stopping.set(chatId, (set = new Set()));
    const s = set;
    s.add(stop);
    void stop
      .finally(() => {
        s.delete(stop);
        if (!s.size) this.stopping.delete(chatId);
      })
      .catch(() => undefined);
    return stop;
  }
}

/** Emoji in `now` that were not in `old`: the reactions a person just added. */
export function addedEmoji(old: ReactionType[], now: ReactionType[]): string[] {
  const before = new Set(old.filter((r) => r.type === "emoji").map((r) => (r as { emoji: string }).emoji));
  return now.filter((r) => r.type === "emoji" && !before.has((r as { emoji: string }).emoji)).map((r) => (r as { emoji: string }).emoji);
}
