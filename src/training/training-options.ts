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
   * continuations"): with 4, 64 anchors and the continuations both habits go (persona 100% → 0%,
   * British spelling 63% → 0%, greedy) with neutral perplexity -5.1% and -5.8% and no repeated
   * span; at 0 perplexity rises 28.6%. The real-model loop test: 1/6 and 0/6 held-out answers
   * with the habit left.
   */
  retention: 4,
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
