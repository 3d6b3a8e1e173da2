/**
 * One definition of the training defaults: what config/default.yaml documents is what the CLI
 * and the API use when nothing is set (they once disagreed: lr 5e-4 in the config, 1e-3 in three
 * other places).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { TRAINING_DEFAULTS } from "../../src/training/training-options.ts";

describe("training defaults", () => {
  it("config/default.yaml says what TRAINING_DEFAULTS are", () => {
    // the file itself: a local.yaml on this machine must not decide the test
    const t = parse(readFileSync(path.join(projectRoot, "config/default.yaml"), "utf8")).training;
    assert.deepEqual(
      { objective: t.objective, rank: t.rank, alpha: t.alpha, epochs: t.epochs, learningRate: t.learning_rate, retention: t.retention, learnedAt: t.learned_at, computeType: t.compute_type, approximateSteers: t.approximate_steers, seed: t.seed },
      {
        objective: TRAINING_DEFAULTS.objective,
        rank: TRAINING_DEFAULTS.rank,
        alpha: TRAINING_DEFAULTS.alpha,
        epochs: TRAINING_DEFAULTS.epochs,
        learningRate: TRAINING_DEFAULTS.learningRate,
        retention: TRAINING_DEFAULTS.retention,
        learnedAt: TRAINING_DEFAULTS.learnedAt,
        computeType: TRAINING_DEFAULTS.computeType,
        approximateSteers: TRAINING_DEFAULTS.approximateSteers,
        seed: TRAINING_DEFAULTS.seed,
      },
    );
  });
});
