/**
 * Beyond one machine, on loopback: two bot instances (separate processes, each with its own
 * data directory, `training.run_here: false`) and `steerbot worker` processes sharing one
 * PostgreSQL database (the suite's TEST_DATABASE_URL), with the real trainer on the tiny model.
 *
 * - a /retrain on instance A is queued, trained by the worker, stored in the database and
 *   activated; both instances fetch the adapter they never saw (verified by sha256) and swap;
 * - a worker killed mid-run: the job is retried once (by a second worker), killed again, then
 *   failed with the reason; the live adapter is untouched;
 * - the nightly schedule firing on both instances makes one job per trigger.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { fileSha256 } from "../../../src/engine/model-file.ts";
import { Store } from "../../../src/store/store.ts";
import { runCli } from "../../helpers/cli.ts";
import { freshPostgres, type TestDatabase } from "../../helpers/databases.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { colourSteers } from "../colour-task.ts";
import { until as poll } from "../../helpers/until.ts";
import { childEnv } from "../../helpers/child-env.ts";

const TIMEOUT = 120_000;

interface Proc {
  child: ChildProcess;
  stderr: string;
  exited: Promise<number | null>;
}

function spawnProc(args: string[], env: NodeJS.ProcessEnv, ipc = false): Proc {
  const child = spawn(process.execPath, args, { cwd: projectRoot, env, detached: true, stdio: ipc ? ["ignore", "ignore", "pipe", "ipc"] : ["ignore", "ignore", "pipe"] });
  const p: Proc = { child, stderr: "", exited: new Promise((r) => child.on("exit", (code) => r(code))) };
  child.stderr!.on("data", (d) => (p.stderr += d));
  return p;
}

/** Kills the process and everything it started (the native trainer), as a crash of the machine would. */
function killGroup(p: Proc): Promise<number | null> {
  try {
    process.kill(-p.child.pid!, "SIGKILL");
  } catch {}
  return p.exited;
}

class Instance {
  private next = 1;
  private readonly waiting = new Map<number, (m: { value?: unknown; error?: string }) => void>();
  readonly ready: Promise<void>;
  constructor(readonly proc: Proc) {
    this.ready = new Promise((resolve, reject) => {
      proc.child.on("message", (m: { type: string; id?: number; value?: unknown; error?: string }) => {
        if (m.type === "ready") resolve();
        if (m.type === "result") this.waiting.get(m.id!)?.(m);
      });
      void proc.exited.then((code) => reject(new Error(`instance exited (${code}) before it was ready: ${proc.stderr.slice(-2000)}`)));
    });
  }
  async ask<T>(cmd: string): Promise<T> {
    const id = this.next++;
    const got = new Promise<{ value?: unknown; error?: string }>((r) => this.waiting.set(id, r));
    this.proc.child.send({ id, cmd });
    const m = await got;
    if (m.error) throw new Error(m.error);
    return m.value as T;
  }
}

/** Waits for a condition read from the database or a process (each read is an event of its own). */
const until = <T>(what: string, read: () => Promise<T | undefined | false>, timeoutMs = TIMEOUT) => poll(what, read, timeoutMs, 100);

