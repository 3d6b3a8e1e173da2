/**
 * The embedded database belongs to one process: an exclusive lock on its data directory.
 *
 * Owns: taking and releasing that lock, and the one-line refusal a second process gets (the
 * directory, the holder's pid, host and start, and what to do). PGlite takes no lock of its own,
 * and two processes writing one data directory corrupt it.
 *
 * Why proper-lockfile (pinned): it makes the lock with mkdir, which is atomic on every local and
 * network file system, and keeps it fresh by touching its mtime, so a lock whose holder died is
 * recognised as stale by any machine or container sharing the volume — where a pid check alone
 * would see "no such process" in another pid namespace and let a second writer in. It frees the
 * lock at exit, signals included. What it does not record — who holds the lock — we write
 * beside it, for the message; and when that holder is a dead process on this host (SIGKILL, a
 * crash) we wait for the lock to go stale instead of refusing.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import lockfile from "proper-lockfile";

/** A lock not refreshed for this long is stale (its holder is gone). It is refreshed every STALE_MS / 2. */
const STALE_MS = 15_000;

interface Holder {
  pid: number;
  host: string;
  since: string;
  command: string;
}

export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, someone else's
  }
}

function readHolder(file: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Holder;
  } catch {
    return undefined;
  }
}

/**
 * Takes the exclusive lock on `dir` (which must exist); resolves to its release. Throws
 * {@link DataDirLockedError} when another live process holds it.
 */
export async function lockDataDir(dir: string, onLost: (err: Error) => void): Promise<() => Promise<void>> {
  const lockfilePath = `${dir}.lock`;
  const holderFile = `${dir}.lock.holder`;
  const options = { lockfilePath, stale: STALE_MS, realpath: false, onCompromised: onLost };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, options);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ELOCKED") throw e;
    const holder = readHolder(holderFile);
    if (!holder || holder.host !== os.hostname() || alive(holder.pid)) {
      const who = holder ? `pid ${holder.pid} on ${holder.host} (${holder.command}, since ${holder.since})` : "another process";
      throw new DataDirLockedError(
        `the embedded database in ${dir} is in use by ${who}; PGlite is one process's alone. ` +
          `Stop that process first (with a bot running there, use its admin commands), or share a PostgreSQL server between processes with DATABASE_URL`,
      );
    }
    // its holder died without releasing it: it is stale within STALE_MS
    release = await lockfile.lock(dir, { ...options, retries: { retries: Math.ceil((2 * STALE_MS) / 500), factor: 1, minTimeout: 500, maxTimeout: 500 } });
  }
  const me: Holder = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: process.argv.slice(1).map((a) => a.split("/").at(-1)).join(" ") };
  writeFileSync(holderFile, JSON.stringify(me));
  let released = false;
  return async () => {
    if (released) return; // once: by now the directory may be another process's
    released = true;
    rmSync(holderFile, { force: true });
    await release().catch(() => {});
  };
}
