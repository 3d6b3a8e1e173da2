/**
 * Telegram updates claimed in the database, on the default single process (PGlite): a
 * redelivered update is dropped even after the bot restarted (its in-memory filter empty), and
 * an update whose claimer crashed before handling it is handled when Telegram redelivers it.
 * Real grammY in webhook mode against the fake Bot API, the real core on the tiny model.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { storeInstances } from "../../../src/platforms/telegram/telegram-instances.ts";
import { createTestApp, type TestApp } from "../../helpers/app.ts";
import { alice, startHarness, type Harness } from "./harness.ts";

describe("telegram: updates claimed in the database (PGlite, one process)", () => {
  let app: TestApp;
  const open: Harness<TestApp["core"]>[] = [];

  before(async () => {
    app = await createTestApp({ db: "pglite", config: { generation: { max_tokens: 16 } } });
  });
  after(async () => {
    for (const h of open) await h.close();
    await app?.close();
  });

  const start = async () => {
    const h = await startHarness(app.core, {
      config: { mode: "webhook", webhook: { port: 0, host: "127.0.0.1", path: "/tg", secretToken: "s3cret" } },
      instances: storeInstances(app.store),
    });
    open.push(h);
    return h;
  };
  const post = (h: Harness<TestApp["core"]>, update: unknown) =>
    fetch(`http://127.0.0.1:${h.bot.webhookPort}/tg`, { method: "POST", headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": "s3cret" }, body: JSON.stringify(update) });
  const outcome = async (h: Harness<TestApp["core"]>, update: { update_id: number }) => {
    const next = h.bot.handled.next((e) => e.id === String(update.update_id));
    assert.equal((await post(h, update)).status, 200);
    return (await next).outcome;
  };

  test("a redelivery is dropped also after a restart; a crashed claimer's update is taken over", async () => {
    const first = await start();
    const chat = first.fake.privateChat(alice);
    const update = { update_id: 700, message: { message_id: 1, from: alice, chat, date: 1, text: "just once" } };
    assert.equal(await outcome(first, update), "done");
    await first.bot.idle();
    assert.equal(await outcome(first, update), "duplicate");
    assert.ok((await app.store.telegramUpdates.get(first.fake.bot.id, 700))?.handled_at);
    await first.close();
    open.length = 0;

    // A restart: the bot's memory of updates is gone, the database's is not.
    const second = await start();
    second.fake.privateChat(alice);
    assert.equal(await outcome(second, update), "duplicate");
    await second.bot.idle();
    assert.equal(second.fake.botMessages(chat.id).length, 0, "nothing answered twice");
    const gens = await app.store.db.selectFrom("generations").select("id").where("source_message_id", "=", `${chat.id}:1`).execute();
    assert.equal(gens.length, 1);

    // Claimed by a process that crashed before handling it: the redelivery is handled.
    await app.store.db.insertInto("telegram_processed_updates").values({ bot_id: second.fake.bot.id, update_id: 701, instance_id: "crashed-process" }).execute();
    const lost = { update_id: 701, message: { message_id: 2, from: alice, chat, date: 2, text: "are you there?" } };
    assert.equal(await outcome(second, lost), "done");
    await second.bot.idle();
    assert.equal(second.fake.botMessages(chat.id).length, 1, "answered");
    assert.equal((await app.store.telegramUpdates.get(second.fake.bot.id, 701))!.instance_id, app.store.instanceId);
  });
});
