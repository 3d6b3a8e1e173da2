import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { Engine, defaultThreads, type GeneratedToken } from "../../src/engine/engine.ts";
import { ModelUnavailableError } from "../../src/engine/model-file.ts";
import { writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import type { ChatMessage } from "../../src/core/steer-record.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

let engine: Engine;
before(async () => {
  engine = await Engine.load({ model: await tinyModelPath("qwen2"), gpu: false, sequences: 3 });
});
after(async () => {
  await engine?.dispose();
});

const chat: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Name three colours." },
];

test("tokenize/detokenize roundtrip, no special tokens added", () => {
  for (const text of ["Hello world", " leading space", "héllo 世界 🙂 <|im_end|>", "a\nb\tc"]) {
    const ids = engine.tokenize(text);
    assert.equal(engine.detokenize(ids), text);
  }
  assert.equal(engine.tokenize("").length, 0);
  // special-token text is plain text, not the control token
  const imEnd = engine.tokenize("<|im_end|>");
  assert.ok(imEnd.length > 1);
});

test("token offsets reconstruct the final text exactly, also across multi-byte characters", async () => {
  // greedy and sampled runs over a 151k byte-level BPE vocab produce CJK/emoji pieces
  for (const seed of [1, 2, 3]) {
    const seen: GeneratedToken[] = [];
    const r = await engine.generate({ messages: chat, maxTokens: 60, temperature: 1, seed, onToken: (t) => void seen.push({ ...t }) });
    assert.deepEqual(seen, r.tokens);
    let offset = 0;
    for (const t of r.tokens) {
      assert.equal(t.offset, offset);
      offset += t.text.length;
    }
    assert.equal(r.tokens.map((t) => t.text).join(""), r.text);
    assert.equal(offset, r.text.length);
    const prompt = engine.renderContext(chat, "").tokens;
    const whole = engine.detokenize([...prompt, ...r.tokens.map((t) => t.id)]);
    assert.ok(whole.endsWith(r.text), "same text as decoding everything at once");
  }
});

test("a token that splits a UTF-8 character gets empty text; the completing one carries it", async () => {
  const { TokenTextDecoder } = await import("../../src/engine/token-text-decoder.ts");
  const text = "a🫠鿕b"; // byte-level BPE: 🫠 is 3 tokens, 鿕 2 tokens
  const ids = engine.tokenize(text);
  const d = new TokenTextDecoder((t, s, l) => engine.model.detokenize(t as never, s, l as never), engine.renderContext(chat, "").tokens);
  const pieces = ids.map((id) => d.push(id));
  assert.equal(pieces.join("") + d.flush(), text);
  assert.ok(pieces.includes(""), `some piece is held back: ${JSON.stringify(pieces)}`);
  assert.ok(pieces.includes("🫠") || pieces.some((p) => p.endsWith("🫠")));
  assert.ok(!pieces.some((p) => p.includes("\uFFFD")));
  // an incomplete character at the end is flushed (as U+FFFD) so texts still add up
  const d2 = new TokenTextDecoder((t, s, l) => engine.model.detokenize(t as never, s, l as never));
  const cut = engine.tokenize("🫠").slice(0, 2);
  const p2 = cut.map((id) => d2.push(id)).join("") + d2.flush();
  assert.equal(p2, engine.detokenize(cut));
});

test("abort after N tokens stops within one token and reports abort", async () => {
  const controller = new AbortController();
  const N = 5;
  let calls = 0;
  const r = await engine.generate({
    messages: chat,
    maxTokens: 200,
    temperature: 0,
    signal: controller.signal,
    onToken: () => {
      calls++;
      if (calls === N) controller.abort();
    },
  });
  assert.equal(r.stopReason, "abort");
  assert.ok(r.tokens.length >= N && r.tokens.length <= N + 1, `${r.tokens.length} tokens`);
  assert.equal(calls, r.tokens.length);

  // abort from outside while streaming (a timer firing between tokens)
  const c2 = new AbortController();
  let count = 0;
  let abortedAt = -1;
  const r2 = await engine.generate({
    messages: chat,
    maxTokens: 100000,
    temperature: 0,
    signal: c2.signal,
    onToken: async () => {
      if (++count === 3) {
        setTimeout(() => {
          abortedAt = count;
          c2.abort();
        }, 0);
        await new Promise((res) => setTimeout(res, 5));
      }
    },
  });
  assert.equal(r2.stopReason, "abort");
  assert.ok(abortedAt > 0 && r2.tokens.length <= abortedAt + 1, `${r2.tokens.length} tokens after abort at ${abortedAt}`);
  const r3 = await engine.generate({ messages: chat, signal: AbortSignal.abort() });
  assert.equal(r3.stopReason, "abort");
  assert.equal(r3.tokens.length, 0);
});

test("maxTokens stops with maxTokens; greedy is deterministic", async () => {
  const a = await engine.generate({ messages: chat, maxTokens: 12, temperature: 0 });
  const b = await engine.generate({ messages: chat, maxTokens: 12, temperature: 0 });
  assert.equal(a.stopReason, "maxTokens");
  assert.equal(a.tokens.length, 12);
  assert.deepEqual(
    a.tokens.map((t) => t.id),
    b.tokens.map((t) => t.id),
  );
  assert.ok(b.timings.reusedTokens > 0, "second run reuses the cached prompt");
});

