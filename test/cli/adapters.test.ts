/**
 * `steerbot adapters` as an operator uses it on another machine: the real CLI in a child
 * process against PostgreSQL, while a running app hears the change (LISTEN/NOTIFY) and swaps.
 */
import assert from "node:assert/strict";
import { mkdtempSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createApp, type App } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { fileSha256 } from "../../src/engine/model-file.ts";
import { createLogger } from "../../src/log.ts";
import { Store } from "../../src/store/store.ts";
import { runCli } from "../helpers/cli.ts";
import { freshPostgres, type TestDatabase } from "../helpers/databases.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("steerbot adapters (CLI, Postgres, a running bot listening)", () => {
  let tdb: TestDatabase;
  let store: Store;
  let app: App;
  let env: NodeJS.ProcessEnv;
  const dir = mkdtempSync(path.join(tmpdir(), "steerbot-adapters-"));
  const file = (v: string) => path.join(dir, `${v}.gguf`);

  before(async () => {
    tdb = await freshPostgres();
    const model = await tinyModelPath();
    env = { DATABASE_URL: tdb.target.databaseUrl, STEERBOT_MODEL__PATH: model, STEERBOT_MODEL__THREADS: "1", STEERBOT_STORE__DATA_DIR: dir };
    store = await Store.open(tdb.target);
    const base = await fileSha256(model);
    for (const [i, v] of ["v1", "v2"].entries()) {
      writeRandomLora(model, file(v), i + 1);
      await store.training.addAdapter({ version: v, filePath: file(v), sha256: await fileSha256(file(v)), baseFingerprint: base, trainingRunId: null, state: "candidate", metrics: {} });
    }
    const { config, secrets } = loadConfig({ env: {}, overrides: { model: { path: model, threads: 1, gpu: false }, store: { data_dir: dir } } });
    app = await createApp({ config, secrets: { ...secrets, databaseUrl: tdb.target.databaseUrl }, log: createLogger("silent"), store });
  });
  after(async () => {
    await app?.close();
    await store?.close();
    await tdb?.drop();
  });

  it("lists adapters as JSON with their state", async () => {
    const r = await runCli(["adapters", "list", "--json"], { env });
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { version: string; state: string }[];
    assert.deepEqual(rows.map((x) => [x.version, x.state]), [["v1", "candidate"], ["v2", "candidate"]]);
  });

  it("activates, and the running bot swaps without a restart", async () => {
    const r = await runCli(["adapters", "activate", "v1"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /adapter v1 is active/);
    await until(() => app.activator.liveVersion === "v1");
    const r2 = await runCli(["adapters", "activate", "v2"], { env });
    assert.equal(r2.code, 0, r2.stderr);
    await until(() => app.activator.liveVersion === "v2");
    const states = await store.db.selectFrom("adapters").select(["version", "state"]).orderBy("id").execute();
    assert.deepEqual(states, [{ version: "v1", state: "retired" }, { version: "v2", state: "active" }]);
  });

  it("rolls back to the adapter live before", async () => {
    const r = await runCli(["adapters", "rollback"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /adapter v1 is active/);
    await until(() => app.activator.liveVersion === "v1");
  });

  it("refuses a truncated adapter and an unknown version", async () => {
    truncateSync(file("v2"), 512);
    const r = await runCli(["adapters", "activate", "v2"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused: adapter v2: checksum mismatch/);
    const u = await runCli(["adapters", "activate", "v9"], { env });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /there is no adapter v9/);
    assert.equal(app.activator.liveVersion, "v1", "the running bot kept its adapter");
  });
});
