/**
 * /retrain through Telegram end to end, with no mocks and no restart: real grammY against the
 * fake Bot API, the real core and training pipeline (native trainer, evaluation gate, hot-swap)
 * on the tiny generated model, and a real Postgres database. An admin's /retrain shows progress
 * by editing one message, then the result notice and the loss curve as a photo; the next reply
 * in the chat comes from the new adapter. A non-admin's /retrain is refused and starts no run.
 * A scripted core covers attachments that cannot be sent (missing file, Telegram refusing one):
 * logged, the others still sent, the bot keeps working.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { createTestApp, type TestApp } from "../../helpers/app.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { colourSteers } from "../../training/colour-task.ts";
import type { FakeChat, FakeMessage } from "../../fakes/telegram/fake-bot-api.ts";
import { admin, bob, norm, startHarness, type Harness } from "./harness.ts";

const PNG_SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

describe("telegram /retrain on postgres", () => {
  let app: TestApp;
  let h: Harness<TestApp["core"]>;

  before(async () => {
    app = await createTestApp({
      db: "postgres",
      config: {
        permissions: { admins: { users: [String(admin.id)] } },
        generation: { max_tokens: 16 },
        // The training pipeline test's tiny-model settings: trains in well under a minute.
        training: { base_model: "", min_new_steers: 10, objective: "sft", epochs: 4, learning_rate: 0.01, rank: 8, alpha: 16, held_out_fraction: 0.25, min_improvement: 0.05 },
      },
    });
    // The colour task: every steer corrects "…the colour is <wrong>" to " blue".
    await app.store.steers.importRecords([...colourSteers(60, false), ...colourSteers(20, true)]);
    h = await startHarness(app.core, { fake: { latencyMs: 20 } });
  });
  after(async () => {
    // A run still going (a failed assertion) is cancelled first, so its notice reaches the fake
    // before it closes (otherwise grammY's retries against the closed fake keep the process alive).
    app?.training.cancel();
    await h?.close();
    await app?.close();
  });

  /** Asks in a private chat and waits for the reply to finish; returns its message and stored generation. */
  async function ask(chat: FakeChat, text: string): Promise<{ m: FakeMessage; finalText: string; adapterId: unknown }> {
    const q = h.fake.userSends(chat, admin, text);
    const key = `${chat.id}:${q.message_id}`;
    let row: { status: string; final_text: string | null; adapter_id: unknown } | undefined;
    for (const t0 = Date.now(); Date.now() - t0 < 30_000; await new Promise((r) => setTimeout(r, 50))) {
      row = await app.store.db.selectFrom("generations").select(["status", "final_text", "adapter_id"]).where("source_message_id", "=", key).executeTakeFirst();
      if (row && row.status !== "streaming") break;
    }
    assert.equal(row?.status, "done", `reply to ${JSON.stringify(text)} finished`);
    await h.bot.idle();
    const replies = h.fake.botMessages(chat.id).filter((m) => m.reply_to_message_id === q.message_id);
    assert.equal(replies.length, 1, "one reply message");
    const m = h.fake.message(chat.id, replies[0]!.message_id)!;
    assert.equal(m.text, norm(row!.final_text!), "the message shows the whole stored reply");
    return { m, finalText: row!.final_text!, adapterId: row!.adapter_id };
  }

  test("a non-admin's /retrain is refused politely and starts no run", async () => {
    const chat = h.fake.privateChat(bob);
    const cmd = h.fake.userSends(chat, bob, "/retrain");
    const refusal = await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0], 10_000, "refusal");
    await h.bot.idle();
    assert.equal(refusal.text, "Sorry, only admins can do that.");
    assert.equal(refusal.reply_to_message_id, cmd.message_id);
    assert.equal(h.fake.botMessages(chat.id).length, 1, "no progress message, no photo");
    assert.deepEqual(await app.store.db.selectFrom("training_runs").selectAll().execute(), []);
    assert.equal(h.fake.photos.length, 0);
  });

  test("admin /retrain: progress edited, adapter live, loss curve as a photo, the next reply changes", async () => {
    const chat = h.fake.privateChat(admin);
    const question = "Tell me about the castle and the helmet.";
    const before = await ask(chat, question);
    assert.equal(before.adapterId, null, "before the run the base model answers");

    const started = Date.now();
    const cmd = h.fake.userSends(chat, admin, "/retrain");
    const isNotice = (m: FakeMessage) => m.reply_to_message_id === Number(cmd.message_id) && !m.photo;
    const notice = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find(isNotice), Number(process.env.RT_TIMEOUT ?? 150_000), "the /retrain result notice");
    const photo = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((m) => m.photo), 10_000, "the loss-curve photo");
    await h.bot.idle();
    const trainedMs = Date.now() - started;

    // Progress: one message, sent after the command and edited as the run went on.
    const after = h.fake.botMessages(chat.id).filter((m) => m.message_id > Number(cmd.message_id));
    const progress = after[0]!;
    assert.ok(progress !== notice && !progress.photo, "the first message after /retrain is the progress message");
    // On PostgreSQL /retrain goes through the job queue (pg-boss): queued first, then the run's lines.
    assert.match(progress.versions[0]!, /^Training job \S+ queued/);
    // the paced edits show some of the run's lines, not each one (which depends on the timing)
    assert.ok(progress.versions.some((v) => /^Training run #\d+: /.test(v)), JSON.stringify(progress.versions));
    assert.ok(progress.versions.length >= 2, `progress edited: ${JSON.stringify(progress.versions)}`);
    assert.ok(h.fake.callsOf("editMessageText").some((c) => c.payload.message_id === progress.message_id && !c.error));

    // The notice says the adapter is live, then the photo: a real PNG upload.
    assert.match(notice.text, /Training run #\d+ done: adapter \S+ is now live/);
    assert.ok(photo.message_id > notice.message_id, "the photo comes after the notice");
    assert.equal(h.fake.photos.length, 1);
    const png = h.fake.photos[0]!;
    assert.equal(png.chatId, chat.id);
    assert.ok(png.bytes.subarray(0, 8).equals(PNG_SIGNATURE), "a PNG");
    assert.ok(png.width > 0 && png.height > 0 && png.filename.endsWith("-loss.png"), JSON.stringify({ ...png, bytes: png.bytes.length }));
    assert.equal(h.fake.callsOf("sendPhoto").filter((c) => c.error).length, 0);
    assert.equal(h.bot.metrics.apiFailures, 0);

    // Stored state: one succeeded run, its adapter active and live.
    const runs = await app.store.db.selectFrom("training_runs").selectAll().execute();
    assert.deepEqual(runs.map((r) => r.state), ["succeeded"]);
    const adapters = await app.store.db.selectFrom("adapters").selectAll().execute();
    assert.equal(adapters.length, 1);
    assert.equal(adapters[0]!.state, "active");
    assert.equal(app.activator.liveVersion, adapters[0]!.version);
    assert.ok(notice.text.includes(adapters[0]!.version));

    // The same question, asked again in the chat: streamed through Telegram by the new adapter.
    const again = await ask(chat, question);
    assert.equal(again.adapterId, adapters[0]!.id, "the generation row names the adapter");
    assert.notEqual(again.m.text, before.m.text, "the reply changed after the retrain");
    console.log(`# /retrain in Telegram: ${trainedMs} ms from the command to the photo; reply before (${before.m.versions.length} versions) ${JSON.stringify(before.m.text)}, after (${again.m.versions.length} versions) ${JSON.stringify(again.m.text)}`);
  });
});

