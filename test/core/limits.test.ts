/**
 * Limits that keep one person from crowding out everyone else: asks per user per minute, a
 * bound on replies being written ("busy"), and a steer limit that checks and consumes in one
 * step. Real engine (tiny fixture model), real store; synchronized on the surfaces' sends.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Actor, ThreadRef } from "../../src/core/ports.ts";
import { createTestApp } from "../helpers/app.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

let threadNo = 0;
const newThread = (): ThreadRef => ({ platform: "test", chatId: "l", threadId: `t${++threadNo}` });
const user = (id: string): Actor => ({ platform: "test", userId: id });

/** A surface whose sends wait until `open()`: its reply stays "being written" until then. */
class GatedSurface extends RecordingSurface {
  open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  /** Settles when the reply first tried to show something. */
  readonly sending: Promise<void>;
  private sendCalled!: () => void;
  constructor() {
    super();
    this.sending = new Promise((resolve) => (this.sendCalled = resolve));
  }
  override async send(text: string): Promise<string> {
    this.sendCalled();
    await this.gate;
    return super.send(text);
  }
}

async function generationFor(app: Awaited<ReturnType<typeof createTestApp>>, source: string) {
  return app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).executeTakeFirst();
}

describe("limits", () => {
  it("limits asks per user per minute, and stores nothing for a refused one", { timeout: 60_000 }, async () => {
    const app = await createTestApp({ config: { ask: { per_user_per_minute: 2 } } });
    try {
      for (const id of ["a1", "a2"]) {
        const out = await app.core.ask({ thread: newThread(), actor: user("alice"), text: "Hi", sourceMessageId: id, surface: new RecordingSurface() });
        assert.equal(out.ok, true, out.notice);
      }
      const surface = new RecordingSurface();
      const refused = await app.core.ask({ thread: newThread(), actor: user("alice"), text: "Hi", sourceMessageId: "a3", surface });
      assert.equal(refused.ok, false);
      assert.match(refused.notice ?? "", /asking very fast: please wait \d+ s/);
      assert.equal(surface.order.length, 0);
      assert.equal(await generationFor(app, "a3"), undefined);
      const other = await app.core.ask({ thread: newThread(), actor: user("bob"), text: "Hi", sourceMessageId: "b1", surface: new RecordingSurface() });
      assert.equal(other.ok, true, "another person may still ask");
    } finally {
      await app.close();
    }
  });

  it("answers 'busy' when as many replies are being written as the engine runs plus generation.max_queued", { timeout: 60_000 }, async () => {
    const app = await createTestApp({ config: { generation: { max_queued: 1 } } });
    try {
      const capacity = (app.engine.sequences ?? 1) + 1;
      const held = Array.from({ length: capacity }, () => new GatedSurface());
      const asks = held.map((surface, i) => app.core.ask({ thread: newThread(), actor: user(`u${i}`), text: "Hello", sourceMessageId: `h${i}`, surface }));
      await Promise.all(held.map((s) => s.sending));
      const busy = await app.core.ask({ thread: newThread(), actor: user("late"), text: "Hello", sourceMessageId: "late", surface: new RecordingSurface() });
      assert.equal(busy.ok, false);
      assert.match(busy.notice ?? "", /busy/);
      assert.equal(await generationFor(app, "late"), undefined, "nothing stored for a refused question");
      for (const s of held) s.open();
      for (const out of await Promise.all(asks)) assert.equal(out.ok, true, out.notice);
      const again = await app.core.ask({ thread: newThread(), actor: user("late"), text: "Hello", sourceMessageId: "late-2", surface: new RecordingSurface() });
      assert.equal(again.ok, true, "once replies are written, questions are answered again");
    } finally {
      await app.close();
    }
  });

  it("checks and consumes a steer point in one step: of two corrections at once with one point left, one is stored", { timeout: 60_000 }, async () => {
    const app = await createTestApp({ config: { steer: { per_user_per_minute: 1 } } });
    try {
      const thread = newThread();
      const surface = new RecordingSurface();
      await app.core.ask({ thread, actor: user("alice"), text: "Hi", sourceMessageId: "s0", surface });
      // An unusable correction stores nothing and costs nothing.
      const bad = await app.core.correct({ thread, actor: user("alice"), replyToMessageId: surface.order[0], correction: { text: "   " }, messageId: "s-bad", surface: new RecordingSurface() });
      assert.match(bad.notice ?? "", /empty|write/i);
      const outs = await Promise.all(
        ["s1", "s2"].map((id) =>
          app.core.correct({ thread, actor: user("alice"), replyToMessageId: surface.order[0], correction: { text: `Good morning, ${id}.` }, messageId: id, surface: new RecordingSurface() }),
        ),
      );
      assert.equal(outs.filter((o) => o.ok).length, 1, JSON.stringify(outs));
      assert.match(outs.find((o) => !o.ok)?.notice ?? "", /steering very fast/);
      const stored = await app.store.db.selectFrom("steers").select("correction_message_id").where("correction_message_id", "in", ["s1", "s2"]).execute();
      assert.equal(stored.length, 1);
    } finally {
      await app.close();
    }
  });
});
