/**
 * A bounded, time-limited set of recently seen event keys.
 *
 * Owns: duplicate suppression at the adapter edge, for every platform. A gateway or Telegram may
 * deliver the same event twice
 * (resume replays, a reconnect overlapping the old session); the core also refuses duplicate
 * message ids, but the adapter must not open a second thread or start a second stream before
 * the core even sees the request, so it drops repeats here first.
 */
export class RecentKeys {
  readonly #seen = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs = 10 * 60_000, max = 10_000) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  /** Records `key`; returns false when it was already seen within the time limit. */
  firstTime(key: string): boolean {
    const now = Date.now();
    const at = this.#seen.get(key);
    if (at !== undefined && now - at < this.#ttlMs) return false;
    this.#seen.delete(key);
    this.#seen.set(key, now);
    if (this.#seen.size > this.#max) {
      // Map iterates in insertion order: the first keys are the oldest.
      for (const k of this.#seen.keys()) {
        this.#seen.delete(k);
        if (this.#seen.size <= this.#max * 0.9) break;
      }
    }
    return true;
  }
}
