/**
 * The Telegram adapter against the fake Bot API with a scripted core: what users see, which
 * core calls Telegram events become, and how failures are absorbed. No model, no database.
 * Who may do what is the real core's (test/core/permissions.test.ts, telegram-steering and
 * telegram-retrain): here a refusal is scripted, to see the adapter pass the actor, its chat
 * roles and chat, and show the core's notice (or stay silent).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { AskRequest, CorrectRequest, StopRequest } from "../../../src/core/ports.ts";
import { resolveTelegramConfig } from "../../../src/platforms/telegram/telegram-config.ts";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { admin, alice, bob, startHarness, type Harness } from "./harness.ts";

const open: Harness<ScriptedCore>[] = [];
async function harness(...args: Parameters<typeof startHarness<ScriptedCore>>): Promise<Harness<ScriptedCore>> {
  const h = await startHarness(...args);
  open.push(h);
  return h;
}
after(async () => {
  for (const h of open) await h.close();
});

/** A scripted core's "no" to everyone but `allowed` for calls of these kinds. */
const onlyFor = (allowed: { id: number }, kinds: (k: string) => boolean, notice?: string) => (kind: string, actor: { userId: string }) =>
  kinds(kind) && actor.userId !== String(allowed.id) ? { ok: false, notice } : undefined;

const longAnswer = (n: number) => () => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");

