/**
 * A scripted stand-in for the steering core, for Discord transport tests and the benchmark.
 *
 * Owns: the core's contract as the Discord adapter sees it (src/core/CORE-API.md) without a model
 * or a database. It "generates" a given text a few characters at a time, streams it through the
 * adapter's surface by the core's rules (at most one edit per minEditIntervalMs, only when the
 * text changed, split before maxMessageLength), stops at the text shown, resumes after a
 * correction, ignores repeated source ids and strangers' stops, and records every call.
 */
import type { DiscordCore } from "../../../src/platforms/discord/discord-core.ts";
import {
  SurfaceGoneError,
  type AcceptRequest,
  type Actor,
  type AskRequest,
  type CorrectRequest,
  type Outcome,
  type ReplySurface,
  type StopRequest,
  type ThreadRef,
} from "../../../src/core/ports.ts";

export interface ScriptedReply {
  thread: ThreadRef;
  asker: Actor;
  messageIds: string[];
  state: "generating" | "stopped" | "done";
  /** Text produced so far (runs ahead of what was shown). */
  produced: string;
  /** Text the surface has accepted (what users saw). */
  shown: string;
  /** The full text this reply generates when nobody stops it. */
  target: string;
  abort: AbortController;
  loop: Promise<void>;
  /** Stop request arrival → generation aborted and message cut, ms. */
  stopLatencyMs?: number;
}

export interface ScriptedCoreOptions {
  answer?: (question: string) => string;
  continuation?: (correction: string) => string;
  /** Characters produced per tick and tick length: the "token rate". */
  charsPerTick?: number;
  tickMs?: number;
  admins?: string[];
  /** When set, only these user ids may ask (exposed as `permissions`, like SteeringCore). */
  askers?: string[];
  /** What an admin's `/retrain` does (default: one progress line, then a summary). */
  retrain?: (progress: (text: string) => Promise<void>) => Promise<Outcome>;
}

/** A model-free core: deterministic streams, real throttling and splitting, recorded calls. */
export class ScriptedCore implements DiscordCore {
  readonly replies: ScriptedReply[] = [];
  readonly calls: { kind: string; req: unknown }[] = [];
  readonly steers: { messageId: string; text: string; shownAtStop: string; by: string }[] = [];
  readonly accepted: string[] = [];
  readonly reviews: { steerId: string; verdict: string; by: string }[] = [];
  pending = [
    { id: "s1", preview: "prefix… ✗ rejected → ✓ chosen" },
    { id: "s2", preview: "another steer" },
  ];
  readonly #seen = new Set<string>();
  readonly #o: ScriptedCoreOptions;

  constructor(o: ScriptedCoreOptions = {}) {
    this.#o = o;
  }

