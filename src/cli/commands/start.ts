/**
 * `steerbot start` (what `npm start` runs) and `steerbot chat`.
 *
 * Owns: deciding what runs. With DISCORD_TOKEN and/or TELEGRAM_TOKEN set, the bots connect,
 * and the studio runs next to them as their admin console when `web.enabled`; with neither,
 * the studio (the steering page, `steerbot web`) starts and prints its URL, so a fresh machine
 * has something to steer. The terminal playground is `steerbot chat`. SIGINT/SIGTERM stop the
 * bots and the studio and let replies in flight end.
 *
 * The demo model: when nobody chose a model and the default one cannot be downloaded (an
 * offline machine), the studio (or the playground) still opens — on the tiny fixture model, announced by a
 * banner — because a first `npm start` that ends in an error teaches nothing. Only there: a
 * model someone configured is never replaced, and the bots never serve random weights.
 */
import type { Command } from "commander";
import { createApp } from "../../app.ts";
import { tinyFixtureModel } from "../../engine/fixture/cached-fixture-model.ts";
import { isRemoteModel, ModelUnavailableError } from "../../engine/model-file.ts";
import { TerminalPlayground } from "../../platforms/terminal/terminal-playground.ts";
import type { WebServer } from "../../platforms/web/web-server.ts";
import { action, appContext, CliError, EXIT, type AppContext } from "../app-context.ts";
import { checkMetricsListener, serveMetrics } from "../metrics-listener.ts";
import { checkStudioHost, serveStudio } from "./web.ts";

function demoBanner(defaultModel: string, why: string, demoPath: string): string {
  const rule = "=".repeat(78);
  return [
    rule,
    "DEMO MODEL: random weights. Its replies are nonsense, but stopping, correcting",
    "and resuming work exactly as with a real model.",
    `The default model ${defaultModel} could not be downloaded:`,
    `  ${why}`,
    "For real replies, point model.path at a GGUF file:",
    "  STEERBOT_MODEL__PATH=/path/to/model.gguf npm start",
    "(or model.path in config/local.yaml), or start once with network access.",
    `Demo model: ${demoPath}`,
    rule,
    "",
  ].join("\n");
}

/** Creates the app; with `demoFallback`, the shipped default model that cannot be had becomes the demo model. */
export async function loadApp(ctx: AppContext, schedule: boolean, demoFallback = false) {
  try {
    return await createApp({ ...ctx, schedule });
  } catch (e) {
    if (e instanceof ModelUnavailableError && demoFallback && ctx.modelPathIsDefault && isRemoteModel(ctx.config.model.path)) {
      const demo = await tinyFixtureModel("qwen2", 1, (file) => process.stdout.write(`writing the demo model to ${file} (once)\n`));
      const why = e.cause instanceof Error ? e.cause.message : e.message;
      process.stdout.write(demoBanner(ctx.config.model.path, why, demo));
      return createApp({ ...ctx, config: { ...ctx.config, model: { ...ctx.config.model, path: demo } }, schedule });
    }
    if (e instanceof ModelUnavailableError) {
      throw new CliError(
        `${e.message}\nNo model, no replies. Offline? Make a fixture model (random weights: it talks nonsense, but the whole flow works):\n` +
          `  npx steerbot fixture-model --out models/fixture.gguf\n  STEERBOT_MODEL__PATH=models/fixture.gguf npm start`,
        EXIT.failure,
      );
    }
    throw e;
  }
}

async function playground(ctx: AppContext): Promise<void> {
  const app = await loadApp(ctx, false, true);
  process.stdout.write(`steerbot playground — model ${app.engine.modelPath}, data in ${app.store.location}\n`);
  try {
    await new TerminalPlayground(app.core).run();
  } finally {
    await app.close();
  }
}

/** Resolves at SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

/** `npm start` without bot tokens: the studio on the configured host and port, until a signal. */
async function studioOnly(ctx: AppContext): Promise<void> {
  checkStudioHost(ctx, ctx.config.web.host);
  checkMetricsListener(ctx);
  const app = await loadApp(ctx, false, true);
  process.stdout.write(`steerbot — model ${app.engine.modelPath}, data in ${app.store.location} (the terminal playground: steerbot chat)\n`);
  let server: WebServer | undefined;
  let metrics: { close(): Promise<void> } | undefined;
  try {
    server = await serveStudio(app, ctx.config.web.host, ctx.config.web.port);
    metrics = await serveMetrics(app.metrics, app);
    await untilSignal();
  } finally {
    await metrics?.close().catch(() => {});
    await server?.close().catch(() => {});
    await app.close();
  }
}

export function register(program: Command): void {
  program
    .command("start")
    .description("run the bots whose tokens are set (DISCORD_TOKEN, TELEGRAM_TOKEN) and the studio; only the studio when none is")
    .action(
      action(async () => {
        const ctx = appContext();
        if (!ctx.secrets.discordToken && !ctx.secrets.telegramToken) return studioOnly(ctx);
        if (ctx.config.web.enabled) checkStudioHost(ctx, ctx.config.web.host);
        checkMetricsListener(ctx);
        const app = await loadApp(ctx, true);
        const bots: { stop(): Promise<void> }[] = [];
        if (ctx.secrets.discordToken) {
          const { DiscordBot } = await import("../../platforms/discord/discord-bot.ts"); // SDKs load only when used
          const bot = new DiscordBot({ token: ctx.secrets.discordToken, core: app.core, config: app.config, log: app.log, observer: app.metrics });
          await bot.start();
          const { ids, count } = bot.metrics.shards;
          if (ids.length < count && app.store.kind === "pglite") {
            app.log.warn({ shards: ids, shardCount: count }, "discord: the other shards run in other instances, which cannot share this embedded database: give every instance the same DATABASE_URL");
          }
          bots.push(bot);
        }
        if (ctx.secrets.telegramToken) {
          const { TelegramBot } = await import("../../platforms/telegram/telegram-bot.ts");
          const { telegramConfigFrom } = await import("../../platforms/telegram/telegram-config.ts");
          const { storeInstances } = await import("../../platforms/telegram/telegram-instances.ts");
          const bot = new TelegramBot({
            token: ctx.secrets.telegramToken,
            core: app.core,
            config: telegramConfigFrom(app.config, ctx.secrets.telegramWebhookSecret),
            log: app.log,
            observer: app.metrics,
            // several instances on one database share the bot: updates claimed once, stops routed to the reply's instance
            instances: storeInstances(app.store),
          });
          await bot.start();
          bots.push(bot);
        }
        const studio = app.config.web.enabled ? await serveStudio(app, app.config.web.host, app.config.web.port) : undefined;
        const metrics = await serveMetrics(app.metrics, app);
        app.log.info({ bots: bots.length, model: app.engine.modelPath, store: app.store.location }, "steerbot is running");
        await untilSignal();
        app.log.info("stopping");
        await studio?.close().catch((err) => app.log.error({ err }, "the studio did not stop cleanly"));
        await metrics?.close().catch(() => {});
        await Promise.all(bots.map((b) => b.stop().catch((err) => app.log.error({ err }, "bot did not stop cleanly"))));
        await app.close();
      }),
    );

  program
    .command("chat")
    .description("the terminal playground: stream a reply, press any key to stop it, type a correction, it resumes")
    .action(action(() => playground(appContext())));
}
