/**
 * Discord's documented limits and conventions, held against the adapter (real discord.js, the
 * stricter fake Discord, a scripted core): link previews (SUPPRESS_EMBEDS), who a message in the
 * bot's thread is addressed to, channels without threads, the 15-minute interaction token of
 * `/retrain`, and the 1 s edit floor. Permission refusals and the stop-position invariant need
 * the real core's streaming: see discord-real-limits.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { startHarness, type Harness } from "../../fakes/discord/discord-harness.ts";
import { INTERACTION_TOKEN_TTL_MS, SUPPRESS_EMBEDS } from "../../fakes/discord/fake-discord-state.ts";
import type { Outcome } from "../../../src/core/ports.ts";

describe("discord limits (scripted core, strict fake)", () => {
  /** Lets the test hold a training run between its progress reports. */
  let releaseTraining: () => void = () => {};
  let trainingHeld: Promise<void> = Promise.resolve();
  let pngPath = "";
  let core: ScriptedCore;
  let h: Harness;

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "steerbot-discord-limits-"));
    pngPath = join(dir, "loss-curve.png");
    await writeFile(pngPath, Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"));
    core = new ScriptedCore({
      continueAs: "new-reply",
      answer: (q) => (q.includes("link") ? "See https://example.com/docs and **bold** text. " + "filler ".repeat(30) : "word ".repeat(60)),
      retrain: async (progress): Promise<Outcome> => {
        await progress("training: epoch 1/2");
        await trainingHeld;
        await progress("training: epoch 2/2");
        return { ok: true, notice: "Trained adapter v2 (loss 1.2 → 0.8).", attachments: [pngPath] };
      },
    });
    h = await startHarness(core, { config: { stream: { edit_interval_ms: 0 } } });
  });
  after(async () => {
    await h.close();
  });

  it("model output with URLs never unfurls: every send and edit carries SUPPRESS_EMBEDS", async () => {
    const { fake, alice } = h;
    const q = fake.say(alice, fake.general, `${fake.mention} give me a link`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000, "thread");
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === thread.id && r.state === "done"), 10_000, "done");
    const msgs = fake.state.botMessagesIn(thread.id);
    assert.equal(msgs.map((m) => m.content).join(""), reply.target);
    assert.ok(msgs.some((m) => m.content.includes("https://example.com/docs")), "the URL is shown");
    assert.deepEqual(msgs.flatMap((m) => m.embeds), [], "no link preview");
    assert.ok(msgs.every((m) => (m.flags & SUPPRESS_EMBEDS) !== 0));
  });

  it("in the bot's thread, a reply to another person or a bystander's chat is no correction", async () => {
    const slow = new ScriptedCore({ continueAs: "new-reply", answer: () => "story ".repeat(400), continuation: () => "verse ".repeat(400), charsPerTick: 5, tickMs: 40 });
    const h2 = await startHarness(slow);
    try {
      const { fake, alice, bob } = h2;
      const q = fake.say(alice, fake.general, `${fake.mention} tell me a story`);
      const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000, "thread");
      const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 5000, "first message");
      await fake.waitFor(() => slow.isBotMessage("discord", first.id), 5000);
      // Bob chats in alice's thread while the reply streams: not a correction, the stream goes on.
      const chat = fake.say(bob, thread, "nice thread, alice");
      await h2.handled((e) => e.kind === "message" && e.id === chat.id);
      assert.equal(slow.replies[0].state, "generating");
      fake.react(alice, first.id, "🛑");
      await fake.waitFor(() => slow.replies[0].state === "stopped", 5000, "stopped");
      // Alice answers bob (a reply to his message): addressed to him, not to the bot.
      const toBob = fake.say(alice, thread, "thanks bob!", { replyTo: chat.id });
      await h2.handled((e) => e.kind === "message" && e.id === toBob.id);
      // Alice mentions bob in a plain message: addressed to him as well.
      const mention = fake.say(alice, thread, `<@${bob.id}> look at this`);
      await h2.handled((e) => e.kind === "message" && e.id === mention.id);
      // Bob, a bystander, writes a plain message: not the steerer of this thread.
      const bystander = fake.say(bob, thread, "I'd say dragons");
      await h2.handled((e) => e.kind === "message" && e.id === bystander.id);
      assert.equal(slow.calls.filter((c) => c.kind === "correct").length, 0, "none of these was a correction");
      // Bob replying to the bot's message is a correction (the core decides whether he may steer).
      const bobFix = fake.say(bob, thread, "Actually, a poem.", { replyTo: first.id });
      await fake.waitFor(() => slow.calls.some((c) => c.kind === "correct" && (c.req as { messageId: string }).messageId === bobFix.id), 5000);
      // Alice's plain message, addressed to nobody else, corrects her own reply.
      const resumed = await fake.waitFor(() => slow.replies[1]?.messageIds[0], 5000, "bob's continuation streams");
      fake.react(alice, resumed, "🛑");
      await fake.waitFor(() => slow.replies[1].state === "stopped", 5000, "continuation stopped");
      const aliceFix = fake.say(alice, thread, "Shorter, please.");
      await fake.waitFor(() => slow.calls.some((c) => c.kind === "correct" && (c.req as { messageId: string }).messageId === aliceFix.id), 5000);
    } finally {
      await h2.close();
    }
  });

  it("a voice channel's text chat has no threads: the answer comes in place, as a reply", async () => {
    const { fake, bob } = h;
    const q = fake.say(bob, fake.voice, `${fake.mention} from the voice chat`);
    const reply = await fake.waitFor(() => core.replies.find((r) => r.thread.threadId === fake.voice.id && r.state === "done"), 10_000, "answered");
    const msgs = fake.state.botMessagesIn(fake.voice.id);
    assert.equal(msgs.map((m) => m.content).join(""), reply.target);
    assert.equal(msgs[0].replyToId, q.id);
    assert.equal(fake.count("POST", `/messages/${q.id}/threads`), 0, "no thread attempted where there can be none");
  });

  it("/retrain posts progress and the summary with the loss curve as channel messages, past the token's 15 minutes", async () => {
    const { fake, admin } = h;
    trainingHeld = new Promise((r) => (releaseTraining = r));
    const run = fake.slash(admin, fake.general, "retrain");
    const done = h.handled((e) => e.kind === "interaction" && e.id === run.id, 1, 15_000);
    const channelMsgs = () => fake.state.botMessagesIn(fake.general.id).filter((m) => !m.interactionId && BigInt(m.id) > BigInt(run.id));
    const progress = await fake.waitFor(() => channelMsgs().find((m) => m.content.includes("epoch 1/2")), 5000, "progress in the channel");
    assert.equal(progress.ephemeralFor, undefined);
    // Training outlives the interaction token.
    fake.advanceClock(INTERACTION_TOKEN_TTL_MS + 60_000);
    releaseTraining();
    await done;
    const summary = await fake.waitFor(() => channelMsgs().find((m) => m.content.includes("Trained adapter v2")), 5000, "summary in the channel");
    assert.deepEqual(summary.attachments, ["loss-curve.png"]);
    assert.ok(progress.versions.some((v) => v.content.includes("epoch 2/2")), "later progress edits the progress message");
    assert.equal(h.bot.metrics.handlerErrors, 0);
    // The ephemeral answer pointed to the channel while its token still lived.
    const answer = fake.state.interactionMessages(run.id)[0];
    assert.equal(answer.ephemeralFor, admin.id);
    assert.match(answer.content, /progress/i);
  });
});
