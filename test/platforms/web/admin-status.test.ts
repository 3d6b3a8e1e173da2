/**
 * The studio's Status admin page in a real Chromium against the real server, core, store,
 * queue and trainer (tiny fixture model): the running instances (this one with its role,
 * host, pid, live adapter, heartbeat), the queue depth, and — while a real training job runs,
 * a second one queued behind it — the running job's step/total, loss, ETA, worker and the
 * worker's heartbeat, refreshed as it goes; afterwards "none running". The nav links it.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import type { Actor } from "../../../src/core/ports.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { colourSteers } from "../../training/colour-task.ts";
import { launchBrowser, startStudio, withPage, type Studio } from "./admin-harness.ts";
import { until } from "../../helpers/until.ts";

const operator: Actor = { platform: "web", userId: "local", operator: true };


describe("studio Status page", () => {
  let studio: Studio;
  let browser: Browser;
  before(async () => {
    [studio, browser] = await Promise.all([
      startStudio({
        db: "pglite",
        config: { training: { base_model: await tinyModelPath(), min_new_steers: 1, objective: "sft", epochs: 200, rank: 4, alpha: 8, held_out_fraction: 0.25 } },
      }),
      launchBrowser(),
    ]);
  });
  after(async () => {
    await browser?.close();
    await studio?.close();
  });

  it("shows the instances, the queue depth, the running job with its progress and worker, and the worker's heartbeat", async () => {
    const { store, queue } = studio.app;
    const self = store.instanceId.slice(0, 8);
    await withPage(browser, "status", async (page) => {
      await page.goto(studio.url);
      await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Status" }).click();
      await page.waitForURL(/\/admin-status\.html$/);

      const instances = page.getByRole("table", { name: "Running instances" });
      const row = instances.locator(`tr[data-instance="${store.instanceId}"]`);
      await row.waitFor();
      assert.deepEqual(await row.locator("td").allTextContents().then((t) => t.slice(0, 6)), [`${self} (this instance)`, "bot", hostname(), String(process.pid), "base model", "yes"]);
      assert.match((await row.locator("td.heartbeat").textContent())!, /^\d+ s ago$/);
      await page.locator("#queue-depth").filter({ hasText: /^0 job\(s\) queued$/ }).waitFor();
      assert.equal(await page.locator("#job").textContent(), "none running");
      assert.equal(await page.locator("#worker-heartbeat").textContent(), "no job running");

      // a real job, held by the real trainer, and one more queued behind it
      await store.steers.importRecords(colourSteers(24, false));
      const running = await queue.enqueue({ trigger: "command", actor: operator });
      await until("the trainer's first progress", async () => (await store.jobs.running()).find((j) => j.step !== null));
      const queued = await queue.enqueue({ trigger: "cron", singletonKey: "status-page-test" });
      assert.equal(queued.created, true);

      // the page refreshes on its own
      await page.locator("#queue-depth").filter({ hasText: /^1 job\(s\) queued$/ }).waitFor({ timeout: 10_000 });
      await page.locator("#job").filter({ hasText: `${running.job.id.slice(0, 8)} (command, attempt 1)` }).waitFor({ timeout: 10_000 });
      const steps = (await store.jobs.get(running.job.id))!.steps;
      await page.locator("#job-progress").filter({ hasText: new RegExp(`^step \\d+/${steps}$`) }).waitFor({ timeout: 10_000 });
      assert.match((await page.locator("#job-loss").textContent())!, /^\d+\.\d{4}$/);
      assert.match((await page.locator("#job-eta").textContent())!, /^\d+ (s|min|h)( \d+ (s|min))?$/);
      assert.equal(await page.locator("#job-worker").textContent(), `${self} (this instance) — bot, host ${hostname()}, pid ${process.pid}`);
      assert.match((await page.locator("#worker-heartbeat").textContent())!, /^\d s ago$/);

      await queue.cancel(queued.job.id);
      await queue.cancel(running.job.id);
      await queue.drained();
      await page.locator("#job").filter({ hasText: /^none running$/ }).waitFor({ timeout: 10_000 });
      await page.locator("#queue-depth").filter({ hasText: /^0 job\(s\) queued$/ }).waitFor();
    });
  });
});
