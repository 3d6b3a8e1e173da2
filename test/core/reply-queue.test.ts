/**
 * One reply, one writer (DESIGN.md §11): concurrent corrections of one reply, corrections of an
 * older message of a re-posted reply, and accepted replies, on the real engine (tiny fixture
 * model) and the real store. Waits on the surfaces' own changes, never on sleeps.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor, ThreadRef } from "../../src/core/ports.ts";
import type { Engine } from "../../src/engine/engine.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const alice: Actor = { platform: "test", userId: "alice" };
const bob: Actor = { platform: "test", userId: "bob" };
let threadNo = 0;
const newThread = (): ThreadRef => ({ platform: "test", chatId: "q", threadId: `t${++threadNo}` });

/** Resolves with what `surface` shows once `cond` holds for it (checked at each send/edit). */
function whenShown(surface: RecordingSurface, cond: (visible: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    if (cond(surface.visible)) return resolve(surface.visible);
    surface.onChange = (v) => {
      if (!cond(v)) return;
      surface.onChange = undefined;
      resolve(v);
    };
  });
}

/**
 * Resolves once the core knows `messageId` as part of a reply: a surface reports a send before
 * the core hears the new message's id, so a stop right after the first send could miss it.
 */
async function known(app: TestApp, messageId: string): Promise<string> {
  for (let i = 0; i < 1000 && !app.core.isBotMessage("test", messageId); i++) await new Promise((r) => setImmediate(r));
  assert.ok(app.core.isBotMessage("test", messageId), `the core knows ${messageId}`);
  return messageId;
}

/** The last `n` characters of `text` that hold no s/// delimiter (the random model writes any). */
function lastWithoutDelimiter(text: string, n: number): string {
  for (let end = text.length; end >= n; end--) {
    const w = text.slice(end - n, end);
    if (!/[/\\]/.test(w)) return w;
  }
  throw new Error(`no ${n} characters without / or \\ in ${JSON.stringify(text)}`);
}

/** An early `n`-character window of `text` that occurs only once in it and holds no delimiter: [start, window]. */
function earlyUniqueWindow(text: string, n: number, before: number): [number, string] {
  for (let i = 0; i + n <= before; i++) {
    const w = text.slice(i, i + n);
    if (!/[/\\]/.test(w) && w.trim().length === n && text.indexOf(w) === i && text.lastIndexOf(w) === i) return [i, w];
  }
  throw new Error(`no unique ${n}-character window before ${before} in ${JSON.stringify(text)}`);
}

