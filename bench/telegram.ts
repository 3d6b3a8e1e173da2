/**
 * Telegram transport benchmark: many chats streaming at once through the real grammY bot
 * (runner + auto-retry) into the fake Bot API with Telegram-like per-chat limits on.
 *
 * Run: `npx tsx bench/telegram.ts [--chats 20] [--group-replies 5] [--chars 1200] [--limit 1]
 *       [--window-ms 1000] [--retry-after 1] [--stop-fraction 0.5] [--latency-ms 30] [--storm 40]
 *       [--core scripted|real] [--max-tokens 300]`
 *
 * Private chats stream by edits here (stopped by reaction), so every reply is measured alike.
 * `--chats` private chats each ask one question; one group has `--group-replies` questions
 * streaming into the same chat at once (they share its limit). The core is the scripted
 * stand-in (test/fakes/scripted-core.ts): about 80 characters a second per reply, a
 * small model on a CPU, following the core's streaming rules, so the figures measure the
 * adapter, grammY and the limits, not a model. `--core real` runs the real SteeringCore on the
 * tiny generated model with PGlite instead (the tiny model is fast, so most replies end before
 * the stops; the stop figures then come from the few still streaming). Reports:
 *   - edits/s: successful editMessageText calls per second across all chats;
 *   - stop latency: 👎 reaction injected into the fake → core.stop settled (update delivery by
 *     long polling included), and inside the bot (handler start → settled), median/max, ms;
 *   - 429s answered by the fake (the bot paces each chat to its limit, so `--storm N` forces N
 *     429s on top, 2 s into the run) and absorbed by auto-retry, and failures surfaced to users: a
 *     call that still failed after the retries, or a final message text that differs from what
 *     the core generated (done) or showed at the stop (stopped). Target 0.
 */
import { parseArgs } from "node:util";
import { TelegramBot } from "../src/platforms/telegram/telegram-bot.ts";
import { silentLog } from "../src/platforms/platform-log.ts";
import { FakeBotApi, makeUser, type FakeChat } from "../test/fakes/telegram/fake-bot-api.ts";
import { ScriptedCore } from "../test/fakes/scripted-core.ts";
import type { TelegramCore } from "../src/platforms/telegram/telegram-core-port.ts";
import { createTestApp } from "../test/helpers/app.ts";

const { values } = parseArgs({
  options: {
    chats: { type: "string", default: "20" },
    "group-replies": { type: "string", default: "5" },
    chars: { type: "string", default: "1200" },
    limit: { type: "string", default: "1" },
    "window-ms": { type: "string", default: "1000" },
    "retry-after": { type: "string", default: "1" },
    "stop-fraction": { type: "string", default: "0.5" },
    "latency-ms": { type: "string", default: "30" },
    storm: { type: "string", default: "40" },
    core: { type: "string", default: "scripted" },
    "max-tokens": { type: "string", default: "300" },
  },
});
const chats = Number(values.chats);
const groupReplies = Number(values["group-replies"]);
const chars = Number(values.chars);
const stopFraction = Number(values["stop-fraction"]);

const fake = await new FakeBotApi({
  rateLimit: { perChat: Number(values.limit), windowMs: Number(values["window-ms"]), retryAfter: Number(values["retry-after"]) },
  latencyMs: Number(values["latency-ms"]),
}).start();
const lorem = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
const scripted = new ScriptedCore({ answer: (q) => `${q}: ${lorem.repeat(Math.ceil(chars / lorem.length))}`.slice(0, chars), wordMs: 70 });
const realApp = values.core === "real" ? await createTestApp({ db: "pglite", config: { generation: { max_tokens: Number(values["max-tokens"]) } } }) : undefined;
const core: TelegramCore = realApp?.core ?? scripted;
const bot = new TelegramBot({ token: fake.token, core, log: silentLog, apiRoot: fake.apiRoot, config: { pollTimeoutSeconds: 5, privateDrafts: false } });
await bot.start();

interface Asked {
  chat: FakeChat;
  user: ReturnType<typeof makeUser>;
  messageId: number;
  stop: boolean;
}
const asked: Asked[] = [];
for (let i = 0; i < chats; i++) {
  const user = makeUser(10_000 + i, `user${i}`);
  const chat = fake.privateChat(user);
  const m = fake.userSends(chat, user, `question ${i}`);
  asked.push({ chat, user, messageId: m.message_id as number, stop: i < Math.round(chats * stopFraction) });
}
const group = fake.addChat({ id: -1001234, type: "supergroup", title: "bench group" });
for (let i = 0; i < groupReplies; i++) {
  const user = makeUser(20_000 + i, `member${i}`);
  const m = fake.userSends(group, user, `/ask group question ${i}`);
  asked.push({ chat: group, user, messageId: m.message_id as number, stop: i < Math.round(groupReplies * stopFraction) });
}
const t0 = Date.now();
if (Number(values.storm) > 0) setTimeout(() => fake.storm(Number(values.storm), Number(values["retry-after"])), 2000);

