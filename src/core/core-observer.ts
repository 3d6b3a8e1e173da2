/**
 * What the conversation core reports as it happens, for whoever keeps count (the app's
 * Prometheus metrics, src/observability/metrics.ts). The core only calls these; it neither
 * knows nor waits for what is done with them, and a core without an observer reports to
 * {@link NO_OBSERVER}.
 *
 * Owns: the names of the events and of their outcomes. Every event carries the platform of the
 * reply or of the person (`discord`, `telegram`, `web`, `terminal`, …).
 */

/** How a reply's stream began: a question, or the continuation after a steer. */
export type StreamTrigger = "question" | "steer";
/** How a reply's stream ended: to the end, stopped (a stop or a correction cut it), failed, its message gone, or dropped (/forget). */
export type StreamOutcome = "done" | "stopped" | "failed" | "gone" | "dropped";
/** A steer applied to a reply: stored approved or pending, or withheld (its author opted out: applied, not stored). */
export type SteerStatus = "approved" | "pending" | "withheld";
/** The core's own refusals to go on: someone asking or steering too fast, or too many replies being written. */
export type RefusalReason = "ask_rate_limit" | "steer_rate_limit" | "busy";

export interface CoreObserver {
  replyStarted(platform: string, trigger: StreamTrigger): void;
  replyFinished(platform: string, outcome: StreamOutcome): void;
  /** A stop cut a streaming reply. */
  stopped(platform: string): void;
  steerApplied(platform: string, status: SteerStatus): void;
  refused(platform: string, reason: RefusalReason): void;
  /**
   * A send or edit of a reply message: from the core asking the platform to show the text
   * until the platform confirmed it (its pacing and rate-limit waits included), in seconds.
   */
  surfaceCall(platform: string, op: "send" | "edit", seconds: number, ok: boolean): void;
}

export const NO_OBSERVER: CoreObserver = {
  replyStarted() {},
  replyFinished() {},
  stopped() {},
  steerApplied() {},
  refused() {},
  surfaceCall() {},
};

/** `observer` with every call made safe: a counter that throws is logged once, never thrown at the core. */
export function safeObserver(observer: CoreObserver, warn: (err: unknown) => void): CoreObserver {
  let warned = false;
  const out = {} as Record<keyof CoreObserver, (...args: never[]) => void>;
  for (const key of Object.keys(NO_OBSERVER) as (keyof CoreObserver)[]) {
    out[key] = (...args: never[]) => {
      try {
        (observer[key] as (...a: never[]) => void)(...args);
      } catch (err) {
        if (!warned) warn(err);
        warned = true;
      }
    };
  }
  return out as unknown as CoreObserver;
}
