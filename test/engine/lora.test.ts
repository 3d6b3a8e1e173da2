import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { SeededRandom } from "../../src/engine/fixture/seeded-random.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter } from "../../src/engine/gguf/gguf-writer.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-lora-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A rank-4 LoRA on every attn_q/ffn_down of the tiny shape (64 embd, 128 ff, 2 layers). */
function writeAdapter(file: string, bScale: number): void {
  const w = new GgufWriter();
  w.set("general.architecture", gv.str("llama"));
  w.set("general.type", gv.str("adapter"));
  w.set("adapter.type", gv.str("lora"));
  w.set("adapter.lora.alpha", gv.f32(4));
  const rng = new SeededRandom(9);
  const rand = (n: number, s: number) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const r = 4;
  for (let l = 0; l < 2; l++) {
    for (const [name, nIn, nOut] of [
      [`blk.${l}.attn_q.weight`, 64, 64],
      [`blk.${l}.ffn_down.weight`, 128, 64],
    ] as const) {
      w.addTensor(`${name}.lora_a`, [nIn, r], GgmlType.F32, rand(nIn * r, 0.5));
      w.addTensor(`${name}.lora_b`, [r, nOut], GgmlType.F32, rand(r * nOut, bScale));
    }
  }
  w.write(file);
}

test("the lora load option applies an adapter: B = 0 reproduces the base, B ≠ 0 changes it", async () => {
  const model = await tinyModelPath("qwen2");
  const zero = path.join(dir, "zero.gguf");
  const strong = path.join(dir, "strong.gguf");
  writeAdapter(zero, 0);
  writeAdapter(strong, 2);
  const messages = [{ role: "user" as const, content: "Say something." }];
  const ids = async (lora?: string) => {
    const engine = await Engine.load({ model, gpu: false, lora, sequences: 1 });
    try {
      assert.equal(engine.adapters.length, lora ? 1 : 0);
      return (await engine.generate({ messages, maxTokens: 12, temperature: 0 })).tokens.map((t) => t.id);
    } finally {
      await engine.dispose();
    }
  };
  const base = await ids();
  assert.deepEqual(await ids(zero), base);
  assert.notDeepEqual(await ids(strong), base);
});