describe("one reply, one writer", () => {
  let app: TestApp;
  before(async () => {
    app = await createTestApp({ db: "pglite", config: { generation: { max_tokens: 400 }, permissions: { steer: { users: ["bob"] } } } });
  });
  after(async () => app?.close());

  /** Asks, lets the reply show more than `chars` characters on a slow platform, stops it there. */
  async function stoppedReply(source: string, chars = 40): Promise<{ thread: ThreadRef; surface: RecordingSurface; shown: string }> {
    const surface = new RecordingSurface(2000, 40, 20, `${source}-m`);
    const thread = newThread();
    const asking = app.core.ask({ thread, actor: alice, text: "Tell me a long story", sourceMessageId: source, surface });
    await whenShown(surface, (v) => v.length > chars);
    assert.equal((await app.core.stop({ platform: "test", messageId: await known(app, surface.order[0]!), actor: alice })).ok, true);
    await asking;
    return { thread, surface, shown: surface.visible };
  }

  it("a correction sent while another is applied waits, and aligns against the text its sender saw", { timeout: 60_000 }, async () => {
    const { thread, surface, shown } = await stoppedReply("c1");
    const last = lastWithoutDelimiter(shown, 5);
    const surfaces = { "c1-a": new RecordingSurface(2000, 40, 20, "c1a"), "c1-b": new RecordingSurface(2000, 40, 20, "c1b") };
    // Alice and Bob both saw the stopped text; Alice's correction is applied and resumes first…
    const a = app.core.correct({ thread, actor: alice, replyToMessageId: surface.order[0], correction: { text: `s/${last}/ and the dragon slept/` }, messageId: "c1-a", surface: surfaces["c1-a"] });
    await whenShown(surfaces["c1-a"], (v) => v.length > 0);
    // …and Bob's, written against the same stopped message, arrives while Alice's resume streams.
    const b = app.core.correct({ thread, actor: bob, replyToMessageId: surface.order[0], correction: { text: `s/${last}/ and the knight woke/` }, messageId: "c1-b", surface: surfaces["c1-b"] });
    const [outA, outB] = await Promise.all([a, b]);
    assert.equal(outA.ok, true, outA.notice);
    assert.equal(outB.ok, true, outB.notice);
    const steers = await app.store.db.selectFrom("steers").selectAll().where("correction_message_id", "in", ["c1-a", "c1-b"]).orderBy("ordinal").execute();
    assert.deepEqual(steers.map((s) => [s.correction_message_id, s.ordinal]), [["c1-a", 0], ["c1-b", 1]], "two steers, one ordinal each, in order");
    for (const s of steers) {
      assert.equal(s.prefix + s.rejected, shown, "each is aligned against the stopped text both people saw");
      assert.equal(app.engine.detokenize(s.prefix_tokens!), s.prefix, "prefix tokens are exactly the prefix");
      assert.equal(app.engine.detokenize(s.chosen_tokens!), s.chosen);
    }
    // Bob's correction replaced Alice's continuation: the reply is Bob's stream, and nothing else writes to it.
    const later = steers[1]!;
    const gen = await app.store.db.selectFrom("generations").selectAll().where("id", "=", later.generation_id).executeTakeFirstOrThrow();
    assert.ok(surfaces["c1-b"].visible.startsWith(later.prefix + later.chosen), "the reply resumed from the later correction");
    assert.equal(gen.final_text, surfaces["c1-b"].visible, "the stored reply is what the later stream showed");
    assert.equal(gen.status, "done");
  });

  it("after two corrections at once the reply can still be stopped, and only the later stream wrote it", { timeout: 60_000 }, async () => {
    const { thread, surface, shown } = await stoppedReply("c2");
    const last = lastWithoutDelimiter(shown, 5);
    const surfaces = { a: new RecordingSurface(2000, 40, 20, "c2a"), b: new RecordingSurface(2000, 40, 20, "c2b") };
    const correcting = {
      a: app.core.correct({ thread, actor: alice, replyToMessageId: surface.order[0], correction: { text: `s/${last}/ and then it rained/` }, messageId: "c2-a", surface: surfaces.a }),
      b: app.core.correct({ thread, actor: bob, replyToMessageId: surface.order[0], correction: { text: `s/${last}/ and then it snowed/` }, messageId: "c2-b", surface: surfaces.b }),
    };
    // The first correction applied ends when the second one cuts its stream; the second stream goes on.
    const first = await Promise.race([correcting.a.then(() => "a" as const), correcting.b.then(() => "b" as const)]);
    const later = first === "a" ? surfaces.b : surfaces.a;
    await whenShown(later, (v) => v.length > 0);
    assert.equal((await app.core.stop({ platform: "test", messageId: await known(app, later.order[0]!), actor: alice })).ok, true);
    const atStop = later.visible;
    assert.equal((await correcting.a).ok, true);
    assert.equal((await correcting.b).ok, true);
    await app.core.idle();
    const gen = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", "c2").executeTakeFirstOrThrow();
    assert.equal(gen.status, "stopped", "the stop stopped the reply");
    assert.equal(gen.final_text, atStop, "at what the later stream had shown");
    assert.equal(later.visible, atStop, "nothing was written after the stop");
    assert.equal(app.core.openReplyIn(thread)?.state, "stopped");
  });

  it("aligns a correction of an older message against what that message shows, and refuses one whose text is gone", { timeout: 60_000 }, async () => {
    const { thread, surface, shown } = await stoppedReply("c3", 60);
    const m1 = surface.order[0]!;
    // Alice corrects near the end; the reply is re-posted from there (new messages on `resumed`).
    const resumed = new RecordingSurface(2000, 0, 0, "c3r");
    const a = await app.core.correct({ thread, actor: alice, replyToMessageId: m1, correction: { text: `s/${lastWithoutDelimiter(shown, 5)}/ and the dragon slept/` }, messageId: "c3-a", surface: resumed });
    assert.equal(a.ok, true, a.notice);
    const steerA = (await app.store.steers.findByCorrection("test", "c3-a"))!;
    assert.notEqual(resumed.visible, shown);

    // Bob answers the old message m1: its text is `shown`, not the re-posted reply.
    const [at, early] = earlyUniqueWindow(shown, 6, steerA.divergence_char! - 6);
    const b = await app.core.correct({ thread, actor: bob, replyToMessageId: m1, correction: { text: `s/${early}/ once upon a time/` }, messageId: "c3-b", surface: new RecordingSurface(2000, 0, 0, "c3b") });
    assert.equal(b.ok, true, b.notice);
    const steerB = (await app.store.steers.findByCorrection("test", "c3-b"))!;
    assert.equal(steerB.prefix + steerB.rejected, shown, "aligned against the message Bob answered");
    assert.ok(steerB.prefix.length <= at && steerB.chosen.endsWith(" once upon a time"));
    assert.equal(steerB.shown_chars, shown.length);
    assert.equal(app.engine.detokenize(steerB.prefix_tokens!), steerB.prefix);
    assert.equal(steerB.ordinal, 1);

    // Alice's part of m1 (near its end) has since been replaced by Bob's correction: refused, nothing stored.
    const late = await app.core.correct({ thread, actor: alice, replyToMessageId: m1, correction: { text: `s/${lastWithoutDelimiter(shown, 5)}/ the end/` }, messageId: "c3-c", surface: new RecordingSurface(2000, 0, 0, "c3c") });
    assert.equal(late.ok, false);
    assert.match(late.notice ?? "", /no longer fits/);
    assert.equal(await app.store.steers.findByCorrection("test", "c3-c"), undefined);
  });

  it("an accepted reply is done: it leaves memory and takes no more corrections, not even after a hot-swap", { timeout: 60_000 }, async () => {
    const surface = new RecordingSurface(2000, 0, 0, "c4m");
    const thread = newThread();
    await app.core.ask({ thread, actor: alice, text: "Hi", sourceMessageId: "c4", surface });
    const other = new RecordingSurface(2000, 0, 0, "c4o");
    const otherThread = newThread();
    await app.core.ask({ thread: otherThread, actor: alice, text: "Hello", sourceMessageId: "c4-o", surface: other });
    const inMemory = app.core.replyCount;
    assert.equal((await app.core.accept({ platform: "test", messageId: surface.order[0]!, actor: alice })).ok, true);

    // A hot-swap: the engine the accepted reply was written with is disposed.
    const next = await (app.core.currentEngine as Engine).withAdapter();
    const previous = await app.core.useEngine(next, null);
    await (previous as Engine).dispose();

    const late = await app.core.correct({ thread, actor: alice, replyToMessageId: surface.order[0], correction: { text: "Good morning to you." }, messageId: "c4-c", surface: new RecordingSurface(2000, 0, 0, "c4c") });
    assert.equal(late.ok, false);
    assert.match(late.notice ?? "", /accepted/);
    assert.equal(await app.store.steers.findByCorrection("test", "c4-c"), undefined);
    const gen = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", "c4").executeTakeFirstOrThrow();
    assert.equal(gen.status, "done");
    assert.equal(gen.final_text, surface.visible);
    assert.equal(app.core.replyState("test", surface.order[0]!), "accepted");
    assert.equal(app.core.openReplyIn(thread), undefined);
    assert.equal(app.core.isBotMessage("test", surface.order[0]!), true, "still the bot's message, for a clear answer");
    assert.equal(app.core.replyCount, inMemory - 1, "the accepted reply is no longer held");

    // A finished reply that was not accepted still takes a correction, on the new engine.
    const ok = await app.core.correct({ thread: otherThread, actor: alice, replyToMessageId: other.order[0], correction: { text: "Good morning to you." }, messageId: "c4-d", surface: new RecordingSurface(2000, 0, 0, "c4d") });
    assert.equal(ok.ok, true, ok.notice);
  });
});
