/**
 * The Discord adapter over real discord.js against the fake Discord, with a scripted core:
 * threads, streaming, stop/correct/accept mapping, duplicates, 429s, splitting, concurrency,
 * permissions fallback, slash commands and buttons. (Scenarios with the real core and Postgres
 * are in discord-scenarios.test.ts; who may do what is decided and tested there and in
 * test/core/permissions.test.ts — here a refusal is scripted, to see the adapter pass the actor
 * and show the core's notice.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { startHarness, type Harness } from "../../fakes/discord/discord-harness.ts";
import { commandDefinitions } from "../../../src/platforms/discord/discord-commands.ts";

describe("discord adapter transport (scripted core)", () => {
  /** The scripted core says no to admin commands from anyone but this user. */
  let adminId = "";
  let core: ScriptedCore;
  let h: Harness;

  before(async () => {
    core = new ScriptedCore({ continueAs: "new-reply", refuse: (kind, actor) => (kind.startsWith("admin.") && actor.userId !== adminId ? { ok: false, notice: "Admins only." } : undefined), answer: (q) => (q.startsWith("long") ? "x".repeat(4000) + " " + "y".repeat(1000) : `Answer: ${q} ` + "lorem ipsum ".repeat(20)) });
    h = await startHarness(core);
    adminId = h.admin.id;
  });
  after(async () => {
    await h.close();
  });

  it("connects with the intents and partials the bot needs", () => {
    const identify = h.fake.gateway.identifies[0] as { intents: number };
    // Guilds 1, GuildMessages 512, GuildMessageReactions 1024, DirectMessages 4096, DirectMessageReactions 8192, MessageContent 32768
    assert.equal(identify.intents, 1 | 512 | 1024 | 4096 | 8192 | 32768);
  });

  it("a mention opens a thread on the question and streams the answer into it", async () => {
    const { fake, alice } = h;
    const q = fake.say(alice, fake.general, `${fake.mention} what is a steer?`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000, "thread");
    assert.equal(thread.name, "what is a steer?");
    const reply = await fake.waitFor(() => core.replies.find((r) => r.state === "done" && r.thread.threadId === thread.id), 10_000, "done");
    const shown = fake.state.botMessagesIn(thread.id).map((m) => m.content).join("");
    assert.equal(shown, reply.target);
    assert.deepEqual(reply.thread, { platform: "discord", chatId: fake.general.id, threadId: thread.id });
    // The bot's own echoed messages never became asks.
    assert.equal(core.calls.filter((c) => c.kind === "ask").length, 1);
  });

  it("the same MESSAGE_CREATE delivered twice opens one thread and asks once", async () => {
    const { fake, alice } = h;
    const asksBefore = core.calls.filter((c) => c.kind === "ask").length;
    const q = fake.say(alice, fake.general, `${fake.mention} twice?`);
    const both = h.handled((e) => e.kind === "message" && e.id === q.id, 2, 15_000);
    await fake.waitFor(() => fake.state.threadOf(q.id), 5000, "thread");
    // discord.js itself drops a MESSAGE_CREATE of a message it has cached; a replayed event
    // after a reconnect finds it uncached, and then the bot's own check must drop it.
    const channel = h.bot.client.channels.cache.get(fake.general.id);
    assert.ok(channel?.isTextBased());
    channel.messages.cache.delete(q.id);
    fake.dispatchMessageCreate(q);
    // Both deliveries handled: the first once its reply is done, the second dropped.
    const outcomes = (await both).map((e) => e.outcome).sort();
    assert.deepEqual(outcomes, ["done", "duplicate"]);
    assert.equal(core.calls.filter((c) => c.kind === "ask").length - asksBefore, 1);
    assert.equal(fake.count("POST", `/messages/${q.id}/threads`), 1);
  });

  it("a stop the core refuses (a stranger's) changes nothing; the asker's stop cuts at the text shown; a reply corrects", async () => {
    let bobId = "";
    const slow = new ScriptedCore({ continueAs: "new-reply", answer: () => "word ".repeat(400), charsPerTick: 5, tickMs: 40, refuse: (kind, actor) => (kind === "stop" && actor.userId === bobId ? { ok: false } : undefined) });
    const h2 = await startHarness(slow);
    try {
      const { fake, alice, bob } = h2;
      bobId = bob.id;
      const q = fake.say(alice, fake.general, `${fake.mention} tell me a long story`);
      // The question's handler returns once its reply has settled (here: after the stop).
      const settled = h2.handled((e) => e.kind === "message" && e.id === q.id, 1, 30_000);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
      const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000, "first message");
      // The fake stores the message before the bot has its id back: a reaction before the core
      // knows it is not on a reply yet (CI once counted 1 stop here instead of 2).
      await fake.waitFor(() => slow.isBotMessage("discord", first.id), 5000);
      const bobsStop = h2.handled((e) => e.kind === "reaction" && e.id === first.id && e.userId === bob.id);
      fake.react(bob, first.id, "🛑");
      await bobsStop;
      assert.equal(slow.replies[0].state, "generating", "a stranger's stop changes nothing");
      assert.equal((slow.calls.find((c) => c.kind === "stop")!.req as { actor: { userId: string } }).actor.userId, bob.id, "the reactor is the actor");
      fake.react(alice, first.id, "🛑", 2); // delivered twice: one stop
      await fake.waitFor(() => slow.replies[0].state === "stopped", 5000, "stopped");
      const stops = slow.calls.filter((c) => c.kind === "stop").length;
      assert.equal(stops, 2, "bob's stop and one of alice's two identical events");
      await settled; // the stream has ended: every edit it made has landed
      const visible = fake.state.botMessagesIn(thread.id).map((m) => m.content).join("");
      assert.equal(visible, slow.replies[0].shown, "the message shows exactly the kept text");
      assert.ok(visible.length < slow.replies[0].target.length);
      assert.equal(h2.bot.metrics.stopLatencyMs.length, 1);

      const fix = fake.say(alice, thread, "> word word\nActually, a short story.", { replyTo: first.id });
      await fake.waitFor(() => slow.steers.length === 1, 5000, "steer");
      const call = slow.calls.find((c) => c.kind === "correct")!.req as { replyToMessageId?: string; correction: { text: string }; messageId: string };
      assert.equal(call.replyToMessageId, first.id);
      assert.equal(call.correction.text, "> word word\nActually, a short story.");
      assert.equal(call.messageId, fix.id);
      await fake.waitFor(() => slow.replies[1]?.state === "done", 20_000, "continuation done");
      // ✅ accepts.
      fake.react(alice, slow.replies[1].messageIds[0], "✅");
      await fake.waitFor(() => slow.accepted.length === 1, 5000, "accepted");
    } finally {
      await h2.close();
    }
  });

  it("metrics.stopLatencyMs keeps only the newest stops (stopLatencyWindow); stopsHandled counts them all", async () => {
    const slow = new ScriptedCore({ continueAs: "new-reply", answer: () => "more ".repeat(400), charsPerTick: 5, tickMs: 40 });
    const h2 = await startHarness(slow, { stopLatencyWindow: 2 });
    try {
      const { fake, alice } = h2;
      for (let i = 0; i < 3; i++) {
        const q = fake.say(alice, fake.general, `${fake.mention} story ${i}`);
        const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
        const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000);
        await fake.waitFor(() => slow.isBotMessage("discord", first.id), 5000);
        const stop = h2.handled((e) => e.kind === "reaction" && e.id === first.id);
        fake.react(alice, first.id, "🛑");
        await stop;
        assert.equal(slow.replies[i].state, "stopped");
      }
      assert.equal(h2.bot.metrics.stopsHandled, 3);
      assert.equal(h2.bot.metrics.stopLatencyMs.length, 2, "the oldest stop's latency was dropped");
    } finally {
      await h2.close();
    }
  });

  it("a stop reaction on a message no longer in discord.js's cache (partial) still stops", async () => {
    const slow = new ScriptedCore({ continueAs: "new-reply", answer: () => "tick ".repeat(400), charsPerTick: 5, tickMs: 40 });
    const h2 = await startHarness(slow);
    try {
      const { fake, alice } = h2;
      const q = fake.say(alice, fake.general, `${fake.mention} uncached`);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
      const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000);
      // (The fake stores the message before the bot has its id back: wait until the core knows it.)
      await fake.waitFor(() => slow.isBotMessage("discord", first.id), 5000);
      const channel = h2.bot.client.channels.cache.get(thread.id);
      assert.ok(channel?.isTextBased());
      channel.messages.cache.clear();
      fake.react(alice, first.id, "🛑");
      await fake.waitFor(() => slow.replies[0].state === "stopped", 5000, "stopped");
    } finally {
      await h2.close();
    }
  });

  it("after a stop, the next plain message in the thread is a correction", async () => {
    const slow = new ScriptedCore({ continueAs: "new-reply", answer: () => "step ".repeat(300), charsPerTick: 5, tickMs: 40 });
    const h2 = await startHarness(slow);
    try {
      const { fake, alice } = h2;
      const q = fake.say(alice, fake.general, `${fake.mention} steps?`);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
      const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000);
      await fake.waitFor(() => slow.isBotMessage("discord", first.id), 5000);
      fake.react(alice, first.id, "🛑");
      await fake.waitFor(() => slow.replies[0].state === "stopped", 5000);
      fake.say(alice, thread, "Skip the steps.");
      await fake.waitFor(() => slow.steers.length === 1, 5000);
      const call = slow.calls.find((c) => c.kind === "correct")!.req as { replyToMessageId?: string; thread: { threadId: string } };
      assert.equal(call.replyToMessageId, undefined);
      assert.equal(call.thread.threadId, thread.id);
    } finally {
      await h2.close();
    }
  });

  it("a 5000-character reply is split across three messages that add up to the text", async () => {
    const { fake, alice } = h;
    const q = fake.say(alice, fake.general, `${fake.mention} long answer please`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === thread.id && r.state === "done"), 15_000);
    const msgs = fake.state.botMessagesIn(thread.id);
    assert.equal(msgs.length, 3);
    assert.ok(msgs.every((m) => m.content.length <= 2000 && m.versions.every((v) => v.content.length <= 2000)));
    assert.equal(msgs.map((m) => m.content).join(""), reply.target);
  });

  it("without permission to create threads it answers in place and logs why", async () => {
    const { fake, alice, log } = h;
    const q = fake.say(alice, fake.noThreads, `${fake.mention} here?`);
    const msg = await fake.waitFor(() => fake.state.botMessagesIn(fake.noThreads.id)[0], 5000);
    assert.equal(msg.replyToId, q.id, "the answer replies to the question");
    assert.ok(log.has("warn", "no permission to create threads"));
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === fake.noThreads.id && r.state === "done"), 10_000);
    assert.equal(fake.state.botMessagesIn(fake.noThreads.id).map((m) => m.content).join(""), reply.target);
  });

  it("DMs are answered in place", async () => {
    const { fake, bob } = h;
    const dm = fake.dm(bob);
    fake.say(bob, dm, "hello in private");
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === dm.id && r.state === "done"), 10_000);
    assert.equal(fake.state.botMessagesIn(dm.id).map((m) => m.content).join(""), reply.target);
  });

  it("/ask echoes the question and streams into a thread on it", async () => {
    const { fake, alice } = h;
    const it = fake.slash(alice, fake.general, "ask", [{ type: 3, name: "question", value: "slash question" }]);
    const echo = await fake.waitFor(() => fake.state.interactionMessages(it.id)[0], 5000);
    assert.match(echo.content, /asked: slash question/);
    const thread = await fake.waitFor(() => fake.state.threadOf(echo.id), 5000);
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === thread.id && r.state === "done"), 10_000);
    assert.equal(fake.state.botMessagesIn(thread.id).map((m) => m.content).join(""), reply.target);
    const call = core.calls.filter((c) => c.kind === "ask").at(-1)!.req as { sourceMessageId: string };
    assert.equal(call.sourceMessageId, it.id);
  });

  it("admin commands pass the actor with its roles; the core's refusal and answers are ephemeral; steers approved by button", async () => {
    const { fake, alice, admin } = h;
    const refused = fake.slash(alice, fake.general, "status");
    const r1 = await fake.waitFor(() => fake.state.interactionMessages(refused.id).find((m) => m.content), 5000);
    assert.equal(r1.content, "Admins only.");
    assert.equal(r1.ephemeralFor, alice.id);
    const asked = core.calls.filter((c) => c.kind === "admin.status").at(-1)!.req as { platform: string; userId: string; roles?: string[] };
    assert.equal(asked.platform, "discord");
    assert.equal(asked.userId, alice.id);
    assert.ok(Array.isArray(asked.roles), "the member's guild roles go to the core (admins may be a role)");

    const ok = fake.slash(admin, fake.general, "status");
    const r2 = await fake.waitFor(() => fake.state.interactionMessages(ok.id).find((m) => m.content), 5000);
    assert.match(r2.content, /^replies: /);

    const list = fake.slash(admin, fake.general, "steers", [{ type: 1, name: "pending", options: [] }]);
    const listed = await fake.waitFor(() => fake.state.interactionMessages(list.id).find((m) => m.components.length), 5000);
    assert.equal(listed.ephemeralFor, admin.id);
    assert.equal(listed.components.length, 2);
    const ids = JSON.stringify(listed.components);
    assert.match(ids, /steerbot:steer:approve:s1/);
    assert.match(ids, /steerbot:steer:reject:s2/);

    const click = fake.click(alice, listed.id, "steerbot:steer:approve:s1");
    await h.handled((e) => e.kind === "interaction" && e.id === click.id);
    assert.equal((core.calls.filter((c) => c.kind === "admin.review").at(-1)!.req as { userId: string }).userId, alice.id, "the clicker, not the lister, is the actor");
    assert.equal(core.reviews.length, 0, "a click the core refuses changes nothing");
    fake.click(admin, listed.id, "steerbot:steer:approve:s1");
    await fake.waitFor(() => core.reviews.length === 1, 5000);
    assert.deepEqual(core.reviews[0], { steerId: "s1", verdict: "approve", by: admin.id });
    await fake.waitFor(() => listed.components.length === 1, 5000, "row of s1 removed");
  });

  it("/retrain, /adapters and /optout answer ephemerally with the core's notice", async () => {
    const { fake, admin, alice } = h;
    const retrain = fake.slash(admin, fake.general, "retrain");
    // Training outlives an interaction token: progress and summary are channel messages (see discord-limits.test.ts).
    const r = await fake.waitFor(() => fake.state.botMessagesIn(fake.general.id).find((m) => !m.interactionId && BigInt(m.id) > BigInt(retrain.id) && /Trained/.test(m.content)), 5000);
    assert.equal(r.ephemeralFor, undefined);
    assert.ok(fake.state.botMessagesIn(fake.general.id).some((m) => m.versions.some((v) => v.content.endsWith("training: epoch 1/1"))), "progress was shown");
    const refused = fake.slash(alice, fake.general, "retrain");
    const no = await fake.waitFor(() => fake.state.interactionMessages(refused.id).find((m) => m.content), 5000);
    assert.equal(no.content, "Admins only.");
    assert.equal(no.ephemeralFor, alice.id, "a refusal stays between the bot and the asker");
    const adapters = fake.slash(admin, fake.general, "adapters", [
      { type: 3, name: "action", value: "activate" },
      { type: 3, name: "version", value: "v2" },
    ]);
    const a = await fake.waitFor(() => fake.state.interactionMessages(adapters.id).find((m) => m.content), 5000);
    assert.equal(a.content, "adapters activate v2: v1 (active)");
    const optout = fake.slash(alice, fake.general, "optout");
    const o = await fake.waitFor(() => fake.state.interactionMessages(optout.id).find((m) => m.content), 5000);
    assert.equal(o.content, "You are opted out.");
    assert.equal(o.ephemeralFor, alice.id);
  });

  it("/forget asks for confirmation with a button only the asker can press", async () => {
    const { fake, alice, bob } = h;
    const it = fake.slash(alice, fake.general, "forget");
    const ask = await fake.waitFor(() => fake.state.interactionMessages(it.id).find((m) => m.components.length), 5000);
    assert.equal(ask.content, "Really forget everything about you?");
    const other = fake.click(bob, ask.id, `steerbot:forget:confirm:${alice.id}`);
    const no = await fake.waitFor(() => fake.state.interactionMessages(other.id)[0], 5000);
    assert.equal(no.content, "This button is for someone else.");
    fake.click(alice, ask.id, `steerbot:forget:confirm:${alice.id}`);
    await fake.waitFor(() => ask.content === "Forgotten: 0 steers deleted." && ask.components.length === 0, 5000);
  });

  it("survives a dropped gateway connection: resumes and keeps answering", async () => {
    const { fake, alice } = h;
    fake.gateway.dropAll();
    await fake.waitFor(() => fake.gateway.resumeCount > 0 && fake.gateway.readyCount > 0, 15_000, "resumed");
    const q = fake.say(alice, fake.general, `${fake.mention} still there?`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
    await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === thread.id && r.state === "done"), 10_000);
    assert.equal(h.bot.metrics.handlerErrors, 0);
  });

  it("registers the slash commands in a guild", async () => {
    const n = await h.bot.registerCommands({ guildId: h.fake.state.guildId });
    assert.equal(n, commandDefinitions().length);
    const set = h.fake.state.commandSets.at(-1)!;
    assert.equal(set.guildId, h.fake.state.guildId);
    assert.deepEqual(set.commands.map((c) => c.name).sort(), ["adapters", "ask", "cancel", "forget", "optout", "retrain", "status", "steers"]);
  });
});

