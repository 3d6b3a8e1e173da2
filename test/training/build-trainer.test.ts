/**
 * The trainer build cache: keyed by the native sources, reused when nothing changed, and the
 * variant choice (cpu unless nvcc and an NVIDIA device are both present, or forced by env).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { buildTrainer, chooseVariant, trainerSourceHash } from "../../src/training/build-trainer.ts";

test("a second build with unchanged sources reuses the cached binary", async () => {
  const first = await buildTrainer();
  const second = await buildTrainer();
  assert.equal(second.binary, first.binary);
  assert.equal(second.buildSeconds, 0);
  assert.ok(existsSync(second.binary));
  const info = JSON.parse(readFileSync(path.join(path.dirname(second.binary), "build-info.json"), "utf8")) as { hash: string; variant: string };
  assert.ok(path.basename(path.dirname(second.binary)).includes(info.hash));
  assert.equal(info.variant, second.variant);
});

test("the cache key follows the native sources and the variant", () => {
  assert.equal(trainerSourceHash(["a"]), trainerSourceHash(["a"]));
  assert.notEqual(trainerSourceHash(["cpu"]), trainerSourceHash(["cuda"]));
});

test("variant: explicit choice wins, env STEERBOT_TRAINER_BACKEND next", () => {
  assert.equal(chooseVariant("cpu"), "cpu");
  assert.equal(chooseVariant("cuda"), "cuda");
  const before = process.env.STEERBOT_TRAINER_BACKEND;
  try {
    process.env.STEERBOT_TRAINER_BACKEND = "cpu";
    assert.equal(chooseVariant("auto"), "cpu");
  } finally {
    if (before === undefined) delete process.env.STEERBOT_TRAINER_BACKEND;
    else process.env.STEERBOT_TRAINER_BACKEND = before;
  }
});
