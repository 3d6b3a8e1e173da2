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
   * 128 tokens) on 32 random positions of each steer's prompt — the context and the accepted
   * prefix, text the steer does not object to — so the adapter changes what the steers correct
   * and holds the rest (KL to the base, up to the base's entropy). 0 = off: measured on
   * SmolLM2-135M, 4 keeps a neutral text's perplexity at +9.5% instead of +28.6% and the habit
   * still goes in bench/learn (greedy 100% → 4%), but the real-model loop's held-out answers came
   * out garbled in 1 and 3 of 6 over two runs ("I'm Steerboteer…"), against 0 of 6 without it
   * (bench/README.md, "The retention term").
   */
  retention: 0,
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
