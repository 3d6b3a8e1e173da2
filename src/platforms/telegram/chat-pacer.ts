/**
 * Per-chat pacing of outgoing sends and edits.
 *
 * Owns: spacing the calls that show reply text in one chat. The core throttles each message to
 * one edit per `minEditIntervalMs`, but several replies can stream into the same chat (a busy
 * group) and Telegram limits a chat, not a message (~1 message/s, 20/min in groups). Calls for
 * one chat run one at a time, at least the chat's gap apart; other chats are not held up.
 *
 * A stop must not wait behind a queue: {@link ChatPacer.hold} (used while a stop is applied) and
 * {@link ChatPacer.cancel} drop the queued (not yet sent)
 * calls of one message with {@link EditSkippedError}, and aborts the call in flight when it is
 * only waiting out a 429 (`retry_after`) before retrying. That text was never shown, so the core
 * keeps the stop point where it was and cuts at once. A call whose request may have reached
 * Telegram is never aborted: the user may have seen it — and then the core's one corrective
 * edit, which takes the message back to the stop point, must go out: a call marked `cutBack`
 * (it shows a strict start of what was already sent) passes a hold.
 *
 * Across chats the pacer also keeps the bot under Telegram's overall limit (about 30 messages
 * a second, `globalPerSecond`): a call waits for a free slot in the last second.
 */

/** Paced calls by their signal: whether the last attempt was answered 429, and a pending cancel. */
const paced = new WeakMap<AbortSignal, { abort: AbortController; tag?: string; waitingAfter429: boolean; cancelRequested: boolean }>();

/**
 * Called (by the bot's API transformer, inside auto-retry) after every attempt of a call:
 * whether Telegram just answered it 429. A call whose message was stopped meanwhile is aborted
 * here, before auto-retry waits `retry_after` and sends it again.
 */
export function noteAttempt(signal: AbortSignal | undefined, answered429: boolean): void {
  const entry = signal && paced.get(signal);
  if (!entry) return;
  entry.waitingAfter429 = answered429;
  if (answered429 && entry.cancelRequested) entry.abort.abort(skipped(entry.tag));
}

function skipped(tag: string | undefined): EditSkippedError {
  return new EditSkippedError(`edit of ${tag} dropped: the reply was stopped before Telegram took it`);
}

/** A queued call dropped before it was sent: nothing changed on Telegram. */
export class EditSkippedError extends Error {
  override readonly name = "EditSkippedError";
}

