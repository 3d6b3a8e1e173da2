/**
 * `steerbot eval`: how well a model (base, or base + adapter) prefers the chosen spans of
 * steers over the rejected ones.
 *
 * Owns: the command's options and output: a short report, or with --json one object
 * `{pairs, preferenceAccuracy, meanMargin, chosenLogprob, endLogprob, skipped}` (add
 * --per-steer for every steer). Exit codes: 0 evaluated, 2 bad input, 1 could not run.
 *
 *   steerbot eval --steers FILE.jsonl --model BASE.gguf [--adapter ADAPTER.gguf] [--json]
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { evaluateSteers } from "../../training/evaluate-steers.ts";
import { TrainerError } from "../../training/trainer-process.ts";
import { positiveInt } from "./train.ts";
import { action } from "../app-context.ts";

interface EvalCliOptions {
  steers: string;
  model: string;
  adapter?: string;
  threads?: number;
  json?: boolean;
  perSteer?: boolean;
}

export function register(program: Command): void {
  program
    .command("eval")
    .description("Evaluate preference accuracy on steers (mean per-token logp of chosen vs rejected)")
    .requiredOption("--steers <file>", "steers JSONL file")
    .requiredOption("--model <file>", "base model GGUF")
    .option("--adapter <file>", "LoRA adapter GGUF to apply")
    .option("--threads <n>", "CPU threads (default: all cores)", positiveInt)
    .option("--json", "print one JSON object")
    .option("--per-steer", "include every steer's numbers (with --json)")
    .action(action((opts: EvalCliOptions) => runEval(opts)));
}

async function runEval(opts: EvalCliOptions): Promise<number> {
  for (const [what, file] of [["steers file", opts.steers], ["model", opts.model], ["adapter", opts.adapter]] as const) {
    if (file !== undefined && !existsSync(file)) {
      process.stderr.write(`steerbot eval: ${what} ${file} not found\n`);
      return 2;
    }
  }
  try {
    const r = await evaluateSteers({ model: opts.model, steers: opts.steers, adapter: opts.adapter, threads: opts.threads });
    for (const s of r.skipped) process.stderr.write(`skipped steer at line ${s.line}: ${s.reason}\n`);
    if (opts.json) {
      const { perSteer, ...summary } = r;
      process.stdout.write(JSON.stringify(opts.perSteer ? r : { ...summary, perSteer: undefined }) + "\n");
      void perSteer;
    } else {
      process.stdout.write(
        `${r.pairs} steers: preference accuracy ${(r.preferenceAccuracy * 100).toFixed(1)}%, ` +
          `mean margin ${r.meanMargin.toFixed(4)} nats/token, chosen ${r.chosenLogprob.toFixed(4)} nats/token, ` +
          `end-of-turn after chosen ${r.endLogprob.toFixed(3)}\n`,
      );
    }
    return 0;
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`steerbot eval: ${err.message}\n`);
    if (err instanceof TrainerError) return ["bad_data", "empty_data", "usage", "bad_model", "bad_adapter"].includes(err.code) ? 2 : 1;
    return /no steers|no valid steers|could be tokenized|not found/.test(err.message) ? 2 : 1;
  }
}
