/**
 * The studio's Training admin page, server side: start a run (the admin port's `/retrain`, so
 * the same lock and rules as in the chats), its live progress over SSE, cancel, and every
 * run's loss curve and held-out metrics as chart options — built by the same builders as the
 * PNG `/retrain` posts (training/charts) — with the gate's decision and why.
 *
 * Owns: the `/api/admin/training…` routes and the shape a run takes on the page.
 */
import type { FastifyInstance } from "fastify";
import type { AdapterRow } from "../../store/database.ts";
import type { TrainingRunRow } from "../../store/training-repository.ts";
import { heldOutMetricsOption, lossCurveOption, type GateDecision, type HeldOutMetrics } from "../../training/charts/training-charts.ts";
import { TrainingFeed, type FeedEvent } from "./admin-training-feed.ts";
import type { WebDeps } from "./web-server.ts";

/** Whether an adapter's stored metrics have the shape training-service.ts writes. */
export function heldOutMetricsOf(a: Pick<AdapterRow, "metrics">): HeldOutMetrics | undefined {
  const m = a.metrics as Partial<HeldOutMetrics>;
  return m && typeof m === "object" && m.base && m.candidate && typeof m.heldOut === "number" ? (m as HeldOutMetrics) : undefined;
}

/** The gate's decision for a run's adapter; older adapters (before the gate was stored) by their state. */
export function gateOf(a: Pick<AdapterRow, "metrics" | "state">): GateDecision | null {
  const m = heldOutMetricsOf(a);
  if (m?.gate) return m.gate;
  if (!m) return null;
  return { activated: a.state === "active" || a.state === "retired", reason: a.state === "rejected" ? "the candidate did not beat the live adapter" : "the candidate beat the live adapter" };
}

function runView(r: NonNullable<TrainingRunRow>, adapter: AdapterRow | undefined) {
  const metrics = adapter ? heldOutMetricsOf(adapter) : undefined;
  return {
    id: r.id,
    state: r.state,
    trigger: r.trigger,
    requestedBy: r.requested_by,
    steerCount: r.steer_count,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at?.toISOString() ?? null,
    error: r.error,
    adapter: adapter ? { version: adapter.version, state: adapter.state } : null,
    gate: adapter ? gateOf(adapter) : null,
    lossChart: r.loss_curve.length ? lossCurveOption({ runId: r.id, lossCurve: r.loss_curve, metrics, adapterVersion: adapter?.version }) : null,
    metricsChart: metrics && adapter ? heldOutMetricsOption({ entries: [{ label: adapter.version, metrics }] }) : null,
  };
}

export function registerAdminTrainingRoutes(app: FastifyInstance, deps: WebDeps): void {
  const guard = { preHandler: deps.auth.requireAdmin };
  const feed = new TrainingFeed({ admin: deps.admin, log: deps.log, runningRunId: async () => (await deps.store.training.runningRun())?.id ?? null });

  app.get("/api/admin/training/runs", guard, async () => {
    const [runs, adapters] = await Promise.all([deps.store.training.recentRuns(20), deps.store.training.adapters()]);
    const byRun = new Map(adapters.filter((a) => a.training_run_id !== null).map((a) => [a.training_run_id!, a]));
    return { ok: true, runs: runs.map((r) => runView(r, byRun.get(r.id))) };
  });

  app.post("/api/admin/training/start", guard, async (req, reply) => {
    const out = await feed.start(deps.auth.actorOf(req));
    // busy (another run holds the lock) is a conflict; skipped (too few steers) is an answer
    return reply.code(out.started || out.ok ? 200 : /already going/.test(out.notice ?? "") ? 409 : 200).send(out);
  });

  app.post("/api/admin/training/cancel", guard, async (req) => deps.admin.cancelTraining(deps.auth.actorOf(req)));

  app.get("/api/admin/training/events", guard, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-content-type-options": "nosniff" });
    const send = (e: FeedEvent) => res.write(`data: ${JSON.stringify(e)}\n\n`);
    const unsubscribe = feed.subscribe(send);
    const beat = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
    req.raw.on("close", () => {
      clearInterval(beat);
      unsubscribe();
    });
  });
}
