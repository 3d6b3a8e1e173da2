/**
 * `GET /metrics` scraped over HTTP from a real app (PGlite, the tiny fixture model, the real
 * core, queue and trainer) behind the real studio server, with a real grammY Telegram bot on
 * the fake Bot API: the text is valid Prometheus exposition (HELP and TYPE for every family,
 * strict sample syntax, cumulative histograms) and the counters move by exactly what happened —
 * a Telegram reply, its stop (with the stop latency the bot measured itself), the steer, the
 * resumed reply, the 429s the platform answered, every send/edit timed — and training jobs are
 * timed by outcome, while the gauges show the queue depth, the running job and its worker's
 * heartbeat as it runs; the bot's own "asking too fast" answers are counted too.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import type { Actor } from "../../src/core/ports.ts";
import { startWebServer, type WebServer } from "../../src/platforms/web/web-server.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";
import { findSample, parsePrometheusText, sampleValue, samplesOf, type Family } from "../helpers/prometheus-text.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { alice, startHarness, type Harness } from "../platforms/telegram/harness.ts";
import { colourSteers } from "../training/colour-task.ts";
import { until } from "../helpers/until.ts";

const operator: Actor = { platform: "web", userId: "local", operator: true };


describe("GET /metrics of a real app", () => {
  let app: TestApp;
  let studio: WebServer;
  let h: Harness<TestApp["core"]>;
  before(async () => {
    app = await createTestApp({
      db: "pglite",
      config: {
        generation: { max_tokens: 400 },
        ask: { per_user_per_minute: 3 },
        training: { base_model: await tinyModelPath(), min_new_steers: 1, objective: "sft", epochs: 200, rank: 4, alpha: 8, held_out_fraction: 0.25 },
      },
    });
    studio = await startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host: "127.0.0.1", port: 0, metrics: app.metrics });
    // each send/edit takes 30 ms: the model runs ahead of what the user sees, as on Telegram
    h = await startHarness(app.core, { fake: { latencyMs: 30 }, config: { minEditIntervalMs: 100 }, observer: app.metrics });
  });
  after(async () => {
    await h?.close();
    await studio?.close();
    await app?.close();
  });

  async function scrape(): Promise<Map<string, Family>> {
    const res = await fetch(`${studio.url}metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return parsePrometheusText(await res.text());
  }

  it("is valid exposition text: every family with its HELP and TYPE, the steerbot ones and the process ones", async () => {
    const m = await scrape();
    const expected: Record<string, Family["type"]> = {
      steerbot_replies_started_total: "counter",
      steerbot_replies_finished_total: "counter",
      steerbot_stops_total: "counter",
      steerbot_steers_total: "counter",
      steerbot_rate_limited_total: "counter",
      steerbot_refusals_total: "counter",
      steerbot_edit_latency_seconds: "histogram",
      steerbot_stop_latency_seconds: "histogram",
      steerbot_training_job_duration_seconds: "histogram",
      steerbot_training_queue_depth: "gauge",
      steerbot_training_job_running: "gauge",
      steerbot_worker_heartbeat_age_seconds: "gauge",
      steerbot_instances_alive: "gauge",
      steerbot_instance_heartbeat_age_seconds: "gauge",
      steerbot_replies_generating: "gauge",
      steerbot_database_up: "gauge",
      steerbot_info: "gauge",
      process_cpu_seconds_total: "counter",
      nodejs_heap_size_used_bytes: "gauge",
    };
    for (const [name, type] of Object.entries(expected)) {
      assert.equal(m.get(name)?.type, type, `${name} is a ${type}`);
      assert.ok(m.get(name)!.help.length > 10, `${name} says what it counts`);
    }
    assert.equal(sampleValue(m, "steerbot_database_up"), 1);
    assert.equal(sampleValue(m, "steerbot_info", { instance_id: app.store.instanceId, role: "bot", version: "0.1.0" }), 1);
    assert.equal(sampleValue(m, "steerbot_instances_alive", { role: "bot" }), 1, "this app is the one instance");
    assert.equal(sampleValue(m, "steerbot_instances_alive", { role: "worker" }), 0);
    const beat = findSample(m, "steerbot_instance_heartbeat_age_seconds", { instance_id: app.store.instanceId, role: "bot", host: hostname() });
    assert.ok(beat && beat.value >= 0 && beat.value < 30, `this instance's heartbeat: ${beat?.value}`);
    assert.equal(sampleValue(m, "steerbot_training_job_running"), 0, "no job: one 0 without labels");
    assert.equal(samplesOf(m, "steerbot_training_job_running").length, 1);
    assert.deepEqual(samplesOf(m, "steerbot_worker_heartbeat_age_seconds"), [], "no job, no worker heartbeat");
  });

  it("times training jobs by outcome; while one runs: queue depth, the running job, its progress and its worker's heartbeat", async () => {
    const { queue, store } = app;
    // nothing to train on yet: the job is skipped
    const skipped = await queue.enqueue({ trigger: "cli" });
    await queue.drained();
    assert.equal((await store.jobs.get(skipped.job.id))!.state, "skipped");

    await store.steers.importRecords(colourSteers(24, false));
    const running = await queue.enqueue({ trigger: "command", actor: operator });
    assert.equal(running.created, true);
    const row = await until("the trainer's first progress", async () => (await store.jobs.running()).find((j) => j.step !== null));
    assert.equal(row.id, running.job.id);
    // the nightly trigger queues a second job behind it
    const queued = await queue.enqueue({ trigger: "cron", singletonKey: "metrics-test" });
    assert.equal(queued.created, true);

    const m = await scrape();
    assert.equal(sampleValue(m, "steerbot_training_queue_depth"), 1);
    assert.equal(sampleValue(m, "steerbot_training_job_running", { job_id: running.job.id, worker_instance: store.instanceId, worker_role: "bot" }), 1);
    assert.equal(samplesOf(m, "steerbot_training_job_running").length, 1, "only the running job");
    const job = { job_id: running.job.id };
    const progress = sampleValue(m, "steerbot_training_job_progress_ratio", job);
    assert.ok(progress > 0 && progress <= 1, `progress ${progress}`);
    assert.ok(Number.isFinite(findSample(m, "steerbot_training_job_loss", job)?.value));
    assert.ok(findSample(m, "steerbot_training_job_eta_seconds", job), "an ETA");
    const age = findSample(m, "steerbot_worker_heartbeat_age_seconds", { ...job, worker_instance: store.instanceId });
    assert.ok(age && age.value >= 0 && age.value < 5, `the worker (this process) wrote progress just now: ${age?.value} s`);

    assert.equal((await queue.cancel(queued.job.id))?.state, "cancelled");
    await queue.cancel(running.job.id); // read back by the worker with its next progress write
    await queue.drained();
    assert.equal((await store.jobs.get(running.job.id))!.state, "cancelled");

    const done = await scrape();
    assert.equal(sampleValue(done, "steerbot_training_job_duration_seconds_count", { outcome: "skipped" }), 1);
    assert.equal(sampleValue(done, "steerbot_training_job_duration_seconds_count", { outcome: "cancelled" }), 1, "the job cancelled while queued never ran here: not timed");
    assert.equal(samplesOf(done, "steerbot_training_job_duration_seconds_count").length, 2);
    assert.ok(sampleValue(done, "steerbot_training_job_duration_seconds_sum", { outcome: "cancelled" }) > 0);
    assert.equal(sampleValue(done, "steerbot_training_queue_depth"), 0);
    assert.equal(sampleValue(done, "steerbot_training_job_running"), 0);
    for (const name of ["steerbot_worker_heartbeat_age_seconds", "steerbot_training_job_progress_ratio", "steerbot_training_job_loss", "steerbot_training_job_eta_seconds"]) {
      assert.deepEqual(samplesOf(done, name), [], `${name}: only while a job runs`);
    }
  });

  it("counts a Telegram reply, its stop, the steer, the resumed reply, the platform's 429s and times every send and edit", async () => {
    const before = await scrape();
    const delta = (m: Map<string, Family>, name: string, labels: Record<string, string>) => sampleValue(m, name, labels) - sampleValue(before, name, labels);
    const chat = h.fake.privateChat(alice) as { id: number; type: "private" };
    const limitedBefore = h.bot.metrics.rateLimited;

    h.fake.storm(2, 1); // the next two sends/edits are answered 429, retry after 1 s
    h.fake.userSends(chat, alice, "Tell me a long story");
    const m = await h.fake.waitFor(() => {
      const ms = h.fake.botMessages(chat.id);
      return ms.length === 1 && ms[0]!.versions.length >= 2 ? ms[0] : undefined;
    }, 30_000, "streaming");
    h.fake.userReacts(chat, alice, m.message_id, ["👎"]);
    await h.fake.waitFor(() => app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) })?.state === "stopped" || undefined, 10_000, "stopped");
    await h.allHandled();
    await h.bot.idle();
    const c = h.fake.userSends(chat, alice, "Once upon a time", { replyTo: m.message_id });
    await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.reply_to_message_id === c.message_id), 30_000, "resumed reply");
    await h.allHandled();
    await h.bot.idle();
    await app.core.idle();

    const after = await scrape();
    assert.equal(delta(after, "steerbot_replies_started_total", { platform: "telegram", trigger: "question" }), 1);
    assert.equal(delta(after, "steerbot_replies_started_total", { platform: "telegram", trigger: "steer" }), 1);
    assert.equal(delta(after, "steerbot_replies_finished_total", { platform: "telegram", outcome: "stopped" }), 1);
    assert.equal(delta(after, "steerbot_replies_finished_total", { platform: "telegram", outcome: "done" }), 1);
    assert.equal(delta(after, "steerbot_stops_total", { platform: "telegram" }), 1);
    assert.equal(delta(after, "steerbot_steers_total", { platform: "telegram", status: "approved" }), 1);
    assert.equal((await app.store.steers.list({ states: ["approved"] })).filter((s) => s.platform === "telegram").length, 1);

    // the stop latency is the one the bot measured for its own counters
    assert.equal(h.bot.metrics.stopsHandled, 1);
    assert.equal(delta(after, "steerbot_stop_latency_seconds_count", { platform: "telegram" }), 1);
    assert.ok(Math.abs(sampleValue(after, "steerbot_stop_latency_seconds_sum", { platform: "telegram" }) - h.bot.metrics.stopLatencyMs[0]! / 1000) < 1e-9);

    // the 429s: each answered one, as the bot counted it, waited out (none surfaced)
    assert.equal(h.fake.throttled, 2);
    assert.equal(h.bot.metrics.rateLimited - limitedBefore, 2);
    assert.equal(delta(after, "steerbot_rate_limited_total", { platform: "telegram", handling: "absorbed" }), 2);
    assert.equal(delta(after, "steerbot_rate_limited_total", { platform: "telegram", handling: "surfaced" }), 0);

    // every send and edit of the reply's messages: two messages (the reply, the resumed reply), several edits
    assert.equal(delta(after, "steerbot_edit_latency_seconds_count", { platform: "telegram", op: "send" }), 2);
    const edits = delta(after, "steerbot_edit_latency_seconds_count", { platform: "telegram", op: "edit" });
    assert.ok(edits >= 2, `edits timed: ${edits}`);
    // 30 ms a call at the fake, and the first send waited out two 429s of 1 s each
    assert.ok(delta(after, "steerbot_edit_latency_seconds_sum", { platform: "telegram", op: "edit" }) >= edits * 0.03);
    assert.ok(delta(after, "steerbot_edit_latency_seconds_sum", { platform: "telegram", op: "send" }) >= 1.5, "the 429 waits are part of the latency");
    assert.equal(sampleValue(after, "steerbot_replies_generating"), 0);
  });

  it("counts the bot's own refusals: a fourth question in a minute is refused, the three before it streamed", async () => {
    const before = await scrape();
    const delta = (m: Map<string, Family>, name: string, labels: Record<string, string>) => sampleValue(m, name, labels) - sampleValue(before, name, labels);
    const actor: Actor = { platform: "web", userId: "quick" };
    const outs = [];
    for (let i = 0; i < 4; i++) {
      outs.push(await app.core.ask({ thread: { platform: "web", chatId: "quick", threadId: `q${i}` }, actor, text: "Hello there", sourceMessageId: `quick-${i}`, surface: new RecordingSurface(), settings: { maxTokens: 8 } }));
    }
    assert.deepEqual(outs.map((o) => o.ok), [true, true, true, false]);
    assert.match(outs[3]!.notice!, /asking very fast/);
    const after = await scrape();
    assert.equal(delta(after, "steerbot_refusals_total", { platform: "web", reason: "ask_rate_limit" }), 1);
    assert.equal(delta(after, "steerbot_replies_started_total", { platform: "web", trigger: "question" }), 3);
    assert.equal(delta(after, "steerbot_replies_finished_total", { platform: "web", outcome: "done" }), 3);
    assert.equal(delta(after, "steerbot_edit_latency_seconds_count", { platform: "web", op: "send" }), 3);
  });
});