describe("telegram adapter (scripted core)", () => {
  test("config refuses reactions Telegram cannot deliver; 👎 stops by default", () => {
    assert.throws(() => resolveTelegramConfig({ stopReactions: ["🛑"] }), /not one Telegram users can set/);
    assert.deepEqual(resolveTelegramConfig().stopReactions, ["👎"]);
    assert.equal(resolveTelegramConfig().privateDrafts, true, "private chats stream as drafts by default");
  });

  test("private chat: every message is a question, streamed by edits, answering the user's message", async () => {
    const h = await harness(new ScriptedCore({ answer: () => "one two three four five six seven eight", wordMs: 30 }));
    const chat = h.fake.privateChat(alice);
    const q = h.fake.userSends(chat, alice, "count please");
    const [m] = await h.fake.waitFor(() => {
      const ms = h.fake.botMessages(chat.id);
      return ms.length && ms[0]!.text === "one two three four five six seven eight" ? ms : undefined;
    });
    assert.equal(m!.reply_to_message_id, q.message_id);
    assert.ok(m!.versions.length >= 2, `streamed in several edits, got ${m!.versions.join(" | ")}`);
    const ask = h.core.calls.find((c) => c.kind === "ask")!.req as AskRequest;
    assert.deepEqual(ask.thread, { platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) });
    assert.equal(ask.actor.userId, String(alice.id));
    assert.equal(ask.sourceMessageId, `${chat.id}:${q.message_id}`);
    assert.equal(ask.surface.maxMessageLength, 4096);
  });

  test("stop reaction during a long stream is handled at once; the message keeps the text shown", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(2000), wordMs: 5 }));
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "talk a lot");
    const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.versions.length >= 3));
    const t0 = Date.now();
    h.fake.userReacts(chat, alice, m.message_id, ["👎"]);
    await h.fake.waitFor(() => h.core.replies[0]!.state === "stopped" || undefined, 5000, "stop");
    const latency = h.core.replies[0]!.stoppedAt! - t0;
    assert.ok(latency < 1500, `stop latency ${latency} ms`);
    const stop = h.core.calls.find((c) => c.kind === "stop")!.req as StopRequest;
    assert.equal(stop.messageId, `${chat.id}:${m.message_id}`);
    // The reply has settled once the bot is idle: its stream and every edit it made are done.
    await h.bot.idle();
    const final = h.fake.message(chat.id, m.message_id)!;
    assert.equal(final.text, h.core.replies[0]!.shown.trim(), "Telegram shows the stop point (stripped of surrounding whitespace)");
    assert.ok(final.text.length < longAnswer(2000)().length);
    const stoppedAt = h.core.replies[0]!.stoppedAt!;
    const late = h.fake.callsOf("editMessageText").filter((c) => c.payload.message_id === m.message_id && c.at > stoppedAt);
    assert.deepEqual(late.map((c) => c.payload.text), [], "no edits after the stop");
  });

  test("a stop reaction the core refuses (a stranger's) is ignored silently; reactions on other messages start nothing", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(60), wordMs: 10, refuse: onlyFor(alice, (k) => k === "stop") }));
    const group = h.fake.addChat({ id: -100500, type: "supergroup", title: "g" });
    h.fake.setBotAdmin(group.id); // Telegram sends reactions only to admin bots
    const q = h.fake.userSends(group, alice, "@steer_test_bot hi", { entities: [{ type: "mention", offset: 0, length: 15 }] });
    const m = await h.fake.waitFor(() => h.fake.botMessages(group.id)[0]);
    h.fake.userReacts(group, bob, m.message_id, ["👎"]);
    h.fake.userReacts(group, bob, q.message_id as number, ["👎"]);
    await h.allHandled(); // both reactions processed...
    await h.bot.idle(); // ...and the reply has ended
    assert.equal(h.core.replies[0]!.state, "done");
    assert.equal(h.fake.message(group.id, m.message_id)!.text, longAnswer(60)());
    assert.equal(h.core.calls.filter((c) => c.kind === "stop").length, 1, "only the bot message's reaction reaches the core");
    assert.equal((h.core.calls.find((c) => c.kind === "stop")!.req as StopRequest).actor.userId, String(bob.id), "as bob's");
    assert.equal(h.fake.botMessages(group.id).length, 1, "no notice");
  });

  test("a group admin's stop carries the chat role (from getChatMember) and its chat to the core", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(400), wordMs: 5 }));
    const group = h.fake.addChat({ id: -100501, type: "supergroup", title: "g" });
    h.fake.setBotAdmin(group.id); // Telegram sends reactions only to admin bots
    h.fake.setMemberStatus(group.id, bob.id, "administrator");
    h.fake.userSends(group, alice, "/ask tell me");
    const m = await h.fake.waitFor(() => h.fake.botMessages(group.id).find((x) => x.versions.length >= 2));
    h.fake.userReacts(group, bob, m.message_id, ["👎"]);
    await h.fake.waitFor(() => h.core.replies[0]!.state === "stopped" || undefined);
    const stop = h.core.calls.find((c) => c.kind === "stop")!.req as StopRequest;
    assert.deepEqual(stop.actor.roles, ["administrator"]);
    assert.equal(stop.actor.rolesChatId, String(group.id), "a chat role counts only where the core's role_chats say");
    assert.equal(stop.actor.userId, String(bob.id));
    assert.equal((h.core.calls.find((c) => c.kind === "ask")!.req as AskRequest).text, "tell me");
  });

  test("a stop in a busy, paced group is not held up by the queue of other replies' edits", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(400), wordMs: 10 }), { config: { groupChatMinIntervalMs: 400 } });
    const group = h.fake.addChat({ id: -100502, type: "supergroup", title: "busy" });
    h.fake.setBotAdmin(group.id); // Telegram sends reactions only to admin bots
    const askers = [alice, bob, admin];
    for (const u of askers) h.fake.userSends(group, u, `/ask from ${u.first_name}`);
    const mine = await h.fake.waitFor(() => {
      const ms = h.fake.botMessages(group.id);
      return ms.length === 3 && ms.every((m) => m.versions.length >= 2) ? ms.find((m) => m.reply_to_message_id === 2) : undefined;
    }, 15_000, "three replies streaming");
    const owner = askers[1]!; // message 2 is Bob's question
    h.fake.userReacts(group, owner, mine.message_id, ["👎"]);
    const reply = await h.fake.waitFor(() => h.core.replies.find((r) => r.state === "stopped"), 5000, "stop");
    const latency = h.bot.metrics.stopLatencyMs[0]!;
    assert.ok(latency < 300, `stop took ${latency} ms with a 400 ms group gap and 3 replies queued`);
    assert.equal(reply.asker.userId, String(owner.id));
    await h.bot.idle();
    assert.equal(h.fake.message(group.id, mine.message_id)!.text, reply.shown.trim(), "the message shows the stop point");
  });

  test("reply with a quote, reply without, and (private) the next message after a stop become corrections", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(300), wordMs: 5 }));
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "q1");
    let m = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.versions.length >= 2));
    h.fake.userReacts(chat, alice, m.message_id, ["👎"]);
    await h.fake.waitFor(() => h.core.replies[0]!.state === "stopped" || undefined);
    const shown = h.core.replies[0]!.shown;
    const quoted = shown.split(" ").slice(-2).join(" ");
    const c1 = h.fake.userSends(chat, alice, "w7 instead", { replyTo: m.message_id, quote: { text: quoted, position: shown.lastIndexOf(quoted) } });
    await h.fake.waitFor(() => h.core.replies[0]!.state === "done" || undefined, 10_000, "resume");
    let corr = h.core.calls.filter((c) => c.kind === "correct").at(-1)!.req as CorrectRequest;
    assert.deepEqual(corr.correction, { text: "w7 instead", quote: { text: quoted, position: shown.lastIndexOf(quoted) } });
    assert.equal(corr.replyToMessageId, `${chat.id}:${m.message_id}`);
    assert.equal(corr.messageId, `${chat.id}:${c1.message_id}`);
    m = h.fake.message(chat.id, m.message_id)!;
    assert.match(m.text, /w7 instead and so, after "w7 instead", the answer goes on correctly\.$/);

    // Second reply: stop, then correct by plain reply (no quote).
    h.fake.userSends(chat, alice, "q2");
    const m2 = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.message_id > m.message_id && x.versions.length >= 2));
    h.fake.userReacts(chat, alice, m2.message_id, ["👎"]);
    await h.fake.waitFor(() => h.core.replies[1]!.state === "stopped" || undefined);
    h.fake.userSends(chat, alice, "better words", { replyTo: m2.message_id });
    await h.fake.waitFor(() => h.core.replies[1]!.state === "done" || undefined);
    corr = h.core.calls.filter((c) => c.kind === "correct").at(-1)!.req as CorrectRequest;
    assert.deepEqual(corr.correction, { text: "better words" });

    // Third: stop, then just write the next message (no reply) in the private chat.
    h.fake.userSends(chat, alice, "q3");
    const m3 = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.message_id > m2.message_id && x.versions.length >= 2));
    h.fake.userReacts(chat, alice, m3.message_id, ["👎"]);
    await h.fake.waitFor(() => h.core.replies[2]!.state === "stopped" || undefined);
    h.fake.userSends(chat, alice, "plain next message");
    await h.fake.waitFor(() => h.core.replies[2]!.state === "done" || undefined);
    corr = h.core.calls.filter((c) => c.kind === "correct").at(-1)!.req as CorrectRequest;
    assert.equal(corr.replyToMessageId, undefined);
    assert.equal(corr.correction.text, "plain next message");

    // 👍 accepts.
    h.fake.userReacts(chat, alice, m3.message_id, ["👍"], ["👎"]);
    await h.fake.waitFor(() => h.core.accepted.length === 1 || undefined);
    assert.deepEqual(h.core.accepted, [`${chat.id}:${m3.message_id}`]);
    assert.equal(h.core.calls.filter((c) => c.kind === "ask").length, 3);
  });

  test("a duplicated update is handled once", async () => {
    // Telegram repeats a webhook delivery it got no answer to, with the same update_id; the
    // same update reaching one running bot twice is a webhook retry, so the test posts it twice.
    const h = await harness(new ScriptedCore({ answer: () => "short", wordMs: 1 }), {
      config: { mode: "webhook", webhook: { port: 0, host: "127.0.0.1", path: "/tg", secretToken: "s3cret" } },
    });
    const chat = h.fake.privateChat(alice);
    const update = { update_id: 41, message: { message_id: 1, from: alice, chat, date: 1, text: "once" } };
    const post = () =>
      fetch(`http://127.0.0.1:${h.bot.webhookPort}/tg`, { method: "POST", headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": "s3cret" }, body: JSON.stringify(update) });
    const first = h.bot.handled.next((e) => e.id === "41");
    assert.equal((await post()).status, 200);
    assert.equal((await first).outcome, "done");
    await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0]?.text === "short" || undefined);
    const again = h.bot.handled.next((e) => e.id === "41");
    assert.equal((await post()).status, 200);
    assert.equal((await again).outcome, "duplicate");
    await h.bot.idle();
    assert.equal(h.core.calls.filter((c) => c.kind === "ask").length, 1);
    assert.equal(h.fake.botMessages(chat.id).length, 1);
  });

  test("429 storm: auto-retry waits retry_after and every final text arrives", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(80), wordMs: 3 }), {
      fake: { rateLimit: { perChat: 3, windowMs: 1000, retryAfter: 1 } },
      config: { minEditIntervalMs: 50 },
    });
    // Four questions at once in one chat: a group (in a private chat, typing while a reply
    // streams corrects it instead of asking).
    const chat = h.fake.addChat({ id: -100901, type: "supergroup", title: "storm" });
    h.fake.setBotAdmin(chat.id); // reactions reach it: no group-check notice (telegram-group-stop.test.ts)
    for (let i = 0; i < 4; i++) h.fake.userSends(chat, alice, `/ask q${i}`);
    await h.fake.waitFor(() => h.core.calls.filter((c) => c.kind === "ask").length === 4 || undefined);
    await h.bot.idle();
    assert.ok(h.fake.throttled > 0, "the fake answered 429s");
    const texts = h.fake.botMessages(chat.id).map((m) => m.text);
    assert.equal(texts.length, 4);
    for (const t of texts) assert.equal(t, longAnswer(80)());
    assert.ok(h.core.replies.every((r) => r.state === "done"));
  });

  test("a 10 000-character reply is split into 4096-character messages", async () => {
    const text = "x".repeat(4000) + " " + "y".repeat(3000) + " " + "z".repeat(2998);
    assert.equal(text.length, 10_000);
    const h = await harness(new ScriptedCore({ answer: () => text, wordMs: 1 }));
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "long");
    await h.fake.waitFor(() => h.core.replies[0]?.state === "done" || undefined);
    const ms = h.fake.botMessages(chat.id);
    assert.equal(ms.length, 3);
    assert.ok(ms.every((m) => m.text.length <= 4096));
    // Split at the spaces (which Telegram strips from each message's ends), as a reader sees it.
    assert.equal(ms.map((m) => m.text).join(" "), text);
  });

  test("groups answer mentions, replies and /ask only; forum topics answer in their topic", async () => {
    const h = await harness(new ScriptedCore({ answer: (q) => `A:${q}`, wordMs: 1 }));
    const group = h.fake.addChat({ id: -100600, type: "supergroup", title: "g" });
    h.fake.setBotAdmin(group.id); // reactions reach it: no group-check notice (telegram-group-stop.test.ts)
    h.fake.userSends(group, alice, "just chatting");
    h.fake.userSends(group, alice, "hey @steer_test_bot what is up", { entities: [{ type: "mention", offset: 4, length: 15 }] });
    await h.fake.waitFor(() => h.fake.botMessages(group.id).length === 1 || undefined);
    await h.bot.idle();
    const first = h.fake.botMessages(group.id)[0]!;
    assert.equal(first.text, "A:hey what is up");
    h.fake.userSends(group, alice, "and then?", { replyTo: first.message_id });
    h.fake.userSends(group, bob, "/ask@steer_test_bot why");
    h.fake.userSends(group, bob, "/ask@other_bot nope");
    await h.fake.waitFor(() => h.fake.botMessages(group.id).length === 3 || undefined);
    await h.allHandled(); // "/ask@other_bot" too
    await h.bot.idle();
    assert.deepEqual(h.fake.botMessages(group.id).map((m) => m.text).sort(), ["A:and then?", "A:hey what is up", "A:why"]);

    const forum = h.fake.addChat({ id: -100700, type: "supergroup", title: "f", is_forum: true });
    h.fake.setBotAdmin(forum.id); // reactions reach it: no group-check notice (telegram-group-stop.test.ts)
    h.fake.userSends(forum, alice, "/ask in topic", { threadId: 77 });
    const tm = await h.fake.waitFor(() => h.fake.botMessages(forum.id)[0]);
    assert.equal(tm.message_thread_id, 77);
    const ask = h.core.calls.filter((c) => c.kind === "ask").at(-1)!.req as AskRequest;
    assert.deepEqual(ask.thread, { platform: "telegram", chatId: String(forum.id), threadId: "77" });
  });

  test("admin commands: the core's refusal is shown; /pending approve/reject via buttons; /forget asks to confirm", async () => {
    const h = await harness(new ScriptedCore({ refuse: onlyFor(admin, (k) => k.startsWith("admin."), "Admins only.") }));
    const chat = h.fake.privateChat(bob);
    h.fake.userSends(chat, bob, "/status");
    h.fake.userSends(chat, bob, "/pending");
    h.fake.userSends(chat, bob, "/retrain");
    await h.fake.waitFor(() => h.fake.botMessages(chat.id).length === 3 || undefined);
    assert.ok(h.fake.botMessages(chat.id).every((m) => m.text === "Admins only."));
    assert.deepEqual(h.core.calls.filter((c) => c.kind.startsWith("admin.")).map((c) => [c.kind, (c.req as { userId: string }).userId]).sort(), [["admin.pending", String(bob.id)], ["admin.retrain", String(bob.id)], ["admin.status", String(bob.id)]]);

    const ac = h.fake.privateChat(admin);
    h.fake.userSends(ac, admin, "/pending");
    const rows = await h.fake.waitFor(() => {
      const withButtons = h.fake.botMessages(ac.id).filter((m) => m.reply_markup);
      return withButtons.length === 2 ? withButtons : undefined;
    });
    assert.equal(h.fake.botMessages(ac.id)[0]!.text, "2 steer(s) waiting for review:");
    const kb = rows[0]!.reply_markup as { inline_keyboard: { text: string; callback_data: string }[][] };
    assert.equal(kb.inline_keyboard[0]![0]!.callback_data, "rv:a:s1");
    // A non-admin pressing a forwarded button is refused by the core.
    const refusedId = h.fake.userPresses(ac, bob, rows[0]!.message_id, "rv:a:s1");
    await h.fake.waitFor(() => h.fake.callbackAnswers.find((a) => a.callback_query_id === refusedId));
    assert.equal(h.core.reviews.length, 0);
    const qid = h.fake.userPresses(ac, admin, rows[0]!.message_id, "rv:a:s1");
    h.fake.userPresses(ac, admin, rows[1]!.message_id, "rv:r:s2");
    await h.fake.waitFor(() => h.core.reviews.length === 2 || undefined);
    await h.fake.waitFor(() => h.fake.callbackAnswers.find((a) => a.callback_query_id === qid));
    assert.deepEqual(h.core.reviews.map((r) => [r.steerId, r.verdict]).sort(), [["s1", "approve"], ["s2", "reject"]]);
    await h.fake.waitFor(() => /approved by Admin/.test(h.fake.message(ac.id, rows[0]!.message_id)!.text) || undefined);

    h.fake.userSends(ac, admin, "/retrain");
    await h.fake.waitFor(() => h.fake.botMessages(ac.id).some((m) => m.text === "Trained adapter v2 (not activated: no improvement).") || undefined);
    assert.ok(h.fake.botMessages(ac.id).some((m) => m.versions.includes("training: epoch 1/1")));

    h.fake.userSends(chat, bob, "/forget");
    const confirm = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((m) => /Really forget everything about you/.test(m.text)));
    h.fake.userPresses(chat, alice, confirm.message_id, `fg:y:${bob.id}`);
    h.fake.userPresses(chat, bob, confirm.message_id, `fg:y:${bob.id}`);
    await h.fake.waitFor(() => h.fake.message(chat.id, confirm.message_id)!.text === "Forgotten: 0 steers deleted." || undefined);
    assert.ok(h.fake.callbackAnswers.some((a) => a.text === "This button is for the person who asked."));
    assert.ok(h.fake.commands.length >= 6, "command menu published");
  });

  test("deleted message and bot removed from chat end the reply cleanly; network errors are logged, not fatal", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(300), wordMs: 5 }));
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "go");
    const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0]);
    h.fake.deleteByUser(chat.id, m.message_id);
    await h.fake.waitFor(() => h.core.replies[0]!.gone || undefined, 5000, "SurfaceGoneError");

    const group = h.fake.addChat({ id: -100800, type: "group", title: "g" });
    h.fake.setBotAdmin(group.id); // reactions reach it: no group-check notice (telegram-group-stop.test.ts)
    h.fake.userSends(group, alice, "/ask x");
    await h.fake.waitFor(() => h.fake.botMessages(group.id)[0]);
    h.fake.removeBotFrom(group.id);
    await h.fake.waitFor(() => h.core.replies[1]!.gone || undefined, 5000, "403 → gone");

    const polled = h.fake.polls.length;
    h.fake.failNext("getUpdates", 502, "Bad Gateway", 2);
    // Two polls answered 502, then the bot polled again (the fake's own record of getUpdates).
    await h.fake.waitFor(() => {
      const since = h.fake.polls.slice(polled);
      return (since.filter((c) => c.error === 502).length === 2 && since.at(-1)!.error === undefined) || undefined;
    }, 15_000, "getUpdates retried after two 502s");
    h.fake.userSends(chat, alice, "still alive?");
    await h.fake.waitFor(() => h.core.replies.length === 3 || undefined, 10_000, "polling recovered");
    assert.ok(h.logs.some((l) => l.level === "warn" && /fetching updates failed/.test(l.msg ?? "")));
  });

  test("private drafts: stream with sendMessageDraft, stop button, persist as a message; reactions on it reach the reply", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(400), wordMs: 5 }), { config: { privateDrafts: true } });
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "draft me");
    await h.fake.waitFor(() => h.fake.draftHistory.length >= 3 || undefined);
    const draftId = h.fake.draftHistory[0]!.draftId;
    h.fake.userStopsDraft(chat, draftId);
    await h.fake.waitFor(() => h.core.replies[0]!.state === "stopped" || undefined);
    const msg = await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0]);
    assert.equal(msg.text, h.core.replies[0]!.shown.trim());
    assert.equal(h.core.replies[0]!.messageIds[0], `${chat.id}:d${draftId}`);
    h.fake.userSends(chat, alice, "fixed it", { replyTo: msg.message_id });
    await h.fake.waitFor(() => h.core.replies[0]!.state === "done" || undefined);
    const corr = h.core.calls.find((c) => c.kind === "correct")!.req as CorrectRequest;
    assert.equal(corr.replyToMessageId, `${chat.id}:d${draftId}`);
    await h.fake.waitFor(() => /goes on correctly\.$/.test(h.fake.message(chat.id, msg.message_id)!.text) || undefined);
    h.fake.userReacts(chat, alice, msg.message_id, ["👍"]);
    await h.fake.waitFor(() => h.core.accepted[0]);
    assert.equal(h.core.accepted[0], `${chat.id}:d${draftId}`);
  });

  test("metrics.stopLatencyMs keeps only the newest stops (stopLatencyWindow); stopsHandled counts them all", async () => {
    const h = await harness(new ScriptedCore({ answer: longAnswer(2000), wordMs: 5 }), { stopLatencyWindow: 3 });
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "talk");
    const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.versions.length >= 2));
    // The first 👎 stops the reply; each later one is a stop of a stopped reply, handled (and timed) all the same.
    for (let i = 0; i < 5; i++) h.fake.userReacts(chat, alice, m.message_id, ["👎"]);
    await h.allHandled();
    assert.equal(h.core.calls.filter((c) => c.kind === "stop").length, 5);
    assert.equal(h.bot.metrics.stopsHandled, 5);
    assert.equal(h.bot.metrics.stopLatencyMs.length, 3, "the window keeps the newest 3");
  });

  test("drafts: the bot remembers at most maxDrafts draft → message links, the oldest forgotten", async () => {
    const h = await harness(new ScriptedCore({ answer: (q) => `answer to ${q}`, wordMs: 1 }), { config: { privateDrafts: true }, maxDrafts: 2 });
    const chat = h.fake.privateChat(alice);
    const persisted = [];
    for (let i = 0; i < 3; i++) {
      h.fake.userSends(chat, alice, `q${i}`);
      persisted.push(await h.fake.waitFor(() => h.fake.botMessages(chat.id)[i]));
      await h.bot.idle();
    }
    // 👍 on the newest reply's message reaches the core as its draft; on the oldest, the link is gone.
    h.fake.userReacts(chat, alice, persisted[2]!.message_id, ["👍"]);
    h.fake.userReacts(chat, alice, persisted[0]!.message_id, ["👍"]);
    await h.allHandled();
    assert.deepEqual(h.core.accepted, [h.core.replies[2]!.messageIds[0]]);
    assert.match(h.core.accepted[0]!, /:d\d+$/, "accepted under the draft's key");
  });

  test("webhook mode: updates POSTed to the node http server are handled", async () => {
    const h = await harness(new ScriptedCore({ answer: () => "via webhook", wordMs: 1 }), {
      config: { mode: "webhook", webhook: { port: 0, host: "127.0.0.1", path: "/tg", secretToken: "s3cret", url: "https://example.invalid/tg" } },
    });
    assert.equal(h.fake.webhook?.url, "https://example.invalid/tg");
    const chat = h.fake.privateChat(alice);
    const update = { update_id: 1, message: { message_id: 1, from: alice, chat, date: 1, text: "hello" } };
    const post = (secret: string) =>
      fetch(`http://127.0.0.1:${h.bot.webhookPort}/tg`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
        body: JSON.stringify(update),
      });
    assert.equal((await post("wrong")).status, 401);
    assert.equal((await post("s3cret")).status, 200);
    await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0]?.text === "via webhook" || undefined);
  });
});
