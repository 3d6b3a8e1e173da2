/**
 * Training benchmark: our LoRA trainer (`steer-train`) versus llama.cpp's own full finetune
 * (`llama-finetune`, built from the same source; its only change is the graph node budget,
 * LLAMA_GRAPH_NODES_SCALE=4, without which it aborts on this shape), same fixture model,
 * same window length, same threads, one after the other in one run.
 *
 * Run: `npx tsx bench/train.ts [--shape qwen2-0.5b|tiny] [--ctx 256] [--windows 8] [--threads N]
 *       [--rank 16] [--targets q,k,v,o,gate,up,down] [--compute-type auto|f32|bf16] [--small-products auto|avx512|avx2|off] [--skip-finetune]
 *       [--skip-peft] [--peft-dtype f32|bf16]`
 *
 * Reports tokens/s of both (training loop only, model load excluded) over the whole run and in
 * the steady state (after the first window, which also pays one-time setup: page faults, our
 * bf16/transposed weight copies), their ratios, peak resident memory of both processes
 * (/usr/bin/time -v), and the fraction of the CPU's peak FLOP/s each reaches: LoRA does ≈ 4·P
 * FLOPs per token (forward 2P + input gradients 2P; the frozen weights get no weight gradient),
 * full finetune ≈ 6·P, P = the parameters in matrix products (all but the token embedding
 * table, a row lookup, unless the output head is tied to it; the 0.5B shape: 494M of 630M). Two peaks: the nominal one, threads × clock ×
 * FLOPs/cycle (64 with AVX-512, 32 with AVX2+FMA), and the measured one (`steer-train peak`:
 * independent FMA chains, and BF16 dot products where the CPU has them), which is what virtual
 * or shared cores really deliver. Our trainer's default compute type is the fastest the CPU has
 * (amx: AMX-BF16 tiles; bf16: AVX512-BF16; f32); the slower ones run too, so all are on record.
 * Each is given against the measured peak of the unit it runs on (amx: the AMX tile unit).
 * A second baseline, PyTorch + PEFT LoRA (`bench/peft/peft_lora.py`, shared with the GPU device
 * kit in bench/device/): the same shape with random weights from a transformers config, the same
 * rank, targets, window, tokens per step (one window) and threads, f32 on the CPU (torch's bf16
 * ran 24x slower than its f32 on an AVX2 CPU without BF16 instructions). It runs from a benchmark-only venv,
 * `bench/.venv` (git-ignored, never CI), installed from PyPI on first use (torch with its CUDA
 * wheels is several GB); where that cannot be done, or with `--skip-peft`, it says why and skips.
 * With the CUDA build (an NVIDIA GPU that node-llama-cpp's CUDA binaries can use) both run on the GPU, and each
 * line adds the fraction of the card's FP32 peak (6·P·tokens/s; known cards by name via
 * nvidia-smi, else --gpu-peak-tflops). Not yet run on a GPU.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { FIXTURE_SHAPES, type FixtureShapeName } from "../src/engine/fixture/fixture-model.ts";
import { readGgufHeader } from "../src/engine/gguf/gguf-reader.ts";
import { cpuCores } from "../src/engine/engine.ts";
import { buildTrainer } from "../src/training/build-trainer.ts";
import type { ComputeType } from "../src/training/trainer-process.ts";
import { benchModel } from "./bench-model.ts";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen2-0.5b" },
    vocab: { type: "string", default: "qwen2" },
    ctx: { type: "string", default: "256" },
    windows: { type: "string", default: "8" },
    threads: { type: "string" },
    rank: { type: "string", default: "16" },
    targets: { type: "string", default: "q,k,v,o,gate,up,down" },
    "compute-type": { type: "string", default: "auto" },
    // the trainer's kernel for the adapter's small products (native/trainer/README.md): `off` times upstream's ops
    "small-products": { type: "string", default: "auto" },
    "skip-finetune": { type: "boolean", default: false },
    "skip-peft": { type: "boolean", default: false },
    "peft-dtype": { type: "string" },
    "gpu-peak-tflops": { type: "string" },
  },
});
const shape = values.shape as FixtureShapeName;
const nCtx = Number(values.ctx);
const nWindows = Number(values.windows);
const threads = Number(values.threads ?? cpuCores());

const modelPath = await benchModel(values.vocab!, shape);
const header = readGgufHeader(modelPath);
const count = (t: { dims: number[] }) => t.dims.reduce((x, y) => x * y, 1);
const params = header.tensors.reduce((a, t) => a + count(t), 0);
// FLOPs come from the matrices of products: 2-D weights, without the token embedding table
// (a row lookup) unless the output head is tied to it; norms and biases are vectors
const hasOutput = header.tensors.some((t) => t.name === "output.weight");
const mmParams = header.tensors
  .filter((t) => t.dims.length === 2 && (t.name !== "token_embd.weight" || !hasOutput))
  .reduce((a, t) => a + count(t), 0);

const tBuild = performance.now();
const build = await buildTrainer({ finetune: !values["skip-finetune"], log: (l) => process.stderr.write(`[build] ${l}\n`) });
const buildSeconds = (performance.now() - tBuild) / 1000;

// ---- CPU peak -----------------------------------------------------------------------------
const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "";
const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1] ?? "0");
const flopsPerCycle = /\bavx512f\b/.test(flags) ? 64 : /\bfma\b/.test(flags) && /\bavx2\b/.test(flags) ? 32 : 16;
const peakFlops = threads * mhz * 1e6 * flopsPerCycle;

// ---- GPU peak (CUDA build): FP32 CUDA-core TFLOP/s of known cards, or --gpu-peak-tflops ------
const onGpu = build.variant === "cuda";
async function gpuPeak(): Promise<{ name: string; flops: number } | undefined> {
  if (values["gpu-peak-tflops"]) return { name: "given", flops: Number(values["gpu-peak-tflops"]) * 1e12 };
  let name: string;
  try {
    const { stdout } = await promisify(execFile)("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"]);
    name = stdout.split("\n")[0]!.trim();
  } catch {
    return undefined;
  }
  const fp32: [RegExp, number][] = [
    [/H200/, 67], [/H100.*PCIe/i, 51], [/H100/, 67], [/A100/, 19.5], [/L40S/, 91.6], [/L40\b/, 90.5], [/\bL4\b/, 30.3],
    [/RTX 4090/, 82.6], [/RTX 3090/, 35.6], [/A10\b/, 31.2], [/T4\b/, 8.1],
  ];
  const hit = fp32.find(([re]) => re.test(name));
  return hit ? { name, flops: hit[1] * 1e12 } : { name, flops: 0 };
}
const gpu = onGpu ? await gpuPeak() : undefined;
if (onGpu) {
  process.stdout.write(
    gpu?.flops
      ? `GPU ${gpu.name}: FP32 peak ${(gpu.flops / 1e12).toFixed(1)} TFLOP/s (fractions below: 6·P·tokens/s of it)\n`
      : `GPU ${gpu?.name ?? "?"}: peak unknown, pass --gpu-peak-tflops\n`,
  );
}
const ofGpu = (tps: number) => (gpu?.flops ? `; GPU: ${((100 * 6 * mmParams * tps) / gpu.flops).toFixed(1)}% of the card's FP32 peak` : "");

interface MeasuredPeak {
  f32GflopsPerSecond: number | null;
  bf16GflopsPerSecond: number | null;
  amxBf16GflopsPerSecond: number | null;
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

interface PeftResult {
  dtype: string;
  threads: number;
  tokensPerSecond: number;
  steadyTokensPerSecond: number;
  peakMemoryMiB: number;
  trainableParameters: number;
  loss: [number, number];
  versions: { torch: string; peft: string; transformers: string };
}

const VENV = path.join(path.dirname(new URL(import.meta.url).pathname), ".venv");
const VENV_PY = path.join(VENV, "bin", "python");

/** bench/.venv with torch, transformers and peft: made from PyPI once; a reason when it cannot be. */
async function peftPython(): Promise<{ python: string } | { skipped: string }> {
  const probe = () => promisify(execFile)(VENV_PY, ["-c", "import torch, transformers, peft"], { timeout: 300_000 }).then(() => true, () => false);
  if (existsSync(VENV_PY) && (await probe())) return { python: VENV_PY };
  process.stdout.write(`installing torch, transformers and peft into ${VENV} (benchmark only; several GB from PyPI, once) ...\n`);
  const t = performance.now();
  try {
    if (!existsSync(VENV_PY)) await promisify(execFile)("python3", ["-m", "venv", VENV]);
    await promisify(execFile)(VENV_PY, ["-m", "pip", "install", "-q", "torch", "transformers", "peft", "numpy", "pyyaml"], { timeout: 3_600_000, maxBuffer: 1 << 26 });
  } catch (e) {
    const msg = (e as { stderr?: string; message: string }).stderr?.trim().split("\n").slice(-3).join(" ") || (e as Error).message;
    return { skipped: `cannot install torch + peft into ${VENV}: ${msg.slice(0, 500)}` };
  }
  if (!(await probe())) return { skipped: `torch + peft installed into ${VENV} but do not import` };
  process.stdout.write(`  installed in ${((performance.now() - t) / 1000).toFixed(0)} s\n`);
  return { python: VENV_PY };
}

