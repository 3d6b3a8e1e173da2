/**
 * `steerbot train --from-db` from the command line: `--model` is the trainer's base model for
 * the run, options the pipeline takes from the configuration are refused, and a model that
 * cannot be loaded is one line and an exit code, never a stack trace. The run itself is the
 * binary in a child process; the refusals and errors run the same program in this process.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { Store } from "../../src/store/store.ts";
import { runCli, runCliInProcess } from "../helpers/cli.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const fresh = () => ({ STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-train-cli-")), DATABASE_URL: "" });
const oneLine = (stderr: string) => {
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
};

describe("steerbot train --from-db", () => {
  it("runs the pipeline with --model as the trainer's base model", async () => {
    const model = await tinyModelPath();
    const env = { ...fresh(), STEERBOT_MODEL__PATH: model, STEERBOT_LOG__LEVEL: "warn" };
    const r = await runCli(["train", "--from-db", "--model", model], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Skipped: 0 new approved steer\(s\)/);
    const store = await Store.open({ dataDir: env.STEERBOT_STORE__DATA_DIR });
    try {
      const run = await store.db.selectFrom("training_runs").selectAll().executeTakeFirstOrThrow();
      assert.equal(run.trigger, "cli");
      assert.equal(run.hyperparameters.baseModel, model, "the run was for the model given");
    } finally {
      await store.close();
    }
  });

  it("says in one line when the served model cannot be loaded, exit 1", async () => {
    const r = await runCliInProcess(["train", "--from-db", "--model", await tinyModelPath()], { env: { ...fresh(), STEERBOT_MODEL__PATH: "models/no-such-model.gguf" } });
    assert.equal(r.code, 1);
    oneLine(r.stderr);
    assert.match(r.stderr, /^steerbot: model file not found: \S*models\/no-such-model\.gguf.* \(--from-db evaluates on and serves model\.path; --model sets only the trainer's base model\)$/m);
  });

  it("refuses a --model that does not exist and the options it takes from the configuration, exit 2", async () => {
    const missing = await runCliInProcess(["train", "--from-db", "--model", "models/nope.gguf"], { env: fresh() });
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, "steerbot: model models/nope.gguf not found\n");
    const r = await runCliInProcess(["train", "--from-db", "--rank", "4", "--steers", "s.jsonl"], { env: fresh() });
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "steerbot: --steers, --rank: not used with --from-db, which trains on the stored steers with the configured settings (set training.rank in config/local.yaml or as STEERBOT_TRAINING__<KEY>)\n",
    );
  });
});

describe("CLI errors", () => {
  it("are one line and an exit code: usage errors exit 2", async () => {
    for (const args of [["train", "--modle", "x"], ["no-such-command"], ["align", "--shown-file", "x"], ["train"]]) {
      const r = await runCliInProcess(args, { env: fresh() });
      assert.equal(r.code, 2, args.join(" "));
      oneLine(r.stderr);
    }
    const typo = await runCliInProcess(["train", "--modle", "x"], { env: fresh() });
    assert.equal(typo.stderr, "error: unknown option '--modle' (Did you mean --model?) (--help for usage)\n");
  });

  it("a bad configuration is named by key, exit 2", async () => {
    const r = await runCliInProcess(["steers", "list"], { env: { ...fresh(), STEERBOT_MODEL__THREADS: "many" } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^steerbot: invalid configuration:\n {2}model\.threads: /);
  });
});
