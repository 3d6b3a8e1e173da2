import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chunkEnd, StreamDisplay } from "../../src/core/stream-display.ts";
import { SurfaceGoneError } from "../../src/core/ports.ts";
import { RecordingSurface } from "../helpers/recording-surface.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("stream display", () => {
  it("edits at most once per interval and only when the text changed", async () => {
    const surface = new RecordingSurface(2000, 0, 0);
    const d = new StreamDisplay(surface, { intervalMs: 50 });
    let text = "";
    for (let i = 0; i < 40; i++) {
      text += `w${i} `;
      d.update(text);
      await sleep(5);
    }
    await d.finish(text);
    assert.equal(surface.visible, text);
    assert.ok(surface.edits <= 6, `${surface.edits} edits for ~200 ms of streaming at one per 50 ms`);
    const before = surface.edits;
    await d.finish(text);
    assert.equal(surface.edits, before, "no edit when nothing changed");
  });

  it("times every send and edit for onCall, and says which failed", async () => {
    const surface = new RecordingSurface(2000, 0, 20);
    let failNext = false;
    const edit = surface.edit.bind(surface);
    surface.edit = async (id, text) => {
      if (failNext) {
        failNext = false;
        throw new Error("the platform said no");
      }
      return edit(id, text);
    };
    const calls: [string, number, boolean][] = [];
    const d = new StreamDisplay(surface, { intervalMs: 0, onError: () => {}, onCall: (op, seconds, ok) => calls.push([op, seconds, ok]) });
    d.update("Hello");
    await d.finish("Hello");
    failNext = true;
    await d.finish("Hello there");
    assert.equal(surface.visible, "Hello there", "the failed edit is made again");
    assert.deepEqual(calls.map(([op, , ok]) => [op, ok]), [["send", true], ["edit", false], ["edit", true]]);
    for (const [op, seconds, ok] of calls) if (ok) assert.ok(seconds >= 0.015 && seconds < 5, `${op} took ${seconds} s at a 20 ms platform`);
  });

  it("splits before the message limit at a line or word break and shows everything", async () => {
    const surface = new RecordingSurface(100, 0, 0);
    const d = new StreamDisplay(surface, { intervalMs: 0 });
    const text = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ") + "\n" + "x".repeat(250);
    d.update(text);
    await d.finish(text);
    assert.equal(surface.visible, text);
    for (const id of surface.order) assert.ok(surface.messages.get(id)!.length <= 100);
    assert.ok(surface.order.length >= 5);
    assert.equal(chunkEnd("aaaa bb cc", 0, 7), 5, "breaks after a space in the second half");
    assert.equal(chunkEnd("ab😀cd", 0, 3), 2, "never splits a surrogate pair");
  });

  it("stops at the text confirmed shown and takes an edit in flight back to it", async () => {
    const surface = new RecordingSurface(2000, 0, 40); // each edit takes 40 ms
    const d = new StreamDisplay(surface, { intervalMs: 0 });
    d.update("Hello");
    await sleep(60); // "Hello" is shown
    assert.equal(surface.visible, "Hello");
    d.update("Hello world, this was never seen");
    await sleep(10); // the edit is in flight now
    const stopAt = await d.freeze();
    assert.equal(stopAt, 5, "the stop point is what was confirmed shown when the stop came");
    assert.equal(surface.visible, "Hello world, this was never seen", "the in-flight edit landed");
    await d.cutTo(stopAt);
    assert.equal(surface.visible, "Hello", "and was taken back");
    d.update("Hello again"); // updates after a stop change nothing
    await sleep(20);
    assert.equal(surface.visible, "Hello");
  });

  it("a stop while the reply's last edit is on the wire (the generation ended) takes that edit back too", async () => {
    const surface = new RecordingSurface(2000, 0, 40);
    const d = new StreamDisplay(surface, { intervalMs: 0 });
    await d.finish("Hello");
    const edit = surface.edit.bind(surface);
    let onWire!: () => void;
    const editSent = new Promise<void>((r) => (onWire = r));
    surface.edit = (id, text) => {
      onWire();
      return edit(id, text);
    };
    const ending = d.finish("Hello world, this was never seen"); // the model ended: the display shows all of it
    await editSent;
    const stopAt = await d.freeze(); // the stop came while that edit was in flight
    assert.equal(stopAt, 5, "the stop point is what was confirmed shown when the stop came");
    await d.cutTo(stopAt);
    await ending;
    assert.equal(surface.visible, "Hello", "the end's edit landed and was taken back");
  });

  it("once the surface is gone, no more rounds are scheduled (no retry loop, no timer left running)", async () => {
    let sends = 0;
    let failed!: () => void;
    const firstFailure = new Promise<void>((r) => (failed = r));
    const surface = {
      maxMessageLength: 2000,
      minEditIntervalMs: 0,
      async send(): Promise<string> {
        sends++;
        failed();
        throw new SurfaceGoneError("gone");
      },
      async edit(): Promise<void> {},
    };
    const d = new StreamDisplay(surface, { intervalMs: 0 });
    d.update("hello");
    await firstFailure;
    // A round takes a few timer turns: give the display twenty of them to (wrongly) try again.
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    assert.ok(d.goneError);
    assert.equal(sends, 1, "the gone surface was not called again");
  });
});
