import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseSteerJsonl, type SteerRecord } from "../../src/core/steer-record.ts";
import { migrateToLatest } from "../../src/store/open-database.ts";
import { SteerRepository } from "../../src/store/steer-repository.ts";
import { Store } from "../../src/store/store.ts";
import { freshDatabase, type TestDatabase } from "../helpers/databases.ts";

const sample: SteerRecord[] = [
  { context: [{ role: "user", content: "What colour is the sky?" }], prefix: "The sky is ", rejected: "green.", chosen: "blue.", id: "a1" },
  { context: [{ role: "system", content: "Be brief." }, { role: "user", content: "日本の首都は？" }], prefix: "首都は", rejected: "大阪です。", chosen: "東京です。🗼" },
];

for (const kind of ["postgres", "pglite"] as const) {
  describe(`store on ${kind}`, () => {
    let tdb: TestDatabase;
    let store: Store;
    before(async () => {
      tdb = await freshDatabase(kind);
      store = await Store.open(tdb.target);
    });
    after(async () => {
      await store?.close();
      await tdb?.drop();
    });

    it("migrates up from empty and is idempotent", async () => {
      const again = await migrateToLatest(store.db);
      assert.deepEqual(again.results, []);
      const tables = await store.db.introspection.getTables();
      const names = tables.map((t) => t.name).filter((n) => !n.startsWith("kysely_")).sort();
      assert.deepEqual(names, ["adapter_chunks", "adapter_files", "adapters", "generations", "instance_adapters", "instance_heartbeats", "messages", "steers", "telegram_processed_updates", "threads", "training_jobs", "training_runs", "users"]);
    });

    it("stores a bot steer with token arrays and reads them back", async () => {
      const threadId = await store.conversations.upsertThread({ platform: "discord", chatId: "c1", threadId: "t1" }, "u1");
      const gen = await store.conversations.createGeneration({
        threadId,
        contextMessages: [{ role: "user", content: "hi" }],
        contextText: "<user>hi",
        modelFingerprint: "sha256:abc",
        sourceMessageId: "m1",
      });
      assert.ok(gen);
      const steer = await store.steers.insert({
        generation_id: gen.id,
        ordinal: 0,
        context: JSON.stringify([{ role: "user", content: "hi" }]),
        prefix: "Hello ",
        rejected: "wrld",
        chosen: "world",
        prefix_tokens: [9707, 220],
        rejected_tokens: [86, 81, 507],
        chosen_tokens: [14615],
        divergence_char: 6,
        divergence_token: 2,
        shown_chars: 10,
        shown_tokens: 5,
        form: "overlap",
        model_fingerprint: "sha256:abc",
        platform: "discord",
        author: "u1",
        correction_message_id: "corr-1",
        trust_state: "pending",
        original_json: null,
      });
      assert.ok(steer);
      const [row] = await store.steers.list({ states: ["pending"] });
      assert.deepEqual(row!.prefix_tokens, [9707, 220]);
      assert.deepEqual(row!.rejected_tokens, [86, 81, 507]);
      assert.deepEqual(row!.chosen_tokens, [14615]);
      assert.deepEqual(row!.context, [{ role: "user", content: "hi" }]);
    });

    it("stores the same platform correction message once", async () => {
      const again = await store.steers.insert({
        generation_id: null,
        context: "[]",
        prefix: "x",
        rejected: "y",
        chosen: "z",
        prefix_tokens: null,
        rejected_tokens: null,
        chosen_tokens: null,
        divergence_char: null,
        divergence_token: null,
        shown_chars: null,
        shown_tokens: null,
        form: null,
        model_fingerprint: null,
        platform: "discord",
        author: "u1",
        correction_message_id: "corr-1",
        original_json: null,
      });
      assert.equal(again, undefined);
      const count = await store.db.selectFrom("steers").select((eb) => eb.fn.countAll<number>().as("n")).where("correction_message_id", "=", "corr-1").executeTakeFirstOrThrow();
      assert.equal(Number(count.n), 1);
    });

    it("starts one generation per platform source message", async () => {
      const threadId = await store.conversations.upsertThread({ platform: "discord", chatId: "c1", threadId: "t1" });
      const dup = await store.conversations.createGeneration({ threadId, contextMessages: [], contextText: "", modelFingerprint: "f", sourceMessageId: "m1" });
      assert.equal(dup, undefined);
    });

    it("lists the newest replies nobody steered as replay anchors, each with the question it answers", async () => {
      const threadId = await store.conversations.upsertThread({ platform: "telegram", chatId: "anchors", threadId: "anchors" });
      const reply = async (source: string, context: { role: "system" | "user" | "assistant"; content: string }[], status: "done" | "stopped", text: string, author = "asker") => {
        await store.conversations.addMessage(threadId, { role: "user", text: context.at(-1)!.content, author, platformMessageIds: [source] });
        const g = (await store.conversations.createGeneration({ threadId, contextMessages: context, contextText: "", modelFingerprint: "f", sourceMessageId: source }))!;
        await store.conversations.finishGeneration(g.id, status, text, {});
        return g.id;
      };
      const sys = { role: "system" as const, content: "Be brief." };
      const plain = await reply("a1", [sys, { role: "user", content: "Old question" }, { role: "assistant", content: "Old answer" }, { role: "user", content: "How does rain form?" }], "done", "Water vapour condenses.");
      const steered = await reply("a2", [{ role: "user", content: "Who are you?" }], "done", "I'm SmolLM.");
      await store.steers.insert({
        generation_id: steered, context: "[]", prefix: "I'm ", rejected: "SmolLM.", chosen: "Steerbot.", prefix_tokens: null, rejected_tokens: null, chosen_tokens: null,
        divergence_char: 4, divergence_token: null, shown_chars: 11, shown_tokens: null, form: "overlap", model_fingerprint: "f", platform: "telegram", author: "asker", correction_message_id: "anchors-c1", original_json: null,
      });
      await reply("a3", [{ role: "user", content: "Stopped question" }], "stopped", "Half a");
      await reply("a4", [{ role: "user", content: "[withheld: the author opted out]" }], "done", "An answer to a withheld question.");
      await reply("a5", [{ role: "user", content: "A question by someone who opted out later" }], "done", "Their answer.", "leaver");
      await store.users.setOptedOut("telegram", "leaver", true);
      const newest = await reply("a6", [{ role: "user", content: "What is a heart?" }], "done", "A muscle that pumps blood.");

      const anchors = await store.conversations.unsteeredReplies(10);
      const mine = anchors.filter((a) => a.generationId >= plain);
      assert.deepEqual(mine.map((a) => a.generationId), [newest, plain], "done, unsteered, usable; newest first");
      assert.deepEqual(mine[1]!.context, [sys, { role: "user", content: "How does rain form?" }], "the system prompt and the question it answers, not the older turns");
      assert.equal(mine[1]!.reply, "Water vapour condenses.");
      assert.deepEqual((await store.conversations.unsteeredReplies(1)).map((a) => a.generationId), [newest], "at most the limit");
      assert.deepEqual(await store.conversations.unsteeredReplies(0), []);
      const finals = await store.conversations.finalTexts([plain, steered, plain, 987654]);
      assert.deepEqual([...finals.entries()].sort(), [[plain, "Water vapour condenses."], [steered, "I'm SmolLM."]], "each stored reply text once; a missing generation gives none");
      const places = await store.steers.placesOn([steered, plain, steered]);
      assert.deepEqual(places.map((p) => [p.generation_id, p.prefix, p.chosen]), [[steered, "I'm ", "Steerbot."]], "every steer on those replies, once");
    });

    it("imports a file once and exports it back exactly", async () => {
      const text = sample.map((s) => JSON.stringify(s)).join("\n") + "\n";
      const parsed = parseSteerJsonl(text);
      assert.equal(parsed.errors.length, 0);
      const first = await store.steers.importRecords(parsed.steers.map((s) => s.steer));
      assert.deepEqual(first, { stored: 2, duplicates: 0, withheld: 0 });
      const second = await store.steers.importRecords(parsed.steers.map((s) => s.steer));
      assert.deepEqual(second, { stored: 0, duplicates: 2, withheld: 0 });
      const rows = await store.steers.list({ states: ["approved"] });
      assert.equal(rows.length, 2);
      assert.equal(rows.map((r) => SteerRepository.toJsonLine(r)).join("\n") + "\n", text);
    });

    it("marks interrupted the streaming generations of processes that are gone, not its own", async () => {
      await store.holdInstance();
      const thread = await store.conversations.upsertThread({ platform: "test", chatId: "c", threadId: "interrupted" });
      const gen = (sourceMessageId: string) =>
        store.conversations.createGeneration({ threadId: thread, contextMessages: [], contextText: "", modelFingerprint: "m", sourceMessageId });
      const own = await gen("own");
      const dead = await gen("dead");
      const legacy = await gen("legacy");
      // a process that crashed, and a row from before instances were recorded
      await store.db.updateTable("generations").set({ instance_id: "crashed-process" }).where("id", "=", dead!.id).execute();
      await store.db.updateTable("generations").set({ instance_id: null }).where("id", "=", legacy!.id).execute();
      const status = async (id: number) => (await store.conversations.getGeneration(id))!.status;
      const n = await store.conversations.markInterrupted();
      assert.equal(n, 2, "the crashed process's and the unrecorded one, not this process's own");
      assert.equal(await status(own!.id), "streaming");
      assert.equal(await status(dead!.id), "interrupted");
      assert.equal(await status(legacy!.id), "interrupted");
    });

    it("claims a Telegram update once, takes over one whose claimer died unhandled, and prunes old rows", async () => {
      const updates = store.telegramUpdates;
      assert.equal(await updates.claim(42, 1), true, "the first claim");
      assert.equal(await updates.claim(42, 1), false, "a repeat (a webhook retry)");
      assert.equal(await updates.claim(43, 1), true, "the same update id of another bot");
      await updates.markHandled(42, 1);
      assert.ok((await updates.get(42, 1))!.handled_at);
      // claimed by a process that crashed before handling it: Telegram redelivers it, and it is taken over once
      await store.db.insertInto("telegram_processed_updates").values({ bot_id: 42, update_id: 2, instance_id: "crashed-process" }).execute();
      assert.equal(await updates.claim(42, 2), true);
      assert.equal((await updates.get(42, 2))!.instance_id, store.instanceId);
      assert.equal(await updates.claim(42, 2), false);
      // a crashed claimer's update that was handled stays handled
      await store.db.insertInto("telegram_processed_updates").values({ bot_id: 42, update_id: 3, instance_id: "crashed-process", handled_at: new Date() }).execute();
      assert.equal(await updates.claim(42, 3), false);
      await store.db.updateTable("telegram_processed_updates").set({ claimed_at: new Date(Date.now() - 3 * 86_400_000) }).where("update_id", "=", 1).execute();
      assert.equal(await updates.prune(new Date(Date.now() - 2 * 86_400_000)), 2, "both bots' update 1");
      assert.equal(await updates.get(42, 1), undefined);
      assert.ok(await updates.get(42, 2));
    });

    it("finds the generation, and the instance streaming it, by a platform message id as the core records them", async () => {
      const thread = await store.conversations.upsertThread({ platform: "telegram", chatId: "-5", threadId: "-5" });
      const other = await store.conversations.upsertThread({ platform: "discord", chatId: "-5", threadId: "-5" });
      const gen = (threadId: number, sourceMessageId: string) =>
        store.conversations.createGeneration({ threadId, contextMessages: [], contextText: "", modelFingerprint: "m", sourceMessageId });
      const g1 = (await gen(thread, "-5:1"))!;
      const g2 = (await gen(thread, "-5:3"))!;
      const d = (await gen(other, "x"))!;
      await store.conversations.addPlatformMessage(g1.id, "-5:2");
      await store.conversations.addPlatformMessage(g1.id, "-5:2"); // recorded once
      await store.conversations.addPlatformMessage(g1.id, "-5:d77");
      await store.conversations.addPlatformMessage(d.id, "-5:4");
      assert.deepEqual((await store.conversations.getGeneration(g1.id))!.platform_message_ids, ["-5:2", "-5:d77"]);
      assert.deepEqual(await store.conversations.ownerOfMessage("telegram", "-5:d77"), { generationId: g1.id, instanceId: store.instanceId, status: "streaming" });
      assert.equal(await store.conversations.ownerOfMessage("telegram", "-5:4"), undefined, "another platform's message");
      assert.equal((await store.conversations.newestInChat("telegram", "-5"))!.generationId, g2.id);
      assert.equal(await store.conversations.newestInChat("telegram", "-6"), undefined);
    });

    if (kind === "postgres") {
      it("leaves another running instance's streaming generations alone until that instance is gone", async () => {
        const other = await Store.open(tdb.target);
        let otherOpen = true;
        try {
          await other.holdInstance();
          const thread = await other.conversations.upsertThread({ platform: "test", chatId: "c", threadId: "other-instance" });
          const g = await other.conversations.createGeneration({ threadId: thread, contextMessages: [], contextText: "", modelFingerprint: "m", sourceMessageId: "o1" });
          // a third instance starting now must not touch it
          const third = await Store.open(tdb.target);
          try {
            await third.holdInstance();
            await third.conversations.markInterrupted();
            assert.equal((await third.conversations.getGeneration(g!.id))!.status, "streaming");
            // the other instance dies (its session, and with it its instance lock, ends)
            await other.close();
            otherOpen = false;
            assert.ok((await third.conversations.markInterrupted()) >= 1);
            assert.equal((await third.conversations.getGeneration(g!.id))!.status, "interrupted");
          } finally {
            await third.close();
          }
        } finally {
          if (otherOpen) await other.close();
        }
      });
    }
  });
}

