/**
 * The steering page in real Chromium against the real studio (real core, fixture model,
 * PostgreSQL): stop at what the page displayed on a throttled connection, click-to-correct
 * (inside a multi-byte token too), chained steers, removing a steer, per-conversation settings
 * reaching the engine, history. Elements are found by their accessible names.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { CSRF, inPage, launchBrowser, openStudio, pointBefore, startStudio, waitForPhase, withPage, type Studio } from "./studio-harness.ts";

let studio: Studio;
let browser: Browser;

before(async () => {
  [studio, browser] = await Promise.all([
    startStudio({ db: "postgres", config: { model: { context_size: 4096 }, generation: { max_tokens: 2000, temperature: 0, system_prompt: "" }, steer: { per_user_per_minute: 1000 } } }),
    launchBrowser(),
  ]);
});
after(async () => {
  await browser?.close();
  await studio?.close();
});

const reply = (page: Page) => page.getByLabel("Reply", { exact: true });
const replyText = async (page: Page) => (await reply(page).textContent()) ?? "";

async function ask(page: Page, text: string, maxTokens?: number): Promise<void> {
  if (maxTokens !== undefined) await page.getByLabel("Max tokens").fill(String(maxTokens));
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

async function steersOf(generationId: number) {
  return studio.app.store.db.selectFrom("steers").selectAll().where("generation_id", "=", generationId).orderBy("ordinal").execute();
}

async function generationOf(page: Page): Promise<number> {
  const id = await reply(page).getAttribute("data-message-id");
  const snap = studio.app.core.replySnapshot("web", id!);
  assert.ok(snap, "the page's message belongs to a live reply");
  return snap.generationId;
}

describe("steering page", () => {
  it("Stop on a throttled connection cuts at what the page displayed, not at what the server sent", async () => {
    await withPage(browser, "stop throttled", async (page) => {
      await openStudio(page, studio.url);
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Network.enable");
      // ~1 event of the stream per 100 ms reaches the page: the server runs far ahead of it
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 40, downloadThroughput: 600, uploadThroughput: -1 });
      await ask(page, "Tell me a long story");
      await reply(page).filter({ hasText: /^[\s\S]{12}/ }).waitFor();
      await page.getByRole("button", { name: "Stop", exact: true }).click();
      assert.equal(await waitForPhase(page, "stopped", "done"), "stopped");
      const displayedAtStop = Number(await reply(page).getAttribute("data-displayed-at-stop"));
      const sent = Number(await reply(page).getAttribute("data-sent"));
      const shown = await replyText(page);
      assert.equal(shown.length, displayedAtStop, "the page keeps showing exactly what it displayed when it stopped");
      assert.ok(sent > displayedAtStop, `the server had sent more (${sent}) than the page displayed (${displayedAtStop}): the throttle must matter`);
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

      // the stored generation and the steer made on it hold exactly the displayed text
      const gen = await generationOf(page);
      const row = await studio.app.store.conversations.getGeneration(gen);
      assert.equal(row?.status, "stopped");
      assert.equal(row?.final_text, shown);
      await page.getByLabel("Correction", { exact: true }).fill("Once upon a time");
      await page.getByRole("button", { name: "Resume", exact: true }).click();
      await waitForPhase(page, "generating");
      await page.getByRole("button", { name: "Stop", exact: true }).click();
      await waitForPhase(page, "stopped", "done");
      const [steer] = await steersOf(gen);
      assert.ok(steer, "the correction was stored");
      assert.equal(steer.prefix + steer.rejected, shown, "prefix + rejected is what the page displayed");
      assert.equal(steer.shown_chars, displayedAtStop);
    });
  });

  it("click to correct: snaps to the token boundary at or before the click (inside a multi-byte token too), shows it at once; chained steers; Accept", async () => {
    await withPage(browser, "click to correct", async (page) => {
      await openStudio(page, studio.url);
      await ask(page, "Name three colours", 40);
      assert.equal(await waitForPhase(page, "done", "stopped"), "done");
      const text = await replyText(page);
      const snap = studio.app.core.replySnapshot("web", (await reply(page).getAttribute("data-message-id"))!)!;
      assert.equal(snap.text, text, "the Reply element holds exactly the reply's text");
      const bounds = [...snap.boundaries, text.length];
      const tokenAt = (k: number) => ({ start: bounds[k]!, end: bounds[k + 1]! });
      const tokens = bounds.slice(0, -1).map((_, k) => tokenAt(k));
      // a token of several characters, one with non-ASCII (multi-byte UTF-8) text, and a boundary
      const multiChar = tokens.find((t) => t.end - t.start >= 3 && /^[\x20-\x7e]+$/.test(text.slice(t.start, t.end)));
      const multiByte = tokens.find((t) => t.end - t.start >= 2 && /[^\x00-\x7f]/.test(text.slice(t.start, t.end)));
      assert.ok(multiChar && multiByte, `the fixture reply has a long ASCII token and a multi-byte token: ${JSON.stringify(text)}`);
      const boundary = tokens[Math.floor(tokens.length / 2)]!.start;

      const prefixShown = () => page.locator("#reply .prefix").textContent();
      const rejectedShown = () => page.locator("#reply s.rejected").textContent();
      for (const [click, expected] of [
        [multiChar.start + 2, multiChar.start],
        [boundary, boundary],
        [multiByte.start + 1, multiByte.start],
      ] as const) {
        const p = await pointBefore(page, click);
        await page.mouse.click(p.x, p.y);
        assert.equal(Number(await reply(page).getAttribute("data-divergence")), expected, `a click before character ${click} snaps to ${expected}`);
        assert.equal(await prefixShown(), text.slice(0, expected));
        assert.equal(await rejectedShown(), text.slice(expected));
        assert.equal(await replyText(page), text, "struck through, the text is unchanged");
      }

      // Resume stores the steer at the clicked (snapped) point: the multi-byte token's start
      const gen = await generationOf(page);
      await page.getByLabel("Correction", { exact: true }).fill("FIXED");
      await page.getByRole("button", { name: "Resume", exact: true }).click();
      await waitForPhase(page, "done", "stopped");
      const [first] = await steersOf(gen);
      assert.equal(first?.form, "click");
      assert.equal(first?.divergence_char, multiByte.start);
      assert.equal(first?.prefix, text.slice(0, multiByte.start));
      assert.equal(first?.rejected, text.slice(multiByte.start));
      assert.equal(first?.chosen, "FIXED");
      assert.equal(studio.app.engine.detokenize(first!.prefix_tokens!), first!.prefix, "prefix tokens are the model's own tokens of the prefix");
      const resumed = await replyText(page);
      assert.ok(resumed.startsWith(text.slice(0, multiByte.start) + "FIXED"), `resumed from prefix + correction: ${JSON.stringify(resumed)}`);

      // a second steer on the same reply, typed (s/old/new/) instead of clicked: chained onto the first
      await page.getByLabel("Correction", { exact: true }).fill("s/FIXED/MENDED/");
      await page.getByRole("button", { name: "Resume", exact: true }).click();
      await waitForPhase(page, "done", "stopped");
      const chained = await steersOf(gen);
      assert.equal(chained.length, 2);
      assert.equal(chained[1]!.ordinal, 1);
      assert.equal(chained[1]!.form, "substitute");
      assert.equal(chained[1]!.chosen, "MENDED");
      assert.equal(chained[1]!.prefix, text.slice(0, multiByte.start), "the second steer's prefix is the text before FIXED");
      assert.ok((await replyText(page)).startsWith(text.slice(0, multiByte.start) + "MENDED"));
      const timeline = page.getByRole("list", { name: "Timeline" }).getByRole("listitem");
      assert.equal(await timeline.count(), 2);
      assert.match((await timeline.nth(1).textContent())!, /#2 FIXED.* → MENDED/s);

      await page.getByRole("button", { name: "Accept", exact: true }).click();
      await page.getByRole("status").filter({ hasText: "Accepted." }).waitFor();
      const row = await studio.app.store.conversations.getGeneration(gen);
      assert.equal(row?.final_text, await replyText(page));
    });
  });

  it("a steer is removable by its author until it has trained", async () => {
    await withPage(browser, "remove steer", async (page) => {
      await openStudio(page, studio.url);
      await ask(page, "Say something", 30);
      await waitForPhase(page, "done");
      const gen = await generationOf(page);
      for (const fix of ["one", "two"]) {
        await page.getByLabel("Correction", { exact: true }).fill(fix);
        await page.getByRole("button", { name: "Resume", exact: true }).click();
        await waitForPhase(page, "done", "stopped");
      }
      const timeline = page.getByRole("list", { name: "Timeline" }).getByRole("listitem");
      assert.equal(await timeline.count(), 2);
      await page.getByRole("button", { name: "Remove steer 2" }).click();
      await page.getByRole("status").filter({ hasText: "removed" }).waitFor();
      assert.equal(await timeline.count(), 1);
      const left = await steersOf(gen);
      assert.deepEqual(left.map((s) => s.ordinal), [0], "the second steer is gone, the first stays");

      // after a training run succeeded, the remaining one has trained: refused, and kept
      const run = await studio.app.store.training.createRun({ trigger: "cli", objective: "sft", hyperparameters: {}, state: "succeeded" });
      assert.ok(run > 0);
      const out = await studio.app.core.removeSteer({ platform: "web", userId: "local", operator: true }, left[0]!.id);
      assert.equal(out.ok, false);
      assert.match(out.notice!, /already trained/);
      const status = await inPage<{ status: number; body: { notice: string } }>(
        page,
        `(async () => { const r = await fetch("/api/steers/${left[0]!.id}", { method: "DELETE", headers: { "x-csrf-token": ${CSRF} } }); return { status: r.status, body: await r.json() }; })()`,
      );
      assert.equal(status.status, 409);
      assert.match(status.body.notice, /already trained/);
      assert.equal((await steersOf(gen)).length, 1);
      // someone else's steer is refused too
      const other = await studio.app.core.removeSteer({ platform: "web", userId: "somebody-else" }, left[0]!.id);
      assert.match(other.notice!, /not yours/);
    });
  });

  it("per-conversation settings reach the engine (max tokens, system prompt); history reopens a conversation", async () => {
    await withPage(browser, "settings", async (page) => {
      await openStudio(page, studio.url);
      await page.getByRole("button", { name: "New conversation" }).click();
      await page.getByLabel("System prompt").fill("You are a pirate.");
      await page.getByLabel("Temperature").fill("0");
      await ask(page, "Ahoy there", 5);
      await waitForPhase(page, "done");
      const gen = await generationOf(page);
      const row = await studio.app.store.conversations.getGeneration(gen);
      assert.deepEqual((row!.timings as { generatedTokens?: number }).generatedTokens, 5, "max tokens 5 from the page: 5 tokens generated");
      assert.deepEqual(row!.context_messages[0], { role: "system", content: "You are a pirate." });
      const first = await replyText(page);

      await page.getByRole("button", { name: "New conversation" }).click();
      assert.equal(await replyText(page), "");
      const history = page.getByRole("list", { name: "Conversations" });
      await history.getByRole("button", { name: "Ahoy there" }).first().click();
      await page.getByRole("list", { name: "Conversation", exact: true }).getByText("Ahoy there").waitFor();
      assert.equal(await replyText(page), first, "the reopened conversation's open reply is back in Reply");
      assert.equal(await page.getByLabel("Max tokens").inputValue(), "5", "its settings too");
    });
  });
});
