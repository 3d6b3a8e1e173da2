/**
 * The native LoRA trainer on the tiny fixture model, for real (no mocks): gradient check,
 * masking, learning a steer task with sft and dpo, no end-of-turn drift, loading the adapter in
 * node-llama-cpp, and all of it on a quantized (Q4_0) file of the model too.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import { buildTrainer, type TrainerBuild } from "../../src/training/build-trainer.ts";
import { evaluateSteers, type SteerEvaluationSummary } from "../../src/training/evaluate-steers.ts";
import { trainAdapter, type TrainResult } from "../../src/training/train-adapter.ts";
import type { AnchorInput } from "../../src/training/steer-tokenizer.ts";
import { runTrainer, TrainerError, type TrainerEvent, type TrainerGradEvent, type TrainerBackwardEvent } from "../../src/training/trainer-process.ts";
import { realModelOrSkip } from "../helpers/real-model.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { CHOSEN, colourSteers, writeSteers } from "./colour-task.ts";

/** The CPU's instruction-set flags: the small-product kernel (x86-kernels.cpp) has an AVX-512 and an AVX2 variant. */
const CPU_FLAGS = (() => {
  try {
    return /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim().split(/\s+/) ?? [];
  } catch {
    return [];
  }
})();
const HAS_AVX512F = CPU_FLAGS.includes("avx512f");
const HAS_AVX2_FMA = CPU_FLAGS.includes("avx2") && CPU_FLAGS.includes("fma");

let model: string;
let build: TrainerBuild;
let dir: string;

before(async () => {
  model = await tinyModelPath();
  build = await buildTrainer({ log: (l) => process.stderr.write(`[build] ${l}\n`) });
  dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-trainer-test-"));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A raw weighted-sequence dataset for grad-check: random ids, weights per position. */
function rawDataset(file: string, seqs: { tokens: number[]; weights: number[] }[]): string {
  writeFileSync(file, seqs.map((s) => JSON.stringify(s)).join("\n") + "\n");
  return file;
}

function seqTokens(seed: number, n: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return 200 + (x % 30000);
  });
}

async function gradCheck(data: string, extra: string[] = [], on = model): Promise<{ loss: number; grads: TrainerGradEvent[]; backward?: TrainerBackwardEvent }> {
  const events: TrainerEvent[] = await runTrainer({
    build,
    args: ["grad-check", "--model", on, "--data", data, "--targets", "q,k,v,o,gate,up,down", "--rank", "4", "--alpha", "8", "--threads", "1", "--seed", "7", ...extra],
  });
  const start = events.find((e) => e.type === "start") as { loss: number } | undefined;
  assert.ok(start, "grad-check printed no start line");
  return {
    loss: start.loss,
    grads: events.filter((e): e is TrainerGradEvent => e.type === "grad"),
    backward: events.find((e): e is TrainerBackwardEvent => e.type === "backward"),
  };
}

/** Every lora_a/lora_b of 7 projections x 2 layers: analytic = finite differences, twice the same. */
function assertGradients(grads: TrainerGradEvent[]): void {
  assert.equal(grads.length, 2 * 2 * 7, "one line per lora_a/lora_b of 7 projections x 2 layers");
  const table: string[] = [];
  for (const g of grads) {
    table.push(`${g.name.padEnd(32)} analytic ${g.analytic.toExponential(5)} numeric ${g.numeric.toExponential(5)} |g| ${g.norm.toExponential(2)}`);
    // the same gradient twice through the training path: a missing reset would double it
    assert.ok(Math.abs(g.analyticRepeat - g.analytic) <= 1e-6 + 1e-4 * Math.abs(g.analytic), `${g.name}: repeat ${g.analyticRepeat} vs ${g.analytic}`);
    assert.ok(g.maxAbsGrad > 0, `${g.name} gets no gradient`);
    const err = Math.abs(g.analytic - g.numeric);
    assert.ok(err <= 0.01 * Math.abs(g.numeric) + 1e-4, `${g.name}: analytic ${g.analytic} vs numeric ${g.numeric}`);
  }
  console.log(table.join("\n"));
}

/** Grad-check weights: prompt positions 0, a "chosen" stretch 1, a tail 0. */
const weights = (n: number) => Array.from({ length: n }, (_, i) => (i >= 12 && i < 20 ? 1 : 0));