describe("telegram /retrain attachments that fail", () => {
  let h: Harness<ScriptedCore>;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "steerbot-tg-retrain-"));
    h = await startHarness(new ScriptedCore());
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a missing file and a refused upload are logged; the other photos arrive, in the command's topic", async () => {
    // A 1×1 PNG header is all the fake checks (Telegram would decode it).
    const png = (name: string) => {
      const file = join(dir, name);
      const ihdr = Buffer.alloc(25);
      ihdr.writeUInt32BE(13, 0);
      ihdr.write("IHDR", 4, "latin1");
      ihdr.writeUInt32BE(1, 8);
      ihdr.writeUInt32BE(1, 12);
      writeFileSync(file, Buffer.concat([PNG_SIGNATURE, ihdr]));
      return file;
    };
    const files = [join(dir, "gone.png"), png("refused.png"), png("ok-loss.png")];
    h.core.admin.retrain = async (_actor, progress) => {
      await progress("Training run #1: 3 steers…");
      await progress("Training run #1: evaluating…");
      return { ok: true, notice: "Training run #1 done: adapter v1 is now live ✅", attachments: files };
    };
    const forum = h.fake.addChat({ id: -100777, type: "supergroup", title: "f", is_forum: true });
    h.fake.failNext("sendPhoto", 400, "Bad Request: IMAGE_PROCESS_FAILED");
    const cmd = h.fake.userSends(forum, admin, "/retrain", { threadId: 55 });
    await h.fake.waitFor(() => h.fake.photos.length === 1 || undefined, 10_000, "the photo");
    await h.bot.idle();

    const [progressMsg, notice, photo] = h.fake.botMessages(forum.id, 55);
    assert.deepEqual(progressMsg!.versions, ["Training run #1: 3 steers…", "Training run #1: evaluating…"]);
    assert.match(notice!.text, /is now live/);
    assert.equal(notice!.reply_to_message_id, cmd.message_id);
    assert.equal(photo!.photo?.filename, "ok-loss.png");
    assert.equal(photo!.reply_to_message_id, cmd.message_id);
    assert.equal(h.fake.botMessages(forum.id).length, 3, "everything in the command's topic");
    assert.equal(h.fake.callsOf("sendPhoto").length, 2, "the missing file is not uploaded");
    const warned = h.logs.filter((l) => l.level === "warn" && /attachment not sent/.test(l.msg ?? "")).map((l) => (l.obj as { path: string }).path);
    assert.deepEqual(warned, [files[0], files[1]]);

    // The bot still answers.
    h.fake.userSends(forum, admin, "/status", { threadId: 55 });
    await h.fake.waitFor(() => h.fake.botMessages(forum.id, 55).find((m) => m.text.startsWith("replies: ")), 10_000, "/status");
  });
});
