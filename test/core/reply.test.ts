/**
 * The reply's own state machine, views and queue (src/core/reply.ts): the core can only move a
 * reply through legal steps, and changes queued on one reply run one after the other.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReplyStateError } from "../../src/core/errors.ts";
import { MAX_VIEWS, Reply } from "../../src/core/reply.ts";
import type { TextGenerator } from "../../src/core/text-generator.ts";

const engine = {} as TextGenerator; // never called by the state machine
const newReply = () => new Reply(1, { platform: "test", chatId: "c", threadId: "t" }, 1, { platform: "test", userId: "alice" }, [], engine);
const tok = (id: number, text: string) => ({ id, text, offset: 0 });

describe("reply state machine", () => {
  it("owns its state: only legal steps, and nobody sets it from outside", () => {
    const r = newReply();
    assert.equal(r.state, "generating");
    assert.throws(() => ((r as unknown as { state: string }).state = "done"), TypeError, "state has no setter");
    assert.throws(() => r.markAccepted(), ReplyStateError, "a reply being written cannot be accepted");
    const first = r.stream;
    const signal = r.signal;
    r.append([tok(1, "Hello"), tok(2, " world")]);
    r.markStopped();
    assert.equal(r.state, "stopped");
    assert.equal(signal.aborted, true, "a stop aborts the running generation");
    assert.throws(() => r.markStopped(), ReplyStateError);
    assert.equal(r.markEnded(first, "done"), false, "the stream a stop ended cannot end the reply again");

    r.currentView.messageIds.add("m1");
    const { stream } = r.resume({ text: r.text, tokens: r.tokens }, 1, [tok(3, " there")]);
    assert.equal(r.state, "generating");
    assert.notEqual(stream, first);
    assert.equal(r.signal.aborted, false, "a new stream, a new abort");
    assert.equal(r.text, "Hello there");
    assert.equal(r.resumedFrom, "Hello there".length);
    assert.equal(r.seen(r.viewOf("m1")!).text, "Hello world", "the old message keeps what it showed");
    assert.equal(r.markEnded(first, "done"), false);
    assert.equal(r.markEnded(stream, "done"), true);
    r.markAccepted();
    assert.equal(r.state, "accepted");
    assert.throws(() => r.resume({ text: r.text, tokens: r.tokens }, 1, [tok(4, "!")]), ReplyStateError, "accepted is final");
  });

  it("keeps a bounded number of views, dropping the oldest messages", () => {
    const r = newReply();
    r.append([tok(1, "Hi")]);
    const dropped: string[] = [];
    for (let i = 0; i < MAX_VIEWS + 3; i++) {
      r.currentView.messageIds.add(`m${i}`);
      r.markStopped();
      dropped.push(...r.resume({ text: r.text, tokens: r.tokens }, 1, [tok(2, "!")]).dropped);
    }
    assert.equal(r.views.length, MAX_VIEWS);
    assert.deepEqual(dropped, ["m0", "m1", "m2", "m3"]);
    assert.equal(r.viewOf("m0"), undefined);
    assert.ok(r.viewOf(`m${MAX_VIEWS + 2}`));
  });

  it("runs queued changes one at a time, in order, and a failed one does not block the next", async () => {
    const r = newReply();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const one = r.run(async () => {
      log.push("one starts");
      await gate;
      log.push("one ends");
    });
    const two = r.run(() => {
      log.push("two");
      throw new Error("boom");
    });
    const three = r.run(() => log.push("three"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ["one starts"], "nothing runs while the first change is in progress");
    release();
    await one;
    await assert.rejects(two, /boom/);
    await three;
    assert.deepEqual(log, ["one starts", "one ends", "two", "three"]);
  });
});
