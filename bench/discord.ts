/**
 * Discord transport benchmark: N threads streaming at once through the real discord.js client
 * into the fake Discord with Discord-like rate limits on.
 *
 * Run: `npx tsx bench/discord.ts [--threads 20] [--chars 1200] [--limit 5] [--window-ms 5000]
 *       [--stop-fraction 0.5] [--storm 40] [--core scripted|real] [--max-tokens 300]`
 *
 * `--core scripted` (default): the scripted stand-in (test/fakes/scripted-core.ts)
 * produces text at a steady "token rate" (about 80 characters a second, a small model on a CPU)
 * and follows the core's streaming rules, so the numbers measure the adapter and discord.js's
 * REST queue, not a model. `--core real`: the real SteeringCore with the tiny generated model
 * and in-memory PGlite (test/helpers/app.ts); it also reports engine abort latency (abort
 * signal fired → generation returned). Reports:
 *   - edits/s: successful message edits per second across all threads (and per message);
 *   - stop latency: stop reaction received by the bot → core.stop settled (generation aborted
 *     and the message cut), median and max, ms;
 *   - 429s: answered by the fake (`--storm N` forces N real 429s on top of the bucket limits,
 *     since discord.js otherwise waits pre-emptively from the X-RateLimit headers and rarely
 *     gets one), rate-limit waits in discord.js's queue, and 429s surfaced to users (a failed
 *     send/edit, or a final message that differs from the text generated): target 0.
 */
import { parseArgs } from "node:util";
import { DiscordBot } from "../src/platforms/discord/discord-bot.ts";
import { RecordingLog } from "../test/fakes/discord/discord-harness.ts";
import { FakeDiscord } from "../test/fakes/discord/fake-discord.ts";
import { ScriptedCore } from "../test/fakes/scripted-core.ts";
import { createTestApp } from "../test/helpers/app.ts";
import type { DiscordCore } from "../src/platforms/discord/discord-core.ts";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "20" },
    chars: { type: "string", default: "1200" },
    limit: { type: "string", default: "5" },
    "window-ms": { type: "string", default: "5000" },
    "stop-fraction": { type: "string", default: "0.5" },
    storm: { type: "string", default: "40" },
    core: { type: "string", default: "scripted" },
    "max-tokens": { type: "string", default: "300" },
  },
});
const N = Number(values.threads);
const chars = Number(values.chars);
const stopFraction = Number(values["stop-fraction"]);

const fake = new FakeDiscord({ rateLimit: { limit: Number(values.limit), windowMs: Number(values["window-ms"]) } });
await fake.listen();
const users = Array.from({ length: N }, (_, i) => fake.addUser(`user${i}`));
const real = values.core === "real";
const scripted = new ScriptedCore({ continueAs: "new-reply", answer: (q) => `${q}: ${"lorem ipsum dolor sit amet ".repeat(Math.ceil(chars / 27))}`.slice(0, chars), charsPerTick: 8, tickMs: 100 });
const app = real
  ? await createTestApp({ db: "pglite", config: { generation: { max_tokens: Number(values["max-tokens"]) }, model: { context_size: 4096 } } })
  : undefined;
const core: DiscordCore = app ? app.core : scripted;
// Engine abort latency (real core): abort signal fired → generate() returned.
const abortLatencyMs: number[] = [];
if (app) {
  const generate = app.engine.generate.bind(app.engine);
  app.engine.generate = async (options) => {
    let abortedAt = 0;
    options.signal?.addEventListener("abort", () => (abortedAt = performance.now()));
    const out = await generate(options);
    if (abortedAt) abortLatencyMs.push(performance.now() - abortedAt);
    return out;
  };
}
const log = new RecordingLog();
const bot = new DiscordBot({ token: fake.token, core, log, config: app?.config, rest: { api: fake.apiUrl } });
await bot.start();

const t0 = Date.now();
const questions = users.map((u, i) => fake.say(u, fake.general, `${fake.mention} question ${i}`));
if (Number(values.storm) > 0) fake.limiter.storm(Number(values.storm), 500);
const toStop = new Set(questions.slice(0, Math.round(N * stopFraction)).map((q) => q.id));

// Stop some replies by their askers 2–5 s into the stream (at a random point of what they see).
await Promise.all(
  questions.map(async (q, i) => {
    if (!toStop.has(q.id)) return;
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 30_000, "thread");
    const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 30_000, "first message");
    await new Promise((r) => setTimeout(r, 2000 + Math.random() * 3000));
    fake.react(users[i], first.id, "🛑");
  }),
);
// A reply has finished when its generation row (real) or scripted reply is no longer streaming.
async function finished(): Promise<boolean> {
  if (!app) return scripted.replies.length === N && scripted.replies.every((r) => r.state !== "generating");
  const rows = await app.store.db.selectFrom("generations").select(["status"]).execute();
  return rows.length === N && rows.every((r) => r.status !== "streaming");
}
for (const end = Date.now() + 600_000; !(await finished()); ) {
  if (Date.now() > end) throw new Error("bench: replies did not finish in 10 minutes");
  await new Promise((r) => setTimeout(r, 200));
}
// Let any edit still queued behind a rate limit land before reading what users see.
await new Promise((r) => setTimeout(r, 1500));
const elapsed = (Date.now() - t0) / 1000;

