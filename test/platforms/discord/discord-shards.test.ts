/**
 * Sharding over real discord.js against the fake gateway, with scripted cores (one per bot, as
 * one per instance): the fake routes a guild's events only to its shard and DMs only to shard 0,
 * so a bot that ignores its shard setting is caught (both instances answer); one Client with
 * several shards opens one connection per shard; `shards: auto` takes Discord's count; Discord's
 * refusals (4010 Invalid shard, 4011 Sharding required) and an invalid setting fail the start
 * with what to change. The same split across separate processes with the real app and one
 * PostgreSQL is in discord-shard-instances.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import WebSocket from "ws";
import { DiscordBot } from "../../../src/platforms/discord/discord-bot.ts";
import type { DiscordConfigInput } from "../../../src/platforms/discord/discord-settings.ts";
import { shardOfGuild } from "../../../src/platforms/discord/discord-shards.ts";
import type { HandledEvent } from "../../../src/platforms/handled-events.ts";
import { ScriptedCore } from "../../fakes/scripted-core.ts";
import { RecordingLog, waitHandled } from "../../fakes/discord/discord-harness.ts";
import { FakeDiscord, type FakeDiscordOptions } from "../../fakes/discord/fake-discord.ts";
import { guildShard } from "../../fakes/discord/fake-discord-state.ts";

interface Instance {
  bot: DiscordBot;
  core: ScriptedCore;
  log: RecordingLog;
  handled: HandledEvent[];
}

/** A fake Discord whose default guild is on shard 0 of 2, with one more guild on each shard. */
async function twoShardFake(options: FakeDiscordOptions = {}) {
  const fake = new FakeDiscord({ maxConcurrency: 16, guildShard: [0, 2], ...options });
  await fake.listen();
  const g0 = fake.addGuild("Guild on shard 0", { shard: [0, 2] });
  const g1 = fake.addGuild("Guild on shard 1", { shard: [1, 2] });
  return { fake, g0, g1, alice: fake.addUser("alice") };
}

function instance(fake: FakeDiscord, discord: DiscordConfigInput["discord"]): Instance {
  const core = new ScriptedCore({ answer: (q) => `Answer: ${q}` });
  const log = new RecordingLog();
  const bot = new DiscordBot({ token: fake.token, core, log, config: { discord, stream: { edit_interval_ms: 0 } }, rest: { api: fake.apiUrl } });
  const handled: HandledEvent[] = [];
  bot.handled.on((e) => handled.push(e));
  return { bot, core, log, handled };
}

const asks = (i: Instance) => i.core.calls.filter((c) => c.kind === "ask").length;
const guildIds = (i: Instance) => [...i.bot.client.guilds.cache.keys()].sort();

/** Resolves once one of the bots has handled the message (its reply settled). */
function handledBySomeone(bots: Instance[], messageId: string): Promise<void> {
  return Promise.race(bots.map((i) => waitHandled(i.bot, (e) => e.kind === "message" && e.id === messageId, 1, 15_000).then(() => {})));
}

