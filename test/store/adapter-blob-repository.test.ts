/**
 * Adapters in the database, on PostgreSQL and PGlite: chunked bytea in and out byte for byte,
 * the data directory as a cache (a machine that never saw the file fetches and verifies it),
 * and refusals that say what is wrong: no copy stored, bytes changed in the database.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { fileSha256 } from "../../src/engine/model-file.ts";
import { AdapterBlobMismatchError } from "../../src/store/adapter-blob-repository.ts";
import { Store } from "../../src/store/store.ts";
import { AdapterRefusedError } from "../../src/training/adapter-activator.ts";
import { AdapterCache } from "../../src/training/adapter-cache.ts";
import { freshDatabase, type TestDatabase } from "../helpers/databases.ts";

for (const kind of ["postgres", "pglite"] as const) {
  describe(`adapter blobs on ${kind}`, () => {
    let tdb: TestDatabase;
    let store: Store;
    const dir = mkdtempSync(path.join(tmpdir(), "steerbot-blobs-"));
    const file = path.join(dir, "trained.gguf");
    // 2.5 chunks of 1 MiB: a partial last chunk too
    const bytes = randomBytes((5 << 20) / 2 + 17);
    before(async () => {
      tdb = await freshDatabase(kind);
      store = await Store.open(tdb.target);
      writeFileSync(file, bytes);
    });
    after(async () => {
      await store?.close();
      await tdb?.drop();
    });

    it("stores a file in 1 MiB chunks and writes it back byte for byte", async () => {
      const info = await store.adapterBlobs.put("v1", file);
      assert.equal(info.chunks, 3);
      assert.equal(info.size, bytes.length);
      assert.equal(info.sha256, await fileSha256(file));
      const out = path.join(dir, "back.gguf");
      const got = await store.adapterBlobs.fetchTo("v1", out);
      assert.deepEqual(got, info);
      assert.ok(readFileSync(out).equals(bytes));
      assert.equal(await store.adapterBlobs.fetchTo("nope", path.join(dir, "nope.gguf")), undefined);
    });

    it("a machine without the file fetches it into its cache, verifies it, and reuses the cached copy", async () => {
      const sha256 = await fileSha256(file);
      const otherMachine = new AdapterCache(store, path.join(dir, "other-data", "adapters"));
      const row = { version: "v1", file_path: "/elsewhere/data/adapters/v1.gguf", sha256 };
      const local = await otherMachine.localFile(row);
      assert.equal(local, otherMachine.cachePath("v1"));
      assert.ok(readFileSync(local).equals(bytes));
      // the cached copy is used as long as it matches; a changed one is fetched again
      writeFileSync(local, "changed");
      assert.equal(await otherMachine.localFile(row), local);
      assert.ok(readFileSync(local).equals(bytes));
      // the trainer's own file is used where it exists
      assert.equal(await new AdapterCache(store, path.join(dir, "x")).localFile({ ...row, file_path: file }), file);
    });

    it("refuses an adapter with no stored copy, and bytes that changed in the database", async () => {
      const cache = new AdapterCache(store, path.join(dir, "third", "adapters"));
      await assert.rejects(cache.localFile({ version: "v-old", file_path: "/gone.gguf", sha256: "0".repeat(64) }), (e: Error) => e instanceof AdapterRefusedError && /database holds no copy/.test(e.message));
      await assert.rejects(cache.localFile({ version: "v1", file_path: "/gone.gguf", sha256: "f".repeat(64) }), (e: Error) => e instanceof AdapterRefusedError && /not the adapter that was recorded/.test(e.message));
      await sql`update adapter_chunks set data = ${Buffer.from("tampered")} where version = 'v1' and seq = 1`.execute(store.db);
      const out = path.join(dir, "tampered.gguf");
      await assert.rejects(store.adapterBlobs.fetchTo("v1", out), AdapterBlobMismatchError);
      assert.equal(existsSync(out), false);
      assert.equal(existsSync(`${out}.partial`), false);
    });
  });
}
