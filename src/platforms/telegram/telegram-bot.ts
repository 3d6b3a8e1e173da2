/**
 * The Telegram front end of steerbot: one grammY bot and its lifetime.
 *
 * Owns: building the adapter's parts and wiring them together — transport (polling or the
 * webhook server, API retries: telegram-transport.ts), update routing (telegram-update-routing.ts),
 * questions and corrections (telegram-conversation.ts), stops and accepts (telegram-stops.ts),
 * group checks (telegram-group-checks.ts), admin commands (telegram-admin-commands.ts), and with
 * `instances` the sharing of one bot by several instances (telegram-instance-routing.ts) — and
 * start, stop and `idle()`. Handlers never wait for a generation: `core.ask`/`core.correct` run
 * in the background (tracked here), so a stop is handled while the reply is still streaming.
 * Each update, once its handlers have returned, is announced on `handled` (see
 * ../handled-events.ts); `idle()` waits for the background work.
 */
import type http from "node:http";
import type { RunnerHandle } from "@grammyjs/runner";
import { Bot } from "grammy";
import { STOP_LATENCY_WINDOW } from "../bounded-samples.ts";
import { HandledEvents } from "../handled-events.ts";
import type { PlatformLog } from "../platform-log.ts";
import type { PlatformObserver } from "../platform-metrics.ts";
import { ChatPacer } from "./chat-pacer.ts";
import { TELEGRAM_COMMANDS } from "./telegram-admin-commands.ts";
import { TelegramActors } from "./telegram-actors.ts";
import { resolveTelegramConfig, TELEGRAM_PACING_FLOORS, type TelegramConfig } from "./telegram-config.ts";
import { TelegramConversation } from "./telegram-conversation.ts";
import type { TelegramCore } from "./telegram-core-port.ts";
import type { TelegramDeps, TelegramMetrics } from "./telegram-deps.ts";
import { DraftRegistry } from "./telegram-draft-surface.ts";
import { GroupChecks } from "./telegram-group-checks.ts";
import { TelegramInstanceRouting } from "./telegram-instance-routing.ts";
import type { TelegramInstances } from "./telegram-instances.ts";
import { TelegramNotices } from "./telegram-notices.ts";
import { PartOffsets } from "./telegram-part-offsets.ts";
import { PendingSends } from "./telegram-pending-sends.ts";
import { TelegramStops } from "./telegram-stops.ts";
import { installApiTransformers, startPolling, startWebhook } from "./telegram-transport.ts";
import { installUpdateRouting } from "./telegram-update-routing.ts";

export { ALLOWED_UPDATES } from "./telegram-transport.ts";
export type { TelegramMetrics } from "./telegram-deps.ts";

export interface TelegramBotOptions {
  token: string;
  core: TelegramCore;
  config?: Partial<TelegramConfig>;
  log: PlatformLog;
  /** Bot API root (tests point this at the fake server). */
  apiRoot?: string;
  /** How many stop latencies `metrics.stopLatencyMs` keeps (newest; default 1000). */
  stopLatencyWindow?: number;
  /** How many drafts (and draft → message links) the bot remembers (oldest forgotten; default 10 000). */
  maxDrafts?: number;
  /** Pacing below Telegram's floors (tests against a fake Bot API only; see resolveTelegramConfig). */
  fastPacing?: boolean;
  /** The app's metrics (src/observability): told of the same stops, 429s and handler errors as `metrics`. */
  observer?: PlatformObserver;
  /**
   * The database the app shares with other instances (`storeInstances(app.store)`): each update
   * is claimed there once for all of them, and one about a reply another instance streams is
   * handed to it. Unset: duplicates are dropped in memory only, and every reply is this bot's.
   */
  instances?: TelegramInstances;
}

