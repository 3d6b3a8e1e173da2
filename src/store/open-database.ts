/**
 * Opening the database: embedded PGlite by default, a PostgreSQL server through `pg` when
 * DATABASE_URL is set, and the migrations from `migrations/` applied on both.
 *
 * Owns: dialect choice, connection lifetime (an embedded data directory is locked for this
 * process: data-dir-lock.ts) and migration. Why PGlite by default: a fresh
 * machine runs `npm start` with no server to install, and the very same SQL and migrations run
 * on it as on Postgres, so nothing is tested twice in two dialects.
 */
import { promises as fs, mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PGliteDialect, PostgresDialect } from "kysely";
import { FileMigrationProvider, Migrator, type MigrationResultSet } from "kysely/migration";
import pRetry from "p-retry";
import pg from "pg";
import { projectRoot } from "../engine/llama-source.ts";
import { DataDirLockedError, lockDataDir } from "./data-dir-lock.ts";
import type { Database } from "./database.ts";

export interface DatabaseTarget {
  /** postgres://… ; when absent, PGlite under dataDir. */
  databaseUrl?: string;
  /** Directory of the embedded database (PGlite). `memory://` keeps it in memory. */
  dataDir: string;
}

export interface ListenEvents {
  /** The subscription's connection dropped (a server restart, a failover, an admin); reconnecting. */
  onDisconnected?: (err: Error | undefined) => void;
  /**
   * Subscribed again after a drop. Notifications sent meanwhile are lost, so whoever listens
   * must re-read what they announce (the app re-syncs its adapter).
   */
  onResubscribed?: () => void;
}

/**
 * Subscribes to NOTIFY on a channel and stays subscribed (reconnecting with backoff) until
 * the returned unsubscribe function is called.
 */
export type Listen = (channel: string, onPayload: (payload: string) => void, events?: ListenEvents) => Promise<() => Promise<void>>;

/**
 * Takes a session-level advisory lock if it is free; resolves to its release function, or
 * undefined when another session (another process, another request) holds it. `onLost` is
 * called if the lock is lost while held: its connection died, so the server freed it and
 * another process may take it now.
 */
export type TryLock = (key: number, onLost?: (err: Error) => void) => Promise<(() => Promise<void>) | undefined>;

/**
 * TCP keep-alive on the long-lived connections (LISTEN, locks): a server that vanished
 * without closing them (a failover, a cut network) is noticed within about a minute instead of
 * the operating system's two hours.
 */
const KEEP_ALIVE = { keepAlive: true, keepAliveInitialDelayMillis: 10_000 } as const;

export interface OpenedDatabase {
  db: Kysely<Database>;
  listen: Listen;
  tryLock: TryLock;
  kind: "postgres" | "pglite";
  /** Where the data lives, safe to print (no password). */
  location: string;
  /** Frees what the database held beyond its connections (PGlite: the data directory's lock); after `db.destroy()`. */
  release?: () => Promise<void>;
}

export class StoreError extends Error {
  override readonly name = "StoreError";
}

