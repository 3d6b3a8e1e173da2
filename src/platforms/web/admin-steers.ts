/**
 * The studio's Steers admin page, server side: the filtered listing (each steer's prefix,
 * rejected and chosen spans — the page draws the diff with text nodes only), a steer's context
 * on demand, approve / reject one or many, and the export of the current filter.
 *
 * Owns: the `/api/admin/steers…` routes. Reviews go through the admin port (the same command
 * the chat platforms' review maps to); listing and export read the store's filtered listing
 * (steer-repository.ts), and export writes the lines `steerbot export` writes
 * (SteerRepository.toExportLine), only of steers that may leave the store.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { exportFormats } from "../../core/steer-export.ts";
import { SteerRepository } from "../../store/steer-repository.ts";
import type { SteerRow } from "../../store/database.ts";
import { parseSteerFilter } from "./admin-filter.ts";
import type { WebDeps } from "./web-server.ts";

const review = z.object({
  ids: z.array(z.number().int().positive()).min(1, "select at least one steer").max(5000),
  verdict: z.enum(["approve", "reject"]),
});

/** A steer as the page lists it (no token ids, no internal hashes). */
function listed(r: SteerRow) {
  return {
    id: r.id,
    state: r.trust_state,
    source: r.source,
    platform: r.platform,
    author: r.author,
    form: r.form,
    createdAt: r.created_at.toISOString(),
    prefix: r.prefix,
    rejected: r.rejected,
    chosen: r.chosen,
  };
}

export function registerAdminSteersRoutes(app: FastifyInstance, deps: WebDeps): void {
  const guard = { preHandler: deps.auth.requireAdmin };

  app.get("/api/admin/steers", guard, async (req, reply) => {
    const f = parseSteerFilter(req.query);
    if (!f.ok) return reply.code(400).send(f);
    const rows = await deps.store.steers.listFiltered(f.filter);
    return { ok: true, steers: rows.map(listed), limit: f.filter.limit };
  });

  app.get<{ Params: { id: string } }>("/api/admin/steers/:id/context", guard, async (req, reply) => {
    const id = Number(req.params.id);
    if (!Number.isInteger(id) || id <= 0) return reply.code(400).send({ ok: false, notice: `“${req.params.id}” is not a steer number.` });
    const [row] = await deps.store.steers.list({ ids: [id] });
    if (!row) return reply.code(404).send({ ok: false, notice: `There is no steer #${id}.` });
    return { ok: true, id, context: row.context };
  });

  app.post("/api/admin/steers/review", guard, async (req, reply) => {
    const body = review.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ ok: false, notice: `Nothing reviewed: ${body.error.issues[0]!.message}.` });
    const actor = deps.auth.actorOf(req);
    const { ids, verdict } = body.data;
    if (deps.admin.reviewSteers) return deps.admin.reviewSteers(actor, ids, verdict);
    // an admin port without bulk review: one command per steer, as a chat admin would
    const outs = await Promise.all(ids.map((id) => deps.admin.reviewSteer(actor, String(id), verdict)));
    return { ok: outs.every((o) => o.ok), notice: outs.map((o) => o.notice).join("\n") };
  });

  app.get<{ Querystring: Record<string, string> }>("/api/admin/steers/export", guard, async (req, reply) => {
    const { format = "steers", ...rest } = req.query;
    if (!(exportFormats as string[]).includes(format)) {
      return reply.code(400).send({ ok: false, notice: `Unknown export format “${format}”: use one of ${exportFormats.join(", ")}.` });
    }
    const f = parseSteerFilter({ ...rest, limit: rest.limit ?? "5000" });
    if (!f.ok) return reply.code(400).send(f);
    // as `steerbot export`: never the steers of people who opted out or were forgotten
    const rows = await deps.store.steers.listFiltered({ ...f.filter, usable: true });
    const body = rows.map((r) => SteerRepository.toExportLine(r, format as (typeof exportFormats)[number]) + "\n").join("");
    return reply
      .type("application/x-ndjson; charset=utf-8")
      .header("content-disposition", `attachment; filename="steers-${format}.jsonl"`)
      .header("x-steer-count", String(rows.length))
      .send(body);
  });
}
