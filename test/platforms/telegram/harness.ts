/**
 * Test harness: a fake Bot API, a real grammY-based TelegramBot pointed at it, and a core.
 *
 * Owns: starting and closing the three together, fast test timings, a log that records
 * lines so tests can assert "logged, did not crash", and waiting until the bot has handled
 * the updates the fake queued (the bot's `handled` announcements, recorded from the start).
 */
import { FakeBotApi, makeUser, type FakeBotApiOptions } from "../../fakes/telegram/fake-bot-api.ts";
import { TelegramBot } from "../../../src/platforms/telegram/telegram-bot.ts";
import type { TelegramConfig } from "../../../src/platforms/telegram/telegram-config.ts";
import type { TelegramCore } from "../../../src/platforms/telegram/telegram-core-port.ts";
import type { TelegramInstances } from "../../../src/platforms/telegram/telegram-instances.ts";
import type { PlatformLog } from "../../../src/platforms/platform-log.ts";
import type { PlatformObserver } from "../../../src/platforms/platform-metrics.ts";
import type { HandledEvent } from "../../../src/platforms/handled-events.ts";

export interface LogLine {
  level: string;
  obj: object;
  msg?: string;
}

export function recordingLog(lines: LogLine[], echo = process.env.TELEGRAM_TEST_LOG === "1"): PlatformLog {
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, obj, msg });
    if (echo) console.error(level, msg, JSON.stringify(obj));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export interface Harness<C extends TelegramCore> {
  fake: FakeBotApi;
  bot: TelegramBot;
  core: C;
  logs: LogLine[];
  /** Every update the bot announced as handled, in order. */
  handledEvents: HandledEvent[];
  /**
   * Resolves once the bot has handled every update the fake has queued so far (ids 1 to
   * `fake.lastUpdateId`): what those updates made the bot do has been done or started (a
   * started generation runs on in the background: `bot.idle()` waits for it).
   */
  allHandled(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Fast timings: edits every 100 ms, no chat pacing, 1 s long polls. Private chats stream by
 * edits (stopped by reaction) unless a test turns drafts on.
 */
export const FAST: Partial<TelegramConfig> = { minEditIntervalMs: 100, chatMinIntervalMs: 0, groupChatMinIntervalMs: 0, pollTimeoutSeconds: 1, privateDrafts: false };

export async function startHarness<C extends TelegramCore>(
  core: C,
  opts: { config?: Partial<TelegramConfig>; fake?: FakeBotApiOptions; start?: boolean; fastPacing?: boolean; stopLatencyWindow?: number; maxDrafts?: number; instances?: TelegramInstances; observer?: PlatformObserver } = {},
): Promise<Harness<C>> {
  const fake = await new FakeBotApi(opts.fake).start();
  const logs: LogLine[] = [];
  const bot = new TelegramBot({ token: fake.token, core, config: { ...FAST, ...opts.config }, log: recordingLog(logs), apiRoot: fake.apiRoot, fastPacing: opts.fastPacing ?? true, stopLatencyWindow: opts.stopLatencyWindow, maxDrafts: opts.maxDrafts, instances: opts.instances, observer: opts.observer });
  const handledEvents: HandledEvent[] = [];
  const handledIds = new Set<string>();
  bot.handled.on((e) => {
    handledEvents.push(e);
    handledIds.add(e.id);
  });
  if (opts.start !== false) await bot.start();
  return {
    fake,
    bot,
    core,
    logs,
    handledEvents,
    async allHandled(timeoutMs = 10_000) {
      const last = fake.lastUpdateId;
      await fake.waitFor(() => {
        for (let id = 1; id <= last; id++) if (!handledIds.has(String(id))) return false;
        return true;
      }, timeoutMs, `the bot to handle updates 1..${last}`);
    },
    async close() {
      await bot.stop(5_000);
      await fake.close();
    },
  };
}

export const alice = makeUser(101, "Alice");
export const bob = makeUser(102, "Bob");
export const admin = makeUser(900, "Admin");

/** Text the way a reader sees it: Telegram strips each message's surrounding whitespace. */
export const norm = (s: string) => s.replace(/\s+/g, " ").trim();
