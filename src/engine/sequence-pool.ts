/**
 * Context sequences shared by concurrent conversations.
 *
 * Owns: handing out the sequences of one llama context, one conversation (generation or
 * scoring) per sequence at a time, with a bounded FIFO queue when all are busy: past
 * `maxWaiting` waiters a request is refused at once with {@link EngineBusyError} (the core says
 * "busy"; its own admission, `generation.max_queued`, keeps asks well below this bound, which
 * guards against everything else that queues here, e.g. evaluation; the app sets it from
 * `generation.max_waiting`, which the config requires to be at least `max_queued`). node-llama-cpp
 * evaluates the pending tokens of all sequences of a context in one batch, so N replies
 * streaming at once cost about one decode step each round instead of N; a queue alone would
 * make every later user wait for the whole earlier reply. Each sequence keeps its KV cache
 * after use, and a request gets the free sequence whose cached tokens share the longest
 * prefix with its prompt, so resuming a stopped reply after a steer re-evaluates only the
 * correction, not the whole conversation.
 */
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";
import { EngineBusyError } from "../core/errors.ts";

/** Waiters a pool holds unless told otherwise: far more than the core lets asks queue. */
export const DEFAULT_MAX_WAITING = 64;

interface Waiter {
  tokens: readonly Token[];
  resolve: (seq: LlamaContextSequence) => void;
  reject: (err: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Length of the common prefix of two token lists. */
export function commonPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class SequencePool {
  private readonly free: LlamaContextSequence[] = [];
  private readonly busy = new Set<LlamaContextSequence>();
  private readonly waiters: Waiter[] = [];
  private created = 0;
  private closed = false;

  constructor(
    readonly context: LlamaContext,
    readonly size: number,
    /** Requests that may wait for a sequence; one more is refused with {@link EngineBusyError}. */
    readonly maxWaiting = DEFAULT_MAX_WAITING,
  ) {}

  /** Sequences in use right now. */
  get active(): number {
    return this.busy.size;
  }

  /** Requests waiting for a sequence right now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Waits for a sequence (FIFO), preferring the one whose cache best matches `tokens`.
   * Rejects with the signal's reason when aborted while waiting, and with
   * {@link EngineBusyError} at once when `maxWaiting` requests already wait.
   */
  acquire(tokens: readonly Token[], signal?: AbortSignal): Promise<LlamaContextSequence> {
    if (this.closed) return Promise.reject(new Error("engine is disposed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const seq = this.take(tokens);
    if (seq) return Promise.resolve(seq);
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new EngineBusyError(this.waiters.length));
    return new Promise((resolve, reject) => {
      const w: Waiter = { tokens, resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  /** Returns a sequence; its KV cache is kept for reuse. */
  release(seq: LlamaContextSequence): void {
    if (!this.busy.delete(seq)) return;
    if (this.closed || seq.disposed) return;
    const w = this.waiters.shift();
    if (w) {
      if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
      this.busy.add(seq);
      w.resolve(seq);
      return;
    }
    this.free.push(seq);
  }

  /** Rejects waiters; sequences are freed with the context. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error("engine is disposed"));
  }

  private take(tokens: readonly Token[]): LlamaContextSequence | undefined {
    let best = -1;
    let bestLen = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = commonPrefixLength(this.free[i]!.contextTokens, tokens);
      if (len > bestLen) {
        best = i;
        bestLen = len;
      }
    }
    // an empty new sequence beats a free one that shares nothing (keeps other caches warm)
    if ((best < 0 || bestLen === 0) && this.created < this.size) {
      this.created++;
      const seq = this.context.getSequence();
      this.busy.add(seq);
      return seq;
    }
    if (best < 0) return undefined;
    const [seq] = this.free.splice(best, 1);
    this.busy.add(seq!);
    return seq;
  }
}
