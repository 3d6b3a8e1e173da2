/**
 * `steerbot start` when the model cannot be had: only the shipped default falls back to the demo
 * model (see playground.test.ts); a model someone configured stays an error, one line and exit 1.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../helpers/cli.ts";

const base = () => ({
  STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-start-")),
  DATABASE_URL: "",
  DISCORD_TOKEN: "",
  TELEGRAM_TOKEN: "",
  HF_ENDPOINT: "http://127.0.0.1:9/", // discard port: nothing answers, as offline
  MODEL_ENDPOINT: "",
});

describe("steerbot start with a configured model that cannot be had", () => {
  it("a typo in model.path is an error naming the file, not the demo model", async () => {
    const r = await runCli(["start"], { env: { ...base(), STEERBOT_MODEL__PATH: "models/no-such-model.gguf" } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^steerbot: model file not found: \S*models\/no-such-model\.gguf/);
    assert.doesNotMatch(r.stdout, /DEMO MODEL/);
  });

  it("a configured hf: URI that cannot be downloaded is an error, not the demo model", async () => {
    const r = await runCli(["start"], { env: { ...base(), STEERBOT_MODEL__PATH: "hf:someone/Some-Model-GGUF:Q4_K_M" } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^steerbot: cannot get model hf:someone\/Some-Model-GGUF:Q4_K_M/);
    assert.doesNotMatch(r.stdout, /DEMO MODEL/);
  });
});