// int8 (count(*), sums) as JS numbers: our counts never approach 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openDatabase(target: DatabaseTarget): Promise<OpenedDatabase> {
  if (target.databaseUrl) {
    const pool = new pg.Pool({ connectionString: target.databaseUrl, max: 10 });
    // An idle pooled connection that the server closes (a restart, a failover, an admin) is
    // reported here; without a listener Node would crash the bot. The pool drops that client
    // and connects afresh at the next query, which reports its own error if the server is gone.
    pool.on("error", () => {});
    try {
      const c = await pool.connect();
      c.release();
    } catch (e) {
      await pool.end().catch(() => {});
      const u = new URL(target.databaseUrl);
      throw new StoreError(
        `cannot connect to PostgreSQL at ${u.hostname}:${u.port || 5432}/${u.pathname.slice(1)}: ${(e as Error).message}. ` +
          `Check that the server runs and DATABASE_URL is right, or unset DATABASE_URL to use the embedded database.`,
      );
    }
    const u = new URL(target.databaseUrl);
    const url = target.databaseUrl;
    // LISTEN needs a connection of its own that stays open (a pooled one would be handed back);
    // when it drops, a new one subscribes again, retrying with backoff until the server is back.
    const listen: Listen = async (channel, onPayload, events = {}) => {
      const stop = new AbortController();
      let client: pg.Client | undefined;
      const subscribe = async () => {
        const c = new pg.Client({ connectionString: url, ...KEEP_ALIVE });
        let lastError: Error | undefined;
        c.on("error", (err) => (lastError = err)); // reported by 'end' below; never crash
        c.on("notification", (n) => n.channel === channel && onPayload(n.payload ?? ""));
        try {
          await c.connect();
          await c.query(`listen "${channel.replace(/"/g, "")}"`);
        } catch (e) {
          await c.end().catch(() => {});
          throw e;
        }
        c.once("end", () => {
          if (stop.signal.aborted) return;
          events.onDisconnected?.(lastError);
          pRetry(subscribe, { retries: Infinity, minTimeout: 200, maxTimeout: 30_000, randomize: true, signal: stop.signal, unref: true })
            .then(() => events.onResubscribed?.())
            .catch(() => {}); // only an abort (unsubscribed) ends the retries
        });
        client = c;
      };
      await subscribe();
      return async () => {
        stop.abort();
        await client?.end().catch(() => {});
      };
    };
    // A session lock must be released on the session that took it: a connection of its own
    // held for as long as the lock is, never one of the pool's. That connection dying frees
    // the lock on the server, which the holder must hear about (onLost).
    const tryLock: TryLock = async (key, onLost) => {
      const client = new pg.Client({ connectionString: url, ...KEEP_ALIVE });
      let lastError: Error | undefined;
      client.on("error", (err) => (lastError = err));
      await client.connect();
      const got = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [key]);
      if (!got.rows[0]?.ok) {
        await client.end().catch(() => {});
        return undefined;
      }
      let released = false;
      client.once("end", () => {
        if (!released) onLost?.(new StoreError(`lost the database lock ${key}: its connection closed${lastError ? ` (${lastError.message})` : ""}`));
      });
      return async () => {
        released = true;
        await client.query("select pg_advisory_unlock($1)", [key]).catch(() => {});
        await client.end().catch(() => {});
      };
    };
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), listen, tryLock, kind: "postgres", location: `postgres://${u.host}${u.pathname}` };
  }
  const dir = target.dataDir === "memory://" ? undefined : path.resolve(target.dataDir, "pglite");
  let unlock = async () => {};
  if (dir) {
    mkdirSync(dir, { recursive: true });
    try {
      unlock = await lockDataDir(dir, (err) => {
        // Another process may be writing the directory now: stopping is what protects it.
        process.stderr.write(`steerbot: lost the lock on the embedded database in ${dir} (${err.message}); stopping so that two processes never write it\n`);
        process.exit(1);
      });
    } catch (e) {
      throw new StoreError(e instanceof DataDirLockedError ? e.message : `cannot lock the embedded database in ${dir}: ${(e as Error).message}`);
    }
  }
  let pglite: PGlite;
  try {
    pglite = dir ? await PGlite.create(dir) : await PGlite.create();
  } catch (e) {
    await unlock();
    throw new StoreError(`cannot open the embedded database in ${dir}: ${(e as Error).message}`);
  }
  const listen: Listen = async (channel, onPayload) => {
    const unsubscribe = await pglite.listen(channel, onPayload);
    return async () => unsubscribe();
  };
  // PGlite is one session in one process: advisory locks there are re-entrant for every
  // request of this process, so the in-process set decides, and the database lock documents it.
  const held = new Set<number>();
  const tryLock: TryLock = async (key) => {
    if (held.has(key)) return undefined;
    held.add(key);
    await pglite.query("select pg_advisory_lock($1)", [key]);
    return async () => {
      held.delete(key);
      await pglite.query("select pg_advisory_unlock($1)", [key]).catch(() => {});
    };
  };
  return { db: new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) }), listen, tryLock, kind: "pglite", location: dir ?? "memory", release: unlock };
}

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: path.join(projectRoot, "migrations") }),
  });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === "Error")?.migrationName ?? "(unknown)";
    throw new StoreError(`migration ${failed} failed: ${(result.error as Error).message ?? String(result.error)}`);
  }
  return result;
}
