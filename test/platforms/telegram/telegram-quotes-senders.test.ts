/**
 * What a Telegram message says about its place and its sender: `quote.position` counts in the
 * message replied to (one part of a long reply), and messages sent on behalf of a chat
 * (anonymous group admins, channel posts: one shared `from.id`) are nobody's own.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { AskRequest, CorrectRequest } from "../../../src/core/ports.ts";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { alice, startHarness, type Harness } from "./harness.ts";

const open: Harness<ScriptedCore>[] = [];
after(async () => {
  for (const h of open) await h.close();
});

/** Telegram's GroupAnonymousBot: the `from` of every anonymous admin's message. */
const ANONYMOUS_ADMIN = { id: 1087968824, is_bot: true, first_name: "Group", username: "GroupAnonymousBot" };

describe("telegram message parts and senders", () => {
  test("a quote in the second part of a long reply is placed in the whole reply", async () => {
    const words = Array.from({ length: 1400 }, (_, i) => `word${i}`).join(" "); // ~10 000 chars: 3 parts
    const h = await startHarness(new ScriptedCore({ answer: () => words, wordMs: 0 }));
    open.push(h);
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "talk");
    await h.fake.waitFor(() => h.core.replies[0]?.state === "done" || undefined, 20_000, "the whole reply");
    await h.bot.idle();
    const parts = h.fake.botMessages(chat.id);
    assert.ok(parts.length >= 2, `split into ${parts.length} messages`);
    const second = parts[1]!;
    const position = 50;
    const quoted = second.text.slice(position, position + 12);
    h.fake.userSends(chat, alice, "better words", { replyTo: second.message_id, quote: { text: quoted, position } });
    await h.allHandled();
    const req = h.core.calls.find((c) => c.kind === "correct")!.req as CorrectRequest;
    const at = req.correction.quote!.position!;
    assert.equal(words.slice(at, at + quoted.length), quoted, `position ${at} in the reply holds the quoted text`);
    assert.ok(at > parts[0]!.text.length, `position ${at} lies beyond the first message`);
  });

  test("anonymous admins share one from.id but are not one person: no one's own reply", async () => {
    const h = await startHarness(new ScriptedCore({ answer: () => "an answer to the anonymous admin", wordMs: 5 }));
    open.push(h);
    const group = h.fake.addChat({ id: -100555, type: "supergroup", title: "Anon group" });
    h.fake.setBotAdmin(group.id); // reactions reach it: no group-check notice
    const base = { chat: group, from: ANONYMOUS_ADMIN, sender_chat: { id: group.id, type: "supergroup", title: "Anon group" }, date: 1 };
    h.fake.pushUpdate({ message: { ...base, message_id: 1, text: "/ask hello", entities: [{ type: "bot_command", offset: 0, length: 4 }] } });
    const m = await h.fake.waitFor(() => h.fake.botMessages(group.id)[0], 10_000, "the answer");
    await h.bot.idle();
    const botMsg = { message_id: m.message_id, from: h.fake.bot, chat: group, date: 1, text: m.text };
    h.fake.pushUpdate({ message: { ...base, message_id: 50, text: "s/answer/reply/", reply_to_message: botMsg, quote: { text: "answer", position: 3, is_manual: true } } });
    await h.allHandled();
    const ask = h.core.calls.find((c) => c.kind === "ask")!.req as AskRequest;
    const correct = h.core.calls.find((c) => c.kind === "correct")!.req as CorrectRequest;
    assert.notEqual(ask.actor.userId, String(ANONYMOUS_ADMIN.id), "the shared id is nobody's");
    assert.notEqual(correct.actor.userId, ask.actor.userId, "another anonymous message is not the asker's own");
    assert.deepEqual(correct.actor.roles, [], "no chat roles for an anonymous sender");
  });
});
