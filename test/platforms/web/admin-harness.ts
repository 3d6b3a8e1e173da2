/**
 * The admin pages under test (following the studio's own harness): a real app (real core,
 * real engine on the tiny fixture model, a real database) behind the real studio server, a
 * real Chromium (playwright-core, Debian's /usr/bin/chromium), a fresh context per test, and a
 * screenshot of the page in test-output/ when a test fails. Also the store fixtures the pages
 * show: steers of several people and platforms, a finished run with its adapter, adapter files.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import type { AppConfig } from "../../../src/config/config.ts";
import type { SteeringCore } from "../../../src/core/steering-core.ts";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { startWebServer, type StudioCore, type WebServer } from "../../../src/platforms/web/web-server.ts";
import type { SteerRow } from "../../../src/store/database.ts";
import type { Store } from "../../../src/store/store.ts";
import { createTestApp, type TestApp } from "../../helpers/app.ts";

export const OUTPUT_DIR = path.join(projectRoot, "test-output");

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export interface AdminStudio {
  app: TestApp;
  server: WebServer;
  url: string;
  close(): Promise<void>;
}

/** The studio on a real app; `core` swaps what the server sees as the core (same app underneath). */
export async function startAdminStudio(opts: { config?: DeepPartial<AppConfig>; core?: (core: SteeringCore) => StudioCore } = {}): Promise<AdminStudio> {
  const app = await createTestApp({ db: "pglite", config: opts.config });
  let server: WebServer;
  try {
    const core = opts.core ? opts.core(app.core) : app.core;
    server = await startWebServer({ core, store: app.store, config: app.config, log: app.log, host: "127.0.0.1", port: 0 });
  } catch (e) {
    await app.close();
    throw e;
  }
  return {
    app,
    server,
    url: server.url,
    async close() {
      await server.close();
      await app.close();
    },
  };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}

/** Runs `fn` on a new page in a new context; on failure the page's screenshot goes to test-output/. */
export async function withPage(browser: Browser, name: string, fn: (page: Page) => Promise<void>): Promise<void> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  try {
    await fn(page);
  } catch (e) {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, `admin-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

/** Stores a steer as a bot would have (pending unless said otherwise). */
export async function botSteer(store: Store, s: { platform: string; author: string; prefix: string; rejected: string; chosen: string; question?: string; state?: SteerRow["trust_state"] }): Promise<SteerRow> {
  const row = await store.steers.insert({
    generation_id: null,
    context: JSON.stringify([{ role: "user", content: s.question ?? "Tell me a story." }]),
    prefix: s.prefix,
    rejected: s.rejected,
    chosen: s.chosen,
    prefix_tokens: null,
    rejected_tokens: null,
    chosen_tokens: null,
    divergence_char: s.prefix.length,
    divergence_token: null,
    shown_chars: null,
    shown_tokens: null,
    form: "plain",
    model_fingerprint: null,
    platform: s.platform,
    author: s.author,
    correction_message_id: `m-${Math.random().toString(36).slice(2)}`,
    trust_state: s.state ?? "pending",
  });
  if (!row) throw new Error("steer not stored");
  return row;
}
