/**
 * What /status, the studio's Status page and /metrics read (Store.operations), on PGlite and
 * on PostgreSQL with a second process's store on the same database: each running instance
 * with its role, host, pid and heartbeat (written again every `heartbeatSeconds`, by the
 * database's clock), a crashed instance's row dropped when read, one that stops cleanly gone at
 * once; the queue depth; the running job with its progress and its worker's heartbeat age —
 * the newest of the worker's heartbeat and the job's progress writes.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import { Store } from "../../src/store/store.ts";
import { freshDatabase, type TestDatabase } from "../helpers/databases.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of ["pglite", "postgres"] as const) {
  describe(`operations on ${kind}`, () => {
    let tdb: TestDatabase;
    let store: Store;
    before(async () => {
      tdb = await freshDatabase(kind);
      store = await Store.open(tdb.target);
      await store.holdInstance({ role: "bot", runsJobs: true }, 1);
    });
    after(async () => {
      await store?.close();
      await tdb?.drop();
    });

    it("lists this instance with its role, host, pid and a heartbeat written every second", async () => {
      const [self, ...others] = await store.instanceStatus();
      assert.deepEqual(others, []);
      assert.equal(self!.instanceId, store.instanceId);
      assert.deepEqual({ role: self!.role, host: self!.host, pid: self!.pid, runsJobs: self!.runsJobs, self: self!.self }, { role: "bot", host: hostname(), pid: process.pid, runsJobs: true, self: true });
      assert.equal(self!.adapterVersion, undefined, "it recorded no live adapter");
      const at = async () => (await store.instances.heartbeats()).find((b) => b.instanceId === store.instanceId)!.heartbeatAt.getTime();
      const first = await at();
      await sleep(2200);
      const later = await at();
      assert.ok(later > first, "the heartbeat moved on");
      const [again] = await store.instanceStatus();
      assert.ok(again!.heartbeatAgeSeconds! >= 0 && again!.heartbeatAgeSeconds! < 1.5, `heartbeat age ${again!.heartbeatAgeSeconds}`);

      // a row dropped by another process (which took this one for dead) is written anew at the next beat
      await store.instances.removeHeartbeats([store.instanceId]);
      await sleep(1300);
      assert.ok((await store.instances.heartbeats()).some((b) => b.instanceId === store.instanceId));
    });

    it("drops a crashed instance's row when it is read (its instance lock is free)", async () => {
      await store.instances.announce("crashed-process", { role: "worker", host: "elsewhere", pid: 4242, runsJobs: true });
      assert.ok((await store.instances.heartbeats()).some((b) => b.instanceId === "crashed-process"));
      assert.deepEqual((await store.instanceStatus()).map((i) => i.instanceId), [store.instanceId]);
      assert.ok(!(await store.instances.heartbeats()).some((b) => b.instanceId === "crashed-process"), "its row is gone");
    });

    it("counts the queue and describes the running job with its progress and its worker's heartbeat", async () => {
      const ids = ["job-a", "job-b", "job-c"];
      for (const id of ids) await store.jobs.insert({ id, trigger: "cli" });
      let ops = await store.operations();
      assert.equal(ops.queueDepth, 3);
      assert.deepEqual(ops.running, []);

      await store.jobs.markRunning("job-a", store.instanceId);
      await store.jobs.progress("job-a", { step: 3, steps: 12, loss: 0.75, etaSeconds: 42 });
      ops = await store.operations();
      assert.equal(ops.queueDepth, 2);
      const [job] = ops.running;
      assert.deepEqual({ id: job!.id, step: job!.step, steps: job!.steps, loss: job!.loss, eta: job!.etaSeconds, worker: job!.workerInstance, attempts: job!.attempts }, {
        id: "job-a",
        step: 3,
        steps: 12,
        loss: 0.75,
        eta: 42,
        worker: store.instanceId,
        attempts: 1,
      });
      assert.equal(job!.worker?.instanceId, store.instanceId, "its worker is this running instance");
      assert.ok(job!.workerHeartbeatAgeSeconds >= 0 && job!.workerHeartbeatAgeSeconds < 1.5, `worker heartbeat ${job!.workerHeartbeatAgeSeconds}`);

      // a worker that is gone: no instance, and its age is that of the job's last progress write
      await store.jobs.markRunning("job-b", "gone-worker");
      await store.db.updateTable("training_jobs").set({ updated_at: new Date(Date.now() - 90_000) }).where("id", "=", "job-b").execute();
      ops = await store.operations();
      const gone = ops.running.find((j) => j.id === "job-b")!;
      assert.equal(gone.worker, undefined);
      assert.ok(gone.workerHeartbeatAgeSeconds >= 89 && gone.workerHeartbeatAgeSeconds < 100, `${gone.workerHeartbeatAgeSeconds}`);
      for (const id of ids) await store.jobs.finish(id, { state: "cancelled" });
      assert.deepEqual(await store.operations().then((o) => [o.queueDepth, o.running.length]), [0, 0]);
    });

    if (kind === "postgres") {
      it("sees another process's store on the same database — a worker — until it stops, and then at once not", async () => {
        const worker = await Store.open(tdb.target);
        try {
          await worker.holdInstance({ role: "worker", runsJobs: true, host: "gpu-box", pid: 777 }, 1);
          await store.instances.recordLive(store.instanceId, "v3");
          const seen = await store.instanceStatus();
          assert.deepEqual(
            seen.map((i) => [i.instanceId, i.role, i.host, i.pid, i.self, i.adapterVersion]),
            [
              [store.instanceId, "bot", hostname(), process.pid, true, "v3"],
              [worker.instanceId, "worker", "gpu-box", 777, false, undefined],
            ],
          );
          await store.jobs.insert({ id: "job-w", trigger: "command" });
          await worker.jobs.markRunning("job-w", worker.instanceId);
          const [job] = (await store.operations()).running;
          assert.equal(job!.worker?.role, "worker");
          assert.equal(job!.worker?.host, "gpu-box");
          await store.jobs.finish("job-w", { state: "succeeded" });
        } finally {
          await worker.close();
        }
        assert.deepEqual((await store.instanceStatus()).map((i) => i.instanceId), [store.instanceId], "a clean stop removes its row");
      });
    }
  });
}
