/**
 * The studio's Status admin page, server side: what `/status` says about operations — the
 * running instances (id, role, host/pid, live adapter, heartbeat age), the training queue's
 * depth, the running job (step/total, loss, ETA, worker, attempt) and its worker's heartbeat
 * age — as data the page renders (and refreshes every few seconds).
 *
 * Owns: the `/api/admin/status` route. The numbers come from Store.operations, the same read
 * as `/status` and the `/metrics` gauges; durations are worded as `/status` words them.
 */
import type { FastifyInstance } from "fastify";
import { formatSeconds } from "../../core/admin-commands.ts";
import type { InstanceStatus } from "../../store/operations.ts";
import type { WebDeps } from "./web-server.ts";

function instanceView(i: InstanceStatus) {
  return {
    instanceId: i.instanceId,
    short: i.instanceId.slice(0, 8),
    role: i.role,
    host: i.host,
    pid: i.pid,
    runsJobs: i.runsJobs,
    startedAt: i.startedAt?.toISOString() ?? null,
    heartbeatAgeSeconds: i.heartbeatAgeSeconds,
    heartbeat: i.heartbeatAgeSeconds === null ? null : `${formatSeconds(i.heartbeatAgeSeconds)} ago`,
    /** undefined (serves no replies) becomes null; a string or "base model" otherwise. */
    serves: i.adapterVersion === undefined ? null : (i.adapterVersion ?? "base model"),
    self: i.self,
  };
}

export function registerAdminStatusRoutes(app: FastifyInstance, deps: WebDeps): void {
  const guard = { preHandler: deps.auth.requireAdmin };

  app.get("/api/admin/status", guard, async () => {
    const ops = await deps.store.operations();
    return {
      ok: true,
      at: new Date().toISOString(),
      instances: ops.instances.map(instanceView),
      queueDepth: ops.queueDepth,
      takers: ops.instances.filter((i) => i.runsJobs).length,
      running: ops.running.map((j) => ({
        id: j.id,
        short: j.id.slice(0, 8),
        trigger: j.trigger,
        attempts: j.attempts,
        step: j.step,
        steps: j.steps,
        loss: j.loss !== null && Number.isFinite(j.loss) ? j.loss : null,
        etaSeconds: j.etaSeconds !== null && Number.isFinite(j.etaSeconds) ? j.etaSeconds : null,
        eta: j.etaSeconds !== null && Number.isFinite(j.etaSeconds) ? formatSeconds(j.etaSeconds) : null,
        startedAt: j.startedAt?.toISOString() ?? null,
        workerInstance: j.workerInstance,
        worker: j.worker ? instanceView(j.worker) : null,
        workerHeartbeatAgeSeconds: j.workerHeartbeatAgeSeconds,
        workerHeartbeat: `${formatSeconds(j.workerHeartbeatAgeSeconds)} ago`,
      })),
    };
  });
}
