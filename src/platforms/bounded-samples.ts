/**
 * A bounded window of recent measurements, for the adapters' metrics.
 *
 * Owns: the rule that a metric kept "per event" (e.g. `stopLatencyMs`) holds only the newest
 * `max` samples. A bot runs for months; an array that grows with every stop is a slow leak, and
 * the median/max of the last thousand stops says as much as that of all of them. Totals are
 * counted separately (e.g. `stopsHandled`).
 */

/** How many stop latencies the adapters keep by default. */
export const STOP_LATENCY_WINDOW = 1000;

/** Appends `value` to `samples`, dropping the oldest ones so at most `max` (≥ 1) remain. */
export function pushBounded(samples: number[], value: number, max: number): void {
  samples.push(value);
  const excess = samples.length - Math.max(1, max);
  if (excess > 0) samples.splice(0, excess);
}
