/**
 * `steerbot web [--host H] [--port P]`: the studio alone (no bots), on the configured model —
 * with the demo-model fallback of `npm start` when nobody chose a model and the default cannot
 * be downloaded. Also the studio part of `steerbot start` ({@link serveStudio}).
 *
 * A host other than loopback without STEERBOT_WEB_TOKEN is refused before anything loads.
 */
import type { Command } from "commander";
import type { App } from "../../app.ts";
import { isLoopbackHost } from "../../platforms/web/web-auth.ts";
import { startWebServer, WebConfigError, type WebServer } from "../../platforms/web/web-server.ts";
import { action, appContext, CliError, EXIT, type AppContext } from "../app-context.ts";
import { checkMetricsListener, serveMetrics } from "../metrics-listener.ts";
import { loadApp, untilSignal } from "./start.ts";

/** Refuses a studio on a non-loopback host without a token (bad input: exit 2), before any loading. */
export function checkStudioHost(ctx: AppContext, host: string): void {
  if (!isLoopbackHost(host) && !ctx.secrets.webToken) {
    throw new CliError(
      `the studio would listen on ${host}, reachable from other machines, and STEERBOT_WEB_TOKEN is not set.\n` +
        `Set it to a long random secret (STEERBOT_WEB_TOKEN=$(openssl rand -hex 32)) — the login asks for it — or use --host 127.0.0.1.`,
      EXIT.badInput,
    );
  }
}

/** Starts the studio on a loaded app and prints its URL. */
export async function serveStudio(app: App, host: string, port: number): Promise<WebServer> {
  try {
    const server = await startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host, port, token: app.secrets.webToken, metrics: app.metrics, metricsToken: app.secrets.metricsToken });
    const login = app.secrets.webToken ? " (log in with STEERBOT_WEB_TOKEN)" : "";
    process.stdout.write(`steerbot studio: ${server.url}${login}\n`);
    return server;
  } catch (e) {
    if (e instanceof WebConfigError) throw new CliError(e.message, EXIT.failure);
    throw e;
  }
}

function parsePort(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`--port: expected a port number 0–65535, got "${raw}"`, EXIT.badInput);
  return n;
}

export function register(program: Command): void {
  program
    .command("web")
    .description("the studio: steer replies in the browser (ask, stop, click the wrong word, correct, resume)")
    .option("--host <host>", "address to listen on (not loopback: STEERBOT_WEB_TOKEN required)")
    .option("--port <port>", "port to listen on (0 = any free one)")
    .action(
      action(async (opts: { host?: string; port?: string }) => {
        const ctx = appContext();
        const host = opts.host ?? ctx.config.web.host;
        const port = parsePort(opts.port, ctx.config.web.port);
        checkStudioHost(ctx, host);
        checkMetricsListener(ctx);
        const app = await loadApp(ctx, false, true);
        process.stdout.write(`steerbot — model ${app.engine.modelPath}, data in ${app.store.location}\n`);
        let server: WebServer | undefined;
        let metrics: { close(): Promise<void> } | undefined;
        try {
          server = await serveStudio(app, host, port);
          metrics = await serveMetrics(app.metrics, app);
          await untilSignal();
        } finally {
          await metrics?.close().catch(() => {});
          await server?.close().catch(() => {});
          await app.close();
        }
      }),
    );
}
