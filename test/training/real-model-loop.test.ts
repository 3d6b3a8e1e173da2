/**
 * The whole loop on a real instruct model, in the default kind of configuration: the served
 * model is the quantized SmolLM2-135M-Instruct file (`model.path`), `training.base_model` is
 * empty (train on the served file), the other training settings are the shipped defaults.
 *
 * The habit: asked who it is, the base model claims to be a person ("I'm Dr. Elena Maria
 * Rodriguez, a renowned astrophysicist…"). A simulated steerer (test/helpers) asks identity
 * questions through the core, as a chat platform would; it stops each stream as soon as the
 * shown text names someone else and quotes it with the fix "Steerbot, an AI assistant.". Then `/retrain`
 * trains on the steers, the gate compares base and candidate on the held-out steers, the adapter
 * is swapped in, and identity questions worded differently from every trained one are answered
 * as Steerbot. Skips (with the reason) when the model cannot be had from PyPI.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor } from "../../src/core/ports.ts";
import { TRAINING_DEFAULTS } from "../../src/training/training-options.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { introducesSteerbot, persona, PERSONA_NAME } from "../helpers/habits.ts";
import { realModelOrSkip } from "../helpers/real-model.ts";
import { SimulatedSteerer } from "../helpers/simulated-steerer.ts";

const admin: Actor = { platform: "test", userId: "admin" };
// the 40 prompts this test has always steered: the first 5 frames with the first 8 openers (prompt i = opener i/8, frame i%8)
const TRAIN = persona.train.filter((_, i) => i % 8 < 5 && i < 64);
const HELD_OUT = persona.heldOut.slice(0, 6); // 6 wordings, each of another frame

const model = await realModelOrSkip("smollm2-135m");

describe("steers teach the real model (SmolLM2-135M-Instruct Q4_1)", { skip: model.skip }, () => {
  let app: TestApp;
  let steerer: SimulatedSteerer;

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
        // (and the shipped retention weight, which createTestApp turns off for the tiny model)
        training: { base_model: "", held_out_fraction: 0.25, retention: TRAINING_DEFAULTS.retention },
      },
    });
    steerer = new SimulatedSteerer(app.core, admin);
  });
  after(async () => app?.close());

  it("stores a steer per identity question, trains on the served quantized file, and answers held-out wordings as Steerbot", async () => {
    const ask = async () => Promise.all(HELD_OUT.map(async (q) => (await steerer.converse(q, null)).text));
    const before = await ask();
    const habitBefore = before.filter((r) => !introducesSteerbot(r)).length;
    console.log(`held-out before: ${habitBefore}/${HELD_OUT.length} with the habit\n  ${before.map((r) => JSON.stringify(r.slice(0, 60))).join("\n  ")}`);
    assert.ok(habitBefore >= HELD_OUT.length - 1, "the base model has the habit");

    for (const q of TRAIN) await steerer.converse(q, persona);
    const steers = await app.store.db.selectFrom("steers").select(["prefix", "rejected", "chosen", "trust_state", "form"]).execute();
    assert.ok(steers.length >= 35, `${steers.length} steers stored`);
    assert.ok(steers.every((s) => s.chosen.endsWith(PERSONA_NAME) && s.rejected.length > 0 && s.trust_state === "approved" && s.form === "quote"), JSON.stringify(steers.slice(0, 3)));

    const t = performance.now();
    const ran = await app.core.admin.retrain(admin, async () => {});
    console.log(`retrain in ${((performance.now() - t) / 1000).toFixed(1)} s:\n${ran.notice}`);
    assert.equal(ran.ok, true, ran.notice);
    assert.match(ran.notice!, /is now live/);

    const afterReplies = await ask();
    const habitAfter = afterReplies.filter((r) => !introducesSteerbot(r)).length;
    console.log(`held-out after: ${habitAfter}/${HELD_OUT.length} with the habit\n  ${afterReplies.map((r) => JSON.stringify(r.slice(0, 60))).join("\n  ")}`);
    // Measured over fresh-clone CI runs at the default lr 5e-4: 0/6, 0/6, 2/6 (the steers
    // differ run to run: the bot samples the replies they correct); the base model has the habit
    // in 5 or 6 of 6 (asserted above). At most 2 of 6 left is the margin those runs show.
    assert.ok(habitAfter <= 2, `${habitAfter}/${HELD_OUT.length} held-out replies still have the habit`);
  });
});
