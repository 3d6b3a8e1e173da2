/**
 * A scripted stand-in for the steering core, for the platform adapters' transport tests and
 * the benchmarks (Discord and Telegram alike).
 *
 * Owns: the core's contract as a platform sees it (src/core/ports.ts `CorePort`, which both
 * adapters' core types are) without a model or a database. It "generates" a given text a word
 * (or a few characters) at a time, streams it through the adapter's surface by the core's rules
 * (at most one edit per minEditIntervalMs, only when the text changed, split before
 * maxMessageLength; a failed edit shows nothing new and the next round tries again; a gone
 * surface ends the reply), stops at the text shown, continues after a correction (in the same
 * reply, as the core does, or as a new reply), ignores repeated source ids, and records every
 * call (with the actor, roles and chat the adapter passed). It has no permission rules: who may
 * ask, stop or use admin commands is tested on the real core (test/core/permissions.test.ts and
 * the real-core platform tests); a transport test that needs a "no" scripts it (`refuse`) to
 * see the adapter show the core's notice (or stay silent) and change nothing.
 */
import {
  SurfaceGoneError,
  type AcceptRequest,
  type Actor,
  type AskRequest,
  type CorePort,
  type CorrectRequest,
  type Outcome,
  type ReplySurface,
  type StopRequest,
  type ThreadRef,
} from "../../src/core/ports.ts";

export interface ScriptedReply {
  thread: ThreadRef;
  asker: Actor;
  messageIds: string[];
  state: "generating" | "stopped" | "done";
  /** Set when the surface said the message or chat is gone (the reply then ended as `stopped`). */
  gone?: boolean;
  /** Text produced so far (runs ahead of what was shown). */
  produced: string;
  /** Text the surface has accepted (what users saw). */
  shown: string;
  /** The full text this reply generates when nobody stops it. */
  target: string;
  abort: AbortController;
  loop: Promise<void>;
  surface: ReplySurface;
  /** When the stop had cut it (Date.now()). */
  stoppedAt?: number;
  /** Stop request arrival → generation aborted and message cut, ms. */
  stopLatencyMs?: number;
}

export interface ScriptedCoreOptions {
  /** Text generated for a question. */
  answer?: (question: string) => string;
  /** Text generated after a correction. */
  continuation?: (correction: string) => string;
  /** Pace by words: one word (with its trailing space) every `wordMs` (default pace: 12 characters every 20 ms). */
  wordMs?: number;
  /** Pace by characters: `charsPerTick` every `tickMs`. */
  charsPerTick?: number;
  tickMs?: number;
  /** A correction continues the reply it corrects (default, as the core does) or starts a new one. */
  continueAs?: "same-reply" | "new-reply";
  /**
   * The core's "no", scripted by the test: asked before each ask, stop and admin call with its
   * kind ("ask", "stop", "admin.status", …) and actor; an Outcome returned is answered instead.
   */
  refuse?: (kind: string, actor: Actor) => Outcome | undefined;
  /** What an admin's `/retrain` does (default: one progress line, then a summary). */
  retrain?: (progress: (text: string) => Promise<void>) => Promise<Outcome>;
}

/** A model-free core: deterministic streams, real throttling and splitting, recorded calls. */
export class ScriptedCore implements CorePort {
  readonly replies: ScriptedReply[] = [];
  readonly calls: { kind: string; req: unknown; at: number }[] = [];
  readonly steers: { replyTo?: string; correction: CorrectRequest["correction"]; text: string; messageId: string; shownAtStop: string; by: string }[] = [];
  readonly accepted: string[] = [];
  readonly reviews: { steerId: string; verdict: string; by: string }[] = [];
  pending = [
    { id: "s1", preview: "prefix… ✗ rejected → ✓ chosen" },
    { id: "s2", preview: "another steer" },
  ];
  /** Send/edit failures other than a gone surface (the core logs them and tries again). */
  readonly editErrors: unknown[] = [];
  readonly #seen = new Set<string>();
  readonly #o: ScriptedCoreOptions;

  constructor(o: ScriptedCoreOptions = {}) {
    this.#o = o;
  }

