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
});
