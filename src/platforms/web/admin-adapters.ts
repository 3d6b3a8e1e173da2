/**
 * The studio's Adapters admin page, server side: every adapter with its held-out metrics (and
 * a chart of them, the same builder as the training PNG), Activate / Roll back through the
 * admin port (the chats' /adapters commands), and what each running instance serves now.
 *
 * Owns: the `/api/admin/adapters…` routes and ECharts' browser build (`/vendor/echarts.min.js`,
 * the same library the server renders the PNGs with).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { heldOutMetricsOption, pct } from "../../training/charts/training-charts.ts";
import { gateOf, heldOutMetricsOf } from "./admin-training.ts";
import type { WebDeps } from "./web-server.ts";

const activate = z.object({ version: z.string().min(1, "name the adapter version to activate").max(200) });

export function registerAdminAdaptersRoutes(app: FastifyInstance, deps: WebDeps): void {
  const guard = { preHandler: deps.auth.requireAdmin };
  const echartsJs = readFileSync(createRequire(import.meta.url).resolve("echarts/dist/echarts.min"));

  // the library is public code: no session needed to load it
  app.get("/vendor/echarts.min.js", (_req, reply) => reply.type("text/javascript; charset=utf-8").header("cache-control", "max-age=3600").send(echartsJs));

  app.get("/api/admin/adapters", guard, async () => {
    const [rows, instances] = await Promise.all([deps.store.training.adapters(), deps.store.liveInstances()]);
    const adapters = rows.map((a) => {
      const m = heldOutMetricsOf(a);
      return {
        version: a.version,
        state: a.state,
        runId: a.training_run_id,
        createdAt: a.created_at.toISOString(),
        activatedAt: a.activated_at?.toISOString() ?? null,
        heldOut: m?.heldOut ?? null,
        accuracy: m ? { base: pct(m.base.preferenceAccuracy), live: pct((m.live ?? m.base).preferenceAccuracy), candidate: pct(m.candidate.preferenceAccuracy) } : null,
        gate: gateOf(a),
      };
    });
    const charted = rows.flatMap((a) => {
      const m = heldOutMetricsOf(a);
      return m ? [{ label: a.version, metrics: m }] : [];
    });
    return {
      ok: true,
      adapters,
      instances: instances.map((i) => ({ instanceId: i.instanceId, adapterVersion: i.adapterVersion, since: i.updatedAt.toISOString(), self: i.self })),
      chart: charted.length ? heldOutMetricsOption({ entries: charted }) : null,
    };
  });

  app.post("/api/admin/adapters/activate", guard, async (req, reply) => {
    const body = activate.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ ok: false, notice: `Nothing activated: ${body.error.issues[0]!.message}.` });
    return deps.admin.adapters(deps.auth.actorOf(req), "activate", body.data.version);
  });

  app.post("/api/admin/adapters/rollback", guard, async (req) => deps.admin.adapters(deps.auth.actorOf(req), "rollback"));
}
