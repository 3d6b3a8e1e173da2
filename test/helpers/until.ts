/**
 * Polls `read` until it returns a truthy value, and returns that value; fails with `what` after
 * `timeoutMs`. For state that no event announces (rows another process writes, a job's
 * progress in the database): where an event exists, wait on the event instead.
 */
export async function until<T>(what: string, read: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
