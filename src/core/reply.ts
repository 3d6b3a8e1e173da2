/**
 * One reply of the bot, its state machine and its queue:
 *
 *     generating → stopped → (corrected → generating)* → done → accepted
 *                  (a finished reply is `done`: it can still be corrected, or accepted;
 *                   `accepted` is final)
 *
 * Owns: the reply's state (changed only through the transition methods here, which refuse an
 * illegal step with {@link ReplyStateError}); the reply's text and the token each character came
 * from (generated tokens keep the model's ids; a correction's tokens are its tokenization); the
 * abort of the running stream; the **views** — which platform messages each stream showed and
 * the text they were left showing, so a correction is aligned against the message it answers;
 * and the **queue** every change of the reply goes through (DESIGN.md §11), so a stop, two
 * corrections, an accept and a hot-swap never interleave. A reply lives in memory while it can
 * still be stopped or steered; the database holds its generation row and its steers.
 */
import { ReplyStateError } from "./errors.ts";
import type { StreamDisplay } from "./stream-display.ts";
import type { ChatMessage } from "./steer-record.ts";
import type { Actor, GenerationSettings, ThreadRef } from "./ports.ts";
import type { StreamedToken, TextGenerator } from "./text-generator.ts";

export type ReplyState = "generating" | "stopped" | "done" | "accepted";

/**
 * Views kept per reply. Each correction starts a new view (its resumed stream shows in new
 * messages); a correction of a message older than this is refused as too old, so a reply that
 * is steered again and again holds a bounded amount of text.
 */
export const MAX_VIEWS = 8;

/** The messages one stream of the reply showed, and what they show. */
export interface ReplyView {
  /** 0 for the first stream, +1 for each resume. */
  readonly index: number;
  readonly messageIds: Set<string>;
  /**
   * What the messages show once their stream is over (set when the next stream starts). Unset
   * for the current view: it shows the reply's own text.
   */
  sealed?: { text: string; tokens: StreamedToken[] };
}

/** The text a person saw on one view and the tokens it is made of. */
export interface SeenText {
  text: string;
  tokens: readonly StreamedToken[];
}

export class Reply {
  #state: ReplyState = "generating";
  /** Bumped by every stream; a stream may only end the reply while it is still the current one. */
  #stream = 0;
  #abort = new AbortController();
  /** Tail of the queue: every change of the reply runs after the previous one settled. */
  #tail: Promise<unknown> = Promise.resolve();
  /** The whole assistant text: accepted text, corrections and generated continuations. */
  text = "";
  /** Tokens covering `text` exactly, offsets into `text`. */
  tokens: StreamedToken[] = [];
  /** Steers stored on this reply so far (the next one's ordinal). */
  steers = 0;
  /**
   * Length of the text the current stream started from (prefix + correction): the person who
   * corrected has seen it (in the older message and in their own words), so a stop never cuts
   * the reply shorter than that, even before the new message showed anything.
   */
  resumedFrom = 0;
  /** Settles when the current generation (the engine call) has ended. */
  running: Promise<void> = Promise.resolve();
  /** The engine of the generation running now; undefined when none runs. */
  runningOn: TextGenerator | undefined;
  /** Settles when the current stream (generation and its last edits) has ended. */
  streamed: Promise<void> = Promise.resolve();
  display: StreamDisplay | undefined;
  readonly views: ReplyView[] = [{ index: 0, messageIds: new Set() }];
  /** The assistant message row holding this reply's text in the thread history. */
  historyMessageId: number | undefined;

  constructor(
    readonly generationId: number,
    readonly thread: ThreadRef,
    readonly threadDbId: number,
    readonly owner: Actor,
    /**
     * The chat before this reply as the model sees it, and so every steer's `context`. A resume
     * after a steer may leave out more old turns to make room (core/context-budget.ts).
     */
    public context: ChatMessage[],
    /** The engine this reply's next stream generates with (moved by a hot-swap). */
    public engine: TextGenerator,
    /** The conversation's generation settings it was asked with: every resume uses them too. */
    readonly settings: GenerationSettings = {},
  ) {}

  get state(): ReplyState {
    return this.#state;
  }

  /** The number of the current stream (see {@link isStreaming}). */
  get stream(): number {
    return this.#stream;
  }

