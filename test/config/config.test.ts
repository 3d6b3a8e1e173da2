import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig, redactUrl } from "../../src/config/config.ts";

/** The sharding settings of the discord section. */
const pick = (d: { shards: unknown; shard_count: unknown }) => ({ shards: d.shards, shard_count: d.shard_count });

describe("config", () => {
  it("loads the documented defaults", () => {
    const { config, secrets } = loadConfig({ env: {} });
    assert.equal(config.store.data_dir, "./data");
    assert.equal(config.model.threads, 0);
    assert.equal(config.discord.stop_emoji, "🛑");
    assert.deepEqual(secrets, { discordToken: undefined, telegramToken: undefined, telegramWebhookSecret: undefined, databaseUrl: undefined });
  });

  it("layers a local file and STEERBOT_ env variables", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    const local = path.join(dir, "local.yaml");
    writeFileSync(local, "model:\n  threads: 3\ngeneration:\n  temperature: 0.1\n");
    const { config } = loadConfig({ env: { STEERBOT_CONFIG: local, STEERBOT_MODEL__THREADS: "2", STEERBOT_PERMISSIONS__ADMINS__USERS: '["123456789012345678", "43"]' } });
    assert.equal(config.model.threads, 2);
    assert.equal(config.generation.temperature, 0.1);
    assert.deepEqual(config.permissions.admins.users, ["123456789012345678", "43"]);
  });

  it("refuses an unquoted id (YAML would round it) naming the key", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    const local = path.join(dir, "local.yaml");
    writeFileSync(local, "permissions:\n  trusted:\n    users: [123456789012345678]\n");
    const quoted = /ids are strings: write it in quotes/;
    assert.throws(
      () => loadConfig({ env: { STEERBOT_CONFIG: local } }),
      (e: Error) => e instanceof ConfigError && /^ {2}permissions\.trusted\.users\.0: ids are strings: write it in quotes \("…"\)/m.test(e.message),
    );
    assert.throws(() => loadConfig({ env: { STEERBOT_PERMISSIONS__STEER__CHANNELS: "[-1001234567890]" } }), (e: Error) => /permissions\.steer\.channels\.0: /.test(e.message) && quoted.test(e.message));
    writeFileSync(local, "permissions:\n  trusted:\n    users: ['123456789012345678']\n");
    assert.deepEqual(loadConfig({ env: { STEERBOT_CONFIG: local } }).config.permissions.trusted.users, ["123456789012345678"]);
  });

  it("tells whether anyone chose the model (only the shipped default may fall back to the demo model)", () => {
    assert.equal(loadConfig({ env: {} }).modelPathIsDefault, true);
    assert.equal(loadConfig({ env: { STEERBOT_MODEL__PATH: "models/mine.gguf" } }).modelPathIsDefault, false);
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    const local = path.join(dir, "local.yaml");
    writeFileSync(local, "model:\n  path: hf:someone/Their-Model-GGUF:Q8_0\n");
    assert.equal(loadConfig({ env: { STEERBOT_CONFIG: local } }).modelPathIsDefault, false);
  });

  it("names the bad key and the expected value", () => {
    assert.throws(
      () => loadConfig({ env: { STEERBOT_MODEL__THREADS: "many" } }),
      (e: Error) => e instanceof ConfigError && /model\.threads: .*expected number.*got "many"/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ env: { STEERBOT_TRAINING__OBJECTIVE: "ppo" } }),
      (e: Error) => e instanceof ConfigError && /training\.objective: .*"sft"/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ env: { STEERBOT_MODEL__CONTEXT_SIZE: "512", STEERBOT_GENERATION__MAX_TOKENS: "512" } }),
      (e: Error) => e instanceof ConfigError && /generation\.max_tokens: must be less than model\.context_size.*\(got 512\)/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ env: { STEERBOT_GENERATION__MAX_QUEUED: "100", STEERBOT_GENERATION__MAX_WAITING: "50" } }),
      (e: Error) => e instanceof ConfigError && /generation\.max_waiting: must be at least generation\.max_queued/.test(e.message),
    );
    assert.equal(loadConfig({ env: {} }).config.generation.max_waiting, 64);
    assert.equal(loadConfig({ env: { STEERBOT_GENERATION__MAX_WAITING: "16" } }).config.generation.max_waiting, 16, "as low as max_queued (16)");
    assert.throws(() => loadConfig({ env: { STEERBOT_MODEL__TYPO: "1" } }), (e: Error) => e instanceof ConfigError && /model: .*typo/i.test(e.message));
  });

  it("refuses secrets in files and takes them from the environment", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    const local = path.join(dir, "local.yaml");
    writeFileSync(local, "discord:\n  token: abc\n");
    assert.throws(() => loadConfig({ env: { STEERBOT_CONFIG: local } }), /discord\.token looks like a secret/);
    const { secrets } = loadConfig({ env: { DISCORD_TOKEN: "d", TELEGRAM_TOKEN: "t", TELEGRAM_WEBHOOK_SECRET: "w", DATABASE_URL: "postgres://u:p@h/db" } });
    assert.deepEqual(secrets, { discordToken: "d", telegramToken: "t", telegramWebhookSecret: "w", databaseUrl: "postgres://u:p@h/db" });
    assert.equal(redactUrl("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
  });

  it("discord sharding: the default runs one shard as before; ids and count from a file or the environment, checked", () => {
    assert.deepEqual(pick(loadConfig({ env: {} }).config.discord), { shards: "all", shard_count: 1 });
    const env = { STEERBOT_DISCORD__SHARDS: "[2, 3]", STEERBOT_DISCORD__SHARD_COUNT: "4" };
    assert.deepEqual(pick(loadConfig({ env }).config.discord), { shards: [2, 3], shard_count: 4 });
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    const local = path.join(dir, "local.yaml");
    writeFileSync(local, "discord:\n  shards: [0, 1]\n  shard_count: 4\n");
    assert.deepEqual(pick(loadConfig({ env: { STEERBOT_CONFIG: local } }).config.discord), { shards: [0, 1], shard_count: 4 });
    assert.deepEqual(pick(loadConfig({ env: { STEERBOT_DISCORD__SHARDS: "auto" } }).config.discord), { shards: "auto", shard_count: 1 });
    const refused = (e: Record<string, string>, message: RegExp) =>
      assert.throws(() => loadConfig({ env: e }), (err: Error) => err instanceof ConfigError && message.test(err.message), JSON.stringify(e));
    refused({ STEERBOT_DISCORD__SHARDS: "[0, 2]", STEERBOT_DISCORD__SHARD_COUNT: "2" }, /^ {2}discord\.shards: there is no shard 2 among shard_count 2 \(ids run from 0 to 1\).*\(got \[0,2\]\)$/m);
    refused({ STEERBOT_DISCORD__SHARDS: "[0, 1]" }, /discord\.shards: there is no shard 1 among shard_count 1.*raise shard_count to the total of all instances/);
    refused({ STEERBOT_DISCORD__SHARDS: "[1, 1]", STEERBOT_DISCORD__SHARD_COUNT: "2" }, /discord\.shards: shard 1 is listed twice/);
    refused({ STEERBOT_DISCORD__SHARDS: "[-1]", STEERBOT_DISCORD__SHARD_COUNT: "2" }, /discord\.shards: shard ids are whole numbers from 0: -1 is not one/);
    refused({ STEERBOT_DISCORD__SHARDS: "[]" }, /discord\.shards: list at least one shard id/);
    refused({ STEERBOT_DISCORD__SHARDS: "some" }, /discord\.shards: expected all, auto, or the shard ids this instance runs, like \[0, 1\] \(got "some"\)/);
    refused({ STEERBOT_DISCORD__SHARD_COUNT: "0" }, /discord\.shard_count: the total number of shards of all instances: a whole number from 1/);
    refused({ STEERBOT_DISCORD__SHARD_COUNT: "2.5" }, /discord\.shard_count: /);
    refused({ STEERBOT_DISCORD__SHARDS: "auto", STEERBOT_DISCORD__SHARD_COUNT: "4" }, /discord\.shards: auto runs every shard of the count Discord recommends/);
  });

  it("says so when STEERBOT_CONFIG names a missing file", () => {
    assert.throws(() => loadConfig({ env: { STEERBOT_CONFIG: "/nonexistent/x.yaml" } }), /does not exist/);
  });
});