describe("training queue across processes on PostgreSQL", { timeout: 5 * TIMEOUT }, () => {
  let tdb: TestDatabase;
  let store: Store;
  let model: string;
  let a: Instance;
  let b: Instance;
  const dirs = { a: mkdtempSync(path.join(tmpdir(), "steerbot-a-")), b: mkdtempSync(path.join(tmpdir(), "steerbot-b-")), w: mkdtempSync(path.join(tmpdir(), "steerbot-w-")) };
  const procs: Proc[] = [];
  let baseEnv: NodeJS.ProcessEnv;
  let liveVersion: string;

  const bin = path.join(projectRoot, "bin", "steerbot.js");
  const instance = (dir: string, extra: NodeJS.ProcessEnv = {}) => {
    const p = spawnProc(["--import", "tsx", path.join(projectRoot, "test", "helpers", "instance-process.ts")], { ...baseEnv, STEERBOT_STORE__DATA_DIR: dir, ...extra }, true);
    procs.push(p);
    return new Instance(p);
  };
  const worker = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const p = spawnProc([bin, "worker", ...args], { ...baseEnv, STEERBOT_STORE__DATA_DIR: dirs.w, ...extra });
    procs.push(p);
    return p;
  };

  before(async () => {
    tdb = await freshPostgres();
    store = await Store.open(tdb.target);
    model = await tinyModelPath();
    await store.steers.importRecords([...colourSteers(60, false), ...colourSteers(20, true)]);
    baseEnv = childEnv({
      DATABASE_URL: tdb.target.databaseUrl,
      STEERBOT_LOG__LEVEL: "info",
      STEERBOT_MODEL__PATH: model,
      STEERBOT_MODEL__THREADS: "1",
      STEERBOT_MODEL__CONTEXT_SIZE: "2048",
      STEERBOT_MODEL__GPU: "false",
      STEERBOT_GENERATION__MAX_TOKENS: "8",
      STEERBOT_PERMISSIONS__ADMINS__USERS: "[admin]",
      STEERBOT_TRAINING__RUN_HERE: "false",
      STEERBOT_TRAINING__WORKER_CHECK_SECONDS: "0.5",
      STEERBOT_TRAINING__BASE_MODEL: model,
      STEERBOT_TRAINING__MIN_NEW_STEERS: "10",
      STEERBOT_TRAINING__OBJECTIVE: "sft",
      STEERBOT_TRAINING__EPOCHS: "4",
      STEERBOT_TRAINING__LEARNING_RATE: "0.01",
      STEERBOT_TRAINING__RANK: "8",
      STEERBOT_TRAINING__ALPHA: "16",
      STEERBOT_TRAINING__HELD_OUT_FRACTION: "0.25",
      STEERBOT_TRAINING__MIN_IMPROVEMENT: "0.05",
      STEERBOT_TRAINING__THREADS: "1",
    });
    a = instance(dirs.a);
    b = instance(dirs.b);
    await Promise.all([a.ready, b.ready]);
  });

  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) await killGroup(p);
    await store?.close();
    await tdb?.drop();
  });

  it("a /retrain on instance A is trained by the worker, stored and activated, and both instances fetch it and swap", async () => {
    const retrain = a.ask<{ ok: boolean; notice: string }>("retrain");
    const job = await until("the queued job", async () => (await store.jobs.recent(1))[0]);
    assert.equal(job.trigger, "command");
    assert.equal(job.requested_by, "test:admin");
    const w = worker(["--once"]);
    const out = await retrain;
    assert.equal(await w.exited, 0, w.stderr.slice(-3000));
    assert.equal(out.ok, true, out.notice);
    assert.match(out.notice, /is now live/);
    const done = (await store.jobs.get(job.id))!;
    assert.equal(done.state, "succeeded");
    assert.equal(done.attempts, 1);
    assert.ok(done.step! > 0 && done.step === done.steps, `progress was recorded: ${done.step}/${done.steps}`);
    assert.ok(done.loss !== null && done.eta_seconds !== null);
    liveVersion = done.adapter_version!;
    const row = (await store.training.adapter(liveVersion))!;
    assert.equal(row.state, "active");
    assert.ok(row.file_path.startsWith(dirs.w), "the worker wrote the adapter in its own data directory");
    const blob = (await store.adapterBlobs.info(liveVersion))!;
    assert.equal(blob.sha256, row.sha256);
    // both instances hear the activation, fetch the adapter from the database and swap
    for (const [inst, dir] of [[a, dirs.a], [b, dirs.b]] as const) {
      await until(`instance in ${dir} to swap`, async () => (await inst.ask<string | null>("live")) === liveVersion);
    }
  });

  it("a worker killed mid-run: the job is retried once, then failed with the reason; the live adapter is untouched", async () => {
    // a longer run, so that there is a "mid-run" to kill it in
    const long = { STEERBOT_TRAINING__EPOCHS: "200", STEERBOT_TRAINING__MIN_NEW_STEERS: "1" };
    await store.steers.importRecords(colourSteers(4, false, 7)); // new steers since the last run
    const queued = await runCli(["train", "--from-db", "--enqueue"], { env: { ...baseEnv, STEERBOT_STORE__DATA_DIR: dirs.w } });
    assert.equal(queued.code, 0, queued.stderr);
    const id = /queued training job (\S+);/.exec(queued.stdout)?.[1];
    assert.ok(id, queued.stdout);
    const job = (await store.jobs.get(id))!;
    assert.equal(job.trigger, "cli");
    for (const attempt of [1, 2]) {
      const w = worker([], long);
      await until(`attempt ${attempt} to make progress`, async () => {
        const r = await store.jobs.get(job.id);
        return r?.state === "running" && r.attempts === attempt && (r.step ?? 0) > 0;
      });
      await killGroup(w);
      // the instances notice the worker is gone (its instance lock is free)
      await until(`attempt ${attempt} to be given up`, async () => {
        const r = await store.jobs.get(job.id);
        return attempt === 1 ? r?.state === "queued" : r?.state === "failed";
      });
    }
    const failed = (await store.jobs.get(job.id))!;
    assert.equal(failed.attempts, 2);
    assert.match(failed.error!, /ended mid-run/);
    assert.match(failed.notice!, /failed after 2 attempt\(s\).*live adapter is unchanged/);
    const run = (await store.training.recentRuns(1))[0]!;
    assert.equal(run.state, "failed");
    assert.equal((await store.training.activeAdapter((await store.training.adapter(liveVersion))!.base_fingerprint))?.version, liveVersion);
    assert.equal(await a.ask("live"), liveVersion);
    assert.equal(await b.ask("live"), liveVersion);
  });

  it("an instance that never saw the adapter fetches it from the database (and `adapters pull` by hand); the nightly schedule on two instances makes one job", async () => {
    // the worker's machine is elsewhere: its file is not there to be found
    const { rmSync } = await import("node:fs");
    rmSync(path.join(dirs.w, "adapters"), { recursive: true, force: true });
    // by hand, on a machine that never saw it
    const pulled = mkdtempSync(path.join(tmpdir(), "steerbot-pull-"));
    const pull = await runCli(["adapters", "pull", liveVersion], { env: { ...baseEnv, STEERBOT_STORE__DATA_DIR: pulled } });
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout, /verified/);
    assert.equal(await fileSha256(path.join(pulled, "adapters", `${liveVersion}.gguf`)), (await store.training.adapter(liveVersion))!.sha256);
    const none = await runCli(["adapters", "pull", "v-none"], { env: { ...baseEnv, STEERBOT_STORE__DATA_DIR: pulled } });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /there is no adapter v-none/);

    const every = { TEST_SCHEDULE: "1", STEERBOT_TRAINING__SCHEDULE: "* * * * * *" };
    const dirC = mkdtempSync(path.join(tmpdir(), "steerbot-c-"));
    const c = instance(dirC, every);
    const d = instance(mkdtempSync(path.join(tmpdir(), "steerbot-d-")), every);
    await Promise.all([c.ready, d.ready]);
    assert.equal(await c.ask("live"), liveVersion);
    const row = (await store.training.adapter(liveVersion))!;
    const cached = path.join(dirC, "adapters", `${liveVersion}.gguf`);
    assert.ok(existsSync(cached), `${cached} was fetched from the database`);
    assert.equal(await fileSha256(cached), row.sha256);

    const triggers = (p: Proc) =>
      p.stderr
        .split("\n")
        .filter((l) => l.includes("nightly training job") && l.endsWith("}"))
        .map((l) => JSON.parse(l) as { job: string; created: boolean });
    await until("both instances to fire the schedule", async () => triggers(c.proc).length >= 2 && triggers(d.proc).length >= 2, 30_000);
    await Promise.all([killGroup(c.proc), killGroup(d.proc)]);
    const fired = [...triggers(c.proc), ...triggers(d.proc)];
    const ids = new Set(fired.map((t) => t.job));
    const cron = (await store.jobs.recent(100)).filter((j) => j.trigger === "cron");
    assert.deepEqual(new Set(cron.map((j) => j.id)), ids, "every trigger names a job in the database");
    assert.equal(fired.filter((t) => t.created).length, ids.size, "one trigger created each job; the others found it");
    assert.ok(ids.size < fired.length);
    const both = [...ids].filter((id) => triggers(c.proc).some((t) => t.job === id) && triggers(d.proc).some((t) => t.job === id));
    assert.ok(both.length >= 1, "both instances' triggers became the same job");
  });
});
