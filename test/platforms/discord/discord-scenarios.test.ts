/**
 * Whole Discord scenarios: real discord.js against the fake Discord, the real core, the tiny
 * generated model and a real PostgreSQL database. What users saw is read from the fake; what
 * was stored is read from Postgres.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestApp, type TestApp } from "../../helpers/app.ts";
import { startHarness, type Harness } from "../../fakes/discord/discord-harness.ts";
import { FakeDiscord } from "../../fakes/discord/fake-discord.ts";
import type { FakeMessage } from "../../fakes/discord/fake-discord-state.ts";

/** The pause between two reads of a polling wait (`waitForStatus`, `waitForSteer`), never a wait on its own. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const joined = (msgs: FakeMessage[]) => msgs.map((m) => m.content).join("");

/** A word of the shown text that occurs once in it (what a person would quote), near the middle. */
function quotable(shown: string): string {
  const words = [...shown.matchAll(/[A-Za-z]{6,}/g)].filter((m) => shown.indexOf(m[0]) === shown.lastIndexOf(m[0]));
  assert.ok(words.length > 0, "the shown text has a quotable word");
  return words[Math.floor(words.length / 2)][0];
}

describe("discord scenarios (real core, Postgres, tiny model)", () => {
  let fake: FakeDiscord;
  let app: TestApp;
  let h: Harness;

  before(async () => {
    fake = new FakeDiscord();
    await fake.listen();
    app = await createTestApp({
      db: "postgres",
      config: {
        // Long replies: about 6000 characters, several seconds of generation to stop in.
        generation: { max_tokens: 1500 },
        model: { context_size: 4096 },
        permissions: {
          admins: { users: [], roles: [fake.adminRole] },
          stop: { users: [], roles: [fake.trustedRole], channels: [] },
          steer: { users: [], roles: [fake.trustedRole], channels: [] },
          trusted: { users: [], roles: [fake.trustedRole] },
          default_trust: "pending",
        },
      },
    });
    h = await startHarness(app.core, { fake, config: app.config });
  });
  after(async () => {
    await h?.close();
    await app?.close();
  });

  const generation = (source: string) =>
    app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).executeTakeFirstOrThrow();

  it("ask → stream → stop (stranger ignored) → correct → resume → accept, with the right steers row", async () => {
    const { alice, bob } = h;
    const q = fake.say(alice, fake.general, `${fake.mention} Tell me a long story`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 10_000, "thread");
    const ref = { platform: "discord", chatId: fake.general.id, threadId: thread.id };
    const first = await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 20_000, "first message");
    await fake.waitFor(() => first.versions.length >= 2, 10_000, "an edit");

    const bobsStop = h.handled((e) => e.kind === "reaction" && e.id === first.id && e.userId === bob.id);
    fake.react(bob, first.id, "🛑"); // a stranger: ignored, silently
    await bobsStop;
    assert.equal(app.core.openReplyIn(ref)?.state, "generating");

    fake.react(alice, first.id, "🛑");
    await fake.waitFor(() => app.core.openReplyIn(ref)?.state === "stopped", 10_000, "stopped");
    const stopped = await waitForStatus(q.id, "stopped");
    await fake.waitFor(() => joined(fake.state.botMessagesIn(thread.id)) === stopped.final_text, 10_000, "message cut to the kept text");
    assert.ok(stopped.final_text!.length > 0);
    assert.equal(fake.state.messagesIn(thread.id).filter((m) => m.authorId === fake.state.bot.id && /not allowed|stop/i.test(m.content)).length, 0, "nothing said to the stranger");

    // The correction quotes a piece of what was shown (Discord "> " quote lines) and says what it should have said.
    const shown = stopped.final_text!;
    const piece = quotable(shown);
    const fix = fake.say(alice, thread, `> ${piece}\nthe dragon slept`, { replyTo: first.id });
    fake.dispatchMessageCreate(fix); // delivered twice: stored once
    const steer = await waitForSteer(fix.id).catch((e: Error) => {
      const said = fake.state.messagesIn(thread.id).slice(-2).map((m) => m.content.slice(0, 200));
      throw new Error(`${e.message}; quoted ${JSON.stringify(piece)}; thread ends with ${JSON.stringify(said)}`);
    });
    assert.equal(steer.form, "quote");
    assert.equal(steer.prefix + steer.rejected, shown, "prefix + rejected is exactly what was shown");
    assert.ok(steer.chosen.endsWith("the dragon slept"), steer.chosen); // snapped to a token boundary, it may start a little earlier
    assert.equal(steer.author, alice.id);
    assert.equal(steer.platform, "discord");
    assert.equal(steer.trust_state, "pending", "alice is not trusted: an admin must approve");
    assert.equal(steer.shown_chars, shown.length);

    // The resumed reply streams into the thread, from prefix + chosen, split over several messages.
    const after = await waitForStatus(q.id, "done", 90_000);
    // The messages of the resumed reply (the core's notice to alice is a message of its own).
    const resumed = () => fake.state.botMessagesIn(thread.id).filter((m) => BigInt(m.id) > BigInt(fix.id) && app.core.isBotMessage("discord", m.id));
    await fake.waitFor(() => joined(resumed()) === after.final_text, 10_000, "resumed text shown");
    assert.ok(after.final_text!.startsWith(steer.prefix + steer.chosen));
    // how long the continuation runs depends on where the stop landed (the model may end early):
    // whatever its length, it is split into messages of at most 2000 characters
    const parts = resumed();
    assert.ok(parts.length >= Math.ceil(after.final_text!.length / 2000), `${after.final_text!.length} characters in ${parts.length} messages`);
    assert.ok(parts.every((m) => m.content.length <= 2000), "no message over Discord's 2000 characters");
    // the notice goes out beside the resumed stream, in no fixed order with it
    const notice = await fake.waitFor(
      () => fake.state.botMessagesIn(thread.id).find((m) => m.replyToId === fix.id && !app.core.isBotMessage("discord", m.id)),
      10_000,
      "the notice to alice",
    );
    assert.match(notice.content, /approval/, "alice is told her steer waits for approval");

    // ✅ accepts the reply.
    const last = resumed().at(-1)!;
    fake.react(alice, last.id, "✅");
    await fake.waitFor(() => app.core.openReplyIn(ref) === undefined, 10_000, "accepted");
    const rows = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", fix.id).execute();
    assert.equal(rows.length, 1, "the duplicated correction is stored once");
    assert.equal((await generation(q.id)).status, "done");
    assert.equal(h.bot.metrics.handlerErrors, 0);
  });

  it("a long reply is split at 2000 characters, and a 429 storm loses no edit", async () => {
    const { alice } = h;
    const q = fake.say(alice, fake.general, `${fake.mention} Write a very long essay`);
    const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 10_000, "thread");
    await fake.waitFor(() => fake.state.botMessagesIn(thread.id)[0], 20_000, "first message");
    const before429 = fake.limiter.limitedCount;
    fake.limiter.storm(25, 250);
    const done = await waitForStatus(q.id, "done", 90_000);
    await fake.waitFor(() => joined(fake.state.botMessagesIn(thread.id)) === done.final_text, 15_000, "final text shown");
    const msgs = fake.state.botMessagesIn(thread.id);
    assert.ok(done.final_text!.length >= 5000, `reply of ${done.final_text!.length} chars`);
    assert.ok(msgs.length >= 3);
    assert.ok(msgs.every((m) => m.versions.every((v) => v.content.length <= 2000)));
    assert.equal(fake.limiter.limitedCount - before429, 25, "the storm's 429s were really answered");
    assert.equal(h.bot.metrics.rateLimitsSurfaced, 0);
    assert.equal(h.bot.metrics.handlerErrors, 0);
  });

  it("pending steers are listed to admins with buttons, refused to others, approved by a click", async () => {
    const { alice, admin } = h;
    const refused = fake.slash(alice, fake.general, "steers", [{ type: 1, name: "pending", options: [] }]);
    const no = await fake.waitFor(() => fake.state.interactionMessages(refused.id).find((m) => m.content), 10_000);
    assert.equal(no.ephemeralFor, alice.id);
    assert.ok(!/waiting/.test(no.content), no.content);
    const status = fake.slash(alice, fake.general, "status");
    const noStatus = await fake.waitFor(() => fake.state.interactionMessages(status.id).find((m) => m.content), 10_000);
    assert.ok(!/Model:/.test(noStatus.content));

    const list = fake.slash(admin, fake.general, "steers", [{ type: 1, name: "pending", options: [] }]);
    const listed = await fake.waitFor(() => fake.state.interactionMessages(list.id).find((m) => m.components.length), 10_000);
    const pending = await app.store.db.selectFrom("steers").selectAll().where("trust_state", "=", "pending").execute();
    assert.equal(pending.length, 1);
    const id = String(pending[0].id);
    assert.match(JSON.stringify(listed.components), new RegExp(`steerbot:steer:approve:${id}`));
    const click = fake.click(alice, listed.id, `steerbot:steer:approve:${id}`);
    await h.handled((e) => e.kind === "interaction" && e.id === click.id);
    assert.equal((await app.store.db.selectFrom("steers").select("trust_state").where("id", "=", pending[0].id).executeTakeFirstOrThrow()).trust_state, "pending");
    fake.click(admin, listed.id, `steerbot:steer:approve:${id}`);
    await fake.waitFor(() => listed.content.includes(`Steer #${id} approved.`), 10_000, "approval shown");
    const row = await app.store.db.selectFrom("steers").select("trust_state").where("id", "=", pending[0].id).executeTakeFirstOrThrow();
    assert.equal(row.trust_state, "approved");

    const adminStatus = fake.slash(admin, fake.general, "status");
    const st = await fake.waitFor(() => fake.state.interactionMessages(adminStatus.id).find((m) => m.content), 10_000);
    assert.match(st.content, /Model:/);
    assert.equal(st.ephemeralFor, admin.id);
  });

  it("20 threads stream at once, each ending with exactly its generated text", async () => {
    // Short replies here: 20 generations share two CPU cores. (The core reads max_tokens per reply.)
    const saved = app.config.generation.max_tokens;
    app.config.generation.max_tokens = 48;
    try {
      const users = Array.from({ length: 20 }, (_, i) => fake.addUser(`u${i}`));
      const qs = users.map((u, i) => fake.say(u, fake.general, `${fake.mention} Question number ${i}?`));
      for (const q of qs) {
        const done = await waitForStatus(q.id, "done", 120_000);
        const thread = fake.state.threadOf(q.id)!;
        await fake.waitFor(() => joined(fake.state.botMessagesIn(thread.id)) === done.final_text, 15_000, `thread of ${q.id}`);
      }
      assert.equal(h.bot.metrics.rateLimitsSurfaced, 0);
      assert.equal(h.bot.metrics.handlerErrors, 0);
    } finally {
      app.config.generation.max_tokens = saved;
    }
  });

  async function waitForStatus(source: string, status: string, ms = 30_000) {
    const end = Date.now() + ms;
    for (;;) {
      const g = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).executeTakeFirst();
      if (g && g.status === status) return g;
      if (Date.now() > end) throw new Error(`generation of ${source} not ${status} after ${ms} ms (is ${g?.status})`);
      await sleep(100);
    }
  }

  async function waitForSteer(correctionId: string, ms = 30_000) {
    const end = Date.now() + ms;
    for (;;) {
      const s = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "=", correctionId).executeTakeFirst();
      if (s) return s;
      if (Date.now() > end) throw new Error(`no steer for ${correctionId} after ${ms} ms`);
      await sleep(100);
    }
  }
});
