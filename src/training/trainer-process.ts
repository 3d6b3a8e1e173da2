/**
 * Running the native trainer (`steer-train`) as a child process.
 *
 * Owns: the command line, parsing its stdout JSON lines into typed events, keeping a tail of
 * its stderr (llama.cpp logs) for error messages, abort by signal (settled once the child has
 * exited, SIGKILL after 5 s), ending with this process
 * (the trainer gets SIGTERM when its parent dies, even by SIGKILL), and turning an `error`
 * event or a non-zero exit into a {@link TrainerError}.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { buildTrainer, type TrainerBuild } from "./build-trainer.ts";

export interface TrainerProgressEvent {
  type: "progress";
  step: number;
  steps: number;
  epoch: number;
  /** SFT: mean NLL of the chosen tokens of the step; DPO: mean −log σ(βΔ) of its pairs. */
  loss: number;
  lr: number;
  tokensPerSecond: number;
  etaSeconds: number;
  dpoLoss?: number;
  sftNll?: number;
  /** Pairs of the step held back as learned: only their retention rows trained (`--learned-at` < 1). */
  held?: number;
  /** Mean KL(base ‖ adapter) on the step's retention positions (`--kl-weight` > 0). */
  kl?: number;
  /** Mean KL(base ‖ adapter) on the reply positions of the step's replay anchors (when there are anchors). */
  anchorKl?: number;
  /** Mean KL(base ‖ adapter) on the continuations after the step's chosen spans (steers with `after` tokens). */
  continuationKl?: number;
}

export interface TrainerStartEvent {
  type: "start";
  objective?: string;
  pairs?: number;
  /** Replay anchors the retention term holds (0 when it is off). */
  anchors?: number;
  steps?: number;
  stepsPerEpoch?: number;
  epochs?: number;
  trainableParameters?: number;
  targets?: number;
  threads?: number;
  gpu?: boolean;
  [key: string]: unknown;
}

export interface TrainerEpochEvent {
  type: "epoch";
  epoch: number;
  loss: number;
  dpoLoss?: number;
}

export interface TrainerEvalEvent {
  type: "eval";
  index: number;
  line: number;
  chosenLogprob?: number;
  chosenTokens?: number;
  chosenMeanLogprob?: number;
  rejectedLogprob?: number;
  rejectedTokens?: number;
  rejectedMeanLogprob?: number;
  /** log P(end of turn | prompt + chosen). */
  endLogprob?: number;
  /** Raw weighted sequences: Σ w·nll and Σ |w|. */
  loss?: number;
  weight?: number;
}

export interface TrainerGradEvent {
  type: "grad";
  name: string;
  index: number;
  analytic: number;
  analyticRepeat: number;
  numeric: number;
  maxAbsGrad: number;
  maxRepeatDiff: number;
  /** L2 norm of the whole analytic gradient of the tensor. */
  norm: number;
}

export { COMPUTE_TYPES, type ComputeType, type ComputeTypeChoice } from "./training-options.ts";
import type { ComputeType } from "./training-options.ts";

/** Printed once, at the first backward pass: how gradients through the frozen weights are computed. */
export interface TrainerBackwardEvent {
  type: "backward";
  /** OUT_PROD nodes of the backward graph turned into matrix products (0 with --out-prod-backward, or on a GPU). */
  matmuls: number;
  /** OUT_PROD nodes left as they are. */
  outProds: number;
  /** Products with frozen matrices run on the AMX tile unit (compute type `amx`). */
  amxProducts: number;
  /** F32 products with a small side (the adapter's rank) run by the trainer's own kernel (AVX-512 or AVX2; 0 without either, or with --small-products off). */
  smallProducts: number;
  /** Bytes of those transposed copies. */
  transposedBytes: number;
  computeType: ComputeType;
}

export interface TrainerDoneEvent {
  type: "done";
  out?: string;
  steps?: number;
  seconds?: number;
  tokensPerSecond?: number;
  pairs?: number;
  /** Replay anchors the run held at least once (train mode). */
  anchorsUsed?: number;
}

export interface TrainerErrorEvent {
  type: "error";
  code: string;
  message: string;
}

export type TrainerEvent =
  | TrainerStartEvent
  | TrainerProgressEvent
  | TrainerEpochEvent
  | TrainerEvalEvent
  | TrainerGradEvent
  | TrainerBackwardEvent
  | TrainerDoneEvent
  | TrainerErrorEvent;

/** A failure reported by the trainer (`code`: unsupported_model, bad_data, empty_data, diverged, usage, …). */
export class TrainerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly stderrTail = "",
  ) {
    super(message);
    this.name = "TrainerError";
  }
}

export interface RunTrainerOptions {
  /** Arguments after the binary: mode first (`train`, `eval`, `grad-check`). */
  args: string[];
  onEvent?: (event: TrainerEvent) => void;
  signal?: AbortSignal;
  /** A ready build (default: {@link buildTrainer}, which builds on first use). */
  build?: TrainerBuild;
}

/** Runs `steer-train` to completion; resolves with every event it printed. */
export async function runTrainer(options: RunTrainerOptions): Promise<TrainerEvent[]> {
  const build = options.build ?? (await buildTrainer());
  const args = [...options.args, "--backend-dir", build.ggmlLibDir];
  return new Promise((resolve, reject) => {
    // STEER_TRAIN_PARENT_PID: the trainer ends with this process, however it dies (main.cpp).
    const env = { ...process.env, STEER_TRAIN_PARENT_PID: String(process.pid) };
    const child = spawn(build.binary, args, { stdio: ["ignore", "pipe", "pipe"], signal: options.signal, env });
    const events: TrainerEvent[] = [];
    const stderr: string[] = [];
    let failed: TrainerErrorEvent | undefined;
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (!line.startsWith("{")) return;
      let ev: TrainerEvent;
      try {
        ev = JSON.parse(line) as TrainerEvent;
      } catch {
        return;
      }
      events.push(ev);
      if (ev.type === "error") failed = ev;
      options.onEvent?.(ev);
    });
    createInterface({ input: child.stderr }).on("line", (line) => {
      stderr.push(line);
      if (stderr.length > 60) stderr.shift();
    });
    child.on("error", (err) => {
      if ((err as NodeJS.ErrnoException).name !== "AbortError") return reject(err);
      // aborted: node sent SIGTERM; settle once the trainer has exited ("close" rejects as
      // aborted), so that whoever stops a run knows the child is gone — SIGKILL if it lingers
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return reject(new TrainerError("aborted", "training was aborted"));
      const force = setTimeout(() => child.kill("SIGKILL"), 5_000);
      child.once("close", () => clearTimeout(force));
    });
    child.on("close", (code, sig) => {
      const tail = stderr.join("\n");
      if (failed) reject(new TrainerError(failed.code, failed.message, tail));
      else if (code === 0) resolve(events);
      else if (options.signal?.aborted) reject(new TrainerError("aborted", "training was aborted", tail));
      else reject(new TrainerError("crashed", `steer-train exited with ${sig ?? `code ${code}`}:\n${tail}`, tail));
    });
  });
}
