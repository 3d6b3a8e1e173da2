/**
 * The studio's security in real Chromium against the real server: no token off loopback → no
 * start; with a token, a missing or wrong one is refused and the right one logs in; a state
 * change without the CSRF token is refused (and changes nothing); user text containing
 * `<script>` is shown as text, in the question, the reply and the timeline; a loopback studio
 * without a token answers only to loopback host names (DNS rebinding).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { startWebServer, WebConfigError } from "../../../src/platforms/web/web-server.ts";
import { CSRF, inPage, launchBrowser, openStudio, startStudio, waitForPhase, withPage, type Studio } from "./studio-harness.ts";

const TOKEN = "test-token-0123456789abcdef";
let local: Studio;
let browser: Browser;

before(async () => {
  [local, browser] = await Promise.all([startStudio({ config: { generation: { max_tokens: 12, temperature: 0, system_prompt: "" } } }), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await local?.close();
});

function rawGet(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("studio security", () => {
  it("refuses to start on a non-loopback host without STEERBOT_WEB_TOKEN", async () => {
    const { app } = local;
    await assert.rejects(
      startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host: "0.0.0.0", port: 0 }),
      (e: unknown) => e instanceof WebConfigError && /STEERBOT_WEB_TOKEN is not set/.test(e.message),
    );
  });

  it("off loopback, a missing or wrong token is refused; the right one logs in", async () => {
    const { app } = local;
    const server = await startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host: "0.0.0.0", port: 0, token: TOKEN });
    try {
      await withPage(browser, "token login", async (page) => {
        // no session: pages send to the login, the API answers 401
        await page.goto(server.url);
        assert.match(page.url(), /\/login\.html$/);
        const api = await inPage<number>(page, `(async () => (await fetch("/api/conversations")).status)()`);
        assert.equal(api, 401);
        const ask = await inPage<number>(
          page,
          `(async () => (await fetch("/api/ask", { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": ${CSRF} }, body: JSON.stringify({ conversation: "x", text: "hi" }) })).status)()`,
        );
        assert.equal(ask, 401, "a state change without a session is refused even with a CSRF token");

        await page.getByLabel("Token").fill("wrong-token");
        await page.getByRole("button", { name: "Log in" }).click();
        await page.getByRole("status").filter({ hasText: "wrong" }).waitFor();
        assert.match(page.url(), /\/login\.html$/);

        await page.getByLabel("Token").fill(TOKEN);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL(server.url);
        await page.waitForSelector("body[data-ready=true]");
        await page.getByLabel("Message", { exact: true }).fill("hello");
        await page.getByRole("button", { name: "Send", exact: true }).click();
        await waitForPhase(page, "done");
        assert.ok(((await page.getByLabel("Reply", { exact: true }).textContent()) ?? "").length > 0);
        const cookies = await page.context().cookies();
        const session = cookies.find((c) => c.name === "steerbot_studio");
        assert.ok(session?.httpOnly, "the session cookie is HTTP-only");
        assert.equal(session?.sameSite, "Strict");
      });
    } finally {
      await server.close();
    }
  });

  it("a state change without the CSRF token is refused and changes nothing", async () => {
    await withPage(browser, "csrf", async (page) => {
      await openStudio(page, local.url);
      const before = await local.app.store.db.selectFrom("generations").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      const statuses = await inPage<[number, number, number, string]>(
        page,
        `(async () => {
          const body = JSON.stringify({ conversation: "csrf", text: "do not ask" });
          const none = await fetch("/api/ask", { method: "POST", headers: { "content-type": "application/json" }, body });
          const wrong = await fetch("/api/ask", { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": "forged" }, body });
          const del = await fetch("/api/steers/1", { method: "DELETE" });
          return [none.status, wrong.status, del.status, (await none.json()).notice];
        })()`,
      );
      assert.deepEqual(statuses.slice(0, 3), [403, 403, 403]);
      assert.match(String(statuses[3]), /security token/);
      const afterCount = await local.app.store.db.selectFrom("generations").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      assert.equal(Number(afterCount.n), Number(before.n), "no generation was started");
    });
  });

  it("a question and a reply containing <script> are shown as text", async () => {
    await withPage(browser, "xss", async (page) => {
      await openStudio(page, local.url);
      const evil = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`;
      await page.getByLabel("Message", { exact: true }).fill(evil);
      await page.getByRole("button", { name: "Send", exact: true }).click();
      await waitForPhase(page, "done");
      await page.getByRole("list", { name: "Conversation", exact: true }).getByText(evil, { exact: true }).waitFor();
      // the correction puts the markup into the reply itself, and into the timeline
      const evilReply = `<script>window.__xss = 3</script><b onmouseover="window.__xss = 4">bold</b>`;
      await page.getByLabel("Correction", { exact: true }).fill(evilReply);
      await page.getByRole("button", { name: "Resume", exact: true }).click();
      await waitForPhase(page, "done", "stopped");
      const text = (await page.getByLabel("Reply", { exact: true }).textContent()) ?? "";
      assert.ok(text.includes(evilReply), `the reply shows the markup as text: ${JSON.stringify(text)}`);
      const injected = await inPage<{ xss?: number; elements: number }>(
        page,
        `({ xss: window.__xss, elements: document.querySelectorAll("#reply script, #reply b, #reply img, #transcript script, #transcript img, #timeline script, #timeline b").length })`,
      );
      assert.equal(injected.xss, undefined, "no injected script ran");
      assert.equal(injected.elements, 0, "no injected element exists");
      await page.getByRole("list", { name: "Timeline" }).getByText(evilReply, { exact: true }).waitFor();
    });
  });

  it("without a token, answers only to loopback host names (DNS rebinding)", async () => {
    assert.equal(await rawGet(local.url, "evil.example:80"), 421);
    assert.equal(await rawGet(local.url, new URL(local.url).host), 200);
  });
});
