/**
 * Real databases for tests: an in-memory PGlite, and a fresh PostgreSQL database on the server
 * named by TEST_DATABASE_URL — the embedded server `npm test` starts (`test/run.ts`), or one of
 * your own — created per call and dropped by `drop()`.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { DatabaseTarget } from "../../src/store/open-database.ts";

/** The server's maintenance database, as a superuser (creates and drops the test databases). */
export function adminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url)
    throw new Error(
      "TEST_DATABASE_URL is not set: run tests through `npm test` (it starts a PostgreSQL server of its own), " +
        "e.g. `npm test -- test/store/store.test.ts`, or set TEST_DATABASE_URL=postgres://user:pw@host:port/postgres",
    );
  return url;
}

export interface TestDatabase {
  kind: "postgres" | "pglite";
  target: DatabaseTarget;
  drop(): Promise<void>;
}

export async function freshPostgres(): Promise<TestDatabase> {
  const name = `steerbot_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    kind: "postgres",
    target: { databaseUrl: url.toString(), dataDir: "memory://" },
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

export function freshPglite(): TestDatabase {
  return { kind: "pglite", target: { dataDir: "memory://" }, async drop() {} };
}

export async function freshDatabase(kind: "postgres" | "pglite"): Promise<TestDatabase> {
  return kind === "postgres" ? freshPostgres() : freshPglite();
}
