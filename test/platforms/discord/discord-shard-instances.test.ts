/**
 * Several instances on one bot token: two steerbot processes (the real app on the tiny model,
 * each with its own data directory) sharing one PostgreSQL database, one running shard 0 and
 * the other shard 1 of 2 (STEERBOT_DISCORD__SHARDS / __SHARD_COUNT), against one fake Discord
 * with a guild on each shard. The fake routes as Discord does (a guild's events to its shard,
 * DMs to shard 0; see fake-discord-gateway.ts), and its identify limit (max_concurrency 1)
 * holds the two starts 5 seconds apart as Discord would.
 *
 * - a question in each guild is answered exactly once, by the instance whose shard owns the
 *   guild (the generation row's instance id), and the other instance never sees it;
 * - a stop reaction reaches that same instance and stops the reply at the text shown;
 * - a DM is answered by shard 0's instance;
 * - `steerbot start` with a shard outside the count fails at once, naming the setting.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import type { HandledEvent } from "../../../src/platforms/handled-events.ts";
import type { GenerationRow } from "../../../src/store/database.ts";
import { Store } from "../../../src/store/store.ts";
import { runCli } from "../../helpers/cli.ts";
import { freshPostgres, type TestDatabase } from "../../helpers/databases.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";
import { FakeDiscord } from "../../fakes/discord/fake-discord.ts";
import type { FakeChannel, FakeMessage, FakeUser } from "../../fakes/discord/fake-discord-state.ts";
import { childEnv } from "../../helpers/child-env.ts";

const TIMEOUT = 60_000;

/** One instance process (test/fakes/discord/discord-instance-process.ts). */
class Instance {
  readonly child: ChildProcess;
  readonly handled: HandledEvent[] = [];
  readonly ready: Promise<{ instance: string; shards: { ids: number[]; count: number } }>;
  readonly exited: Promise<number | null>;
  stderr = "";

