/**
 * Prepares the GPU device kit (`bench/device/kit/`, git-ignored, carried to the device).
 *
 * Owns: everything the device run needs that only this side can make, because the device has
 * no Node.js, no node_modules and no network:
 * - `llama-src.tar.gz`: the bundled llama.cpp release node-llama-cpp ships, with our
 *   `native/trainer/patches/*.diff` applied (exactly the patched copy `build-trainer.ts` builds
 *   from) and `native/trainer/llama-steer/` compiled into upstream's own `llama` target, so one
 *   upstream CMake build gives ggml (CUDA or CPU), our libllama, `llama-common` and
 *   `llama-finetune`; the trainer itself builds from `native/trainer/`, which travels as part of
 *   the working tree. Only the parts a build or the model writer reads go in (no tests, tools,
 *   docs, only the qwen2 vocabulary file).
 * - `data/`: pre-tokenized data (the device cannot tokenize without node-llama-cpp): the colour
 *   task's training and held-out steers tokenized by the product's own `prepareDataset` on the
 *   qwen2 vocabulary, and weighted random sequences for the gradient check.
 * - `manifest.json`: the release, the source hash, the learning task's trainer arguments (the
 *   same as test/training/trainer.test.ts) and the product's training defaults.
 *
 * Run: `npx tsx bench/device/prepare.ts` (seconds once the llama.cpp checkout is cached).
 */
import { execFile } from "node:child_process";
import { appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";
import { llamaRelease, llamaSourceDir, projectRoot } from "../../src/engine/llama-source.ts";
import { prepareDataset } from "../../src/training/steer-dataset.ts";
import { trainerSourceHash } from "../../src/training/build-trainer.ts";
import { TRAINING_DEFAULTS } from "../../src/training/training-options.ts";
import { colourSteers } from "../../test/training/colour-task.ts";

const run = promisify(execFile);
const KIT = path.join(projectRoot, "bench", "device", "kit");
const TRAINER_DIR = path.join(projectRoot, "native", "trainer");

/** Top-level parts of the llama.cpp tree that the upstream CMake build and gguf-py read. */
const PARTS = ["CMakeLists.txt", "CMakePresets.json", "LICENSE", "cmake", "common", "examples", "pocs", "ggml", "gguf-py", "include", "src", "vendor", "licenses"];

async function patchedSourceTarball(): Promise<{ file: string; bytes: number }> {
  const upstream = await llamaSourceDir();
  const stage = path.join(os.tmpdir(), `steerbot-kit-${process.pid}`);
  const tree = path.join(stage, "llama.cpp");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const part of PARTS) {
    const from = path.join(upstream, part);
    if (existsSync(from)) cpSync(from, path.join(tree, part), { recursive: true });
  }
  mkdirSync(path.join(tree, "models"), { recursive: true });
  copyFileSync(path.join(upstream, "models", "ggml-vocab-qwen2.gguf"), path.join(tree, "models", "ggml-vocab-qwen2.gguf"));
  const patchDir = path.join(TRAINER_DIR, "patches");
  for (const p of readdirSync(patchDir).filter((f) => f.endsWith(".diff")).sort()) {
    await run("patch", ["-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-d", tree, "-i", path.join(patchDir, p)]);
  }
  // our libllama additions into upstream's own target (the product's CMake does the same with
  // its own libllama target): the patched hooks call into them
  for (const f of readdirSync(path.join(TRAINER_DIR, "llama-steer"))) copyFileSync(path.join(TRAINER_DIR, "llama-steer", f), path.join(tree, "src", f));
  appendFileSync(path.join(tree, "src", "CMakeLists.txt"), "\n# steerbot kit: native/trainer/llama-steer/ compiled into libllama\ntarget_sources(llama PRIVATE llama-steer.cpp)\n");
  mkdirSync(KIT, { recursive: true });
  const file = path.join(KIT, "llama-src.tar.gz");
  await run("tar", ["-czf", file, "-C", stage, "llama.cpp"]);
  rmSync(stage, { recursive: true, force: true });
  return { file, bytes: statSync(file).size };
}

/** Weighted random sequences (prompt weight 0, a weighted stretch, a tail), as the trainer test. */
function gradCheckData(file: string): void {
  let x = 1;
  const seq = (n: number) =>
    Array.from({ length: n }, () => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return 200 + (x % 30000);
    });
  const lines = [1, 2].map(() => {
    const tokens = seq(24);
    return JSON.stringify({ tokens, weights: tokens.map((_, i) => (i >= 12 && i < 20 ? 1 : 0)) });
  });
  writeFileSync(file, lines.join("\n") + "\n");
}

const t0 = performance.now();
rmSync(KIT, { recursive: true, force: true });
mkdirSync(path.join(KIT, "data"), { recursive: true });
const rel = await llamaRelease();
const tar = await patchedSourceTarball();

// tokenize with the qwen2 tokenizer of a tiny fixture model (the device writes its own model
// with the same vocabulary; only the token ids travel)
const tok = path.join(os.tmpdir(), `steerbot-kit-tok-${process.pid}.gguf`);
await writeFixtureModel({ out: tok, vocab: "qwen2", shape: "tiny", seed: 1, type: "f32" });
try {
  for (const [name, steers] of [["colour-train", colourSteers(160, false)], ["colour-held", colourSteers(40, true)]] as const) {
    const d = await prepareDataset({ model: tok, steers });
    copyFileSync(d.file, path.join(KIT, "data", `${name}.jsonl`));
    d.dispose();
  }
} finally {
  rmSync(tok, { force: true });
}
gradCheckData(path.join(KIT, "data", "grad-check.jsonl"));

const manifest = {
  release: rel.tag,
  commit: rel.commit,
  trainerSourceHash: trainerSourceHash(),
  tarball: { file: path.basename(tar.file), bytes: tar.bytes },
  // test/training/trainer.test.ts's "sft lifts held-out preference accuracy to >= 0.95"
  learn: { objective: "sft", rank: 8, alpha: 16, epochs: 2, lr: 2e-3, minHeldOutAccuracy: 0.95 },
  // test/training/trainer.test.ts's gradient check
  gradCheck: { targets: "q,k,v,o,gate,up,down", rank: 4, alpha: 8, seed: 7, relTol: 0.01, absTol: 1e-4 },
  defaults: TRAINING_DEFAULTS,
  preparedAt: new Date().toISOString(),
};
writeFileSync(path.join(KIT, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
const size = (d: string): number => readdirSync(d, { withFileTypes: true }).reduce((a, e) => a + (e.isDirectory() ? size(path.join(d, e.name)) : statSync(path.join(d, e.name)).size), 0);
console.log(`kit ready in ${KIT}: ${(size(KIT) / 2 ** 20).toFixed(1)} MiB (tarball ${(tar.bytes / 2 ** 20).toFixed(1)} MiB), ${((performance.now() - t0) / 1000).toFixed(1)} s`);
