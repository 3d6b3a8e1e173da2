/**
 * Privacy that holds (issue 13): opt-out and /forget against the whole database, on PostgreSQL
 * and PGlite, through the real core, engine (the tiny model) and store. Each check searches
 * every column of every table (test/helpers/database-dump.ts) for a person's words and ids.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Actor, ReplySurface, ThreadRef } from "../../src/core/ports.ts";
import { parseSteerJsonl } from "../../src/core/steer-record.ts";
import { NON_PERSONAL_COLUMNS, PERSONAL_COLUMNS } from "../../src/store/personal-data.ts";
import { SteerRepository } from "../../src/store/steer-repository.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { findInDatabase, schemaColumns } from "../helpers/database-dump.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const ALICE_ID = "u-7f3a-alice";
const alice: Actor = { platform: "test", userId: ALICE_ID, displayName: "Alice Quokkason" };
const bob: Actor = { platform: "test", userId: "bob" };
let threadNo = 0;
const newThread = (): ThreadRef => ({ platform: "test", chatId: "c", threadId: `pt${++threadNo}` });
let surfaceNo = 0;
/** A surface whose message ids no other surface uses (the core maps message ids to replies). */
const surface = () => new RecordingSurface(2000, 0, 0, `s${++surfaceNo}-`);

