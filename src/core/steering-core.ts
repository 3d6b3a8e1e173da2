/**
 * The conversation core: ask → stream → stop → correct → resume → accept, for every platform.
 *
 * Owns: the live replies (which platform message belongs to which reply), the stop point (the
 * text shown, from {@link StreamDisplay}), turning a correction into a stored steer (alignment,
 * token snapping, one transaction) and resuming generation from the corrected text. Platform
 * adapters call it with plain data ({@link ./ports.ts}); it answers with short notices and
 * never throws at them: a failure is logged and becomes an Outcome.
 */
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { AppConfig } from "../config/config.ts";
import type { Logger } from "../log.ts";
import { PersonalData } from "../store/personal-data.ts";
import type { Store } from "../store/store.ts";
import { AdminCommands, type TrainingControl } from "./admin-commands.ts";
import { alignCorrection } from "./alignment.ts";
import { fitContext } from "./context-budget.ts";
import { Permissions } from "./permissions.ts";
import type { AcceptRequest, Actor, AskRequest, CorrectRequest, Outcome, ReplySurface, StopRequest, ThreadRef } from "./ports.ts";
import { Reply } from "./reply.ts";
import type { ChatMessage } from "./steer-record.ts";
import { StreamDisplay } from "./stream-display.ts";
import type { StreamedToken, TextGenerator } from "./text-generator.ts";
import { snapToTokens } from "./token-snap.ts";

/** Live replies kept for stops and corrections; older finished ones are forgotten first. */
const MAX_LIVE_REPLIES = 2000;

export interface SteeringCoreDeps {
  store: Store;
  engine: TextGenerator;
  config: AppConfig;
  log: Logger;
}

export class SteeringCore {
  readonly admin: AdminCommands;
  readonly permissions: Permissions;
  /** The training pipeline behind /retrain and /adapters, attached once it is set up. */
  training: TrainingControl | undefined;
  private readonly replies = new Map<string, Reply>(); // "platform:messageId" → reply
  private readonly lastReplyInThread = new Map<string, Reply>();
  private readonly liveReplies = new Set<Reply>();
  private readonly correctionsInFlight = new Set<string>();
  private readonly steerLimiter: RateLimiterMemory;
  private fingerprint: Promise<string> | undefined;
  /** The model new replies use; replaced by {@link useEngine} when an adapter is swapped in. */
  private engine: TextGenerator;
  private adapterId: number | null = null;

  constructor(private readonly deps: SteeringCoreDeps) {
    this.engine = deps.engine;
    this.permissions = new Permissions(deps.config.permissions);
    this.steerLimiter = new RateLimiterMemory({ points: deps.config.steer.per_user_per_minute, duration: 60 });
    this.admin = new AdminCommands({
      store: deps.store,
      permissions: this.permissions,
      engine: { modelPath: deps.engine.modelPath, fingerprint: () => this.modelFingerprint() },
      training: () => this.training,
      activeGenerations: () => [...this.liveReplies].filter((r) => r.state === "generating").length,
      dropReplies: (platform, userId, threadDbIds) => this.dropReplies(platform, userId, threadDbIds),
    });
  }

  /** The engine new replies are generated with. */
  get currentEngine(): TextGenerator {
    return this.engine;
  }

  /**
   * Hot-swap: new replies use `next` (the same base model with another adapter) from now on;
   * replies in flight finish on the engine they started with. Resolves with the previous
   * engine once no live reply uses it any more, so the caller can dispose it.
   */
  async useEngine(next: TextGenerator, adapterId: number | null): Promise<TextGenerator> {
    const previous = this.engine;
    this.engine = next;
    this.adapterId = adapterId;
    for (;;) {
      const busy = [...this.liveReplies].filter((r) => r.engine === previous && r.state === "generating");
      if (busy.length === 0) break;
      await Promise.all(busy.map((r) => r.streamed));
      await new Promise((r) => setImmediate(r)); // let a cut or a finishing edit move the state on
    }
    // Finished replies keep their engine only for a later steer; from now on they resume on the new one.
    for (const r of this.liveReplies) if (r.engine === previous) r.engine = next;
    return previous;
  }

  /** Replies generating right now. */
  get generatingCount(): number {
    return [...this.liveReplies].filter((r) => r.state === "generating").length;
  }

