/**
 * Showing a growing reply on a platform, and knowing exactly what was shown.
 *
 * Owns: throttling edits (at most one per interval per message, only when the text changed),
 * splitting before the platform's message limit (at a line or word break when there is one),
 * and the **shown length**: the number of characters of the reply a person has actually been
 * able to see, advanced only after a send or edit succeeded. A stop is cut there — never at
 * the point the model had reached (DESIGN.md §3).
 */
import { SurfaceGoneError, type ReplySurface } from "./ports.ts";

interface Shown {
  messageId: string;
  /** Start of this message's text in the reply. */
  start: number;
  /** Characters of the reply this message displays now. */
  length: number;
}

export interface StreamDisplayOptions {
  intervalMs: number;
  /** Called when a send/edit fails for another reason than the message being gone. */
  onError?: (err: unknown) => void;
  /** Called with the id of each message sent, so a stop reaction on it finds the reply. */
  onMessage?: (messageId: string) => void;
  /** Called after each send or edit with how long the platform took to confirm it (seconds) and whether it did. */
  onCall?: (op: "send" | "edit", seconds: number, ok: boolean) => void;
  now?: () => number;
}

/** Where to end a chunk of `text` starting at `start` so it fits `max` characters. */
export function chunkEnd(text: string, start: number, max: number): number {
  if (text.length - start <= max) return text.length;
  const hard = start + max;
  const window = text.slice(start, hard);
  const nl = window.lastIndexOf("\n");
  if (nl >= max / 2) return start + nl + 1;
  const sp = Math.max(window.lastIndexOf(" "), window.lastIndexOf("\t"));
  if (sp >= max / 2) return start + sp + 1;
  // No break: cut hard, but never between the two halves of a surrogate pair.
  const code = text.charCodeAt(hard - 1);
  return code >= 0xd800 && code <= 0xdbff ? hard - 1 : hard;
}

export class StreamDisplay {
  private text = "";
  private readonly messages: Shown[] = [];
  private lastEditAt = new Map<string, number>();
  /**
   * The tail of the one chain every send and edit round runs in, so a stop that awaits it knows
   * what landed: a round of {@link finish} outside it once let a stop read the length shown
   * before the end of the reply's last edit, and nothing took that edit back.
   */
  private rounds: Promise<void> = Promise.resolve();
  /** Counts freezes and finishes: a finish whose turn a later one took stops driving rounds. */
  private owner = 0;
  private timer: NodeJS.Timeout | undefined;
  private frozen = false;
  private gone: SurfaceGoneError | undefined;
  private readonly now: () => number;

