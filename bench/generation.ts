/**
 * Generation benchmark: llama.cpp's own `llama-bench` versus raw node-llama-cpp versus our Engine
 * versus the whole conversation core (the playground's path: SteeringCore.ask streaming into a
 * display, no terminal), same model, same thread count, one run.
 *
 * `llama-bench` is built from the llama.cpp source node-llama-cpp bundles and linked against
 * node-llama-cpp's own prebuilt libllama/ggml (`buildTrainer({ llamaBench: true })`, cached), so
 * the comparison is of the layers above identical kernels. Its figure is `tg`: decode rate
 * of single tokens after an empty prompt, repeated `--rounds` times.
 *
 * Run: `npx tsx bench/generation.ts [--shape qwen2-0.5b|tiny] [--tokens 64] [--rounds 3] [--threads 1,2] [--sequences N]`
 *
 * Generates the fixture model into `cacheDir("models")` (`~/.cache/steerbot/models`) when missing (F32 qwen2-0.5b ≈ 2.6 GB,
 * about a minute). For every thread count it alternates raw and engine runs (so background
 * load hits both alike) and reports the median decode rate after the first token, plus the
 * engine/raw ratio (target ≥ 0.97). Prompt processing is excluded: it is identical work.
 * It also reports tokens per CPU-second of the process, which stays comparable when other
 * work shares the machine (wall-clock rates then swing by 10× between runs).
 */
import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { Engine, cpuCores } from "../src/engine/engine.ts";
import { loadConfig } from "../src/config/config.ts";
import { SteeringCore } from "../src/core/steering-core.ts";
import type { TextGenerator } from "../src/core/text-generator.ts";
import { createLogger } from "../src/log.ts";
import { Store } from "../src/store/store.ts";
import { RecordingSurface } from "../test/helpers/recording-surface.ts";
import type { FixtureShapeName } from "../src/engine/fixture/fixture-model.ts";
import { buildTrainer } from "../src/training/build-trainer.ts";
import { benchModel } from "./bench-model.ts";
import { execFile } from "node:child_process";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen2-0.5b" },
    vocab: { type: "string", default: "qwen2" },
    tokens: { type: "string", default: "64" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string" },
    sequences: { type: "string" },
  },
});
const shape = values.shape as FixtureShapeName;
const nTokens = Number(values.tokens);
const rounds = Number(values.rounds);
const threadCounts = values.threads
  ? values.threads.split(",").map(Number)
  : [...new Set([1, cpuCores()])];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => x.toFixed(1);

const modelPath = await benchModel(values.vocab!, shape);
process.stdout.write(
  `model ${path.basename(modelPath)} (${(statSync(modelPath).size / 2 ** 30).toFixed(2)} GiB), ${nTokens} tokens/run, ${rounds} rounds, ` +
    `${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}\n`,
);

// llama.cpp's CLI baseline (built once, cached with the trainer)
const tools = await buildTrainer({ llamaBench: true, log: (l) => process.stderr.write(`[build] ${l}\n`) });
async function llamaBench(threads: number): Promise<number> {
  const { stdout } = await promisify(execFile)(
    tools.llamaBenchBinary!,
    ["-m", modelPath, "-p", "0", "-n", String(nTokens), "-t", String(threads), "-r", String(rounds), "-ngl", "0", "-o", "json"],
    { cwd: tools.ggmlLibDir, maxBuffer: 1 << 24 }, // ggml_backend_load_all() looks in the working directory
  );
  const results = JSON.parse(stdout) as { n_gen: number; avg_ts: number }[];
  const tg = results.find((r) => r.n_gen > 0);
  if (!tg) throw new Error(`llama-bench printed no generation result: ${stdout.slice(0, 500)}`);
  return tg.avg_ts;
}

const messages = [{ role: "user" as const, content: "Write a short paragraph about rivers and the sea." }];

// Raw node-llama-cpp: one Llama, one model, one context per thread count, evaluate() loop.
const llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error, build: "never" });
let t0 = performance.now();
const rawModel = await llama.loadModel({ modelPath });
const rawLoadMs = performance.now() - t0;

interface Row {
  threads: number;
  llamaBench: number;
  raw: number[];
  engine: number[];
  core: number[];
  /** tokens per CPU-second of this process: robust to other load on the machine at 1 thread */
  rawCpu: number[];
  engineCpu: number[];
  engineLoadMs: number;
}
interface Rate {
  wall: number;
  cpu: number;
}
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const rows: Row[] = [];
const store = await Store.open({ dataDir: "memory://" });
let askNo = 0;

