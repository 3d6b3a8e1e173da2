/**
 * `steerbot adapters` as an operator uses it on another machine: the real CLI against
 * PostgreSQL, while a running app hears the change (LISTEN/NOTIFY) and swaps. Activation runs
 * the binary in a child process (another process's notification reaches the bot); the other
 * cases run the same program in this process, over a store connection of its own.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createApp, type App } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { FIXTURE_SHAPES, writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter } from "../../src/engine/gguf/gguf-writer.ts";
import { fileSha256 } from "../../src/engine/model-file.ts";
import { createLogger } from "../../src/log.ts";
import { Store } from "../../src/store/store.ts";
import { runCli, runCliInProcess } from "../helpers/cli.ts";
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
    const r = await runCliInProcess(["adapters", "list", "--json"], { env });
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
    const r = await runCliInProcess(["adapters", "rollback"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /adapter v1 is active/);
    await until(() => app.activator.liveVersion === "v1");
  });

  it("refuses a truncated adapter and an unknown version", async () => {
    truncateSync(file("v2"), 512);
    const r = await runCliInProcess(["adapters", "activate", "v2"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused: adapter v2: checksum mismatch/);
    const u = await runCliInProcess(["adapters", "activate", "v9"], { env });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /there is no adapter v9/);
    assert.equal(app.activator.liveVersion, "v1", "the running bot kept its adapter");
  });

  it("exports an adapter for Ollama, PEFT and as a merged GGUF; an unknown version is refused", async () => {
    const ollama = path.join(dir, "out-ollama");
    const o = await runCliInProcess(["adapters", "export", "v1", "--as", "ollama", "--out", ollama], { env });
    assert.equal(o.code, 0, o.stderr);
    assert.ok(o.stdout.includes(`ollama create steerbot-v1 -f ${path.join(ollama, "Modelfile")}`), o.stdout);
    assert.ok(readFileSync(path.join(ollama, "adapter.gguf")).equals(readFileSync(file("v1"))));
    assert.match(readFileSync(path.join(ollama, "Modelfile"), "utf8"), /^ADAPTER \.\/adapter\.gguf$/m);

    const peft = path.join(dir, "out-peft");
    const p = await runCliInProcess(["adapters", "export", "v1", "--as", "peft", "--out", peft, "--base-model-id", "org/tiny"], { env });
    assert.equal(p.code, 0, p.stderr);
    assert.ok(existsSync(path.join(peft, "adapter_model.safetensors")));
    assert.equal(JSON.parse(readFileSync(path.join(peft, "adapter_config.json"), "utf8")).base_model_name_or_path, "org/tiny");

    const merged = path.join(dir, "merged.gguf");
    const m = await runCliInProcess(["adapters", "export", "v1", "--as", "gguf-merged", "--out", merged], { env });
    assert.equal(m.code, 0, m.stderr);
    assert.equal(readGgufHeader(merged).tensors.length, readGgufHeader(env.STEERBOT_MODEL__PATH!).tensors.length);

    const u = await runCliInProcess(["adapters", "export", "v9", "--as", "peft", "--out", peft], { env });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /there is no adapter v9/);
    const f = await runCliInProcess(["adapters", "export", "v1", "--as", "onnx", "--out", peft], { env });
    assert.notEqual(f.code, 0);
    assert.match(f.stderr, /use gguf-merged, ollama, peft/);
  });

  it("imports a converter-made LoRA GGUF (F16) as a candidate version that then activates; refuses one for another model", async () => {
    const model = env.STEERBOT_MODEL__PATH!;
    // what llama.cpp's convert_lora_to_gguf.py writes (its default --outtype f16)
    const converted = path.join(dir, "converted-lora.gguf");
    const w = new GgufWriter().set("general.architecture", gv.str("llama")).set("general.type", gv.str("adapter")).set("general.name", gv.str("converted")).set("adapter.type", gv.str("lora")).set("adapter.lora.alpha", gv.f32(16));
    for (const t of readGgufHeader(model).tensors.filter((t) => /\.attn_v\.weight$/.test(t.name))) {
      const [nIn, nOut] = t.dims as [number, number];
      w.addTensor(`${t.name}.lora_a`, [nIn, 8], GgmlType.F16, Float32Array.from({ length: nIn * 8 }, (_, i) => Math.sin(i) / 8));
      w.addTensor(`${t.name}.lora_b`, [8, nOut], GgmlType.F16, Float32Array.from({ length: 8 * nOut }, (_, i) => Math.cos(i) / 8));
    }
    w.write(converted);
    const r = await runCliInProcess(["adapters", "import", converted, "--name", "imported-1"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported .* as adapter imported-1 \(candidate\)/);
    const row = await store.training.adapter("imported-1");
    assert.equal(row?.state, "candidate");
    assert.equal(row?.base_fingerprint, await fileSha256(model));
    assert.equal(row?.file_path, path.join(dir, "adapters", "imported-1.gguf"));
    assert.ok(readFileSync(row!.file_path).equals(readFileSync(converted)));
    const a = await runCliInProcess(["adapters", "activate", "imported-1"], { env });
    assert.equal(a.code, 0, a.stderr);
    await until(() => app.activator.liveVersion === "imported-1");

    // same name twice, another model's adapter, and a file that is no adapter: refused, nothing stored
    const again = await runCliInProcess(["adapters", "import", converted, "--name", "imported-1"], { env });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already an adapter imported-1/);
    const other = path.join(dir, "other-base.gguf");
    await writeFixtureModel({ out: other, vocab: "llama-spm", shape: { ...FIXTURE_SHAPES.tiny, nEmbd: 32, nHead: 2, nHeadKv: 1, nFf: 64 }, seed: 2 });
    writeRandomLora(other, path.join(dir, "other-lora.gguf"), 3);
    const bad = await runCliInProcess(["adapters", "import", path.join(dir, "other-lora.gguf")], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /refused: other-lora\.gguf: blk\.0\.attn_q\.weight is 64×64 in the base model .* it was made for another model/);
    const notLora = await runCliInProcess(["adapters", "import", model], { env });
    assert.equal(notLora.code, 2);
    assert.match(notLora.stderr, /is not a LoRA adapter GGUF/);
    const rows = await store.training.adapters();
    assert.deepEqual(rows.map((x) => x.version), ["v1", "v2", "imported-1"]);
  });
});
