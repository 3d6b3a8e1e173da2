/**
 * What the parts of the Telegram adapter share.
 *
 * Owns: the `TelegramDeps` bundle the bot builds once and hands to its routing, conversation,
 * stop and transport modules (one grammY bot, one pacer, one draft registry per bot), and the
 * bot's counters. Nothing here acts on its own.
 */
import type { Bot } from "grammy";
import type { PlatformLog } from "../platform-log.ts";
import type { PlatformObserver, StopMetrics } from "../platform-metrics.ts";
import type { ChatPacer } from "./chat-pacer.ts";
import type { TelegramActors } from "./telegram-actors.ts";
import type { TelegramConfig } from "./telegram-config.ts";
import type { TelegramCore } from "./telegram-core-port.ts";
import type { DraftRegistry } from "./telegram-draft-surface.ts";
import type { GroupChecks } from "./telegram-group-checks.ts";
import type { TelegramNotices } from "./telegram-notices.ts";
import type { PartOffsets } from "./telegram-part-offsets.ts";
import type { PendingSends } from "./telegram-pending-sends.ts";

/** Counters for the benchmark and `/status`-style diagnostics (stop counters: ../platform-metrics.ts). */
export interface TelegramMetrics extends StopMetrics {
  /** 429s Telegram answered (each retried by auto-retry). */
  rateLimited: number;
  /** Calls still failing with 429 after every retry: these reach the user as a missing edit. */
  rateLimitSurfaced: number;
  /** Other failed calls (after retries), "message is not modified" excluded. */
  apiFailures: number;
}

export interface TelegramDeps {
  bot: Bot;
  core: TelegramCore;
  config: TelegramConfig;
  log: PlatformLog;
  metrics: TelegramMetrics;
  /** The app's metrics (src/observability), told of the same stops, 429s and handler errors (optional). */
  observer?: PlatformObserver;
  /** How many stop latencies `metrics.stopLatencyMs` keeps. */
  stopLatencyWindow: number;
  pacer: ChatPacer;
  actors: TelegramActors;
  drafts: DraftRegistry;
  /** Where each reply message starts in its reply: Telegram's quote positions are per message. */
  parts: PartOffsets;
  /** First sends still on the wire: a stop can arrive before the bot knows the message id. */
  pending: PendingSends;
  groups: GroupChecks;
  notices: TelegramNotices;
  /** Keeps a background task (a generation, a long admin command) alive until it settles. */
  track(task: Promise<unknown>): void;
}
