/**
 * `steerbot train`: trains a LoRA adapter from a steers file with the native trainer.
 *
 * Owns: the command's options, the progress bar (stderr), the summary (stdout, or one JSON
 * object with --json) and exit codes: 0 trained, 2 bad input (unusable base model, empty or
 * untokenizable steers, bad options), 1 could not run (build, crash, divergence).
 *
 *   steerbot train --from-db [--enqueue]   (the pipeline on the stored steers; --enqueue: as a queued job)
 *   steerbot train --steers FILE.jsonl --model BASE.gguf --out ADAPTER.gguf
 *                  [--objective sft|dpo|sft+dpo] [--rank R] [--alpha A] [--epochs N] [--lr X]
 *                  [--targets q,o,...] [--seed N] [--init-adapter ADAPTER.gguf] [--json]
 */
import { existsSync } from "node:fs";
import cliProgress from "cli-progress";
import { type Command, InvalidArgumentError } from "commander";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";
import { ModelUnavailableError } from "../../engine/model-file.ts";
import { buildTrainer } from "../../training/build-trainer.ts";
import { trainAdapter } from "../../training/train-adapter.ts";
import { TrainerError } from "../../training/trainer-process.ts";
import { LoraFileError } from "../../training/lora-gguf.ts";
import { COMPUTE_TYPES, LORA_TARGETS, OBJECTIVES, TRAINING_DEFAULTS as D, type ComputeTypeChoice, type LoraTarget, type TrainObjective } from "../../training/training-options.ts";
const BAD_INPUT_CODES = new Set(["unsupported_model", "bad_data", "empty_data", "usage", "bad_model", "bad_adapter"]);

interface TrainCliOptions {
  steers: string;
  model: string;
  out: string;
  objective: TrainObjective;
  rank: number;
  alpha: number;
  epochs: number;
  lr: number;
  targets: LoraTarget[];
  seed: number;
  gradAccum: number;
  beta: number;
  retention: number;
  learnedAt: number;
  threads?: number;
  computeType: ComputeTypeChoice;
  initAdapter?: string;
  json?: boolean;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError("not a positive integer");
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("not a positive number");
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || value.trim() === "") throw new InvalidArgumentError("not a number >= 0");
  return n;
}

function probability(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError("not a probability in (0, 1]");
  return n;
}

function parseTargets(value: string): LoraTarget[] {
  const list = value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const t of list) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) throw new InvalidArgumentError(`unknown target ${t} (use ${LORA_TARGETS.join(",")})`);
  }
  if (list.length === 0) throw new InvalidArgumentError("no targets");
  return list as LoraTarget[];
}

function parseComputeType(value: string): ComputeTypeChoice {
  if (!(COMPUTE_TYPES as readonly string[]).includes(value)) throw new InvalidArgumentError(`use ${COMPUTE_TYPES.slice(0, -1).join(", ")} or ${COMPUTE_TYPES.at(-1)}`);
  return value as ComputeTypeChoice;
}

function parseObjective(value: string): TrainObjective {
  if (!(OBJECTIVES as readonly string[]).includes(value)) throw new InvalidArgumentError(`use ${OBJECTIVES.slice(0, -1).join(", ")} or ${OBJECTIVES.at(-1)}`);
  return value as TrainObjective;
}

