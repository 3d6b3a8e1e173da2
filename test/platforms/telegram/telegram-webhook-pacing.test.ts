/**
 * Transport rules the real Bot API enforces: a webhook needs its secret and stays on loopback,
 * a polling bot removes a webhook first (getUpdates answers 409 while one is set), and pacing
 * never goes below Telegram's limits (1/s per chat, 20/min per group, 30/s overall).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { resolveTelegramConfig } from "../../../src/platforms/telegram/telegram-config.ts";
import { ChatPacer } from "../../../src/platforms/telegram/chat-pacer.ts";
import { loadConfig } from "../../../src/config/config.ts";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { admin, alice, startHarness, type Harness } from "./harness.ts";

const open: Harness<ScriptedCore>[] = [];
after(async () => {
  for (const h of open) await h.close();
});

describe("telegram transport against the Bot API's rules", () => {
  test("webhook mode refuses to start without TELEGRAM_WEBHOOK_SECRET, and says so", () => {
    assert.throws(() => resolveTelegramConfig({ mode: "webhook", webhook: { port: 8443 } }), /TELEGRAM_WEBHOOK_SECRET/);
    assert.throws(() => resolveTelegramConfig({ mode: "webhook", webhook: { port: 8443, secretToken: "has space" } }), /A-Z a-z 0-9 _ -/);
    assert.doesNotThrow(() => resolveTelegramConfig({ mode: "webhook", webhook: { port: 8443, secretToken: "s3cret" } }));
  });

  test("the webhook server binds loopback by default and registers allowed_updates with the secret", async () => {
    const h = await startHarness(new ScriptedCore({ answer: () => "hi" }), {
      config: { mode: "webhook", webhook: { port: 0, path: "/tg", secretToken: "s3cret", url: "https://example.invalid/tg" } },
    });
    open.push(h);
    const addr = (h.bot as unknown as { server: import("node:http").Server }).server.address();
    assert.equal(typeof addr === "object" && addr?.address, "127.0.0.1");
    assert.equal(h.fake.webhook?.secret_token, "s3cret");
    assert.ok(h.fake.webhook?.allowed_updates?.includes("message_reaction"), "reactions asked for in webhook mode too");
    assert.ok(h.fake.webhook?.allowed_updates?.includes("callback_query"));
  });

  test("polling after webhook mode: the webhook is deleted first, and updates arrive", async () => {
    const h = await startHarness(new ScriptedCore({ answer: () => "polled" }), { start: false });
    open.push(h);
    h.fake.webhook = { url: "https://old.invalid/tg" }; // left over from a webhook run
    await h.bot.start();
    const chat = h.fake.privateChat(alice);
    h.fake.userSends(chat, alice, "are you there?");
    await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0]?.text === "polled" || undefined, 5000, "a reply by polling");
    assert.equal(h.fake.webhook, undefined);
    assert.ok(!h.fake.polls.some((p) => p.error === 409), "no getUpdates answered 409");
  });

  test("pacing floors: the config refuses less, the bot raises less to Telegram's limits", () => {
    const base = resolveTelegramConfig({ chatMinIntervalMs: 0, groupChatMinIntervalMs: 0, minEditIntervalMs: 0 });
    assert.equal(base.chatMinIntervalMs, 1000);
    assert.equal(base.groupChatMinIntervalMs, 3000);
    assert.equal(base.minEditIntervalMs, 1000);
    assert.throws(() => loadConfig({ env: {}, overrides: { telegram: { chat_min_interval_ms: 0 } } }), /one message a second/);
    assert.throws(() => loadConfig({ env: {}, overrides: { telegram: { group_chat_min_interval_ms: 500 } } }), /20 messages a minute/);
  });

  test("across chats the pacer keeps under 30 calls a second", async () => {
    const p = new ChatPacer(0, 0, 30);
    const starts: number[] = [];
    await Promise.all(Array.from({ length: 45 }, (_, i) => p.run(i + 1, async () => void starts.push(Date.now()))));
    starts.sort((a, b) => a - b);
    for (let i = 30; i < starts.length; i++) assert.ok(starts[i]! - starts[i - 30]! >= 990, `call ${i} started ${starts[i]! - starts[i - 30]!} ms after call ${i - 30}`);
  });

  test("/pending in a group goes through the chat's pacer: no 429s, and a stop is not held up", async () => {
    const core = new ScriptedCore({ answer: () => Array.from({ length: 400 }, (_, i) => `w${i}`).join(" "), wordMs: 5 });
    core.pending = Array.from({ length: 8 }, (_, i) => ({ id: `s${i}`, preview: `steer ${i}` }));
    // The fake allows one call per chat per 100 ms; the bot paces the group at 150 ms.
    const h = await startHarness(core, { fake: { rateLimit: { perChat: 1, windowMs: 100, retryAfter: 1 } }, config: { chatMinIntervalMs: 150, groupChatMinIntervalMs: 150, minEditIntervalMs: 150 } });
    open.push(h);
    const group = h.fake.addChat({ id: -100777, type: "supergroup", title: "g" });
    h.fake.setBotAdmin(group.id);
    h.fake.userSends(group, alice, "/ask talk");
    const m = await h.fake.waitFor(() => h.fake.botMessages(group.id).find((x) => x.versions.length >= 2), 10_000, "streaming");
    h.fake.userSends(group, admin, "/pending");
    await h.allHandled();
    const t0 = Date.now();
    h.fake.userReacts(group, alice, m.message_id, ["👎"]);
    await h.fake.waitFor(() => core.replies[0]!.state === "stopped" || undefined, 5000, "the stop");
    const stopMs = Date.now() - t0;
    await h.fake.waitFor(() => h.fake.botMessages(group.id).filter((x) => x.reply_markup).length === 8 || undefined, 20_000, "8 review messages");
    await h.bot.idle();
    assert.equal(h.fake.throttled, 0, "nothing the bot sent was answered 429");
    assert.ok(stopMs < 2000, `the stop reached the core in ${stopMs} ms`);
    assert.equal(h.fake.message(group.id, m.message_id)!.text, core.replies[0]!.shown.trim(), "the cut-back went out");
  });
});
