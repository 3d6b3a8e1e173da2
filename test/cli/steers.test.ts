/**
 * `steerbot steers` as an operator uses it: the real CLI against the PostgreSQL database of a
 * bot that is running (its core stored the steers as pending) — run in this process, its own
 * store connection beside the bot's — and on an embedded PGlite data directory when no bot
 * holds it, where the list is the binary itself in a child process.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createApp, type App } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import type { Actor } from "../../src/core/ports.ts";
import { createLogger } from "../../src/log.ts";
import { Store } from "../../src/store/store.ts";
import { runCli, runCliInProcess } from "../helpers/cli.ts";
import { freshPostgres, type TestDatabase } from "../helpers/databases.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const tg: Actor = { platform: "telegram", userId: "111" };
const dc: Actor = { platform: "discord", userId: "222" };

describe("steerbot steers (CLI) while a bot runs on PostgreSQL", () => {
  let tdb: TestDatabase;
  let store: Store;
  let app: App;
  let env: NodeJS.ProcessEnv;
  const ids: Record<string, number> = {};
  const cli = (...args: string[]) => runCliInProcess(["steers", ...args], { env });

  /** A reply, then a correction of it by the same person: one steer, pending (nobody is trusted). */
  async function steer(actor: Actor, key: string, correction: string): Promise<void> {
    const thread = { platform: actor.platform, chatId: `chat-${key}`, threadId: `chat-${key}` };
    const surface = new RecordingSurface();
    await app.core.ask({ thread, actor, text: `Question ${key}`, sourceMessageId: `q-${key}`, surface });
    const out = await app.core.correct({ thread, actor, replyToMessageId: surface.order[0], correction: { text: correction }, messageId: `c-${key}`, surface: new RecordingSurface() });
    assert.match(out.notice ?? "", /waits for an admin's approval/);
    ids[key] = (await store.steers.findByCorrection(actor.platform, `c-${key}`))!.id;
  }

  before(async () => {
    tdb = await freshPostgres();
    const model = await tinyModelPath();
    const dir = mkdtempSync(path.join(tmpdir(), "steerbot-steers-"));
    env = { DATABASE_URL: tdb.target.databaseUrl, STEERBOT_MODEL__PATH: model, STEERBOT_STORE__DATA_DIR: dir };
    store = await Store.open(tdb.target);
    const { config, secrets } = loadConfig({
      env: {},
      overrides: { model: { path: model, threads: 1, gpu: false }, store: { data_dir: dir }, generation: { max_tokens: 16, temperature: 0 } },
    });
    app = await createApp({ config, secrets: { ...secrets, databaseUrl: tdb.target.databaseUrl }, log: createLogger("silent"), store });
    await steer(tg, "a", "The capital is Paris.");
    await steer(dc, "b", "Water boils at 100 degrees.");
    await steer(tg, "c", "Seven days make a week.");
    // one of them from January (a date filter has something to leave out)
    await store.db.updateTable("steers").set({ created_at: new Date("2026-01-15T12:00:00Z") }).where("id", "=", ids.c!).execute();
  });
  after(async () => {
    await app?.close();
    await store?.close();
    await tdb?.drop();
  });

  it("lists by state, author and date, one line a steer, or as JSON", async () => {
    const all = await cli("list", "--state", "pending");
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, new RegExp(`^#${ids.a}\\tpending\\ttelegram:111\\t\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d\\t“.*” → “.*Paris\\.”$`));
    const byAuthor = await cli("list", "--author", "telegram:111");
    assert.deepEqual(byAuthor.stdout.trim().split("\n").map((l) => l.split("\t")[0]), [`#${ids.a}`, `#${ids.c}`]);
    const recent = await cli("list", "--since", "2026-02-01");
    assert.deepEqual(recent.stdout.trim().split("\n").map((l) => l.split("\t")[0]), [`#${ids.a}`, `#${ids.b}`]);
    const january = await cli("list", "--before", "2026-02-01", "--json");
    const rows = JSON.parse(january.stdout);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].id, ids.c);
    assert.equal(rows[0].chosen.endsWith("Seven days make a week."), true);
    assert.deepEqual(rows[0].context.at(-1), { role: "user", content: "Question c" });
    const none = await cli("list", "--state", "approved");
    assert.equal(none.stdout, "no steers match\n");
  });

  it("shows a steer whole", async () => {
    const r = await cli("show", `#${ids.b}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^steer #${ids.b} — pending, from discord, by discord:222`));
    assert.match(r.stdout, /context:\n {2}system: You are a helpful assistant\.\n {2}user: Question b\n/);
    assert.match(r.stdout, /chosen: {3}".*Water boils at 100 degrees\."/);
    const missing = await cli("show", "99999");
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, "steerbot: there is no steer #99999 (steerbot steers list --state all)\n");
  });

  it("approves by id while the bot runs: its own connection sees it at once", async () => {
    const r = await cli("approve", String(ids.a));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `approved 1 steer (#${ids.a})\n`);
    assert.equal((await app.store.steers.findByCorrection("telegram", "c-a"))!.trust_state, "approved");
    const again = await cli("approve", String(ids.a), "99999");
    assert.equal(again.code, 2);
    assert.equal(again.stdout, `approved 0 steers; #${ids.a} was already approved\n`);
    assert.equal(again.stderr, "steerbot: there is no steer #99999 (steerbot steers list --state all)\n");
  });

  it("approves and rejects every pending steer, narrowed by author", async () => {
    const r = await cli("approve", "--all-pending", "--author", "discord:222");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `approved 1 steer (#${ids.b})\n`);
    const rest = await cli("reject", "--all-pending");
    assert.equal(rest.stdout, `rejected 1 steer (#${ids.c})\n`);
    const states = Object.fromEntries((await store.steers.list()).map((s) => [s.id, s.trust_state]));
    assert.deepEqual(states, { [ids.a!]: "approved", [ids.b!]: "approved", [ids.c!]: "rejected" });
    const nothing = await cli("approve", "--all-pending");
    assert.equal(nothing.stdout, "no pending steers match\n");
  });

  it("answers bad input with one line and exit 2, changing nothing", async () => {
    for (const [args, message] of [
      [["approve"], "steerbot: name the steers: their ids (steerbot steers list), or --all-pending\n"],
      [["approve", "abc"], `steerbot: "abc" is not a steer id (a number, as steerbot steers list shows it)\n`],
      [["reject", "1", "--all-pending"], "steerbot: name steer ids or --all-pending, not both\n"],
      [["reject", "1", "--author", "x"], "steerbot: --author, --since and --before pick steers for --all-pending; with ids, give the ids only\n"],
    ] as const) {
      const r = await cli(...args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stderr, message);
    }
    const date = await cli("list", "--since", "yesterday");
    assert.equal(date.code, 2);
    assert.match(date.stderr, /^error: option '--since <date>' argument 'yesterday' is invalid\. not a date/);
    const states = (await store.steers.list()).map((s) => s.trust_state);
    assert.deepEqual(states, ["approved", "approved", "rejected"]);
  });
});

describe("steerbot steers on the embedded PGlite", () => {
  it("lists and approves when no bot holds the data directory", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "steerbot-steers-pglite-"));
    const store = await Store.open({ dataDir: dir });
    const row = await store.steers.insert({ context: JSON.stringify([{ role: "user", content: "Hi" }]), prefix: "Hel", rejected: "p", chosen: "lo", platform: "discord", author: "9", correction_message_id: "m1", trust_state: "pending" });
    await store.close();
    const env = { DATABASE_URL: "", STEERBOT_STORE__DATA_DIR: dir };
    const list = await runCli(["steers", "list", "--state", "pending"], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^#${row!.id}\\tpending\\tdiscord:9\\t`));
    const ok = await runCliInProcess(["steers", "approve", String(row!.id)], { env });
    assert.equal(ok.stdout, `approved 1 steer (#${row!.id})\n`);
    const reopened = await Store.open({ dataDir: dir });
    try {
      assert.equal((await reopened.steers.list())[0]!.trust_state, "approved");
    } finally {
      await reopened.close();
    }
  });
});
