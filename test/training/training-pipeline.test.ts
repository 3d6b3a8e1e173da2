/**
 * The training loop end to end, with no restart: imported steers → /retrain (the admin
 * command every platform maps to) → the real native trainer → evaluation gate → hot-swap →
 * the next reply uses the adapter. Plus the failure paths: a second request while a run is
 * going, a killed trainer, a corrupt adapter, replies streaming through a swap, and that many
 * swaps free every replaced context and model.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import type { Actor } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import type { Engine } from "../../src/engine/engine.ts";
import { fileSha256 } from "../../src/engine/model-file.ts";
import { MAX_ADAPTERS_PER_MODEL } from "../../src/training/adapter-activator.ts";
import { threadBudget } from "../../src/training/training-service.ts";
import { cpuCores } from "../../src/engine/engine.ts";
import { CHOSEN, colourSteers } from "./colour-task.ts";
import { PNG } from "pngjs";
import { DEFAULT_CHART_SIZE, renderChartSvg } from "../../src/training/charts/render-chart.ts";
import { lossCurveOption, type HeldOutMetrics } from "../../src/training/charts/training-charts.ts";

const admin: Actor = { platform: "test", userId: "admin" };
const stranger: Actor = { platform: "test", userId: "stranger" };

async function replyTo(app: TestApp, text: string, id: string): Promise<string> {
  const surface = new RecordingSurface();
  await app.core.ask({ thread: { platform: "test", chatId: "c", threadId: id }, actor: admin, text, sourceMessageId: id, surface });
  return surface.visible;
}

for (const db of ["pglite", "postgres"] as const) {
  describe(`training pipeline on ${db}`, () => {
    let app: TestApp;
    let model: string;
    const dir = mkdtempSync(path.join(tmpdir(), "steerbot-swaps-"));
    before(async () => {
      model = await tinyModelPath();
      app = await createTestApp({
        db,
        config: {
          permissions: { admins: { users: ["admin"] } },
          generation: { max_tokens: 8 },
          training: { base_model: await tinyModelPath(), min_new_steers: 10, objective: "sft", epochs: 4, learning_rate: 0.01, rank: 8, alpha: 16, held_out_fraction: 0.25, min_improvement: 0.05 },
        },
      });
      // The colour task: every steer corrects "…the colour is <wrong>" to " blue".
      await app.store.steers.importRecords([...colourSteers(60, false), ...colourSteers(20, true)]);
    });
    after(async () => app?.close());

    it("refuses /retrain to non-admins", async () => {
      const out = await app.core.admin.retrain(stranger, async () => {});
      assert.deepEqual(out, { ok: false, notice: "Sorry, only admins can do that." });
    });

    it("trains, gates, swaps in the adapter, and the next reply changes — with no restart", async () => {
      const prompt = "Tell me about the castle and the helmet.";
      const before = await replyTo(app, prompt, "before");
      const engineBefore = app.core.currentEngine;
      const progress: string[] = [];
      // A second request while the first one runs (it has said so) is told a run is going.
      let runSaidSo!: () => void;
      const first = app.core.admin.retrain(admin, async (t) => {
        progress.push(t);
        runSaidSo();
      });
      await new Promise<void>((r) => (runSaidSo = r));
      const refused = await app.core.admin.retrain(admin, async () => {});
      const ran = await first;
      assert.match(refused.notice!, /already going/);
      assert.equal(ran.ok, true, ran.notice);
      assert.match(ran.notice!, /is now live/);
      // the trainer ran on its share of the cores, the bot keeps the rest
      assert.match(ran.notice!, new RegExp(`tokens/s on ${threadBudget(cpuCores(), 0).trainer} thread\\(s\\)`));
      assert.ok(progress.some((p) => /Training run #\d+: \d+ steers/.test(p)));
      const png = ran.attachments?.[0];
      assert.ok(png?.endsWith("-loss.png"), "the summary carries the loss-curve picture");
      assert.deepEqual([...readFileSync(png!).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "a PNG file");
      const runs = await app.store.db.selectFrom("training_runs").selectAll().execute();
      assert.equal(runs.filter((r) => r.state === "succeeded").length, 1, "two requests, one run");
      const adapters = await app.store.training.adapters();
      assert.equal(adapters.length, 1);
      assert.equal(adapters[0]!.state, "active");
      // the picture is the run's chart: its size, and the stored run's losses and metrics drawn with their labels
      const picture = PNG.sync.read(readFileSync(png!));
      assert.deepEqual([picture.width, picture.height], [DEFAULT_CHART_SIZE.width, DEFAULT_CHART_SIZE.height]);
      const done = runs.find((r) => r.state === "succeeded")!;
      assert.ok(done.loss_curve.length > 1, "the run stored its losses");
      const svg = renderChartSvg(lossCurveOption({ runId: done.id, lossCurve: done.loss_curve, metrics: adapters[0]!.metrics as unknown as HeldOutMetrics }));
      assert.match(svg, new RegExp(`>Training run #${done.id} — loss<`));
      assert.match(svg, /candidate \d+\.\d%/);
      assert.match(svg, /Gate: activated — candidate held-out accuracy/);
      const metrics = adapters[0]!.metrics as { base: { preferenceAccuracy: number }; candidate: { preferenceAccuracy: number } };
      assert.ok(metrics.candidate.preferenceAccuracy >= metrics.base.preferenceAccuracy + 0.05, JSON.stringify(metrics));
      assert.notEqual(app.core.currentEngine, engineBefore, "a new engine (with the adapter) serves new replies");
      assert.equal(app.activator.liveVersion, adapters[0]!.version);

      // The generation is recorded with the adapter, and the output changed as the steers taught.
      const after = await replyTo(app, prompt, "after");
      assert.notEqual(after, before);
      const gen = await app.store.db.selectFrom("generations").select("adapter_id").where("source_message_id", "=", "after").executeTakeFirstOrThrow();
      assert.equal(gen.adapter_id, adapters[0]!.id);
      const taught = await app.core.currentEngine.generate({
        messages: [{ role: "user", content: "Describe the kettle, then the parrot." }],
        assistantPrefix: "The kettle is next to the parrot, and the colour is",
        maxTokens: 1,
        temperature: 0,
      });
      assert.equal(taught.text, CHOSEN, "the adapter answers as the steers taught on a held-out context");
    });

    it("a killed trainer leaves the run failed and the live adapter unchanged", async () => {
      const live = app.activator.liveVersion;
      await app.store.steers.importRecords(colourSteers(12, false, 7)); // enough new steers for another run
      // Kill our own native trainer (a child of this process) at its first step.
      let killed = false;
      const out = await app.training.run({
        trigger: "cli",
        onTrainerProgress: () => {
          if (killed) return;
          killed = true;
          execFileSync("pkill", ["-KILL", "-P", String(process.pid), "-f", "steer-train"]);
        },
      });
      assert.ok(killed, "the trainer made no step");
      assert.equal(out.state, "failed", out.notice);
      assert.match(out.notice!, /live adapter is unchanged/);
      const run = await app.store.db.selectFrom("training_runs").selectAll().where("id", "=", out.runId!).executeTakeFirstOrThrow();
      assert.equal(run.state, "failed");
      assert.ok(run.error && run.error.length > 0);
      assert.equal(app.activator.liveVersion, live);
      assert.equal((await app.store.training.adapters()).filter((a) => a.state === "active").length, 1);
    });

    it("an admin's cancel command stops a run; the live adapter stays", async () => {
      const live = app.activator.liveVersion;
      assert.deepEqual(await app.core.admin.cancelTraining(admin), { ok: false, notice: "No training run is going in this bot." });
      // at the trainer's first step, cancel as a chat admin would
      let stepped!: () => void;
      const firstStep = new Promise<void>((r) => (stepped = r));
      const running = app.training.run({ trigger: "cli", onTrainerProgress: () => stepped() });
      await firstStep;
      assert.deepEqual(await app.core.admin.cancelTraining(stranger), { ok: false, notice: "Sorry, only admins can do that." });
      const cancel = await app.core.admin.cancelTraining(admin);
      assert.equal(cancel.ok, true);
      const out = await running;
      assert.equal(out.state, "cancelled", out.notice);
      assert.match(out.notice!, /was cancelled\. The live adapter is unchanged/);
      const run = await app.store.db.selectFrom("training_runs").select(["state", "error"]).where("id", "=", out.runId!).executeTakeFirstOrThrow();
      assert.deepEqual(run, { state: "cancelled", error: "cancelled by an admin" });
      assert.equal(app.activator.liveVersion, live);
    });

    it("refuses a corrupt or truncated adapter file", async () => {
      const [row] = await app.store.training.adapters();
      await app.core.admin.adapters(admin, "rollback"); // base model live again
      assert.equal(app.activator.liveVersion, null);
      truncateSync(row!.file_path, 1000);
      // the data directory is a cache of the database's copy: a truncated file is fetched again
      const repaired = await app.core.admin.adapters(admin, "activate", row!.version);
      assert.equal(repaired.ok, true, repaired.notice);
      assert.equal(await fileSha256(row!.file_path), row!.sha256);
      await app.core.admin.adapters(admin, "rollback");
      assert.equal(app.activator.liveVersion, null);
      // …while a copy that changed in the database is refused
      truncateSync(row!.file_path, 1000);
      await sql`update adapter_chunks set data = ${Buffer.from("changed")} where version = ${row!.version} and seq = 0`.execute(app.store.db);
      const out = await app.core.admin.adapters(admin, "activate", row!.version);
      assert.equal(out.ok, false);
      assert.match(out.notice!, /Refused: .*checksum mismatch/);
      assert.equal(app.activator.liveVersion, null);
    });

    it("an activation the database cannot record changes nothing: the live adapter stays and the notice says so", async () => {
      const before = app.activator.liveVersion;
      const file = path.join(dir, "unrecorded.gguf");
      writeRandomLora(model, file, 99);
      await app.store.training.addAdapter({ version: "unrecorded", filePath: file, sha256: await fileSha256(file), baseFingerprint: await app.engine.fingerprint(), trainingRunId: null, state: "candidate", metrics: {} });
      // A real failed write: the database itself refuses to make any adapter active.
      await sql`create function steerbot_test_refuse() returns trigger language plpgsql as $$ begin raise exception 'disk full (test)'; end $$`.execute(app.store.db);
      await sql`create trigger refuse_activation before update on adapters for each row when (new.state = 'active') execute function steerbot_test_refuse()`.execute(app.store.db);
      try {
        const engineBefore = app.core.currentEngine;
        const out = await app.core.admin.adapters(admin, "activate", "unrecorded");
        assert.equal(out.ok, false);
        assert.match(out.notice!, /^Not activated: adapter unrecorded was loaded but could not be recorded as active \(.*disk full \(test\)\); the live adapter is unchanged$/);
        assert.equal(app.activator.liveVersion, before);
        assert.equal(app.core.currentEngine, engineBefore);
        const row = await app.store.training.adapter("unrecorded");
        assert.equal(row?.state, "candidate");
      } finally {
        await sql`drop trigger refuse_activation on adapters`.execute(app.store.db);
        await sql`drop function steerbot_test_refuse()`.execute(app.store.db);
      }
      // and once the database takes the write again, the same adapter goes live
      const again = await app.core.admin.adapters(admin, "activate", "unrecorded");
      assert.equal(again.ok, true, again.notice);
      assert.equal(app.activator.liveVersion, "unrecorded");
    });

    it("finishes replies streaming through a swap, and frees every replaced context and model over 35 swaps", async () => {
      // 10 replies streaming on the live adapter while the engine is swapped to the base model under them.
      const oldAdapter = await app.store.training.adapter(app.activator.liveVersion!);
      assert.ok(oldAdapter, "an adapter is live before the swap");
      const surfaces = Array.from({ length: 10 }, () => new RecordingSurface(2000, 0, 5));
      const finished = new Set<number>();
      const replies = surfaces.map((s, i) =>
        app.core
          .ask({ thread: { platform: "test", chatId: "c", threadId: `swap-${i}` }, actor: admin, text: `Story ${i}`, sourceMessageId: `swap-${i}`, surface: s })
          .finally(() => finished.add(i)),
      );
      await Promise.all(surfaces.map((s) => new Promise<void>((r) => (s.onChange = (shown) => shown.length > 0 && r())))); // all have started
      let streamingAtSwap = -1;
      const realUseEngine = app.core.useEngine.bind(app.core);
      app.core.useEngine = (next, adapterId) => ((streamingAtSwap = 10 - finished.size), realUseEngine(next, adapterId));
      await app.activator.swapTo(null);
      app.core.useEngine = realUseEngine;
      assert.ok(streamingAtSwap > 0, "no reply was still streaming when the engine was swapped");
      const outs = await Promise.all(replies);
      assert.ok(outs.every((o) => o.ok));
      const gens = await app.store.db.selectFrom("generations").select(["status", "final_text", "adapter_id", "source_message_id"]).where("source_message_id", "like", "swap-%").orderBy("id").execute();
      assert.equal(gens.length, 10);
      assert.ok(gens.every((g) => g.status === "done"), JSON.stringify(gens.map((g) => g.status)));
      // every one was written to its end by the engine it started on, and the next one by the new
      assert.deepEqual(new Set(gens.map((g) => g.adapter_id)), new Set([oldAdapter.id]));
      surfaces.forEach((s, i) => assert.equal(s.visible, gens.find((g) => g.source_message_id === `swap-${i}`)!.final_text, `swap-${i}: shown is stored`));
      await replyTo(app, "Story after the swap", "swap-after");
      const after = await app.store.db.selectFrom("generations").select("adapter_id").where("source_message_id", "=", "swap-after").executeTakeFirstOrThrow();
      assert.equal(after.adapter_id, null);

      // 35 distinct adapters: swaps create contexts on the loaded model and, every few
      // adapters, load a fresh model so the old one and its adapters are freed. What is freed is
      // checked exactly: once the activator is idle, every engine but the live one has its
      // llama context disposed and every model but the live one is disposed (node-llama-cpp's
      // own flags). RSS is not asserted here: the allocator's arenas drift by 10-30% over the
      // first few dozen model loads with nothing leaked (964 -> 1062 MiB in one CI run, 938 ->
      // 1200 in a run of this file alone); bench/swap.ts prints RSS over many swaps.
      const base = await app.engine.fingerprint();
      const engines = new Set<Engine>([app.core.currentEngine as Engine]);
      const useEngine = app.core.useEngine.bind(app.core); // observe every engine put live, reloads included
      app.core.useEngine = (next, adapterId) => (engines.add(next as Engine), useEngine(next, adapterId));
      for (let i = 0; i < 35; i++) {
        const file = path.join(dir, `random-${i}.gguf`);
        writeRandomLora(model, file, i);
        await app.store.training.addAdapter({ version: `random-${i}`, filePath: file, sha256: await fileSha256(file), baseFingerprint: base, trainingRunId: null, state: "candidate", metrics: {} });
        await app.activator.swapTo(`random-${i}`);
      }
      assert.equal(app.activator.liveVersion, "random-34");
      await app.activator["queue"]; // a background model reload may still be finishing
      app.core.useEngine = useEngine;
      const live = app.core.currentEngine as Engine;
      const models = new Set([...engines].map((e) => e.model));
      assert.ok(models.size >= 35 / MAX_ADAPTERS_PER_MODEL - 1, `only ${models.size} model loads in 35 swaps`);
      const openContexts = [...engines].filter((e) => e !== live && !e["context"].disposed);
      assert.equal(openContexts.length, 0, `${openContexts.length} of ${engines.size - 1} replaced engines keep their context`);
      const loaded = [...models].filter((m) => m !== live.model && !m.disposed);
      assert.equal(loaded.length, 0, `${loaded.length} of ${models.size - 1} replaced models are still loaded`);
      assert.equal(live["context"].disposed, false);
    });
  });
}