  async ask(req: AskRequest): Promise<Outcome> {
    this.calls.push({ kind: "ask", req, at: Date.now() });
    const no = this.#o.refuse?.("ask", req.actor);
    if (no) return no;
    if (this.#seen.has(req.sourceMessageId)) return { ok: true };
    this.#seen.add(req.sourceMessageId);
    const reply = this.#start(req.thread, req.actor, req.surface, (this.#o.answer ?? defaultAnswer)(req.text));
    await reply.loop;
    return { ok: !reply.gone };
  }

  async stop(req: StopRequest): Promise<Outcome> {
    const t0 = performance.now();
    this.calls.push({ kind: "stop", req, at: Date.now() });
    const reply = this.#replyOf(req.messageId);
    if (!reply || reply.state !== "generating") return { ok: false };
    const no = this.#o.refuse?.("stop", req.actor);
    if (no) return no;
    reply.abort.abort();
    await reply.loop;
    reply.state = "stopped";
    reply.stoppedAt = Date.now();
    reply.stopLatencyMs = performance.now() - t0;
    return { ok: true };
  }

  async correct(req: CorrectRequest): Promise<Outcome> {
    this.calls.push({ kind: "correct", req, at: Date.now() });
    if (this.#seen.has(req.messageId)) return { ok: true };
    this.#seen.add(req.messageId);
    const reply = req.replyToMessageId ? this.#replyOf(req.replyToMessageId) : this.openReplyIn(req.thread) && this.#latest(req.thread);
    if (!reply) return { ok: false, notice: "Nothing to correct here." };
    if (reply.state === "generating") return { ok: false, notice: "Stop the reply first (react 🛑)." };
    this.steers.push({ replyTo: req.replyToMessageId, correction: req.correction, text: req.correction.text, messageId: req.messageId, shownAtStop: reply.shown, by: req.actor.userId });
    const cont = (this.#o.continuation ?? defaultContinuation)(req.correction.text);
    if ((this.#o.continueAs ?? "same-reply") === "new-reply") {
      const next = this.#start(req.thread, reply.asker, req.surface, cont);
      await next.loop;
      return { ok: true };
    }
    // As the core does: cut at the quote (or at what was shown), put the correction there, go on.
    const quote = req.correction.quote?.text;
    const cut = quote && reply.shown.lastIndexOf(quote) >= 0 ? reply.shown.slice(0, reply.shown.lastIndexOf(quote)) : reply.shown;
    reply.produced = `${cut.trimEnd()} ${req.correction.text.trim()}`;
    reply.target = reply.produced + cont;
    reply.abort = new AbortController();
    reply.state = "generating";
    reply.surface = req.surface;
    reply.loop = this.#stream(reply, true);
    await reply.loop;
    return { ok: !reply.gone };
  }

  async accept(req: AcceptRequest): Promise<Outcome> {
    this.calls.push({ kind: "accept", req, at: Date.now() });
    const reply = this.#replyOf(req.messageId);
    if (!reply) return { ok: false };
    this.accepted.push(req.messageId);
    return { ok: true };
  }

  isBotMessage(_platform: string, messageId: string): boolean {
    return this.#replyOf(messageId) !== undefined;
  }

  /** The thread's newest reply, unless its surface is gone (nothing to continue there). */
  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined {
    const r = this.#latest(thread);
    return r && !r.gone ? { messageIds: [...r.messageIds], state: r.state } : undefined;
  }

  readonly permissions = {
    allows: (_action: "ask", actor: Actor): boolean => !this.#o.refuse?.("ask", actor),
  };

  readonly admin = {
    cancelTraining: async (actor: Actor): Promise<Outcome> => this.#refused("admin.cancel", actor) ?? { ok: false, notice: "No training run is going in this bot." },
    status: async (actor: Actor): Promise<Outcome> => this.#refused("admin.status", actor) ?? { ok: true, notice: `replies: ${this.replies.length}; steers: ${this.steers.length}` },
    pendingSteers: async (actor: Actor): Promise<Outcome & { steers?: { id: string; preview: string }[] }> => this.#refused("admin.pending", actor) ?? { ok: true, steers: [...this.pending] },
    reviewSteer: async (actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome> => {
      const no = this.#refused("admin.review", actor);
      if (no) return no;
      this.reviews.push({ steerId, verdict, by: actor.userId });
      this.pending = this.pending.filter((s) => s.id !== steerId);
      return { ok: true, notice: `Steer ${steerId} ${verdict}d.` };
    },
    retrain: async (actor: Actor, progress: (t: string) => Promise<void>): Promise<Outcome> => {
      const no = this.#refused("admin.retrain", actor);
      if (no) return no;
      if (this.#o.retrain) return this.#o.retrain(progress);
      await progress("training: epoch 1/1");
      return { ok: true, notice: "Trained adapter v2 (not activated: no improvement)." };
    },
    adapters: async (actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome> =>
      this.#refused("admin.adapters", actor) ?? { ok: true, notice: `adapters ${action}${version ? ` ${version}` : ""}: v1 (active)` },
    optOut: async (_actor: Actor): Promise<Outcome> => ({ ok: true, notice: "You are opted out." }),
    forget: async (_actor: Actor, confirmed: boolean): Promise<Outcome> =>
      confirmed ? { ok: true, notice: "Forgotten: 0 steers deleted." } : { ok: true, notice: "Really forget everything about you?" },
  };

  /** The reply a platform message id belongs to. */
  replyOf(messageId: string): ScriptedReply | undefined {
    return this.#replyOf(messageId);
  }

  /** Records an admin call (with the actor the adapter passed) and the test's scripted "no", if any. */
  #refused(kind: string, actor: Actor): Outcome | undefined {
    this.calls.push({ kind, req: actor, at: Date.now() });
    return this.#o.refuse?.(kind, actor);
  }

  #replyOf(messageId: string): ScriptedReply | undefined {
    return this.replies.find((r) => r.messageIds.includes(messageId));
  }

  #latest(thread: ThreadRef): ScriptedReply | undefined {
    return this.replies.filter((r) => r.thread.threadId === thread.threadId && r.thread.chatId === thread.chatId).at(-1);
  }

  #start(thread: ThreadRef, asker: Actor, surface: ReplySurface, target: string): ScriptedReply {
    const reply: ScriptedReply = { thread, asker, messageIds: [], state: "generating", produced: "", shown: "", target, abort: new AbortController(), loop: Promise.resolve(), surface };
    this.replies.push(reply);
    reply.loop = this.#stream(reply, false);
    return reply;
  }

  /** The next stretch of the reply's target after what was produced: a word, or a few characters. */
  #nextLength(reply: ScriptedReply): number {
    if (this.#o.wordMs !== undefined) {
      const rest = reply.target.slice(reply.produced.length);
      const word = /^\s*\S+\s*/.exec(rest)?.[0] ?? rest;
      return reply.produced.length + Math.max(1, word.length);
    }
    return reply.produced.length + (this.#o.charsPerTick ?? 12);
  }

  async #stream(reply: ScriptedReply, flushFirst: boolean): Promise<void> {
    const signal = reply.abort.signal;
    const tick = this.#o.wordMs ?? this.#o.tickMs ?? 20;
    let lastEdit = 0;
    try {
      if (flushFirst) {
        await this.#flush(reply);
        lastEdit = Date.now();
      }
      while (reply.produced.length < reply.target.length && !signal.aborted) {
        await sleep(tick, signal);
        if (signal.aborted) break;
        reply.produced = reply.target.slice(0, this.#nextLength(reply));
        if (Date.now() - lastEdit >= reply.surface.minEditIntervalMs) {
          await this.#flush(reply);
          lastEdit = Date.now();
        }
      }
      if (signal.aborted) {
        // Cut at what was shown: the unseen tail is dropped.
        reply.produced = reply.shown;
      } else {
        await this.#flush(reply);
        reply.state = "done";
      }
    } catch (err) {
      if (!(err instanceof SurfaceGoneError)) throw err;
      reply.gone = true;
      reply.state = "stopped";
    }
  }

  /** One round bringing the surface up to `produced`; a failed call (not "gone") shows nothing new. */
  async #flush(reply: ScriptedReply): Promise<void> {
    const text = reply.produced;
    const { surface } = reply;
    const parts = split(text, surface.maxMessageLength);
    const shownParts = split(reply.shown, surface.maxMessageLength);
    try {
      for (let i = 0; i < parts.length; i++) {
        if (i >= reply.messageIds.length) reply.messageIds.push(await surface.send(parts[i]!));
        else if (shownParts[i] !== parts[i]) await surface.edit(reply.messageIds[i]!, parts[i]!);
      }
    } catch (err) {
      if (err instanceof SurfaceGoneError) throw err;
      this.editErrors.push(err);
      return;
    }
    reply.shown = text;
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
  return ` and so, after "${correction}", the answer goes on correctly.`;
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
