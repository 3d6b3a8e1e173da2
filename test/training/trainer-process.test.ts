/**
 * The trainer ends with the process that started it, however that process dies: a bot killed
 * with SIGKILL mid-run must not leave steer-train holding every core for the rest of its run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { buildTrainer } from "../../src/training/build-trainer.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

/** Resolves once `pid` has exited (gone, or a zombie nobody reaped yet); false after `ms`. */
async function exited(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    } catch {
      return true;
    }
    if (state === "Z" || state === "X") return true;
    if (Date.now() > deadline) return false;
    // no exit event exists for a process that is not our child: look again shortly
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the trainer process", { skip: process.platform !== "linux" && "parent-death signal is Linux only" }, () => {
  let dir: string;
  let model: string;
  before(async () => {
    model = await tinyModelPath();
    await buildTrainer({ log: (l) => process.stderr.write(`[build] ${l}\n`) });
    dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-orphan-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("ends at once when the bot that started it is killed with SIGKILL", async () => {
    const bot = spawn(process.execPath, ["--import", "tsx", path.join(projectRoot, "test/fixtures/trainer-in-child.ts"), model, dir], { stdio: ["ignore", "pipe", "inherit"] });
    const exitedBot = new Promise((r) => bot.once("exit", r));
    let trainer: number | undefined;
    try {
      for await (const line of createInterface({ input: bot.stdout })) {
        trainer = (JSON.parse(line) as { trainerPid: number }).trainerPid;
        break;
      }
      assert.ok(trainer, "the child printed no trainer pid");
      bot.kill("SIGKILL");
      await exitedBot;
      // Its one optimizer step runs for minutes with nothing to write: without the
      // parent-death signal the trainer would still be running long after this bound.
      assert.ok(await exited(trainer, 15_000), `steer-train (pid ${trainer}) still runs after its parent was killed`);
    } finally {
      bot.kill("SIGKILL");
      if (trainer) {
        try {
          process.kill(trainer, "SIGKILL");
        } catch {
          // already gone: what the test wants
        }
      }
    }
  });
});
