/**
 * End to end: the real `steerbot chat` program in a real terminal (tmux), driven by key
 * presses as a person would, then the stored steer read back from its database.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { Store } from "../../../src/store/store.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";

const session = `steerbot-test-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session);

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
  after(() => {
    try {
      tmux("kill-session", "-t", session);
    } catch {
      /* already gone */
    }
  });

  it("streams, stops on a key, takes a correction, resumes, and stores the steer", async () => {
    await waitFor(/you> $/m, 180_000);
    tmux("send-keys", "-t", session, "Tell me a story", "Enter");
    await waitFor(/bot> [^\n]*\S/);
    tmux("send-keys", "-t", session, "x");
    const stopped = await waitFor(/\[stopped\]\s*\n.*correction> $/m);
    assert.match(stopped, /\[stopped\]/);
    tmux("send-keys", "-t", session, "Once upon a time there was a dragon.", "Enter");
    await waitFor(/correction> Once upon a time there was a dragon\.\nbot> [^]*dragon\./);
    await waitFor(/dragon\.[^]*\nyou> $/m, 120_000);
    tmux("send-keys", "-t", session, "/quit", "Enter");
    await waitFor(/EXITED 0/);

    const store = await Store.open({ dataDir });
    try {
      const steers = await store.steers.list();
      assert.equal(steers.length, 1);
      const s = steers[0]!;
      assert.equal(s.platform, "terminal");
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
