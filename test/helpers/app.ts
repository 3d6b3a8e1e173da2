/**
 * A real steerbot application for tests: real store (fresh Postgres database or in-memory
 * PGlite), the real engine on the tiny generated model, the real core.
 */
import { loadConfig, type AppConfig } from "../../src/config/config.ts";
import { createApp, type App } from "../../src/app.ts";
import { createLogger } from "../../src/log.ts";
import { Store } from "../../src/store/store.ts";
import { freshDatabase } from "./databases.ts";
import { tinyModelPath } from "./tiny-model.ts";

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export interface TestApp extends App {
  /** Stops the app and drops its database. */
  close(): Promise<void>;
}

export async function createTestApp(opts: { db?: "postgres" | "pglite"; config?: DeepPartial<AppConfig> } = {}): Promise<TestApp> {
  const model = await tinyModelPath();
  const overrides = {
    model: { path: model, threads: 1, context_size: 2048, gpu: false },
    generation: { max_tokens: 64, temperature: 0, system_prompt: "" },
    stream: { edit_interval_ms: 0 },
    // tests ask often; the ask limit has its own tests (test/core/limits.test.ts)
    ask: { per_user_per_minute: 10_000 },
    permissions: { default_trust: "approved" },
    // off on the tiny model: with its 151,936-token vocabulary the retention term's 32 soft rows
    // per steer cost more than the rest of a step (training-pipeline 99 s → 302 s). The term has
    // its own tests (test/training/trainer.test.ts); the real-model loop runs with the default.
    training: { retention: 0 },
  };
  const { config, secrets } = loadConfig({ env: {}, overrides: merge(overrides, (opts.config ?? {}) as Record<string, unknown>) });
  const tdb = await freshDatabase(opts.db ?? "pglite");
  const store = await Store.open(tdb.target);
  const app = await createApp({ config, secrets, log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"), store });
  return {
    ...app,
    async close() {
      await app.close();
      await store.close();
      await tdb.drop();
    },
  };
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && typeof out[k] === "object" ? merge(out[k] as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
