/**
 * "This platform event is fully handled": a small announcement each bot adapter makes.
 *
 * Owns: the `HandledEvents` hub the Discord and Telegram bots announce on once an event they
 * received (a message, a reaction, a button click, a Telegram update) has been dealt with —
 * acted on, ignored, dropped as a repeat, or failed (and logged). Nothing platform-specific
 * lives here, so it sits beside the adapters rather than inside one.
 *
 * Why: "the bot ignored the stranger's stop" can only be asserted once the bot has *seen* the
 * stop. Waiting a fixed time for that is both slow and wrong on a loaded machine; waiting for
 * the bot to say "done with that reaction" is exact, and the assertion after it still fails
 * when the bot acted on it. Operators can use the same hook for tracing.
 */

/** One platform event the bot has finished with. */
export interface HandledEvent {
  /** What arrived: "message", "reaction", "interaction" (Discord); the update's field, e.g. "message_reaction" (Telegram). */
  kind: string;
  /**
   * The platform's id for it: the message id (Discord messages), the reacted message's id
   * (Discord reactions), the interaction id (Discord), the `update_id` (Telegram).
   */
  id: string;
  /** Who caused it, when the platform says. */
  userId?: string;
  /** Discord: the gateway shard it arrived on (a server's shard; 0 for DMs). */
  shardId?: number;
  /**
   * `done`: its handler returned (whatever it decided); `duplicate`: dropped as a repeat of an
   * event already handled (here, or by another instance sharing the database); `forwarded`:
   * handed to the instance that streams the reply it is about, which handled it (Telegram);
   * `failed`: its handler threw (the error was logged, never rethrown).
   * Discord's message and /ask handlers return when the reply they started has settled.
   */
  outcome: "done" | "duplicate" | "forwarded" | "failed";
}

export type HandledListener = (event: HandledEvent) => void;

/** Announces handled events to listeners; keeps no history (no memory grows with traffic). */
export class HandledEvents {
  readonly #listeners = new Set<HandledListener>();

  /** Calls `listener` after each handled event; returns the function that unsubscribes it. */
  on(listener: HandledListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Announces one event (the adapters call this; a listener that throws cannot hurt the bot). */
  emit(event: HandledEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch {
        // A listener's bug must not turn into a handler error of the bot.
      }
    }
  }

  /**
   * Resolves with the next handled event that `match` accepts, or rejects after `timeoutMs`.
   * Call it before causing the event (or in the same synchronous turn: an event travels over a
   * socket, so it cannot be handled before the caller yields); there is no history to look back in.
   */
  next(match: (event: HandledEvent) => boolean, timeoutMs = 10_000, what = "a handled event"): Promise<HandledEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const off = this.on((e) => {
        if (!match(e)) return;
        clearTimeout(timer);
        off();
        resolve(e);
      });
    });
  }
}
