/**
 * The hot-swap's wait for replies in flight is bounded: a reply stuck on its platform (an edit
 * that auto-retry keeps backing off during an outage) must not hold the swap, or the training
 * run waiting on it, forever. The swap is done after `drainTimeoutMs`; the previous engine is
 * freed when the stuck reply ends. Real core, real engine on the tiny model, PGlite.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { ReplySurface } from "../../src/core/ports.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";

let app: TestApp;
before(async () => {
  app = await createTestApp({ db: "pglite", config: { generation: { max_tokens: 200 } } });
});
after(async () => {
  await app?.close();
});

test("a swap does not wait forever for a reply whose platform is stuck", async () => {
  let release!: () => void;
  const stuck = new Promise<void>((r) => (release = r));
  let editCalled!: () => void;
  const editing = new Promise<void>((r) => (editCalled = r));
  const surface: ReplySurface = {
    maxMessageLength: 4096,
    minEditIntervalMs: 10,
    send: async () => "m1",
    edit: async () => {
      editCalled();
      await stuck; // auto-retry waiting out an outage
    },
  };
  const actor = { platform: "test", userId: "u1" };
  const thread = { platform: "test", chatId: "c1", threadId: "c1" };
  const asked = app.core.ask({ thread, actor, text: "tell me a long story", sourceMessageId: "q1", surface });
  await editing;
  // The stop waits for the edit on the wire: the reply's queue is blocked until the platform answers.
  const stopped = app.core.stop({ platform: "test", messageId: "m1", actor });
  app.activator.drainTimeoutMs = 300;
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const swapped = await Promise.race([
    app.activator.swapTo(null).then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000))),
  ]);
  clearTimeout(timer);
  assert.ok(swapped, "the swap finished although a reply was stuck");
  assert.ok(performance.now() - t0 < 5000);
  assert.equal(app.activator.draining, 1, "the previous engine waits for its last reply");
  release();
  await stopped;
  await asked;
  await new Promise<void>((resolve) => {
    const check = () => (app.activator.draining === 0 ? resolve() : setTimeout(check, 20));
    check();
  });
});
