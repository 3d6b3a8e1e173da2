/**
 * Hot-swap benchmark: time from "adapter ready" (file written and registered) to the first
 * reply token served with it, and process memory after 1 and after 30 swaps.
 *
 * Run: `npx tsx bench/swap.ts [--shape tiny|qwen2-0.5b] [--swaps 30]`
 *
 * Uses a fixture model (generated into the cache when missing) and a distinct random rank-8
 * LoRA per swap. The baseline printed beside the swap time is a plain model load in the same
 * run: most swaps only create a context on the loaded model, every few a fresh model is
 * loaded to free the adapters piled up on the old one.
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/config.ts";
import { createApp } from "../src/app.ts";
import { Engine } from "../src/engine/engine.ts";
import type { FixtureShapeName } from "../src/engine/fixture/fixture-model.ts";
import { fileSha256 } from "../src/engine/model-file.ts";
import { createLogger } from "../src/log.ts";
import { Store } from "../src/store/store.ts";
import { RecordingSurface } from "../test/helpers/recording-surface.ts";
import { writeRandomLora } from "../test/helpers/random-lora.ts";
import { benchModel } from "./bench-model.ts";

const { values } = parseArgs({ options: { shape: { type: "string", default: "tiny" }, swaps: { type: "string", default: "30" } } });
const shape = values.shape as FixtureShapeName;
const model = await benchModel("qwen2", shape);

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-swap-"));
const { config, secrets } = loadConfig({ env: {}, overrides: { model: { path: model, gpu: false }, generation: { max_tokens: 8, temperature: 0, system_prompt: "" }, stream: { edit_interval_ms: 0 }, store: { data_dir: dir }, ask: { per_user_per_minute: 100_000 } } });
const store = await Store.open({ dataDir: "memory://" });
const app = await createApp({ config, secrets, log: createLogger("silent"), store });
const base = await app.engine.fingerprint();

const t0 = performance.now();
await (await Engine.load({ model, gpu: false, threads: app.engine.threads })).dispose();
const plainLoadMs = performance.now() - t0;

const rssMiB = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return Math.round(process.memoryUsage().rss / 2 ** 20);
};

const swapTimes: number[] = [];
let rssAfterFirst = 0;
const swaps = Number(values.swaps);
for (let i = 1; i <= swaps; i++) {
  const file = path.join(dir, `a${i}.gguf`);
  writeRandomLora(model, file, i);
  const version = `bench-${i}`;
  await store.training.addAdapter({ version, filePath: file, sha256: await fileSha256(file), baseFingerprint: base, trainingRunId: null, state: "candidate", metrics: {} });
  // "Adapter ready": written and registered. Activate, then serve the first reply with it.
  const ready = performance.now();
  await store.training.activate(base, version);
  await app.activator.swapTo(version);
  let firstToken = 0;
  const surface = new RecordingSurface();
  const asking = app.core.ask({ thread: { platform: "bench", chatId: "c", threadId: `t${i}` }, actor: { platform: "bench", userId: "u" }, text: "Hello", sourceMessageId: `q${i}`, surface });
  while (!surface.order.length) await new Promise((r) => setTimeout(r, 1));
  firstToken = performance.now();
  await asking;
  swapTimes.push(firstToken - ready);
  if (i === 1) rssAfterFirst = rssMiB();
}
const rssAfterAll = rssMiB();
const med = [...swapTimes].sort((a, b) => a - b)[Math.floor(swapTimes.length / 2)]!;
console.log(`model ${shape} (${path.basename(model)}), threads ${app.engine.threads}`);
console.log(`plain model load (baseline): ${Math.round(plainLoadMs)} ms`);
console.log(`adapter ready → first reply token: median ${Math.round(med)} ms, max ${Math.round(Math.max(...swapTimes))} ms over ${swaps} swaps (target < 2000 ms); ratio to a plain load ${(med / plainLoadMs).toFixed(2)}`);
console.log(`RSS after 1 swap: ${rssAfterFirst} MiB; after ${swaps}: ${rssAfterAll} MiB (${(((rssAfterAll - rssAfterFirst) / rssAfterFirst) * 100).toFixed(1)}%)`);
await app.close();
await store.close();
