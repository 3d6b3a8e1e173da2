/**
 * The embedded database's lock, with real processes: a second process on the same data
 * directory is refused in one line naming the directory and the holder's pid; a holder that
 * was killed does not keep it locked.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { Store } from "../../src/store/store.ts";
import { runCli } from "../helpers/cli.ts";

/** Starts test/helpers/hold-store.ts on `dataDir`; resolves once it holds the store. */
async function holder(dataDir: string): Promise<{ child: ChildProcess; pid: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(projectRoot, "test/helpers/hold-store.ts"), dataDir], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([once(lines, "line"), once(child, "exit").then(() => [undefined])])) as [string | undefined];
  assert.ok(line?.startsWith("ready "), `the holder started (${line})`);
  return { child, pid: Number(line!.slice(6)) };
}

const env = (dataDir: string) => ({ DATABASE_URL: "", STEERBOT_STORE__DATA_DIR: dataDir });

describe("the embedded database's data directory lock", () => {
  it("refuses a second process in one line naming the directory, the holder's pid and what to do", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "steerbot-lock-"));
    const { child, pid } = await holder(dataDir);
    try {
      const r = await runCli(["steers", "list"], { env: env(dataDir) });
      assert.equal(r.code, 1);
      const dir = path.join(dataDir, "pglite");
      assert.equal(r.stderr.split("\n").length, 2, r.stderr); // one line and its newline
      assert.ok(r.stderr.startsWith(`steerbot: the embedded database in ${dir} is in use by pid ${pid} on `), r.stderr);
      assert.match(r.stderr, /Stop that process first .*DATABASE_URL\n$/);
      // this process is refused the same way
      await assert.rejects(Store.open({ dataDir }), (e: Error) => e.name === "StoreError" && e.message.includes(`pid ${pid}`));
    } finally {
      child.stdin!.end();
      await once(child, "exit");
    }
    const after = await runCli(["steers", "list"], { env: env(dataDir) });
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.stdout, "no steers match\n");
  });

  it("is not kept by a holder that was killed", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "steerbot-lock-"));
    const first = await Store.open({ dataDir });
    await first.steers.importRecords([{ context: [{ role: "user", content: "Hi" }], prefix: "", rejected: "", chosen: "Hello" }]);
    await first.close();
    const { child } = await holder(dataDir);
    child.kill("SIGKILL");
    await once(child, "exit");
    const store = await Store.open({ dataDir }); // waits for the dead holder's lock to go stale
    try {
      assert.equal((await store.steers.list()).length, 1);
    } finally {
      await store.close();
    }
  });
});
