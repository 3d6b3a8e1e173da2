import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import { plainValue, readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-fixture-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

for (const vocab of ["qwen2", "llama-spm", "phi-3"]) {
  test(`tiny ${vocab} fixture loads and generates varied text`, async () => {
    const engine = await Engine.load({ model: await tinyModelPath(vocab), gpu: false });
    try {
      assert.notEqual(engine.chatWrapper.wrapperName, "General", "the chat template should give a proper wrapper");
      const r = await engine.generate({
        messages: [{ role: "user", content: "Tell me a story about a cat." }],
        maxTokens: 40,
        temperature: 0,
      });
      assert.ok(r.text.length > 0, "non-empty text");
      assert.ok(new Set(r.tokens.map((t) => t.id)).size >= 10, `varied tokens: ${JSON.stringify(r.text)}`);
      const sampled = await engine.generate({
        messages: [{ role: "user", content: "Tell me a story about a cat." }],
        maxTokens: 20,
        temperature: 1,
        seed: 7,
      });
      assert.notEqual(sampled.text, r.text.slice(0, sampled.text.length), "sampling differs from greedy");
    } finally {
      await engine.dispose();
    }
  });
}

test("same seed gives identical bytes; another seed differs; tokenizer and template copied", async () => {
  const a = path.join(dir, "a.gguf");
  const b = path.join(dir, "b.gguf");
  const c = path.join(dir, "c.gguf");
  await writeFixtureModel({ out: a, vocab: "llama-spm", shape: "tiny", seed: 42 });
  await writeFixtureModel({ out: b, vocab: "llama-spm", shape: "tiny", seed: 42 });
  await writeFixtureModel({ out: c, vocab: "llama-spm", shape: "tiny", seed: 43 });
  assert.equal(sha(a), sha(b));
  assert.notEqual(sha(a), sha(c));
  const h = readGgufHeader(a);
  assert.equal(plainValue(h.metadata.get("general.architecture")), "llama");
  assert.equal((plainValue(h.metadata.get("tokenizer.ggml.tokens")) as string[]).length, 32000);
  assert.match(String(plainValue(h.metadata.get("tokenizer.chat_template"))), /\[INST\]/);
  assert.ok(h.tensors.some((t) => t.name === "blk.1.ffn_down.weight"));
});

test("F16 weights load too", async () => {
  const out = path.join(dir, "f16.gguf");
  const info = await writeFixtureModel({ out, vocab: "llama-spm", shape: "tiny", seed: 1, type: "f16" });
  assert.ok(info.bytes < 32000 * 64 * 2 * 4);
  const engine = await Engine.load({ model: out, gpu: false });
  try {
    const r = await engine.generate({ messages: [{ role: "user", content: "Hi" }], maxTokens: 8, temperature: 0 });
    assert.equal(r.tokens.length, 8);
  } finally {
    await engine.dispose();
  }
});

test("Q8_0 and Q4_0 weights load and score close to the F32 model they quantize", async () => {
  const score = async (type: "f32" | "q8_0" | "q4_0") => {
    const out = path.join(dir, `quant-${type}.gguf`);
    await writeFixtureModel({ out, vocab: "llama-spm", shape: "tiny", seed: 3, type });
    const engine = await Engine.load({ model: out, gpu: false });
    try {
      const r = await engine.scoreSpan({ messages: [{ role: "user", content: "Tell me a story." }], assistantPrefix: "Once upon a time", span: " there was a castle by the sea." });
      return r.perToken;
    } finally {
      await engine.dispose();
    }
  };
  const f32 = await score("f32");
  const err = (xs: number[]) => Math.max(...xs.map((x, i) => Math.abs(x - f32[i]!)));
  const q8 = err(await score("q8_0"));
  const q4 = err(await score("q4_0"));
  // measured: Q8_0 0.07 nats, Q4_0 0.8; the F32 model of another seed is 8.1 away, as is any
  // wrong block layout (scale, nibble order): these weights would be noise
  assert.ok(q8 < 0.3, `Q8_0: largest per-token log-prob error ${q8}`);
  assert.ok(q4 < 2.5 && q4 > q8, `Q4_0: largest per-token log-prob error ${q4} (Q8_0 ${q8})`);
});

test("unknown vocab and shape give clear errors", async () => {
  await assert.rejects(writeFixtureModel({ out: path.join(dir, "x.gguf"), vocab: "nope" }), /unknown vocab "nope".*Available: .*qwen2/);
  await assert.rejects(writeFixtureModel({ out: path.join(dir, "x.gguf"), shape: "huge" as never }), /unknown fixture shape "huge"/);
});
