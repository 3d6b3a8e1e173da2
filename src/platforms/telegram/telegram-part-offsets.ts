/**
 * Where each message of a long reply starts in the reply.
 *
 * Owns: translating Telegram's `quote.position` — UTF-16 units in the *message* replied to — to
 * an offset in the whole reply the core aligns against. The core splits a reply into messages
 * of up to 4096 characters; a quote in the second message is otherwise taken at the wrong place.
 * Telegram also strips each message's leading whitespace, so positions count from the first
 * shown character. Bounded: the oldest entries are forgotten first (the core forgets old
 * replies too).
 */
export class PartOffsets {
  private readonly parts = new Map<string, { start: number; text: string }>();

  constructor(private readonly max = 10_000) {}

  /** Records (or updates) a message `key` showing `text`, which starts at `start` in its reply. */
  note(key: string, start: number, text: string): void {
    this.parts.delete(key);
    this.parts.set(key, { start, text });
    while (this.parts.size > Math.max(1, this.max)) this.parts.delete(this.parts.keys().next().value as string);
  }

  /** Where the message `key` starts in its reply, 0 when unknown. */
  startOf(key: string): number {
    return this.parts.get(key)?.start ?? 0;
  }

  /** The end of the message `key` in its reply (where the next part starts), undefined when unknown. */
  endOf(key: string): number | undefined {
    const p = this.parts.get(key);
    return p && p.start + p.text.length;
  }

  /** A position in the message `key` as Telegram reports it → the position in the whole reply. */
  inReply(key: string, position: number): number {
    const p = this.parts.get(key);
    if (!p) return position;
    const lead = p.text.length - p.text.trimStart().length;
    return p.start + lead + position;
  }
}
