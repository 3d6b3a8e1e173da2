/**
 * One steerbot instance serving the Telegram bot in webhook mode, as a process of its own, for
 * the multi-instance tests: the real app (createApp, configured from the environment like
 * `steerbot start`) and the real TelegramBot wired to it as `steerbot start` wires it (the
 * database shared with the other instances: `storeInstances`), pointed at the test's fake Bot
 * API (TEST_TELEGRAM_API_ROOT) with fast test timings, its webhook server on a free loopback
 * port. The test is the load balancer: it posts each update to the instance it chooses.
 *
 * Out over IPC: { type: "ready", port, instance }, then { type: "handled", event } for every
 * update the bot announces. In: { id, cmd: "idle" | "close" } → { id, type: "result" }.
 */
import { createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log.ts";
import { TelegramBot } from "../../src/platforms/telegram/telegram-bot.ts";
import { telegramConfigFrom } from "../../src/platforms/telegram/telegram-config.ts";
import { storeInstances } from "../../src/platforms/telegram/telegram-instances.ts";

const { config, secrets } = loadConfig();
const log = createLogger(config.log.level);
const app = await createApp({ config, secrets, log });
const bot = new TelegramBot({
  token: secrets.telegramToken!,
  core: app.core,
  config: {
    ...telegramConfigFrom(app.config, secrets.telegramWebhookSecret),
    mode: "webhook",
    webhook: { port: 0, host: "127.0.0.1", path: "/tg", secretToken: secrets.telegramWebhookSecret },
    // the fake Bot API has no rate limits: edits every 100 ms, no chat pacing
    minEditIntervalMs: 100,
    chatMinIntervalMs: 0,
    groupChatMinIntervalMs: 0,
  },
  log,
  apiRoot: process.env.TEST_TELEGRAM_API_ROOT,
  fastPacing: true,
  instances: storeInstances(app.store),
});
const send = (m: unknown) => process.send?.(m);
bot.handled.on((event) => send({ type: "handled", event }));
await bot.start();
process.on("message", async (m: { id: number; cmd: string }) => {
  try {
    if (m.cmd === "idle") {
      await bot.idle();
      send({ id: m.id, type: "result", value: true });
    } else if (m.cmd === "close") {
      await bot.stop();
      await app.close();
      send({ id: m.id, type: "result", value: true });
      process.exit(0);
    }
  } catch (e) {
    send({ id: m.id, type: "result", error: (e as Error).message });
  }
});
send({ type: "ready", port: bot.webhookPort, instance: app.store.instanceId });
