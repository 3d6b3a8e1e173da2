/**
 * The steering page's API: ask, stop, correct (clicked point or typed forms), accept, the
 * reply's state and its steers' timeline, removing a steer, and the history of conversations.
 *
 * Owns: turning browser requests into core calls with the session's actor and the
 * conversation's thread (`web` / the user / the conversation id the page made), and the
 * streams: `POST /api/ask` and `POST /api/correct` answer with an event stream
 * ({@link SseSurface}) that ends with one `end` event — the outcome, what the reply shows now,
 * its token boundaries (the page snaps clicks to them) and the generation's steers.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Actor, Outcome, ThreadRef } from "../../core/ports.ts";
import { SseSurface } from "./sse-surface.ts";
import type { WebDeps } from "./web-server.ts";

const conversationId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "a conversation id is 1–64 letters, digits, - or _");
const messageId = z.string().min(1).max(64);
const settings = z
  .object({
    systemPrompt: z.string().max(20_000).optional(),
    temperature: z.number().min(0).max(5).optional(),
    maxTokens: z.number().int().min(1).optional(),
  })
  .strict();
const askBody = z.object({ conversation: conversationId, text: z.string().max(20_000), settings: settings.optional() }).strict();
const stopBody = z.object({ messageId, displayed: z.number().int().min(0).optional() }).strict();
const correctBody = z
  .object({ conversation: conversationId, messageId, text: z.string().max(20_000), divergence: z.number().int().min(0).optional(), quote: z.string().max(20_000).optional() })
  .strict();
const acceptBody = z.object({ messageId }).strict();

export function registerSteeringRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { core, auth, store } = deps;
  const threadOf = (actor: Actor, conversation: string): ThreadRef => ({ platform: "web", chatId: actor.userId, threadId: conversation });

  /** The reply state and steers the page shows after a stream or a change. */
  const replyState = async (actor: Actor, id: string | undefined) => {
    const snap = id ? core.replySnapshot("web", id) : undefined;
    if (!snap || (snap.owner.userId !== actor.userId && !core.permissions.isAdmin(actor))) return { reply: null, steers: [] };
    const steers = await store.steers.ofGeneration(snap.generationId);
    return {
      reply: { messageId: id, state: snap.state, text: snap.text, boundaries: snap.boundaries },
      steers: steers.map((s) => ({
        id: s.id,
        ordinal: s.ordinal,
        rejected: s.rejected,
        chosen: s.chosen,
        form: s.form,
        trust: s.trust_state,
        trained: s.trained,
        removable: s.platform === actor.platform && s.author === actor.userId && !s.trained,
      })),
    };
  };

  /** Runs a streaming core call with its answer as an event stream; ends with the `end` event. */
  /** The streams open now: a stop answers with what its stream had sent. */
  const streaming = new Set<SseSurface>();
  const streamed = async (req: FastifyRequest, reply: FastifyReply, run: (surface: SseSurface) => Promise<Outcome>, fallbackId?: string) => {
    const actor = auth.actorOf(req);
    reply.hijack();
    const surface = new SseSurface(reply.raw);
    surface.open();
    streaming.add(surface);
    let out: Outcome;
    try {
      out = await run(surface);
    } catch (e) {
      deps.log.error({ err: e }, "studio stream failed");
      out = { ok: false, notice: "Something went wrong on the server." };
    }
    const id = surface.id ?? fallbackId;
    if (id) await core.replySettled("web", id);
    try {
      await surface.write({ type: "end", ok: out.ok, notice: out.notice ?? null, sent: surface.sentLength, ...(await replyState(actor, id)) });
    } catch {
      /* the browser left */
    }
    surface.end();
    streaming.delete(surface);
  };

  const bad = (reply: FastifyReply, error: z.ZodError) =>
    reply.code(400).send({ ok: false, notice: `Bad request: ${error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}` });

  app.post("/api/ask", async (req, reply) => {
    const body = askBody.safeParse(req.body);
    if (!body.success) return bad(reply, body.error);
    const actor = auth.actorOf(req);
    const { conversation, text } = body.data;
    const sourceMessageId = `q-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    return streamed(req, reply, (surface) => core.ask({ thread: threadOf(actor, conversation), actor, text, sourceMessageId, surface, settings: body.data.settings }));
  });

  app.post("/api/stop", async (req, reply) => {
    const body = stopBody.safeParse(req.body);
    if (!body.success) return bad(reply, body.error);
    const actor = auth.actorOf(req);
    const { messageId, displayed } = body.data;
    const out = await core.stop({ platform: "web", messageId, actor, displayed });
    if (!out.ok) return reply.send({ ok: false, notice: out.notice ?? null });
    // The answer is the stream's end as the page needs it: behind a slow link, the stream itself
    // still carries what the page will never display, so the page ends it on this answer.
    await core.replySettled("web", messageId);
    const sent = [...streaming].find((s) => s.id === messageId)?.sentLength;
    return reply.send({ ok: true, type: "end", notice: out.notice ?? null, sent: sent ?? null, ...(await replyState(actor, messageId)) });
  });

  app.post("/api/correct", async (req, reply) => {
    const body = correctBody.safeParse(req.body);
    if (!body.success) return bad(reply, body.error);
    const actor = auth.actorOf(req);
    const b = body.data;
    const correctionId = `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    return streamed(
      req,
      reply,
      (surface) =>
        core.correct({
          thread: threadOf(actor, b.conversation),
          actor,
          replyToMessageId: b.messageId,
          correction: { text: b.text, divergence: b.divergence, quote: b.quote ? { text: b.quote } : undefined },
          messageId: correctionId,
          surface,
        }),
      b.messageId,
    );
  });

  app.post("/api/accept", async (req, reply) => {
    const body = acceptBody.safeParse(req.body);
    if (!body.success) return bad(reply, body.error);
    const out = await core.accept({ platform: "web", messageId: body.data.messageId, actor: auth.actorOf(req) });
    return reply.send({ ok: out.ok, notice: out.notice ?? (out.ok ? null : "That reply can no longer be accepted.") });
  });

  app.get<{ Params: { id: string } }>("/api/reply/:id", async (req) => replyState(auth.actorOf(req), req.params.id));

  app.delete<{ Params: { id: string } }>("/api/steers/:id", async (req, reply) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id) || id <= 0) return reply.code(400).send({ ok: false, notice: "A steer id is a positive whole number." });
    const out = await core.removeSteer(auth.actorOf(req), id);
    return reply.code(out.ok ? 200 : 409).send({ ok: out.ok, notice: out.notice ?? null });
  });

  app.get("/api/conversations", async (req) => {
    const actor = auth.actorOf(req);
    const threads = await store.conversations.threadsOf("web", actor.userId);
    return { conversations: threads.map((t) => ({ id: t.threadId, title: t.title.slice(0, 120), createdAt: t.createdAt.toISOString(), messages: t.messages })) };
  });

  app.get<{ Params: { id: string } }>("/api/conversations/:id", async (req, reply) => {
    const id = conversationId.safeParse(req.params.id);
    if (!id.success) return bad(reply, id.error);
    const actor = auth.actorOf(req);
    const threadDbId = await store.conversations.findThread(threadOf(actor, id.data));
    if (threadDbId === undefined) return reply.code(404).send({ ok: false, notice: "No such conversation." });
    const history = await store.conversations.history(threadDbId, 500);
    const open = core.openReplyIn(threadOf(actor, id.data));
    return { messages: history.messages, open: open ? { messageId: open.messageIds.at(-1) ?? null, state: open.state } : null };
  });
}
