/**
 * `/status` (AdminCommands.status, what Discord's and Telegram's /status show) on a real app:
 * the running instances with role, host, pid, live adapter and heartbeat; the training queue's
 * depth; while a real training job runs in the in-process queue — held there by the real
 * trainer, with a second job queued behind it — the running job's step/total, loss, ETA,
 * worker and attempt, and the worker's heartbeat age. On PostgreSQL with `run_here: false`, a
 * queued job with no instance to take it says so.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import { formatSeconds } from "../../src/core/admin-commands.ts";
import type { Actor } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { colourSteers } from "../training/colour-task.ts";
import { until } from "../helpers/until.ts";

const operator: Actor = { platform: "terminal", userId: "local", operator: true };
const stranger: Actor = { platform: "telegram", userId: "12345" };


async function status(app: TestApp, actor: Actor = operator): Promise<string> {
  const out = await app.core.admin.status(actor);
  assert.equal(out.ok, actor === operator, out.notice);
  return out.notice!;
}

describe("/status on a real app", () => {
  let app: TestApp;
  before(async () => {
    app = await createTestApp({
      db: "pglite",
      config: { training: { base_model: await tinyModelPath(), min_new_steers: 1, objective: "sft", epochs: 200, rank: 4, alpha: 8, held_out_fraction: 0.25 } },
    });
  });
  after(async () => app?.close());

  it("lists the instances and the empty queue; admins only", async () => {
    const text = await status(app);
    const self = app.store.instanceId.slice(0, 8);
    assert.match(text, /^Instances: 1 running:$/m);
    assert.ok(text.includes(`  ${self}: bot, host ${hostname()}, pid ${process.pid}, this one, serves the base model, takes training jobs, heartbeat `), text);
    assert.match(text, /^Training queue: 0 job\(s\) queued$/m);
    assert.match(text, /^Training job: none running$/m);
    assert.match(text, /^Worker heartbeat: no job running$/m);
    assert.equal((await app.core.admin.status(stranger)).notice, "Sorry, only admins can do that.");
  });

  it("while a job runs: the queue depth, the running job's step/total, loss, ETA and worker, and the worker's heartbeat", async () => {
    const { store, queue } = app;
    await store.steers.importRecords(colourSteers(24, false));
    const running = await queue.enqueue({ trigger: "command", actor: operator });
    await until("the trainer's first progress", async () => (await store.jobs.running()).find((j) => j.step !== null));
    const queued = await queue.enqueue({ trigger: "cron", singletonKey: "status-test" });
    assert.equal(queued.created, true);

    const text = await status(app);
    const self = store.instanceId.slice(0, 8);
    assert.match(text, /^Training queue: 1 job\(s\) queued$/m);
    const line = text.split("\n").find((l) => l.startsWith("Training job:"))!;
    const m = new RegExp(`^Training job: ${running.job.id.slice(0, 8)} running on ${self} \\(this instance, bot, host ${hostname().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}, pid ${process.pid}\\), step (\\d+)/(\\d+), loss (\\d+\\.\\d{4}), ETA (.+) \\(attempt 1\\)$`).exec(line);
    assert.ok(m, line);
    const row = (await store.jobs.get(running.job.id))!;
    assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= Number(m[2]) && Number(m[2]) === row.steps, line);
    assert.match(text, /^Worker heartbeat: \d s ago$/m, "the worker (this process) wrote progress within seconds");

    await queue.cancel(queued.job.id);
    await queue.cancel(running.job.id);
    await queue.drained();
    const after = await status(app);
    assert.match(after, /^Training queue: 0 job\(s\) queued$/m);
    assert.match(after, /^Training job: none running$/m);
  });

  it("words durations as people read them", () => {
    assert.deepEqual([0, 4.4, 59.6, 61, 3600, 3661, 7320].map(formatSeconds), ["0 s", "4 s", "1 min", "1 min 1 s", "1 h", "1 h 1 min", "2 h 2 min"]);
  });
});

describe("/status when no running instance takes training jobs", () => {
  let app: TestApp;
  before(async () => {
    app = await createTestApp({ db: "postgres", config: { training: { run_here: false } } });
  });
  after(async () => app?.close());

  it("says a queued job waits for a worker", async () => {
    const { job } = await app.queue.enqueue({ trigger: "cli" });
    const text = await status(app);
    assert.ok(text.includes("Training queue: 1 job(s) queued (no running instance takes training jobs: start `steerbot worker`, or a bot with training.run_here)"), text);
    assert.ok(text.includes(`${app.store.instanceId.slice(0, 8)}: bot, host ${hostname()}, pid ${process.pid}, this one, serves the base model, heartbeat `), "this bot takes no jobs");
    await app.queue.cancel(job.id);
  });
});
