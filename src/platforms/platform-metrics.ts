/**
 * The counters every platform adapter keeps about stops, for the benchmark and diagnostics.
 *
 * Owns: the shared part of each bot's `metrics` (a platform adds its own rate-limit counters).
 */
export interface StopMetrics {
  /** Stop handled: reaction/button received → `core.stop` settled, ms; the newest stops only (a bounded window), oldest first. */
  stopLatencyMs: number[];
  /** Stops handled, all of them (`stopLatencyMs` keeps a window). */
  stopsHandled: number;
  /** Update/event handlers that threw (logged, never fatal). */
  handlerErrors: number;
}
