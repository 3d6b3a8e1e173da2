/**
 * The steerbot studio's HTTP server (fastify): the steering page, and the admin console's
 * home. One more platform adapter over the same core port (DESIGN.md §10): platform `web`.
 *
 * Owns: building the fastify app — cookies, CSRF, the session guard, security headers, the
 * static front end in `public/` — and registering the route groups, each in its own file, from
 * the one list in {@link ROUTE_GROUPS}; listening and closing.
 *
 * Security (issue 14): binds 127.0.0.1 by default; any other host needs `STEERBOT_WEB_TOKEN`
 * (refused with {@link WebConfigError} otherwise). With a token every page and API but the
 * login needs a session cookie got by logging in with it. Sessions are HTTP-only
 * `SameSite=Strict` cookies; every state-changing request (POST, PUT, PATCH, DELETE) needs the
 * CSRF token (`x-csrf-token` header; the page gets it from `GET /api/session`); admin actions
 * check the role on the server ({@link WebAuth.requireAdmin}); the front end never inserts
 * user text as HTML (textContent only) and the CSP allows no inline script. Who is admin: see
 * web-auth.ts (the local operator without a token, the token holder with one).
 *
 * `GET /metrics` (Prometheus text format, when the server is given the app's metrics) is not
 * behind the session: a scraper has no cookies. It is open while the studio is loopback-only
 * and needs `Authorization: Bearer $STEERBOT_METRICS_TOKEN` when that is set; a studio with a
 * login and no metrics token refuses it (src/observability/metrics-server.ts says why).
 *
 * ## The seam: adding a page (the admin pages are built this way)
 *
 * 1. A route group `src/platforms/web/admin-<name>.ts` exporting
 *    `registerAdmin<Name>Routes(app: FastifyInstance, deps: WebDeps): void`, with one line in
 *    {@link ROUTE_GROUPS}. Its routes live under `/api/…`; the guard has already put the
 *    session on the request, so `deps.auth.actorOf(req)` is the actor, and every admin route
 *    takes `{ preHandler: deps.auth.requireAdmin }`. Bodies are JSON; answer `Outcome`-shaped
 *    JSON (`{ ok, notice }`) so the page can show the notice.
 * 2. The page `public/admin-<name>.html` (+ `public/admin-<name>.js`, an ES module; shared CSS in
 *    `public/studio.css`). Files in `public/` are served at `/<file>` (names of lowercase
 *    letters, digits and dashes, .html/.js/.css/.svg only). Use `public/studio-client.js`:
 *    `api(path, { method, body })` (adds the CSRF header, parses JSON) and `session()`.
 * 3. A nav link: one entry in `NAV` in `public/nav.js` (`{ href, label, admin: true }`); every
 *    page calls `renderNav()`, which hides admin entries from non-admins (the server still checks).
 *
 * What `deps` (= {@link WebDeps}) hold:
 * - `core`: the conversation core (`CorePort` plus the studio's reads: reply snapshots, steer
 *   removal) — ask/stop/correct/accept go through it, never around it;
 * - `admin`: the admin port (status, pending steers and review, retrain, cancel, adapters) —
 *   the same commands the chat platforms map theirs to;
 * - `store`: {@link StudioStore}, the store's repositories behind an interface (reads for the
 *   pages; writes that are not core operations, e.g. bulk review);
 * - `auth`: {@link WebAuth} — `actorOf(req)`, `isAdmin(req)`, `requireAdmin` (preHandler);
 * - `config`, `log`.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyCookie from "@fastify/cookie";
import fastifyCsrf from "@fastify/csrf-protection";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { AppConfig } from "../../config/config.ts";
import type { AdminPort, CorePort } from "../../core/ports.ts";
import type { SteeringCore } from "../../core/steering-core.ts";
import type { Logger } from "../../log.ts";
import type { Store } from "../../store/store.ts";
import { metricsAccess, type MetricsSource } from "../../observability/metrics-server.ts";
import { isLoopbackHost, WebAuth } from "./web-auth.ts";
import { registerSessionRoutes } from "./session-routes.ts";
import { registerSteeringRoutes } from "./steering-routes.ts";
import { ADMIN_ROUTE_GROUPS } from "./admin-routes.ts";

/** The core as the studio uses it: the port every platform uses, plus the studio's reads. */
export type StudioCore = CorePort & Pick<SteeringCore, "replySnapshot" | "replySettled" | "removeSteer" | "permissions">;

/** The store as the studio's routes use it: repositories only (no SQL outside src/store/). */
export type StudioStore = Pick<Store, "steers" | "conversations" | "training" | "users" | "liveInstances" | "operations">;

export interface WebDeps {
  core: StudioCore;
  admin: AdminPort;
  store: StudioStore;
  auth: WebAuth;
  config: AppConfig;
  log: Logger;
}

/** Every route group, registered in this order. The admin pages add their lines here. */
export const ROUTE_GROUPS: ((app: FastifyInstance, deps: WebDeps) => void)[] = [registerSessionRoutes, registerSteeringRoutes, ...ADMIN_ROUTE_GROUPS];

export class WebConfigError extends Error {
  override readonly name = "WebConfigError";
}

export interface WebServerOptions {
  core: StudioCore;
  store: StudioStore;
  config: AppConfig;
  log: Logger;
  host: string;
  port: number;
  /** `STEERBOT_WEB_TOKEN` (from the environment only). */
  token?: string;
  /** The app's metrics, served at `GET /metrics` (absent: no such route). */
  metrics?: MetricsSource;
  /** `STEERBOT_METRICS_TOKEN`: the bearer token /metrics then requires. */
  metricsToken?: string;
}

const PUBLIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "public");
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};
/** Served without a session even when a login is needed: the login page and what it loads. */
const OPEN_FILES = new Set(["login.html", "login.js", "studio-client.js", "studio.css"]);
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export interface WebServer {
  app: FastifyInstance;
  /** http://host:port/ once listening. */
  url: string;
  close(): Promise<void>;
}

/**
 * Builds and starts the studio. Refuses (WebConfigError) a non-loopback host without a token,
 * before anything listens.
 */
export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const token = opts.token || undefined;
  if (!isLoopbackHost(opts.host) && !token) {
    throw new WebConfigError(
      `the studio would listen on ${opts.host}, which is not this machine only, and STEERBOT_WEB_TOKEN is not set: ` +
        `set STEERBOT_WEB_TOKEN to a long random secret (e.g. STEERBOT_WEB_TOKEN=$(openssl rand -hex 32)) to require a login, or use --host 127.0.0.1`,
    );
  }
  const app = buildWebApp({ ...opts, token });
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    await app.close().catch(() => {});
    throw new WebConfigError(`the studio cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message}`);
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  const shownHost = opts.host.includes(":") ? `[${opts.host}]` : opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host;
  return { app, url: `http://${shownHost}:${port}/`, close: () => app.close() };
}

/** The fastify app, not listening yet (tests may `inject`). */
export function buildWebApp(opts: WebServerOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 });
  const auth = new WebAuth({ token: opts.token, permissions: opts.core.permissions });
  const deps: WebDeps = { core: opts.core, admin: opts.core.admin, store: opts.store, auth, config: opts.config, log: opts.log };
  const loopbackOnly = !opts.token;

  void app.register(fastifyCookie, { secret: randomBytes(32).toString("hex") });
  void app.register(fastifyCsrf, { cookieOpts: { path: "/", httpOnly: true, sameSite: "strict", signed: true } });

  void app.register(async (scope) => {
    scope.addHook("onRequest", async (req, reply) => {
      // Without a token the studio trusts whoever reaches it on this machine: a page elsewhere
      // that points its own name at 127.0.0.1 (DNS rebinding) must not count as "this machine".
      if (loopbackOnly && !isLoopbackHost(hostnameOf(req.headers.host))) {
        return reply.code(421).type("text/plain").send("This studio answers only on localhost / 127.0.0.1.");
      }
      reply.header("content-security-policy", CSP).header("x-content-type-options", "nosniff").header("referrer-policy", "no-referrer").header("x-frame-options", "DENY");
    });
    // CSRF on every state change, the login included.
    scope.addHook("onRequest", (req, reply, done) => {
      if (["GET", "HEAD", "OPTIONS"].includes(req.method)) return done();
      scope.csrfProtection(req, reply, done);
    });
    // The guard: a session for everything but the login and what the login page needs.
    scope.addHook("onRequest", async (req, reply) => {
      const url = req.url.split("?")[0]!;
      if (url === "/metrics" && opts.metrics) return; // a scraper's own rule (the route)
      const open = url === "/api/session" || url === "/api/login" || OPEN_FILES.has(url.slice(1));
      const session = auth.ensureSession(req, reply);
      if (session) req.studioSession = session;
      else if (!open) {
        if (url.startsWith("/api/")) return reply.code(401).send({ ok: false, notice: "Log in first (the studio's token)." });
        return reply.redirect("/login.html", 303);
      }
    });
    scope.setErrorHandler(async (err: Error & { statusCode?: number; code?: string }, _req, reply) => {
      const status = err.statusCode ?? 500;
      if (status >= 500) opts.log.error({ err }, "studio request failed");
      const notice = err.code === "FST_CSRF_INVALID_TOKEN" || err.code === "FST_CSRF_MISSING_SECRET" ? "The page's security token is missing or stale: reload the page." : status >= 500 ? "Something went wrong on the server." : err.message;
      return reply.code(status).send({ ok: false, notice });
    });
    if (opts.metrics) registerMetrics(scope, opts.metrics, opts.metricsToken || undefined, loopbackOnly);
    registerStatic(scope);
    for (const register of ROUTE_GROUPS) register(scope, deps);
  });
  return app;
}

function hostnameOf(host: string | undefined): string {
  if (!host) return "";
  return host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0]!;
}

/** `GET /metrics`: Prometheus text format, for a scraper (a bearer token, no session). */
function registerMetrics(app: FastifyInstance, metrics: MetricsSource, token: string | undefined, loopbackOnly: boolean): void {
  app.get("/metrics", async (req, reply) => {
    const access = metricsAccess(req.headers.authorization, token, loopbackOnly);
    if (!access.ok) {
      if (access.status === 401) reply.header("www-authenticate", 'Bearer realm="steerbot metrics"');
      return reply.code(access.status).type("text/plain; charset=utf-8").send(access.message);
    }
    const body = await metrics.render();
    return reply.type(metrics.contentType).header("cache-control", "no-store").send(body);
  });
}

/** The files of public/, read once at start (a fixed set: no path from the request reaches the disk). */
function registerStatic(app: FastifyInstance): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(PUBLIC_DIR)) {
    const ext = path.extname(name);
    if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(name) || !CONTENT_TYPES[ext]) continue;
    files.set(name, { body: readFileSync(path.join(PUBLIC_DIR, name)), type: CONTENT_TYPES[ext]! });
  }
  const serve = (name: string, reply: FastifyReply) => {
    const f = files.get(name);
    if (!f) return reply.code(404).type("text/plain").send("Not found");
    return reply.type(f.type).header("cache-control", "no-cache").send(f.body);
  };
  app.get("/", (_req, reply) => serve("index.html", reply));
  app.get<{ Params: { file: string } }>("/:file", (req: FastifyRequest<{ Params: { file: string } }>, reply) => serve(req.params.file, reply));
}