describe("weighted loss gradients", () => {

  test("analytic LoRA gradients match finite differences on all 7 projections, accumulators reset", async () => {
    const data = rawDataset(path.join(dir, "gc.jsonl"), [
      { tokens: seqTokens(1, 24), weights: weights(24) },
      { tokens: seqTokens(2, 24), weights: weights(24) },
    ]);
    assertGradients((await gradCheck(data)).grads);
  });

  test("rows with a soft target (the retention term's cross-entropy to the base's distribution) have exact gradients too", async () => {
    const data = rawDataset(path.join(dir, "gc-soft.jsonl"), [
      { tokens: seqTokens(8, 24), weights: weights(24) },
      { tokens: seqTokens(9, 24), weights: weights(24) },
    ]);
    const hard = await gradCheck(data);
    // every other weighted row gets a random distribution over 16 tokens as its target
    const soft = await gradCheck(data, ["--kl-weight", "1", "--kl-top", "16"]);
    assert.notEqual(soft.loss, hard.loss, "the soft targets did not reach the loss");
    assertGradients(soft.grads);
  });

  test("gradients through frozen weights as products with transposed copies, and the adapter's own products in the small-product kernel, equal ggml's OUT_PROD and GEMM", async () => {
    const data = rawDataset(path.join(dir, "gc-op.jsonl"), [{ tokens: seqTokens(4, 24), weights: weights(24) }]);
    const fast = await gradCheck(data);
    const slow = await gradCheck(data, ["--out-prod-backward"]);
    // at least the last layer's 7 projections and the output head (layer 0's inputs mostly need no gradient)
    assert.ok((fast.backward?.matmuls ?? 0) >= 7 + 1, `rewritten products: ${fast.backward?.matmuls}`);
    assert.ok((fast.backward?.transposedBytes ?? 0) > 0);
    assert.equal(slow.backward?.matmuls, 0);
    // the adapter's products and their gradients (rank 4: partial vectors; 24 tokens: a partial tile)
    if (HAS_AVX512F || HAS_AVX2_FMA) assert.ok((fast.backward?.smallProducts ?? 0) >= 2 * 7 * 4, `small products: ${fast.backward?.smallProducts}`);
    assert.equal(slow.backward?.smallProducts, 0);
    const same = (label: string, f: TrainerGradEvent[], s: TrainerGradEvent[]) => {
      assert.equal(f.length, s.length);
      for (let i = 0; i < f.length; i++) {
        const [a, b] = [f[i]!, s[i]!];
        assert.equal(a.name, b.name);
        assert.ok(Math.abs(a.norm - b.norm) <= 1e-5 * (1 + b.norm), `${label} ${a.name}: |g| ${a.norm} vs out_prod ${b.norm}`);
        assert.ok(Math.abs(a.analytic - b.analytic) <= 1e-5 * (1 + Math.abs(b.analytic)), `${label} ${a.name}: ${a.analytic} vs out_prod ${b.analytic}`);
      }
    };
    same("auto", fast.grads, slow.grads);
    // the AVX2 variant (the widest on CPUs without AVX-512), forced where the CPU has both
    if (HAS_AVX2_FMA && HAS_AVX512F) {
      const avx2 = await gradCheck(data, ["--small-products", "avx2"]);
      assert.equal(avx2.backward?.smallProducts, fast.backward?.smallProducts);
      same("avx2", avx2.grads, slow.grads);
    }
    const off = await gradCheck(data, ["--small-products", "off"]);
    assert.equal(off.backward?.smallProducts, 0);
    same("off", off.grads, slow.grads);
  });

  test("bf16 frozen weights (training's default on CPUs with AVX512-BF16) give gradients close to f32", async () => {
    const data = rawDataset(path.join(dir, "gc-bf16.jsonl"), [{ tokens: seqTokens(5, 24), weights: weights(24) }]);
    const f32 = await gradCheck(data);
    const bf16 = await gradCheck(data, ["--compute-type", "bf16"]);
    assert.equal(f32.backward?.computeType, "f32");
    assert.equal(bf16.backward?.computeType, "bf16");
    assert.ok(Math.abs(bf16.loss - f32.loss) <= 0.01 * Math.abs(f32.loss), `loss ${bf16.loss} vs f32 ${f32.loss}`);
    for (let i = 0; i < f32.grads.length; i++) {
      const [a, b] = [f32.grads[i]!, bf16.grads[i]!];
      assert.ok(Math.abs(a.norm - b.norm) <= 0.02 * a.norm, `${a.name}: |g| f32 ${a.norm} vs bf16 ${b.norm}`);
    }
  });

  test("AMX tile products (training's default where the CPU has AMX-BF16) give gradients close to f32", async (t) => {
    const data = rawDataset(path.join(dir, "gc-amx.jsonl"), [{ tokens: seqTokens(6, 24), weights: weights(24) }]);
    let amx;
    try {
      amx = await gradCheck(data, ["--compute-type", "amx"]);
    } catch (e) {
      if (e instanceof TrainerError && /AMX-BF16/.test(e.message)) return t.skip("this CPU has no AMX-BF16 tile unit");
      throw e;
    }
    const f32 = await gradCheck(data);
    assert.equal(amx.backward?.computeType, "amx");
    // 2 layers x 7 projections forward and backward, and the output head
    assert.ok((amx.backward?.amxProducts ?? 0) >= 2 * 7 + 1, `AMX products: ${amx.backward?.amxProducts}`);
    assert.ok(Math.abs(amx.loss - f32.loss) <= 0.01 * Math.abs(f32.loss), `loss ${amx.loss} vs f32 ${f32.loss}`);
    for (let i = 0; i < f32.grads.length; i++) {
      const [a, b] = [f32.grads[i]!, amx.grads[i]!];
      assert.ok(Math.abs(a.norm - b.norm) <= 0.02 * a.norm, `${a.name}: |g| f32 ${a.norm} vs amx ${b.norm}`);
    }
  });

  test("upstream's cached K/V (--cached-kv) gives attn_k/attn_v no gradient: the trap our patch removes", async () => {
    const data = rawDataset(path.join(dir, "gc-kv.jsonl"), [{ tokens: seqTokens(1, 24), weights: weights(24) }]);
    const { grads } = await gradCheck(data, ["--cached-kv", "--targets", "k,v"]);
    assert.equal(grads.length, 2 * 2 * 2);
    for (const g of grads) {
      assert.equal(g.maxAbsGrad, 0, `${g.name} has a gradient through the cache`);
      assert.ok(Math.abs(g.numeric) > 1e-4, `${g.name}: the true gradient is not zero (${g.numeric})`);
    }
  });

  test("tokens under weight 0 change neither loss nor gradients; weight-0 rows add nothing when computed", async () => {
    const t1 = seqTokens(3, 24);
    const t2 = [...t1];
    for (let i = 20; i < 24; i++) t2[i] = 100 + i; // the tail after the last weighted token
    const few = ["--targets", "q,v,down"];
    const a = await gradCheck(rawDataset(path.join(dir, "m1.jsonl"), [{ tokens: t1, weights: weights(24) }]), few);
    const b = await gradCheck(rawDataset(path.join(dir, "m2.jsonl"), [{ tokens: t2, weights: weights(24) }]), few);
    // every position's logits computed, weight-0 ones multiplied by 0 in the loss
    const c = await gradCheck(rawDataset(path.join(dir, "m3.jsonl"), [{ tokens: t2, weights: weights(24) }]), [...few, "--all-outputs"]);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
    assert.ok(Math.abs(a.loss - c.loss) < 1e-5, `loss ${a.loss} vs all-outputs ${c.loss}`);
    for (let i = 0; i < a.grads.length; i++) {
      const [ga, gb, gc] = [a.grads[i]!, b.grads[i]!, c.grads[i]!];
      assert.equal(ga.name, gb.name);
      assert.ok(Math.abs(ga.norm - gb.norm) <= 1e-6 * (1 + ga.norm), `${ga.name}: |g| ${ga.norm} vs ${gb.norm}`);
      assert.ok(Math.abs(ga.norm - gc.norm) <= 1e-4 * (1 + ga.norm), `${ga.name}: |g| ${ga.norm} vs all-outputs ${gc.norm}`);
      assert.ok(Math.abs(ga.analytic - gb.analytic) <= 1e-6 * (1 + Math.abs(ga.analytic)));
    }
  });
});

