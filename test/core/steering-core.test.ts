import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor, ThreadRef } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const alice: Actor = { platform: "test", userId: "alice" };
const mallory: Actor = { platform: "test", userId: "mallory" };
let threadNo = 0;
const newThread = (): ThreadRef => ({ platform: "test", chatId: "c", threadId: `t${++threadNo}` });

/** Waits until `cond` holds (polling), failing after `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}

for (const db of ["pglite", "postgres"] as const) {
  describe(`steering core on ${db}`, () => {
    let app: TestApp;
    before(async () => {
      app = await createTestApp({ db, config: { generation: { max_tokens: 400 }, permissions: { stop: { users: ["bob"] }, steer: { users: ["bob"] } } } });
    });
    after(async () => app?.close());

    it("streams a whole reply and stores the generation", async () => {
      const surface = new RecordingSurface();
      const thread = newThread();
      const out = await app.core.ask({ thread, actor: alice, text: "Hello there", sourceMessageId: "q1", surface });
      assert.equal(out.ok, true);
      assert.ok(surface.visible.length > 0);
      const gen = await app.store.db.selectFrom("generations").selectAll().orderBy("id", "desc").executeTakeFirstOrThrow();
      assert.equal(gen.status, "done");
      assert.equal(gen.final_text, surface.visible);
      // the same platform message again starts nothing
      const again = new RecordingSurface();
      await app.core.ask({ thread, actor: alice, text: "Hello there", sourceMessageId: "q1", surface: again });
      assert.equal(again.order.length, 0);
    });

    it("cuts a stop at the text shown, stores the steer and resumes from prefix + chosen", async () => {
      // Slow platform: each edit takes 30 ms, at most one per 60 ms; the model runs ahead.
      const surface = new RecordingSurface(2000, 60, 30);
      const thread = newThread();
      const asking = app.core.ask({ thread, actor: alice, text: "Tell me a long story", sourceMessageId: "q2", surface });
      await until(() => surface.visible.length > 20 && surface.edits >= 2);
      const seenBefore = surface.visible;
      const stopped = await app.core.stop({ platform: "test", messageId: surface.order[0]!, actor: alice });
      assert.equal(stopped.ok, true);
      await asking;
      const shown = surface.visible;
      assert.ok(shown.startsWith(seenBefore), "the cut keeps what was seen");
      const gen = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", "q2").executeTakeFirstOrThrow();
      assert.equal(gen.status, "stopped");
      assert.equal(gen.final_text, shown, "the stop point is exactly the text shown");
      assert.equal(app.core.openReplyIn(thread)?.state, "stopped");

      // A correction that replaces the end of what was shown.
      const resumed = new RecordingSurface(2000, 0, 5, "r");
      // What the thread's history says once the steer is stored, before the resumed stream
      // ends (a crash then must not leave the rejected text for the next question's context).
      let historyAtResume: Promise<string[]> | undefined;
      resumed.onChange = () =>
        void (historyAtResume ??= app.store.db
          .selectFrom("messages")
          .innerJoin("threads", "threads.id", "messages.thread_id")
          .select("messages.text")
          .where("threads.platform_thread_id", "=", thread.threadId)
          .where("messages.role", "=", "assistant")
          .execute()
          .then((rows) => rows.map((r) => r.text)));
      const corr = await app.core.correct({
        thread,
        actor: alice,
        replyToMessageId: surface.order[0],
        correction: { text: "s/" + lastWithoutDelimiter(shown, 5) + "/ and then the dragon slept/" },
        messageId: "corr-1",
        surface: resumed,
      });
      assert.equal(corr.ok, true, corr.notice);
      const steer = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", "corr-1").executeTakeFirstOrThrow();
      assert.equal(steer.prefix + steer.rejected, shown, "prefix + rejected is exactly what was shown");
      assert.ok(steer.chosen.endsWith(" and then the dragon slept"));
      assert.equal(steer.shown_chars, shown.length);
      assert.equal(steer.trust_state, "approved");
      assert.equal(steer.form, "substitute");
      assert.ok(steer.prefix_tokens!.length > 0 && steer.chosen_tokens!.length > 0);
      assert.equal(app.engine.detokenize(steer.prefix_tokens!), steer.prefix, "prefix tokens are the generated tokens of the prefix");
      assert.equal(app.engine.detokenize(steer.chosen_tokens!), steer.chosen);
      // the resumed reply starts with exactly prefix + chosen and goes on
      assert.ok(resumed.visible.startsWith(steer.prefix + steer.chosen), "resume continues from prefix + chosen");
      assert.ok(resumed.visible.length > (steer.prefix + steer.chosen).length, "the model went on writing");
      assert.deepEqual(await historyAtResume, [steer.prefix + steer.chosen], "the history holds the corrected text as soon as the steer is stored");

      // the same correction delivered again changes nothing: no second resume, no new text
      const textBefore = (await app.store.db.selectFrom("generations").select("final_text").where("id", "=", steer.generation_id).executeTakeFirstOrThrow()).final_text;
      const dupSurface = new RecordingSurface();
      const dup = await app.core.correct({ thread, actor: alice, replyToMessageId: surface.order[0], correction: { text: "again" }, messageId: "corr-1", surface: dupSurface });
      assert.deepEqual(dup, { ok: true });
      assert.equal(dupSurface.order.length, 0, "nothing was streamed again");
      assert.equal((await app.store.db.selectFrom("generations").select("final_text").where("id", "=", steer.generation_id).executeTakeFirstOrThrow()).final_text, textBefore);
      const n = await app.store.db.selectFrom("steers").select((eb) => eb.fn.countAll<number>().as("n")).where("correction_message_id", "=", "corr-1").executeTakeFirstOrThrow();
      assert.equal(Number(n.n), 1);

      // a second steer on the same reply chains onto it (after done: the whole text was shown)
      const second = await app.core.correct({
        thread,
        actor: alice,
        replyToMessageId: resumed.order[0],
        correction: { text: "The end." },
        messageId: "corr-2",
        surface: new RecordingSurface(),
      });
      assert.equal(second.ok, true, second.notice);
      const steers = await app.store.db.selectFrom("steers").selectAll().where("generation_id", "=", steer.generation_id).orderBy("ordinal").execute();
      assert.deepEqual(steers.map((s) => s.ordinal), [0, 1]);
      assert.ok(steers[1]!.prefix.startsWith(steer.prefix + steer.chosen), "the second steer's prefix holds the first correction");
    });

    it("ignores a stranger's stop and lets the configured stopper stop", async () => {
      const surface = new RecordingSurface(2000, 40, 20);
      const thread = newThread();
      const asking = app.core.ask({ thread, actor: alice, text: "Count to a thousand", sourceMessageId: "q3", surface });
      await until(() => surface.order.length > 0);
      const ignored = await app.core.stop({ platform: "test", messageId: surface.order[0]!, actor: mallory });
      assert.deepEqual(ignored, { ok: false });
      assert.equal(app.core.openReplyIn(thread)?.state, "generating");
      const bob: Actor = { platform: "test", userId: "bob" };
      const stopped = await app.core.stop({ platform: "test", messageId: surface.order[0]!, actor: bob });
      assert.equal(stopped.ok, true);
      // stopping twice is harmless
      assert.deepEqual(await app.core.stop({ platform: "test", messageId: surface.order[0]!, actor: bob }), { ok: true });
      await asking;
      const gen = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", "q3").executeTakeFirstOrThrow();
      assert.equal(gen.final_text, surface.visible);
      // a stranger's correction is ignored and stores nothing
      const c = await app.core.correct({ thread, actor: mallory, correction: { text: "nope nope" }, messageId: "corr-m", surface: new RecordingSurface() });
      assert.equal(c.ok, false);
      assert.equal(await app.store.steers.findByCorrection("test", "corr-m"), undefined);
    });

    it("treats a correction while generating as stop + correct", async () => {
      const surface = new RecordingSurface(2000, 40, 20);
      const thread = newThread();
      const asking = app.core.ask({ thread, actor: alice, text: "Explain the sea", sourceMessageId: "q4", surface });
      await until(() => surface.visible.length > 5);
      const resumed = new RecordingSurface();
      const out = await app.core.correct({ thread, actor: alice, correction: { text: "Actually, the sea is salty." }, messageId: "corr-4", surface: resumed });
      assert.equal(out.ok, true, out.notice);
      await asking;
      const steer = await app.store.steers.findByCorrection("test", "corr-4");
      assert.ok(steer);
      assert.equal(steer.prefix + steer.rejected, surface.visible);
      assert.ok(resumed.visible.startsWith(steer.prefix + steer.chosen));
    });

    it("explains an unusable correction and stores nothing", async () => {
      const surface = new RecordingSurface();
      const thread = newThread();
      await app.core.ask({ thread, actor: alice, text: "Hi", sourceMessageId: "q5", surface });
      for (const [text, re] of [
        ["   ", /empty|write/i],
        ["s/zzzz-not-there/x/", /zzzz-not-there|not find|couldn't find|can't find/i],
        ["x".repeat(2001), /2000/],
        ["s|foo", /s\|old\|new\| but I can't read it/],
        ["\u200b\u200d\u2060", /empty/],
      ] as const) {
        const id = `bad-${[...text].map((c) => c.codePointAt(0)).join("-").slice(0, 40)}`;
        const out = await app.core.correct({ thread, actor: alice, correction: { text }, messageId: id, surface: new RecordingSurface() });
        assert.equal(out.ok, false);
        assert.match(out.notice ?? "", re);
        assert.equal(await app.store.steers.findByCorrection("test", id), undefined);
      }
      assert.equal((await app.store.steers.list({ states: ["approved", "pending", "rejected"] })).filter((s) => s.correction_message_id?.startsWith("bad-")).length, 0);
    });

    it("stores steers of untrusted people as pending for admins", async () => {
      const strict = await createTestApp({ db, config: { permissions: { default_trust: "pending", admins: { users: ["root"] } } } });
      try {
        const surface = new RecordingSurface();
        const thread = newThread();
        await strict.core.ask({ thread, actor: alice, text: "Hi", sourceMessageId: "p1", surface });
        const out = await strict.core.correct({ thread, actor: alice, correction: { text: "Good morning to you." }, messageId: "p-corr", surface: new RecordingSurface() });
        assert.match(out.notice ?? "", /approval/);
        const steer = await strict.store.steers.findByCorrection("test", "p-corr");
        assert.equal(steer?.trust_state, "pending");
        assert.deepEqual(await strict.core.admin.pendingSteers(alice), { ok: false, notice: "Sorry, only admins can do that." });
        const root: Actor = { platform: "test", userId: "root" };
        const list = await strict.core.admin.pendingSteers(root);
        assert.equal(list.steers?.length, 1);
        const ok = await strict.core.admin.reviewSteer(root, list.steers![0]!.id, "approve");
        assert.equal(ok.ok, true);
        assert.equal((await strict.store.steers.findByCorrection("test", "p-corr"))?.trust_state, "approved");
        const retrain = await strict.core.admin.retrain(root, async () => {});
        assert.match(retrain.notice!, /^Skipped: 1 new approved steer\(s\) since the last training; at least 20 are needed/);
      } finally {
        await strict.close();
      }
    });

    it("forgets a user's steers and messages after confirmation", async () => {
      const carol: Actor = { platform: "test", userId: "carol" };
      const thread = newThread();
      await app.core.ask({ thread, actor: carol, text: "Remember me", sourceMessageId: "f1", surface: new RecordingSurface() });
      await app.core.correct({ thread, actor: carol, correction: { text: "Forget this." }, messageId: "f-corr", surface: new RecordingSurface() });
      assert.ok(await app.store.steers.findByCorrection("test", "f-corr"));
      const ask = await app.core.admin.forget(carol, false);
      assert.match(ask.notice!, /Confirm/);
      assert.ok(await app.store.steers.findByCorrection("test", "f-corr"), "nothing deleted before confirmation");
      const done = await app.core.admin.forget(carol, true);
      assert.match(done.notice!, /Deleted 1 steer\(s\) and 1 message\(s\)/);
      assert.equal(await app.store.steers.findByCorrection("test", "f-corr"), undefined);
    });
  });
}

/** The last `n` characters of `text` that hold no s/// delimiter (the random model writes any). */
function lastWithoutDelimiter(text: string, n: number): string {
  for (let end = text.length; end >= n; end--) {
    const w = text.slice(end - n, end);
    if (!/[/\\]/.test(w)) return w;
  }
  throw new Error(`no ${n} characters without / or \\ in ${JSON.stringify(text)}`);
}
