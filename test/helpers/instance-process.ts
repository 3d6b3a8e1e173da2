/**
 * One bot instance as its own process, for the multi-process queue tests: the real app
 * (createApp, configured from the environment like `steerbot start`), with no chat platform;
 * the test drives its admin commands over IPC the way a platform adapter would call them.
 *
 * Messages in: { id, cmd: "retrain" | "live" | "close" }. Out: { type: "ready" }, and
 * { id, type: "result", value }.
 */
import { createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log.ts";

const { config, secrets } = loadConfig();
const log = createLogger(config.log.level);
const app = await createApp({ config, secrets, log, schedule: process.env.TEST_SCHEDULE === "1" });
const send = (m: unknown) => process.send?.(m);
process.on("message", async (m: { id: number; cmd: string }) => {
  try {
    if (m.cmd === "retrain") send({ id: m.id, type: "result", value: await app.core.admin.retrain({ platform: "test", userId: "admin" }, async () => {}) });
    else if (m.cmd === "live") send({ id: m.id, type: "result", value: app.activator.liveVersion });
    else if (m.cmd === "close") {
      await app.close();
      send({ id: m.id, type: "result", value: true });
      process.exit(0);
    }
  } catch (e) {
    send({ id: m.id, type: "result", error: (e as Error).message });
  }
});
send({ type: "ready", instance: app.store.instanceId });
