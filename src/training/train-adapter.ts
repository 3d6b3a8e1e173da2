/**
 * The training API: steers in, LoRA adapter GGUF out.
 *
 * Owns: `trainAdapter(opts, onProgress)` — prepares the dataset (tokenized steers), builds the
 * native trainer on first use, runs it, reports progress, and returns the loss curve and
 * throughput. Defaults: training-options.ts (rank 16, alpha 32, all seven projections
 * q,k,v,o,gate,up,down, 10% warmup then cosine, 4 steers per optimizer step). attn_k/attn_v receive gradients
 * only because our patch makes training graphs attend to the ubatch's own K/V: upstream reads
 * K/V back from the cache, whose write has no backward pass, which zeroes their gradients and
 * drops every gradient path through K/V into earlier layers (see test/training/).
 */
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import type { Engine } from "../engine/engine.ts";
import { buildTrainer, type TrainerBuild } from "./build-trainer.ts";
import { checkLoraFitsBase, readLoraGguf, writeLoraF32 } from "./lora-gguf.ts";
import { prepareDataset, type SkippedSteer, type SteerInput } from "./steer-dataset.ts";
import type { AnchorInput } from "./steer-tokenizer.ts";
import { runTrainer, type TrainerProgressEvent, type TrainerStartEvent } from "./trainer-process.ts";
import { TRAINING_DEFAULTS as D, type ComputeType, type ComputeTypeChoice, type LoraTarget, type TrainObjective } from "./training-options.ts";

export type { LoraTarget, TrainObjective } from "./training-options.ts";

export interface TrainAdapterOptions {
  /** Base model GGUF: F32, F16, BF16 or quantized (dequantized once by the trainer; the adapter applies to the quantized file). */
  model: string;
  /** Steers: a JSONL file path or records. */
  steers: SteerInput;
  /** Output adapter GGUF path. */
  out: string;
  objective?: TrainObjective;
  rank?: number;
  alpha?: number;
  epochs?: number;
  lr?: number;
  schedule?: "cosine" | "linear" | "constant";
  /** Warmup: a fraction of the steps (< 1) or a step count (default 0.1). */
  warmup?: number;
  weightDecay?: number;
  /** DPO β (default 0.1). */
  beta?: number;
  /** Weight of the KL-to-base retention term on the steers' prompts (see TRAINING_DEFAULTS.retention; 0 = off). */
  retention?: number;
  /** A steer whose chosen span the adapter writes with this mean token probability rests in that step (see TRAINING_DEFAULTS.learnedAt; 1 = never). */
  learnedAt?: number;
  /** Prompt positions per steer (and reply positions per anchor) the retention term holds (default 32). */
  retentionPositions?: number;
  /**
   * Replay anchors: replies nobody steered, each with the conversation before it. With
   * `retention` > 0 the term also holds the base model's distribution on their reply
   * tokens, in turn, enough per optimizer step that every anchor is used in a run, so the adapter keeps the model's ordinary
   * answers and not only the steers' prompts; ignored when `retention` is 0.
   */
  anchors?: readonly AnchorInput[];
  /**
   * Per steer (by index, when `steers` are records): what the reply went on with after its
   * chosen span (src/training/steer-continuations.ts). With `retention` > 0 the term holds the
   * base there too, so the adapter learns the span and does not start it over; ignored when
   * `retention` is 0.
   */
  continuations?: readonly (string | undefined)[];
  /** Steers per optimizer step (default 4). */
  gradAccum?: number;
  targets?: readonly LoraTarget[];
  seed?: number;
  threads?: number;
  /** Products with the frozen weights (default `auto`: the fastest the CPU has). */
  computeType?: ComputeTypeChoice;
  maxSteps?: number;
  /**
   * Continue training this adapter (ours, or a llama.cpp LoRA GGUF for the same base) instead of
   * starting from B = 0. Its rank, targets and alpha are kept: `rank`, `targets` and `alpha` do
   * not apply (the result keeps the init adapter's alpha, so its scale alpha/rank is unchanged).
   */
  initAdapter?: string;
  /** An Engine on the same model, to tokenize without loading the model again. */
  engine?: Engine;
  signal?: AbortSignal;
  /** A ready trainer build (default: build or find the cached one). */
  build?: TrainerBuild;
}

export interface TrainProgress extends Omit<TrainerProgressEvent, "type"> {}

export interface TrainResult {
  adapterPath: string;
  objective: TrainObjective;
  /** Steers trained on. */
  pairs: number;
  /** Replay anchors the retention term held (0 when it is off). */
  anchors: number;
  /** Of those, how many some optimizer step used (all of them, however few the steps). */
  anchorsUsed: number;
  skipped: SkippedSteer[];
  steps: number;
  seconds: number;
  tokensPerSecond: number;
  trainableParameters?: number;
  /** CPU threads the trainer ran on (its own report). */
  threads?: number;
  /** How the products with the frozen weights ran (see {@link TrainAdapterOptions.computeType}). */
  computeType?: ComputeType;
  /**
   * Per step; `held`: pairs the step held back as learned (learnedAt < 1); `kl`: mean KL(base ‖ adapter) on the retention positions, when the term is on;
   * `anchorKl`: on the step's replay anchors alone, when there are anchors; `continuationKl`: on
   * the continuations after its chosen spans, when there are.
   */
  lossCurve: { step: number; epoch: number; loss: number; lr: number; held?: number; kl?: number; anchorKl?: number; continuationKl?: number }[];
  epochLosses: { epoch: number; loss: number }[];
  /** Seconds spent building the trainer in this call (0 when cached). */
  buildSeconds: number;
}

