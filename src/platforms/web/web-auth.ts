/**
 * Who is using the studio: sessions, the login, the actor each request acts as, and the role
 * check admin routes use.
 *
 * Owns: the session cookie (random id, HTTP-only, `SameSite=Strict`, held in memory: a restart
 * logs everyone out), the login (`STEERBOT_WEB_TOKEN` → a session; compared in constant time,
 * never logged), the guard in front of every page and API, and the Host check that keeps a
 * token-less loopback studio from being reached through DNS rebinding.
 *
 * Who is admin on the web (decided by the core's permissions, as on every platform):
 * - On a loopback host without a token, the person at this machine is the **operator** (as in
 *   the terminal playground: `operator: true`, an admin whose steers are approved).
 * - With a token (required on any other host), whoever logged in with it holds the bots' admin
 *   key: also `operator: true`. The studio is the admin console of the bots it runs.
 * Every web actor has platform `web` and user id `local` (no token) or `admin` (token holder);
 * routes never trust the browser for a role: they call {@link WebAuth.isAdmin} /
 * {@link WebAuth.requireAdmin}, which ask `core.permissions`.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Actor } from "../../core/ports.ts";
import type { Permissions } from "../../core/permissions.ts";

export const SESSION_COOKIE = "steerbot_studio";
/** Sessions end after this long without use. */
const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
const MAX_SESSIONS = 1000;

export interface WebSession {
  id: string;
  actor: Actor;
  lastSeen: number;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The session of a request past the guard (every API but /api/session and /api/login). */
    studioSession?: WebSession;
  }
}

/** True for 127.0.0.0/8, ::1 and localhost: the only hosts the studio serves without a token. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

export class WebAuth {
  private readonly sessions = new Map<string, WebSession>();
  private readonly tokenHash: Buffer | undefined;

  constructor(
    private readonly opts: {
      /** `STEERBOT_WEB_TOKEN`; undefined = no login (loopback only). */
      token: string | undefined;
      permissions: Permissions;
      /** Whether cookies get `Secure` (served behind HTTPS). */
      secureCookies?: boolean;
    },
  ) {
    this.tokenHash = opts.token ? sha(opts.token) : undefined;
  }

  /** Whether a login is needed (a token was set). */
  get loginRequired(): boolean {
    return this.tokenHash !== undefined;
  }

  /** The session of a request (undefined: none, or expired). */
  sessionOf(req: FastifyRequest): WebSession | undefined {
    const id = req.cookies[SESSION_COOKIE];
    const s = id ? this.sessions.get(id) : undefined;
    if (!s) return undefined;
    if (Date.now() - s.lastSeen > SESSION_IDLE_MS) {
      this.sessions.delete(s.id);
      return undefined;
    }
    s.lastSeen = Date.now();
    return s;
  }

  /**
   * The session of a request, starting one when no login is needed (the local operator).
   * Undefined when a login is needed and the request has no session.
   */
  ensureSession(req: FastifyRequest, reply: FastifyReply): WebSession | undefined {
    const s = this.sessionOf(req);
    if (s || this.loginRequired) return s;
    return this.start(reply, { platform: "web", userId: "local", displayName: "you (local)", operator: true });
  }

  /** Checks a login token; on success the reply carries a new session cookie. */
  login(token: unknown, reply: FastifyReply): WebSession | undefined {
    if (!this.tokenHash || typeof token !== "string" || token === "") return undefined;
    if (!timingSafeEqual(sha(token), this.tokenHash)) return undefined;
    return this.start(reply, { platform: "web", userId: "admin", displayName: "admin (token)", operator: true });
  }

  logout(req: FastifyRequest, reply: FastifyReply): void {
    const id = req.cookies[SESSION_COOKIE];
    if (id) this.sessions.delete(id);
    reply.clearCookie(SESSION_COOKIE, { path: "/" });
  }

  /** The actor a request acts as (only after the guard: a session exists). */
  actorOf(req: FastifyRequest): Actor {
    const s = req.studioSession;
    if (!s) throw new Error("actorOf called on a request without a session (route outside the guard)");
    return s.actor;
  }

  /** Whether the request's actor is an admin, by the core's permissions. */
  isAdmin(req: FastifyRequest): boolean {
    return req.studioSession !== undefined && this.opts.permissions.isAdmin(req.studioSession.actor);
  }

  /**
   * A `preHandler` for admin routes: answers 403 unless the core says the actor is an admin.
   * Use it on every admin route: `app.post("/api/admin/x", { preHandler: deps.auth.requireAdmin }, …)`.
   */
  readonly requireAdmin = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!this.isAdmin(req)) await reply.code(403).send({ ok: false, notice: "Only admins may do that." });
  };

  private start(reply: FastifyReply, actor: Actor): WebSession {
    const s: WebSession = { id: randomBytes(32).toString("base64url"), actor, lastSeen: Date.now() };
    this.sessions.set(s.id, s);
    if (this.sessions.size > MAX_SESSIONS) {
      const oldest = [...this.sessions.values()].sort((a, b) => a.lastSeen - b.lastSeen)[0];
      if (oldest) this.sessions.delete(oldest.id);
    }
    reply.setCookie(SESSION_COOKIE, s.id, { path: "/", httpOnly: true, sameSite: "strict", secure: this.opts.secureCookies === true });
    return s;
  }
}

function sha(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