export class TelegramBot {
  readonly bot: Bot;
  readonly metrics: TelegramMetrics = { stopLatencyMs: [], stopsHandled: 0, rateLimited: 0, rateLimitSurfaced: 0, apiFailures: 0, handlerErrors: 0 };
  readonly config: TelegramConfig;
  /**
   * One announcement per update once its handlers have returned (also a duplicate dropped, or a
   * handler that threw): "the bot has processed the stranger's 👎". The generations a question
   * starts run on in the background; `idle()` waits for those.
   */
  readonly handled = new HandledEvents();
  private readonly log: PlatformLog;
  private readonly deps: TelegramDeps;
  private readonly inflight = new Set<Promise<unknown>>();
  private runner: RunnerHandle | undefined;
  private server: http.Server | undefined;
  private readonly routing: TelegramInstanceRouting | undefined;

  constructor(opts: TelegramBotOptions) {
    this.config = resolveTelegramConfig(opts.config, { fastPacing: opts.fastPacing });
    this.log = opts.log;
    this.bot = new Bot(opts.token, opts.apiRoot ? { client: { apiRoot: opts.apiRoot } } : {});
    installApiTransformers(this.bot, this.config, this.metrics, this.log, opts.observer);
    const pacer = new ChatPacer(this.config.chatMinIntervalMs, this.config.groupChatMinIntervalMs, TELEGRAM_PACING_FLOORS.globalPerSecond);
    const notices = new TelegramNotices(this.bot.api, pacer, this.log);
    this.deps = {
      bot: this.bot,
      core: opts.core,
      config: this.config,
      log: this.log,
      metrics: this.metrics,
      observer: opts.observer,
      stopLatencyWindow: opts.stopLatencyWindow ?? STOP_LATENCY_WINDOW,
      pacer,
      actors: new TelegramActors(this.bot.api, this.log),
      drafts: new DraftRegistry(opts.maxDrafts),
      parts: new PartOffsets(),
      pending: new PendingSends(),
      groups: new GroupChecks({
        api: this.bot.api,
        botId: () => this.bot.botInfo.id,
        stopReactions: this.config.stopReactions,
        log: this.log,
        notify: (chatId, text, threadId) => notices.send(chatId, text, undefined, threadId),
      }),
      notices,
      track: (t) => this.track(t),
    };
    const stops = new TelegramStops(this.deps);
    this.routing = opts.instances ? new TelegramInstanceRouting(this.deps, opts.instances) : undefined;
    installUpdateRouting(this.deps, this.handled, stops, new TelegramConversation(this.deps, stops), this.routing);
  }

  /** Connects (getMe), publishes the command menu, and starts polling or the webhook server. */
  async start(): Promise<void> {
    await this.bot.init();
    this.log.info({ username: this.bot.botInfo.username, mode: this.config.mode }, "telegram: bot connected");
    await this.bot.api.setMyCommands(TELEGRAM_COMMANDS).catch((err) => this.log.warn({ err: String(err) }, "telegram: setMyCommands failed"));
    // Configured groups learn at once whether a stop reaction can reach the bot there.
    for (const chatId of this.config.checkChats) if (chatId < 0) this.track(this.deps.groups.verdict(chatId));
    // Hear the other instances before the first update arrives.
    await this.routing?.start();
    if (this.config.mode === "webhook") {
      this.server = await startWebhook(this.bot, this.config, this.log);
      return;
    }
    this.runner = await startPolling(this.bot, this.config, this.log);
  }

  /**
   * Stops receiving updates, then waits (up to `graceMs`) for replies still streaming, so their
   * last edits land. The core is not stopped here: the app owns it.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.runner?.isRunning()) await this.runner.stop();
    this.runner = undefined;
    if (this.server) {
      const s = this.server;
      this.server = undefined;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    await this.routing?.stop();
  }

  /** Resolves when no reply started by this bot is streaming and no handler task is pending. */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  /** Port of the webhook server (webhook mode), e.g. when configured as 0. */
  get webhookPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  private track(task: Promise<unknown>): void {
    const t = task.catch((err) => this.log.error({ err: String(err) }, "telegram: background task failed"));
    this.inflight.add(t);
    void t.finally(() => this.inflight.delete(t));
  }
}
