/**
 * The data directory as a cache of the adapters stored in the database.
 *
 * Owns: finding a local file for an adapter row — the file the trainer wrote (on the machine
 * that trained it), else `<data dir>/adapters/<version>.gguf`, else a fresh copy fetched from
 * the database (adapter-blob-repository.ts) — and verifying it against the row's sha256 before
 * anyone loads it. Why: the adapter the database activates may have been trained on another
 * machine (a GPU worker); every instance must be able to serve it, and must never serve a file
 * that differs from what was evaluated.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileSha256 } from "../engine/model-file.ts";
import type { AdapterRow } from "../store/database.ts";
import type { Store } from "../store/store.ts";
import { AdapterRefusedError } from "./adapter-activator.ts";

export type AdapterRef = Pick<AdapterRow, "version" | "file_path" | "sha256">;

export class AdapterCache {
  /** Fetches under way, per version: two swaps asking at once share one download. */
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly store: Store,
    /** `<data dir>/adapters` of this machine. */
    readonly dir: string,
  ) {}

  /** Where this version is cached on this machine (whether or not it is there yet). */
  cachePath(version: string): string {
    return path.join(this.dir, `${version}.gguf`);
  }

  /** A local file with exactly the adapter's bytes (fetched from the database if needed); AdapterRefusedError if there is none. */
  localFile(row: AdapterRef): Promise<string> {
    const running = this.pending.get(row.version);
    if (running) return running;
    const p = this.resolve(row).finally(() => this.pending.delete(row.version));
    this.pending.set(row.version, p);
    return p;
  }

  /** Fetches the adapter from the database into the cache even when a local copy exists (`steerbot adapters pull`). */
  async pull(row: AdapterRef): Promise<{ file: string; size: number }> {
    return this.fetch(row);
  }

  private async resolve(row: AdapterRef): Promise<string> {
    let changed: string | undefined;
    for (const file of [row.file_path, this.cachePath(row.version)]) {
      if (!file || !existsSync(file)) continue;
      if ((await fileSha256(file).catch(() => "")) === row.sha256) return file;
      changed ??= file;
    }
    return (await this.fetch(row, changed)).file;
  }

  private async fetch(row: AdapterRef, changed?: string): Promise<{ file: string; size: number }> {
    mkdirSync(this.dir, { recursive: true });
    const dest = this.cachePath(row.version);
    let info;
    try {
      info = await this.store.adapterBlobs.fetchTo(row.version, `${dest}.fetched`);
    } catch (e) {
      throw new AdapterRefusedError(`adapter ${row.version}: could not fetch it from the database (${(e as Error).message})`);
    }
    if (!info && changed) throw new AdapterRefusedError(`adapter ${row.version}: checksum mismatch (${changed} changed or was truncated since training) and the database holds no copy to fetch again`);
    if (!info) {
      throw new AdapterRefusedError(
        `adapter ${row.version}: ${row.file_path} is not on this machine and the database holds no copy (adapters trained before they were stored in the database exist only where they were trained)`,
      );
    }
    if (info.sha256 !== row.sha256) {
      rmSync(`${dest}.fetched`, { force: true });
      throw new AdapterRefusedError(`adapter ${row.version}: the copy in the database (sha256 ${info.sha256.slice(0, 12)}…) is not the adapter that was recorded (${row.sha256.slice(0, 12)}…)`);
    }
    renameSync(`${dest}.fetched`, dest);
    return { file: dest, size: info.size };
  }
}
