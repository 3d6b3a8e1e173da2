/**
 * Training benchmark: our LoRA trainer (`steer-train`) versus llama.cpp's own full finetune
 * (`llama-finetune`, built from the same source; its only change is the graph node budget,
 * LLAMA_GRAPH_NODES_SCALE=4, without which it aborts on this shape), same fixture model,
 * same window length, same threads, one after the other in one run.
 *
 * Run: `npx tsx bench/train.ts [--shape qwen2-0.5b|tiny] [--ctx 256] [--windows 4] [--threads N]
 *       [--rank 16] [--targets q,k,v,o,gate,up,down] [--skip-finetune]`
 *
 * Reports tokens/s of both (training loop only, model load excluded), their ratio, peak
 * resident memory of both processes (/usr/bin/time -v), and the fraction of the CPU's peak
 * FP32 FLOP/s each reaches: LoRA does ≈ 4·P FLOPs per token (forward 2P + input gradients 2P;
 * the frozen weights get no weight gradient), full finetune ≈ 6·P, P = model parameters.
 * The peak is threads × clock × FLOPs/cycle (64 with AVX-512, 32 with AVX2+FMA).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { writeFixtureModel, type FixtureShapeName } from "../src/engine/fixture/fixture-model.ts";
import { readGgufHeader } from "../src/engine/gguf/gguf-reader.ts";
import { cacheDir } from "../src/engine/llama-source.ts";
import { cpuCores } from "../src/engine/engine.ts";
import { buildTrainer } from "../src/training/build-trainer.ts";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen2-0.5b" },
    vocab: { type: "string", default: "qwen2" },
    ctx: { type: "string", default: "256" },
    windows: { type: "string", default: "4" },
    threads: { type: "string" },
    rank: { type: "string", default: "16" },
    targets: { type: "string", default: "q,k,v,o,gate,up,down" },
    "skip-finetune": { type: "boolean", default: false },
  },
});
const shape = values.shape as FixtureShapeName;
const nCtx = Number(values.ctx);
const nWindows = Number(values.windows);
const threads = Number(values.threads ?? cpuCores());

const modelPath = path.join(cacheDir("models"), `bench-${values.vocab}-${shape}-s1-f32.gguf`);
if (!existsSync(modelPath)) {
  const t = performance.now();
  process.stdout.write(`writing fixture model ${modelPath} ...\n`);
  await writeFixtureModel({ out: modelPath, vocab: values.vocab, shape, seed: 1, type: "f32" });
  process.stdout.write(`  done in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}
const header = readGgufHeader(modelPath);
const params = header.tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);

const tBuild = performance.now();
const build = await buildTrainer({ finetune: !values["skip-finetune"], log: (l) => process.stderr.write(`[build] ${l}\n`) });
const buildSeconds = (performance.now() - tBuild) / 1000;

// ---- CPU peak -----------------------------------------------------------------------------
const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "";
const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1] ?? "0");
const flopsPerCycle = /\bavx512f\b/.test(flags) ? 64 : /\bfma\b/.test(flags) && /\bavx2\b/.test(flags) ? 32 : 16;
const peakFlops = threads * mhz * 1e6 * flopsPerCycle;

interface Measured {
  tokensPerSecond: number;
  peakRssMiB: number;
  wallSeconds: number;
  output: string;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<{ code: number; stdout: string; stderr: string; peakRssMiB: number; wallSeconds: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn("/usr/bin/time", ["-v", cmd, ...args], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? "0");
      resolve({ code: code ?? -1, stdout, stderr, peakRssMiB: kb / 1024, wallSeconds: (performance.now() - t) / 1000 });
    });
  });
}

const work = mkdtempSync(path.join(os.tmpdir(), "steerbot-bench-train-"));
try {
  // ---- data: the same number of windows of nCtx tokens for both ----------------------------
  const words = ["river", "stone", "light", "garden", "window", "morning", "paper", "silver", "market", "letter", "mountain", "harbor"];
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  // llama-finetune cuts windows of nCtx tokens with a stride of nCtx/2: about nWindows of them
  const text = Array.from({ length: Math.round((nCtx * (nWindows + 1)) / 2) + 8 }, () => words[Math.floor(rand() * words.length)]).join(" ");
  const textFile = path.join(work, "text.txt");
  writeFileSync(textFile, text);
  const dataFile = path.join(work, "windows.jsonl");
  const lines: string[] = [];
  for (let w = 0; w < nWindows; w++) {
    const tokens = Array.from({ length: nCtx }, () => 1000 + Math.floor(rand() * 20000));
    lines.push(JSON.stringify({ tokens, weights: tokens.map((_, i) => (i === 0 ? 0 : 1)) }));
  }
  writeFileSync(dataFile, lines.join("\n") + "\n");

  process.stdout.write(
    `model ${path.basename(modelPath)}: ${(params / 1e6).toFixed(0)}M parameters, ${(statSync(modelPath).size / 2 ** 30).toFixed(2)} GiB; ` +
      `${nWindows} windows x ${nCtx} tokens; ${threads} threads; CPU peak ${(peakFlops / 1e9).toFixed(0)} GFLOP/s ` +
      `(${threads} x ${mhz.toFixed(0)} MHz x ${flopsPerCycle} FLOP/cycle); trainer build ${buildSeconds.toFixed(1)} s (${build.buildSeconds ? "built now" : "cached"}); ` +
      `load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}\n`,
  );

  // ---- ours ----------------------------------------------------------------------------------
  const ours = await timed(build.binary, [
    "train", "--model", modelPath, "--data", dataFile, "--out", path.join(work, "lora.gguf"),
    "--objective", "sft", "--rank", values.rank!, "--alpha", String(2 * Number(values.rank)), "--targets", values.targets!,
    "--epochs", "1", "--grad-accum", "1", "--lr", "1e-4", "--threads", String(threads), "--backend-dir", build.ggmlLibDir,
  ]);
  if (ours.code !== 0) throw new Error(`steer-train failed:\n${ours.stdout}\n${ours.stderr.slice(-3000)}`);
  const doneLine = ours.stdout.split("\n").filter((l) => l.includes('"type":"done"')).at(-1)!;
  const startLine = ours.stdout.split("\n").find((l) => l.includes('"type":"start"'))!;
  const done = JSON.parse(doneLine) as { tokensPerSecond: number; seconds: number };
  const start = JSON.parse(startLine) as { trainableParameters: number };
  const losses = ours.stdout.split("\n").filter((l) => l.includes('"type":"progress"')).map((l) => (JSON.parse(l) as { loss: number }).loss);
  const lora: Measured = { tokensPerSecond: done.tokensPerSecond, peakRssMiB: ours.peakRssMiB, wallSeconds: ours.wallSeconds, output: "" };
  const loraFlops = 4 * params * lora.tokensPerSecond;
  process.stdout.write(
    `steer-train LoRA r${values.rank} (${values.targets}, ${(start.trainableParameters / 1e6).toFixed(2)}M trainable): ` +
      `${lora.tokensPerSecond.toFixed(1)} tokens/s, peak RSS ${lora.peakRssMiB.toFixed(0)} MiB, ` +
      `${(loraFlops / 1e9).toFixed(1)} GFLOP/s = ${((100 * loraFlops) / peakFlops).toFixed(1)}% of peak; ` +
      `loss ${losses[0]?.toFixed(3)} -> ${losses.at(-1)?.toFixed(3)}\n`,
  );

  // ---- llama-finetune ------------------------------------------------------------------------
  if (!values["skip-finetune"] && build.finetuneBinary) {
    const ft = await timed(
      build.finetuneBinary,
      ["-m", modelPath, "-f", textFile, "-c", String(nCtx), "-b", String(nCtx), "-ub", String(nCtx), "-t", String(threads), "-tb", String(threads),
        "-ngl", "0", "--epochs", "1", "-val-split", "0", "-o", path.join(work, "finetuned.gguf")],
      { LLAMA_GRAPH_NODES_SCALE: "4" },
      build.ggmlLibDir, // ggml_backend_load_all() looks for the CPU backends in the working directory
    );
    if (ft.code !== 0) throw new Error(`llama-finetune failed:\n${ft.stderr.slice(-3000)}`);
    // progress lines: "train: [...] data=0000007/0000007 loss=... t=00:01:02 ETA=..."
    const trainLines = ft.stderr.split(/[\r\n]/).filter((l) => l.startsWith("train:"));
    const last = trainLines.at(-1) ?? "";
    const m = /data=(\d+)\/(\d+).*?t=(\d+):(\d+):(\d+)/.exec(last);
    if (!m) throw new Error(`cannot parse llama-finetune progress: ${last}`);
    const ndata = Number(m[2]);
    const secs = Number(m[3]) * 3600 + Number(m[4]) * 60 + Number(m[5]);
    // llama.cpp pads the context (to 256): the windows are n_ctx tokens, not necessarily --ctx
    const ftCtx = Number(/llama_context: n_ctx\s*=\s*(\d+)/.exec(ft.stderr)?.[1] ?? nCtx);
    if (ftCtx !== nCtx) process.stdout.write(`note: llama-finetune padded its windows to ${ftCtx} tokens (ours: ${nCtx}); use --ctx ${ftCtx} for equal windows\n`);
    const ftTps = (ndata * ftCtx) / Math.max(1, secs);
    const ftFlops = 6 * params * ftTps;
    process.stdout.write(
      `llama-finetune full (same source, graph budget x4): ${ftTps.toFixed(1)} tokens/s (${ndata} windows x ${ftCtx} in ${secs} s), ` +
        `peak RSS ${ft.peakRssMiB.toFixed(0)} MiB, ${(ftFlops / 1e9).toFixed(1)} GFLOP/s = ${((100 * ftFlops) / peakFlops).toFixed(1)}% of peak\n`,
    );
    process.stdout.write(
      `ratio LoRA/full: ${(lora.tokensPerSecond / ftTps).toFixed(2)}x tokens/s, ${(lora.peakRssMiB / ft.peakRssMiB).toFixed(2)}x peak memory\n`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
