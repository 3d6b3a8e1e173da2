/**
 * The studio's admin pages in a real Chromium against the real server, core, engine (tiny
 * fixture model), trainer and store: bulk approve / reject (checked in the database), a steer
 * with HTML in it shown as text, export of the current filter, starting and cancelling a
 * training run with live progress, the charts with their axis names and accuracies (ECharts'
 * SVG text in the page), activate and roll back (what the engine serves and the store records),
 * a request without the CSRF token and a non-admin session refused.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { Permissions } from "../../../src/core/permissions.ts";
import type { Actor } from "../../../src/core/ports.ts";
import { fileSha256 } from "../../../src/engine/model-file.ts";
import type { StudioCore, WebServer } from "../../../src/platforms/web/web-server.ts";
import type { AdapterRow } from "../../../src/store/database.ts";
import { SteerRepository } from "../../../src/store/steer-repository.ts";
import { RecordingSurface } from "../../helpers/recording-surface.ts";
import { writeRandomLora } from "../../helpers/random-lora.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { colourSteers } from "../../training/colour-task.ts";
import { botSteer, launchBrowser, startStudio, startStudioServer, withPage, type Studio } from "./admin-harness.ts";

const XSS_REJECTED = `<script>window.__xss = 1</script>`;
const XSS_CHOSEN = `<img src=x onerror="window.__xss = 2">`;

/** The text of every SVG `<text>` ECharts drew inside the figure named `name`. */
async function chartTexts(page: Page, name: string): Promise<string[]> {
  const fig = page.getByRole("figure", { name });
  await fig.locator("svg text").first().waitFor();
  return fig.locator("svg text").allTextContents();
}

const metricsOf = (base: number, candidate: number, gate: { activated: boolean; reason: string }) => ({
  heldOut: 8,
  base: { pairs: 8, preferenceAccuracy: base, meanMargin: 0, chosenLogprob: -1 },
  live: null,
  candidate: { pairs: 8, preferenceAccuracy: candidate, meanMargin: 0.2, chosenLogprob: -0.5 },
  gate,
});

