/**
 * `steerbot fixture-model`: writes a GGUF model with seeded random weights and a real
 * tokenizer, for tests, benchmarks and trying the whole flow without downloading a model.
 */
import type { Command } from "commander";
import { FIXTURE_SHAPES, writeFixtureModel, type FixtureShapeName, type FixtureWeightType } from "../../engine/fixture/fixture-model.ts";
import { CliError, EXIT, action } from "../app-context.ts";

export function register(program: Command): void {
  program
    .command("fixture-model")
    .description("write a test model: random weights from a seed, a real llama.cpp tokenizer and a chat template")
    .requiredOption("--out <file>", "GGUF file to write")
    .option("--vocab <name>", "tokenizer from llama.cpp's models/ggml-vocab-<name>.gguf (qwen2, llama-spm, phi-3, ...)", "qwen2")
    .option("--shape <name>", `model shape: ${Object.keys(FIXTURE_SHAPES).join(" | ")}`, "tiny")
    .option("--seed <n>", "weight seed (same seed, same bytes)", "1")
    .option("--type <type>", "matrix weight type: f32 | f16 | q8_0 | q4_0", "f32")
    .action(
      action(async (opts: { out: string; vocab: string; shape: string; seed: string; type: string }) => {
        if (!(opts.shape in FIXTURE_SHAPES)) {
          throw new CliError(`unknown shape "${opts.shape}"; choose one of ${Object.keys(FIXTURE_SHAPES).join(", ")}`, EXIT.badInput);
        }
        const seed = Number(opts.seed);
        if (!Number.isSafeInteger(seed) || seed < 0) throw new CliError(`--seed must be a non-negative integer, got "${opts.seed}"`, EXIT.badInput);
        if (!["f32", "f16", "q8_0", "q4_0"].includes(opts.type)) throw new CliError(`--type must be f32, f16, q8_0 or q4_0, got "${opts.type}"`, EXIT.badInput);
        const started = Date.now();
        let info;
        try {
          info = await writeFixtureModel({ out: opts.out, vocab: opts.vocab, shape: opts.shape as FixtureShapeName, seed, type: opts.type as FixtureWeightType });
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          throw new CliError(msg, /unknown vocab/.test(msg) ? EXIT.badInput : EXIT.failure);
        }
        const s = info.shape;
        process.stdout.write(
          `wrote ${info.path}: ${s.arch} ${opts.shape} (${s.nLayer} layers, ${s.nEmbd} embd, ${s.nHead}/${s.nHeadKv} heads, ff ${s.nFf}), ` +
            `vocab ${info.vocab} (${info.nVocab} tokens), ${(info.parameters / 1e6).toFixed(1)}M parameters ${opts.type}, ` +
            `${(info.bytes / 2 ** 20).toFixed(1)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
        );
      }),
    );
}