describe("steer JSONL parser", () => {
  it("reports bad lines by number with the reason and keeps the good ones", () => {
    const text = [
      JSON.stringify(sample[0]),
      "{not json",
      JSON.stringify({ context: [{ role: "robot", content: "x" }], prefix: "", rejected: "", chosen: "y" }),
      "",
      JSON.stringify({ context: [{ role: "user", content: "x" }], prefix: "", rejected: "a" }),
      JSON.stringify({ context: [{ role: "user", content: "x" }], prefix: "", rejected: "a", chosen: "" }),
    ].join("\n");
    const out = parseSteerJsonl(text);
    assert.equal(out.steers.length, 1);
    assert.deepEqual(
      out.errors.map((e) => e.line),
      [2, 3, 5, 6],
    );
    assert.match(out.errors[0]!.reason, /not valid JSON/);
    assert.match(out.errors[1]!.reason, /^context\.0\.role:/);
    assert.match(out.errors[2]!.reason, /^chosen:/);
    assert.match(out.errors[3]!.reason, /chosen must not be empty/);
  });
  it("reads line 1 after a UTF-8 byte-order mark", () => {
    const out = parseSteerJsonl(`\uFEFF${JSON.stringify(sample[0])}\r\n${JSON.stringify(sample[0])}\r\n`);
    assert.deepEqual(out.errors, []);
    assert.equal(out.steers.length, 2);
    assert.equal(out.steers[0]!.line, 1);
  });
  it("keeps extra fields", () => {
    const out = parseSteerJsonl(JSON.stringify({ ...sample[0], author: "me", extra: { a: 1 } }));
    assert.equal(out.steers[0]!.steer.author, "me");
    assert.deepEqual(out.steers[0]!.steer.extra, { a: 1 });
  });
});
