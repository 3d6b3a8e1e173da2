/**
 * Test harness: a fake Discord plus a real `DiscordBot` (real discord.js) connected to it.
 *
 * Owns: starting both, a log that records every line (tests assert the lines an operator would
 * read), a default cast of users, waiting for the bot to have handled given gateway events,
 * and tearing it all down again.
 */
import { DiscordBot } from "../../../src/platforms/discord/discord-bot.ts";
import type { DiscordCore } from "../../../src/platforms/discord/discord-core.ts";
import type { DiscordConfigInput, DiscordLog } from "../../../src/platforms/discord/discord-settings.ts";
import type { HandledEvent } from "../../../src/platforms/handled-events.ts";
import type { FakeUser } from "./fake-discord-state.ts";
import { FakeDiscord, type FakeDiscordOptions } from "./fake-discord.ts";

export interface LogLine {
  level: string;
  obj: object;
  msg?: string;
}

/** A DiscordLog that keeps every line (and prints errors when DISCORD_TEST_LOG is set). */
export class RecordingLog implements DiscordLog {
  readonly lines: LogLine[] = [];
  #add(level: string, obj: object, msg?: string): void {
    this.lines.push({ level, obj, msg });
    if (process.env.DISCORD_TEST_LOG) process.stderr.write(`[${level}] ${msg ?? ""} ${JSON.stringify(obj)}\n`);
  }
  debug(obj: object, msg?: string): void {
    this.#add("debug", obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.#add("info", obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.#add("warn", obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.#add("error", obj, msg);
  }
  has(level: string, fragment: string): boolean {
    return this.lines.some((l) => l.level === level && (l.msg ?? "").includes(fragment));
  }
}

export interface Harness {
  fake: FakeDiscord;
  bot: DiscordBot;
  log: RecordingLog;
  alice: FakeUser;
  bob: FakeUser;
  admin: FakeUser;
  /**
   * Resolves once the bot has announced `times` handled events that `match` accepts (their
   * handlers settled: acted on, ignored, or dropped as duplicates). Call it before, or in the
   * same synchronous turn as, what causes the events.
   */
  handled(match: (e: HandledEvent) => boolean, times?: number, timeoutMs?: number): Promise<HandledEvent[]>;
  close(): Promise<void>;
}

/** See `Harness.handled`. */
export function waitHandled(
  bot: DiscordBot,
  match: (e: HandledEvent) => boolean,
  times = 1,
  timeoutMs = 10_000,
): Promise<HandledEvent[]> {
  return new Promise((resolve, reject) => {
    const seen: HandledEvent[] = [];
    const timer = setTimeout(() => {
      off();
      reject(new Error(`discord harness: ${seen.length} of ${times} matching events handled after ${timeoutMs} ms`));
    }, timeoutMs);
    const off = bot.handled.on((e) => {
      if (!match(e)) return;
      seen.push(e);
      if (seen.length < times) return;
      clearTimeout(timer);
      off();
      resolve(seen);
    });
  });
}

export async function startHarness(
  core: DiscordCore,
  opts: { fake?: FakeDiscordOptions | FakeDiscord; config?: DiscordConfigInput; stopLatencyWindow?: number } = {},
): Promise<Harness> {
  let fake: FakeDiscord;
  if (opts.fake instanceof FakeDiscord) fake = opts.fake; // already listening
  else {
    fake = new FakeDiscord(opts.fake);
    await fake.listen();
  }
  const alice = fake.addUser("alice");
  const bob = fake.addUser("bob");
  const admin = fake.addUser("root", [fake.adminRole]);
  const log = new RecordingLog();
  const bot = new DiscordBot({ token: fake.token, core, config: opts.config, log, rest: { api: fake.apiUrl }, stopLatencyWindow: opts.stopLatencyWindow });
  await bot.start();
  return {
    fake,
    bot,
    log,
    alice,
    bob,
    admin,
    handled: (match, times, timeoutMs) => waitHandled(bot, match, times, timeoutMs),
    async close() {
      await bot.stop();
      await fake.close();
    },
  };
}