  isBotMessage(platform: string, messageId: string): boolean {
    return this.replies.has(`${platform}:${messageId}`);
  }

  /** The state of the reply a platform message belongs to (undefined: not a live reply). */
  replyState(platform: string, messageId: string): Reply["state"] | undefined {
    return this.replies.get(`${platform}:${messageId}`)?.state;
  }

  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: Reply["state"] } | undefined {
    const r = this.lastReplyInThread.get(threadKey(thread));
    return r && { messageIds: [...r.messageIds], state: r.state };
  }

  /** Starts a reply to a question and streams it; settles when its generation has ended. */
  async ask(req: AskRequest): Promise<Outcome> {
    const { store, config, log } = this.deps;
    try {
      if (!this.permissions.allows("ask", req.actor, req.thread)) return { ok: false, notice: "You are not allowed to ask the bot here." };
      if (req.text.trim() === "") return { ok: false, notice: "Ask me something: write your question after the mention or /ask." };
      const user = await store.users.upsert(req.actor.platform, req.actor.userId, req.actor.displayName);
      const threadDbId = await store.conversations.upsertThread(req.thread, user.opted_out ? undefined : req.actor.userId);
      // The newest turns that fit with room for a whole reply (a thread may last forever).
      const history = await store.conversations.history(threadDbId, this.engine.contextSize);
      const system: ChatMessage[] = config.generation.system_prompt ? [{ role: "system", content: config.generation.system_prompt }] : [];
      const fitted = fitContext(this.engine, [...system, ...history.messages, { role: "user", content: req.text }], this.contextBudget(this.engine));
      if (!fitted.ok) {
        return {
          ok: false,
          notice:
            `Your message is too long for this model: it needs ${fitted.promptTokens} tokens of context and ${this.contextBudget(this.engine)} are free ` +
            `(${this.engine.contextSize} in all, ${config.generation.max_tokens} kept for the reply). Please shorten it.`,
        };
      }
      const context = fitted.messages;
      const stored = PersonalData.storableContext(context, user.opted_out);
      const gen = await store.conversations.createGeneration({
        threadId: threadDbId,
        contextMessages: stored,
        contextText: this.engine.renderContext(stored).text,
        droppedMessages: history.total - history.messages.length + fitted.dropped,
        modelFingerprint: await this.modelFingerprint(),
        adapterId: this.adapterId,
        sourceMessageId: req.sourceMessageId,
      });
      if (!gen) return { ok: true }; // the platform delivered this message twice
      if (!user.opted_out) await store.conversations.addMessage(threadDbId, { role: "user", text: req.text, author: req.actor.userId, platformMessageIds: [req.sourceMessageId] });
      const reply = new Reply(gen.id, req.thread, threadDbId, req.actor, context, this.engine);
      this.remember(reply);
      await this.stream(reply, req.surface);
      return { ok: true };
    } catch (e) {
      log.error({ err: e, platform: req.actor.platform }, "ask failed");
      return { ok: false, notice: "Sorry, something went wrong while answering. Please try again." };
    }
  }

  /** Stops a streaming reply at the text shown; settles once generation is aborted and the message cut. */
  async stop(req: StopRequest): Promise<Outcome> {
    const reply = this.replies.get(`${req.platform}:${req.messageId}`);
    if (!reply) return { ok: false };
    if (!this.permissions.allows("stop", req.actor, reply.thread, reply.owner.userId)) return { ok: false }; // strangers are ignored silently
    if (reply.state !== "generating") return { ok: true };
    try {
      await this.cut(reply);
      return { ok: true };
    } catch (e) {
      this.deps.log.error({ err: e }, "stop failed");
      return { ok: false, notice: "Sorry, I could not stop that reply cleanly." };
    }
  }

  /** Turns a correction into a stored steer and resumes; settles when the continuation ends. */
  async correct(req: CorrectRequest): Promise<Outcome> {
    const { store, config, log } = this.deps;
    const reply = req.replyToMessageId
      ? this.replies.get(`${req.actor.platform}:${req.replyToMessageId}`)
      : this.lastReplyInThread.get(threadKey(req.thread));
    if (!reply) return { ok: false, notice: "That reply can no longer be steered (it is too old or the bot restarted). Ask again to start a new one." };
    if (!this.permissions.allows("steer", req.actor, reply.thread, reply.owner.userId)) return { ok: false };
    const dupKey = `${req.actor.platform}:${req.messageId}`;
    if (this.correctionsInFlight.has(dupKey)) return { ok: true };
    this.correctionsInFlight.add(dupKey);
    try {
      if (await store.steers.findByCorrection(req.actor.platform, req.messageId)) return { ok: true }; // delivered twice
      const limit = await this.steerLimiter.get(`${req.actor.platform}:${req.actor.userId}`);
      if (limit && limit.remainingPoints <= 0) {
        return { ok: false, notice: `You are steering very fast: please wait ${Math.ceil(limit.msBeforeNext / 1000)} s and send it again.` };
      }
      if (reply.state === "generating") await this.cut(reply); // a correction while generating stops at what was shown
      else if (reply.cutting) await reply.cutting; // a stop is being cut right now: align against its result

      const shown = reply.text;
      const aligned = alignCorrection(shown, req.correction, { maxChars: config.steer.max_correction_chars });
      if (!aligned.ok) return { ok: false, notice: aligned.message };
      const snapped = snapToTokens(aligned, reply.tokens);
      const chosenTokens = this.tokensOf(reply.engine, snapped.chosen);
      const shownTokens = reply.tokens.filter((t) => t.offset < shown.length);
      const user = await store.users.upsert(req.actor.platform, req.actor.userId, req.actor.displayName);
      const trusted = this.permissions.isTrusted(req.actor, user.trust);
      let notice: string | undefined;

      if (user.opted_out) {
        notice = "You opted out, so this correction was applied but not stored.";
        store.personalData.withhold({ generationId: reply.generationId, threadDbId: reply.threadDbId, platform: req.actor.platform, author: req.actor.userId, text: snapped.chosen });
      } else {
        await this.steerLimiter.consume(`${req.actor.platform}:${req.actor.userId}`).catch(() => {});
        const row = await store.transaction(async (tx) => {
          const inserted = await store.steers.insert(
            {
              generation_id: reply.generationId,
              ordinal: reply.steers,
              context: JSON.stringify(reply.context),
              prefix: snapped.prefix,
              rejected: snapped.rejected,
              chosen: snapped.chosen,
              prefix_tokens: reply.tokens.slice(0, snapped.prefixTokenCount).map((t) => t.id),
              rejected_tokens: shownTokens.slice(snapped.prefixTokenCount).map((t) => t.id),
              chosen_tokens: chosenTokens.map((t) => t.id),
              divergence_char: snapped.divergence,
              divergence_token: snapped.prefixTokenCount,
              shown_chars: shown.length,
              shown_tokens: shownTokens.length,
              form: aligned.form,
              model_fingerprint: await this.modelFingerprint(),
              platform: req.actor.platform,
              author: req.actor.userId,
              correction_message_id: req.messageId,
              trust_state: trusted ? "approved" : "pending",
              original_json: null,
            },
            tx,
          );
          if (inserted) await store.conversations.updateGeneration(reply.generationId, { status: "streaming" }, tx);
          return inserted;
        });
        if (!row) return { ok: true };
        if (!trusted) notice = "Thanks! Your correction is stored and waits for an admin's approval before training.";
      }

      reply.steers++;
      reply.truncate(snapped.divergence);
      reply.append(chosenTokens);
      reply.abort = new AbortController();
      reply.state = "generating";
      log.info({ generation: reply.generationId, form: aligned.form, ordinal: reply.steers - 1 }, "steer stored, resuming");
      await this.stream(reply, req.surface);
      return { ok: true, notice };
    } catch (e) {
      log.error({ err: e }, "correction failed");
      return { ok: false, notice: "Sorry, something went wrong with that correction; nothing was stored. Please try again." };
    } finally {
      this.correctionsInFlight.delete(dupKey);
    }
  }

  /** Accepts a reply as it stands: it is done and no longer takes corrections from the thread. */
  async accept(req: AcceptRequest): Promise<Outcome> {
    const reply = this.replies.get(`${req.platform}:${req.messageId}`);
    if (!reply) return { ok: false };
    if (!this.permissions.allows("steer", req.actor, reply.thread, reply.owner.userId)) return { ok: false };
    if (reply.state === "generating") return { ok: false, notice: "That reply is still being written; stop it or wait until it ends." };
    reply.state = "done";
    if (this.lastReplyInThread.get(threadKey(reply.thread)) === reply) this.lastReplyInThread.delete(threadKey(reply.thread));
    this.liveReplies.delete(reply);
    await this.deps.store.conversations.updateGeneration(reply.generationId, { status: "done", final_text: reply.text, finished_at: new Date() });
    return { ok: true };
  }

  /** Waits for every running generation (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.liveReplies].map((r) => r.running));
  }

  // ---------------------------------------------------------------------------------------

  private modelFingerprint(): Promise<string> {
    return (this.fingerprint ??= this.engine.fingerprint());
  }

  private remember(reply: Reply): void {
    this.lastReplyInThread.set(threadKey(reply.thread), reply);
    this.liveReplies.add(reply);
    if (this.liveReplies.size > MAX_LIVE_REPLIES) {
      const old = [...this.liveReplies].find((r) => r.state !== "generating");
      if (old) this.forget(old);
    }
  }

  /**
   * /forget: the replies holding the person's words stop where they are and are never saved or
   * steered again; settles once their generations have ended.
   */
  private async dropReplies(platform: string, userId: string, threadDbIds: readonly number[]): Promise<void> {
    const dropped = [...this.liveReplies].filter((r) => threadDbIds.includes(r.threadDbId) || (r.owner.platform === platform && r.owner.userId === userId));
    for (const r of dropped) {
      r.state = "stopped"; // streamOnce leaves a stopped reply's ending to cut(), which never comes
      r.abort.abort();
      this.forget(r);
    }
    await Promise.all(dropped.map((r) => r.running));
  }

  private forget(reply: Reply): void {
    this.liveReplies.delete(reply);
    for (const id of reply.messageIds) this.replies.delete(`${reply.thread.platform}:${id}`);
    if (this.lastReplyInThread.get(threadKey(reply.thread)) === reply) this.lastReplyInThread.delete(threadKey(reply.thread));
  }

  /** Token ids and texts of a typed span (a correction), texts cut so they add up to the span. */
  private tokensOf(engine: TextGenerator, text: string): StreamedToken[] {
    const ids = engine.tokenize(text);
    const out: StreamedToken[] = [];
    let prev = "";
    ids.forEach((id, i) => {
      const upTo = i === ids.length - 1 ? text : engine.detokenize(ids.slice(0, i + 1));
      // A token ending inside a multi-byte character decodes to U+FFFD; its text waits for the next.
      const safe = upTo.endsWith("\uFFFD") && i < ids.length - 1 ? prev : upTo;
      out.push({ id, text: safe.slice(prev.length), offset: prev.length });
      prev = safe;
    });
    return out;
  }

  /** Generates from the reply's current text, showing it on `surface`, until EOS, max tokens or a stop. */
  private stream(reply: Reply, surface: ReplySurface): Promise<void> {
    const streamed = this.streamOnce(reply, surface);
    reply.streamed = streamed.catch(() => {});
    return streamed;
  }

  private async streamOnce(reply: Reply, surface: ReplySurface): Promise<void> {
    const { config, store, log } = this.deps;
    const engine = reply.engine;
    const display = new StreamDisplay(surface, {
      intervalMs: Math.max(surface.minEditIntervalMs, config.stream.edit_interval_ms),
      onError: (err) => log.warn({ err, generation: reply.generationId }, "could not update the reply message; retrying at the next edit"),
      onMessage: (id) => {
        reply.messageIds.add(id);
        this.replies.set(`${reply.thread.platform}:${id}`, reply);
      },
    });
    reply.display = display;
    if (reply.text) display.update(reply.text);
    let settle!: () => void;
    reply.running = new Promise<void>((r) => (settle = r));
    const signal = reply.abort.signal;
    let result: Awaited<ReturnType<TextGenerator["generate"]>> | undefined;
    try {
      // a resume may have to leave out old turns; a reply that fills the context ends as it is
      const room = reply.tokens.length === 0 || (await this.fitToResume(reply));
      result = room ? await engine.generate({
        messages: reply.context,
        assistantPrefixTokens: reply.tokens.length ? reply.tokens.map((t) => t.id) : undefined,
        assistantPrefix: reply.text,
        maxTokens: config.generation.max_tokens,
        temperature: config.generation.temperature,
        signal,
        onToken: (t) => {
          if (signal.aborted) return;
          reply.append([t]);
          display.update(reply.text);
          if (display.goneError) reply.abort.abort();
        },
      }) : { text: "", tokens: [], stopReason: "maxTokens" };
    } catch (e) {
      log.error({ err: e, generation: reply.generationId }, "generation failed");
      reply.state = "done";
      await store.conversations.finishGeneration(reply.generationId, "failed", reply.text, {}).catch(() => {});
      settle();
      await display.finish(reply.text ? `${reply.text}\n\n(generation failed)` : "(generation failed)").catch(() => {});
      return;
    }
    settle();
    if (reply.state === "stopped") return; // cut() owns the ending
    if (display.goneError) {
      log.info({ generation: reply.generationId, reason: display.goneError.message }, "reply message gone; generation stopped");
      reply.state = "stopped";
      await store.conversations.finishGeneration(reply.generationId, "stopped", reply.text.slice(0, display.shownLength), {});
      this.forget(reply);
      return;
    }
    await display.finish(reply.text);
    if ((reply.state as Reply["state"]) === "stopped") return; // stopped while the last edits went out: cut() owns the ending
    reply.state = "done";
    await this.saveReply(reply, "done", { generatedTokens: result.tokens.length });
  }

  /** Tokens a prompt may take so that a whole reply (`generation.max_tokens`) still fits. */
  private contextBudget(engine: TextGenerator): number {
    return engine.contextSize - this.deps.config.generation.max_tokens;
  }

  /**
   * Before a reply resumes after a steer its text so far is part of the prompt too, so older
   * turns may have to go for the continuation to have room for a whole reply; the generation
   * row follows (what the model sees, how many messages it does not). False when the reply
   * alone fills the context: it ends where it is.
   */
  private async fitToResume(reply: Reply): Promise<boolean> {
    const { store, log } = this.deps;
    const fitted = fitContext(reply.engine, reply.context, this.contextBudget(reply.engine), reply.tokens.length);
    if (fitted.dropped > 0) {
      reply.context = fitted.messages;
      const gen = await store.conversations.getGeneration(reply.generationId);
      if (gen) {
        const stored = gen.context_messages.filter((_, i) => i < fitted.droppedFrom || i >= fitted.droppedFrom + fitted.dropped); // keeps an opted-out author's question withheld
        await store.conversations.updateGeneration(reply.generationId, {
          context_messages: JSON.stringify(stored),
          context_text: reply.engine.renderContext(stored).text,
          dropped_messages: gen.dropped_messages + fitted.dropped,
        });
      }
    }
    if (fitted.promptTokens < reply.engine.contextSize) return true;
    log.info({ generation: reply.generationId, tokens: fitted.promptTokens }, "the reply fills the model's context; it ends here");
    return false;
  }

  /** Aborts generation and cuts the reply to exactly the text the person saw. */
  private cut(reply: Reply): Promise<void> {
    reply.state = "stopped";
    reply.cutting = this.doCut(reply).finally(() => (reply.cutting = undefined));
    return reply.cutting;
  }

  private async doCut(reply: Reply): Promise<void> {
    const display = reply.display;
    const shown = display ? await display.freeze() : reply.text.length;
    reply.abort.abort();
    await reply.running;
    reply.truncate(shown);
    await display?.cutTo(shown);
    await this.saveReply(reply, "stopped", {});
  }

  private async saveReply(reply: Reply, status: "done" | "stopped", timings: Record<string, number>): Promise<void> {
    const { store } = this.deps;
    await store.conversations.finishGeneration(reply.generationId, status, reply.text, timings);
    if (reply.historyMessageId === undefined) {
      reply.historyMessageId = await store.conversations.addMessage(reply.threadDbId, { role: "assistant", text: reply.text, platformMessageIds: [...reply.messageIds] });
    } else {
      await store.conversations.updateMessageText(reply.historyMessageId, reply.text);
    }
  }
}

function threadKey(t: ThreadRef): string {
  return `${t.platform}:${t.chatId}:${t.threadId}`;
}

export type { Actor };