describe("learning the colour task", () => {
  let trainFile: string;
  let heldFile: string;
  let base: SteerEvaluationSummary;
  let sftAdapter: string;
  let sft: SteerEvaluationSummary;

  const trainSteers = colourSteers(160, false);
  before(async () => {
    trainFile = path.join(dir, "train.jsonl");
    heldFile = path.join(dir, "held.jsonl");
    writeSteers(trainFile, trainSteers);
    writeSteers(heldFile, colourSteers(40, true));
    base = await evaluateSteers({ model, steers: heldFile, build, threads: 1 });
    console.log(`base: accuracy ${base.preferenceAccuracy.toFixed(3)} margin ${base.meanMargin.toFixed(3)} chosen ${base.chosenLogprob.toFixed(3)} end ${base.endLogprob.toFixed(3)}`);
  });

  const report = (name: string, r: TrainResult, e: SteerEvaluationSummary) => {
    const curve = r.epochLosses.map((x) => x.loss.toFixed(3)).join(" -> ");
    console.log(
      `${name} (${r.computeType}): ${r.steps} steps, ${r.seconds.toFixed(1)} s, ${Math.round(r.tokensPerSecond)} tok/s, epoch loss ${curve}; ` +
        `held-out accuracy ${base.preferenceAccuracy.toFixed(3)} -> ${e.preferenceAccuracy.toFixed(3)}, ` +
        `margin ${base.meanMargin.toFixed(3)} -> ${e.meanMargin.toFixed(3)}, chosen logp ${base.chosenLogprob.toFixed(3)} -> ${e.chosenLogprob.toFixed(3)}`,
    );
  };

  test("sft lifts held-out preference accuracy to >= 0.95", async () => {
    sftAdapter = path.join(dir, "sft.gguf");
    const r = await trainAdapter({ retention: 0, model, steers: trainFile, out: sftAdapter, objective: "sft", rank: 8, alpha: 16, epochs: 2, lr: 2e-3, threads: 1, build });
    sft = await evaluateSteers({ model, steers: heldFile, adapter: sftAdapter, build, threads: 1 });
    report("sft", r, sft);
    assert.equal(r.pairs, 160);
    // the default: the fastest way this CPU has
    assert.ok(r.computeType && ["amx", "bf16", "f32"].includes(r.computeType), `compute type ${r.computeType}`);
    assert.ok(r.epochLosses.at(-1)!.loss < r.epochLosses[0]!.loss, "loss did not fall");
    assert.ok(sft.preferenceAccuracy >= 0.95, `accuracy ${sft.preferenceAccuracy}`);
    assert.ok(sft.meanMargin > base.meanMargin);
  });

  test("a learned steer is not pushed further (learnedAt): under sft its probability ends near that bar, not near 1", async () => {
    const onTrain = await evaluateSteers({ model, steers: trainFile, build, threads: 1 });
    const runs: Record<string, { r: TrainResult; e: SteerEvaluationSummary }> = {};
    for (const learnedAt of [1, 0.5]) {
      const out = path.join(dir, `sft-learned-at-${learnedAt}.gguf`);
      const r = await trainAdapter({ retention: 0, model, steers: trainFile, out, objective: "sft", rank: 8, alpha: 16, epochs: 2, lr: 2e-3, threads: 1, build, learnedAt });
      runs[learnedAt] = { r, e: await evaluateSteers({ model, steers: trainFile, adapter: out, build, threads: 1 }) };
    }
    const [never, half] = [runs[1]!, runs[0.5]!];
    const held = half.r.lossCurve.reduce((n, p) => n + (p.held ?? 0), 0);
    console.log(
      `learnedAt: mean chosen p on the training steers: base ${Math.exp(onTrain.chosenLogprob).toFixed(3)}, ` +
        `learnedAt 1 ${Math.exp(never.e.chosenLogprob).toFixed(3)}, 0.5 ${Math.exp(half.e.chosenLogprob).toFixed(3)}; ${held} pair-steps held`,
    );
    assert.ok(never.r.lossCurve.every((p) => p.held === undefined), "learnedAt 1 holds nothing back");
    assert.ok(held > 0, "some pairs were held once learned");
    assert.ok(half.e.chosenLogprob > onTrain.chosenLogprob + 1, "the steers were still learned");
    assert.ok(half.e.chosenLogprob < never.e.chosenLogprob - 0.3, `held at ${half.e.chosenLogprob} vs ${never.e.chosenLogprob} pushed on`);
  });

  test("under dpo a steer the model already writes is held too: with a bar every steer meets, nothing trains", async () => {
    const out = path.join(dir, "dpo-all-learned.gguf");
    const r = await trainAdapter({ retention: 0, model, steers: trainFile, out, objective: "dpo", rank: 8, alpha: 16, epochs: 1, lr: 3e-3, beta: 0.5, threads: 1, build, learnedAt: 1e-12 });
    assert.equal(r.lossCurve.reduce((n, p) => n + (p.held ?? 0), 0), 160, "every pair held in its step");
    const e = await evaluateSteers({ model, steers: heldFile, adapter: out, build, threads: 1 });
    assert.ok(Math.abs(e.meanMargin - base.meanMargin) < 1e-3, `margin ${base.meanMargin} -> ${e.meanMargin}`);
  });

  test("after sft the end of turn right after the chosen span does not become likely", () => {
    assert.ok(sft, "needs the sft adapter");
    const maxEnd = Math.max(...sft.perSteer.map((x) => x.endLogprob));
    console.log(
      `end-of-turn logp after chosen: base ${base.endLogprob.toFixed(3)} (p ${Math.exp(base.endLogprob).toExponential(1)}), ` +
        `sft ${sft.endLogprob.toFixed(3)} (p ${Math.exp(sft.endLogprob).toExponential(1)}), max over steers ${maxEnd.toFixed(3)}; ` +
        `chosen logp moved ${(sft.chosenLogprob - base.chosenLogprob).toFixed(2)} nats`,
    );
    // no EOS is appended to chosen spans, so nothing pushes the end token: it may drift with the
    // other weights, but stays negligible (an appended EOS drives it towards 0 nats)
    assert.ok(sft.endLogprob <= base.endLogprob + 1.5, `end-of-turn logp rose from ${base.endLogprob} to ${sft.endLogprob}`);
    assert.ok(maxEnd < Math.log(1e-3), `end of turn became likely after some chosen span (logp ${maxEnd})`);
  });

  test("the retention term holds the base distribution on the prompts, on replay anchors and after the chosen spans, and still learns the steer", async () => {
    // replay anchors: the base model's own replies to other questions, as a bot stores the ones nobody steered
    const engine = await Engine.load({ model, threads: 1, sequences: 1, contextSize: 256, gpu: false });
    const anchors: AnchorInput[] = [];
    try {
      for (const topic of ["the weather", "a train", "breakfast", "the sea", "music", "a city", "a mountain", "books"]) {
        const context = [{ role: "user" as const, content: `Say something about ${topic}.` }];
        const reply = (await engine.generate({ messages: context, maxTokens: 24, temperature: 0 })).text;
        if (reply.trim()) anchors.push({ context, reply });
      }
    } finally {
      await engine.dispose();
    }
    assert.ok(anchors.length >= 4, `the base model wrote ${anchors.length} replies`);
    // the same run with the term at a weight too small to matter (it still measures the KL) and at 4
    const runs: Record<string, { r: TrainResult; e: SteerEvaluationSummary }> = {};
    for (const [name, retention] of [["without", 1e-9], ["with", 4]] as const) {
      const out = path.join(dir, `retention-${name}.gguf`);
      // what each reply went on with after " blue" (the model's words once it resumed)
      const continuations = trainSteers.map((_, i) => (i % 2 ? ", and the sky above it is clear." : ". Nothing else there is painted."));
      const r = await trainAdapter({ model, steers: trainSteers, continuations, out, objective: "sft", rank: 8, alpha: 16, epochs: 1, lr: 2e-3, threads: 1, build, retention, retentionPositions: 8, anchors });
      assert.equal(r.anchors, anchors.length, "every anchor reached the trainer");
      runs[name] = { r, e: await evaluateSteers({ model, steers: heldFile, adapter: out, build, threads: 1 }) };
    }
    const lastMean = (r: TrainResult, key: "kl" | "anchorKl" | "continuationKl") => {
      const tail = r.lossCurve.slice(-10).map((p) => p[key]);
      assert.ok(tail.every((k) => typeof k === "number" && k >= 0), `the trainer reports ${key} on every step: ${tail}`);
      return (tail as number[]).reduce((a, b) => a + b, 0) / tail.length;
    };
    const [off, on] = [lastMean(runs.without!.r, "kl"), lastMean(runs.with!.r, "kl")];
    const [anchorOff, anchorOn] = [lastMean(runs.without!.r, "anchorKl"), lastMean(runs.with!.r, "anchorKl")];
    const [afterOff, afterOn] = [lastMean(runs.without!.r, "continuationKl"), lastMean(runs.with!.r, "continuationKl")];
    console.log(
      `retention: KL(base || adapter) over the last 10 steps ${off.toFixed(4)} without, ${on.toFixed(4)} with; on the anchors' replies alone ` +
        `${anchorOff.toFixed(4)} / ${anchorOn.toFixed(4)}; after the chosen spans ${afterOff.toFixed(4)} / ${afterOn.toFixed(4)}; ` +
        `held-out accuracy ${runs.without!.e.preferenceAccuracy.toFixed(3)} / ${runs.with!.e.preferenceAccuracy.toFixed(3)}`,
    );
    assert.ok(runs.without!.r.lossCurve[0]!.kl! < 1e-3, `before any step the adapter is the base (KL ${runs.without!.r.lossCurve[0]!.kl})`);
    assert.ok(on < off / 2, `the term did not hold the base distribution: KL ${on} with vs ${off} without`);
    assert.ok(anchorOn < anchorOff / 2, `the term did not hold the base on the anchors: KL ${anchorOn} with vs ${anchorOff} without`);
    assert.ok(afterOn < afterOff / 2, `the term did not hold the base after the chosen spans: KL ${afterOn} with vs ${afterOff} without`);
    assert.ok(runs.with!.e.preferenceAccuracy >= 0.95, `accuracy with retention ${runs.with!.e.preferenceAccuracy}`);
    // a run of few steps (8 steers: 2 steps) still holds every anchor, not one per step
    const few = await trainAdapter({ model, steers: trainSteers.slice(0, 8), out: path.join(dir, "retention-few.gguf"), objective: "sft", rank: 8, alpha: 16, epochs: 1, lr: 2e-3, threads: 1, build, retention: 4, retentionPositions: 8, anchors });
    assert.equal(few.steps, 2);
    assert.equal(few.anchorsUsed, anchors.length, "every anchor held in a two-step run");
  });

  test("anchors are for training only: the evaluator refuses a data file with one", async () => {
    const file = path.join(dir, "eval-anchor.jsonl");
    writeFileSync(file, JSON.stringify({ prompt: [1, 2, 3], chosen: [4], rejected: [5] }) + "\n" + JSON.stringify({ anchor: [1, 2, 3, 4], from: 2 }) + "\n");
    await assert.rejects(runTrainer({ args: ["eval", "--model", model, "--data", file], build }), (e: unknown) => e instanceof TrainerError && /line 2: anchors are for training only/.test(e.message));
  });

  test("dpo lifts held-out preference accuracy to >= 0.95", async () => {
    const out = path.join(dir, "dpo.gguf");
    const r = await trainAdapter({ retention: 0, model, steers: trainFile, out, objective: "dpo", rank: 8, alpha: 16, epochs: 1, lr: 3e-3, beta: 0.5, threads: 1, computeType: "f32", build });
    assert.equal(r.computeType, "f32", "the requested compute type reached the trainer");
    const e = await evaluateSteers({ model, steers: heldFile, adapter: out, build, threads: 1 });
    report("dpo", r, e);
    assert.ok(r.epochLosses.at(-1)!.loss < Math.log(2), "dpo loss did not fall below log 2");
    assert.ok(e.preferenceAccuracy >= 0.95, `accuracy ${e.preferenceAccuracy}`);
  });

  test("the adapter loads in node-llama-cpp, matches the trainer's scores and shifts generation to the chosen span", async () => {
    assert.ok(sftAdapter, "needs the sft adapter");
    const held = colourSteers(8, true);
    const plain = await Engine.load({ model, threads: 1, sequences: 1, contextSize: 256, gpu: false });
    const tuned = await Engine.load({ model, threads: 1, sequences: 1, contextSize: 256, gpu: false, lora: sftAdapter });
    try {
      let basePicks = 0;
      let tunedPicks = 0;
      for (const s of held) {
        const g0 = await plain.generate({ messages: s.context, assistantPrefix: s.prefix, maxTokens: 1, temperature: 0 });
        const g1 = await tuned.generate({ messages: s.context, assistantPrefix: s.prefix, maxTokens: 1, temperature: 0 });
        if (g0.text === CHOSEN) basePicks++;
        if (g1.text === CHOSEN) tunedPicks++;
      }
      console.log(`greedy next token is "${CHOSEN}": base ${basePicks}/${held.length}, adapter ${tunedPicks}/${held.length}`);
      assert.ok(tunedPicks >= held.length - 1, `adapter picked "${CHOSEN}" ${tunedPicks}/${held.length}`);
      assert.ok(tunedPicks > basePicks);

      // node-llama-cpp's own log-probs agree with the trainer's eval on the same adapter
      const mine = await evaluateSteers({ model, steers: held.slice(0, 4), adapter: sftAdapter, build, threads: 1 });
      for (let i = 0; i < 4; i++) {
        const s = held[i]!;
        const theirs = await tuned.scoreSpan({ messages: s.context, assistantPrefix: s.prefix, span: s.chosen });
        const ours = mine.perSteer[i]!.chosenMeanLogprob * theirs.tokens;
        assert.ok(Math.abs(theirs.logprob - ours) < 2e-3 * (1 + Math.abs(ours)), `steer ${i}: node-llama-cpp ${theirs.logprob} vs trainer ${ours}`);
      }
    } finally {
      await tuned.dispose();
      await plain.dispose();
    }
  });
});

