/**
 * Per-route rate-limit buckets for the fake Discord REST API.
 *
 * Owns: counting requests per bucket (route template + major parameter, as Discord does) in a
 * fixed window, producing the `X-RateLimit-*` headers of a real response and deciding when a
 * request gets a real 429. Also a "storm" switch that answers the next N requests with 429 so
 * tests can prove the client's queue absorbs them.
 */

export interface RateLimitRule {
  /** Requests allowed per window in one bucket. */
  limit: number;
  /** Window length in ms. */
  windowMs: number;
}

export interface RateLimitDecision {
  limited: boolean;
  headers: Record<string, string>;
  /** Seconds until the bucket resets (the body's `retry_after` on a 429). */
  retryAfter: number;
}

interface BucketState {
  count: number;
  resetAt: number;
}

/** Fixed-window buckets keyed by route template + major parameter, like Discord's. */
export class RouteRateLimiter {
  /** Rule applied to every bucket; `undefined` turns limiting off (headers still sent). */
  rule: RateLimitRule | undefined;
  /** Requests answered with 429 so far. */
  limitedCount = 0;
  #buckets = new Map<string, BucketState>();
  #storm = 0;
  #stormRetryMs = 300;

  constructor(rule?: RateLimitRule) {
    this.rule = rule;
  }

  /** Answers the next `count` rate-limited requests with 429 (retry after `retryMs`). */
  storm(count: number, retryMs = 300): void {
    this.#storm = count;
    this.#stormRetryMs = retryMs;
  }

  /**
   * Counts one request in its bucket. `bucketRoute` is the route template ("PATCH
   * /channels/:id/messages/:id"), `major` the major parameter (channel, guild or webhook id).
   */
  take(bucketRoute: string, major: string): RateLimitDecision {
    const now = Date.now();
    const rule = this.rule ?? { limit: 1_000_000, windowMs: 1000 };
    const key = `${bucketRoute}|${major}`;
    let bucket = this.#buckets.get(key);
    if (!bucket || bucket.resetAt <= now) {
      bucket = { count: 0, resetAt: now + rule.windowMs };
      this.#buckets.set(key, bucket);
    }
    const hash = bucketHash(bucketRoute);
    const resetAfter = Math.max(0, bucket.resetAt - now) / 1000;
    if (this.#storm > 0) {
      this.#storm--;
      this.limitedCount++;
      const retryAfter = this.#stormRetryMs / 1000;
      return {
        limited: true,
        retryAfter,
        headers: {
          "X-RateLimit-Limit": String(rule.limit),
          "X-RateLimit-Remaining": "0",
          "X-RateLimit-Reset": String((now + this.#stormRetryMs) / 1000),
          "X-RateLimit-Reset-After": String(retryAfter),
          "X-RateLimit-Bucket": hash,
          "X-RateLimit-Scope": "user",
          "Retry-After": String(retryAfter),
        },
      };
    }
    if (this.rule && bucket.count >= rule.limit) {
      this.limitedCount++;
      return {
        limited: true,
        retryAfter: resetAfter,
        headers: {
          "X-RateLimit-Limit": String(rule.limit),
          "X-RateLimit-Remaining": "0",
          "X-RateLimit-Reset": String(bucket.resetAt / 1000),
          "X-RateLimit-Reset-After": String(resetAfter),
          "X-RateLimit-Bucket": hash,
          "X-RateLimit-Scope": "user",
          "Retry-After": String(resetAfter),
        },
      };
    }
    bucket.count++;
    return {
      limited: false,
      retryAfter: 0,
      headers: {
        "X-RateLimit-Limit": String(rule.limit),
        "X-RateLimit-Remaining": String(Math.max(0, rule.limit - bucket.count)),
        "X-RateLimit-Reset": String(bucket.resetAt / 1000),
        "X-RateLimit-Reset-After": String(resetAfter),
        "X-RateLimit-Bucket": hash,
      },
    };
  }
}

/** A stable opaque bucket id per route template, like Discord's `X-RateLimit-Bucket`. */
function bucketHash(route: string): string {
  let h = 2166136261;
  for (let i = 0; i < route.length; i++) {
    h ^= route.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