/** bench/peft/peft_lora.py on this run's shape: same rank, targets, window, tokens per step, threads. */
async function runPeft(nThreads: number, gpuRun: boolean): Promise<PeftResult | { skipped: string }> {
  const py = await peftPython();
  if ("skipped" in py) return py;
  const s = FIXTURE_SHAPES[shape];
  const embd = header.tensors.find((t) => t.name === "token_embd.weight");
  const nVocab = embd?.dims[1] ?? 0;
  const dtype = values["peft-dtype"] ?? (gpuRun ? "bf16" : "f32");
  const args = [
    path.join(path.dirname(new URL(import.meta.url).pathname), "peft", "peft_lora.py"),
    "--arch", s.arch, "--layers", String(s.nLayer), "--embd", String(s.nEmbd), "--heads", String(s.nHead), "--kv-heads", String(s.nHeadKv),
    "--ff", String(s.nFf), "--vocab", String(nVocab), "--rope-theta", String(s.ropeFreqBase), "--rms-eps", String(s.rmsEps),
    "--rank", values.rank!, "--alpha", String(2 * Number(values.rank)), "--targets", values.targets!, "--seq-len", String(nCtx),
    "--steps", String(nWindows), "--batch", "1", "--threads", String(nThreads), "--device", gpuRun ? "cuda" : "cpu", "--dtype", dtype,
  ];
  const r = await timed(py.python, args);
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  const ev = line ? (JSON.parse(line) as { type: string; message?: string } & PeftResult) : undefined;
  if (r.code !== 0 || ev?.type !== "peft") return { skipped: `peft_lora.py failed (exit ${r.code}): ${ev?.message ?? r.stderr.slice(-800)}` };
  return ev;
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
    `model ${path.basename(modelPath)}: ${(params / 1e6).toFixed(0)}M parameters (${(mmParams / 1e6).toFixed(0)}M in matrix products), ${(statSync(modelPath).size / 2 ** 30).toFixed(2)} GiB; ` +
      `${nWindows} windows x ${nCtx} tokens; ${threads} threads; CPU peak ${(peakFlops / 1e9).toFixed(0)} GFLOP/s ` +
      `(${threads} x ${mhz.toFixed(0)} MHz x ${flopsPerCycle} FLOP/cycle); trainer build ${buildSeconds.toFixed(1)} s (${build.buildSeconds ? "built now" : "cached"}); ` +
      `load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}\n`,
  );

  // ---- measured peak -------------------------------------------------------------------------
  const peakRun = await timed(build.binary, ["peak", "--threads", String(threads)]);
  const measured = JSON.parse(peakRun.stdout.split("\n").find((l) => l.includes('"type":"peak"'))!) as MeasuredPeak;
  const gf = (x: number | null) => (x ? `${x.toFixed(0)}` : "n/a");
  process.stdout.write(
    `measured peak on ${threads} threads: f32 FMA ${gf(measured.f32GflopsPerSecond)} GFLOP/s, bf16 dot product ${gf(measured.bf16GflopsPerSecond)} GFLOP/s, ` +
      `AMX bf16 tiles ${gf(measured.amxBf16GflopsPerSecond)} GFLOP/s\n`,
  );
  const ofPeak = (flops: number, type: ComputeType) => {
    const m = type === "amx" ? measured.amxBf16GflopsPerSecond : type === "bf16" ? measured.bf16GflopsPerSecond : measured.f32GflopsPerSecond;
    return `${((100 * flops) / peakFlops).toFixed(1)}% of nominal peak, ${m ? ((100 * flops) / (m * 1e9)).toFixed(1) : "n/a"}% of measured ${type} peak`;
  };

  // ---- ours ----------------------------------------------------------------------------------
  interface Ours {
    computeType: ComputeType;
    tokensPerSecond: number;
    steadyTokensPerSecond: number;
    peakRssMiB: number;
  }
  const runOurs = async (computeType: string): Promise<Ours> => {
    const r = await timed(build.binary, [
      "train", "--model", modelPath, "--data", dataFile, "--out", path.join(work, "lora.gguf"),
      "--objective", "sft", "--rank", values.rank!, "--alpha", String(2 * Number(values.rank)), "--targets", values.targets!,
      "--epochs", "1", "--grad-accum", "1", "--lr", "1e-4", "--threads", String(threads), "--backend-dir", build.ggmlLibDir,
      "--compute-type", computeType, "--small-products", values["small-products"]!,
    ]);
    if (r.code !== 0) throw new Error(`steer-train failed:\n${r.stdout}\n${r.stderr.slice(-3000)}`);
    const events = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = events.find((e) => e.type === "done") as { tokensPerSecond: number };
    const start = events.find((e) => e.type === "start") as { trainableParameters: number };
    const backward = events.find((e) => e.type === "backward") as { computeType: ComputeType };
    const progress = events.filter((e) => e.type === "progress") as { step: number; loss: number; tokensPerSecond: number }[];
    // cumulative rate after each step (one window a step): elapsed = tokens / rate
    const tokensPerStep = nCtx - 1;
    const elapsed = (p: { step: number; tokensPerSecond: number }) => (p.step * tokensPerStep) / p.tokensPerSecond;
    const first = progress[0]!;
    const last = progress.at(-1)!;
    const steady = progress.length > 1 ? ((last.step - first.step) * tokensPerStep) / (elapsed(last) - elapsed(first)) : done.tokensPerSecond;
    const flops = 4 * mmParams;
    process.stdout.write(
      `steer-train LoRA r${values.rank} ${backward.computeType} (${values.targets}, ${(start.trainableParameters / 1e6).toFixed(2)}M trainable): ` +
        `${done.tokensPerSecond.toFixed(1)} tokens/s whole run, ${steady.toFixed(1)} steady; peak RSS ${r.peakRssMiB.toFixed(0)} MiB; ` +
        `steady ${((flops * steady) / 1e9).toFixed(1)} GFLOP/s = ${ofPeak(flops * steady, backward.computeType)}; ` +
        `loss ${progress[0]?.loss.toFixed(3)} -> ${progress.at(-1)?.loss.toFixed(3)}${ofGpu(steady)}\n`,
    );
    return { computeType: backward.computeType, tokensPerSecond: done.tokensPerSecond, steadyTokensPerSecond: steady, peakRssMiB: r.peakRssMiB };
  };
  const lora = await runOurs(values["compute-type"]!);
  // the slower compute types too, so every figure is on record
  const others: Ours[] = [];
  if (lora.computeType === "amx") others.push(await runOurs("bf16"));
  if (lora.computeType !== "f32") others.push(await runOurs("f32"));

  // ---- llama-finetune ------------------------------------------------------------------------
  if (!values["skip-finetune"] && build.finetuneBinary) {
    const ft = await timed(
      build.finetuneBinary,
      ["-m", modelPath, "-f", textFile, "-c", String(nCtx), "-b", String(nCtx), "-ub", String(nCtx), "-t", String(threads), "-tb", String(threads),
        "-ngl", onGpu ? "999" : "0", "--epochs", "1", "-val-split", "0", "-o", path.join(work, "finetuned.gguf")],
      { LLAMA_GRAPH_NODES_SCALE: "4" },
      build.ggmlLibDir, // ggml_backend_load_all() looks for the CPU backends in the working directory
    );
    if (ft.code !== 0) throw new Error(`llama-finetune failed:\n${ft.stderr.slice(-3000)}`);
    // progress lines: "train: [...] data=0000007/0000007 loss=... t=00:01:02 ETA=..."
    const trainLines = ft.stderr.split(/[\r\n]/).filter((l) => l.startsWith("train:"));
    const at = (line: string) => {
      const m = /data=(\d+)\/(\d+).*?t=(\d+):(\d+):(\d+)/.exec(line);
      if (!m) throw new Error(`cannot parse llama-finetune progress: ${line}`);
      return { done: Number(m[1]), total: Number(m[2]), seconds: Number(m[3]) * 3600 + Number(m[4]) * 60 + Number(m[5]) };
    };
    const last = at(trainLines.at(-1) ?? "");
    const first = at(trainLines.find((l) => /data=0*1\//.test(l)) ?? trainLines[0] ?? "");
    // llama.cpp pads the context (to 256): the windows are n_ctx tokens, not necessarily --ctx
    const ftCtx = Number(/llama_context: n_ctx\s*=\s*(\d+)/.exec(ft.stderr)?.[1] ?? nCtx);
    if (ftCtx !== nCtx) process.stdout.write(`note: llama-finetune padded its windows to ${ftCtx} tokens (ours: ${nCtx}); use --ctx ${ftCtx} for equal windows\n`);
    const ftTps = (last.total * ftCtx) / Math.max(1, last.seconds);
    // its clock has 1 s steps: over several windows of ~15 s that is a few per cent at most
    const ftSteady = last.done > first.done ? ((last.done - first.done) * ftCtx) / Math.max(1, last.seconds - first.seconds) : ftTps;
    const ftFlops = 6 * mmParams;
    process.stdout.write(
      `llama-finetune full f32 (same source, graph budget x4): ${ftTps.toFixed(1)} tokens/s whole run (${last.total} windows x ${ftCtx} in ${last.seconds} s), ` +
        `${ftSteady.toFixed(1)} steady; peak RSS ${ft.peakRssMiB.toFixed(0)} MiB; steady ${((ftFlops * ftSteady) / 1e9).toFixed(1)} GFLOP/s = ${ofPeak(ftFlops * ftSteady, "f32")}${ofGpu(ftSteady)}\n`,
    );
    const ratio = (o: { tokensPerSecond: number; steadyTokensPerSecond: number; peakRssMiB: number; computeType: string }) =>
      `LoRA ${o.computeType} / full: ${(o.tokensPerSecond / ftTps).toFixed(2)}x tokens/s whole run, ${(o.steadyTokensPerSecond / ftSteady).toFixed(2)}x steady, ` +
      `${(o.peakRssMiB / ft.peakRssMiB).toFixed(2)}x peak memory\n`;
    for (const o of [lora, ...others]) process.stdout.write(ratio(o));
  }

  // ---- PyTorch + PEFT LoRA (second baseline) ---------------------------------------------------
  if (!values["skip-peft"]) {
    const peft = await runPeft(threads, onGpu);
    if ("skipped" in peft) {
      process.stdout.write(`PyTorch + PEFT: skipped (${peft.skipped})\n`);
    } else {
      const flops = 4 * mmParams;
      process.stdout.write(
        `PyTorch ${peft.versions.torch} + PEFT ${peft.versions.peft} LoRA r${values.rank} ${peft.dtype} (${values.targets}, ${(peft.trainableParameters / 1e6).toFixed(2)}M trainable, ` +
          `${peft.threads} threads): ${peft.tokensPerSecond.toFixed(1)} tokens/s whole run, ${peft.steadyTokensPerSecond.toFixed(1)} steady; peak memory ${peft.peakMemoryMiB.toFixed(0)} MiB; ` +
          `steady ${((flops * peft.steadyTokensPerSecond) / 1e9).toFixed(1)} GFLOP/s = ${ofPeak(flops * peft.steadyTokensPerSecond, peft.dtype === "bf16" ? "bf16" : "f32")}; ` +
          `loss ${peft.loss[0].toFixed(3)} -> ${peft.loss[1].toFixed(3)}${ofGpu(peft.steadyTokensPerSecond)}\n`,
      );
      for (const o of [lora, ...others]) {
        process.stdout.write(
          `LoRA ${o.computeType} / PEFT ${peft.dtype}: ${(o.tokensPerSecond / peft.tokensPerSecond).toFixed(2)}x tokens/s whole run, ` +
            `${(o.steadyTokensPerSecond / peft.steadyTokensPerSecond).toFixed(2)}x steady, ${(o.peakRssMiB / peft.peakMemoryMiB).toFixed(2)}x peak memory\n`,
        );
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