// What users see must equal what was generated (done) or kept (stopped).
let lost = 0;
for (const q of questions) {
  const thread = fake.state.threadOf(q.id);
  const visible = thread ? fake.state.botMessagesIn(thread.id).map((m) => m.content).join("") : "";
  let expected: string | undefined;
  if (app) {
    const g = await app.store.db.selectFrom("generations").select(["final_text"]).where("source_message_id", "=", q.id).executeTakeFirst();
    expected = g?.final_text ?? undefined;
  } else {
    const r = scripted.replies.find((x) => x.thread.threadId === thread?.id);
    expected = r && (r.state === "done" ? r.target : r.shown);
  }
  if (visible !== expected) lost++;
}
const edits = fake.requests.filter((r) => r.method === "PATCH" && r.path.startsWith("/channels/") && r.status === 200);
const botWrites = fake.requests.filter((r) => r.path.includes("/messages") && r.status === 200 && r.method !== "GET");
// The streaming window: first message sent → last edit applied.
const streamSeconds = botWrites.length ? (botWrites[botWrites.length - 1].at - botWrites[0].at) / 1000 : elapsed;
const perMessage = new Map<string, number[]>();
for (const m of fake.state.messages.values()) {
  if (m.authorId !== fake.state.bot.id || m.versions.length < 2) continue;
  perMessage.set(m.id, m.versions.map((v) => v.at));
}
const gaps = [...perMessage.values()].flatMap((ts) => ts.slice(1).map((t, i) => t - ts[i]));
const stops = [...bot.metrics.stopLatencyMs].sort((a, b) => a - b);
const median = (xs: number[]) => (xs.length ? xs[Math.floor(xs.length / 2)] : NaN);
const result = {
  threads: N,
  seconds: Number(elapsed.toFixed(1)),
  streamSeconds: Number(streamSeconds.toFixed(1)),
  edits: edits.length,
  editsPerSecond: Number((edits.length / streamSeconds).toFixed(2)),
  medianEditGapPerMessageMs: Math.round(median([...gaps].sort((a, b) => a - b))),
  minEditGapPerMessageMs: gaps.length ? Math.min(...gaps) : NaN,
  stops: bot.metrics.stopsHandled, // the latencies below: the newest 1000 (metrics.stopLatencyMs is a window)
  stopLatencyMedianMs: Number(median(stops).toFixed(1)),
  stopLatencyMaxMs: stops.length ? Number(stops[stops.length - 1].toFixed(1)) : NaN,
  ...(app
    ? {
        engineAbortMedianMs: Number(median([...abortLatencyMs].sort((a, b) => a - b)).toFixed(1)),
        engineAbortMaxMs: abortLatencyMs.length ? Number(Math.max(...abortLatencyMs).toFixed(1)) : NaN,
      }
    : {}),
  rateLimit429Answered: fake.limiter.limitedCount,
  rateLimitWaits: bot.metrics.rateLimitsAbsorbed,
  rateLimit429SurfacedToUsers: bot.metrics.rateLimitsSurfaced,
  repliesWithLostEdits: lost,
  handlerErrors: bot.metrics.handlerErrors,
};
await bot.stop();
await app?.close();
await fake.close();

process.stdout.write(
  [
    `discord bench (${real ? `real core, tiny model, max ${values["max-tokens"]} tokens` : `scripted core, ${chars} chars`}): ${N} threads, limit ${values.limit}/${values["window-ms"]}ms per channel bucket, ${values.storm} forced 429s`,
    `  edits/s (all threads)        ${result.editsPerSecond} (${result.edits} edits in ${result.streamSeconds} s of streaming)`,
    `  edit gap per message         median ${result.medianEditGapPerMessageMs} ms, min ${result.minEditGapPerMessageMs} ms`,
    `  stop latency (${result.stops} stops)    median ${result.stopLatencyMedianMs} ms, max ${result.stopLatencyMaxMs} ms (reaction received → core.stop settled: aborted and cut)`,
    ...(app ? [`  engine abort latency         median ${result.engineAbortMedianMs} ms, max ${result.engineAbortMaxMs} ms (abort signal → generation returned)`] : []),
    `  429s answered by Discord     ${result.rateLimit429Answered} (rate-limit waits in discord.js: ${result.rateLimitWaits})`,
    `  429s surfaced to users       ${result.rateLimit429SurfacedToUsers} (target 0)`,
    `  replies with a lost edit     ${result.repliesWithLostEdits} (target 0)`,
    JSON.stringify(result),
    "",
  ].join("\n"),
);
process.exit(result.rateLimit429SurfacedToUsers === 0 && result.repliesWithLostEdits === 0 ? 0 : 1);