/** Trains a LoRA adapter from steers; see {@link TrainAdapterOptions} for defaults. */
export async function trainAdapter(opts: TrainAdapterOptions, onProgress?: (p: TrainProgress) => void): Promise<TrainResult> {
  if (opts.initAdapter && !existsSync(opts.initAdapter)) throw new Error(`adapter ${opts.initAdapter} not found`);
  const init = opts.initAdapter ? readLoraGguf(opts.initAdapter) : undefined;
  if (init) checkLoraFitsBase(init, opts.model, `the init adapter ${path.basename(opts.initAdapter!)}`);
  const build = opts.build ?? (await buildTrainer());
  const retention = opts.retention ?? D.retention;
  const data = await prepareDataset({ model: opts.model, steers: opts.steers, engine: opts.engine, anchors: retention > 0 ? opts.anchors : undefined, continuations: retention > 0 ? opts.continuations : undefined });
  let initFile = opts.initAdapter;
  let initCopy: string | undefined;
  const objective = opts.objective ?? D.objective;
  try {
    // the trainer continues F32 tensors only: an F16/BF16 one (llama.cpp's converter writes F16) is widened first
    if (init && init.pairs.some((p) => p.a.type !== 0 || p.b.type !== 0)) {
      initCopy = `${path.resolve(opts.out)}.init-f32-${process.pid}.gguf`;
      writeLoraF32(init, initCopy);
      initFile = initCopy;
    }
    if (objective !== "sft" && !data.tokens.some((t) => t.rejected.length > 0)) {
      throw new Error(`objective ${objective} needs steers with a rejected span; these have none`);
    }
    const args = [
      "train",
      "--model", opts.model,
      "--data", data.file,
      "--out", path.resolve(opts.out),
      "--objective", objective,
      "--rank", String(opts.rank ?? D.rank),
      "--alpha", String(init ? init.alpha : (opts.alpha ?? D.alpha)),
      "--epochs", String(opts.epochs ?? D.epochs),
      "--lr", String(opts.lr ?? D.learningRate),
      "--schedule", opts.schedule ?? D.schedule,
      "--warmup", String(opts.warmup ?? D.warmup),
      "--weight-decay", String(opts.weightDecay ?? D.weightDecay),
      "--beta", String(opts.beta ?? D.beta),
      "--kl-weight", String(retention),
      "--learned-at", String(opts.learnedAt ?? D.learnedAt),
      "--grad-accum", String(opts.gradAccum ?? D.gradAccum),
      "--targets", (opts.targets ?? D.targets).join(","),
      "--seed", String(opts.seed ?? D.seed),
    ];
    if (opts.retentionPositions) args.push("--kl-rows", String(opts.retentionPositions));
    if (opts.threads) args.push("--threads", String(opts.threads));
    if (opts.computeType) args.push("--compute-type", opts.computeType);
    if (opts.maxSteps) args.push("--max-steps", String(opts.maxSteps));
    if (initFile) args.push("--adapter", initFile);
    const lossCurve: TrainResult["lossCurve"] = [];
    const epochLosses: TrainResult["epochLosses"] = [];
    let start: TrainerStartEvent | undefined;
    let computeType: TrainResult["computeType"];
    const events = await runTrainer({
      args,
      build,
      signal: opts.signal,
      onEvent: (ev) => {
        if (ev.type === "start") start = ev;
        else if (ev.type === "backward") computeType = ev.computeType;
        else if (ev.type === "epoch") epochLosses.push({ epoch: ev.epoch, loss: ev.loss });
        else if (ev.type === "progress") {
          lossCurve.push({ step: ev.step, epoch: ev.epoch, loss: ev.loss, lr: ev.lr, ...(ev.held !== undefined ? { held: ev.held } : {}), ...(ev.kl !== undefined ? { kl: ev.kl } : {}), ...(ev.anchorKl !== undefined ? { anchorKl: ev.anchorKl } : {}), ...(ev.continuationKl !== undefined ? { continuationKl: ev.continuationKl } : {}) });
          const { type: _type, ...p } = ev;
          onProgress?.(p);
        }
      },
    });
    const done = events.find((e) => e.type === "done");
    return {
      adapterPath: path.resolve(opts.out),
      objective,
      pairs: data.tokens.length,
      anchors: start?.anchors ?? 0,
      anchorsUsed: done?.type === "done" ? (done.anchorsUsed ?? 0) : 0,
      skipped: data.skipped,
      steps: done && "steps" in done ? (done.steps ?? lossCurve.length) : lossCurve.length,
      seconds: done?.type === "done" ? (done.seconds ?? 0) : 0,
      tokensPerSecond: done?.type === "done" ? (done.tokensPerSecond ?? 0) : 0,
      trainableParameters: start?.trainableParameters,
      threads: start?.threads,
      computeType,
      lossCurve,
      epochLosses,
      buildSeconds: build.buildSeconds,
    };
  } finally {
    data.dispose();
    if (initCopy) rmSync(initCopy, { force: true });
  }
}
