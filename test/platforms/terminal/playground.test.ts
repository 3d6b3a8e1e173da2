/**
 * End to end: the real `steerbot chat` program in a real terminal (tmux), driven by key
 * presses as a person would, then the stored steer read back from its database; and `steerbot chat`
 * on a machine that cannot download the default model.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { Store } from "../../../src/store/store.ts";
import { freeLoopbackPort } from "../../helpers/free-port.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";

let session = `steerbot-test-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session);
const killSession = () => {
  try {
    tmux("kill-session", "-t", session);
  } catch {
    /* already gone */
  }
};

async function waitFor(re: RegExp, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = screen();
    if (re.test(s)) return s;
    if (Date.now() > end) throw new Error(`screen never matched ${re}:\n${s}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("terminal playground", () => {
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "steerbot-play-"));
    const model = await tinyModelPath();
    const env = [
      `STEERBOT_STORE__DATA_DIR=${dataDir}`,
      `STEERBOT_MODEL__PATH=${model}`,
      "STEERBOT_MODEL__THREADS=1",
      "STEERBOT_GENERATION__MAX_TOKENS=4000",
      "STEERBOT_GENERATION__TEMPERATURE=0",
      "STEERBOT_STREAM__EDIT_INTERVAL_MS=100",
      "DATABASE_URL=",
    ].join(" ");
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", `cd ${projectRoot} && env ${env} node bin/steerbot.js chat 2>/dev/null; echo EXITED $?; sleep 60`);
  });
  after(killSession);

  it("streams, stops on a key, takes a correction, resumes, and stores the steer", async () => {
    await waitFor(/you> $/m, 180_000);
    tmux("send-keys", "-t", session, "Tell me a story", "Enter");
    await waitFor(/bot> [^\n]*\S/);
    tmux("send-keys", "-t", session, "x");
    const stopped = await waitFor(/\[stopped\]\s*\n.*correction> $/m);
    assert.match(stopped, /\[stopped\]/);
    tmux("send-keys", "-t", session, "Once upon a time there was a dragon.", "Enter");
    await waitFor(/correction> Once upon a time there was a dragon\.\nbot> [^]*dragon\./);
    const after = await waitFor(/dragon\.[^]*\nyou> $/m, 120_000);
    assert.doesNotMatch(after, /approval/, "no steer of the operator waits for an admin");
    tmux("send-keys", "-t", session, "/quit", "Enter");
    await waitFor(/EXITED 0/);

    const store = await Store.open({ dataDir });
    try {
      const steers = await store.steers.list();
      assert.equal(steers.length, 1);
      const s = steers[0]!;
      assert.equal(s.platform, "terminal");
      assert.equal(s.trust_state, "approved", "the person at the terminal is the operator: their steers train");
      assert.ok(s.chosen.endsWith("Once upon a time there was a dragon."), s.chosen);
      assert.ok(s.prefix_tokens && s.chosen_tokens && s.chosen_tokens.length > 3);
      const gen = await store.db.selectFrom("generations").selectAll().where("id", "=", s.generation_id!).executeTakeFirstOrThrow();
      assert.ok(gen.final_text!.startsWith(s.prefix + s.chosen), "the reply resumed from prefix + chosen");
      assert.ok(s.shown_chars! > 0 && s.shown_chars! === (s.prefix + s.rejected).length);
    } finally {
      await store.close();
    }
  });
});

// `npm start` serves the studio now (its offline fallback: test/cli/start.test.ts); `steerbot chat` keeps the playground's.
describe("steerbot chat with the default model on a machine that cannot download it", () => {
  before(async () => {
    session = `steerbot-test-offline-${process.pid}`;
    const dataDir = mkdtempSync(path.join(tmpdir(), "steerbot-offline-"));
    const env = [
      `STEERBOT_STORE__DATA_DIR=${dataDir}`, // no model cached there
      `HF_ENDPOINT=http://127.0.0.1:${await freeLoopbackPort()}/`, // nothing listens there: as offline
      "MODEL_ENDPOINT=",
      "DISCORD_TOKEN=",
      "TELEGRAM_TOKEN=",
      "DATABASE_URL=",
      "STEERBOT_STREAM__EDIT_INTERVAL_MS=100",
    ].join(" ");
    // no model.path and no config file from the caller's environment: the shipped default, an hf: URI
    const unset = "-u STEERBOT_MODEL__PATH -u STEERBOT_CONFIG";
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", `cd ${projectRoot} && env ${unset} ${env} node bin/steerbot.js chat 2>&1; echo EXITED $?; sleep 60`);
  });
  after(killSession);

  it("opens the playground on the demo model, with a banner that says so and how to use a real one", async () => {
    const s = await waitFor(/you> $/m, 300_000);
    assert.match(s, /DEMO MODEL: random weights/);
    assert.match(s, /The default model hf:\S+ could not be downloaded/);
    assert.match(s, /STEERBOT_MODEL__PATH=\/path\/to\/model\.gguf npm start/);
    const demo = /Demo model: (\S+\.gguf)/.exec(s)![1]!;
    assert.ok(existsSync(demo), `the demo model is cached at ${demo}`);
    assert.ok(s.includes(`steerbot playground — model ${demo}`), "the playground runs on the demo model");
    tmux("send-keys", "-t", session, "Hello there", "Enter");
    await waitFor(/bot> [^\n]*\S/);
    await waitFor(/bot> [^]*\nyou> $/m, 120_000);
    tmux("send-keys", "-t", session, "/quit", "Enter");
    await waitFor(/EXITED 0/);
  });
});