test("continuing from an assistant prefix", async () => {
  const prefix = "Red, green and";
  const rendered = engine.renderContext(chat, prefix);
  assert.ok(rendered.text.endsWith(prefix), JSON.stringify(rendered.text));
  assert.ok(rendered.text.includes("<|im_start|>assistant\n"), "ChatML template with an open assistant turn");
  assert.ok(!rendered.text.endsWith("<|im_end|>\n"));
  // the text is exactly the prompt: tokenizing it (special tokens parsed) gives the same tokens
  assert.deepEqual(engine.model.tokenize(rendered.text, true), rendered.tokens);
  const r = await engine.generate({ messages: chat, assistantPrefix: prefix, maxTokens: 10, temperature: 0 });
  assert.equal(r.timings.promptTokens, rendered.tokens.length);
  assert.ok(!r.text.startsWith(prefix));
  // the continuation is what the model predicts after exactly the rendered prompt
  const direct = await engine.generate({
    messages: chat,
    assistantPrefixTokens: engine.tokenize(prefix),
    maxTokens: 10,
    temperature: 0,
  });
  const viaTokens = [...engine.renderContext(chat, "").tokens, ...engine.tokenize(prefix)];
  assert.equal(direct.timings.promptTokens, viaTokens.length);
  // a chosen correction resumes the same way: prefix + chosen, then the model streams on
  const steered = await engine.generate({ messages: chat, assistantPrefix: prefix + " blue", maxTokens: 5, temperature: 0 });
  assert.equal(steered.tokens.length, 5);
});

test("scoreSpan: finite negative logprobs, greedy continuation beats a random span", async () => {
  const prefix = "Red";
  const greedy = await engine.generate({ messages: chat, assistantPrefix: prefix, maxTokens: 8, temperature: 0 });
  const own = await engine.scoreSpan({
    messages: chat,
    assistantPrefix: prefix,
    span: greedy.text,
    spanTokens: greedy.tokens.map((t) => t.id),
  });
  assert.equal(own.tokens, 8);
  assert.equal(own.perToken.length, 8);
  for (const lp of own.perToken) assert.ok(Number.isFinite(lp) && lp < 0, `logprob ${lp}`);
  const random = await engine.scoreSpan({ messages: chat, assistantPrefix: prefix, span: " purple elephants dance quietly tonight" });
  for (const lp of random.perToken) assert.ok(Number.isFinite(lp) && lp < 0);
  assert.ok(own.logprob / own.tokens > random.logprob / random.tokens, `${own.logprob / own.tokens} vs ${random.logprob / random.tokens}`);
  assert.ok(Math.abs(own.logprob - own.perToken.reduce((a, b) => a + b, 0)) < 1e-9);
  // the same span scores the same however the cache was left
  const again = await engine.scoreSpan({ messages: chat, assistantPrefix: prefix, span: greedy.text, spanTokens: greedy.tokens.map((t) => t.id) });
  assert.ok(Math.abs(again.logprob - own.logprob) < 1e-3);
  assert.deepEqual(await engine.scoreSpan({ messages: chat, span: "" }), { logprob: 0, tokens: 0, perToken: [] });
});

test("concurrent conversations: results equal sequential ones, more requests than sequences queue", async () => {
  const prompts = ["One", "Two", "Three", "Four", "Five"].map((w): ChatMessage[] => [{ role: "user", content: `Count: ${w}` }]);
  const sequential = [];
  for (const m of prompts) sequential.push((await engine.generate({ messages: m, maxTokens: 15, temperature: 0 })).tokens.map((t) => t.id));
  const parallel = await Promise.all(prompts.map((m) => engine.generate({ messages: m, maxTokens: 15, temperature: 0 })));
  assert.deepEqual(
    parallel.map((r) => r.tokens.map((t) => t.id)),
    sequential,
  );
});

test("thread default: 1 for tiny models, every core for real ones", () => {
  assert.equal(engine.threads, 1);
  assert.equal(defaultThreads(80 * 2 ** 20, 8), 1);
  assert.equal(defaultThreads(2 * 2 ** 30, 2), 2);
  assert.equal(defaultThreads(2 * 2 ** 30, 16), 16);
});

test("fingerprint is the model file's sha256", async () => {
  const { createHash } = await import("node:crypto");
  const { readFileSync } = await import("node:fs");
  const expected = createHash("sha256").update(readFileSync(engine.modelPath)).digest("hex");
  assert.equal(await engine.fingerprint(), expected);
  assert.equal(await engine.fingerprint(), expected);
});

test("chatFormat says whether the prompt format comes from the file's chat template or is node-llama-cpp's guess (a base model's file has none)", async () => {
  assert.equal(engine.chatFormat().fromFileTemplate, true);
  const { mkdtempSync, rmSync } = await import("node:fs");
  const os = await import("node:os");
  const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-no-template-"));
  try {
    const out = path.join(dir, "base.gguf");
    await writeFixtureModel({ out, shape: "tiny", seed: 5, chatTemplate: null });
    const base = await Engine.load({ model: out, gpu: false, sequences: 1, contextSize: 256, threads: 1 });
    try {
      const format = base.chatFormat();
      assert.equal(format.fromFileTemplate, false);
      assert.ok(format.wrapper.length > 0, "some format is still chosen");
    } finally {
      await base.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing model file gives a clear error naming the path", async () => {
  const missing = path.join("/nonexistent", "model.gguf");
  await assert.rejects(Engine.load({ model: missing, gpu: false }), (err: unknown) => {
    assert.ok(err instanceof ModelUnavailableError);
    assert.match(err.message, /model file not found: \/nonexistent\/model\.gguf/);
    assert.match(err.message, /fixture-model/);
    return true;
  });
  await assert.rejects(
    Engine.load({ model: "hf:nobody/none:Q4_K_M", gpu: false, download: false, modelsDir: path.join("/tmp", "steerbot-none") }),
    (err: unknown) => {
      assert.ok(err instanceof ModelUnavailableError);
      assert.match(err.message, /hf:nobody\/none:Q4_K_M/);
      return true;
    },
  );
});
