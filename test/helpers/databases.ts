/**
 * Real databases for tests: an in-memory PGlite, and a fresh PostgreSQL database on the
 * server at 127.0.0.1:5432 (TEST_DATABASE_URL to point elsewhere), created per call and dropped
 * by `drop()`.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { DatabaseTarget } from "../../src/store/open-database.ts";

export const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  kind: "postgres" | "pglite";
  target: DatabaseTarget;
  drop(): Promise<void>;
}

export async function freshPostgres(): Promise<TestDatabase> {
  const name = `steerbot_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    kind: "postgres",
    target: { databaseUrl: url.toString(), dataDir: "memory://" },
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
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
