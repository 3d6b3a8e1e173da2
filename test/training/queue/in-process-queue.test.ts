/**
 * The in-process training queue of the embedded default (PGlite): nightly triggers with one
 * singleton key are one job, a manual request while a job is queued is answered with that job,
 * a queued job can be cancelled, and at the next start a job left queued runs, one cut short by
 * a crash is retried once and one cut short twice is failed with the reason.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../../src/log.ts";
import type { TrainingJobRow } from "../../../src/store/database.ts";
import { Store } from "../../../src/store/store.ts";
import { InProcessQueue } from "../../../src/training/queue/in-process-queue.ts";
import { nightlyKey } from "../../../src/training/queue/training-queue.ts";

describe("in-process training queue on PGlite", () => {
  let store: Store;
  const log = createLogger("silent");
  before(async () => {
    store = await Store.open({ dataDir: "memory://" });
  });
  after(async () => store?.close());

  it("nightly triggers with one key make one job; a manual request while it is queued gets that job; a queued job can be cancelled", async () => {
    const q = new InProcessQueue({ store, log }); // no handler: jobs stay queued
    await q.start();
    const at = new Date("2026-12-02T03:00:00.250Z");
    const first = await q.enqueue({ trigger: "cron", singletonKey: nightlyKey(at) });
    const second = await q.enqueue({ trigger: "cron", singletonKey: nightlyKey(new Date(at.getTime() + 900)) });
    assert.equal(first.created, true);
    assert.equal(second.created, false);
    assert.equal(second.job.id, first.job.id);
    const manual = await q.enqueue({ trigger: "command", actor: { platform: "test", userId: "admin" } });
    assert.equal(manual.created, false);
    assert.equal(manual.job.id, first.job.id);
    const next = await q.enqueue({ trigger: "cron", singletonKey: nightlyKey(new Date("2026-12-03T03:00:00Z")) });
    assert.equal(next.created, true, "the next night is another job");
    assert.equal((await q.cancel(first.job.id))?.state, "cancelled");
    assert.equal((await q.cancel(next.job.id))?.state, "cancelled");
    assert.equal(await q.cancel("no-such-job"), undefined);
    assert.deepEqual(await store.jobs.unfinished(), []);
  });

  it("at start: runs a job left queued, retries one cut short once, fails one cut short twice", async () => {
    const q0 = new InProcessQueue({ store, log });
    await q0.start();
    const left = (await q0.enqueue({ trigger: "cli" })).job;
    const crashedOnce = (await q0.enqueue({ trigger: "cron", singletonKey: "k1" })).job;
    const crashedTwice = (await q0.enqueue({ trigger: "cron", singletonKey: "k2" })).job;
    await store.jobs.markRunning(crashedOnce.id, "gone-process");
    await store.jobs.markRunning(crashedTwice.id, "gone-process");
    await store.jobs.markRunning(crashedTwice.id, "gone-process");
    const ran: string[] = [];
    const q = new InProcessQueue({ store, log });
    await q.start({
      work: async (job: TrainingJobRow) => {
        ran.push(job.id);
        // the queue marked it running for this process before handing it over
        assert.equal(job.state, "running");
        assert.equal(job.worker_instance, store.instanceId);
        await store.jobs.finish(job.id, { state: "skipped", notice: "nothing new" });
      },
    });
    await q.drained();
    assert.deepEqual(ran.sort(), [left.id, crashedOnce.id].sort());
    const failed = (await store.jobs.get(crashedTwice.id))!;
    assert.equal(failed.state, "failed");
    assert.match(failed.error!, /ended twice before it finished/);
    assert.equal((await store.jobs.get(crashedOnce.id))!.attempts, 2);
  });
});