  constructor(env: NodeJS.ProcessEnv) {
    const script = path.join(projectRoot, "test", "fakes", "discord", "discord-instance-process.ts");
    this.child = spawn(process.execPath, ["--import", "tsx", script], { cwd: projectRoot, env, detached: true, stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.child.stderr!.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((r) => this.child.on("exit", (code) => r(code)));
    this.ready = new Promise((resolve, reject) => {
      this.child.on("message", (m: { type: string; event?: HandledEvent; instance?: string; shards?: { ids: number[]; count: number } }) => {
        if (m.type === "ready") resolve({ instance: m.instance!, shards: m.shards! });
        if (m.type === "handled") this.handled.push(m.event!);
      });
      void this.exited.then((code) => reject(new Error(`instance exited (${code}) before it was ready: ${this.stderr.slice(-2000)}`)));
    });
  }

  saw(id: string, kind?: string): boolean {
    return this.handled.some((e) => e.id === id && (!kind || e.kind === kind));
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.send({ cmd: "close" });
    const timer = setTimeout(() => this.kill(), 15_000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    try {
      process.kill(-this.child.pid!, "SIGKILL");
    } catch {}
  }
}

describe("two instances on shards 0 and 1 of 2, one PostgreSQL (separate processes)", { timeout: 5 * TIMEOUT }, () => {
  let tdb: TestDatabase;
  let store: Store;
  let fake: FakeDiscord;
  let guildB: { id: string; general: FakeChannel };
  let alice: FakeUser;
  let a: Instance;
  let b: Instance;
  let ids: { a: string; b: string };
  let env: NodeJS.ProcessEnv;

  before(async () => {
    // the default guild (its "general" channel) on shard 0, guild B on shard 1
    fake = new FakeDiscord({ guildShard: [0, 2] });
    await fake.listen();
    guildB = fake.addGuild("Guild B", { shard: [1, 2] });
    alice = fake.addUser("alice");
    tdb = await freshPostgres();
    store = await Store.open(tdb.target);
    const model = await tinyModelPath();
    env = childEnv({
      DATABASE_URL: tdb.target.databaseUrl,
      DISCORD_TOKEN: fake.token,
      FAKE_DISCORD_API: fake.apiUrl,
      STEERBOT_LOG__LEVEL: "warn",
      STEERBOT_MODEL__PATH: model,
      STEERBOT_MODEL__THREADS: "1",
      STEERBOT_MODEL__CONTEXT_SIZE: "4096",
      STEERBOT_MODEL__GPU: "false",
      // long replies: seconds of streaming to stop in
      STEERBOT_GENERATION__MAX_TOKENS: "1500",
      STEERBOT_DISCORD__SHARD_COUNT: "2",
    });
    const dir = (name: string) => mkdtempSync(path.join(tmpdir(), `steerbot-shard-${name}-`));
    a = new Instance({ ...env, STEERBOT_STORE__DATA_DIR: dir("a"), STEERBOT_DISCORD__SHARDS: "[0]" });
    b = new Instance({ ...env, STEERBOT_STORE__DATA_DIR: dir("b"), STEERBOT_DISCORD__SHARDS: "[1]" });
    const [ra, rb] = await Promise.all([a.ready, b.ready]);
    assert.deepEqual(ra.shards, { ids: [0], count: 2 });
    assert.deepEqual(rb.shards, { ids: [1], count: 2 });
    ids = { a: ra.instance, b: rb.instance };
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await store?.close();
    await tdb?.drop();
    await fake?.close();
  });

  const generation = (source: string) => store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).execute();

  async function waitForGeneration(source: string, done: (g: GenerationRow) => boolean, what: string): Promise<GenerationRow> {
    const end = Date.now() + TIMEOUT;
    for (;;) {
      const rows = await generation(source);
      assert.ok(rows.length <= 1, `one generation for ${source}, not ${rows.length}`);
      if (rows[0] && done(rows[0])) return rows[0];
      if (Date.now() > end) throw new Error(`generation of ${source}: ${what} not reached (is ${rows[0]?.status})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The first message of the bot's reply to `q` (in the thread it opened, or in the DM), once it was edited. */
  async function firstReply(q: FakeMessage, where?: string): Promise<FakeMessage> {
    const channel = where ?? (await fake.waitFor(() => fake.state.threadOf(q.id), TIMEOUT, "thread")).id;
    const first = await fake.waitFor(() => fake.state.botMessagesIn(channel).find((m) => BigInt(m.id) > BigInt(q.id)), TIMEOUT, "first reply message");
    await fake.waitFor(() => first.versions.length >= 2, TIMEOUT, "an edit: the reply streams");
    return first;
  }

  it("each instance identifies its own shard and gets only its guild", () => {
    if (process.env.DISCORD_TEST_LOG) process.stderr.write(`refused identifies: ${JSON.stringify(fake.gateway.refusedIdentifies)}\n`);
    assert.deepEqual(fake.gateway.identifies.map((d) => d.shard).sort(), [[0, 2], [1, 2]]);
    assert.deepEqual(fake.gateway.connectedShards.sort(), [[0, 2], [1, 2]]);
    const guildCreates = (shard: number) => fake.gateway.deliveries.filter((d) => d.t === "GUILD_CREATE" && d.shard[0] === shard).map((d) => d.guildId);
    assert.deepEqual(guildCreates(0), [fake.state.guildId]);
    assert.deepEqual(guildCreates(1), [guildB.id]);
  });

  it("a question in each guild is answered once, by the instance of its shard; a stop reaches that instance and stops the reply", async () => {
    const qA = fake.say(alice, fake.general, `${fake.mention} Tell me a long story about shard zero`);
    const qB = fake.say(alice, guildB.general, `${fake.mention} Tell me a long story about shard one`);
    // both stopped while they stream
    const firsts = await Promise.all([firstReply(qA), firstReply(qB)]);
    for (const first of firsts) fake.react(alice, first.id, "🛑");
    for (const [q, first, owner, other, id] of [
      [qA, firsts[0], a, b, ids.a],
      [qB, firsts[1], b, a, ids.b],
    ] as const) {
      const stopped = await waitForGeneration(q.id, (g) => g.status === "stopped", "stopped");
      const thread = fake.state.threadOf(q.id)!;
      await fake.waitFor(
        () => fake.state.botMessagesIn(thread.id).map((m) => m.content).join("") === stopped.final_text,
        TIMEOUT,
        "the reply cut to the kept text",
      );
      assert.ok(stopped.final_text!.length > 0);
      assert.equal(stopped.instance_id, id, "streamed and stopped by the instance whose shard owns the guild");
      await fake.waitFor(() => owner.saw(first.id, "reaction"), TIMEOUT, "the owner handled the stop");
      assert.ok(owner.saw(q.id, "message"));
      assert.ok(!other.saw(q.id) && !other.saw(first.id), "the other instance never saw the question or the stop");
      assert.deepEqual(
        [...new Set(owner.handled.filter((e) => e.id === q.id || e.id === first.id).map((e) => e.shardId))],
        [owner === a ? 0 : 1],
      );
    }
    assert.equal(fake.count("POST", `/messages/${qA.id}/threads`), 1, "one thread per question");
    assert.equal(fake.count("POST", `/messages/${qB.id}/threads`), 1);
    const rows = await store.db.selectFrom("generations").select(["source_message_id", "instance_id"]).execute();
    assert.deepEqual(rows.map((r) => [r.source_message_id, r.instance_id]).sort(), [[qA.id, ids.a], [qB.id, ids.b]].sort());
  });

  it("a DM is answered by shard 0's instance", async () => {
    const dm = fake.dm(alice);
    const q = fake.say(alice, dm, "Tell me a long story in private");
    const first = await firstReply(q, dm.id);
    const g = await waitForGeneration(q.id, () => true, "a row");
    assert.equal(g.instance_id, ids.a);
    fake.react(alice, first.id, "🛑");
    await waitForGeneration(q.id, (r) => r.status === "stopped", "stopped");
    assert.ok(a.saw(q.id, "message") && !b.saw(q.id));
    const dmEvents = fake.gateway.deliveries.filter((d) => !d.guildId && (d.t === "MESSAGE_CREATE" || d.t === "MESSAGE_REACTION_ADD"));
    assert.ok(dmEvents.length >= 2 && dmEvents.every((d) => d.shard[0] === 0), "DM events go to shard 0 only");
  });

  it("`steerbot start` with a shard outside shard_count fails at once, naming the setting", async () => {
    const identifies = fake.gateway.identifies.length;
    const started = Date.now();
    const r = await runCli(["start"], {
      env: { ...env, STEERBOT_STORE__DATA_DIR: mkdtempSync(path.join(tmpdir(), "steerbot-shard-bad-")), STEERBOT_DISCORD__SHARDS: "[1, 2]" },
      timeoutMs: TIMEOUT,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /discord\.shards: there is no shard 2 among shard_count 2 \(ids run from 0 to 1\)/);
    assert.equal(fake.gateway.identifies.length, identifies, "nothing connected");
    assert.ok(Date.now() - started < TIMEOUT);
  });
});
