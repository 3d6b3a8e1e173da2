/**
 * The studio under test: a real app (real core, real engine on the tiny fixture model, a real
 * database) behind the real web server, and one real Chromium per test file (playwright-core,
 * Debian's /usr/bin/chromium), a fresh context per test. A failing test leaves a screenshot of
 * its page in test-output/.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import type { AppConfig } from "../../../src/config/config.ts";
import { projectRoot } from "../../../src/engine/llama-source.ts";
import { startWebServer, type WebServer } from "../../../src/platforms/web/web-server.ts";
import { createTestApp, type TestApp } from "../../helpers/app.ts";

export const OUTPUT_DIR = path.join(projectRoot, "test-output");

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export interface Studio {
  app: TestApp;
  server: WebServer;
  url: string;
  close(): Promise<void>;
}

export async function startStudio(opts: { db?: "postgres" | "pglite"; config?: DeepPartial<AppConfig>; host?: string; token?: string } = {}): Promise<Studio> {
  const app = await createTestApp({ db: opts.db, config: opts.config });
  let server: WebServer;
  try {
    server = await startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host: opts.host ?? "127.0.0.1", port: 0, token: opts.token });
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
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await fn(page);
  } catch (e) {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    const file = path.join(OUTPUT_DIR, `${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

/** Opens the steering page and waits until its script has wired everything up. */
export async function openStudio(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
}

/** The reply element's phase, once it is one of `phases`. */
export async function waitForPhase(page: Page, ...phases: string[]): Promise<string> {
  // a locator, not waitForFunction: that evaluates its predicate with eval, which the studio's CSP forbids
  const reply = page.locator(`#reply:is(${phases.map((p) => `[data-phase="${p}"]`).join(",")})`);
  await reply.waitFor();
  return (await reply.getAttribute("data-phase"))!;
}

/** Where (viewport coordinates) to click to put the caret just before character `index` of the reply. */
export async function pointBefore(page: Page, index: number): Promise<{ x: number; y: number }> {
  return page.evaluate(`(() => {
    const i = ${index};
    const reply = document.getElementById("reply");
    const walker = document.createTreeWalker(reply, NodeFilter.SHOW_TEXT);
    let at = 0;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const len = n.textContent.length;
      if (i < at + len) {
        const r = document.createRange();
        r.setStart(n, i - at);
        r.setEnd(n, i - at + 1);
        const rect = [...r.getClientRects()].find((c) => c.width > 0) ?? r.getBoundingClientRect();
        return { x: rect.left + Math.min(1, rect.width / 4), y: rect.top + rect.height / 2 };
      }
      at += len;
    }
    throw new Error("the reply has no character " + i);
  })()`);
}

/** Runs browser code (text: the project's TypeScript has no DOM types) and answers its JSON result. */
export function inPage<T>(page: Page, code: string): Promise<T> {
  return page.evaluate(code) as Promise<T>;
}

/** The page's CSRF token, as its own script gets it. */
export const CSRF = `(await (await fetch("/api/session")).json()).csrfToken`;
