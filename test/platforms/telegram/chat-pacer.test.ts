/**
 * ChatPacer: per-chat spacing, chats independent, and dropping a stopped message's queued edits.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatPacer, EditSkippedError, noteAttempt } from "../../../src/platforms/telegram/chat-pacer.ts";

/** A promise the test awaits until the pacer has started a call (`mark()` is its first act). */
function started(): { mark: () => void; inFlight: Promise<void> } {
  let mark!: () => void;
  const inFlight = new Promise<void>((r) => (mark = r));
  return { mark, inFlight };
}

test("calls in one chat are spaced by its gap; other chats and groups use their own", async () => {
  const p = new ChatPacer(100, 250);
  const at: Record<string, number[]> = { a: [], b: [], g: [] };
  const t0 = Date.now();
  const mark = (k: string) => async () => void at[k]!.push(Date.now() - t0);
  await Promise.all([p.run(1, mark("a")), p.run(1, mark("a")), p.run(1, mark("a")), p.run(2, mark("b")), p.run(-5, mark("g")), p.run(-5, mark("g"))]);
  assert.ok(at.a![1]! - at.a![0]! >= 95 && at.a![2]! - at.a![1]! >= 95, `private spacing ${at.a}`);
  assert.ok(at.b![0]! < 50, "another chat is not held up");
  assert.ok(at.g![1]! - at.g![0]! >= 245, `group spacing ${at.g}`);
});

test("cancel drops only the queued calls of one message; the one in flight finishes", async () => {
  const p = new ChatPacer(50);
  const done: string[] = [];
  const call = (name: string, ms = 0, onStart?: () => void) => async () => {
    onStart?.();
    await new Promise((r) => setTimeout(r, ms)); // the request's own duration
    done.push(name);
    return name;
  };
  const s1 = started();
  const first = p.run(7, call("m1-edit1", 30, s1.mark), "m1");
  const other = p.run(7, call("m2-edit"), "m2");
  const queued = p.run(7, call("m1-edit2"), "m1");
  await s1.inFlight;
  assert.equal(p.cancel(7, "m1"), 2, "the queued one dropped, the one in flight marked");
  await assert.rejects(queued, EditSkippedError);
  assert.equal(await first, "m1-edit1");
  assert.equal(await other, "m2-edit");
  assert.deepEqual(done, ["m1-edit1", "m2-edit"]);
});

test("cancel aborts the call in flight only while it waits out a 429", async () => {
  const p = new ChatPacer(0);
  // A call that was answered 429 and now waits retry_after (as auto-retry does, on the signal).
  const w = started();
  const waiting = p.run(
    9,
    (signal) =>
      new Promise((_resolve, reject) => {
        noteAttempt(signal, true);
        w.mark();
        signal.addEventListener("abort", () => reject(new Error("Request aborted while waiting between retries")));
      }),
    "m1",
  );
  await w.inFlight;
  assert.equal(p.cancel(9, "m1"), 1);
  await assert.rejects(waiting, EditSkippedError);

  // A call whose request is out (no 429 seen) is left alone: the user may see its text.
  let release!: () => void;
  const s2 = started();
  const sending = p.run(9, (signal) => {
    noteAttempt(signal, false);
    s2.mark();
    return new Promise<string>((resolve) => (release = () => resolve("shown")));
  }, "m1");
  await s2.inFlight;
  p.cancel(9, "m1");
  release();
  assert.equal(await sending, "shown");

  // ...but if Telegram then answers it 429, it is dropped instead of retried.
  let answer429!: () => void;
  const s3 = started();
  const later = p.run(9, (signal) =>
    new Promise((_resolve, reject) => {
      signal.addEventListener("abort", () => reject(new Error("aborted")));
      answer429 = () => noteAttempt(signal, true);
      s3.mark();
    }), "m1");
  await s3.inFlight;
  p.cancel(9, "m1");
  answer429(); // Telegram answers the cancelled request 429 only now
  await assert.rejects(later, EditSkippedError);
});

test("hold refuses a message's new calls until released; other messages go on", async () => {
  const p = new ChatPacer(0);
  const release = p.hold(3, "m1");
  await assert.rejects(p.run(3, async () => "x", "m1"), EditSkippedError);
  assert.equal(await p.run(3, async () => "other", "m2"), "other");
  release();
  assert.equal(await p.run(3, async () => "again", "m1"), "again");
});
