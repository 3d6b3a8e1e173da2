/**
 * Several instances serving one Telegram bot, on loopback: two bot instances as separate
 * processes (test/helpers/telegram-instance-process.ts: the real app, the real grammY bot in
 * webhook mode, each with its own data directory) sharing one PostgreSQL database (the suite's
 * TEST_DATABASE_URL), both talking to one fake Bot API in this process. This test is the load
 * balancer: it posts each update to the instance it chooses.
 *
 * - a duplicate update (Telegram retrying a webhook delivery) delivered to both instances, at
 *   once and later, is handled and stored once;
 * - a stop delivered to the instance that does not stream the reply stops it at the text the
 *   streaming instance showed (a 👎 in a group, a draft's stop button in a private chat), and a
 *   correction delivered there is stored and resumes the reply where it streams;
 * - a stop for a reply whose instance has died is answered clearly.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import type { HandledEvent } from "../../../src/platforms/handled-events.ts";
import { OWNER_GONE_NOTICE } from "../../../src/platforms/telegram/telegram-instance-routing.ts";
import { Store } from "../../../src/store/store.ts";
import { FakeBotApi, makeUser, type FakeChat } from "../../fakes/telegram/fake-bot-api.ts";
import { freshPostgres, type TestDatabase } from "../../helpers/databases.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { norm } from "./harness.ts";
import { until as poll } from "../../helpers/until.ts";
import { childEnv } from "../../helpers/child-env.ts";

const TIMEOUT = 60_000;
const SECRET = "multi-instance-secret";

const alice = makeUser(101, "Alice");
const admin = makeUser(900, "Admin");

class Instance {
  readonly child: ChildProcess;
  stderr = "";
  readonly exited: Promise<number | null>;
  readonly ready: Promise<void>;
  readonly handled: HandledEvent[] = [];
  port = 0;
  id = "";
  private next = 1;
  private readonly waiting = new Map<number, (m: { error?: string }) => void>();

  constructor(
    readonly name: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(process.execPath, ["--import", "tsx", path.join(projectRoot, "test", "helpers", "telegram-instance-process.ts")], {
      cwd: projectRoot,
      env,
      detached: true,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    this.child.stderr!.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((r) => this.child.on("exit", (code) => r(code)));
    this.ready = new Promise((resolve, reject) => {
      this.child.on("message", (m: { type: string; id?: number; port?: number; instance?: string; event?: HandledEvent; error?: string }) => {
        if (m.type === "ready") {
          this.port = m.port!;
          this.id = m.instance!;
          resolve();
        }
        if (m.type === "handled") this.handled.push(m.event!);
        if (m.type === "result") this.waiting.get(m.id!)?.(m);
      });
      void this.exited.then((code) => reject(new Error(`instance ${name} exited (${code}) before it was ready: ${this.stderr.slice(-3000)}`)));
    });
  }

  /** Posts an update to this instance's webhook, as Telegram (through the load balancer) would. */
  async post(update: unknown): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.port}/tg`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET },
      body: JSON.stringify(update),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** The outcome this instance announced for an update (waits for it). */
  async outcome(updateId: number, timeoutMs = TIMEOUT): Promise<HandledEvent["outcome"]> {
    return (await until(`instance ${this.name} to handle update ${updateId}`, async () => this.handled.find((e) => e.id === String(updateId)), timeoutMs)).outcome;
  }

  async idle(): Promise<void> {
    const id = this.next++;
    const got = new Promise<{ error?: string }>((r) => this.waiting.set(id, r));
    this.child.send({ id, cmd: "idle" });
    const m = await got;
    if (m.error) throw new Error(m.error);
  }

  /** Kills the process and what it started, as a crash of its machine would. */
  kill(): Promise<number | null> {
    try {
      process.kill(-this.child.pid!, "SIGKILL");
    } catch {}
    return this.exited;
  }

  /** Log lines (pino JSON on stderr) whose message matches. */
  logged(msg: RegExp): Record<string, unknown>[] {
    return this.stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => typeof l.msg === "string" && msg.test(l.msg));
  }
}

/** Waits for a condition (each read is an event of its own: the database, a process, the fake). */
const until = <T>(what: string, read: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = TIMEOUT) => poll(what, read, timeoutMs, 25);

describe("telegram: two instances behind a load balancer, one PostgreSQL", { timeout: 6 * TIMEOUT }, () => {
  let tdb: TestDatabase;
  let store: Store;
  let fake: FakeBotApi;
  let a: Instance;
  let b: Instance;
  const instances: Instance[] = [];

  const generation = (source: string) => store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).executeTakeFirst();
  /** The generation once it no longer streams (stopped, or ended on its own). */
  const ended = (source: string) =>
    until(`generation ${source} to stop streaming`, async () => {
      const g = await generation(source);
      return g && g.status !== "streaming" ? g : undefined;
    });
  /** The update the fake just queued for what a user did (userSends, userReacts, …). */
  const lastUpdate = () => fake.update(fake.lastUpdateId)!;

  before(async () => {
    tdb = await freshPostgres();
    store = await Store.open(tdb.target);
    fake = await new FakeBotApi().start();
    const model = await tinyModelPath();
    const base = childEnv({
      DATABASE_URL: tdb.target.databaseUrl,
      TELEGRAM_TOKEN: fake.token,
      TELEGRAM_WEBHOOK_SECRET: SECRET,
      TEST_TELEGRAM_API_ROOT: fake.apiRoot,
      STEERBOT_LOG__LEVEL: "info",
      STEERBOT_MODEL__PATH: model,
      STEERBOT_MODEL__THREADS: "1",
      STEERBOT_MODEL__CONTEXT_SIZE: "2048",
      STEERBOT_MODEL__GPU: "false",
      // long replies (the tiny model writes ~200 tokens a second): a stop lands while one streams
      STEERBOT_GENERATION__MAX_TOKENS: "1000",
      STEERBOT_GENERATION__TEMPERATURE: "0",
      STEERBOT_ASK__PER_USER_PER_MINUTE: "1000",
      STEERBOT_PERMISSIONS__ADMINS__USERS: `["${admin.id}"]`,
      STEERBOT_PERMISSIONS__DEFAULT_TRUST: "approved",
      STEERBOT_TRAINING__RUN_HERE: "false",
    });
    a = new Instance("A", { ...base, STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-tg-a-")) });
    b = new Instance("B", { ...base, STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-tg-b-")) });
    instances.push(a, b);
    await Promise.all([a.ready, b.ready]);
    assert.notEqual(a.id, b.id);
  });

  after(async () => {
    for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) await i.kill();
    await fake?.close();
    await store?.close();
    await tdb?.drop();
  });

  it("a duplicate update delivered to both instances is handled and stored once", async () => {
    const botId = fake.bot.id;
    // An admin command: each instance that handled it would answer it.
    const group = fake.addChat({ id: -100301, type: "supergroup", title: "dupes" });
    fake.setBotAdmin(group.id);
    fake.userSends(group, admin, "/status");
    const status = lastUpdate();
    assert.deepEqual(await Promise.all([a.post(status), b.post(status)]), [200, 200]);
    const outcomes = await Promise.all([a.outcome(status.update_id), b.outcome(status.update_id)]);
    await Promise.all([a.idle(), b.idle()]);
    assert.equal(fake.botMessages(group.id).length, 1, `answered once: ${JSON.stringify(fake.transcript(group.id))}`);
    assert.deepEqual([...outcomes].sort(), ["done", "duplicate"], "one instance handled it, the other dropped it");
    const row = await store.telegramUpdates.get(botId, status.update_id);
    assert.ok(row?.handled_at, "the claim is recorded as handled");

    // A question in a private chat: at once to both, then again to each later (a retry).
    const chat = fake.privateChat(alice);
    const q = fake.userSends(chat, alice, "Tell me about duplicate deliveries") as { message_id: number };
    const ask = lastUpdate();
    assert.deepEqual(await Promise.all([b.post(ask), a.post(ask)]), [200, 200]);
    const asked = await Promise.all([a.outcome(ask.update_id), b.outcome(ask.update_id)]);
    assert.deepEqual([...asked].sort(), ["done", "duplicate"]);
    const handler = asked[0] === "done" ? a : b;
    const other = handler === a ? b : a;
    await until("the reply to end", async () => (await generation(`${chat.id}:${q.message_id}`))?.status === "done");
    const before = other.handled.length;
    assert.equal(await other.post(ask), 200);
    await until("the retry to be dropped", () => other.handled.length > before);
    assert.equal(other.handled.at(-1)!.outcome, "duplicate");
    await Promise.all([a.idle(), b.idle()]);
    const gens = await store.db.selectFrom("generations").selectAll().where("source_message_id", "=", `${chat.id}:${q.message_id}`).execute();
    assert.equal(gens.length, 1, "one generation");
    assert.equal(gens[0]!.instance_id, handler.id);
    const asks = await store.db.selectFrom("messages").select("id").where("role", "=", "user").where("text", "=", "Tell me about duplicate deliveries").execute();
    assert.equal(asks.length, 1, "the question is stored once");
    // One reply in the chat (a long one is split into parts): its messages are exactly the generation's text.
    assert.equal(norm(fake.botMessages(chat.id).map((x) => x.text).join(" ")), norm(gens[0]!.final_text!), `one reply in the chat: ${JSON.stringify(fake.transcript(chat.id))}`);
    assert.equal((await store.db.selectFrom("telegram_processed_updates").select("update_id").where("update_id", "=", ask.update_id).execute()).length, 1);
  });

  it("a 👎 delivered to the instance that does not stream the reply stops it at the text shown; a correction there resumes it", async (t) => {
    const group = fake.addChat({ id: -100302, type: "supergroup", title: "routed" });
    fake.setBotAdmin(group.id);
    const q = fake.userSends(group, alice, "/ask tell me a long story") as { message_id: number };
    assert.equal(await a.post(lastUpdate()), 200);
    const m = await fake.waitFor(() => fake.botMessages(group.id).find((x) => x.versions.length >= 3), TIMEOUT, "A streaming its reply");
    const gen = (await generation(`${group.id}:${q.message_id}`))!;
    assert.equal(gen.instance_id, a.id, "instance A streams it");
    assert.equal(gen.status, "streaming");

    fake.userReacts(group, alice, m.message_id, ["👎"]);
    const stop = lastUpdate();
    const t0 = Date.now();
    assert.equal(await b.post(stop), 200); // answered once A has applied the stop
    const routedMs = Date.now() - t0;
    const stopped = await ended(`${group.id}:${q.message_id}`);
    assert.equal(stopped.status, "stopped", "the 👎 B received stopped the reply A streams");
    t.diagnostic(`stop routed B → A and applied in ${routedMs} ms (${m.text.length} characters shown)`);
    assert.equal(await b.outcome(stop.update_id), "forwarded", "B handed the stop to A");
    assert.equal(await a.outcome(stop.update_id), "done", "A handled it");
    // The stop point is what A's messages showed: the chat and the database agree. The whole
    // reply, not only the message reacted to: under load the stream can have run into a second
    // message (4096 characters) before the stop landed.
    const reply = () => fake.botMessages(group.id);
    assert.equal(norm(reply().map((x) => x.text).join(" ")), norm(stopped.final_text!), "the messages show exactly the stored stop point");
    const versions = reply().map((x) => x.versions.length);
    await a.idle(); // A's background work (the cut, any edit still queued) is over
    assert.deepEqual(reply().map((x) => x.versions.length), versions, "nothing more was shown after the stop");

    // The correction (a reply to the stopped message) also reaches B.
    fake.userSends(group, alice, "And then the dragon slept.", { replyTo: m.message_id });
    const correction = lastUpdate();
    const corrId = (correction.message as { message_id: number }).message_id;
    assert.equal(await b.post(correction), 200);
    assert.equal(await b.outcome(correction.update_id), "forwarded");
    const steer = await until("the steer", async () => store.steers.findByCorrection("telegram", `${group.id}:${corrId}`));
    assert.equal(steer.generation_id, stopped.id);
    assert.equal(steer.shown_chars, stopped.final_text!.length, "aligned against the text A showed");
    assert.equal(steer.chosen.trim(), "And then the dragon slept.");
    await until("the reply to resume on A and end", async () => (await generation(`${group.id}:${q.message_id}`))?.status === "done");
    assert.ok(fake.botMessages(group.id).some((x) => x.text.includes("And then the dragon slept.")), "the resumed reply shows the correction");
    assert.equal((await generation(`${group.id}:${q.message_id}`))!.instance_id, a.id);
    assert.equal(b.logged(/update handed to the instance/).length, 2);
  });

  it("a draft's stop button pressed on the other instance stops the draft at the text shown", async () => {
    const bob = makeUser(102, "Bob");
    const chat = fake.privateChat(bob);
    const q = fake.userSends(chat, bob, "Another long story, please") as { message_id: number };
    assert.equal(await b.post(lastUpdate()), 200);
    // The first draft on screen: a private chat's drafts come about one a second, and this
    // reply (deterministic, greedy) is over in about two: waiting for a third draft left the
    // stop's routing (80-220 ms) racing the end of the reply.
    const draft = await fake.waitFor(() => fake.draftHistory.find((d) => d.chatId === chat.id), TIMEOUT, "B streaming a draft");
    const streaming = (await generation(`${chat.id}:${q.message_id}`))!;
    assert.equal(streaming.instance_id, b.id);
    assert.equal(streaming.status, "streaming", "B still streams when the stop is pressed");
    fake.userStopsDraft(chat, draft.draftId);
    const stop = lastUpdate();
    assert.equal(await a.post(stop), 200);
    const stopped = await ended(`${chat.id}:${q.message_id}`);
    assert.equal(stopped.status, "stopped", "the stop A received stopped the draft B streams");
    assert.equal(await a.outcome(stop.update_id), "forwarded");
    await b.idle();
    const shown = fake.botMessages(chat.id).map((x) => x.text).join(" ");
    assert.equal(shown, stopped.final_text!.trim(), "the persisted draft shows exactly the stored stop point");
  });

  it("a stop for a reply whose instance has died is answered clearly", async () => {
    const group = fake.addChat({ id: -100303, type: "supergroup", title: "orphaned" });
    fake.setBotAdmin(group.id);
    const q = fake.userSends(group, alice, "/ask one more story") as { message_id: number };
    assert.equal(await a.post(lastUpdate()), 200);
    const m = await fake.waitFor(() => fake.botMessages(group.id).find((x) => x.versions.length >= 2), TIMEOUT, "A streaming");
    assert.equal((await generation(`${group.id}:${q.message_id}`))!.instance_id, a.id);
    await a.kill();
    await until("A's instance lock to be free", async () => !(await store.instanceAlive(a.id)));
    fake.userReacts(group, alice, m.message_id, ["👎"]);
    const stop = lastUpdate();
    assert.equal(await b.post(stop), 200);
    assert.equal(await b.outcome(stop.update_id), "done");
    const notice = await fake.waitFor(() => fake.botMessages(group.id).find((x) => x.text === OWNER_GONE_NOTICE), TIMEOUT, "the notice");
    assert.equal(notice.reply_to_message_id, m.message_id, "it answers the message that was reacted to");
  });
});