  async ask(req: AskRequest): Promise<Outcome> {
    this.calls.push({ kind: "ask", req });
    if (this.#o.askers && !this.#o.askers.includes(req.actor.userId)) return { ok: false, notice: "You are not allowed to ask the bot here." };
    if (this.#seen.has(req.sourceMessageId)) return { ok: true };
    this.#seen.add(req.sourceMessageId);
    const reply = this.#start(req.thread, req.actor, req.surface, (this.#o.answer ?? defaultAnswer)(req.text), "");
    await reply.loop;
    return { ok: true };
  }

  async stop(req: StopRequest): Promise<Outcome> {
    const t0 = performance.now();
    this.calls.push({ kind: "stop", req });
    const reply = this.#replyOf(req.messageId);
    if (!reply || reply.state !== "generating") return { ok: false };
    if (req.actor.userId !== reply.asker.userId && !this.#isAdmin(req.actor)) return { ok: false };
    reply.abort.abort();
    await reply.loop;
    reply.state = "stopped";
    reply.stopLatencyMs = performance.now() - t0;
    return { ok: true };
  }

  async correct(req: CorrectRequest): Promise<Outcome> {
    this.calls.push({ kind: "correct", req });
    if (this.#seen.has(req.messageId)) return { ok: true };
    this.#seen.add(req.messageId);
    const reply = req.replyToMessageId ? this.#replyOf(req.replyToMessageId) : this.openReplyIn(req.thread) && this.#latest(req.thread);
    if (!reply) return { ok: false, notice: "Nothing to correct here." };
    if (reply.state === "generating") return { ok: false, notice: "Stop the reply first (react 🛑)." };
    this.steers.push({ messageId: req.messageId, text: req.correction.text, shownAtStop: reply.shown, by: req.actor.userId });
    const cont = (this.#o.continuation ?? defaultContinuation)(req.correction.text);
    const next = this.#start(req.thread, reply.asker, req.surface, cont, "");
    await next.loop;
    return { ok: true };
  }

  async accept(req: AcceptRequest): Promise<Outcome> {
    this.calls.push({ kind: "accept", req });
    const reply = this.#replyOf(req.messageId);
    if (!reply) return { ok: false };
    this.accepted.push(req.messageId);
    return { ok: true };
  }

  isBotMessage(_platform: string, messageId: string): boolean {
    return this.#replyOf(messageId) !== undefined;
  }

  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined {
    const r = this.#latest(thread);
    return r ? { messageIds: [...r.messageIds], state: r.state } : undefined;
  }

  readonly permissions = {
    allows: (_action: "ask", actor: Actor): boolean => !this.#o.askers || this.#o.askers.includes(actor.userId),
  };

  readonly admin = {
    cancelTraining: async (actor: Actor): Promise<Outcome> =>
      this.#isAdmin(actor) ? { ok: false, notice: "No training run is going in this bot." } : { ok: false, notice: "Admins only." },
    status: async (actor: Actor): Promise<Outcome> =>
      this.#isAdmin(actor) ? { ok: true, notice: `replies: ${this.replies.length}` } : { ok: false, notice: "Admins only." },
    pendingSteers: async (actor: Actor) =>
      this.#isAdmin(actor) ? { ok: true, steers: [...this.pending] } : { ok: false, notice: "Admins only." },
    reviewSteer: async (actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome> => {
      if (!this.#isAdmin(actor)) return { ok: false, notice: "Admins only." };
      this.reviews.push({ steerId, verdict, by: actor.userId });
      this.pending = this.pending.filter((s) => s.id !== steerId);
      return { ok: true, notice: `Steer ${steerId} ${verdict}d.` };
    },
    retrain: async (actor: Actor, progress: (t: string) => Promise<void>): Promise<Outcome> => {
      if (!this.#isAdmin(actor)) return { ok: false, notice: "Admins only." };
      if (this.#o.retrain) return this.#o.retrain(progress);
      await progress("training: epoch 1/1");
      return { ok: true, notice: "Trained adapter v2 (not activated: no improvement)." };
    },
    adapters: async (actor: Actor, action: string, version?: string): Promise<Outcome> =>
      this.#isAdmin(actor) ? { ok: true, notice: `adapters ${action}${version ? ` ${version}` : ""}: v1 (active)` } : { ok: false, notice: "Admins only." },
    optOut: async (_actor: Actor): Promise<Outcome> => ({ ok: true, notice: "You are opted out." }),
    forget: async (_actor: Actor, confirmed: boolean): Promise<Outcome> =>
      confirmed ? { ok: true, notice: "Forgotten: 0 steers deleted." } : { ok: true, notice: "Really forget everything about you?" },
  };

  #isAdmin(actor: Actor): boolean {
    return (this.#o.admins ?? []).includes(actor.userId);
  }

  #replyOf(messageId: string): ScriptedReply | undefined {
    return this.replies.find((r) => r.messageIds.includes(messageId));
  }

  #latest(thread: ThreadRef): ScriptedReply | undefined {
    return this.replies.filter((r) => r.thread.threadId === thread.threadId && r.thread.chatId === thread.chatId).at(-1);
  }

  #start(thread: ThreadRef, asker: Actor, surface: ReplySurface, target: string, shown: string): ScriptedReply {
    const reply: ScriptedReply = {
      thread,
      asker,
      messageIds: [],
      state: "generating",
      produced: "",
      shown,
      target,
      abort: new AbortController(),
      loop: Promise.resolve(),
    };
    this.replies.push(reply);
    reply.loop = this.#stream(reply, surface);
    return reply;
  }

  async #stream(reply: ScriptedReply, surface: ReplySurface): Promise<void> {
    const per = this.#o.charsPerTick ?? 12;
    const tick = this.#o.tickMs ?? 20;
    const shownParts: string[] = [];
    let lastEdit = 0;
    const flush = async (): Promise<void> => {
      const text = reply.produced;
      const parts = split(text, surface.maxMessageLength);
      for (let i = 0; i < parts.length; i++) {
        if (i >= reply.messageIds.length) {
          reply.messageIds.push(await surface.send(parts[i]));
        } else if (shownParts[i] !== parts[i]) {
          await surface.edit(reply.messageIds[i], parts[i]);
        }
        shownParts[i] = parts[i];
      }
      reply.shown = text;
      lastEdit = Date.now();
    };
    try {
      while (reply.produced.length < reply.target.length && !reply.abort.signal.aborted) {
        await new Promise((r) => setTimeout(r, tick));
        if (reply.abort.signal.aborted) break;
        reply.produced = reply.target.slice(0, reply.produced.length + per);
        if (Date.now() - lastEdit >= surface.minEditIntervalMs) await flush();
      }
      if (reply.abort.signal.aborted) {
        // Cut at what was shown: the unseen tail is dropped.
        reply.produced = reply.shown;
      } else {
        await flush();
        reply.state = "done";
      }
    } catch (err) {
      if (!(err instanceof SurfaceGoneError)) throw err;
      reply.state = "stopped";
    }
  }
}

/** Splits text into pieces of at most `max` characters, preferring to break after a newline/space. */
export function split(text: string, max: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = rest.lastIndexOf("\n", max);
    if (cut < max / 2) cut = rest.lastIndexOf(" ", max);
    if (cut < max / 2) cut = max;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length || out.length === 0) out.push(rest);
  return out;
}

function defaultAnswer(question: string): string {
  return `Answer to "${question}": ` + Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
}

function defaultContinuation(correction: string): string {
  return `${correction} and then the corrected answer goes on.`;
}