for (const db of ["postgres", "pglite"] as const) {
  describe(`personal data on ${db}`, () => {
    let app: TestApp;
    before(async () => {
      app = await createTestApp({
        db,
        config: { generation: { max_tokens: 24 }, permissions: { stop: { users: ["bob"] }, steer: { users: ["bob"] }, admins: { users: [ALICE_ID] } } },
      });
    });
    after(async () => app?.close());

    async function ask(actor: Actor, thread: ThreadRef, text: string, id: string): Promise<void> {
      const out = await app.core.ask({ thread, actor, text, sourceMessageId: id, surface: surface() });
      assert.equal(out.ok, true, out.notice);
    }
    async function steer(actor: Actor, thread: ThreadRef, text: string, id: string): Promise<void> {
      const out = await app.core.correct({ thread, actor, correction: { text }, messageId: id, surface: surface() });
      assert.equal(out.ok, true, out.notice);
    }

    it("classifies every column of the schema as personal or not (a new column must say which it is)", async () => {
      const known = new Set([
        ...Object.entries(PERSONAL_COLUMNS).flatMap(([t, cols]) => Object.keys(cols).map((c) => `${t}.${c}`)),
        ...Object.entries(NON_PERSONAL_COLUMNS).flatMap(([t, cols]) => cols.map((c) => `${t}.${c}`)),
      ]);
      const textual = (await schemaColumns(app.store))
        .filter((c) => !c.table.startsWith("kysely_") && /text|char|json|ARRAY/i.test(c.type))
        .map((c) => `${c.table}.${c.column}`);
      assert.deepEqual(textual.filter((c) => !known.has(c)), [], "unclassified columns: add them to PERSONAL_COLUMNS (and forget) or NON_PERSONAL_COLUMNS");
      for (const c of known) assert.ok(textual.includes(c), `${c} is classified but is not a text/JSON/array column of the schema`);
    });

    it("stores an opted-out person's question nowhere, also when someone else steers their reply", async () => {
      const carol: Actor = { platform: "test", userId: "carol-opt" };
      await app.core.admin.optOut(carol);
      const thread = newThread();
      await ask(carol, thread, "Where do the xanthic pangolins of Ruritania nest?", "oq1");
      await steer(bob, thread, "Bob adds a line here.", "oc1");
      const bobs = await app.store.steers.findByCorrection("test", "oc1");
      assert.ok(bobs, "bob's steer is stored");
      assert.deepEqual(await findInDatabase(app.store, ["xanthic", "pangolins", "Ruritania"]), []);
      // and that steer is no training example: its question is withheld
      assert.equal((await app.store.steers.listForTraining()).some((s) => s.id === bobs.id), false);
    });

    it("stores an opted-out person's correction nowhere: not in the reply's final text, its history message, nor a later steer on it", async () => {
      const fay: Actor = { platform: "test", userId: "fay-opt" };
      await app.core.admin.optOut(fay);
      const thread = newThread();
      await ask(fay, thread, "Tell me a fable", "fq1");
      const applied = await app.core.correct({ thread, actor: fay, correction: { text: "Vermilion tapirs wander slowly." }, messageId: "fc1", surface: surface() });
      assert.match(applied.notice ?? "", /applied but not stored/);
      await steer(bob, thread, "Bob ends it here.", "fc2");
      const bobs = await app.store.steers.findByCorrection("test", "fc2");
      assert.ok(bobs, "bob's steer is stored");
      assert.deepEqual(await findInDatabase(app.store, ["Vermilion", "tapirs"]), []);
      assert.match(bobs.prefix, /\[withheld: the author opted out\]/);
      assert.equal(bobs.prefix_tokens, null, "the token ids spelling her words are not kept either");
      assert.equal((await app.store.steers.listForTraining()).some((s) => s.id === bobs.id), false);
    });

    it("leaves opted-out people's steers, imported under their name too, out of training and held-out evaluation", async () => {
      const dave: Actor = { platform: "test", userId: "dave-later-out" };
      const thread = newThread();
      await ask(dave, thread, "Say hello", "dq1");
      await steer(dave, thread, "Hello from Dave.", "dc1");
      const own = await app.store.steers.findByCorrection("test", "dc1");
      assert.ok(own);
      const line = SteerRepository.toJsonLine(own);
      assert.match(line, /"author":"test:dave-later-out"/);
      // his export imported elsewhere: author `platform:id`, no platform column
      await app.store.steers.importRecords([{ ...JSON.parse(line), id: "elsewhere-1" }]);
      const before = await app.store.steers.listForTraining();
      assert.equal(before.filter((s) => s.author === "dave-later-out" || s.author === "test:dave-later-out").length, 2);
      await app.core.admin.optOut(dave);
      const after = await app.store.steers.listForTraining();
      assert.deepEqual(after.filter((s) => s.author === "dave-later-out" || s.author === "test:dave-later-out"), []);
    });

    it("forgets a person everywhere: no word or id of theirs is left in any column, and the rest stays", async () => {
      const t1 = newThread();
      const t2 = newThread();
      // Alice asks; bob steers her reply (his context holds her question); she corrects it; bob steers again after her.
      await ask(alice, t1, "Tell me about the zanzibari quokkas please", "aq1");
      await steer(bob, t1, "Bob interjects right here.", "bc1");
      await steer(alice, t1, "Marmalade xylophonists rule the archipelago.", "ac1");
      await steer(bob, t1, "Bob has the last word.", "bc2");
      // Bob asks in the same thread: the model's context holds her message and the reply with her correction.
      await ask(bob, t1, "What about penguins then?", "bq1");
      await steer(bob, t1, "Penguins waddle onward.", "bc3");
      // Bob elsewhere: nothing of hers.
      await ask(bob, t2, "Independent question about owls", "bq2");
      await steer(bob, t2, "Owls hoot at night.", "bc4");
      // An export re-imported: copies without platform, hers under `test:<id>`.
      const exported = (await app.store.steers.list()).map((r) => SteerRepository.toJsonLine(r)).join("\n");
      await app.store.steers.importRecords(parseSteerJsonl(exported).steers.map((s) => s.steer));
      // She asks for a training run (skipped: too few steers), which records who asked.
      const run = await app.core.admin.retrain(alice, async () => {});
      assert.match(run.notice!, /^Skipped/);

      const words = ["zanzibari", "quokka", "Marmalade", "xylophonist", "archipelago", ALICE_ID, "Quokkason"];
      assert.ok((await findInDatabase(app.store, words)).length > 0, "the scenario stored her words");
      const bobsOwn = (await app.store.steers.findByCorrection("test", "bc4"))!;
      assert.ok(bobsOwn);

      const out = await app.core.admin.forget(alice, true);
      assert.equal(out.ok, true);
      assert.deepEqual(await findInDatabase(app.store, words), []);
      assert.match(out.notice!, /^Deleted 2 steer\(s\) and 1 message\(s\) of yours/, "her steer and its imported copy, her question");

      // what holds nothing of hers stays: bob's steer in the other thread, his messages, his generation in her thread
      assert.ok(await app.store.steers.findByCorrection("test", "bc4"), "bob's unrelated steer is kept");
      assert.ok((await app.store.steers.list()).some((s) => s.source === "import" && s.chosen === bobsOwn.chosen), "its imported copy too");
      const bobMessages = await app.store.db.selectFrom("messages").select("text").where("author", "=", "bob").execute();
      assert.deepEqual(bobMessages.map((m) => m.text).sort(), ["Independent question about owls", "What about penguins then?"]);
      const penguins = await app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", "bq1").executeTakeFirstOrThrow();
      assert.ok(penguins.context_messages.some((m) => m.content.includes("[forgotten]")), "bob's generation keeps its context with her words replaced");
      assert.equal(penguins.context_messages.at(-1)!.content, "What about penguins then?");

      // nothing of hers is trained on or evaluated on, and nothing is left half-written
      const training = await app.store.steers.listForTraining();
      assert.ok(training.every((s) => ![s.prefix, s.chosen, s.rejected, JSON.stringify(s.context)].some((t) => /quokka|marmalade/i.test(t))));

      // the live replies of her thread are gone from the core: they can no longer be steered
      assert.equal(app.core.openReplyIn(t1), undefined);
      const late = await app.core.correct({ thread: t1, actor: bob, correction: { text: "Too late now." }, messageId: "bc5", surface: surface() });
      assert.match(late.notice ?? "", /can no longer be steered/);
      assert.ok(app.core.openReplyIn(t2), "other threads' replies stay");
    });

    it("forgets a person while their reply is still being written: it stops, and nothing of it is saved afterwards", async () => {
      const gus: Actor = { platform: "test", userId: "u-gus-3e8b" };
      const thread = newThread();
      // A platform that holds the reply's first message until we let it go: the reply stays "generating".
      const inner = surface();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let sent!: () => void;
      const firstSend = new Promise<void>((r) => (sent = r));
      const held: ReplySurface = {
        maxMessageLength: 2000,
        minEditIntervalMs: 0,
        send: async (text) => (sent(), await gate, inner.send(text)),
        edit: async (id, text) => (await gate, inner.edit(id, text)),
      };
      const asking = app.core.ask({ thread, actor: gus, text: "Recite the saffron lighthouse saga", sourceMessageId: "gq1", surface: held });
      await firstSend;
      assert.equal(app.core.openReplyIn(thread)?.state, "generating");
      const out = await app.core.admin.forget(gus, true);
      assert.equal(out.ok, true);
      release();
      assert.equal((await asking).ok, true);
      assert.equal(app.core.openReplyIn(thread), undefined);
      assert.deepEqual(await findInDatabase(app.store, ["saffron", "lighthouse", "u-gus-3e8b"]), []);
      assert.equal(await app.store.db.selectFrom("generations").select("id").where("source_message_id", "=", "gq1").executeTakeFirst(), undefined);
      const saved = await app.store.db.selectFrom("messages").innerJoin("threads", "threads.id", "messages.thread_id").select("messages.id").where("threads.platform_thread_id", "=", thread.threadId).execute();
      assert.deepEqual(saved, [], "the stopped reply was not saved into the history after the forget");
    });

    it("keeps a forgotten person forgotten: an old export of theirs is refused, and what they send later is not stored", async () => {
      const erin: Actor = { platform: "test", userId: "u-erin-5c1d", displayName: "Erin Vexillologist" };
      const thread = newThread();
      await ask(erin, thread, "Describe the obsidian heron", "eq1");
      await steer(erin, thread, "The obsidian heron glides.", "ec1");
      const oldExport = (await app.store.steers.list({ author: "test:u-erin-5c1d" })).map((r) => SteerRepository.toRecord(r));
      assert.equal(oldExport.length, 1);
      await app.core.admin.forget(erin, true);

      assert.deepEqual(await app.store.steers.importRecords(oldExport), { stored: 0, duplicates: 0, withheld: 1 });
      await ask(erin, newThread(), "Now the obsidian heron again", "eq2");
      assert.deepEqual(await findInDatabase(app.store, ["obsidian", "heron", "u-erin-5c1d", "Vexillologist"]), []);
      assert.equal((await app.store.users.get("test", "u-erin-5c1d"))?.opted_out, true);
    });
  });
}
