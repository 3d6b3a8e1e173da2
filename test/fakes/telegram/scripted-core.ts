/**
 * A scripted stand-in for the steering core, for adapter transport tests and the benchmark.
 *
 * Owns: the core's contract as seen from a platform (ports.ts + docs/core-api.md) without a
 * model or a database: it "generates" a scripted text word by word, streams it through the
 * surface with the core's rules (one edit per minEditIntervalMs, only when changed, split at
 * maxMessageLength), stops at the text shown, resumes after a correction, dedupes source ids,
 * and records every call so tests can assert what the adapter sent in.
 */
import { SurfaceGoneError, type AcceptRequest, type Actor, type AskRequest, type CorrectRequest, type Outcome, type ReplySurface, type StopRequest, type ThreadRef } from "../../../src/core/ports.ts";
import type { TelegramCore } from "../../../src/platforms/telegram/telegram-core-port.ts";

export interface ScriptedReply {
  thread: ThreadRef;
  asker: Actor;
  messageIds: string[];
  state: "generating" | "stopped" | "done" | "failed";
  /** Text produced so far (may be ahead of what was shown). */
  produced: string;
  /** Text the user has been shown (what the surface accepted). */
  shown: string;
  abort: AbortController;
  loop: Promise<void>;
  surface: ReplySurface;
  stoppedAt?: number;
}

export interface ScriptedCoreOptions {
  /** Text generated for a question. */
  answer?: (question: string) => string;
  /** Text generated after a correction. */
  continuation?: (correction: string) => string;
  /** Delay per word, ms. */
  wordMs?: number;
  /** User ids allowed to stop/correct/accept besides the asker. */
  moderators?: string[];
  admins?: string[];
}

export class ScriptedCore implements TelegramCore {
  readonly replies: ScriptedReply[] = [];
  readonly calls: { kind: string; req: unknown; at: number }[] = [];
  readonly steers: { replyTo?: string; correction: CorrectRequest["correction"]; messageId: string; shownAtStop: string; by: string }[] = [];
  readonly accepted: string[] = [];
  readonly reviews: { steerId: string; verdict: string; by: string }[] = [];
  pending = [
    { id: "s1", preview: "prefix… ✗ rejected → ✓ chosen" },
    { id: "s2", preview: "another steer" },
  ];
  private readonly seenSources = new Set<string>();
  /** Send/edit failures other than a gone surface (the core logs and retries these). */
  readonly editErrors: unknown[] = [];

  constructor(private readonly o: ScriptedCoreOptions = {}) {}

  async ask(req: AskRequest): Promise<Outcome> {
    this.calls.push({ kind: "ask", req, at: Date.now() });
    if (this.seenSources.has(req.sourceMessageId)) return { ok: true };
    this.seenSources.add(req.sourceMessageId);
    const text = (this.o.answer ?? defaultAnswer)(req.text);
    const reply = this.newReply(req.thread, req.actor, req.surface);
    reply.loop = this.stream(reply, text);
    await reply.loop;
    return reply.state === "failed" ? { ok: false } : { ok: true };
  }

  async stop(req: StopRequest): Promise<Outcome> {
    this.calls.push({ kind: "stop", req, at: Date.now() });
    const reply = this.replyOf(req.messageId);
    if (!reply) return { ok: false };
    if (!this.mayControl(req.actor, reply)) return { ok: false };
    if (reply.state !== "generating") return { ok: false, notice: "That reply is not streaming any more." };
    reply.abort.abort();
    await reply.loop;
    reply.state = "stopped";
    reply.stoppedAt = Date.now();
    reply.produced = reply.shown;
    return { ok: true };
  }

  async correct(req: CorrectRequest): Promise<Outcome> {
    this.calls.push({ kind: "correct", req, at: Date.now() });
    if (this.seenSources.has(req.messageId)) return { ok: true };
    this.seenSources.add(req.messageId);
    const reply = req.replyToMessageId ? this.replyOf(req.replyToMessageId) : this.openReply(req.thread);
    if (!reply) return { ok: false, notice: "Nothing to correct here." };
    if (!this.mayControl(req.actor, reply)) return { ok: false, notice: "You may not steer this reply." };
    if (reply.state === "generating") return { ok: false, notice: "Stop the reply first." };
    if (!req.correction.text.trim()) return { ok: false, notice: "Write the correction as a reply." };
    this.steers.push({ replyTo: req.replyToMessageId, correction: req.correction, messageId: req.messageId, shownAtStop: reply.shown, by: req.actor.userId });
    const cut = req.correction.quote ? reply.shown.slice(0, Math.max(0, reply.shown.lastIndexOf(req.correction.quote.text))) : reply.shown;
    reply.abort = new AbortController();
    reply.state = "generating";
    reply.surface = req.surface;
    reply.produced = cut.trimEnd() + " " + req.correction.text.trim();
    reply.loop = this.stream(reply, (this.o.continuation ?? defaultContinuation)(req.correction.text), true);
    await reply.loop;
    return { ok: (reply.state as string) !== "failed" };
  }

  async accept(req: AcceptRequest): Promise<Outcome> {
    this.calls.push({ kind: "accept", req, at: Date.now() });
    const reply = this.replyOf(req.messageId);
    if (!reply || !this.mayControl(req.actor, reply)) return { ok: false };
    this.accepted.push(req.messageId);
    return { ok: true };
  }

