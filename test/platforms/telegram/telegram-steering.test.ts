/**
 * End to end through Telegram: real grammY against the fake Bot API, the real steering core
 * on the tiny generated model, and a real Postgres database. Asserts what users see and the
 * `steers` rows that end up stored.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { storeInstances } from "../../../src/platforms/telegram/telegram-instances.ts";
import { createTestApp, type TestApp } from "../../helpers/app.ts";
import { admin, alice, bob, norm, startHarness, type Harness } from "./harness.ts";
import type { FakeMessage } from "../../fakes/telegram/fake-bot-api.ts";

/** Text compared the way a reader sees it: Telegram strips each message's surrounding whitespace. */
const visible = (ms: FakeMessage[]) => norm(ms.map((m) => m.text).join(" "));

describe("telegram + steering core on postgres", () => {
  let app: TestApp;
  let h: Harness<TestApp["core"]>;

  before(async () => {
    app = await createTestApp({
      db: "postgres",
      config: {
        generation: { max_tokens: 400 },
        permissions: { stop: { users: ["555"] }, steer: { users: ["555"] }, admins: { users: [String(admin.id)] }, default_trust: "pending" },
      },
    });
    // Slow network (each send/edit takes 60 ms): the model runs ahead of what users see. Wired
    // as `steerbot start` wires it: updates claimed in the database, every reply this instance's.
    h = await startHarness(app.core, { fake: { latencyMs: 60 }, config: { minEditIntervalMs: 100 }, instances: storeInstances(app.store) });
  });
  after(async () => {
    await h?.close();
    await app?.close();
  });

  const generation = (sourceMessageId: string) =>
    app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", sourceMessageId).executeTakeFirstOrThrow();

  /** Asks in `chat`, waits until the reply is visibly streaming, stops it with 👎, returns its message. */
  async function askAndStop(chat: { id: number; type: "private" }, text: string): Promise<{ q: Record<string, unknown>; m: FakeMessage }> {
    const before = h.fake.botMessages(chat.id).length;
    const q = h.fake.userSends(chat, alice, text);
    const m = await h.fake.waitFor(() => {
      const ms = h.fake.botMessages(chat.id);
      return ms.length > before && ms[before]!.versions.length >= 2 ? ms[before] : undefined;
    }, 20_000, "streaming");
    h.fake.userReacts(chat, alice, m.message_id, ["👎"]);
    await h.fake.waitFor(() => app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) })?.state === "stopped" || undefined, 10_000, "stopped");
    await h.allHandled(); // the reaction's handler returns once core.stop has cut and saved the reply
    await h.bot.idle();
    return { q, m: h.fake.message(chat.id, m.message_id)! };
  }

  test("ask → stream → stop → correct with a quote → resume; again without a quote; accept; steers rows", async () => {
    const chat = h.fake.privateChat(alice) as { id: number; type: "private" };

    // 1. Ask and stop mid-stream: the message keeps exactly the text shown, which is the stop point.
    const first = await askAndStop(chat, "Tell me a long story");
    const gen1 = await generation(`${chat.id}:${first.q.message_id}`);
    assert.equal(gen1.status, "stopped");
    // Telegram strips surrounding whitespace from what it displays.
    const shown1 = gen1.final_text!;
    assert.equal(first.m.text, shown1.trim(), "stored stop point = what the user sees");
    assert.ok(shown1.trim().length > 0);
    assert.ok(h.bot.metrics.stopLatencyMs.length === 1 && h.bot.metrics.stopLatencyMs[0]! < 2000, `stop handled at once: ${h.bot.metrics.stopLatencyMs} ms`);

    // 2. Correct with a Telegram quote of a later part of the message.
    const qStart = Math.max(1, Math.floor(shown1.length / 2));
    const quoted = shown1.slice(qStart, Math.min(shown1.length, qStart + 6));
    const c1 = h.fake.userSends(chat, alice, "the dragon slept", { replyTo: first.m.message_id, quote: { text: quoted, position: qStart } });
    const resumed1 = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((m) => m.reply_to_message_id === c1.message_id), 20_000, "resumed reply");
    await h.bot.idle();
    const r1 = h.fake.message(chat.id, resumed1.message_id)!;

    let steers = await app.store.db.selectFrom("steers").selectAll().orderBy("id").execute();
    assert.equal(steers.length, 1);
    const s1 = steers[0]!;
    assert.equal(s1.form, "quote");
    assert.equal(s1.prefix + s1.rejected, shown1, "prefix + rejected = exactly the text shown at the stop");
    assert.ok(s1.prefix.length <= qStart, "diverges at (a token boundary before) the quote");
    assert.ok(s1.chosen.endsWith("the dragon slept"));
    assert.equal(s1.correction_message_id, `${chat.id}:${c1.message_id}`);
    assert.equal(s1.author, String(alice.id));
    assert.equal(s1.platform, "telegram");
    assert.equal(s1.trust_state, "pending");
    assert.ok(r1.text.startsWith((s1.prefix + s1.chosen).trim()), "the resumed reply continues from prefix + chosen");

    // The same correction message delivered again (new update id, same message) stores nothing.
    const dup = String(h.fake.pushUpdate({ message: c1 }));
    await h.bot.handled.next((e) => e.id === dup, 10_000, "the repeated correction handled");
    await h.bot.idle();
    assert.equal((await app.store.db.selectFrom("steers").selectAll().execute()).length, 1, "duplicate stored once");

    // 3. A second question, stopped, corrected by a plain reply (no quote).
    const second = await askAndStop(chat, "And another one");
    const c2 = h.fake.userSends(chat, alice, "Once upon a time", { replyTo: second.m.message_id });
    const resumed2 = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((m) => m.reply_to_message_id === c2.message_id), 20_000, "resumed reply 2");
    await h.bot.idle();
    steers = await app.store.db.selectFrom("steers").selectAll().orderBy("id").execute();
    assert.equal(steers.length, 2);
    const s2 = steers[1]!;
    assert.notEqual(s2.form, "quote");
    assert.equal((s2.prefix + s2.rejected).trim(), second.m.text);
    assert.equal(s2.correction_message_id, `${chat.id}:${c2.message_id}`);

    // 4. 👍 accepts the finished reply.
    h.fake.userReacts(chat, alice, resumed2.message_id, ["👍"]);
    const q2 = `${chat.id}:${second.q.message_id}`;
    await h.fake.waitFor(() => app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) }) === undefined || undefined, 10_000, "accepted");
    assert.equal((await generation(q2)).status, "done");

    // 5. An admin approves the pending steers with the /pending buttons; others are refused.
    const bc = h.fake.privateChat(bob);
    h.fake.userSends(bc, bob, "/pending");
    await h.fake.waitFor(() => h.fake.botMessages(bc.id).find((m) => m.text === "Sorry, only admins can do that."));
    const ac = h.fake.privateChat(admin);
    h.fake.userSends(ac, admin, "/pending");
    const rows = await h.fake.waitFor(() => {
      const b = h.fake.botMessages(ac.id).filter((m) => m.reply_markup);
      return b.length === 2 ? b : undefined;
    });
    for (const row of rows) {
      const data = (row.reply_markup as { inline_keyboard: { callback_data: string }[][] }).inline_keyboard[0]![0]!.callback_data;
      h.fake.userPresses(ac, admin, row.message_id, data);
    }
    await h.fake.waitFor(() => h.fake.callbackAnswers.length >= 2 || undefined);
    await h.bot.idle();
    steers = await app.store.db.selectFrom("steers").selectAll().execute();
    assert.deepEqual(steers.map((s) => s.trust_state), ["approved", "approved"]);
  });

  test("a stranger's stop in a group is ignored; the reply runs to its end", async () => {
    const group = h.fake.addChat({ id: -100900, type: "supergroup", title: "g" });
    h.fake.setBotAdmin(group.id); // Telegram sends reactions only to admin bots
    const q = h.fake.userSends(group, alice, "/ask Tell me something");
    const m = await h.fake.waitFor(() => h.fake.botMessages(group.id)[0], 20_000);
    h.fake.userReacts(group, bob, m.message_id, ["👎"]);
    await h.fake.waitFor(() => app.core.openReplyIn({ platform: "telegram", chatId: String(group.id), threadId: String(group.id) })?.state === "done" || undefined, 30_000);
    await h.bot.idle();
    const gen = await generation(`${group.id}:${q.message_id}`);
    if (process.env.DBG) {
      console.log("FINAL", gen.final_text!.length, JSON.stringify(gen.final_text!.slice(-80)));
      for (const m of h.fake.botMessages(group.id)) console.log("MSG", m.message_id, m.versions.map((v) => v.length).join(","), JSON.stringify(m.text.slice(0, 60)));
      for (const c of h.fake.calls.filter((c) => c.payload.chat_id === group.id)) console.log("CALL", c.method, c.error, c.payload.message_id, String(c.payload.text ?? "").length);
    }
    assert.equal(gen.status, "done");
    assert.equal(visible(h.fake.botMessages(group.id)), norm(gen.final_text!));
    assert.equal(h.fake.botMessages(group.id).length, 1, "no notice to the stranger");
  });
  test("429 storm on a chat: auto-retry absorbs it and the final text arrives whole", async () => {
    const carol = { id: 303, is_bot: false, first_name: "Carol" };
    const chat = h.fake.privateChat(carol);
    h.fake.rateLimit = { perChat: 2, windowMs: 1000, retryAfter: 1 };
    try {
      const before = h.fake.throttled;
      const q = h.fake.userSends(chat, carol, "Tell me everything");
      await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0], 20_000);
      await h.fake.waitFor(() => app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) })?.state === "done" || undefined, 60_000);
      await h.bot.idle();
      const gen = await generation(`${chat.id}:${q.message_id}`);
      assert.equal(gen.status, "done");
      assert.ok(h.fake.throttled > before, "the fake answered 429s");
      assert.equal(visible(h.fake.botMessages(chat.id)), norm(gen.final_text!));
      assert.equal(h.bot.metrics.rateLimitSurfaced, 0);
    } finally {
      h.fake.rateLimit = undefined;
    }
  });

  test("private drafts: stream as a draft, Telegram's stop button, persist, correct by reply", async () => {
    const d = await startHarness(app.core, { fake: { latencyMs: 60 }, config: { minEditIntervalMs: 100, privateDrafts: true } });
    try {
      const dave = { id: 404, is_bot: false, first_name: "Dave" };
      const chat = d.fake.privateChat(dave);
      const q = d.fake.userSends(chat, dave, "Tell me a long story");
      await d.fake.waitFor(() => d.fake.draftHistory.filter((x) => x.chatId === chat.id).length >= 3 || undefined, 20_000, "drafts");
      const draftId = d.fake.draftHistory[0]!.draftId;
      d.fake.userStopsDraft(chat, draftId);
      const persisted = await d.fake.waitFor(() => d.fake.botMessages(chat.id)[0], 10_000, "persisted message");
      await d.allHandled(); // the stop's handler returns once core.stop has cut and saved the reply
      await d.bot.idle();
      const gen = await generation(`${chat.id}:${q.message_id}`);
      assert.equal(gen.status, "stopped");
      assert.equal(persisted.text, gen.final_text!.trim(), "the persisted message is the text shown in the draft at the stop");
      assert.equal(persisted.reply_to_message_id, q.message_id);
      assert.equal(d.fake.callsOf("editMessageText").length, 0, "no edits: the draft carried the stream");

      const c = d.fake.userSends(chat, dave, "the dragon slept", { replyTo: persisted.message_id });
      const resumed = await d.fake.waitFor(() => d.fake.botMessages(chat.id).find((m) => m.reply_to_message_id === c.message_id), 20_000, "resumed");
      await d.bot.idle();
      const steer = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", `${chat.id}:${c.message_id}`).executeTakeFirstOrThrow();
      assert.equal(steer.prefix + steer.rejected, gen.final_text);
      assert.ok(resumed.text.startsWith((steer.prefix + steer.chosen).trim()));
    } finally {
      await d.close();
    }
  });

  test("private chat: typing while a draft streams stops it at what was shown and corrects it (as on Discord)", async () => {
    const d = await startHarness(app.core, { fake: { latencyMs: 60 }, config: { minEditIntervalMs: 100, privateDrafts: true } });
    try {
      const erin = { id: 505, is_bot: false, first_name: "Erin" };
      const chat = d.fake.privateChat(erin);
      const q = d.fake.userSends(chat, erin, "Tell me a long story");
      await d.fake.waitFor(() => d.fake.draftHistory.filter((x) => x.chatId === chat.id).length >= 3 || undefined, 20_000, "drafts");
      const c = d.fake.userSends(chat, erin, "Once upon a time");
      await d.fake.waitFor(() => d.fake.botMessages(chat.id).find((m) => m.reply_to_message_id === c.message_id), 20_000, "the resumed reply");
      await d.bot.idle();
      const steer = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", `${chat.id}:${c.message_id}`).executeTakeFirstOrThrow();
      const gens = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "like", `${chat.id}:%`).execute();
      assert.equal(gens.length, 1, "no second question was asked");
      assert.equal(gens[0]!.source_message_id, `${chat.id}:${q.message_id}`);
      assert.ok(steer.chosen.length > 0);
      const shownAtStop = d.fake.botMessages(chat.id)[0]!.text;
      assert.equal((steer.prefix + steer.rejected).trim(), shownAtStop, "the steer is against the draft as it was shown, kept as a message");
    } finally {
      await d.close();
    }
  });
});
