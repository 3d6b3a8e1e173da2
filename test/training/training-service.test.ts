/**
 * The training run's share of the cores (the pipeline itself is tested end to end in
 * training-pipeline.test.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { threadBudget } from "../../src/training/training-service.ts";

describe("threadBudget", () => {
  it("never gives trainer and bot together more threads than cores, and each at least one", () => {
    for (let cores = 1; cores <= 64; cores++) {
      for (const setting of [0, 1, 2, 3, 7, 16, 1000]) {
        const b = threadBudget(cores, setting);
        assert.ok(b.trainer >= 1 && b.generation >= 1, `${cores} cores, setting ${setting}: ${JSON.stringify(b)}`);
        if (cores > 1) assert.ok(b.trainer + b.generation <= cores, `${cores} cores, setting ${setting}: ${JSON.stringify(b)}`);
      }
    }
  });

  it("splits the cores by default and follows training.threads within them", () => {
    assert.deepEqual(threadBudget(2, 0), { trainer: 1, generation: 1 });
    assert.deepEqual(threadBudget(16, 0), { trainer: 8, generation: 8 });
    assert.deepEqual(threadBudget(7, 0), { trainer: 4, generation: 3 });
    assert.deepEqual(threadBudget(16, 12), { trainer: 12, generation: 4 });
    assert.deepEqual(threadBudget(4, 9), { trainer: 3, generation: 1 });
    assert.deepEqual(threadBudget(1, 4), { trainer: 1, generation: 1 });
  });
});
