/**
 * `steerbot start` (what `npm start` runs): without bot tokens it serves the studio and prints
 * its URL — on the demo model when the shipped default cannot be downloaded; a model someone
 * configured stays an error, one line and exit 1 (see also playground.test.ts for `chat`); a
 * studio host other than loopback without STEERBOT_WEB_TOKEN is refused before anything loads.
 * The errors run the command in this process (test/helpers/cli.ts); the studio that serves and
 * stops on SIGINT is the binary in a child process.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { runCliInProcess } from "../helpers/cli.ts";

const base = () => ({
  STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-start-")),
  DATABASE_URL: "",
  DISCORD_TOKEN: "",
  TELEGRAM_TOKEN: "",
  STEERBOT_WEB_TOKEN: "",
  HF_ENDPOINT: "http://127.0.0.1:9/", // discard port: nothing answers, as offline
  MODEL_ENDPOINT: "",
});

describe("steerbot start with a configured model that cannot be had", () => {
  it("a typo in model.path is an error naming the file, not the demo model", async () => {
    const r = await runCliInProcess(["start"], { env: { ...base(), STEERBOT_MODEL__PATH: "models/no-such-model.gguf" } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^steerbot: model file not found: \S*models\/no-such-model\.gguf/);
    assert.doesNotMatch(r.stdout, /DEMO MODEL/);
  });

  it("a configured hf: URI that cannot be downloaded is an error, not the demo model", async () => {
    const r = await runCliInProcess(["start"], { env: { ...base(), STEERBOT_MODEL__PATH: "hf:someone/Some-Model-GGUF:Q4_K_M" } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^steerbot: cannot get model hf:someone\/Some-Model-GGUF:Q4_K_M/);
    assert.doesNotMatch(r.stdout, /DEMO MODEL/);
  });
});

describe("the studio's host", () => {
  for (const args of [["web", "--host", "0.0.0.0"], ["start"]]) {
    it(`steerbot ${args.join(" ")} on a non-loopback host without STEERBOT_WEB_TOKEN is refused, before any model loads`, async () => {
      const r = await runCliInProcess(args, { env: { ...base(), STEERBOT_WEB__HOST: "0.0.0.0", STEERBOT_MODEL__PATH: "models/no-such-model.gguf" } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^steerbot: the studio would listen on 0\.0\.0\.0, reachable from other machines, and STEERBOT_WEB_TOKEN is not set/);
      assert.doesNotMatch(r.stderr, /model file not found/, "refused before the model");
    });
  }
});

describe("npm start without bot tokens, offline, with the shipped default model", () => {
  it("serves the studio on the demo model, prints its URL and a banner, answers a question, stops on SIGINT", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...base(), STEERBOT_WEB__PORT: "0", STEERBOT_GENERATION__MAX_TOKENS: "8" };
    delete env.STEERBOT_MODEL__PATH; // the shipped default, an hf: URI
    delete env.STEERBOT_CONFIG;
    const child = spawn(process.execPath, [path.join(projectRoot, "bin", "steerbot.js"), "start"], { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on("data", (d) => {
          stdout += d;
          const m = /steerbot studio: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`exited ${code} before serving:\n${stdout}\n${stderr}`)));
      });
      assert.match(stdout, /DEMO MODEL: random weights/);
      const demo = /Demo model: (\S+\.gguf)/.exec(stdout)![1]!;
      assert.ok(existsSync(demo));
      assert.ok(stdout.includes(`model ${demo}`), "the studio runs on the demo model");

      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<label for="message">Message<\/label>/);
      const cookie = page.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
      const session = await fetch(`${url}api/session`, { headers: { cookie } });
      const cookies = [cookie, ...session.headers.getSetCookie().map((c) => c.split(";")[0])].join("; ");
      const { csrfToken } = (await session.json()) as { csrfToken: string };
      const ask = await fetch(`${url}api/ask`, {
        method: "POST",
        headers: { cookie: cookies, "content-type": "application/json", "x-csrf-token": csrfToken },
        body: JSON.stringify({ conversation: "smoke", text: "Hello there" }),
      });
      const events = await ask.text();
      const end = JSON.parse(events.trim().split("\n\n").at(-1)!.slice("data: ".length)) as { ok: boolean; reply: { text: string; state: string } };
      assert.equal(end.ok, true, events);
      assert.equal(end.reply.state, "done");
      assert.ok(end.reply.text.length > 0, "the demo model answered");
    } finally {
      child.kill("SIGINT");
    }
    assert.equal(await exited, 0, stderr);
  });
});
