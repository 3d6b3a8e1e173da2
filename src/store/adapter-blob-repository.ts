/**
 * Adapters stored in the database: the bytes of each adapter GGUF as chunked `bytea`.
 *
 * Owns: the SQL on `adapter_files` and `adapter_chunks`. Why in PostgreSQL: it is the only state
 * every instance shares, so an adapter trained on a GPU machine is fetched by a bot on another
 * machine from the same database that activated it, verified against the stored sha256; no file
 * server or shared disk. Chunks of 1 MiB keep each row small (one chunk in memory at a time, on
 * the way in and out) while a 20 MB adapter is twenty rows.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, renameSync, rmSync } from "node:fs";
import { once } from "node:events";
import type { Kysely } from "kysely";
import type { Database } from "./database.ts";

export const ADAPTER_CHUNK_BYTES = 1 << 20;

export interface AdapterBlobInfo {
  version: string;
  sha256: string;
  size: number;
  chunks: number;
}

export class AdapterBlobMismatchError extends Error {
  override readonly name = "AdapterBlobMismatchError";
}

export class AdapterBlobRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores the file as `version` (replacing what was stored under that version), in one
   * transaction: a reader sees the whole adapter or none of it. Returns the sha256 and size it stored.
   */
  async put(version: string, file: string, chunkBytes = ADAPTER_CHUNK_BYTES): Promise<AdapterBlobInfo> {
    return this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("adapter_files").where("version", "=", version).execute();
      await tx.insertInto("adapter_files").values({ version, sha256: "", size: 0, chunk_size: chunkBytes, chunks: 0 }).execute();
      const hash = createHash("sha256");
      let seq = 0;
      let size = 0;
      for await (const chunk of createReadStream(file, { highWaterMark: chunkBytes })) {
        const data = chunk as Buffer;
        hash.update(data);
        size += data.length;
        await tx.insertInto("adapter_chunks").values({ version, seq: seq++, data }).execute();
      }
      const info = { version, sha256: hash.digest("hex"), size, chunks: seq };
      await tx.updateTable("adapter_files").set({ sha256: info.sha256, size, chunks: seq }).where("version", "=", version).execute();
      return info;
    });
  }

  async info(version: string): Promise<AdapterBlobInfo | undefined> {
    const r = await this.db.selectFrom("adapter_files").select(["version", "sha256", "size", "chunks"]).where("version", "=", version).executeTakeFirst();
    return r ? { version: r.version, sha256: r.sha256, size: Number(r.size), chunks: r.chunks } : undefined;
  }

  /**
   * Writes the stored adapter to `dest` (through `dest.partial`, renamed only once the sha256
   * and size match what was stored, so a reader never sees a half file). Undefined when no
   * adapter is stored under `version`; AdapterBlobMismatchError when the bytes do not match
   * their stored checksum (nothing is left at `dest`).
   */
  async fetchTo(version: string, dest: string): Promise<AdapterBlobInfo | undefined> {
    const info = await this.info(version);
    if (!info) return undefined;
    const partial = `${dest}.partial`;
    const out = createWriteStream(partial);
    const hash = createHash("sha256");
    let size = 0;
    try {
      for (let seq = 0; seq < info.chunks; seq++) {
        const row = await this.db.selectFrom("adapter_chunks").select("data").where("version", "=", version).where("seq", "=", seq).executeTakeFirst();
        if (!row) throw new AdapterBlobMismatchError(`adapter ${version}: chunk ${seq} of ${info.chunks} is missing in the database`);
        const data = Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength);
        hash.update(data);
        size += data.length;
        if (!out.write(data)) await once(out, "drain");
      }
      out.end();
      await once(out, "finish");
      const sha = hash.digest("hex");
      if (sha !== info.sha256 || size !== info.size) throw new AdapterBlobMismatchError(`adapter ${version}: checksum mismatch in the database copy (sha256 ${sha.slice(0, 12)}…, ${size} bytes; stored ${info.sha256.slice(0, 12)}…, ${info.size} bytes)`);
      renameSync(partial, dest);
      return info;
    } catch (e) {
      out.destroy();
      rmSync(partial, { force: true });
      throw e;
    }
  }
}
