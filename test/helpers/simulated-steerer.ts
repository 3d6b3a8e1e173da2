/**
 * A simulated person steering through the product's own core, so the steers are exactly what
 * the bots would store: it asks, watches what the surface shows, stops the stream as soon as a
 * complete violation of a habit is on screen, quotes the wrong words (a Telegram-style quote
 * with its position) with the fix, and watches the resumed stream for the next violation.
 *
 * Owns: that loop and the {@link Habit} interface the learning test and `bench/learn` define
 * their habits with.
 */
import type { SteeringCore } from "../../src/core/steering-core.ts";
import type { Actor, Outcome, ThreadRef } from "../../src/core/ports.ts";
import { RecordingSurface } from "./recording-surface.ts";

/** Where a reply first breaks a habit, and what a person would type instead. */
export interface Violation {
  /** Index in the text where the wrong words start. */
  at: number;
  /** The wrong words as shown. */
  wrong: string;
  /** What should have been written from `at` on (10-20 tokens at most). */
  fix: string;
}

export interface Habit {
  name: string;
  /** Prompts the steers are collected on. */
  train: readonly string[];
  /** Other wordings, never trained on: where the habit is measured. */
  heldOut: readonly string[];
  /**
   * The first violation in `text` at or after `from`, or null. While the text still streams
   * (`ended` false) only a violation that is whole on screen counts (a person stops once the
   * wrong word is complete); once it ended, a word at the very end counts too.
   */
  firstViolation(text: string, from: number, ended?: boolean): Violation | null;
}

export interface SteeredReply {
  /** The reply as finally shown. */
  text: string;
  steers: number;
  /** Characters the steerer typed (the fixes): the typing budget. */
  typed: number;
}

export class SimulatedSteerer {
  private n = 0;

  constructor(
    private readonly core: SteeringCore,
    private readonly actor: Actor,
    private readonly options: { maxSteersPerReply?: number; idPrefix?: string } = {},
  ) {}

  /** Asks `text` in a new thread and steers the reply by `habit` (null: just ask). */
  async converse(text: string, habit: Habit | null): Promise<SteeredReply> {
    const id = `${this.options.idPrefix ?? "sim"}-${++this.n}`;
    const thread: ThreadRef = { platform: this.actor.platform, chatId: "sim", threadId: id };
    // Every message id unique, as on a platform: the core tells a reply's views apart by them.
    let surfaces = 0;
    const newSurface = () => new RecordingSurface(2000, 0, 0, `${id}-s${surfaces++}-`);
    let steers = 0;
    let surface = newSurface();
    let from = 0;
    let typed = 0;
    let stream: Promise<Outcome> = Promise.resolve({ ok: true });
    for (;;) {
      let stopped: Promise<Outcome> | undefined;
      const watched = surface;
      if (habit) {
        watched.onChange = (shown) => {
          if (!stopped && habit.firstViolation(shown, from)) stopped = this.core.stop({ platform: this.actor.platform, messageId: watched.order[0]!, actor: this.actor });
        };
      }
      if (steers === 0) stream = this.core.ask({ thread, actor: this.actor, text, sourceMessageId: id, surface });
      const asked = await stream;
      if (!asked.ok) throw new Error(`${text}: ${asked.notice}`);
      await stopped;
      const shown = surface.visible;
      const v = habit?.firstViolation(shown, from, true);
      if (!habit || !v || steers >= (this.options.maxSteersPerReply ?? 8)) return { text: shown, steers, typed };
      const resumed = newSurface();
      const next = this.core.correct({
        thread,
        actor: this.actor,
        replyToMessageId: surface.order[0],
        correction: { text: v.fix, quote: { text: v.wrong, position: v.at } },
        messageId: `${id}-c${steers}`,
        surface: resumed,
      });
      steers++;
      typed += v.fix.length;
      from = v.at + v.fix.length;
      surface = resumed;
      stream = next;
    }
  }
}
