/**
 * Test helper: the tiny fixture model, generated once per vocab and seed into the cache
 * (`cacheDir("models")`: `$STEERBOT_CACHE_DIR/models`, else `~/.cache/steerbot/models`).
 *
 * Tests across the project (engine, trainer, bots) need a real GGUF that node-llama-cpp loads
 * in milliseconds. Generation is deterministic, so the cached file is reused across runs and
 * processes; the writer renames a finished temp file into place, so concurrent test processes
 * never see a half-written model.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { cacheDir } from "../../src/engine/llama-source.ts";
import { writeFixtureModel } from "../../src/engine/fixture/fixture-model.ts";

/** Bump when the fixture writer's output changes, so stale cached files are not reused. */
const FIXTURE_FORMAT = 1;

const pending = new Map<string, Promise<string>>();

/** Path of the tiny F32 fixture model for `vocab` (`qwen2`, `llama-spm`, `phi-3`), generating it if missing. */
export async function tinyModelPath(vocab = "qwen2", seed = 1): Promise<string> {
  const file = path.join(cacheDir("models"), `tiny-${vocab}-s${seed}-f32-v${FIXTURE_FORMAT}.gguf`);
  if (existsSync(file)) return file;
  let p = pending.get(file);
  if (!p) {
    p = writeFixtureModel({ out: file, vocab, shape: "tiny", seed, type: "f32" }).then(() => file);
    pending.set(file, p);
    p.catch(() => pending.delete(file));
  }
  return p;
}
