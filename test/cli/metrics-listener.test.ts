/**
 * The metrics listener of `steerbot start`, `web` and `worker` (`metrics.enabled`): off
 * loopback without STEERBOT_METRICS_TOKEN it is refused (exit 2) before anything loads; the
 * binary started with it prints where the metrics are, serves them with the bearer token only,
 * the studio's /metrics wants the same token, and both stop on SIGINT.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { runCliInProcess } from "../helpers/cli.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus-text.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const TOKEN = "metrics-token-for-the-cli-test";

const base = () => ({
  STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-metrics-")),
  DATABASE_URL: "",
  DISCORD_TOKEN: "",
  TELEGRAM_TOKEN: "",
  STEERBOT_WEB_TOKEN: "",
  STEERBOT_METRICS_TOKEN: "",
});

describe("the metrics listener's host", () => {
  for (const [args, env] of [
    [["web"], {}],
    [["start"], {}],
    [["worker"], { DATABASE_URL: "postgres://steerbot@127.0.0.1:9/never" }],
  ] as const) {
    it(`steerbot ${args.join(" ")} with metrics on 0.0.0.0 and no STEERBOT_METRICS_TOKEN is refused before anything loads`, async () => {
      const r = await runCliInProcess([...args], {
        env: { ...base(), ...env, STEERBOT_METRICS__ENABLED: "true", STEERBOT_METRICS__HOST: "0.0.0.0", STEERBOT_MODEL__PATH: "models/no-such-model.gguf" },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^steerbot: the metrics listener would listen on 0\.0\.0\.0, reachable from other machines, and STEERBOT_METRICS_TOKEN is not set/);
      assert.doesNotMatch(r.stderr, /model file not found|ECONNREFUSED/, "refused before the model and the database");
    });
  }
});

describe("steerbot web with metrics.enabled", () => {
  it("prints the metrics URL, serves them with the bearer token only (the studio's /metrics too), stops on SIGINT", async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...base(),
      STEERBOT_MODEL__PATH: await tinyModelPath(),
      STEERBOT_WEB__PORT: "0",
      STEERBOT_METRICS__ENABLED: "true",
      STEERBOT_METRICS__PORT: "0",
      STEERBOT_METRICS_TOKEN: TOKEN,
    };
    delete env.STEERBOT_CONFIG;
    const child = spawn(process.execPath, [path.join(projectRoot, "bin", "steerbot.js"), "web"], { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      const [studio, metrics] = await new Promise<[string, string]>((resolve, reject) => {
        child.stdout.on("data", (d) => {
          stdout += d;
          const s = /steerbot studio: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
          const m = /steerbot metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics) \(Authorization: Bearer \$STEERBOT_METRICS_TOKEN\)/.exec(stdout);
          if (s && m) resolve([s[1]!, m[1]!]);
        });
        void exited.then((code) => reject(new Error(`exited ${code} before serving:\n${stdout}\n${stderr}`)));
      });
      for (const url of [metrics, `${studio}metrics`]) {
        assert.equal((await fetch(url)).status, 401, url);
        const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(res.status, 200, url);
        const m = parsePrometheusText(await res.text());
        assert.equal(sampleValue(m, "steerbot_instances_alive", { role: "bot" }), 1);
        assert.equal(sampleValue(m, "steerbot_database_up"), 1);
      }
    } finally {
      child.kill("SIGINT");
    }
    assert.equal(await exited, 0, stderr);
  });
});
