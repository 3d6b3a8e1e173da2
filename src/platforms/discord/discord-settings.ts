/**
 * The Discord adapter's settings, logger and counters.
 *
 * Owns: reading the adapter's part of the app config (`discord.stop_emoji`,
 * `discord.accept_emoji`, `discord.shards`, `discord.shard_count`, `stream.edit_interval_ms`,
 * `permissions.ask.channels`) into one flat, defaulted object, so the rest of the adapter never
 * re-interprets config; the minimal logger shape it writes to (pino fits); and the counters the
 * benchmark and `/status` read.
 */
import type { StopMetrics } from "../platform-metrics.ts";
import { shardClientOptions, type ShardClientOptions, type ShardConfigInput } from "./discord-shards.ts";

/** The slice of the app config (src/config/config.ts) this adapter reads; all optional. */
export interface DiscordConfigInput {
  discord?: { stop_emoji?: string; accept_emoji?: string } & ShardConfigInput;
  stream?: { edit_interval_ms?: number };
  permissions?: { ask?: { channels?: string[] } };
}

export interface DiscordSettings {
  stopEmoji: string;
  acceptEmoji: string;
  /**
   * Least time between two edits of one message. Never below 1000 ms: Discord allows about one
   * edit a second per message, and going faster only buys 429s and a longer queue.
   */
  minEditIntervalMs: number;
  /** Channels where mentions and /ask are answered (empty = everywhere); threads count as their parent. */
  askChannels: string[];
  /** The shards this instance runs, as discord.js's client options (`{}`: its default, one shard). */
  shards: ShardClientOptions;
}

/** Discord's edit rate floor (see `minEditIntervalMs`). */
export const DISCORD_MIN_EDIT_INTERVAL_MS = 1000;

export function resolveDiscordSettings(config: DiscordConfigInput = {}): DiscordSettings {
  return {
    stopEmoji: config.discord?.stop_emoji ?? "🛑",
    acceptEmoji: config.discord?.accept_emoji ?? "✅",
    minEditIntervalMs: Math.max(DISCORD_MIN_EDIT_INTERVAL_MS, config.stream?.edit_interval_ms ?? 1100),
    askChannels: config.permissions?.ask?.channels ?? [],
    // throws a ShardConfigError naming the setting when the shards are invalid
    shards: shardClientOptions(config.discord),
  };
}

/** The logger calls the adapter makes: the one shape every platform writes to. */
export type { PlatformLog as DiscordLog } from "../platform-log.ts";

/** Counters kept while the bot runs (the shared stop counters, plus Discord's rate limits); read by the benchmark and tests. */
export interface DiscordMetrics extends StopMetrics {
  /** Times discord.js's queue waited for a rate limit (pre-emptively from headers, or after a 429). */
  rateLimitsAbsorbed: number;
  /** 429s that reached a reply surface as errors (should stay 0). */
  rateLimitsSurfaced: number;
  /** Any send/edit failures of reply surfaces. */
  surfaceErrors: number;
  /** The gateway shards this instance runs (known once connected; empty before) and the total of all instances. */
  shards: { ids: number[]; count: number };
  /** Events handled (messages, reactions, interactions) by the shard they arrived on. */
  eventsByShard: Record<number, number>;
}

export function emptyMetrics(): DiscordMetrics {
  return { stopLatencyMs: [], stopsHandled: 0, rateLimitsAbsorbed: 0, rateLimitsSurfaced: 0, surfaceErrors: 0, handlerErrors: 0, shards: { ids: [], count: 0 }, eventsByShard: {} };
}
