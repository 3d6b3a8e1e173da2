/**
 * The metrics listener of the long-running commands (`start`, `web`, `worker`): `GET /metrics`
 * on `metrics.host:metrics.port` when `metrics.enabled` (src/observability/metrics-server.ts).
 *
 * Owns: refusing a bad setup before anything loads (a host off loopback without
 * STEERBOT_METRICS_TOKEN: exit 2), and printing where the metrics are.
 */
import { checkMetricsHost, MetricsConfigError, startMetricsServer, type MetricsServer, type MetricsSource } from "../observability/metrics-server.ts";
import { CliError, EXIT, type AppContext } from "./app-context.ts";

type Ctx = Pick<AppContext, "config" | "secrets" | "log">;

/** Refuses (exit 2) a metrics listener that would need a token it does not have. */
export function checkMetricsListener(ctx: Ctx): void {
  if (!ctx.config.metrics.enabled) return;
  try {
    checkMetricsHost(ctx.config.metrics.host, ctx.secrets.metricsToken);
  } catch (e) {
    if (e instanceof MetricsConfigError) throw new CliError(e.message, EXIT.badInput);
    throw e;
  }
}

/** Starts the listener when `metrics.enabled`; undefined otherwise. */
export async function serveMetrics(metrics: MetricsSource, ctx: Ctx): Promise<MetricsServer | undefined> {
  const m = ctx.config.metrics;
  if (!m.enabled) return undefined;
  try {
    const server = await startMetricsServer({ metrics, host: m.host, port: m.port, token: ctx.secrets.metricsToken, onError: (err) => ctx.log.warn({ err }, "metrics: a scrape failed") });
    process.stdout.write(`steerbot metrics: ${server.url}${ctx.secrets.metricsToken ? " (Authorization: Bearer $STEERBOT_METRICS_TOKEN)" : ""}\n`);
    return server;
  } catch (e) {
    if (e instanceof MetricsConfigError) throw new CliError(e.message, EXIT.failure);
    throw e;
  }
}
