/**
 * One steerbot instance with its Discord bot, as its own process, for the sharding tests: the
 * real app (createApp, configured from the environment like `steerbot start`, so
 * STEERBOT_DISCORD__SHARDS and STEERBOT_DISCORD__SHARD_COUNT choose its shards) and the
 * DiscordBot built as `steerbot start` builds it (`config: app.config`), pointed at the fake
 * Discord the test runs (FAKE_DISCORD_API; DISCORD_TOKEN is the fake's token).
 *
 * IPC out: { type: "ready", instance, shards }, then { type: "handled", event } for each gateway
 * event the bot has finished with. In: { cmd: "close" } stops the bot and the app, then exits.
 */
import { createApp } from "../../../src/app.ts";
import { loadConfig } from "../../../src/config/config.ts";
import { createLogger } from "../../../src/log.ts";
import { DiscordBot } from "../../../src/platforms/discord/discord-bot.ts";

const { config, secrets } = loadConfig();
const log = createLogger(config.log.level);
const app = await createApp({ config, secrets, log });
const bot = new DiscordBot({ token: secrets.discordToken!, core: app.core, config: app.config, log: app.log, rest: { api: process.env.FAKE_DISCORD_API } });
const send = (m: unknown) => process.send?.(m);
bot.handled.on((event) => send({ type: "handled", event }));
process.on("message", async (m: { cmd: string }) => {
  if (m.cmd !== "close") return;
  await bot.stop();
  await app.close();
  process.exit(0);
});
await bot.start();
send({ type: "ready", instance: app.store.instanceId, shards: bot.metrics.shards });