describe("discord sharding (fake gateway, scripted cores)", () => {
  it("GET /gateway/bot recommends one shard per 1000 guilds and gives the session start limit", async () => {
    const fake = new FakeDiscord({ guildsPerShard: { recommended: 2 }, maxConcurrency: 4 });
    await fake.listen();
    try {
      const info = async () => (await fetch(`${fake.apiUrl}/v10/gateway/bot`, { headers: { authorization: `Bot ${fake.token}` } }).then((r) => r.json())) as Record<string, any>;
      assert.equal((await info()).shards, 1, "one guild: one shard");
      fake.addGuild("second");
      fake.addGuild("third");
      const got = await info();
      assert.equal(got.shards, 2, "three guilds at two per shard: two shards");
      assert.deepEqual(got.session_start_limit, { total: 1000, remaining: 1000, reset_after: 60_000, max_concurrency: 4 });
      assert.equal(got.url, fake.gatewayUrl);
    } finally {
      await fake.close();
    }
  });

  it("two instances with shards [0] and [1] of 2: each identifies its shard, gets only its guilds and answers only there; DMs reach shard 0", async () => {
    const { fake, g0, g1, alice } = await twoShardFake();
    const a = instance(fake, { shards: [0], shard_count: 2 });
    const b = instance(fake, { shards: [1], shard_count: 2 });
    try {
      await Promise.all([a.bot.start(), b.bot.start()]);
      assert.deepEqual(fake.gateway.identifies.map((d) => d.shard).sort(), [[0, 2], [1, 2]]);
      assert.deepEqual(fake.gateway.connectedShards.sort(), [[0, 2], [1, 2]]);
      // READY and GUILD_CREATE only for the shard's own guilds
      assert.deepEqual(guildIds(a), fake.gateway.guildsOf([0, 2]).sort());
      assert.deepEqual(guildIds(b), fake.gateway.guildsOf([1, 2]).sort());
      assert.ok(guildIds(a).includes(g0.id) && !guildIds(a).includes(g1.id));
      assert.ok(guildIds(b).includes(g1.id) && !guildIds(b).includes(g0.id));
      assert.deepEqual(a.bot.metrics.shards, { ids: [0], count: 2 });
      assert.deepEqual(b.bot.metrics.shards, { ids: [1], count: 2 });
      assert.ok(a.log.lines.some((l) => l.msg === "discord: connected" && JSON.stringify((l.obj as { shards: number[] }).shards) === "[0]"));
      assert.ok(b.log.has("info", "shard 0 runs in another instance"), "the instance without shard 0 says who answers DMs");
      assert.ok(!a.log.has("info", "shard 0 runs in another instance"));

      const q0 = fake.say(alice, g0.general, `${fake.mention} question in guild 0`);
      const q1 = fake.say(alice, g1.general, `${fake.mention} question in guild 1`);
      await Promise.all([handledBySomeone([a, b], q0.id), handledBySomeone([a, b], q1.id)]);
      for (const [q, owner, other] of [[q0, a, b], [q1, b, a]] as const) {
        const thread = await fake.waitFor(() => fake.state.threadOf(q.id), 5000, "thread");
        await fake.waitFor(() => owner.core.replies.find((r) => r.thread.threadId === thread.id && r.state === "done"), 10_000, "answered");
        assert.equal(fake.state.botMessagesIn(thread.id).map((m) => m.content).join(""), `Answer: question in guild ${q === q0 ? 0 : 1}`);
        assert.ok(!other.handled.some((e) => e.id === q.id), "the other instance never saw the question");
      }
      assert.equal(asks(a), 1);
      assert.equal(asks(b), 1);
      assert.equal(fake.count("POST", "/threads"), 2, "one thread per question");
      // the gateway's own record: guild 1's events went to shard 1 only
      const g1Shards = new Set(fake.gateway.deliveries.filter((d) => d.guildId === g1.id).map((d) => d.shard.join("/")));
      assert.deepEqual([...g1Shards], ["1/2"]);
      // the bots name the shard of each event (their own echoed replies count too)
      assert.deepEqual(a.handled.filter((e) => e.userId === alice.id).map((e) => e.shardId), [0]);
      assert.deepEqual(b.handled.filter((e) => e.userId === alice.id).map((e) => e.shardId), [1]);
      assert.deepEqual(Object.keys(b.bot.metrics.eventsByShard), ["1"]);

      // A DM: shard 0 only.
      const dm = fake.say(alice, fake.dm(alice), "hello in private");
      await waitHandled(a.bot, (e) => e.kind === "message" && e.id === dm.id, 1, 15_000);
      await fake.waitFor(() => fake.state.botMessagesIn(fake.dm(alice).id).length > 0, 5000, "DM answer");
      assert.equal(asks(a), 2);
      assert.equal(asks(b), 1);
      assert.ok(!b.handled.some((e) => e.id === dm.id), "shard 1 never got the DM");
      assert.ok(fake.gateway.deliveries.filter((d) => d.t === "MESSAGE_CREATE" && !d.guildId).every((d) => d.shard[0] === 0));

      // A guild the bot joins later: its GUILD_CREATE reaches its shard only.
      const late = fake.addGuild("joined later", { shard: [1, 2] });
      await fake.waitFor(() => b.bot.client.guilds.cache.has(late.id), 5000, "late guild on shard 1");
      assert.ok(!a.bot.client.guilds.cache.has(late.id));
    } finally {
      await Promise.all([a.bot.stop(), b.bot.stop()]);
      await fake.close();
    }
  });

  it("two instances that ignore the shard setting both get every guild and both answer: what the routing above rules out", async () => {
    const { fake, g1, alice } = await twoShardFake();
    const a = instance(fake, {});
    const b = instance(fake, {});
    try {
      await a.bot.start();
      await b.bot.start();
      assert.deepEqual(fake.gateway.identifies.map((d) => d.shard), [[0, 1], [0, 1]]);
      // the second IDENTIFY of the same bucket within 5 s got op 9 (Invalid Session) and came again later
      assert.deepEqual(fake.gateway.refusedIdentifies, [{ shard: [0, 1], code: 9 }]);
      assert.deepEqual(guildIds(a), guildIds(b));
      const q = fake.say(alice, g1.general, `${fake.mention} who answers?`);
      await Promise.all([a, b].map((i) => waitHandled(i.bot, (e) => e.kind === "message" && e.id === q.id, 1, 15_000)));
      assert.equal(asks(a) + asks(b), 2, "both instances asked their core: the question would be answered twice");
    } finally {
      await Promise.all([a.bot.stop(), b.bot.stop()]);
      await fake.close();
    }
  });

  it("one instance with shards: all of 2 opens one connection per shard and answers in guilds of both", async () => {
    const { fake, g0, g1, alice } = await twoShardFake();
    const one = instance(fake, { shards: "all", shard_count: 2 });
    try {
      await one.bot.start();
      assert.deepEqual(fake.gateway.connectedShards.sort(), [[0, 2], [1, 2]]);
      assert.deepEqual(one.bot.metrics.shards, { ids: [0, 1], count: 2 });
      assert.ok(one.bot.client.guilds.cache.has(g0.id) && one.bot.client.guilds.cache.has(g1.id));
      assert.equal(one.log.lines.filter((l) => l.msg === "discord: shard ready").length, 2);
      const q0 = fake.say(alice, g0.general, `${fake.mention} zero`);
      const q1 = fake.say(alice, g1.general, `${fake.mention} one`);
      const done = await waitHandled(one.bot, (e) => e.kind === "message" && (e.id === q0.id || e.id === q1.id), 2, 15_000);
      assert.deepEqual(done.map((e) => [e.id, e.shardId]).sort(), [[q0.id, guildShard(g0.id, 2)], [q1.id, guildShard(g1.id, 2)]].sort());
      assert.equal(asks(one), 2);
    } finally {
      await one.bot.stop();
      await fake.close();
    }
  });

  it("shards: auto runs the count Discord recommends, every shard in this instance", async () => {
    const { fake, g0, g1 } = await twoShardFake({ guildsPerShard: { recommended: 2 } });
    const auto = instance(fake, { shards: "auto" });
    try {
      await auto.bot.start();
      assert.deepEqual(auto.bot.metrics.shards, { ids: [0, 1], count: 2 }, "three guilds at two per shard: two shards");
      assert.ok(auto.bot.client.guilds.cache.has(g0.id) && auto.bot.client.guilds.cache.has(g1.id));
    } finally {
      await auto.bot.stop();
      await fake.close();
    }
  });

  it("IDENTIFY with an invalid shard is closed with 4010 Invalid shard, and the bot's start fails saying so", async () => {
    const fake = new FakeDiscord();
    await fake.listen();
    try {
      for (const shard of [[2, 2], [-1, 2], [0, 0], [1], "0"]) {
        const ws = new WebSocket(`${fake.gatewayUrl}?v=10&encoding=json`);
        const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
        ws.on("message", (raw) => {
          if (JSON.parse(String(raw)).op === 10) ws.send(JSON.stringify({ op: 2, d: { token: fake.token, intents: 1, properties: {}, shard } }));
        });
        assert.equal(await closed, 4010, `shard ${JSON.stringify(shard)}`);
      }
      assert.equal(fake.gateway.identifies.length, 0);
      // a client that sends one anyway (the setting is checked before, so only by going around it) fails its start
      const bot = instance(fake, { shards: [1], shard_count: 2 });
      bot.bot.client.options.shards = [2];
      await assert.rejects(bot.bot.start(), /^Error: discord: Discord refused shard 2 of 2 \(4010 Invalid shard\): shard ids run from 0 to discord\.shard_count - 1/);
      assert.equal(fake.gateway.readyCount, 0);
    } finally {
      await fake.close();
    }
  });

  it("too few shards for the guilds: Discord closes with 4011 and the start fails saying which shard_count to set", async () => {
    // four guilds, one on each shard of 4 (so two on each of 2); at most three per shard, two per recommended shard
    const fake = new FakeDiscord({ guildShard: [0, 4], guildsPerShard: { max: 3, recommended: 2 }, maxConcurrency: 16 });
    await fake.listen();
    for (const s of [1, 2, 3]) fake.addGuild(`guild ${s}`, { shard: [s, 4] });
    const single = instance(fake, {});
    try {
      await assert.rejects(single.bot.start(), /Discord refused shard 0 of 1 \(4011 Sharding required\): .*set discord\.shard_count to 2 \(Discord's recommendation\) on every instance/);
      assert.deepEqual(fake.gateway.refusedIdentifies.map((r) => r.code), [4011]);
      assert.equal(fake.gateway.readyCount, 0, "no connection left open");
      const two = instance(fake, { shards: "all", shard_count: 2 });
      await two.bot.start();
      assert.equal(two.bot.client.guilds.cache.size, 4);
      await two.bot.stop();
    } finally {
      await fake.close();
    }
  });

  it("an invalid shard setting fails at once, before any connection, naming the setting", () => {
    const fake = new FakeDiscord();
    const make = (discord: object) => () => new DiscordBot({ token: fake.token, core: new ScriptedCore(), log: new RecordingLog(), config: { discord } as DiscordConfigInput });
    assert.throws(make({ shards: [2], shard_count: 2 }), /discord\.shards: there is no shard 2 among shard_count 2 \(ids run from 0 to 1\)/);
    assert.throws(make({ shards: [0, 0], shard_count: 2 }), /discord\.shards: shard 0 is listed twice/);
    assert.throws(make({ shards: [], shard_count: 2 }), /discord\.shards: list at least one shard id/);
    assert.throws(make({ shards: [0], shard_count: 0 }), /discord\.shard_count: the total number of shards/);
    assert.throws(make({ shards: "auto", shard_count: 4 }), /discord\.shards: auto runs every shard of the count Discord recommends/);
    assert.equal(fake.gateway.identifies.length, 0);
  });

  it("the shard of a guild is (guild_id >> 22) % shard_count, as the bot and the fake both compute it", () => {
    const fake = new FakeDiscord();
    for (const count of [1, 2, 3, 7]) {
      for (let s = 0; s < count; s++) {
        const g = fake.state.addGuild(`g${s}of${count}`, { shard: [s, count] });
        assert.equal(guildShard(g.id, count), s);
        assert.equal(shardOfGuild(g.id, count), s);
      }
    }
    // Discord's documented example: guild 41771983423143937 on shard 0 of 1, and its timestamp's residue otherwise
    assert.equal(shardOfGuild("41771983423143937", 1), 0);
    assert.equal(shardOfGuild("41771983423143937", 2), Number((41771983423143937n >> 22n) % 2n));
    assert.equal(shardOfGuild(null, 4), 0, "DMs: shard 0");
  });
});
