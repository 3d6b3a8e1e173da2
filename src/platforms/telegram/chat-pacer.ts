/**
 * Per-chat pacing of outgoing sends and edits.
 *
 * Owns: spacing the calls that show reply text in one chat. The core throttles each message to
 * one edit per `minEditIntervalMs`, but several replies can stream into the same chat (a busy
 * group) and Telegram limits a chat, not a message (~1 message/s, 20/min in groups). Calls for
 * one chat run one at a time, at least `gapMs` apart; other chats are not held up.
 */
export class ChatPacer {
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly lastAt = new Map<string, number>();

  constructor(private readonly gapMs: number) {}

  /** Runs `fn` when this chat's previous call is done and `gapMs` has passed since it started. */
  run<T>(chatId: string | number, fn: () => Promise<T>): Promise<T> {
    const key = String(chatId);
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(
      () => this.afterGap(key, fn),
      () => this.afterGap(key, fn),
    );
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  private async afterGap<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const wait = (this.lastAt.get(key) ?? 0) + this.gapMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.lastAt.set(key, Date.now());
    return fn();
  }
}