  isBotMessage(_platform: string, messageId: string): boolean {
    return this.replyOf(messageId) !== undefined;
  }

  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined {
    const r = this.openReply(thread);
    return r && r.state !== "failed" ? { messageIds: r.messageIds, state: r.state } : undefined;
  }

  readonly admin = {
    cancelTraining: async (actor: Actor): Promise<Outcome> => (this.isAdmin(actor) ? { ok: false, notice: "No training run is going in this bot." } : refused()),
    status: async (actor: Actor): Promise<Outcome> => {
      this.calls.push({ kind: "admin.status", req: actor, at: Date.now() });
      return this.isAdmin(actor) ? { ok: true, notice: `model: fixture; replies: ${this.replies.length}; steers: ${this.steers.length}` } : refused();
    },
    pendingSteers: async (actor: Actor): Promise<Outcome & { steers?: { id: string; preview: string }[] }> =>
      this.isAdmin(actor) ? { ok: true, steers: this.pending } : refused(),
    reviewSteer: async (actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome> => {
      if (!this.isAdmin(actor)) return refused();
      this.reviews.push({ steerId, verdict, by: actor.userId });
      this.pending = this.pending.filter((s) => s.id !== steerId);
      return { ok: true, notice: `Steer ${steerId} ${verdict}d.` };
    },
    retrain: async (actor: Actor, progress: (text: string) => Promise<void>): Promise<Outcome> => {
      if (!this.isAdmin(actor)) return refused();
      for (const step of [1, 2, 3]) await progress(`training: step ${step}/3 loss ${(3 - step * 0.5).toFixed(2)}`);
      return { ok: true, notice: "Adapter v2 trained and activated." };
    },
    adapters: async (actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome> =>
      this.isAdmin(actor) ? { ok: true, notice: `adapters ${action}${version ? ` ${version}` : ""}: v1 (active)` } : refused(),
    optOut: async (actor: Actor): Promise<Outcome> => ({ ok: true, notice: `User ${actor.userId} opted out.` }),
    forget: async (actor: Actor, confirmed: boolean): Promise<Outcome> =>
      confirmed ? { ok: true, notice: `Forgot user ${actor.userId}.` } : { ok: true, notice: "Delete all your steers and messages? This cannot be undone." },
  };

  private isAdmin(actor: Actor): boolean {
    return (this.o.admins ?? []).includes(actor.userId);
  }

  private mayControl(actor: Actor, reply: ScriptedReply): boolean {
    return actor.userId === reply.asker.userId || (this.o.moderators ?? []).includes(actor.userId) || (actor.roles ?? []).length > 0;
  }

  private newReply(thread: ThreadRef, asker: Actor, surface: ReplySurface): ScriptedReply {
    const r: ScriptedReply = { thread, asker, messageIds: [], state: "generating", produced: "", shown: "", abort: new AbortController(), loop: Promise.resolve(), surface };
    this.replies.push(r);
    return r;
  }

  replyOf(messageId: string): ScriptedReply | undefined {
    return this.replies.find((r) => r.messageIds.includes(messageId));
  }

  private openReply(thread: ThreadRef): ScriptedReply | undefined {
    return [...this.replies].reverse().find((r) => r.thread.chatId === thread.chatId && r.thread.threadId === thread.threadId);
  }

  /** Streams `text` word by word after `reply.produced`, editing at most once per interval. */
  private async stream(reply: ScriptedReply, text: string, flushFirst = false): Promise<void> {
    const signal = reply.abort.signal;
    const words = text.split(/(?<=\s)/);
    let lastFlush = 0;
    try {
      if (flushFirst) {
        await this.flush(reply);
        lastFlush = Date.now();
      }
      for (const w of words) {
        if (signal.aborted) return;
        await sleep(this.o.wordMs ?? 5, signal);
        if (signal.aborted) return;
        reply.produced += w;
        if (Date.now() - lastFlush >= reply.surface.minEditIntervalMs) {
          await this.flush(reply);
          lastFlush = Date.now();
        }
      }
      if (!signal.aborted) {
        await this.flush(reply);
        reply.state = "done";
      }
    } catch (err) {
      reply.state = "failed";
      if (!(err instanceof SurfaceGoneError)) throw err;
    }
  }

  private async flush(reply: ScriptedReply): Promise<void> {
    const text = reply.produced;
    const max = reply.surface.maxMessageLength;
    const parts: string[] = [];
    for (let i = 0; i < text.length || parts.length === 0; i += max) parts.push(text.slice(i, i + max));
    const shownParts: string[] = [];
    for (let i = 0; i < reply.shown.length; i += max) shownParts.push(reply.shown.slice(i, i + max));
    try {
      for (let i = 0; i < parts.length; i++) {
        if (i >= reply.messageIds.length) reply.messageIds.push(await reply.surface.send(parts[i]!));
        else if (parts[i] !== shownParts[i]) await reply.surface.edit(reply.messageIds[i]!, parts[i]!);
      }
    } catch (err) {
      // Like the core: a failed edit shows nothing new; the next round tries again.
      if (err instanceof SurfaceGoneError) throw err;
      this.editErrors.push(err);
      return;
    }
    reply.shown = text;
  }
}

function refused(): Outcome {
  return { ok: false, notice: "Only admins can do that." };
}

function defaultAnswer(q: string): string {
  return `You asked: ${q}. ` + Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
}

function defaultContinuation(c: string): string {
  return ` and so, after "${c}", the answer goes on correctly.`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
