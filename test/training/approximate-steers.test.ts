/**
 * `training.approximate_steers`: a real `steerbot train --from-db` run on the fixture model
 * leaves approximate steers (later hunks of an edited reply) out when set to `skip`.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { Store } from "../../src/store/store.ts";
import { runCli } from "../helpers/cli.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

describe("training.approximate_steers", () => {
  it("skip: the run trains only on the exact steers", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "steerbot-approx-"));
    const context = [{ role: "user" as const, content: "Sky?" }];
    const store = await Store.open({ dataDir });
    try {
      await store.steers.importRecords([
        { context, prefix: "The sky is", rejected: " green", chosen: " blue" },
        { context, prefix: "The grass is", rejected: " blue", chosen: " green" },
        { context, prefix: "The sky is blue and the grass is", rejected: " blue", chosen: " green", approximate: true },
      ]);
    } finally {
      await store.close();
    }
    const model = await tinyModelPath();
    const env = {
      STEERBOT_STORE__DATA_DIR: dataDir,
      DATABASE_URL: "",
      STEERBOT_MODEL__PATH: model,
      STEERBOT_LOG__LEVEL: "warn",
      STEERBOT_TRAINING__APPROXIMATE_STEERS: "skip",
      STEERBOT_TRAINING__MIN_NEW_STEERS: "1",
      STEERBOT_TRAINING__HELD_OUT_FRACTION: "0",
      STEERBOT_TRAINING__EPOCHS: "1",
      STEERBOT_TRAINING__RANK: "2",
    };
    const r = await runCli(["train", "--from-db"], { env, timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const after = await Store.open({ dataDir });
    try {
      const run = await after.db.selectFrom("training_runs").selectAll().orderBy("id", "desc").executeTakeFirstOrThrow();
      assert.equal(run.steer_count, 2, `${run.state} ${run.error ?? ""}`);
    } finally {
      await after.close();
    }
  });
});
