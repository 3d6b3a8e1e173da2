/**
 * The studio's session routes: what the page learns about itself (`GET /api/session`: who it
 * is, whether admin, the CSRF token, the configured generation defaults), the login and the
 * logout.
 */
import type { FastifyInstance } from "fastify";
import type { WebDeps } from "./web-server.ts";

export function registerSessionRoutes(app: FastifyInstance, deps: WebDeps): void {
  app.get("/api/session", async (req, reply) => {
    const s = req.studioSession;
    const g = deps.config.generation;
    return reply.header("cache-control", "no-store").send({
      csrfToken: reply.generateCsrf(),
      loginRequired: deps.auth.loginRequired,
      user: s ? { id: s.actor.userId, name: s.actor.displayName ?? s.actor.userId } : null,
      admin: deps.auth.isAdmin(req),
      defaults: { systemPrompt: g.system_prompt, temperature: g.temperature, maxTokens: g.max_tokens },
    });
  });

  app.post<{ Body: { token?: unknown } }>("/api/login", async (req, reply) => {
    const s = deps.auth.login(req.body?.token, reply);
    if (!s) {
      deps.log.warn({ ip: req.ip }, "studio login refused (wrong or missing token)");
      return reply.code(401).send({ ok: false, notice: "That token is wrong. Use the value of STEERBOT_WEB_TOKEN the studio was started with." });
    }
    return { ok: true };
  });

  app.post("/api/logout", async (req, reply) => {
    deps.auth.logout(req, reply);
    return { ok: true };
  });
}
