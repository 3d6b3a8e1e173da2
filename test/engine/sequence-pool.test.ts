/**
 * The sequence pool's queue is bounded: past `maxWaiting` waiters a request is refused at once
 * with EngineBusyError instead of waiting behind everyone. Real llama context on the tiny model.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LlamaContext } from "node-llama-cpp";
import { EngineBusyError } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import { SequencePool } from "../../src/engine/sequence-pool.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

describe("sequence pool", () => {
  let engine: Engine;
  let context: LlamaContext;
  before(async () => {
    engine = await Engine.load({ model: await tinyModelPath("qwen2"), gpu: false, threads: 1, contextSize: 256, sequences: 1 });
    context = await engine.model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
  });
  after(async () => {
    await context?.dispose();
    await engine?.dispose();
  });

  it("Engine.load({ maxWaiting }) bounds the engine's own pool (generation.max_waiting), also after an adapter swap", { timeout: 60_000 }, async () => {
    const small = await Engine.load({ model: await tinyModelPath("qwen2"), gpu: false, threads: 1, contextSize: 256, sequences: 1, maxWaiting: 1 });
    try {
      assert.equal(engine.maxWaiting, 64, "the default");
      const swapped = await small.withAdapter();
      for (const e of [small, swapped]) {
        assert.equal(e.maxWaiting, 1);
        const messages = [{ role: "user" as const, content: "hello" }];
        const running = e.generate({ messages, maxTokens: 8, temperature: 0 }); // takes the only sequence
        const waiting = e.generate({ messages, maxTokens: 8, temperature: 0 }); // the one waiter allowed
        await assert.rejects(e.generate({ messages, maxTokens: 8, temperature: 0 }), (err: unknown) => err instanceof EngineBusyError);
        await Promise.all([running, waiting]);
      }
      await swapped.dispose();
    } finally {
      await small.dispose();
    }
  });

  it("refuses a request past maxWaiting at once, and takes new waiters again once there is room", { timeout: 20_000 }, async () => {
    const pool = new SequencePool(context, 1, 1);
    const first = await pool.acquire([]);
    const second = pool.acquire([]); // waits: the only sequence is busy
    await assert.rejects(pool.acquire([]), (e: unknown) => e instanceof EngineBusyError && e.waiting === 1, "a second waiter is refused, not queued");
    assert.equal(pool.waiting, 1, "the refused request left no waiter behind");

    // An aborted waiter frees its place in the queue.
    const abort = new AbortController();
    pool.release(first);
    const got = await second; // the waiter got the sequence
    const third = pool.acquire([], abort.signal);
    assert.equal(pool.waiting, 1);
    abort.abort(new Error("stopped"));
    await assert.rejects(third, /stopped/);
    assert.equal(pool.waiting, 0);
    const fourth = pool.acquire([]);
    assert.equal(pool.waiting, 1, "room again");
    pool.release(got);
    pool.release(await fourth);
    pool.close();
  });
});
