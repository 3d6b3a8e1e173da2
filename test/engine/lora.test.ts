import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-lora-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A rank-4 LoRA on every attn_q/ffn_down of the tiny model, B entries of the given spread. */
const writeAdapter = (model: string, file: string, bStd: number) =>
  writeRandomLora(model, file, 9, { rank: 4, bStd, targets: /\.(attn_q|ffn_down)\.weight$/ });

test("the lora load option applies an adapter: B = 0 reproduces the base, B ≠ 0 changes it", async () => {
  const model = await tinyModelPath("qwen2");
  const zero = path.join(dir, "zero.gguf");
  const strong = path.join(dir, "strong.gguf");
  writeAdapter(model, zero, 0);
  writeAdapter(model, strong, 2);
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