describe("a quantized base model (the file the bot serves)", () => {
  let q4: string;
  before(async () => {
    q4 = path.join(dir, "tiny-q4_0.gguf");
    await writeFixtureModel({ out: q4, vocab: "qwen2", shape: "tiny", seed: 1, type: "q4_0" });
  });

  test("gradients on a Q4_0 file match finite differences (its weights are dequantized once)", async () => {
    const w = (n: number) => Array.from({ length: n }, (_, i) => (i >= 12 && i < 20 ? 1 : 0));
    const data = rawDataset(path.join(dir, "gc-q4.jsonl"), [{ tokens: seqTokens(5, 24), weights: w(24) }]);
    assertGradients((await gradCheck(data, [], q4)).grads);
  });

  test("AMX on a quantized file with tied embeddings: the same loss and gradients as f32 (the dequantized embedding rows stay in memory)", async (t) => {
    // SmolLM2's shape of the bug: the tied output matrix, dequantized to F32 and packed for the
    // tile unit, had its F32 pages dropped — but the token embedding lookup reads them, so every
    // input embedding became zero (training loss 11.3 instead of 4.95 on the real model)
    const tied = path.join(dir, "tiny-q4_0-tied.gguf");
    await writeFixtureModel({ out: tied, vocab: "qwen2", shape: "tiny", seed: 3, type: "q4_0", tiedEmbeddings: true });
    const data = rawDataset(path.join(dir, "gc-amx-tied.jsonl"), [{ tokens: seqTokens(8, 24), weights: Array.from({ length: 24 }, (_, i) => (i >= 12 && i < 20 ? 1 : 0)) }]);
    let amx;
    try {
      amx = await gradCheck(data, ["--compute-type", "amx"], tied);
    } catch (e) {
      if (e instanceof TrainerError && /AMX-BF16/.test(e.message)) return t.skip("this CPU has no AMX-BF16 tile unit");
      throw e;
    }
    const f32 = await gradCheck(data, ["--compute-type", "f32"], tied);
    assert.equal(amx.backward?.computeType, "amx");
    assert.ok(Math.abs(amx.loss - f32.loss) <= 0.01 * Math.abs(f32.loss), `loss ${amx.loss} vs f32 ${f32.loss}`);
    for (let i = 0; i < f32.grads.length; i++) {
      const [a, b] = [f32.grads[i]!, amx.grads[i]!];
      assert.ok(Math.abs(a.norm - b.norm) <= 0.02 * a.norm, `${a.name}: |g| f32 ${a.norm} vs amx ${b.norm}`);
    }
  });

  test("sft and dpo on the Q4_0 file lift held-out accuracy on that same file to >= 0.95; the adapter loads on it", async () => {
    const trainFile = path.join(dir, "q4-train.jsonl");
    const heldFile = path.join(dir, "q4-held.jsonl");
    writeSteers(trainFile, colourSteers(160, false));
    writeSteers(heldFile, colourSteers(40, true));
    const before = await evaluateSteers({ model: q4, steers: heldFile, build, threads: 1 });
    for (const objective of ["sft", "dpo"] as const) {
      const out = path.join(dir, `q4-${objective}.gguf`);
      const r = await trainAdapter({ retention: 0, model: q4, steers: trainFile, out, objective, rank: 8, alpha: 16, epochs: objective === "sft" ? 2 : 1, lr: objective === "sft" ? 2e-3 : 3e-3, beta: 0.5, threads: 1, build,
        // dequantized straight to bf16 for sft, to f32 for dpo
        computeType: objective === "sft" ? "bf16" : "f32" });
      assert.equal(r.computeType, objective === "sft" ? "bf16" : "f32");
      const e = await evaluateSteers({ model: q4, steers: heldFile, adapter: out, build, threads: 1 });
      console.log(`q4_0 ${objective} (${r.computeType}): ${r.steps} steps, ${Math.round(r.tokensPerSecond)} tok/s, loss ${r.lossCurve[0]?.loss.toFixed(3)} -> ${r.lossCurve.at(-1)?.loss.toFixed(3)}; held-out accuracy ${before.preferenceAccuracy.toFixed(3)} -> ${e.preferenceAccuracy.toFixed(3)}`);
      assert.ok(e.preferenceAccuracy >= 0.95, `${objective}: accuracy ${e.preferenceAccuracy} (base ${before.preferenceAccuracy})`);
    }
    const tuned = await Engine.load({ model: q4, threads: 1, sequences: 1, contextSize: 256, gpu: false, lora: path.join(dir, "q4-sft.gguf") });
    try {
      let picks = 0;
      const held = colourSteers(8, true);
      for (const s of held) if ((await tuned.generate({ messages: s.context, assistantPrefix: s.prefix, maxTokens: 1, temperature: 0 })).text === CHOSEN) picks++;
      assert.ok(picks >= held.length - 1, `the adapter on the Q4_0 file picked "${CHOSEN}" ${picks}/${held.length}`);
    } finally {
      await tuned.dispose();
    }
  });
});

