/**
 * The counters every platform adapter keeps about stops, for the benchmark and diagnostics, and
 * the observer that the same events also reach (the app's Prometheus metrics,
 * src/observability/metrics.ts).
 *
 * Owns: the shared part of each bot's `metrics` (a platform adds its own rate-limit counters),
 * and the `note…` helpers an adapter calls where an event happens: each updates the in-memory
 * counters and tells the observer from the one measurement, so nothing is instrumented twice.
 */
import { pushBounded } from "./bounded-samples.ts";

export interface StopMetrics {
  /** Stop handled: reaction/button received → `core.stop` settled, ms; the newest stops only (a bounded window), oldest first. */
  stopLatencyMs: number[];
  /** Stops handled, all of them (`stopLatencyMs` keeps a window). */
  stopsHandled: number;
  /** Update/event handlers that threw (logged, never fatal). */
  handlerErrors: number;
}

/**
 * What a bot tells the app's metrics as it happens (optional: a bot without one only keeps its
 * in-memory counters). Calls must not throw; the adapters call it through the helpers below.
 */
export interface PlatformObserver {
  /** A stop handled, from the platform event's arrival to `core.stop` settling (ms). */
  stopHandled(platform: string, latencyMs: number): void;
  /** The platform answered 429: `absorbed` (waited out: the call went on after the limit) or `surfaced` (still failing after the retries). */
  rateLimited(platform: string, handling: "absorbed" | "surfaced"): void;
  /** An update/event handler threw (logged, never fatal). */
  handlerError(platform: string): void;
}

/** Where an adapter's events go: its own counters and, when it has one, the observer. */
export interface PlatformCounters<M extends StopMetrics = StopMetrics> {
  metrics: M;
  observer?: PlatformObserver;
  /** How many stop latencies `metrics.stopLatencyMs` keeps. */
  stopLatencyWindow: number;
}

function tell(fn: () => void): void {
  try {
    fn();
  } catch {
    /* counting never breaks a bot */
  }
}

/** A stop handled, `latencyMs` after its event arrived. */
export function noteStop(c: PlatformCounters, platform: string, latencyMs: number): void {
  c.metrics.stopsHandled++;
  pushBounded(c.metrics.stopLatencyMs, latencyMs, c.stopLatencyWindow);
  if (c.observer) tell(() => c.observer!.stopHandled(platform, latencyMs));
}

/** A handler that threw. */
export function noteHandlerError(c: Pick<PlatformCounters, "metrics" | "observer">, platform: string): void {
  c.metrics.handlerErrors++;
  if (c.observer) tell(() => c.observer!.handlerError(platform));
}

/** A 429 from the platform (the platform's own counter is bumped by the caller: their names differ). */
export function noteRateLimited(observer: PlatformObserver | undefined, platform: string, handling: "absorbed" | "surfaced"): void {
  if (observer) tell(() => observer.rateLimited(platform, handling));
}