export function register(program: Command): void {
  program
    .command("train")
    .description("Train a LoRA adapter from steers (masked SFT and/or localized DPO)")
    .option("--from-db", "run the whole pipeline on the stored steers: train, evaluate, gate, activate (settings from the config)")
    .option("--enqueue", "with --from-db: queue the run as a training job (a worker or a bot with training.run_here takes it) instead of running it here")
    .option("--steers <file>", "steers JSONL file")
    .option("--model <file>", "base model GGUF (F32, F16, BF16 or quantized); with --from-db, the trainer's base model for this run instead of training.base_model")
    .option("--out <file>", "adapter GGUF to write")
    .option("--objective <name>", OBJECTIVES.join(", "), parseObjective, D.objective)
    .option("--rank <r>", "LoRA rank", positiveInt, D.rank)
    .option("--alpha <a>", "LoRA alpha", positiveNumber, D.alpha)
    .option("--epochs <n>", "epochs", positiveInt, D.epochs)
    .option("--lr <x>", "peak learning rate", positiveNumber, D.learningRate)
    .option("--targets <list>", `projections to adapt (${LORA_TARGETS.join(",")})`, parseTargets, [...D.targets])
    .option("--seed <n>", "random seed", (v) => Number.parseInt(v, 10), D.seed)
    .option("--grad-accum <n>", "steers per optimizer step", positiveInt, D.gradAccum)
    .option("--beta <b>", "DPO beta", positiveNumber, D.beta)
    .option("--retention <w>", "weight of the KL-to-base term on the steers' prompts (0 = off)", nonNegativeNumber, D.retention)
    .option("--learned-at <p>", "a steer the adapter writes with this mean token probability is not pushed further (1 = always pushed)", probability, D.learnedAt)
    .option("--threads <n>", "CPU threads (default: all cores)", positiveInt)
    .option("--compute-type <type>", "products with the base weights: auto (the fastest this CPU has), f32, bf16 or amx", parseComputeType, D.computeType)
    .option("--init-adapter <file>", "continue training this LoRA GGUF (a steerbot adapter, or one from llama.cpp's converter for the same base): its rank, targets and alpha are kept")
    .option("--json", "print the result as one JSON object")
    .action(
      action(async (opts: TrainCliOptions & { fromDb?: boolean; enqueue?: boolean }, cmd: Command) => {
        if (opts.enqueue && !opts.fromDb) throw new CliError("--enqueue queues a --from-db run: use both", EXIT.badInput);
        if (opts.fromDb && opts.enqueue) {
          if (opts.model !== undefined) throw new CliError("--model: not used with --enqueue (the worker trains on its training.base_model)", EXIT.badInput);
          return enqueueFromDb();
        }
        if (opts.fromDb) {
          // Settings of a file run that the pipeline takes from the configuration instead: refused
          // when given, never silently ignored.
          const fileOnly = FILE_RUN_OPTIONS.filter((o) => cmd.getOptionValueSource(o.key) === "cli");
          if (fileOnly.length) {
            const names = fileOnly.map((o) => `--${o.flag}`).join(", ");
            const keys = fileOnly.filter((o) => o.config).map((o) => `training.${o.config}`);
            throw new CliError(
              `${names}: not used with --from-db, which trains on the stored steers with the configured settings` +
                (keys.length ? ` (set ${keys.join(", ")} in config/local.yaml or as STEERBOT_TRAINING__<KEY>)` : ""),
              EXIT.badInput,
            );
          }
          if (opts.model !== undefined && !existsSync(opts.model)) throw new CliError(`model ${opts.model} not found`, EXIT.badInput);
          return trainFromDb(opts.model);
        }
        const missing = (["steers", "model", "out"] as const).filter((k) => !opts[k]);
        if (missing.length) throw new CliError(`train needs ${missing.map((m) => `--${m}`).join(", ")} (or --from-db)`, EXIT.badInput);
        if (opts.initAdapter) {
          const shape = ["rank", "alpha", "targets"].filter((k) => cmd.getOptionValueSource(k) === "cli");
          if (shape.length) throw new CliError(`${shape.map((k) => `--${k}`).join(", ")}: not used with --init-adapter, whose rank, targets and alpha training continues`, EXIT.badInput);
        }
        return runTrain(opts);
      }),
    );
}

/** Options of `train --steers` that `--from-db` takes from the configuration (`config`: its key there). */
const FILE_RUN_OPTIONS: { key: string; flag: string; config?: string }[] = [
  { key: "steers", flag: "steers" },
  { key: "out", flag: "out" },
  { key: "objective", flag: "objective", config: "objective" },
  { key: "rank", flag: "rank", config: "rank" },
  { key: "alpha", flag: "alpha", config: "alpha" },
  { key: "epochs", flag: "epochs", config: "epochs" },
  { key: "lr", flag: "lr", config: "learning_rate" },
  { key: "targets", flag: "targets" },
  { key: "seed", flag: "seed" },
  { key: "gradAccum", flag: "grad-accum" },
  { key: "beta", flag: "beta" },
  { key: "retention", flag: "retention", config: "retention" },
  { key: "learnedAt", flag: "learned-at", config: "learned_at" },
  { key: "threads", flag: "threads", config: "threads" },
  { key: "computeType", flag: "compute-type", config: "compute_type" },
  { key: "initAdapter", flag: "init-adapter" },
  { key: "json", flag: "json" },
];

