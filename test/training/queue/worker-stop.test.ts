/**
 * `steerbot worker` stopped with SIGTERM while it trains (the real worker process, the real
 * trainer on the tiny model, a fresh database on the suite's PostgreSQL): it stops the trainer,
 * hands the job back to the queue — queued again, the attempt not counted, the run recorded as
 * cancelled saying why — and exits 0; the trainer is gone by the time the job is back; the next
 * worker runs the job to its end.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { createLogger } from "../../../src/log.ts";
import { Store } from "../../../src/store/store.ts";
import { PgBossQueue } from "../../../src/training/queue/pg-boss-queue.ts";
import { freshPostgres, type TestDatabase } from "../../helpers/databases.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { colourSteers } from "../colour-task.ts";
import { until as poll } from "../../helpers/until.ts";
import { childEnv } from "../../helpers/child-env.ts";

const TIMEOUT = 120_000;

const until = <T>(what: string, read: () => Promise<T | undefined | false>, timeoutMs = TIMEOUT) => poll(what, read, timeoutMs);

/** The processes below pid (Linux /proc), with their command names. */
function descendants(pid: number): { pid: number; comm: string }[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      comm.set(Number(d), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {}
  }
  const out: { pid: number; comm: string }[] = [];
  for (const p of parent.keys()) {
    for (let q = parent.get(p); q && q > 1; q = parent.get(q)) {
      if (q === pid) {
        out.push({ pid: p, comm: comm.get(p)! });
        break;
      }
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("steerbot worker stopped with SIGTERM mid-run", { timeout: 4 * TIMEOUT }, () => {
  let tdb: TestDatabase;
  let store: Store;
  let env: NodeJS.ProcessEnv;
  const children: ChildProcess[] = [];
  const worker = (extra: NodeJS.ProcessEnv, args: string[] = []) => {
    const child = spawn(process.execPath, [path.join(projectRoot, "bin", "steerbot.js"), "worker", ...args], {
      cwd: projectRoot,
      env: { ...env, STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-w-")), ...extra },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(child);
    const p = { child, stderr: "", exited: new Promise<number | null>((r) => child.on("exit", (code) => r(code))) };
    child.stderr!.on("data", (d) => (p.stderr += d));
    return p;
  };

  before(async () => {
    tdb = await freshPostgres();
    store = await Store.open(tdb.target);
    const model = await tinyModelPath();
    await store.steers.importRecords([...colourSteers(40, false), ...colourSteers(12, true)]);
    env = childEnv({
      DATABASE_URL: tdb.target.databaseUrl,
      STEERBOT_LOG__LEVEL: "info",
      STEERBOT_MODEL__PATH: model,
      STEERBOT_MODEL__THREADS: "1",
      STEERBOT_MODEL__CONTEXT_SIZE: "2048",
      STEERBOT_MODEL__GPU: "false",
      STEERBOT_TRAINING__WORKER_CHECK_SECONDS: "0.5",
      STEERBOT_TRAINING__BASE_MODEL: model,
      STEERBOT_TRAINING__MIN_NEW_STEERS: "1",
      STEERBOT_TRAINING__OBJECTIVE: "sft",
      STEERBOT_TRAINING__EPOCHS: "1",
      STEERBOT_TRAINING__RANK: "4",
      STEERBOT_TRAINING__ALPHA: "8",
      STEERBOT_TRAINING__HELD_OUT_FRACTION: "0.25",
      STEERBOT_TRAINING__THREADS: "1",
    });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await store?.close();
    await tdb?.drop();
  });

  it("stops the trainer, hands the job back (not counted), exits 0; the next worker runs the job", async () => {
    const producer = new PgBossQueue({ store, log: createLogger("silent"), databaseUrl: tdb.target.databaseUrl!, checkSeconds: 3600, jobTimeoutHours: 1 });
    await producer.start();
    const { job } = await producer.enqueue({ trigger: "cli" });
    await producer.stop();

    const w = worker({ STEERBOT_TRAINING__EPOCHS: "200" }); // long enough to stop it mid-run
    await until(`the job to make progress (${w.stderr.slice(-1500)})`, async () => {
      const r = await store.jobs.get(job.id);
      return r?.state === "running" && (r.step ?? 0) > 0;
    });
    const trainers = descendants(w.child.pid!).filter((p) => p.comm.startsWith("steer-train"));
    assert.equal(trainers.length, 1, `one trainer under the worker: ${JSON.stringify(descendants(w.child.pid!))}`);
    const trainer = trainers[0]!.pid;

    const t0 = Date.now();
    w.child.kill("SIGTERM");
    const back = await until("the job to be handed back", async () => {
      const r = await store.jobs.get(job.id);
      return r?.state === "queued" && r;
    }, 30_000);
    assert.equal(alive(trainer), false, "the trainer had exited before the job went back to the queue");
    assert.equal(await w.exited, 0, w.stderr.slice(-3000));
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(seconds < 20, `the worker exited ${seconds.toFixed(1)} s after SIGTERM`);
    assert.equal(back.attempts, 0, "a hand-back is not an attempt");
    assert.equal(back.worker_instance, null);
    assert.match(back.error!, /the worker stopped \(SIGTERM\) and handed the job back to the queue/);
    const run = (await store.training.recentRuns(1))[0]!;
    assert.equal(run.id, back.run_id);
    assert.equal(run.state, "cancelled");
    assert.match(run.error!, /^stopped: the worker stopped \(SIGTERM\)/);
    assert.match(w.stderr, /training job handed back to the queue/);

    const next = worker({}, ["--once"]);
    assert.equal(await next.exited, 0, next.stderr.slice(-3000));
    const done = (await store.jobs.get(job.id))!;
    assert.equal(done.state, "succeeded", `${done.notice} ${done.error}`);
    assert.equal(done.attempts, 1);
    assert.notEqual(done.run_id, back.run_id);
  });
});
