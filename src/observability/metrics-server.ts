/**
 * Serving `GET /metrics`: who may read it, and a small listener of its own.
 *
 * Owns: the access rule both places that serve it apply (this listener, and the studio's web
 * server, which calls {@link metricsAccess}) and the listener (`metrics.enabled`, on
 * `metrics.host:metrics.port`) that a bot without the studio and `steerbot worker` expose.
 *
 * Why both: the studio is already a web server on the machine, so a studio user scrapes it
 * with nothing to configure; but the studio is optional next to the bots (`web.enabled`), a
 * worker has none, and an operator often wants the scrape port apart from the admin console
 * (a different bind address, no session cookies, no CSRF). Why node's http and not fastify
 * here: one read-only route, no body, no cookies.
 *
 * Access: with `STEERBOT_METRICS_TOKEN` set, every scrape needs `Authorization: Bearer <token>`.
 * Without it: the listener binds loopback only (another host is refused at start, as the
 * studio refuses one without its token), and the studio answers /metrics only while it is
 * loopback-only itself — a studio that needs a login refuses /metrics until the metrics token
 * is set: the studio's token is an admin's and does not belong in a scraper's configuration.
 * Metrics hold no one's words, but they do name hosts, pids and instance ids.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import { isLoopbackHost } from "../platforms/web/web-auth.ts";

export class MetricsConfigError extends Error {
  override readonly name = "MetricsConfigError";
}

/** What serves the text: {@link Metrics} satisfies it. */
export interface MetricsSource {
  render(): Promise<string>;
  readonly contentType: string;
}

export type MetricsAccess = { ok: true } | { ok: false; status: 401 | 403; message: string };

function sha(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/**
 * Whether a scrape with this Authorization header may read the metrics. `openWithoutToken`:
 * the place serving it is this machine's only (a loopback listener, a studio without a login).
 */
export function metricsAccess(authorization: string | undefined, token: string | undefined, openWithoutToken: boolean): MetricsAccess {
  if (!token) {
    return openWithoutToken
      ? { ok: true }
      : { ok: false, status: 403, message: "This studio needs a login, and /metrics is not behind it: set STEERBOT_METRICS_TOKEN and scrape with Authorization: Bearer <token>.\n" };
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  // hashes of equal length, compared in constant time
  if (m && timingSafeEqual(sha(m[1]!), sha(token))) return { ok: true };
  return { ok: false, status: 401, message: "Send Authorization: Bearer <STEERBOT_METRICS_TOKEN>.\n" };
}

/** Refuses a listener off loopback without a token, before anything listens. */
export function checkMetricsHost(host: string, token: string | undefined): void {
  if (!isLoopbackHost(host) && !token) {
    throw new MetricsConfigError(
      `the metrics listener would listen on ${host}, reachable from other machines, and STEERBOT_METRICS_TOKEN is not set: ` +
        `set it to a long random secret (the scraper sends it as Authorization: Bearer <token>), or use metrics.host: 127.0.0.1`,
    );
  }
}

export interface MetricsServer {
  /** http://host:port/metrics once listening. */
  url: string;
  close(): Promise<void>;
}

/** Starts the listener; MetricsConfigError when the host needs a token or the port is taken. */
export async function startMetricsServer(o: { metrics: MetricsSource; host: string; port: number; token?: string; onError?: (err: unknown) => void }): Promise<MetricsServer> {
  const token = o.token || undefined;
  checkMetricsHost(o.host, token);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "").split("?")[0];
    if (url !== "/metrics") return void res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("Not found: the metrics are at /metrics.\n");
    if (req.method !== "GET" && req.method !== "HEAD") return void res.writeHead(405, { allow: "GET, HEAD" }).end();
    const access = metricsAccess(req.headers.authorization, token, true);
    if (!access.ok) {
      return void res.writeHead(access.status, { "content-type": "text/plain; charset=utf-8", ...(access.status === 401 ? { "www-authenticate": 'Bearer realm="steerbot metrics"' } : {}) }).end(access.message);
    }
    o.metrics.render().then(
      (body) => res.writeHead(200, { "content-type": o.metrics.contentType, "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : body),
      (err: unknown) => {
        o.onError?.(err);
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("The metrics could not be collected.\n");
      },
    );
  });
  server.keepAliveTimeout = 65_000; // Prometheus keeps its connection between scrapes
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port, o.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    throw new MetricsConfigError(`the metrics listener cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
  }
  const a = server.address();
  const port = typeof a === "object" && a ? a.port : o.port;
  const shownHost = o.host.includes(":") ? `[${o.host}]` : o.host === "0.0.0.0" ? "127.0.0.1" : o.host;
  return {
    url: `http://${shownHost}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