// Stop some replies by their askers 2–5 s into the stream.
const injectedAt = new Map<string, number>();
await Promise.all(
  asked.map(async (a) => {
    if (!a.stop) return;
    const first = await fake.waitFor(() => fake.botMessages(a.chat.id).find((m) => m.reply_to_message_id === a.messageId), 60_000, "first message");
    await new Promise((r) => setTimeout(r, 2000 + Math.random() * 3000));
    injectedAt.set(`${a.chat.id}:${first.message_id}`, Date.now());
    fake.userReacts(a.chat, a.user, first.message_id, ["👎"]);
  }),
);
await fake.waitFor(
  () => (realApp ? asked.every((a) => fake.botMessages(a.chat.id).some((m) => m.reply_to_message_id === a.messageId)) : scripted.replies.length === asked.length && scripted.replies.every((r) => r.state !== "generating")) || undefined,
  300_000,
  "all replies started",
);
await bot.idle();
if (realApp) await realApp.core.idle();
await bot.idle();
const elapsed = (Date.now() - t0) / 1000;

// What users see vs what the core generated or showed at the stop.
let lost = 0;
const norm = (t: string) => t.replace(/\s+/g, " ").trim();
if (realApp) {
  // Real core: what users see must be the stored final text (the stop point for stopped ones).
  for (const a of asked) {
    const gen = await realApp.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", `${a.chat.id}:${a.messageId}`).executeTakeFirst();
    const first = fake.botMessages(a.chat.id).find((m) => m.reply_to_message_id === a.messageId);
    const parts = first ? fake.botMessages(a.chat.id).filter((m) => m.message_id >= first.message_id && (a.chat.type === "private" || m === first)) : [];
    if (!gen || norm(parts.map((m) => m.text).join(" ")) !== norm(gen.final_text ?? "")) lost++;
  }
}
for (const r of scripted.replies) {
  const visible = r.messageIds.map((id) => {
    const [c, m] = id.split(":").map(Number) as [number, number];
    return fake.message(c, m)?.text ?? "";
  });
  // Telegram strips each message's surrounding whitespace: compare as a reader sees it.
  if (norm(visible.join(" ")) !== norm(r.shown) || r.gone) lost++;
}
const endToEnd = scripted.replies
  .filter((r) => r.stoppedAt !== undefined)
  .map((r) => r.stoppedAt! - (injectedAt.get(r.messageIds[0]!) ?? r.stoppedAt!))
  .sort((a, b) => a - b);
const inBot = [...bot.metrics.stopLatencyMs].sort((a, b) => a - b);
const edits = fake.callsOf("editMessageText").filter((c) => c.error === undefined);
const writes = fake.calls.filter((c) => (c.method === "editMessageText" || c.method === "sendMessage") && c.error === undefined);
const streamSeconds = writes.length > 1 ? (writes.at(-1)!.at - writes[0]!.at) / 1000 : elapsed;
const median = (xs: number[]) => (xs.length ? xs[Math.floor(xs.length / 2)]! : NaN);
const result = {
  chats,
  groupReplies,
  core: values.core,
  replies: asked.length,
  seconds: Number(elapsed.toFixed(1)),
  streamSeconds: Number(streamSeconds.toFixed(1)),
  edits: edits.length,
  editsPerSecond: Number((edits.length / streamSeconds).toFixed(2)),
  stops: endToEnd.length,
  stopLatencyMedianMs: Math.round(median(endToEnd)),
  stopLatencyMaxMs: endToEnd.length ? Math.round(endToEnd.at(-1)!) : NaN,
  stopLatencyInBotMedianMs: Number(median(inBot).toFixed(1)),
  stopLatencyInBotMaxMs: inBot.length ? Number(inBot.at(-1)!.toFixed(1)) : NaN,
  rateLimit429Answered: fake.throttled,
  rateLimit429Retried: bot.metrics.rateLimited,
  rateLimitSurfaced: bot.metrics.rateLimitSurfaced,
  apiFailures: bot.metrics.apiFailures,
  repliesWithWrongFinalText: lost,
  handlerErrors: bot.metrics.handlerErrors,
};
await bot.stop();
await fake.close();
await realApp?.close();

const failures = result.rateLimitSurfaced + result.apiFailures + result.repliesWithWrongFinalText + result.handlerErrors;
process.stdout.write(
  [
    `telegram bench (${values.core} core): ${chats} private chats + ${groupReplies} replies in one group, ${chars} chars each, limit ${values.limit} per ${values["window-ms"]} ms per chat (retry_after ${values["retry-after"]} s), ${values["latency-ms"]} ms per call, storm of ${values.storm} 429s`,
    `  edits/s (all chats)          ${result.editsPerSecond} (${result.edits} edits in ${result.streamSeconds} s of streaming)`,
    realApp
      ? `  stops handled                ${bot.metrics.stopsHandled} (reaction → core.stop settled is below, for the newest ${bot.metrics.stopLatencyMs.length})`
      : `  stop latency (${result.stops} stops)     median ${result.stopLatencyMedianMs} ms, max ${result.stopLatencyMaxMs} ms (reaction injected → stop settled)`,
    `  stop latency inside the bot  median ${result.stopLatencyInBotMedianMs} ms, max ${result.stopLatencyInBotMaxMs} ms`,
    `  429s answered / retried      ${result.rateLimit429Answered} / ${result.rateLimit429Retried}`,
    `  failures surfaced to users   ${failures} (target 0: 429 after retries ${result.rateLimitSurfaced}, other API ${result.apiFailures}, wrong final text ${result.repliesWithWrongFinalText}, handler errors ${result.handlerErrors})`,
    JSON.stringify(result),
    "",
  ].join("\n"),
);
process.exit(failures === 0 ? 0 : 1);
