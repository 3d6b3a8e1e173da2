/**
 * The PostgreSQL training queue's edges, on a fresh database of the suite's server, with
 * scripted job handlers (no trainer; the real worker's SIGTERM is in worker-stop.test.ts):
 *
 * - a worker that stops hands its running job back: queued again, the attempt not counted,
 *   and the next worker runs it; a handed-back job still gets its one retry after an error;
 * - a handler that throws, or runs past the job timeout, is a failed attempt: retried once,
 *   then failed with the reason, and pg-boss never delivers it again;
 * - a cancel asked while the job runs ends it as cancelled when it is handed back;
 * - a worker killed after pg-boss's fetch and before the row is marked running loses nothing:
 *   both were one transaction, the server rolls it back, and another worker takes the job
 *   (while the dying one holds it, nobody else does);
 * - createApp failing after the queue started stops it: no pg-boss pool, no LISTEN, no worker
 *   taking jobs behind the failed start.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { createApp } from "../../../src/app.ts";
import { loadConfig } from "../../../src/config/config.ts";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { createLogger } from "../../../src/log.ts";
import type { TrainingJobRow } from "../../../src/store/database.ts";
import { Store } from "../../../src/store/store.ts";
import { PgBossQueue } from "../../../src/training/queue/pg-boss-queue.ts";
import type { JobHandler } from "../../../src/training/queue/training-queue.ts";
import { freshPostgres, type TestDatabase } from "../../helpers/databases.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { until as poll } from "../../helpers/until.ts";

const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");

const until = <T>(what: string, read: () => Promise<T | undefined | false>, timeoutMs = 20_000) => poll(what, read, timeoutMs);

describe("training queue on PostgreSQL (pg-boss): hand-back, attempts, taking a job", () => {
  let tdb: TestDatabase;
  let store: Store;
  let url: string;
  const queues: PgBossQueue[] = [];
  const queue = (o: { jobTimeoutHours?: number } = {}) => {
    const q = new PgBossQueue({ store, log, databaseUrl: url, checkSeconds: 3600, jobTimeoutHours: o.jobTimeoutHours ?? 1, pollMs: 200 });
    queues.push(q);
    return q;
  };
  /** pg-boss's own record of the job. */
  const bossJob = async (id: string) =>
    (await sql<{ state: string; retry_count: number }>`select state, retry_count from pgboss.job where id = ${id}::uuid`.execute(store.db)).rows[0];

  // handlers keep the runner's contract: the row is running here; the queue's signal stops the run
  const waitForStop: JobHandler = (_job, _data, signal) =>
    new Promise((_resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  const succeed: JobHandler = async (job) => {
    await store.jobs.finish(job.id, { state: "succeeded", notice: "done" });
  };
  const boom: JobHandler = async () => {
    throw new Error("boom");
  };
  /** A worker whose handler holds the job until the worker stops, once it runs job `id`. */
  const holdingWorker = async (id: string, what: string) => {
    const q = queue();
    await q.start({ work: waitForStop });
    await until(what, async () => (await store.jobs.get(id))?.state === "running");
    return q;
  };

  before(async () => {
    tdb = await freshPostgres();
    url = tdb.target.databaseUrl!;
    store = await Store.open(tdb.target);
    await store.holdInstance();
  });
  after(async () => {
    for (const q of queues) await q.stop().catch(() => {});
    await store?.close();
    await tdb?.drop();
  });

  it("a worker that stops hands its job back (not counted); the next worker runs it; a cancel asked meanwhile ends it instead", async () => {
    const producer = queue();
    await producer.start();
    const { job } = await producer.enqueue({ trigger: "cli" });

    const a = await holdingWorker(job.id, "the job to run");
    assert.equal((await store.jobs.get(job.id))!.attempts, 1);
    await a.stop("the test stopped worker A");
    const back = (await store.jobs.get(job.id))!;
    assert.equal(back.state, "queued");
    assert.equal(back.attempts, 0, "a hand-back is not an attempt");
    assert.equal(back.worker_instance, null);
    assert.match(back.error!, /the test stopped worker A/);
    assert.equal((await bossJob(job.id))!.state, "retry");

    const b = queue();
    await b.start({ work: succeed });
    await until("the next worker to run it", async () => (await store.jobs.get(job.id))?.state === "succeeded");
    assert.equal((await store.jobs.get(job.id))!.attempts, 1);
    assert.equal((await bossJob(job.id))!.state, "completed");
    await b.stop();

    // cancelled while it runs, then its worker stops: the job ends cancelled, it is not handed on
    const second = (await producer.enqueue({ trigger: "cli" })).job;
    const c = await holdingWorker(second.id, "the second job to run");
    await producer.cancel(second.id);
    await c.stop();
    assert.equal((await store.jobs.get(second.id))!.state, "cancelled");
    assert.equal((await bossJob(second.id))!.state, "cancelled");
  });

  it("an error, or the job timeout, is a failed attempt: retried once, then failed for good; a hand-back before does not use up the retry", async () => {
    const producer = queue();
    await producer.start();
    const { job } = await producer.enqueue({ trigger: "cli" });
    // handed back once
    const a = await holdingWorker(job.id, "the job to run");
    await a.stop();
    assert.equal((await store.jobs.get(job.id))!.attempts, 0);
    // then the worker throws, twice
    const b = queue();
    await b.start({ work: boom });
    const failed = await until("the job to fail for good", async () => {
      const r = await store.jobs.get(job.id);
      return r?.state === "failed" && r;
    });
    await b.stop();
    assert.equal(failed.attempts, 2);
    assert.match(failed.error!, /the worker failed: boom/);
    assert.match(failed.notice!, /failed after 2 attempt\(s\): the worker failed: boom/);
    assert.equal((await bossJob(job.id))!.state, "cancelled", "ended by steerbot: pg-boss never delivers it again");

    // a run past training.job_timeout_hours is stopped: a failed attempt, retried once
    const slow = (await producer.enqueue({ trigger: "cli" })).job;
    const c = queue({ jobTimeoutHours: 0.5 / 3600 });
    const attempts: number[] = [];
    await c.start({
      work: (row, data, signal) => {
        attempts.push(row.attempts);
        return waitForStop(row, data, signal);
      },
    });
    const timedOut = await until("the slow job to fail", async () => {
      const r = await store.jobs.get(slow.id);
      return r?.state === "failed" && r;
    });
    await c.stop();
    assert.deepEqual(attempts, [1, 2]);
    assert.match(timedOut.error!, /ran longer than training\.job_timeout_hours/);
  });

  it("a worker killed between pg-boss's fetch and marking the row running loses nothing: another worker takes the job", async () => {
    const producer = queue();
    await producer.start();
    const child = spawn(process.execPath, ["--import", "tsx", path.join(projectRoot, "test", "helpers", "taking-process.ts")], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: url },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    try {
      const messages: { type: string; jobId?: string }[] = [];
      child.on("message", (m: { type: string; jobId?: string }) => messages.push(m));
      await until(`the taking worker to start (${stderr.slice(-500)})`, async () => messages.some((m) => m.type === "ready"));
      const { job } = await producer.enqueue({ trigger: "cli" });
      const taking = await until("the worker to fetch the job", async () => messages.find((m) => m.type === "taking"));
      assert.equal(taking.jobId, job.id);

      // while it sits in its transaction, another worker cannot take the job
      const ran: TrainingJobRow[] = [];
      const b = queue();
      await b.start({
        work: async (row) => {
          ran.push(row);
          await succeed(row, { trigger: "cli" }, new AbortController().signal);
        },
      });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(ran.length, 0);
      const meanwhile = (await store.jobs.get(job.id))!;
      assert.equal(meanwhile.state, "queued");
      assert.equal(meanwhile.attempts, 0);

      child.kill("SIGKILL");
      await exited;
      const done = await until("another worker to run it", async () => {
        const r = await store.jobs.get(job.id);
        return r?.state === "succeeded" && r;
      });
      assert.equal(ran.length, 1);
      assert.equal(done.attempts, 1, "the dead worker's fetch left no trace");
      assert.equal(done.worker_instance, store.instanceId);
      await b.stop();
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("createApp that fails after its queue started stops the queue: no pool, no LISTEN, no worker behind it", async () => {
    const db = await freshPostgres();
    const appStore = await Store.open(db.target);
    try {
      const count = async (where: "queue" | "listen") => {
        const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and ${
          where === "queue" ? sql`application_name = 'steerbot-queue'` : sql`query ilike 'listen%'`
        }`.execute(appStore.db);
        return r.rows[0]!.n;
      };
      // the adapter channel's LISTEN fails: after the training queue started (and listens itself)
      const listen = appStore.listen;
      Object.defineProperty(appStore, "listen", {
        value: async (channel: string, onPayload: (payload: string) => void, events?: Parameters<typeof listen>[2]) => {
          if (channel === "steerbot_adapters") throw new Error("LISTEN refused for the test");
          return listen(channel, onPayload, events);
        },
      });
      const model = await tinyModelPath();
      const { config, secrets } = loadConfig({
        env: { DATABASE_URL: db.target.databaseUrl! },
        overrides: { model: { path: model, threads: 1, context_size: 2048, gpu: false }, training: { run_here: true } },
      });
      let started = false;
      const origStart = PgBossQueue.prototype.start;
      PgBossQueue.prototype.start = async function (this: PgBossQueue, ...args) {
        await origStart.apply(this, args);
        started = true;
      };
      try {
        await assert.rejects(createApp({ config, secrets, log, store: appStore }), /LISTEN refused for the test/);
      } finally {
        PgBossQueue.prototype.start = origStart;
      }
      assert.ok(started, "the queue had started");
      await until("pg-boss's connections to close", async () => (await count("queue")) === 0, 10_000);
      await until("the queue's LISTEN to end", async () => (await count("listen")) === 0, 10_000);
      // nothing takes jobs behind the failed start
      const producer = new PgBossQueue({ store: appStore, log, databaseUrl: db.target.databaseUrl!, checkSeconds: 3600, jobTimeoutHours: 1 });
      await producer.start();
      const { job } = await producer.enqueue({ trigger: "cli" });
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await appStore.jobs.get(job.id))!.state, "queued");
      await producer.stop();
    } finally {
      await appStore.close();
      await db.drop();
    }
  });
});
