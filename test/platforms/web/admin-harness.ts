/**
 * The admin pages under test: the studio's own harness (studio-harness.ts: a real app behind
 * the real server, one real Chromium, a screenshot in test-output/ when a test fails), plus a
 * second server on the same app with other permissions, and steers stored as a bot would.
 */
import type { TestApp } from "../../helpers/app.ts";
import { startWebServer, type StudioCore, type WebServer } from "../../../src/platforms/web/web-server.ts";
import type { SteerRow } from "../../../src/store/database.ts";
import type { Store } from "../../../src/store/store.ts";

export { launchBrowser, startStudio, withPage, type Studio } from "./studio-harness.ts";

/** A second studio server on the same app, whose server sees `core` (e.g. other permissions). */
export function startStudioServer(app: TestApp, core: StudioCore): Promise<WebServer> {
  return startWebServer({ core, store: app.store, config: app.config, log: app.log, host: "127.0.0.1", port: 0 });
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