/** `train --from-db --enqueue`: one training job in the queue; prints its id. */
async function enqueueFromDb(): Promise<number> {
  const { createTrainingQueue } = await import("../../training/queue/create-queue.ts");
  const ctx = appContext();
  const store = await openStore(ctx);
  const queue = createTrainingQueue({ store, config: ctx.config, log: ctx.log, databaseUrl: ctx.secrets.databaseUrl });
  try {
    await queue.start();
    const { job, created } = await queue.enqueue({ trigger: "cli" });
    if (!created) {
      process.stdout.write(`a training job is already ${job.state}: ${job.id}\n`);
      return EXIT.ok;
    }
    const who = queue.kind === "pg-boss" ? "a `steerbot worker` (or a bot with training.run_here) takes it" : "the bot runs it in its process at its next start";
    process.stdout.write(`queued training job ${job.id}; ${who}\n`);
    return EXIT.ok;
  } finally {
    await queue.stop().catch(() => {});
    await store.close();
  }
}

/** `train --from-db`: the pipeline the nightly job and /retrain run, with a progress bar. */
async function trainFromDb(baseModel?: string): Promise<number> {
  const { createApp } = await import("../../app.ts");
  const ctx = appContext();
  if (baseModel !== undefined) ctx.config = { ...ctx.config, training: { ...ctx.config.training, base_model: baseModel } };
  const app = await createApp(ctx).catch((e: unknown) => {
    if (!(e instanceof ModelUnavailableError)) throw e;
    throw new CliError(`${e.message} (--from-db evaluates on and serves model.path; --model sets only the trainer's base model)`, EXIT.failure);
  });
  const bar = new cliProgress.SingleBar(
    { format: "training |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | eta {eta_formatted}", stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  try {
    const out = await app.training.run({
      trigger: "cli",
      progress: (text) => {
        if (!started) process.stderr.write(`${text}\n`);
      },
      onTrainerProgress: (p) => {
        const payload = { loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSecond) };
        if (!started) bar.start(p.steps, 0, payload);
        started = true;
        bar.update(p.step, payload);
      },
    });
    if (started) bar.stop();
    process.stdout.write(`${out.notice ?? out.state}\n`);
    if (out.attachments?.length) process.stdout.write(`loss curve: ${out.attachments.join(", ")}\n`);
    return out.state === "succeeded" || out.state === "skipped" ? 0 : 1;
  } finally {
    if (started) bar.stop();
    await app.close();
  }
}

async function runTrain(opts: TrainCliOptions): Promise<number> {
  for (const [what, file] of [["steers file", opts.steers], ["model", opts.model]] as const) {
    if (!existsSync(file)) {
      process.stderr.write(`steerbot train: ${what} ${file} not found\n`);
      return 2;
    }
  }
  const bar = new cliProgress.SingleBar(
    {
      format: "training |{bar}| {value}/{total} steps | epoch {epoch} | loss {loss} | {tps} tok/s | eta {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  try {
    process.stderr.write("preparing the trainer (first use builds it)...\n");
    const build = await buildTrainer();
    const result = await trainAdapter(
      {
        model: opts.model,
        steers: opts.steers,
        out: opts.out,
        objective: opts.objective,
        rank: opts.rank,
        alpha: opts.alpha,
        epochs: opts.epochs,
        lr: opts.lr,
        targets: opts.targets,
        seed: opts.seed,
        gradAccum: opts.gradAccum,
        beta: opts.beta,
        retention: opts.retention,
        learnedAt: opts.learnedAt,
        threads: opts.threads,
        computeType: opts.computeType,
        initAdapter: opts.initAdapter,
        build,
      },
      (p) => {
        const payload = { epoch: p.epoch, loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSecond) };
        if (!started) {
          bar.start(p.steps, 0, payload);
          started = true;
        }
        bar.update(p.step, payload);
      },
    );
    if (started) bar.stop();
    for (const s of result.skipped) process.stderr.write(`skipped steer at line ${s.line}: ${s.reason}\n`);
    if (opts.json) {
      process.stdout.write(JSON.stringify(result) + "\n");
    } else {
      const first = result.lossCurve[0]?.loss;
      const last = result.lossCurve.at(-1)?.loss;
      process.stdout.write(
        `wrote ${result.adapterPath}: ${result.pairs} steers, ${result.steps} steps in ${result.seconds.toFixed(1)} s ` +
          `(${Math.round(result.tokensPerSecond)} tokens/s), loss ${first?.toFixed(4)} -> ${last?.toFixed(4)}\n`,
      );
    }
    return 0;
  } catch (e) {
    if (started) bar.stop();
    const err = e as Error;
    process.stderr.write(`steerbot train: ${err.message}\n`);
    if (err instanceof TrainerError) return BAD_INPUT_CODES.has(err.code) ? 2 : 1;
    if (err instanceof LoraFileError) return 2;
    return /cannot dequantize|no steers|no valid steers|could be tokenized|needs steers|not found/.test(err.message) ? 2 : 1;
  }
}
