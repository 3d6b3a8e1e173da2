/**
 * The training settings, defined once: the names the config, the CLI and the API accept, and
 * the defaults of every one of them.
 *
 * Owns: {@link OBJECTIVES}, {@link LORA_TARGETS}, {@link COMPUTE_TYPES} and
 * {@link TRAINING_DEFAULTS}. `config/default.yaml` repeats the defaults that a user sets there
 * (so they are documented where they are changed); test/training/training-options.test.ts holds
 * the two equal.
 */

/** sft: masked NLL of the chosen span; dpo: localized DPO of chosen vs rejected; both summed. */
export const OBJECTIVES = ["sft", "dpo", "sft+dpo"] as const;
export type TrainObjective = (typeof OBJECTIVES)[number];

/** The projections a LoRA adapter may adapt, by their short names. */
export const LORA_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/**
 * How the trainer multiplies with the frozen base weights: `auto` picks the fastest the CPU has
 * (`amx`: AMX-BF16 tiles, `bf16`: AVX512-BF16, `f32`).
 */
export const COMPUTE_TYPES = ["auto", "f32", "bf16", "amx"] as const;
export type ComputeTypeChoice = (typeof COMPUTE_TYPES)[number];
/** What `auto` became. */
export type ComputeType = Exclude<ComputeTypeChoice, "auto">;

/**
 * Steers whose prefix the model never produced (later hunks of an edited reply, imported with
 * `--from edits`): `include` trains on them like any other, `skip` leaves them out.
 */
export const APPROXIMATE_STEERS = ["include", "skip"] as const;
export type ApproximateSteers = (typeof APPROXIMATE_STEERS)[number];

export const TRAINING_DEFAULTS = {
  objective: "sft+dpo" as TrainObjective,
  rank: 16,
  alpha: 32,
  epochs: 3,
  /** Peak learning rate: 10% warmup, then cosine decay. */
  learningRate: 5e-4,
  computeType: "auto" as ComputeTypeChoice,
  schedule: "cosine" as "cosine" | "linear" | "constant",
  /** Fraction of the steps (< 1) or a step count. */
  warmup: 0.1,
  weightDecay: 0,
  /** DPO β. */
  beta: 0.1,
  /**
   * Weight of the retention term: cross-entropy to the base model's own distribution (its top
   * 128 tokens) on 32 random positions of each steer's prompt (the context and the accepted
   * prefix, text the steer does not object to), of its continuation (what the reply went on
   * with after the chosen span) and of replay anchors (replies nobody steered), so the adapter
   * changes what the steers correct and holds the rest (KL to the base, up to the base's
   * entropy). 0 = off. Measured on SmolLM2-135M (bench/README.md, "Replay anchors and
   * continuations", "Few one-token steers"): at 0 a neutral text's perplexity rises 28.6%; at 4
   * persona and British spelling go (100% → 0%, 63% → 0%) within -5%, but 25 one-token steers
   * (list markers) cost +8.4%; at 12 all three habits stay within +3.0% (list-bullets 92% → 0%,
   * persona 100% → 13%, British spelling 71% → 8% at 40 steers: a little less far than at 4).
   */
  retention: 12,
  /**
   * A steer counts as learned in a step where the adapter already writes its chosen span with
   * this geometric-mean token probability: its SFT and DPO terms rest then, its retention rows
   * go on; 1 = never. Why: a one-token steer (a list marker, a name) is learned in a few steps,
   * and pushing it further (SFT towards 1, DPO without bound) raises that token everywhere else
   * too: on SmolLM2-135M, bullet steers trained to a loss of 0.005 turned some replies into
   * rows of dashes (bench/README.md, "Learned is enough").
   */
  learnedAt: 0.9,
  /** Steers per optimizer step. */
  gradAccum: 4,
  seed: 42,
  targets: LORA_TARGETS as readonly LoraTarget[],
  /**
   * Included: the chosen span is still the person's own words after an accepted prefix, and the
   * sft term learns it exactly; only the rejected span is off-policy (the model might not have
   * written it after that prefix), as in every offline preference dataset.
   */
  approximateSteers: "include" as ApproximateSteers,
} as const;