  constructor(
    private readonly surface: ReplySurface,
    private readonly opts: StreamDisplayOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Characters of the reply shown to the person so far. */
  get shownLength(): number {
    const last = this.messages.at(-1);
    return last ? last.start + last.length : 0;
  }

  get messageIds(): string[] {
    return this.messages.map((m) => m.messageId);
  }

  /** Set when the platform said the message or chat is gone: generation should stop. */
  get goneError(): SurfaceGoneError | undefined {
    return this.gone;
  }

  /** The reply grew (or was replaced); schedules a throttled display update. */
  update(text: string): void {
    if (this.frozen || this.gone) return;
    this.text = text;
    this.schedule();
  }

  /**
   * Stops displaying more and returns the stop point: what had been *confirmed* shown when
   * the stop arrived. An edit already in flight may still land; {@link cutTo} then takes the
   * message back to the stop point, so text the person never saw stays out. Only a new
   * message sent in that instant (it cannot be unsent) moves the stop point to include it.
   * A {@link finish} still running ends at its next round: the stop owns the display now.
   */
  async freeze(): Promise<number> {
    const stopAt = this.shownLength;
    const messagesAtStop = this.messages.length;
    this.frozen = true;
    this.owner++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.rounds;
    return this.messages.length > messagesAtStop ? this.shownLength : stopAt;
  }

  /**
   * Shows `text` completely (the end of a generation), respecting the interval; resolves when it
   * is displayed, when the surface is gone, or when a later freeze or finish took the display over.
   */
  async finish(text: string): Promise<void> {
    const me = ++this.owner;
    this.text = text;
    this.frozen = true; // no update() or scheduled round from here: this loop drives the display
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (let attempt = 0; attempt < 5 && me === this.owner && !this.gone && !this.isShown(); attempt++) {
      await this.rounds;
      const wait = this.waitMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await this.round(() => me !== this.owner);
    }
  }

  /** Cuts what is displayed to exactly `length` characters of the current text. */
  async cutTo(length: number): Promise<void> {
    await this.freeze();
    this.text = this.text.slice(0, length);
    // Messages wholly beyond the cut cannot exist: they were only sent once shown text reached them.
    await this.finish(this.text);
  }

  /** True when every message shows its final chunk of the current text. */
  private isShown(): boolean {
    const chunks = this.chunks(this.text);
    if (chunks.length !== this.messages.length) return this.text.trim() === "" && this.messages.length === 0;
    return chunks.every(([start, end], i) => this.messages[i]!.start === start && this.messages[i]!.length === end - start);
  }

  /** The [start, end) of each message's text for a reply text. */
  private chunks(text: string): [number, number][] {
    const out: [number, number][] = [];
    for (let start = 0; start < text.length; ) {
      const end = chunkEnd(text, start, this.surface.maxMessageLength);
      out.push([start, end]);
      start = end;
    }
    return out;
  }

  private waitMs(): number {
    const last = this.messages.at(-1);
    if (!last) return 0;
    const at = this.lastEditAt.get(last.messageId) ?? 0;
    return Math.max(0, at + this.opts.intervalMs - this.now());
  }

  private schedule(): void {
    // Once the platform said "gone" (or refused for good), no more rounds: they could only fail again.
    if (this.timer || this.frozen || this.gone) return;
    const run = () => {
      this.timer = undefined;
      if (this.frozen) return;
      void this.round(() => this.frozen).then(() => {
        if (!this.frozen && !this.isShown()) this.schedule();
      });
    };
    this.timer = setTimeout(run, this.messages.length ? Math.max(this.waitMs(), 1) : this.waitMs());
  }

  /**
   * Queues one round of sends/edits behind those before it; `skip` is asked when its turn
   * comes (a streaming round queued before a stop must not show more).
   */
  private round(skip: () => boolean): Promise<void> {
    this.rounds = this.rounds.then(() => (skip() ? undefined : this.flush()));
    return this.rounds;
  }

  /** One round of sends/edits bringing the display up to the current text. */
  private async flush(): Promise<void> {
    const text = this.text;
    const chunks = this.chunks(text);
    // the platform call in flight, timed for `onCall` (the app's edit latency); measured around
    // the bare `await`, not by wrapping the call: a wrapper's extra ticks between the platform's
    // answer and the bookkeeping below let a stop read the length shown before the edit landed
    let call: { op: "send" | "edit"; t0: number } | undefined;
    const done = (ok: boolean) => {
      if (call) this.opts.onCall?.(call.op, (performance.now() - call.t0) / 1000, ok);
      call = undefined;
    };
    try {
      for (let i = 0; i < chunks.length; i++) {
        const [start, end] = chunks[i]!;
        const chunk = text.slice(start, end);
        const m = this.messages[i];
        if (!m) {
          if (chunk.trim() === "") break; // nothing visible to send yet
          call = { op: "send", t0: performance.now() };
          const id = await this.surface.send(chunk);
          this.messages.push({ messageId: id, start, length: chunk.length });
          this.lastEditAt.set(id, this.now());
          this.opts.onMessage?.(id);
          done(true);
        } else if (m.length !== chunk.length || m.start !== start) {
          const isOpen = i === chunks.length - 1;
          if (isOpen && this.now() - (this.lastEditAt.get(m.messageId) ?? 0) < this.opts.intervalMs) break; // next round
          call = { op: "edit", t0: performance.now() };
          await this.surface.edit(m.messageId, chunk);
          m.start = start;
          m.length = chunk.length;
          this.lastEditAt.set(m.messageId, this.now());
          done(true);
        }
      }
    } catch (e) {
      done(false);
      if (e instanceof SurfaceGoneError) this.gone = e;
      else this.opts.onError?.(e);
    }
  }
}
