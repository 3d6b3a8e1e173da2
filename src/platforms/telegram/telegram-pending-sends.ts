/**
 * The first sends of replies that are still on the wire, per chat.
 *
 * Owns: letting a stop find the reply it is meant for before the bot knows the message's id.
 * Telegram shows a message (or a draft) as soon as it has taken it, while the bot still waits
 * for the answer that carries its id; a person can react to it, or press its stop button, in
 * that window. The core only knows the message once `send` has returned, so a stop handler that
 * finds an unknown id waits here for the chat's sends in flight, then looks again.
 */
export class PendingSends {
  private readonly byChat = new Map<number, Set<Promise<unknown>>>();

  /** Registers `send` (of chat `chatId`) until it settles; returns it. */
  track<T>(chatId: number, send: Promise<T>): Promise<T> {
    let set = this.byChat.get(chatId);
    if (!set) this.byChat.set(chatId, (set = new Set()));
    const s = set;
    s.add(send);
    void send
      .finally(() => {
        s.delete(send);
        if (!s.size && this.byChat.get(chatId) === s) this.byChat.delete(chatId);
      })
      .catch(() => undefined);
    return send;
  }

  /** Whether a send is on the wire in this chat. */
  has(chatId: number): boolean {
    return (this.byChat.get(chatId)?.size ?? 0) > 0;
  }

  /** Waits until the chat's sends now in flight have settled (and their callers have run on). */
  async settled(chatId: number): Promise<void> {
    const set = this.byChat.get(chatId);
    if (set) await Promise.allSettled([...set]);
    // The core records the id after its `await send(...)`: give that continuation its turn.
    await new Promise((r) => setImmediate(r));
  }
}
