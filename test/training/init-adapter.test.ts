/**
 * Training that starts from an adapter (`trainAdapter({ initAdapter })`, `steerbot train
 * --init-adapter`): an F16 LoRA as llama.cpp's converter writes it continues with its own
 * rank, targets and alpha; one for another model is refused before the trainer runs.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { FIXTURE_SHAPES, writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter } from "../../src/engine/gguf/gguf-writer.ts";
import { buildTrainer, type TrainerBuild } from "../../src/training/build-trainer.ts";
import { LoraFileError, loraTensorF32, pairRank, readLoraGguf } from "../../src/training/lora-gguf.ts";
import { trainAdapter } from "../../src/training/train-adapter.ts";
import { runCli } from "../helpers/cli.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { colourSteers, writeSteers } from "./colour-task.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-init-adapter-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let model: string;
let build: TrainerBuild;
const steers = path.join(dir, "steers.jsonl");
const init = path.join(dir, "converted-f16.gguf");

before(async () => {
  model = await tinyModelPath();
  build = await buildTrainer();
  writeSteers(steers, colourSteers(8, false));
  // rank 4, alpha 8 on attn_q and attn_v, F16: what convert_lora_to_gguf.py writes by default
  const w = new GgufWriter().set("general.architecture", gv.str("llama")).set("general.type", gv.str("adapter")).set("adapter.type", gv.str("lora")).set("adapter.lora.alpha", gv.f32(8));
  for (const t of readGgufHeader(model).tensors.filter((t) => /\.(attn_q|attn_v)\.weight$/.test(t.name))) {
    const [nIn, nOut] = t.dims as [number, number];
    w.addTensor(`${t.name}.lora_a`, [nIn, 4], GgmlType.F16, Float32Array.from({ length: nIn * 4 }, (_, i) => Math.sin(i * 0.7) / 8));
    w.addTensor(`${t.name}.lora_b`, [4, nOut], GgmlType.F16, Float32Array.from({ length: 4 * nOut }, (_, i) => Math.cos(i * 0.3) / 20));
  }
  w.write(init);
});

test("training continues an F16 adapter from its values, keeping its rank, targets and alpha", async () => {
  const out = path.join(dir, "continued.gguf");
  // rank/alpha/targets given here are the fresh-adapter settings: the init adapter's win
  const r = await trainAdapter({ retention: 0, model, steers, out, objective: "sft", epochs: 1, maxSteps: 1, lr: 1e-6, rank: 16, alpha: 32, threads: 1, initAdapter: init, build });
  assert.equal(r.pairs, 8);
  const before = readLoraGguf(init);
  const after = readLoraGguf(out);
  assert.equal(after.alpha, 8, "the scale alpha/rank of the adapter it continues");
  assert.deepEqual(after.pairs.map((p) => p.base).sort(), before.pairs.map((p) => p.base).sort());
  assert.deepEqual([...new Set(after.pairs.map(pairRank))], [4]);
  let maxDiff = 0;
  let maxB = 0;
  for (const p of after.pairs) {
    const q = before.pairs.find((x) => x.base === p.base)!;
    for (const [a, b] of [[p.a, q.a], [p.b, q.b]] as const) {
      const x = loraTensorF32(a);
      const y = loraTensorF32(b);
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
    }
    for (const v of loraTensorF32(p.b)) maxB = Math.max(maxB, Math.abs(v));
  }
  assert.ok(maxB > 0.04, `B kept its values (max |B| ${maxB}), it did not start from 0`);
  assert.ok(maxDiff < 1e-3, `a tiny learning rate moves the weights only a little (max change ${maxDiff})`);
});

test("an init adapter for another model is refused before training, by name", async () => {
  const other = path.join(dir, "other.gguf");
  await writeFixtureModel({ out: other, vocab: "llama-spm", shape: { ...FIXTURE_SHAPES.tiny, nEmbd: 32, nHead: 2, nHeadKv: 1, nFf: 64 }, seed: 4 });
  await assert.rejects(
    trainAdapter({ retention: 0, model: other, steers, out: path.join(dir, "never.gguf"), initAdapter: init, threads: 1, build }),
    (e: unknown) => e instanceof LoraFileError && /the init adapter converted-f16\.gguf: blk\.0\.attn_q\.weight is 32×32 in the base model/.test(e.message),
  );
});

test("steerbot train --init-adapter refuses --rank/--alpha/--targets, which the adapter fixes", async () => {
  const r = await runCli(["train", "--steers", steers, "--model", model, "--out", path.join(dir, "x.gguf"), "--init-adapter", init, "--rank", "8", "--targets", "q"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--rank, --targets: not used with --init-adapter/);
});
