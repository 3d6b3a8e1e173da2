import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { sql } from "kysely";
import { Store } from "../../src/store/store.ts";
import { adminUrl, freshPostgres, type TestDatabase } from "../helpers/databases.ts";

describe("openDatabase on PostgreSQL", () => {
  let tdb: TestDatabase;
  let store: Store;
  before(async () => {
    tdb = await freshPostgres();
    store = await Store.open(tdb.target);
  });
  after(async () => {
    await store?.close();
    await tdb?.drop();
  });

  it("survives the server closing its idle connections (a restart, an admin) and queries again", async () => {
    // a few idle connections in the pool
    await Promise.all([1, 2, 3].map(() => sql`select pg_sleep(0.05)`.execute(store.db)));
    const name = new URL(String(tdb.target.databaseUrl)).pathname.slice(1);
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    const killed = await admin.query<{ n: number }>(
      "select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
      [name],
    );
    await admin.end();
    assert.ok(killed.rows[0]!.n >= 1, "no connection was closed");
    // let the pool hear of it: without an error listener on the pool this is an uncaught exception
    await new Promise((r) => setTimeout(r, 200));
    const r = await sql<{ one: number }>`select 1 as one`.execute(store.db);
    assert.equal(r.rows[0]!.one, 1);
  });

  /** Terminates this database's backends whose query matches (a server restart or an admin, to them). */
  async function terminate(where: string): Promise<number> {
    const name = new URL(String(tdb.target.databaseUrl)).pathname.slice(1);
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      const r = await admin.query<{ n: number }>(
        `select count(pg_terminate_backend(a.pid))::int as n from pg_stat_activity a where a.datname = $1 and a.pid <> pg_backend_pid() and ${where}`,
        [name],
      );
      return r.rows[0]!.n;
    } finally {
      await admin.end();
    }
  }

  it("keeps listening after the server closes the LISTEN connection, and says when it is back", async () => {
    const heard: string[] = [];
    let arrived!: () => void;
    let resubscribed!: () => void;
    const back = new Promise<void>((r) => (resubscribed = r));
    let disconnected = 0;
    const unlisten = await store.listen("steerbot_test_channel", (p) => (heard.push(p), arrived?.()), {
      onDisconnected: () => disconnected++,
      onResubscribed: () => resubscribed(),
    });
    try {
      assert.equal(await terminate("a.query ilike 'listen %'"), 1);
      await back;
      assert.equal(disconnected, 1);
      const got = new Promise<void>((r) => (arrived = r));
      await sql`select pg_notify('steerbot_test_channel', 'after the drop')`.execute(store.db);
      await got;
      assert.deepEqual(heard, ["after the drop"]);
    } finally {
      await unlisten();
    }
  });

  it("tells the holder of the training lock that it lost it when its connection dies, and frees it", async () => {
    let lostWith: unknown;
    let running!: () => void;
    const started = new Promise<void>((r) => (running = r));
    const outcome = store.training.withRunLock(
      (lost) =>
        new Promise<string>((resolve) => {
          running();
          lost.addEventListener("abort", () => ((lostWith = lost.reason), resolve("stopped")), { once: true });
        }),
    );
    await started;
    const other = await Store.open(tdb.target);
    try {
      assert.deepEqual(await other.training.withRunLock(async () => "second"), { ran: false }, "two runs at once");
      assert.equal(await terminate("exists (select 1 from pg_locks l where l.pid = a.pid and l.locktype = 'advisory')"), 1);
      assert.deepEqual(await outcome, { ran: true, value: "stopped" });
      assert.match(String((lostWith as Error).message), /^lost the database lock \d+: its connection closed/);
      assert.deepEqual(await other.training.withRunLock(async () => "second"), { ran: true, value: "second" });
    } finally {
      await other.close();
    }
  });
});
