/**
 * The benchmarks' fixture model: one seeded F32 model per vocabulary and shape, written once to
 * `cacheDir("models")` and shared by every bench script (the 0.5B shape is 2.35 GiB, about half a
 * minute to write).
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { writeFixtureModel, type FixtureShapeName } from "../src/engine/fixture/fixture-model.ts";
import { cacheDir } from "../src/engine/llama-source.ts";

/** Path of the bench model for `vocab` and `shape`, written first when missing. */
export async function benchModel(vocab: string, shape: FixtureShapeName): Promise<string> {
  const modelPath = path.join(cacheDir("models"), `bench-${vocab}-${shape}-s1-f32.gguf`);
  if (!existsSync(modelPath)) {
    const t = performance.now();
    process.stdout.write(`writing fixture model ${modelPath} ...\n`);
    const info = await writeFixtureModel({ out: modelPath, vocab, shape, seed: 1, type: "f32" });
    process.stdout.write(
      `  ${(info.parameters / 1e6).toFixed(0)}M parameters, ${(info.bytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t) / 1000).toFixed(1)} s\n`,
    );
  }
  return modelPath;
}