interface Task {
  fn: (signal: AbortSignal) => Promise<unknown>;
  tag?: string;
  abort: AbortController;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class ChatPacer {
  private readonly queues = new Map<string, Task[]>();
  private readonly lastAt = new Map<string, number>();
  private readonly inFlight = new Map<string, Task>();
  private readonly holds = new Map<string, number>();

  /**
   * @param gapMs spacing in private chats (Telegram: about one message per second per chat)
   * @param groupGapMs spacing in groups, whose ids are negative (Telegram: 20 messages a minute)
   */
  /** Start times of the calls of the last second, all chats (for `globalPerSecond`). */
  private readonly recentStarts: number[] = [];

  constructor(
    private readonly gapMs: number,
    private readonly groupGapMs: number = gapMs,
    private readonly globalPerSecond: number = Infinity,
  ) {}

  /** The spacing used for a chat. */
  gapFor(chatId: string | number): number {
    return Number(chatId) < 0 ? this.groupGapMs : this.gapMs;
  }

  /**
   * Runs `fn` when this chat's earlier calls are done and the gap has passed since the last one
   * started. `tag` names the message the call shows (for {@link cancel}).
   */
  run<T>(chatId: string | number, fn: (signal: AbortSignal) => Promise<T>, tag?: string, opts: { cutBack?: boolean } = {}): Promise<T> {
    const key = String(chatId);
    if (tag !== undefined && !opts.cutBack && this.holds.has(`${key}|${tag}`)) return Promise.reject(skipped(tag));
    return new Promise<T>((resolve, reject) => {
      let q = this.queues.get(key);
      const start = !q;
      if (!q) this.queues.set(key, (q = []));
      const abort = new AbortController();
      paced.set(abort.signal, { abort, tag, waitingAfter429: false, cancelRequested: false });
      const task = { fn, tag, abort, resolve: resolve as (v: unknown) => void, reject };
      // A cut-back (the end of a stop) goes before everything queued: it only takes text away.
      if (opts.cutBack) q.unshift(task);
      else q.push(task);
      if (start) void this.pump(key);
    });
  }

  /**
   * Drops the queued calls tagged `tag` in this chat, and the one in flight if it is (or will
   * be) waiting to retry after a 429. Returns how many were affected.
   */
  cancel(chatId: string | number, tag: string): number {
    const key = String(chatId);
    let n = 0;
    const current = this.inFlight.get(key);
    const entry = current?.tag === tag ? paced.get(current.abort.signal) : undefined;
    if (entry) {
      // Waiting out a 429: drop it now. Otherwise its request is out and may be shown: let it
      // finish, but drop it if Telegram answers 429 (then it was not shown either).
      if (entry.waitingAfter429) entry.abort.abort(skipped(tag));
      else entry.cancelRequested = true;
      n++;
    }
    const q = this.queues.get(key);
    if (!q) return n;
    for (let i = q.length - 1; i >= 0; i--) {
      if (q[i]!.tag !== tag) continue;
      const [t] = q.splice(i, 1);
      t!.reject(skipped(tag));
      n++;
    }
    return n;
  }

  /**
   * Cancels the calls of message `tag` (see {@link cancel}) and refuses new ones until the
   * returned release is called: while a stop is being applied, text the person has not seen
   * must not appear (and nothing waits for it). Holds nest.
   */
  hold(chatId: string | number, tag: string): () => void {
    const k = `${chatId}|${tag}`;
    this.holds.set(k, (this.holds.get(k) ?? 0) + 1);
    this.cancel(chatId, tag);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(k) ?? 1) - 1;
      if (n > 0) this.holds.set(k, n);
      else this.holds.delete(k);
    };
  }

  /**
   * Waits until fewer than `globalPerSecond` calls (all chats) started in the last second, and
   * takes a slot. Returns a function that stamps the slot with the moment the call really
   * starts: on a busy machine the caller may run a while after the slot was granted, and the
   * window must count from the real start, or the next second's calls begin early.
   */
  private async globalSlot(): Promise<() => void> {
    if (!Number.isFinite(this.globalPerSecond)) return () => undefined;
    for (;;) {
      const now = Date.now();
      while (this.recentStarts.length && now - this.recentStarts[0]! >= 1000) this.recentStarts.shift();
      if (this.recentStarts.length < this.globalPerSecond) {
        const i = this.recentStarts.push(now) - 1;
        const stamped = now;
        return () => {
          // The entry may have moved forward (older ones shifted out): find it by its value.
          const at = this.recentStarts.lastIndexOf(stamped, i);
          if (at >= 0) this.recentStarts[at] = Math.max(stamped, Date.now());
        };
      }
      await new Promise((r) => setTimeout(r, this.recentStarts[0]! + 1000 - now));
    }
  }

  private async pump(key: string): Promise<void> {
    const q = this.queues.get(key)!;
    while (q.length) {
      const wait = (this.lastAt.get(key) ?? 0) + this.gapFor(key) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const started = await this.globalSlot();
      // Everything still in the queue has not started, so cancel() may take any of it.
      const task = q.shift();
      if (!task) break;
      this.lastAt.set(key, Date.now());
      this.inFlight.set(key, task);
      try {
        started();
        task.resolve(await task.fn(task.abort.signal));
      } catch (err) {
        task.reject(task.abort.signal.aborted ? task.abort.signal.reason : err);
      } finally {
        this.inFlight.delete(key);
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
