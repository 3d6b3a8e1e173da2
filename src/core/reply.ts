/**
 * One reply of the bot and its state machine:
 *
 *     generating → stopped → (corrected → generating)* → done
 *
 * Owns: the reply's text and the token each character came from (generated tokens keep the
 * model's ids; a correction's tokens are its tokenization), the abort of the running
 * generation, and which platform messages show it. A reply lives in memory while it can still
 * be stopped or steered; the database holds its generation row and its steers.
 */
import type { StreamDisplay } from "./stream-display.ts";
import type { ChatMessage } from "./steer-record.ts";
import type { Actor, ThreadRef } from "./ports.ts";
import type { StreamedToken, TextGenerator } from "./text-generator.ts";

export type ReplyState = "generating" | "stopped" | "done";

export class Reply {
  state: ReplyState = "generating";
  /** The whole assistant text: accepted text, corrections and generated continuations. */
  text = "";
  /** Tokens covering `text` exactly, offsets into `text`. */
  tokens: StreamedToken[] = [];
  /** Steers stored on this reply so far (the next one's ordinal). */
  steers = 0;
  abort = new AbortController();
  /** Set while a stop is being cut; a correction arriving meanwhile waits for it. */
  cutting: Promise<void> | undefined;
  /** Settles when the current stream (generation and its last edits) has ended. */
  streamed: Promise<void> = Promise.resolve();
  /** Settles when the running generation has ended. */
  running: Promise<void> = Promise.resolve();
  display: StreamDisplay | undefined;
  /** Every platform message that has shown part of this reply. */
  readonly messageIds = new Set<string>();
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
    /** The engine this reply generates with (kept across a hot-swap until it finishes). */
    public engine: TextGenerator,
  ) {}

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
}