describe("studio admin pages", () => {
  let studio: Studio;
  let browser: Browser;
  before(async () => {
    studio = await startStudio({
      db: "pglite",
      config: { training: { base_model: await tinyModelPath(), min_new_steers: 1, objective: "sft", epochs: 200, rank: 4, alpha: 8, held_out_fraction: 0.25 } },
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await studio?.close();
  });

  it("Steers: filters, shows each steer as a text diff with its context, approves and rejects in bulk, exports the filter", async () => {
    const { store } = studio.app;
    const castle1 = await botSteer(store, { platform: "discord", author: "alice", prefix: "The castle is", rejected: " red", chosen: " blue" });
    const castle2 = await botSteer(store, { platform: "telegram", author: "bob", prefix: "The castle wall is", rejected: " green", chosen: " blue" });
    const helmet = await botSteer(store, { platform: "discord", author: "alice", prefix: "The helmet is", rejected: " shiny", chosen: " dull" });
    const xss = await botSteer(store, { platform: "discord", author: "mallory", prefix: "Look: ", rejected: XSS_REJECTED, chosen: XSS_CHOSEN, question: "<b>bold?</b>" });
    await withPage(browser, "steers", async (page) => {
      await page.goto(`${studio.url}admin-steers.html`);
      await page.getByLabel("State", { exact: true }).selectOption("pending");
      await page.getByLabel("Text", { exact: true }).fill("castle");
      await page.getByRole("button", { name: "Filter" }).click();
      const rows = page.locator("#rows tr");
      await page.getByRole("status").filter({ hasText: "2 steer(s)" }).waitFor();
      assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute("data-steer")))), [castle1.id, castle2.id]);
      // the diff: prefix, rejected (struck through), chosen
      const first = rows.first();
      assert.equal(await first.locator(".prefix").textContent(), "The castle is");
      assert.equal(await first.locator("del.rejected").textContent(), " red");
      assert.equal(await first.locator("ins.chosen").textContent(), " blue");

      await page.getByLabel("Select all", { exact: true }).check();
      await page.getByRole("button", { name: "Approve selected" }).click();
      await page.getByRole("status").filter({ hasText: "2 steer(s) approved" }).waitFor();
      const states = async () => Object.fromEntries((await store.steers.list({ ids: [castle1.id, castle2.id, helmet.id, xss.id] })).map((r) => [r.id, r.trust_state]));
      assert.deepEqual(await states(), { [castle1.id]: "approved", [castle2.id]: "approved", [helmet.id]: "pending", [xss.id]: "pending" });

      // another filter: discord's pending steers; reject one by its own button
      await page.getByLabel("Text", { exact: true }).fill("");
      await page.getByLabel("Platform", { exact: true }).fill("discord");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByRole("status").filter({ hasText: "2 steer(s)" }).waitFor();
      await page.getByRole("button", { name: `Reject steer #${helmet.id}` }).click();
      await page.getByRole("status").filter({ hasText: "1 steer(s) rejected" }).waitFor();
      assert.equal((await states())[helmet.id], "rejected");
      // a bulk review of several, one of them already in that state
      await page.getByLabel("State", { exact: true }).selectOption("all");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByRole("status").filter({ hasText: "3 steer(s)" }).waitFor();
      await page.getByLabel(`Select steer #${helmet.id}`).check();
      await page.getByLabel(`Select steer #${xss.id}`).check();
      await page.getByRole("button", { name: "Reject selected" }).click();
      await page.getByRole("status").filter({ hasText: "1 steer(s) rejected; 1 already rejected" }).waitFor();
      assert.equal((await states())[xss.id], "rejected");

      // HTML in a steer and in its context is text, never markup
      await page.getByLabel("State", { exact: true }).selectOption("rejected");
      await page.getByLabel("Author", { exact: true }).fill("discord:mallory");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByRole("status").filter({ hasText: "1 steer(s)" }).waitFor();
      const row = page.locator(`#rows tr[data-steer="${xss.id}"]`);
      assert.equal(await row.locator("del.rejected").textContent(), XSS_REJECTED);
      assert.equal(await row.locator("ins.chosen").textContent(), XSS_CHOSEN);
      assert.equal(await row.locator("script, img, b").count(), 0);
      await page.getByRole("button", { name: `Context of steer #${xss.id}` }).click();
      const context = page.getByRole("list", { name: `Context of steer #${xss.id}` });
      assert.equal(await context.textContent(), "user: <b>bold?</b>");
      assert.equal(await row.locator("b").count(), 0);
      assert.equal(await page.evaluate("window.__xss"), undefined);

      // export the current filter (approved, castle) as TRL DPO rows: the lines `steerbot export` writes
      await page.getByLabel("State", { exact: true }).selectOption("approved");
      await page.getByLabel("Author", { exact: true }).fill("");
      await page.getByLabel("Platform", { exact: true }).fill("");
      await page.getByLabel("Text", { exact: true }).fill("castle");
      await page.getByLabel("Export format", { exact: true }).selectOption("trl-dpo");
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export" }).click()]);
      const lines = readFileSync(await download.path(), "utf8").trimEnd().split("\n");
      const expected = (await store.steers.list({ states: ["approved"], usable: true })).filter((r) => /castle/i.test(r.prefix + r.rejected + r.chosen));
      assert.equal(expected.length, 2);
      assert.deepEqual(lines, expected.map((r) => SteerRepository.toExportLine(r, "trl-dpo")));
      assert.deepEqual(Object.keys(JSON.parse(lines[0]!)), ["prompt", "chosen", "rejected"]);
    });
  });

  it("refuses a state change without the page's CSRF token", async () => {
    const steer = await botSteer(studio.app.store, { platform: "discord", author: "carol", prefix: "A", rejected: " b", chosen: " c" });
    await withPage(browser, "csrf", async (page) => {
      await page.goto(`${studio.url}admin-steers.html`);
      const status = await page.evaluate(`fetch("/api/admin/steers/review", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ids: [${steer.id}], verdict: "approve" }) }).then((r) => r.status)`);
      assert.equal(status, 403);
      assert.equal((await studio.app.store.steers.list({ ids: [steer.id] }))[0]!.trust_state, "pending");
    });
  });

  it("Training: starts a run, shows its live progress and loss curve, refuses a second, cancels", async () => {
    const { store } = studio.app;
    await store.steers.importRecords(colourSteers(24, false));
    const liveBefore = studio.app.activator.liveVersion;
    await withPage(browser, "training", async (page) => {
      await page.goto(`${studio.url}admin-training.html`);
      await page.getByRole("button", { name: "Start training" }).click();
      const progress = page.getByLabel("Progress", { exact: true });
      await progress.filter({ hasText: /step \d+\/\d+ · loss \d+\.\d{4} · ETA/ }).waitFor({ timeout: 60_000 });
      const live = await chartTexts(page, "Live loss curve");
      assert.ok(live.includes("step") && live.includes("loss"), live.join(" | "));
      const running = await store.training.runningRun();
      assert.ok(running, "a run is going");
      assert.match((await progress.textContent())!, new RegExp(`^Run #${running.id}: step`));
      // the same lock as /retrain: a second start is told a run is going
      await page.getByRole("button", { name: "Start training" }).click();
      await page.getByRole("status").filter({ hasText: "already going" }).waitFor();
      await page.getByRole("button", { name: "Cancel training" }).click();
      await page.getByRole("status").filter({ hasText: /was cancelled/ }).waitFor({ timeout: 30_000 });
      const run = await store.db.selectFrom("training_runs").selectAll().where("id", "=", running.id).executeTakeFirstOrThrow();
      assert.equal(run.state, "cancelled");
      assert.equal(studio.app.activator.liveVersion, liveBefore, "the live adapter is unchanged");
      await page.getByRole("article", { name: `Run #${running.id}` }).getByRole("heading", { name: `Run #${running.id} — cancelled` }).waitFor();
    });
  });

  it("Training: a finished run's loss curve and held-out metrics are charts with their labels, and the gate says why", async () => {
    const { store } = studio.app;
    const runId = await store.training.createRun({ trigger: "command", requestedBy: "web:local", objective: "sft", hyperparameters: {} });
    const curve = Array.from({ length: 12 }, (_, i) => ({ step: i + 1, loss: 2 - i * 0.1 }));
    await store.training.updateRun(runId, { state: "succeeded", loss_curve: curve, finished: true, steer_count: 12 });
    const reason = "candidate held-out accuracy 62.5% does not beat live 50.0% by 20.0%";
    await store.training.addAdapter({ version: "v-chart", filePath: "/nonexistent.gguf", sha256: "0", baseFingerprint: "other", trainingRunId: runId, state: "rejected", metrics: metricsOf(0.5, 0.625, { activated: false, reason }) });
    await withPage(browser, "training-charts", async (page) => {
      await page.goto(`${studio.url}admin-training.html`);
      const loss = await chartTexts(page, `Loss curve of run #${runId}`);
      assert.ok(loss.includes(`Training run #${runId} — loss (adapter v-chart)`), loss.join(" | "));
      assert.ok(loss.includes("step") && loss.includes("loss"), "axis names");
      const all = loss.join("\n");
      for (const label of ["base 50.0%", "live 50.0%", "candidate 62.5%", "Gate: not activated"]) assert.ok(all.includes(label), `${label} in ${all}`);
      const bars = await chartTexts(page, `Held-out metrics of run #${runId}`);
      for (const t of ["adapter", "accuracy (%)", "v-chart", "base", "candidate", "62.5%"]) assert.ok(bars.includes(t), `${t} in ${bars.join(" | ")}`);
      assert.equal(await page.getByRole("article", { name: `Run #${runId}` }).locator("p.gate").textContent(), `Gate: not activated — ${reason}`);
    });
  });

  it("Adapters: lists them with metrics, activates, rolls back, and says what each instance serves", async () => {
    const { app } = studio;
    const model = await tinyModelPath();
    const dir = mkdtempSync(path.join(tmpdir(), "steerbot-admin-adapters-"));
    const base = await app.engine.fingerprint();
    const rows: AdapterRow[] = [];
    for (const [i, version] of ["v-one", "v-two"].entries()) {
      const file = path.join(dir, `${version}.gguf`);
      writeRandomLora(model, file, 10 + i, { bStd: 0.05 });
      rows.push(await app.store.training.addAdapter({ version, filePath: file, sha256: await fileSha256(file), baseFingerprint: base, trainingRunId: null, state: "candidate", metrics: metricsOf(0.5, 0.75 + i * 0.125, { activated: true, reason: "test" }) }));
    }
    const actor: Actor = { platform: "test", userId: "someone" };
    const servedBy = async (id: string) => {
      const surface = new RecordingSurface();
      await app.core.ask({ thread: { platform: "test", chatId: "c", threadId: id }, actor, text: "Hello there", sourceMessageId: id, surface });
      return (await app.store.db.selectFrom("generations").select("adapter_id").where("source_message_id", "=", id).executeTakeFirstOrThrow()).adapter_id;
    };
    await withPage(browser, "adapters", async (page) => {
      await page.goto(`${studio.url}admin-adapters.html`);
      const instances = page.getByRole("list", { name: "Running instances" });
      await instances.getByText("this instance: base model (no adapter)").waitFor();
      const bars = await chartTexts(page, "Held-out metrics per adapter");
      for (const t of ["v-one", "v-two", "adapter", "accuracy (%)", "75%", "87.5%"]) assert.ok(bars.includes(t), `${t} in ${bars.join(" | ")}`);

      await page.getByRole("button", { name: "Activate v-one" }).click();
      await page.getByRole("status").filter({ hasText: "Adapter v-one is now live." }).waitFor({ timeout: 30_000 });
      await instances.getByText("this instance: v-one").waitFor();
      assert.equal(app.activator.liveVersion, "v-one");
      assert.equal(await servedBy("after-one"), rows[0]!.id, "new replies are generated with v-one");

      await page.getByRole("button", { name: "Activate v-two" }).click();
      await page.getByRole("status").filter({ hasText: "Adapter v-two is now live." }).waitFor({ timeout: 30_000 });
      assert.equal(await servedBy("after-two"), rows[1]!.id);

      await page.getByRole("button", { name: "Roll back" }).click();
      await page.getByRole("status").filter({ hasText: "Adapter v-one is now live." }).waitFor({ timeout: 30_000 });
      await instances.getByText("this instance: v-one").waitFor();
      assert.equal(app.activator.liveVersion, "v-one");
      assert.equal(await servedBy("after-rollback"), rows[0]!.id, "rolled back: v-one serves again");
      const states = Object.fromEntries((await app.store.training.adapters(base)).map((a) => [a.version, a.state]));
      assert.deepEqual(states, { "v-one": "active", "v-two": "retired" });
      const self = (await app.store.liveInstances()).find((i) => i.self);
      assert.equal(self?.adapterVersion, "v-one", "the store records what this instance serves");
      assert.equal(await page.locator('tr[data-version="v-one"] td.state').textContent(), "active");
    });
  });

  describe("for a non-admin", () => {
    let server: WebServer;
    before(async () => {
      // The studio's own sessions are all admins (the local operator, the token holder); this
      // server's core names no admin, as for any session the core does not count as one.
      class NoAdmins extends Permissions {
        override isAdmin(): boolean {
          return false;
        }
      }
      const noAdmins = new NoAdmins(studio.app.config.permissions);
      const core = studio.app.core;
      server = await startStudioServer(
        studio.app,
        new Proxy(core, {
          get: (target, prop) => {
            if (prop === "permissions") return noAdmins;
            const v = Reflect.get(target, prop, target) as unknown;
            return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        }) as StudioCore,
      );
    });
    after(async () => server?.close());

  it("every admin page says admins only, and the server refuses its requests", async () => {
    const steer = await botSteer(studio.app.store, { platform: "discord", author: "dave", prefix: "X", rejected: " y", chosen: " z" });
    await withPage(browser, "non-admin", async (page) => {
      for (const p of ["admin-steers.html", "admin-training.html", "admin-adapters.html", "admin-status.html"]) {
        await page.goto(`${server.url}${p}`);
        await page.getByRole("alert").filter({ hasText: "Admins only" }).waitFor();
      }
      const answers = await page.evaluate(`(async () => {
        const { csrfToken } = await (await fetch("/api/session")).json();
        const post = (url, body) => fetch(url, { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrfToken }, body: JSON.stringify(body) }).then((r) => r.status);
        return [
          await post("/api/admin/steers/review", { ids: [${steer.id}], verdict: "approve" }),
          await post("/api/admin/training/start", {}),
          await post("/api/admin/adapters/rollback", {}),
          await fetch("/api/admin/steers").then((r) => r.status),
          await fetch("/api/admin/steers/export").then((r) => r.status),
          await fetch("/api/admin/training/events").then((r) => r.status),
          await fetch("/api/admin/status").then((r) => r.status),
        ];
      })()`);
      assert.deepEqual(answers, [403, 403, 403, 403, 403, 403, 403]);
      assert.equal((await studio.app.store.steers.list({ ids: [steer.id] }))[0]!.trust_state, "pending");
      assert.equal(await studio.app.store.training.runningRun(), undefined, "no run started");
    });
  });
});
});
