/**
 * How the Telegram bot talks to Telegram: API middleware, long polling, the webhook server.
 *
 * Owns: grammY's API transformers (log each failed attempt, retry 429/5xx/network failures with
 * @grammyjs/auto-retry, count what finally failed), long polling with @grammyjs/runner (after
 * deleting a webhook, which would make getUpdates answer 409 forever), and the webhook mode's
 * node http server (secret token required, loopback unless configured). Both ask Telegram for
 * exactly {@link ALLOWED_UPDATES}.
 */
import http from "node:http";
import { autoRetry } from "@grammyjs/auto-retry";
import { run, type RunnerHandle } from "@grammyjs/runner";
import { webhookCallback, type Bot } from "grammy";
import type { PlatformLog } from "../platform-log.ts";
import { noteRateLimited, type PlatformObserver } from "../platform-metrics.ts";
import { TELEGRAM } from "./telegram-core-port.ts";
import { noteAttempt } from "./chat-pacer.ts";
import type { TelegramConfig } from "./telegram-config.ts";
import type { TelegramMetrics } from "./telegram-deps.ts";

/**
 * Updates the bot asks for; reactions must be named explicitly or Telegram never sends them,
 * and `my_chat_member` tells it when it was added to a group or its rights changed.
 */
export const ALLOWED_UPDATES = ["message", "message_reaction", "callback_query", "stopped_message_generation", "my_chat_member"] as const;

export function installApiTransformers(bot: Bot, config: TelegramConfig, metrics: TelegramMetrics, log: PlatformLog, observer?: PlatformObserver): void {
  // Innermost: log failures of single attempts (429s show up here at debug level). grammY
  // transformers see Telegram's errors as `{ ok: false }` results and network errors as throws.
  bot.api.config.use(async (prev, method, payload, signal) => {
    let res: Awaited<ReturnType<typeof prev>>;
    try {
      res = await prev(method, payload, signal);
    } catch (err) {
      if (!signal?.aborted) log.warn({ method, err: String(err) }, method === "getUpdates" ? "telegram: fetching updates failed; retrying" : "telegram: API call failed");
      throw err;
    }
    noteAttempt(signal as AbortSignal | undefined, !res.ok && res.error_code === 429);
    if (!res.ok) {
      const what = { method, code: res.error_code, description: res.description };
      if (res.error_code === 429) {
        metrics.rateLimited++;
        noteRateLimited(observer, TELEGRAM, "absorbed");
        log.debug(what, "telegram: rate limited; retrying after retry_after");
      }
      else if (/message is not modified/.test(res.description)) log.debug(what, "telegram: edit changed nothing");
      else if (method === "getUpdates") log.warn(what, "telegram: fetching updates failed; retrying");
      else log.warn(what, "telegram: API call failed");
    }
    return res;
  });
  // Outermost: wait `retry_after` on 429 and retry network/5xx failures, so no text is lost.
  bot.api.config.use(autoRetry({ maxRetryAttempts: config.maxRetryAttempts, maxDelaySeconds: 120 }));
  // Outside the retries: what finally failed.
  bot.api.config.use(async (prev, method, payload, signal) => {
    const res = await prev(method, payload, signal);
    if (!res.ok && method !== "getUpdates" && !/message is not modified/.test(res.description)) {
      if (res.error_code === 429) {
        metrics.rateLimitSurfaced++;
        noteRateLimited(observer, TELEGRAM, "surfaced");
      }
      else metrics.apiFailures++;
    }
    return res;
  });
}

/** Starts long polling (after removing any webhook: pending updates stay queued for it). */
export async function startPolling(bot: Bot, config: TelegramConfig, log: PlatformLog): Promise<RunnerHandle> {
  await bot.api.deleteWebhook({ drop_pending_updates: false });
  const runner = run(bot, {
    runner: {
      fetch: { allowed_updates: [...ALLOWED_UPDATES], timeout: config.pollTimeoutSeconds },
      // Fetch errors are logged by our API transformer instead of console.error.
      silent: true,
    },
  });
  void runner.task()?.catch((err) => log.error({ err: String(err) }, "telegram: polling stopped on an unrecoverable error"));
  return runner;
}

/** Starts the webhook server and, when `webhook.url` is set, registers it with Telegram. */
export async function startWebhook(bot: Bot, config: TelegramConfig, log: PlatformLog): Promise<http.Server> {
  const w = config.webhook!;
  const path = w.path ?? "/telegram";
  const handle = webhookCallback(bot, "http", { secretToken: w.secretToken, onTimeout: "return", timeoutMilliseconds: 9_000 });
  const server = http.createServer((req, res) => {
    if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== path) {
      res.writeHead(404).end();
      return;
    }
    handle(req, res).catch((err: unknown) => {
      log.error({ err: String(err) }, "telegram: webhook update failed");
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  // Loopback unless configured: a TLS-terminating proxy in front is the usual setup.
  await new Promise<void>((resolve) => server.listen(w.port, w.host ?? "127.0.0.1", resolve));
  if (w.url) {
    await bot.api.setWebhook(w.url, { allowed_updates: [...ALLOWED_UPDATES], secret_token: w.secretToken });
  }
  const a = server.address();
  log.info({ port: a && typeof a === "object" ? a.port : undefined, path }, "telegram: webhook server listening");
  return server;
}
