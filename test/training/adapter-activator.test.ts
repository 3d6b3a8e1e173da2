/**
 * The activator follows the database: a change notice that arrives late — after a newer local
 * swap was queued, before that swap recorded itself — must not swap the process back to the
 * adapter the database no longer calls active. Real activator, real engine on the tiny model, PGlite.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileSha256 } from "../../src/engine/model-file.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

let app: TestApp;
before(async () => {
  app = await createTestApp({ db: "pglite" });
});
after(async () => {
  await app?.close();
});

test("a late change notice does not undo a newer swap: the process ends on what the database says", async () => {
  const base = await app.engine.fingerprint();
  const file = path.join(mkdtempSync(path.join(tmpdir(), "steerbot-activator-")), "a.gguf");
  writeRandomLora(await tinyModelPath(), file, 7);
  await app.store.training.addAdapter({ version: "a", filePath: file, sha256: await fileSha256(file), baseFingerprint: base, trainingRunId: null, state: "candidate", metrics: {} });
  await app.activator.swapTo("a", () => app.store.training.activate(base, "a"));
  assert.equal(app.activator.liveVersion, "a");

  // A rollback to the base model is queued; the notice of the earlier activation of "a" is
  // heard before the rollback has recorded itself (the database still says "a").
  const rollback = app.activator.swapTo(null, () => app.store.training.activate(base, null));
  const lateNotice = app.activator.sync();
  await Promise.all([rollback, lateNotice]);

  assert.equal((await app.store.training.activeAdapter(base))?.version, undefined);
  assert.equal(app.activator.liveVersion, null, "the process serves what the database calls active");
});
