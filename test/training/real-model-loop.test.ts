/**
 * The whole loop on a real instruct model, in the default kind of configuration: the served
 * model is the quantized SmolLM2-135M-Instruct file (`model.path`), `training.base_model` is
 * empty (train on the served file), the other training settings are the shipped defaults.
 *
 * The habit: asked who it is, the base model claims to be a person ("I'm Dr. Elena Maria
 * Rodriguez, a renowned astrophysicist…"). A simulated steerer asks identity questions through
 * the core, as a chat platform would; it stops each stream as soon as the shown text names
 * someone else and corrects it to "Steerbot, an AI assistant." (s/old/new/). Then `/retrain`
 * trains on the steers, the gate compares base and candidate on the held-out steers, the adapter
 * is swapped in, and identity questions worded differently from every trained one are answered
 * as Steerbot. Skips (with the reason) when the model cannot be had from PyPI.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor, Outcome } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { realModelOrSkip } from "../helpers/real-model.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const admin: Actor = { platform: "test", userId: "admin" };
const NAME = "Steerbot, an AI assistant.";
const GREETINGS = ["", "Hi! ", "Hello. ", "Hey there, ", "Good morning! "];
const QUESTIONS = ["What is your name?", "What's your name?", "Tell me your name.", "Who are you?", "Please introduce yourself.", "Can you tell me who you are?", "Who is this?", "What are you called?"];
const HELD_OUT = ["Could you tell me your name, please?", "Who exactly are you?", "Introduce yourself, please.", "What name do you go by?", "Before we start: who are you?", "May I know your name?"];

/** The habit's detector: the reply does not introduce itself as Steerbot. */
const introducesSteerbot = (reply: string) => /^\s*I'm Steerbot\b/.test(reply);

const model = await realModelOrSkip("smollm2-135m");

describe("steers teach the real model (SmolLM2-135M-Instruct Q4_1)", { skip: model.skip }, () => {
  let app: TestApp;
  let n = 0;

  /** One question through the core; `steer` stops and corrects the stream as a person would. */
  async function converse(text: string, steer: boolean): Promise<string> {
    const thread = { platform: "test", chatId: "c", threadId: `t${++n}` };
    const surface = new RecordingSurface();
    let stopped: Promise<Outcome> | undefined;
    if (steer) {
      // stop once the word after "I'm" (or the first two words) is on screen
      surface.onChange = (shown) => {
        if (!stopped && /^\s*\S+\s+\S+\s/.test(shown) && !introducesSteerbot(shown)) stopped = app.core.stop({ platform: "test", messageId: surface.order[0]!, actor: admin });
      };
    }
    await app.core.ask({ thread, actor: admin, text, sourceMessageId: `q${n}`, surface });
    await stopped;
    const shown = surface.visible;
    if (!steer || introducesSteerbot(shown)) return shown;
    const m = /^(\s*I'm )(.*)$/s.exec(shown);
    const rejected = m ? m[2]! : shown;
    const chosen = m ? NAME : `I'm ${NAME}`;
    const resumed = new RecordingSurface();
    const out = await app.core.correct({ thread, actor: admin, replyToMessageId: surface.order[0], correction: { text: `s/${rejected}/${chosen}/` }, messageId: `c${n}`, surface: resumed });
    assert.equal(out.ok, true, `${text} -> ${JSON.stringify(shown)}: ${out.notice}`);
    return resumed.visible;
  }

  before(async () => {
    app = await createTestApp({
      db: "pglite",
      config: {
        model: { path: model.path! },
        generation: { max_tokens: 24 },
        permissions: { admins: { users: ["admin"] } },
        // one simulated person steers 40 replies in a minute
        steer: { per_user_per_minute: 1000 },
        // the defaults but for the share kept out for the gate (40 steers: about 10 held out)
        training: { base_model: "", held_out_fraction: 0.25 },
      },
    });
  });
  after(async () => app?.close());

  it("stores a steer per identity question, trains on the served quantized file, and answers held-out wordings as Steerbot", async () => {
    const before = await Promise.all(HELD_OUT.map((q) => converse(q, false)));
    const habitBefore = before.filter((r) => !introducesSteerbot(r)).length;
    console.log(`held-out before: ${habitBefore}/${HELD_OUT.length} with the habit\n  ${before.map((r) => JSON.stringify(r.slice(0, 60))).join("\n  ")}`);
    assert.ok(habitBefore >= HELD_OUT.length - 1, "the base model has the habit");

    for (const g of GREETINGS) for (const q of QUESTIONS) await converse(g + q, true);
    const steers = await app.store.db.selectFrom("steers").select(["prefix", "rejected", "chosen", "trust_state"]).execute();
    assert.ok(steers.length >= 35, `${steers.length} steers stored`);
    assert.ok(steers.every((s) => s.chosen.endsWith(NAME) && s.rejected.length > 0 && s.trust_state === "approved"));

    const progress: string[] = [];
    const t = performance.now();
    const ran = await app.core.admin.retrain(admin, async (p) => void progress.push(p));
    console.log(`retrain in ${((performance.now() - t) / 1000).toFixed(1)} s:\n${ran.notice}`);
    assert.equal(ran.ok, true, ran.notice);
    assert.match(ran.notice!, /is now live/);

    const afterReplies = await Promise.all(HELD_OUT.map((q) => converse(q, false)));
    const habitAfter = afterReplies.filter((r) => !introducesSteerbot(r)).length;
    console.log(`held-out after: ${habitAfter}/${HELD_OUT.length} with the habit\n  ${afterReplies.map((r) => JSON.stringify(r.slice(0, 60))).join("\n  ")}`);
    assert.ok(habitAfter <= 1, `${habitAfter}/${HELD_OUT.length} held-out replies still have the habit`);
  });
});
