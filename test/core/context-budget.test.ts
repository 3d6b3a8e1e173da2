import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor, ThreadRef } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const alice: Actor = { platform: "test", userId: "alice" };
const CONTEXT = 256;
const MAX_TOKENS = 48;
const SYSTEM = "You are a patient assistant.";
let threadNo = 0;
const newThread = (): ThreadRef => ({ platform: "test", chatId: "dm", threadId: `t${++threadNo}` });
const long = (i: number) => `Question ${i}: please tell me everything about the river, the boats and the old bridge near the mill.`;

describe("a conversation longer than the model's context", () => {
  let app: TestApp;
  before(async () => {
    app = await createTestApp({ config: { model: { context_size: CONTEXT }, generation: { max_tokens: MAX_TOKENS, system_prompt: SYSTEM } } });
  });
  after(async () => app?.close());

  const latest = () => app.store.db.selectFrom("generations").selectAll().orderBy("id", "desc").executeTakeFirstOrThrow();

  it("answers every one of 40 long turns in full, with the system prompt and the newest turns that fit", async () => {
    const thread = newThread();
    let droppedSeen = 0;
    for (let i = 0; i < 40; i++) {
      const surface = new RecordingSurface();
      const out = await app.core.ask({ thread, actor: alice, text: long(i), sourceMessageId: `q${i}`, surface });
      assert.equal(out.ok, true, `turn ${i}: ${out.notice}`);
      assert.doesNotMatch(surface.visible, /generation failed/, `turn ${i}`);
      const gen = await latest();
      assert.equal(gen.status, "done", `turn ${i}`);
      assert.equal(gen.timings.generatedTokens, MAX_TOKENS, `turn ${i}: the reply had room for all of generation.max_tokens`);
      assert.equal(gen.final_text, surface.visible);
      const ctx = gen.context_messages;
      assert.deepEqual(ctx[0], { role: "system", content: SYSTEM }, "the system prompt is always there");
      assert.deepEqual(ctx.at(-1), { role: "user", content: long(i) }, "the question is last");
      if (ctx.length > 2) assert.equal(ctx[1]!.role, "user", "whole turns are dropped: the kept history starts with a question");
      const rendered = app.engine.renderContext(ctx);
      assert.equal(rendered.text, gen.context_text, "the stored context is what the model saw");
      assert.ok(rendered.tokens.length + MAX_TOKENS <= CONTEXT, `turn ${i}: ${rendered.tokens.length} prompt tokens leave room for the reply`);
      // what was left out is recorded: the kept history plus the dropped messages are the thread's history
      assert.equal(gen.dropped_messages + ctx.length - 2, 2 * i, `turn ${i}`);
      droppedSeen = gen.dropped_messages;
    }
    assert.ok(droppedSeen > 60, `old turns were dropped (${droppedSeen})`);
  });

  it("stores a steer with exactly the context the model saw, and resumes in full", async () => {
    const thread = newThread();
    for (let i = 0; i < 6; i++) await app.core.ask({ thread, actor: alice, text: long(i), sourceMessageId: `s${i}`, surface: new RecordingSurface() });
    const surface = new RecordingSurface();
    await app.core.ask({ thread, actor: alice, text: long(6), sourceMessageId: "s6", surface });
    const gen = await latest();
    assert.ok(gen.dropped_messages > 0);
    const resumed = new RecordingSurface(2000, 0, 0, "r");
    const out = await app.core.correct({ thread, actor: alice, replyToMessageId: surface.order[0], correction: { text: "and then the bridge fell into the river" }, messageId: "c1", surface: resumed });
    assert.equal(out.ok, true, out.notice);
    const steer = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", "c1").executeTakeFirstOrThrow();
    const after = await app.store.db.selectFrom("generations").selectAll().where("id", "=", gen.id).executeTakeFirstOrThrow();
    assert.deepEqual(steer.context, gen.context_messages, "the steer's context is the context the rejected span was generated from");
    // the continuation counts the reply so far against the context: more old turns made room
    assert.ok(after.dropped_messages > gen.dropped_messages, `${after.dropped_messages} > ${gen.dropped_messages}`);
    assert.deepEqual(after.context_messages[0], gen.context_messages[0]);
    assert.deepEqual(after.context_messages.slice(1), gen.context_messages.slice(1 + after.dropped_messages - gen.dropped_messages));
    assert.equal(after.context_text, app.engine.renderContext(after.context_messages).text);
    assert.equal(after.status, "done");
    assert.doesNotMatch(resumed.visible, /generation failed/);
    assert.ok(after.final_text!.length > steer.prefix.length + steer.chosen.length, "the reply went on after the correction");
    assert.equal(after.timings.generatedTokens, MAX_TOKENS, "the continuation had room for all of generation.max_tokens");
  });

  it("refuses a question too long for the context with a clear notice and stores nothing", async () => {
    const thread = newThread();
    const before = await app.store.db.selectFrom("messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    const surface = new RecordingSurface();
    const out = await app.core.ask({ thread, actor: alice, text: "word ".repeat(400), sourceMessageId: "big", surface });
    assert.equal(out.ok, false);
    assert.match(out.notice ?? "", /too long/);
    assert.match(out.notice ?? "", /tokens/);
    assert.equal(surface.order.length, 0);
    const afterCount = await app.store.db.selectFrom("messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    assert.equal(Number(afterCount.n), Number(before.n));
  });
});
