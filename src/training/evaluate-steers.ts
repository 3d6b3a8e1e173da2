/**
 * Evaluating a model (base, or base + adapter) on steers.
 *
 * Owns: `evaluateSteers(opts)` — per steer, the mean per-token log-probability of the chosen
 * and of the rejected span given the prompt (computed by the native trainer's `eval` mode on
 * the same tokens training uses), and the summary used to gate an adapter: preference
 * accuracy (share of steers with a rejected span where mean logp(chosen) > mean
 * logp(rejected)), mean margin, mean chosen log-prob, and the mean log-prob of ending the turn
 * right after the chosen span (an adapter must not teach the model to stop there).
 */
import type { Engine } from "../engine/engine.ts";
import { buildTrainer, type TrainerBuild } from "./build-trainer.ts";
import { prepareDataset, type SkippedSteer, type SteerInput } from "./steer-dataset.ts";
import { runTrainer, type TrainerEvalEvent } from "./trainer-process.ts";

export interface EvaluateSteersOptions {
  /** Base model GGUF (quantized files are fine here). */
  model: string;
  steers: SteerInput;
  /** LoRA adapter applied on the base (omit for the base model). */
  adapter?: string;
  threads?: number;
  engine?: Engine;
  signal?: AbortSignal;
  build?: TrainerBuild;
}

export interface SteerEvaluation {
  /** Line in the steers file (or index + 1). */
  line: number;
  chosenMeanLogprob: number;
  rejectedMeanLogprob: number | null;
  /** chosen − rejected mean per-token log-prob (null without a rejected span). */
  margin: number | null;
  /** log P(end of turn right after the chosen span). */
  endLogprob: number;
}

export interface SteerEvaluationSummary {
  /** Steers evaluated. */
  pairs: number;
  /** Share of steers with a rejected span whose chosen span is more likely per token (NaN if none). */
  preferenceAccuracy: number;
  /** Mean of chosen − rejected mean per-token log-prob over steers with a rejected span. */
  meanMargin: number;
  /** Mean per-token log-prob of the chosen spans. */
  chosenLogprob: number;
  /** Mean log P(end of turn | prompt + chosen). */
  endLogprob: number;
  perSteer: SteerEvaluation[];
  skipped: SkippedSteer[];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

export async function evaluateSteers(opts: EvaluateSteersOptions): Promise<SteerEvaluationSummary> {
  const build = opts.build ?? (await buildTrainer());
  const data = await prepareDataset({ model: opts.model, steers: opts.steers, engine: opts.engine });
  try {
    const args = ["eval", "--model", opts.model, "--data", data.file];
    if (opts.adapter) args.push("--adapter", opts.adapter);
    if (opts.threads) args.push("--threads", String(opts.threads));
    const events = await runTrainer({ args, build, signal: opts.signal });
    const evals = events.filter((e): e is TrainerEvalEvent => e.type === "eval");
    const perSteer: SteerEvaluation[] = evals.map((e) => {
      const rej = e.rejectedMeanLogprob ?? null;
      return {
        line: data.lines[e.index]!,
        chosenMeanLogprob: e.chosenMeanLogprob ?? Number.NaN,
        rejectedMeanLogprob: rej,
        margin: rej === null ? null : (e.chosenMeanLogprob ?? Number.NaN) - rej,
        endLogprob: e.endLogprob ?? Number.NaN,
      };
    });
    const margins = perSteer.flatMap((s) => (s.margin === null ? [] : [s.margin]));
    return {
      pairs: perSteer.length,
      preferenceAccuracy: margins.length ? margins.filter((m) => m > 0).length / margins.length : Number.NaN,
      meanMargin: mean(margins),
      chosenLogprob: mean(perSteer.map((s) => s.chosenMeanLogprob)),
      endLogprob: mean(perSteer.map((s) => s.endLogprob)),
      perSteer,
      skipped: data.skipped,
    };
  } finally {
    data.dispose();
  }
}