describe("discord adapter under pressure (scripted core)", () => {
  it("a 429 storm loses no edit and crashes nothing", async () => {
    const core = new ScriptedCore({ continueAs: "new-reply", answer: () => "storm ".repeat(150), charsPerTick: 10, tickMs: 30 });
    const h = await startHarness(core, { fake: { rateLimit: { limit: 2, windowMs: 1000 } } });
    try {
      const { fake, alice } = h;
      const qs = [0, 1, 2].map((i) => fake.say(alice, fake.general, `${fake.mention} storm ${i}`));
      await fake.waitFor(() => qs.every((q) => fake.state.threadOf(q.id)), 10_000);
      fake.limiter.storm(15, 200);
      await fake.waitFor(() => core.replies.length === 3 && core.replies.every((r) => r.state === "done"), 40_000, "all done");
      for (const r of core.replies) {
        assert.equal(fake.state.botMessagesIn(r.thread.threadId).map((m) => m.content).join(""), r.target);
      }
      assert.ok(fake.limiter.limitedCount >= 15, `429s answered: ${fake.limiter.limitedCount}`);
      assert.ok(h.bot.metrics.rateLimitsAbsorbed > 0);
      assert.equal(h.bot.metrics.rateLimitsSurfaced, 0);
      assert.equal(h.bot.metrics.handlerErrors, 0);
    } finally {
      await h.close();
    }
  });

  it("20 threads stream at once, each ending with its full text", async () => {
    const core = new ScriptedCore({ continueAs: "new-reply", answer: (q) => `${q}: ` + "abc ".repeat(200), charsPerTick: 20, tickMs: 30 });
    const h = await startHarness(core, { fake: { rateLimit: { limit: 5, windowMs: 1000 } } });
    try {
      const { fake, alice } = h;
      const qs = Array.from({ length: 20 }, (_, i) => fake.say(alice, fake.general, `${fake.mention} thread ${i}`));
      await fake.waitFor(() => core.replies.length === 20 && core.replies.every((r) => r.state === "done"), 60_000, "20 done");
      for (const q of qs) {
        const thread = fake.state.threadOf(q.id)!;
        const r = core.replies.find((x) => x.thread.threadId === thread.id)!;
        assert.equal(fake.state.botMessagesIn(thread.id).map((m) => m.content).join(""), r.target);
      }
      assert.equal(h.bot.metrics.rateLimitsSurfaced, 0);
      assert.equal(h.bot.metrics.handlerErrors, 0);
    } finally {
      await h.close();
    }
  });

  it("a question the core refuses gets the refusal as a reply, and no thread", async () => {
    let bobId = "";
    const core = new ScriptedCore({ continueAs: "new-reply", refuse: (kind, actor) => (kind === "ask" && actor.userId === bobId ? { ok: false, notice: "You are not allowed to ask the bot here." } : undefined) });
    const h = await startHarness(core);
    try {
      const { fake, bob } = h;
      bobId = bob.id;
      const q = fake.say(bob, fake.general, `${fake.mention} may I?`);
      const notice = await fake.waitFor(() => fake.state.botMessagesIn(fake.general.id).find((m) => m.replyToId === q.id), 5000);
      assert.match(notice.content, /not allowed to ask/);
      assert.equal(fake.state.threadOf(q.id), undefined);
      const it = fake.slash(bob, fake.general, "ask", [{ type: 3, name: "question", value: "and now?" }]);
      const answer = await fake.waitFor(() => fake.state.interactionMessages(it.id).find((m) => m.content), 5000);
      assert.match(answer.content, /not allowed to ask/);
      assert.equal(answer.ephemeralFor, bob.id, "the refusal is shown to bob alone, nothing is echoed");
      // A reply to a bot message the core does not know is no new question: the core says why.
      const r = fake.say(bob, fake.general, "no, I meant this", { replyTo: notice.id });
      const why = await fake.waitFor(() => fake.state.botMessagesIn(fake.general.id).find((m) => m.replyToId === r.id), 5000);
      assert.equal(why.content, "Nothing to correct here.");
      assert.equal(fake.state.threadOf(r.id), undefined);
    } finally {
      await h.close();
    }
  });

  it("stopping the bot mid-stream ends the generation at the next edit", async () => {
    const core = new ScriptedCore({ continueAs: "new-reply", answer: () => "long ".repeat(500), charsPerTick: 5, tickMs: 40 });
    const h = await startHarness(core);
    try {
      const { fake, alice } = h;
      const q = fake.say(alice, fake.general, `${fake.mention} go on forever`);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
      await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000);
      await h.bot.stop();
      assert.equal(core.replies[0].state, "stopped");
      assert.equal(h.bot.metrics.handlerErrors, 0);
    } finally {
      await h.close();
    }
  });

  it("a deleted message ends the stream cleanly (SurfaceGoneError), nothing crashes", async () => {
    const core = new ScriptedCore({ continueAs: "new-reply", answer: () => "gone ".repeat(300), charsPerTick: 5, tickMs: 40 });
    const h = await startHarness(core);
    try {
      const { fake, alice } = h;
      const q = fake.say(alice, fake.general, `${fake.mention} delete me`);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000);
      const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000);
      fake.deleteMessage(first.id);
      await fake.waitFor(() => core.replies[0].state === "stopped", 5000, "stopped by SurfaceGoneError");
      assert.equal(h.bot.metrics.handlerErrors, 0);
      assert.equal(h.bot.metrics.surfaceErrors, 1);
    } finally {
      await h.close();
    }
  });
});