for (const threads of threadCounts) {
  llama.maxThreads = threads;
  t0 = performance.now();
  const engine = await Engine.load({
    model: modelPath,
    threads,
    gpu: false,
    contextSize: 2048,
    sequences: values.sequences ? Number(values.sequences) : undefined,
    logLevel: LlamaLogLevel.error,
  });
  const engineLoadMs = performance.now() - t0;
  // the raw context gets the engine's shape (sequences, per-sequence size), so the ratio
  // measures the engine's own per-token work; run with --sequences 1 to see the shape's cost
  const rawCtx = await rawModel.createContext({ contextSize: engine.contextSize, threads, sequences: engine.sequences });
  const rawSeq = rawCtx.getSequence();
  const prompt = engine.renderContext(messages, "").tokens as Token[];
  const row: Row = { threads, llamaBench: 0, raw: [], engine: [], core: [], rawCpu: [], engineCpu: [], engineLoadMs };

  // The core path: the engine wrapped only to timestamp each token after the core handled it.
  let coreN = 0;
  let coreFirst = 0;
  let coreLast = 0;
  const timed: TextGenerator = {
    modelPath: engine.modelPath,
    contextSize: engine.contextSize,
    fingerprint: () => engine.fingerprint(),
    tokenize: (t) => engine.tokenize(t),
    detokenize: (ids) => engine.detokenize(ids),
    renderContext: (m, p) => engine.renderContext(m, p),
    generate: (o) =>
      engine.generate({
        ...o,
        onToken: (t) => {
          const r = o.onToken?.(t);
          coreLast = performance.now();
          if (coreN++ === 0) coreFirst = coreLast;
          return r;
        },
      }),
  };
  const { config } = loadConfig({
    env: {},
    overrides: { generation: { max_tokens: nTokens, temperature: 0, system_prompt: "" }, stream: { edit_interval_ms: 1000 }, permissions: { default_trust: "approved" } },
  });
  const core = new SteeringCore({ store, engine: timed, config, log: createLogger("silent") });
  const coreRun = async (): Promise<number> => {
    coreN = 0;
    const n = ++askNo;
    await core.ask({ thread: { platform: "bench", chatId: "c", threadId: `t${n}` }, actor: { platform: "bench", userId: "u" }, text: messages[0]!.content, sourceMessageId: `q${n}`, surface: new RecordingSurface() });
    return ((coreN - 1) * 1000) / (coreLast - coreFirst);
  };

  const rawRun = async (): Promise<Rate> => {
    await rawSeq.clearHistory();
    let n = 0;
    let first = 0;
    let cpu0 = 0;
    for await (const _ of rawSeq.evaluate(prompt, { temperature: 0 })) {
      if (n === 0) {
        first = performance.now();
        cpu0 = cpuSeconds();
      }
      if (++n >= nTokens) break;
    }
    return { wall: ((n - 1) * 1000) / (performance.now() - first), cpu: (n - 1) / (cpuSeconds() - cpu0) };
  };
  const engineRun = async (): Promise<Rate> => {
    let n = 0;
    let first = 0;
    let last = 0;
    let cpu0 = 0;
    let cpu1 = 0;
    await engine.generate({
      messages,
      maxTokens: nTokens,
      temperature: 0,
      onToken: () => {
        last = performance.now();
        cpu1 = cpuSeconds();
        if (n++ === 0) {
          first = last;
          cpu0 = cpu1;
        }
      },
    });
    return { wall: ((n - 1) * 1000) / (last - first), cpu: (n - 1) / (cpu1 - cpu0) };
  };

  await rawRun(); // warm-up (page in the weights)
  await engineRun();
  await coreRun();
  for (let r = 0; r < rounds; r++) {
    // alternate the order so drifting background load does not favour one side
    let raw: Rate;
    let eng: Rate;
    if (r % 2 === 0) {
      raw = await rawRun();
      eng = await engineRun();
    } else {
      eng = await engineRun();
      raw = await rawRun();
    }
    row.raw.push(raw.wall);
    row.rawCpu.push(raw.cpu);
    row.engine.push(eng.wall);
    row.engineCpu.push(eng.cpu);
    row.core.push(await coreRun());
  }
  // after our runs, with our engine and the raw context still loaded (the same memory pressure)
  row.llamaBench = await llamaBench(threads);
  rows.push(row);
  process.stdout.write(
    `threads ${threads}: llama-bench ${fmt(row.llamaBench)} | raw ${row.raw.map(fmt).join(" ")} | engine ${row.engine.map(fmt).join(" ")} tokens/s ` +
      `| core ${row.core.map(fmt).join(" ")} → median raw ${fmt(median(row.raw))}, engine ${fmt(median(row.engine))}, ratio ${(median(row.engine) / median(row.raw)).toFixed(3)}, core/raw ${(median(row.core) / median(row.raw)).toFixed(3)} ` +
      `(engine load ${(engineLoadMs / 1000).toFixed(2)} s, ${engine.sequences} sequences × ${engine.contextSize} tokens); per CPU-second raw ${fmt(median(row.rawCpu))}, engine ${fmt(median(row.engineCpu))}, ` +
      `ratio ${(median(row.engineCpu) / median(row.rawCpu)).toFixed(3)}\n`,
  );
  await engine.dispose();
  await rawCtx.dispose();
}
await rawModel.dispose();
await store.close();

process.stdout.write(`\nraw model load ${(rawLoadMs / 1000).toFixed(2)} s\n`);
process.stdout.write(
  "threads | llama-bench tok/s | raw tok/s | raw/llama-bench | engine tok/s | engine/raw | core tok/s | core/raw | core/llama-bench | raw tok/cpu-s | engine tok/cpu-s | engine/raw (cpu)\n",
);
for (const r of rows) {
  process.stdout.write(
    `${String(r.threads).padStart(7)} | ${fmt(r.llamaBench).padStart(17)} | ${fmt(median(r.raw)).padStart(9)} | ${(median(r.raw) / r.llamaBench).toFixed(3).padStart(15)} | ${fmt(median(r.engine)).padStart(12)} | ${(median(r.engine) / median(r.raw)).toFixed(3).padStart(10)} | ` +
      `${fmt(median(r.core)).padStart(10)} | ${(median(r.core) / median(r.raw)).toFixed(3).padStart(8)} | ${(median(r.core) / r.llamaBench).toFixed(3).padStart(16)} | ` +
      `${fmt(median(r.rawCpu)).padStart(13)} | ${fmt(median(r.engineCpu)).padStart(16)} | ${(median(r.engineCpu) / median(r.rawCpu)).toFixed(3)}\n`,
  );
}
process.stdout.write(
  `load average now ${os.loadavg().map((x) => x.toFixed(1)).join(" ")} (wall-clock rates are only meaningful on an otherwise idle machine)\n`,
);