  /** The abort signal of the current stream. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Every platform message that has shown part of this reply (in views still kept). */
  get messageIds(): string[] {
    return this.views.flatMap((v) => [...v.messageIds]);
  }

  get currentView(): ReplyView {
    return this.views.at(-1)!;
  }

  /** The view a platform message belongs to; undefined when it is not (or no longer) kept. */
  viewOf(messageId: string): ReplyView | undefined {
    return this.views.find((v) => v.messageIds.has(messageId));
  }

  /** What a person looking at `view` saw: the reply itself for the current view. */
  seen(view: ReplyView): SeenText {
    return view.sealed ?? { text: this.text, tokens: this.tokens };
  }

  /**
   * Runs `task` after every change queued before it (and before any queued after). Stops,
   * corrections, accepts, swaps and the end of a stream all go through here; a task must not
   * wait for a stream to end (a stop queued behind it could then never stop it).
   */
  run<T>(task: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** True while stream number `stream` is the reply's current, generating stream. */
  isStreaming(stream: number): boolean {
    return this.#state === "generating" && this.#stream === stream;
  }

  /** A stop: generating → stopped. The running generation is aborted. */
  markStopped(): void {
    this.#expect("stopped", "generating");
    this.#state = "stopped";
    this.#abort.abort();
  }

  /** Aborts stream number `stream`'s generation if it is still the current one (its message is gone). */
  abort(stream: number): void {
    if (this.#stream === stream) this.#abort.abort();
  }

  /** The end of stream `stream` (finished, failed or its message gone); false if a stop or a newer stream owns it. */
  markEnded(stream: number, to: "done" | "stopped"): boolean {
    if (!this.isStreaming(stream)) return false;
    this.#state = to;
    return true;
  }

  /** Accepted: stopped | done → accepted, final. */
  markAccepted(): void {
    this.#expect("accepted", "stopped", "done");
    this.#state = "accepted";
  }

  /**
   * A correction: stopped | done → generating, on a new stream and a new view. The text
   * becomes `base`'s first `prefixTokenCount` tokens (the prefix, exactly the model's tokens)
   * followed by the correction's tokens. The current view keeps showing what it shows; views
   * beyond {@link MAX_VIEWS} are dropped and their message ids returned (no longer this reply's).
   */
  resume(base: SeenText, prefixTokenCount: number, chosen: readonly StreamedToken[]): { stream: number; dropped: string[] } {
    this.#expect("generating", "stopped", "done");
    const current = this.currentView;
    current.sealed ??= { text: this.text, tokens: [...this.tokens] };
    const prefix = base.tokens.slice(0, prefixTokenCount);
    this.tokens = [];
    this.text = "";
    this.append(prefix);
    this.append(chosen);
    this.resumedFrom = this.text.length;
    this.views.push({ index: current.index + 1, messageIds: new Set() });
    const dropped = this.views.splice(0, Math.max(0, this.views.length - MAX_VIEWS)).flatMap((v) => [...v.messageIds]);
    this.#state = "generating";
    this.#stream++;
    this.#abort = new AbortController();
    return { stream: this.#stream, dropped };
  }

  /** Appends generated or typed tokens (their own offsets are ignored: they follow `text`). */
  append(tokens: readonly StreamedToken[]): void {
    for (const t of tokens) {
      this.tokens.push({ id: t.id, text: t.text, offset: this.text.length });
      this.text += t.text;
    }
  }

  /**
   * Keeps the first `length` characters. A token the cut falls inside stays in `tokens` (its
   * text reaching past the cut) so alignment can see it was not wholly shown.
   */
  truncate(length: number): void {
    this.text = this.text.slice(0, length);
    this.tokens = this.tokens.filter((t) => t.offset < length || (t.offset === length && t.text === ""));
  }

  #expect(to: ReplyState, ...from: ReplyState[]): void {
    if (!from.includes(this.#state)) throw new ReplyStateError(this.#state, to);
  }
}

/** How many leading tokens two token lists share (same id and text at the same offset). */
export function sharedTokens(a: readonly StreamedToken[], b: readonly StreamedToken[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i]!.id === b[i]!.id && a[i]!.text === b[i]!.text && a[i]!.offset === b[i]!.offset) i++;
  return i;
}