describe("errors", () => {
  test("an empty steers file and a missing model are refused with clear messages", async () => {
    const empty = path.join(dir, "empty.jsonl");
    writeFileSync(empty, "\n");
    await assert.rejects(trainAdapter({ retention: 0, model, steers: empty, out: path.join(dir, "x.gguf"), build }), /no steers \(empty file\)/);
    const steers = path.join(dir, "few.jsonl");
    writeSteers(steers, colourSteers(2, false));
    await assert.rejects(
      runTrainer({ build, args: ["eval", "--model", path.join(dir, "missing.gguf"), "--data", steers] }),
      (e: unknown) => e instanceof TrainerError && e.code === "bad_model",
    );
  });

  test("Gemma 3 (GEGLU feed-forward, sliding-window attention) trains from its Q4_K_M file: exact gradients, the steers are learned", async (t) => {
    // ggml has no backward pass for GEGLU: gelu-backward.cpp gives it one; without it this model was refused
    const gemma = await realModelOrSkip("gemma3-270m");
    if (gemma.skip) return t.skip(gemma.skip);
    const data = rawDataset(path.join(dir, "gc-gemma.jsonl"), [{ tokens: seqTokens(3, 24), weights: weights(24) }]);
    // a local (sliding-window) layer and the last, global one
    assertGradients((await gradCheck(data, ["--check-layers", "0,17", "--eps", "1e-3"], gemma.path!)).grads);
    // the shipped objective and learning rate on the colour task; the adapter serves on the same file
    const steers = path.join(dir, "gemma.jsonl");
    const held = path.join(dir, "gemma-held.jsonl");
    writeSteers(steers, colourSteers(12, false));
    const heldSteers = colourSteers(8, true);
    writeSteers(held, heldSteers);
    const out = path.join(dir, "gemma.gguf");
    const before = await evaluateSteers({ model: gemma.path!, steers: held, build, threads: 1 });
    const r = await trainAdapter({ retention: 0, model: gemma.path!, steers, out, build, threads: 1, epochs: 2 });
    const after = await evaluateSteers({ model: gemma.path!, steers: held, adapter: out, build, threads: 1 });
    console.log(`gemma3-270m sft+dpo: ${r.steps} steps, ${Math.round(r.tokensPerSecond)} tok/s, loss ${r.lossCurve[0]?.loss.toFixed(3)} -> ${r.lossCurve.at(-1)?.loss.toFixed(3)}; held-out accuracy ${before.preferenceAccuracy.toFixed(3)} -> ${after.preferenceAccuracy.toFixed(3)}`);
    assert.ok(r.lossCurve.at(-1)!.loss < r.lossCurve[0]!.loss * 0.5, `loss ${r.lossCurve[0]?.loss} -> ${r.lossCurve.at(-1)?.loss}`);
    assert.ok(after.preferenceAccuracy >= 0.9 && after.preferenceAccuracy > before.preferenceAccuracy, `held-out accuracy ${before.preferenceAccuracy} -> ${after.preferenceAccuracy}`);
    const tuned = await Engine.load({ model: gemma.path!, threads: 1, sequences: 1, contextSize: 256, gpu: false, lora: out });
    try {
      let picks = 0;
      for (const s of heldSteers) if ((await tuned.generate({ messages: s.context, assistantPrefix: s.prefix, maxTokens: 1, temperature: 0 })).text === CHOSEN) picks++;
      assert.ok(picks >= 7, `the adapter on Gemma's Q4_K_M file picked "${CHOSEN}" ${picks}/8`);
    } finally {
      await tuned.dispose();
    }
  });

  test("dpo without rejected spans is refused", async () => {
    const f = path.join(dir, "norej.jsonl");
    writeSteers(f, colourSteers(4, false).map((s) => ({ ...s, rejected: "" })));
    await assert.rejects(trainAdapter({ retention: 0, model, steers: f, out: path.join(dir, "y.gguf"), objective: "dpo", build }), /needs steers with a rejected span/);
  });
});
