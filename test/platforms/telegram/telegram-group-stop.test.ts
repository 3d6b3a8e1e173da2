/**
 * Stops in groups where a reaction cannot reach the bot, and the review buttons' answers.
 *
 * Against the fake Bot API, which (like Telegram) sends `message_reaction` only to admin bots,
 * reports `available_reactions` in getChat, lets users set only allowed reactions, and drops an
 * inline keyboard from a message edited without one. The group is told once what to change; the
 * reply carries an inline Stop button that stops like the reaction and disappears at the end.
 * Scripted core: no model, no database (the stop-at-shown invariant under latency, by button,
 * is in telegram-stop-position.test.ts on the real core).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { loadConfig } from "../../../src/config/config.ts";
import { telegramConfigFrom } from "../../../src/platforms/telegram/telegram-config.ts";
import { STOP_BUTTON_DATA } from "../../../src/platforms/telegram/telegram-reply-surface.ts";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import type { FakeMessage } from "../../fakes/telegram/fake-bot-api.ts";
import { admin, alice, bob, startHarness, type Harness } from "./harness.ts";

const open: Harness<ScriptedCore>[] = [];
after(async () => {
  for (const h of open) await h.close();
});
async function harness(core: ScriptedCore): Promise<Harness<ScriptedCore>> {
  const h = await startHarness(core);
  open.push(h);
  return h;
}

const words = (n: number) => () => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");
const hasStopButton = (m: FakeMessage) => JSON.stringify(m.reply_markup ?? {}).includes(`"callback_data":"${STOP_BUTTON_DATA}"`);
const NOTICE = /Stopping me with a reaction will not work in this group yet/;

describe("telegram groups: when reactions cannot stop the bot", () => {
  test("bot not an admin: the group is told once how to fix it; the Stop button stops the reply and goes away", async () => {
    // The scripted core refuses bob's stop (who may stop is the real core's: telegram-steering.test.ts).
    const h = await harness(new ScriptedCore({ answer: words(600), wordMs: 5, refuse: (kind, actor) => (kind === "stop" && actor.userId === String(bob.id) ? { ok: false } : undefined) }));
    const group = h.fake.addChat({ id: -100410, type: "supergroup", title: "no admin" });
    h.fake.userSends(group, alice, "/ask talk");
    const reply = await h.fake.waitFor(() => h.fake.botMessages(group.id).find((m) => !NOTICE.test(m.text) && m.versions.length >= 3), 10_000, "the streaming reply");
    const notices = () => h.fake.botMessages(group.id).filter((m) => NOTICE.test(m.text));
    assert.equal(notices().length, 1);
    assert.match(notices()[0]!.text, /make me an administrator/);
    assert.ok(hasStopButton(reply), "the streaming reply carries the Stop button");

    // A 👎 never reaches a bot that is not an admin (the fake, like Telegram, does not deliver it).
    h.fake.userReacts(group, alice, reply.message_id, ["👎"]);
    // A press the core refuses is answered and changes nothing; the asker's press stops the reply.
    const refused = h.fake.userPresses(group, bob, reply.message_id, STOP_BUTTON_DATA);
    const no = await h.fake.waitFor(() => h.fake.callbackAnswers.find((a) => a.callback_query_id === refused), 5000, "the stranger's answer");
    assert.match(no.text ?? "", /Only the person who asked/, "a silent refusal still answers the press");
    assert.equal(h.core.replies[0]!.state, "generating");
    const qid = h.fake.userPresses(group, alice, reply.message_id, STOP_BUTTON_DATA);
    await h.fake.waitFor(() => h.core.replies[0]!.state === "stopped" || undefined, 5000, "stopped by the button");
    await h.bot.idle();
    const answer = h.fake.callbackAnswers.find((a) => a.callback_query_id === qid);
    assert.match(answer?.text ?? "", /Stopped/);
    const after = h.fake.message(group.id, reply.message_id)!;
    assert.equal(after.text, h.core.replies[0]!.shown.trim(), "the message keeps what was shown");
    assert.ok(!hasStopButton(after), "the Stop button is gone once the reply ended");

    // The next reply in the group: the button again, no second notice.
    h.fake.userSends(group, alice, "/ask again");
    await h.fake.waitFor(() => h.core.replies[1]?.state === "done" || undefined, 20_000, "the second reply");
    await h.bot.idle();
    assert.equal(notices().length, 1, "said once");
    const second = h.fake.message(group.id, Number(h.core.replies[1]!.messageIds[0]!.split(":")[1]))!;
    assert.ok(second.versions.length > 1 && !hasStopButton(second), "streamed, and the button removed at the end");
    assert.ok(h.fake.callsOf("editMessageReplyMarkup").length >= 2);
  });

  test("stop reaction not allowed in the group: told to allow it; an admin bot with 👎 allowed shows no button and no notice", async () => {
    const h = await harness(new ScriptedCore({ answer: words(30), wordMs: 2 }));
    const limited = h.fake.addChat({ id: -100420, type: "supergroup", title: "limited" });
    h.fake.setBotAdmin(limited.id);
    h.fake.setAvailableReactions(limited.id, ["👍", "❤"]);
    assert.equal(h.fake.userReacts(limited, alice, 1, ["👎"]), 0, "a user cannot set a reaction the group does not allow");
    h.fake.userSends(limited, alice, "/ask hi");
    await h.fake.waitFor(() => h.core.replies[0]?.state === "done" || undefined, 10_000, "the reply");
    await h.bot.idle();
    const [notice, reply] = h.fake.botMessages(limited.id);
    assert.match(notice!.text, NOTICE);
    assert.match(notice!.text, /👎 is not an allowed reaction in this group/);
    assert.doesNotMatch(notice!.text, /administrator/);
    assert.ok(reply!.versions.length >= 1 && reply!.reply_markup !== undefined, "the reply had the Stop button");

    const fine = h.fake.addChat({ id: -100421, type: "supergroup", title: "fine" });
    h.fake.setBotAdmin(fine.id);
    h.fake.setAvailableReactions(fine.id, ["👎", "👍"]);
    h.fake.userSends(fine, alice, "/ask hi");
    await h.fake.waitFor(() => h.core.replies[1]?.state === "done" || undefined, 10_000, "the reply");
    await h.bot.idle();
    const msgs = h.fake.botMessages(fine.id);
    assert.equal(msgs.length, 1, "no notice");
    assert.ok(!hasStopButton(msgs[0]!) && !h.fake.calls.some((c) => c.payload.chat_id === fine.id && JSON.stringify(c.payload.reply_markup ?? "").includes(STOP_BUTTON_DATA)), "never a Stop button");
  });

  test("added to a group (my_chat_member): checked at once and told; made an admin later: no more button", async () => {
    const h = await harness(new ScriptedCore({ answer: words(20), wordMs: 2 }));
    const group = h.fake.addChat({ id: -100430, type: "group", title: "new" });
    h.fake.pushUpdate({ my_chat_member: { chat: group, from: alice, date: 1, old_chat_member: { status: "left", user: h.fake.bot }, new_chat_member: { status: "member", user: h.fake.bot } } });
    await h.fake.waitFor(() => h.fake.botMessages(group.id).find((m) => NOTICE.test(m.text)), 10_000, "the notice on joining");
    h.fake.setBotAdmin(group.id);
    h.fake.pushUpdate({ my_chat_member: { chat: group, from: alice, date: 2, old_chat_member: { status: "member", user: h.fake.bot }, new_chat_member: { status: "administrator", user: h.fake.bot, can_manage_chat: true } } });
    await h.allHandled();
    await h.bot.idle();
    h.fake.userSends(group, alice, "/ask hi");
    await h.fake.waitFor(() => h.core.replies[0]?.state === "done" || undefined, 10_000, "the reply");
    await h.bot.idle();
    const msgs = h.fake.botMessages(group.id);
    assert.equal(msgs.filter((m) => NOTICE.test(m.text)).length, 1);
    assert.ok(!h.fake.calls.some((c) => c.payload.chat_id === group.id && JSON.stringify(c.payload.reply_markup ?? "").includes(STOP_BUTTON_DATA)), "an admin bot needs no button");
  });
});

describe("telegram.check_chats", () => {
  test("a group named in the config is checked at start and told before anyone asks; a group not named is left alone", async () => {
    const { config } = loadConfig({ env: { STEERBOT_TELEGRAM__CHECK_CHATS: '["-100610"]' } });
    const h = await startHarness(new ScriptedCore(), { start: false, config: telegramConfigFrom(config, undefined) });
    open.push(h);
    const named = h.fake.addChat({ id: -100610, type: "supergroup", title: "named" });
    const other = h.fake.addChat({ id: -100611, type: "supergroup", title: "not named" });
    await h.bot.start();
    await h.fake.waitFor(() => h.fake.botMessages(named.id).find((m) => NOTICE.test(m.text)), 5000, "the named group's notice");
    await h.bot.idle();
    assert.deepEqual([...new Set(h.fake.callsOf("getChatMember").map((c) => c.payload.chat_id))], [named.id]);
    assert.deepEqual(h.fake.callsOf("getChat").map((c) => c.payload.chat_id), [named.id]);
    assert.equal(h.fake.botMessages(other.id).length, 0);
  });

  test("a chat id that is not a quoted negative number is refused, naming the key", () => {
    assert.throws(() => loadConfig({ env: { STEERBOT_TELEGRAM__CHECK_CHATS: "[-100610]" } }), /telegram\.check_chats\.0: ids are strings/);
    assert.throws(() => loadConfig({ env: { STEERBOT_TELEGRAM__CHECK_CHATS: '["100610"]' } }), /telegram\.check_chats\.0: a group chat id is negative/);
  });
});

describe("telegram review buttons", () => {
  test("answerCallbackQuery comes after the core's decision: a failing review answers with the error, not a premature ok", async () => {
    const core = new ScriptedCore();
    const h = await harness(core);
    const chat = h.fake.privateChat(admin);
    let release!: () => void;
    const decided = new Promise<void>((r) => (release = r));
    let called = false;
    core.admin.reviewSteer = async () => {
      called = true;
      await decided;
      throw new Error("database is down");
    };
    const qid = h.fake.userPresses(chat, admin, 1, "rv:a:s1");
    await h.fake.waitFor(() => called, 5000, "the review to reach the core");
    // While the core has not decided, the press is not answered (give the bot a moment to misbehave).
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.fake.callbackAnswers.length, 0);
    release();
    const a = await h.fake.waitFor(() => h.fake.callbackAnswers.find((x) => x.callback_query_id === qid), 5000, "the answer");
    assert.match(a.text ?? "", /could not .*review|database is down|went wrong/i);
    assert.doesNotMatch(a.text ?? "", /approved/);
  });
});
