/**
 * Per-chat pacing of outgoing sends and edits.
 *
 * Owns: spacing the calls that show reply text in one chat. The core throttles each message to
 * one edit per `minEditIntervalMs`, but several replies can stream into the same chat (a busy
 * group) and Telegram limits a chat, not a message (~1 message/s, 20/min in groups). Calls for
 * one chat run one at a time, at least the chat's gap apart; other chats are not held up.
 *
 * A stop must not wait behind a queue: {@link ChatPacer.cancel} drops the queued (not yet sent)
 * calls of one message with {@link EditSkippedError}. That text was never shown, so the core
 * keeps the stop point where it was and cuts at once.
 */

/** A queued call dropped before it was sent: nothing changed on Telegram. */
export class EditSkippedError extends Error {
  override readonly name = "EditSkippedError";
}

interface Task {
  fn: () => Promise<unknown>;
  tag?: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class ChatPacer {
  private readonly queues = new Map<string, Task[]>();
  private readonly lastAt = new Map<string, number>();

  /**
   * @param gapMs spacing in private chats (Telegram: about one message per second per chat)
   * @param groupGapMs spacing in groups, whose ids are negative (Telegram: 20 messages a minute)
   */
  constructor(
    private readonly gapMs: number,
    private readonly groupGapMs: number = gapMs,
  ) {}

  /** The spacing used for a chat. */
  gapFor(chatId: string | number): number {
    return Number(chatId) < 0 ? this.groupGapMs : this.gapMs;
  }

  /**
   * Runs `fn` when this chat's earlier calls are done and the gap has passed since the last one
   * started. `tag` names the message the call shows (for {@link cancel}).
   */
  run<T>(chatId: string | number, fn: () => Promise<T>, tag?: string): Promise<T> {
    const key = String(chatId);
    return new Promise<T>((resolve, reject) => {
      let q = this.queues.get(key);
      const start = !q;
      if (!q) this.queues.set(key, (q = []));
      q.push({ fn, tag, resolve: resolve as (v: unknown) => void, reject });
      if (start) void this.pump(key);
    });
  }

  /** Drops the queued, not yet started calls tagged `tag` in this chat. Returns how many. */
  cancel(chatId: string | number, tag: string): number {
    const q = this.queues.get(String(chatId));
    if (!q) return 0;
    let n = 0;
    for (let i = q.length - 1; i >= 0; i--) {
      if (q[i]!.tag !== tag) continue;
      const [t] = q.splice(i, 1);
      t!.reject(new EditSkippedError(`edit of ${tag} dropped: the reply was stopped`));
      n++;
    }
    return n;
  }

  private async pump(key: string): Promise<void> {
    const q = this.queues.get(key)!;
    while (q.length) {
      const wait = (this.lastAt.get(key) ?? 0) + this.gapFor(key) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Everything still in the queue has not started, so cancel() may take any of it.
      const task = q.shift();
      if (!task) break;
      this.lastAt.set(key, Date.now());
      try {
        task.resolve(await task.fn());
      } catch (err) {
        task.reject(err);
      }
    }
    this.queues.delete(key);
    // Forget old timestamps so the map does not grow with every chat ever seen.
    if (this.lastAt.size > 10_000) {
      const now = Date.now();
      for (const [k, at] of this.lastAt) if (now - at > 60_000) this.lastAt.delete(k);
    }
  }
}
