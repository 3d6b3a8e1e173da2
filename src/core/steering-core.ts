/**
 * The conversation core: ask → stream → stop → correct → resume → accept, for every platform.
 *
 * Owns: the live replies (which platform message belongs to which reply; bounded, an accepted
 * reply is forgotten at once; each message is also recorded on its generation in the database as
 * it is sent, so other instances sharing the database can tell that this one streams it), the stop point (the text shown, from {@link StreamDisplay}),
 * turning a correction into a stored steer (alignment against the message it answers, token
 * snapping, one transaction) and resuming generation from the corrected text, and the limits
 * on asks and steers (per user per minute; a "busy" answer when too many replies are being
 * written). Every change of a reply goes through that reply's queue ({@link Reply.run}). Platform
 * adapters call it with plain data ({@link ./ports.ts}); it answers with short notices and
 * never throws at them: a failure is logged and becomes an Outcome.
 */
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { AppConfig } from "../config/config.ts";
import type { Logger } from "../log.ts";
import { PersonalData } from "../store/personal-data.ts";
import type { AdminStore, CoreStore } from "./core-store.ts";
import { AdminCommands, type TrainingControl } from "./admin-commands.ts";
import { NO_OBSERVER, safeObserver, type CoreObserver, type StreamTrigger } from "./core-observer.ts";
import { EngineBusyError } from "./errors.ts";
import { alignCorrection } from "./alignment.ts";
import { fitContext } from "./context-budget.ts";
import { Permissions } from "./permissions.ts";
import type { AcceptRequest, Actor, AskRequest, CorrectRequest, GenerationSettings, Outcome, ReplySurface, StopRequest, ThreadRef } from "./ports.ts";
import { Reply, sharedTokens, type ReplyState, type ReplyView } from "./reply.ts";
import type { ChatMessage } from "./steer-record.ts";
import { StreamDisplay } from "./stream-display.ts";
import type { StreamedToken, TextGenerator } from "./text-generator.ts";
import { snapToTokens } from "./token-snap.ts";

/** Live replies kept for stops and corrections; older finished ones are forgotten first. */
const MAX_LIVE_REPLIES = 2000;
/** Messages of accepted replies remembered for a clear "it was accepted" answer. */
const MAX_ACCEPTED_MESSAGES = 2000;

export interface SteeringCoreDeps {
  store: CoreStore & AdminStore;
  engine: TextGenerator;
  config: AppConfig;
  log: Logger;
  /** Told of replies, stops, steers, refusals and platform call latencies (the app's metrics). */
  observer?: CoreObserver;
}

export class SteeringCore {
  readonly admin: AdminCommands;
  readonly permissions: Permissions;
  /** The training pipeline behind /retrain and /adapters, attached once it is set up. */
  training: TrainingControl | undefined;
  private readonly replies = new Map<string, Reply>(); // "platform:messageId" → reply
  private readonly lastReplyInThread = new Map<string, Reply>();
  private readonly liveReplies = new Set<Reply>();
  /** "platform:messageId" of the newest accepted replies' messages, so they get a clear answer (oldest dropped first). */
  private readonly acceptedMessages = new Set<string>();
  private readonly correctionsInFlight = new Set<string>();
  private readonly steerLimiter: RateLimiterMemory;
  private readonly askLimiter: RateLimiterMemory;
  /** Asks past the busy check that have no reply yet (they count as being written). */
  private asksStarting = 0;
  private fingerprint: Promise<string> | undefined;
  /** The model new replies use; replaced by {@link useEngine} when an adapter is swapped in. */
  private engine: TextGenerator;
  private adapterId: number | null = null;
  private readonly observer: CoreObserver;

  constructor(private readonly deps: SteeringCoreDeps) {
    this.engine = deps.engine;
    this.observer = safeObserver(deps.observer ?? NO_OBSERVER, (err) => deps.log.warn({ err }, "a metrics observer failed; counting goes on without it"));
    this.permissions = new Permissions(deps.config.permissions);
    this.steerLimiter = new RateLimiterMemory({ points: deps.config.steer.per_user_per_minute, duration: 60 });
    this.askLimiter = new RateLimiterMemory({ points: deps.config.ask.per_user_per_minute, duration: 60 });
    this.admin = new AdminCommands({
      store: deps.store,
      permissions: this.permissions,
      engine: { modelPath: deps.engine.modelPath, fingerprint: () => this.modelFingerprint() },
      training: () => this.training,
      activeGenerations: () => this.generatingCount,
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
   * engine once no live reply uses it any more, so the caller can dispose it. The move of each
   * reply goes through its queue, so a correction being applied right now resumes on `next`
   * (or has its generation waited for), never on the engine about to be disposed.
   */
  async useEngine(next: TextGenerator, adapterId: number | null): Promise<TextGenerator> {
    const previous = this.engine;
    this.engine = next;
    this.adapterId = adapterId;
    for (;;) {
      const users = [...this.liveReplies].filter((r) => r.engine === previous || r.runningOn === previous);
      if (users.length === 0) break;
      await Promise.all(
        users.map(async (r) => {
          await r.run(() => {
            r.engine = next;
          });
          if (r.runningOn === previous) await r.running;
        }),
      );
    }
    return previous;
  }

  /** Replies held in memory (generating, stopped or finished, not yet accepted or forgotten). */
  get replyCount(): number {
    return this.liveReplies.size;
  }

  /** Replies generating right now. */
  get generatingCount(): number {
    let n = 0;
    for (const r of this.liveReplies) if (r.state === "generating") n++;
    return n;
  }

  isBotMessage(platform: string, messageId: string): boolean {
    const key = `${platform}:${messageId}`;
    return this.replies.has(key) || this.acceptedMessages.has(key);
  }

  /** The state of the reply a platform message belongs to (undefined: not a live or recently accepted reply). */
  replyState(platform: string, messageId: string): ReplyState | undefined {
    const key = `${platform}:${messageId}`;
    return this.replies.get(key)?.state ?? (this.acceptedMessages.has(key) ? "accepted" : undefined);
  }

  /** The thread's open reply: its newest one, unless that was accepted. */
  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: Exclude<ReplyState, "accepted"> } | undefined {
    const r = this.lastReplyInThread.get(threadKey(thread));
    return r && r.state !== "accepted" ? { messageIds: r.messageIds, state: r.state } : undefined;
  }

  /** Starts a reply to a question and streams it; settles when its generation has ended. */
  async ask(req: AskRequest): Promise<Outcome> {
    const { store, config, log } = this.deps;
    let limited = false; // an ask point was taken and not yet earned by a reply
    try {
      if (!this.permissions.allows("ask", req.actor, req.thread)) return { ok: false, notice: "You are not allowed to ask the bot here." };
      if (req.text.trim() === "") return { ok: false, notice: "Ask me something: write your question after the mention or /ask." };
      const settings = req.settings ?? {};
      const badSettings = this.checkSettings(settings);
      if (badSettings) return { ok: false, notice: badSettings };
      if (!req.actor.operator) {
        const wait = await take(this.askLimiter, limiterKey(req.actor));
        if (wait !== undefined) {
          this.observer.refused(req.actor.platform, "ask_rate_limit");
          return { ok: false, notice: `You are asking very fast: please wait ${Math.ceil(wait / 1000)} s and ask again.` };
        }
        limited = true;
      }
      const capacity = (this.engine.sequences ?? 1) + config.generation.max_queued;
      if (this.generatingCount + this.asksStarting >= capacity) {
        this.observer.refused(req.actor.platform, "busy");
        return { ok: false, notice: `I am busy right now: ${capacity} replies are being written or waiting. Please ask again in a minute.` };
      }
      let streaming: Promise<void> | undefined;
      this.asksStarting++;
      try {
        const user = await store.users.upsert(req.actor.platform, req.actor.userId, req.actor.displayName);
        const threadDbId = await store.conversations.upsertThread(req.thread, user.opted_out ? undefined : req.actor.userId);
        // The newest turns that fit with room for a whole reply (a thread may last forever).
        const history = await store.conversations.history(threadDbId, this.engine.contextSize);
        const systemPrompt = settings.systemPrompt ?? config.generation.system_prompt;
        const system: ChatMessage[] = systemPrompt ? [{ role: "system", content: systemPrompt }] : [];
        const maxTokens = settings.maxTokens ?? config.generation.max_tokens;
        const fitted = fitContext(this.engine, [...system, ...history.messages, { role: "user", content: req.text }], this.contextBudget(this.engine, maxTokens));
        if (!fitted.ok) {
          return {
            ok: false,
            notice:
              `Your message is too long for this model: it needs ${fitted.promptTokens} tokens of context and ${this.contextBudget(this.engine, maxTokens)} are free ` +
              `(${this.engine.contextSize} in all, ${maxTokens} kept for the reply). Please shorten it.`,
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
        const r = new Reply(gen.id, req.thread, threadDbId, req.actor, context, this.engine, settings);
        limited = false;
        this.remember(r);
        ({ streaming } = await r.run(() => ({ streaming: this.stream(r, req.surface, "question") })));
      } finally {
        this.asksStarting--;
      }
      await streaming;
      return { ok: true };
    } catch (e) {
      log.error({ err: e, platform: req.actor.platform }, "ask failed");
      return { ok: false, notice: "Sorry, something went wrong while answering. Please try again." };
    } finally {
      if (limited) await this.askLimiter.reward(limiterKey(req.actor), 1).catch(() => {}); // nothing was asked after all
    }
  }

  /**
   * Stops a streaming reply at the text shown; settles once generation is aborted and the
   * message cut. A stop only ends the stream that was running when it arrived: a reply that a
   * correction resumed meanwhile is not stopped by a reaction meant for the text before.
   */
  async stop(req: StopRequest): Promise<Outcome> {
    const reply = this.replies.get(`${req.platform}:${req.messageId}`);
    if (!reply) return { ok: false };
    if (!this.permissions.allows("stop", req.actor, reply.thread, reply.owner.userId)) return { ok: false }; // strangers are ignored silently
    const stream = reply.stream;
    if (!reply.isStreaming(stream)) return { ok: true };
    try {
      await reply.run(async () => {
        if (!reply.isStreaming(stream)) return;
        await this.cut(reply, req.displayed);
        this.observer.stopped(req.platform);
      });
      return { ok: true };
    } catch (e) {
      this.deps.log.error({ err: e }, "stop failed");
      return { ok: false, notice: "Sorry, I could not stop that reply cleanly." };
    }
  }

  /**
   * Turns a correction into a stored steer and resumes; settles when the continuation ends.
   * It is aligned against the text of the message it answers, as that message showed it (the
   * newest one when it answers none), and waits in the reply's queue behind any other change.
   */
  async correct(req: CorrectRequest): Promise<Outcome> {
    const { store, log } = this.deps;
    const key = req.replyToMessageId === undefined ? undefined : `${req.actor.platform}:${req.replyToMessageId}`;
    const reply = key ? this.replies.get(key) : this.lastReplyInThread.get(threadKey(req.thread));
    if (!reply || reply.state === "accepted") {
      return key && this.acceptedMessages.has(key)
        ? { ok: false, notice: ACCEPTED_NOTICE }
        : { ok: false, notice: "That reply can no longer be steered (it is too old or the bot restarted). Ask again to start a new one." };
    }
    if (!this.permissions.allows("steer", req.actor, reply.thread, reply.owner.userId)) return { ok: false };
    // What its author looked at: the message answered, or the reply's newest message now.
    const view = req.replyToMessageId === undefined ? reply.currentView : reply.viewOf(req.replyToMessageId);
    if (!view) return { ok: false, notice: "That reply can no longer be steered (it is too old or the bot restarted). Ask again to start a new one." };
    const dupKey = `${req.actor.platform}:${req.messageId}`;
    if (this.correctionsInFlight.has(dupKey)) return { ok: true };
    this.correctionsInFlight.add(dupKey);
    let limited = false; // a steer point was taken and not yet earned
    try {
      if (await store.steers.findByCorrection(req.actor.platform, req.messageId)) return { ok: true }; // delivered twice
      const wait = await take(this.steerLimiter, limiterKey(req.actor));
      if (wait !== undefined) {
        this.observer.refused(req.actor.platform, "steer_rate_limit");
        return { ok: false, notice: `You are steering very fast: please wait ${Math.ceil(wait / 1000)} s and send it again.` };
      }
      limited = true;
      const applied = await reply.run(() => this.applyCorrection(reply, view, req));
      if (!("streaming" in applied)) return applied.outcome;
      limited = false;
      await applied.streaming;
      return { ok: true, notice: applied.notice };
    } catch (e) {
      log.error({ err: e }, "correction failed");
      return { ok: false, notice: "Sorry, something went wrong with that correction; nothing was stored. Please try again." };
    } finally {
      this.correctionsInFlight.delete(dupKey);
      if (limited) await this.steerLimiter.reward(limiterKey(req.actor), 1).catch(() => {});
    }
  }

  /** Accepts a reply as it stands: it is done for good, and its memory is freed. */
  async accept(req: AcceptRequest): Promise<Outcome> {
    const key = `${req.platform}:${req.messageId}`;
    const reply = this.replies.get(key);
    if (!reply) return this.acceptedMessages.has(key) ? { ok: true } : { ok: false };
    if (!this.permissions.allows("steer", req.actor, reply.thread, reply.owner.userId)) return { ok: false };
    try {
      return await reply.run(async (): Promise<Outcome> => {
        if (reply.state === "accepted") return { ok: true };
        if (reply.state === "generating") return { ok: false, notice: "That reply is still being written; stop it or wait until it ends." };
        reply.markAccepted();
        this.forget(reply, true);
        await this.deps.store.conversations.updateGeneration(reply.generationId, { status: "done", final_text: reply.text, finished_at: new Date() });
        return { ok: true };
      });
    } catch (e) {
      this.deps.log.error({ err: e }, "accept failed");
      return { ok: false, notice: "Sorry, I could not accept that reply. Please try again." };
    }
  }

  /**
   * What the message of a live reply shows now, and where its tokens start (the studio snaps a
   * click to them before it even asks the server); undefined when the message is no live reply's.
   */
  replySnapshot(platform: string, messageId: string): { generationId: number; state: Exclude<ReplyState, "accepted">; text: string; boundaries: number[]; owner: Actor } | undefined {
    const reply = this.replies.get(`${platform}:${messageId}`);
    const view = reply?.viewOf(messageId);
    if (!reply || !view || reply.state === "accepted") return undefined;
    const seen = reply.seen(view);
    const boundaries = [...new Set(seen.tokens.filter((t) => t.offset < seen.text.length).map((t) => t.offset))];
    return { generationId: reply.generationId, state: reply.state, text: seen.text, boundaries, owner: reply.owner };
  }

  /** Settles once every change queued on the reply of this message so far has run (a stop's cut included). */
  async replySettled(platform: string, messageId: string): Promise<void> {
    await this.replies.get(`${platform}:${messageId}`)?.run(() => {});
  }

  /**
   * Deletes one of the actor's own steers, unless it has trained (store: `removeOwn`). The reply
   * it corrected keeps its text; only the training pair goes.
   */
  async removeSteer(actor: Actor, steerId: number): Promise<Outcome> {
    try {
      const r = await this.deps.store.steers.removeOwn(steerId, { platform: actor.platform, author: actor.userId });
      if (r.removed) return { ok: true, notice: `Steer #${steerId} removed.` };
      const why = {
        missing: `There is no steer #${steerId} (already removed?).`,
        not_author: `Steer #${steerId} is not yours: only its author can remove it (admins can reject it instead).`,
        trained: `Steer #${steerId} has already trained an adapter, so it can no longer be removed (an admin can reject it for future runs).`,
      }[r.reason];
      return { ok: false, notice: why };
    } catch (e) {
      this.deps.log.error({ err: e }, "removing a steer failed");
      return { ok: false, notice: "Sorry, the steer could not be removed. Please try again." };
    }
  }

  /** Waits for every change queued on a live reply and every running generation (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.liveReplies].map((r) => r.run(() => {}).then(() => r.running)));
  }

  // ---------------------------------------------------------------------------------------

  /**
   * The part of a correction that changes the reply, run in its queue: cut what is running,
   * align against what the author saw, store the steer, resume. Answers the stream it started,
   * or the outcome when it stops short (nothing stored then).
   */
  private async applyCorrection(
    reply: Reply,
    view: ReplyView,
    req: CorrectRequest,
  ): Promise<{ streaming: Promise<void>; notice?: string } | { outcome: Outcome }> {
    const { store, config, log } = this.deps;
    if (reply.state === "accepted") return { outcome: { ok: false, notice: ACCEPTED_NOTICE } };
    if (!this.liveReplies.has(reply)) return { outcome: { ok: false, notice: "That reply can no longer be steered (its message is gone or it is too old). Ask again to start a new one." } };
    const current = view === reply.currentView;
    if (current && reply.state === "generating") await this.cut(reply); // a correction while generating stops at what was shown

    const seen = reply.seen(view);
    const shown = seen.text;
    const aligned = req.correction.divergence === undefined ? alignCorrection(shown, req.correction, { maxChars: config.steer.max_correction_chars }) : pointedCorrection(shown, req.correction.text, req.correction.divergence, config.steer.max_correction_chars);
    if (!aligned.ok) return { outcome: { ok: false, notice: aligned.message } };
    const snapped = snapToTokens(aligned, seen.tokens);
    // An older message: its text up to the divergence must still be how the reply begins.
    if (!current && snapped.prefixTokenCount > sharedTokens(seen.tokens, reply.tokens)) return { outcome: { ok: false, notice: GONE_NOTICE } };
    if (reply.state === "generating") await this.cut(reply); // the newer stream ends where it was shown
    const chosenTokens = this.tokensOf(reply.engine, snapped.chosen);
    const shownTokens = seen.tokens.filter((t) => t.offset < shown.length);
    const user = await store.users.upsert(req.actor.platform, req.actor.userId, req.actor.displayName);
    const trusted = this.permissions.isTrusted(req.actor, user.trust);
    let notice: string | undefined;

    if (user.opted_out) {
      notice = "You opted out, so this correction was applied but not stored.";
      store.personalData.withhold({ generationId: reply.generationId, threadDbId: reply.threadDbId, platform: req.actor.platform, author: req.actor.userId, text: snapped.chosen });
      this.observer.steerApplied(req.actor.platform, "withheld");
    } else {
      const row = await store.transaction(async (tx) => {
        const inserted = await store.steers.insert(
          {
            generation_id: reply.generationId,
            ordinal: reply.steers,
            context: JSON.stringify(reply.context),
            prefix: snapped.prefix,
            rejected: snapped.rejected,
            chosen: snapped.chosen,
            prefix_tokens: seen.tokens.slice(0, snapped.prefixTokenCount).map((t) => t.id),
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
        if (inserted) {
          // The reply is now prefix + chosen, in the history too, in the same transaction: a
          // crash before the resumed stream ends must not leave the rejected text in the
          // thread's history, where the next question's context would carry it.
          const corrected = snapped.prefix + snapped.chosen;
          await store.conversations.updateGeneration(reply.generationId, { status: "streaming", final_text: corrected }, tx);
          if (reply.historyMessageId !== undefined) await store.conversations.updateMessageText(reply.historyMessageId, corrected, tx);
        }
        return inserted;
      });
      if (!row) return { outcome: { ok: true } };
      reply.steers++;
      this.observer.steerApplied(req.actor.platform, trusted ? "approved" : "pending");
      if (!trusted) notice = "Thanks! Your correction is stored and waits for an admin's approval before training.";
    }

    const { dropped } = reply.resume(seen, snapped.prefixTokenCount, chosenTokens);
    for (const id of dropped) this.replies.delete(`${reply.thread.platform}:${id}`);
    log.info({ generation: reply.generationId, form: aligned.form, ordinal: reply.steers - 1, view: view.index }, "steer stored, resuming");
    return { streaming: this.stream(reply, req.surface, "steer"), notice };
  }

  /** Why these per-conversation settings cannot be used (undefined: they can). */
  private checkSettings(s: GenerationSettings): string | undefined {
    const room = this.engine.contextSize - 16;
    if (s.maxTokens !== undefined && !(Number.isSafeInteger(s.maxTokens) && s.maxTokens >= 1 && s.maxTokens <= room)) {
      return `Max tokens must be a whole number from 1 to ${room} (this model's context holds ${this.engine.contextSize} tokens).`;
    }
    if (s.temperature !== undefined && !(Number.isFinite(s.temperature) && s.temperature >= 0 && s.temperature <= 5)) return "Temperature must be a number from 0 to 5.";
    if (s.systemPrompt !== undefined && s.systemPrompt.length > 20_000) return "The system prompt is too long (20000 characters at most).";
    return undefined;
  }

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
   * steered again (through each reply's queue, ending final: a change queued behind finds it
   * closed); settles once their generations have ended.
   */
  private async dropReplies(platform: string, userId: string, threadDbIds: readonly number[]): Promise<void> {
    const dropped = [...this.liveReplies].filter((r) => threadDbIds.includes(r.threadDbId) || (r.owner.platform === platform && r.owner.userId === userId));
    await Promise.all(
      dropped.map((r) =>
        r.run(() => {
          if (r.state === "generating") {
            r.markStopped(); // the stream's end then saves nothing: a stop owns it, and none comes
            this.observer.replyFinished(r.thread.platform, "dropped");
          }
          if (r.state === "stopped" || r.state === "done") r.markAccepted();
          this.forget(r);
        }),
      ),
    );
    await Promise.all(dropped.map((r) => r.running));
  }

  /** Drops a reply from memory; an accepted one's messages still get the "accepted" answer. */
  private forget(reply: Reply, accepted = false): void {
    this.liveReplies.delete(reply);
    for (const id of reply.messageIds) {
      const key = `${reply.thread.platform}:${id}`;
      if (this.replies.get(key) === reply) this.replies.delete(key);
      if (accepted) this.acceptedMessages.add(key);
    }
    for (const key of this.acceptedMessages) {
      if (this.acceptedMessages.size <= MAX_ACCEPTED_MESSAGES) break;
      this.acceptedMessages.delete(key);
    }
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

  /**
   * Generates from the reply's current text, showing it on `surface`, until EOS, max tokens or a
   * stop. Called inside the reply's queue (it reads the engine and the stream there); the
   * returned promise is awaited outside it, so a stop can cut the stream.
   */
  private stream(reply: Reply, surface: ReplySurface, trigger: StreamTrigger): Promise<void> {
    this.observer.replyStarted(reply.thread.platform, trigger);
    const streamed = this.streamOnce(reply, surface);
    reply.streamed = streamed.catch(() => {});
    return streamed;
  }

  private async streamOnce(reply: Reply, surface: ReplySurface): Promise<void> {
    const { config, store, log } = this.deps;
    // All of this before the first await: the stream's engine, signal and view are fixed here.
    const stream = reply.stream;
    const engine = reply.engine;
    const signal = reply.signal;
    const view = reply.currentView;
    const platform = reply.thread.platform;
    const display = new StreamDisplay(surface, {
      intervalMs: surface.editIntervalMs ?? Math.max(surface.minEditIntervalMs, config.stream.edit_interval_ms),
      onError: (err) => log.warn({ err, generation: reply.generationId }, "could not update the reply message; retrying at the next edit"),
      onMessage: (id) => {
        view.messageIds.add(id);
        if (this.liveReplies.has(reply)) this.replies.set(`${reply.thread.platform}:${id}`, reply);
        // Other instances sharing the database find this reply, and that it is streamed here, by the message.
        void store.conversations.addPlatformMessage(reply.generationId, id).catch((err) => log.warn({ err, generation: reply.generationId }, "could not record the reply's message id"));
      },
      onCall: (op, seconds, ok) => this.observer.surfaceCall(platform, op, seconds, ok),
    });
    reply.display = display;
    if (reply.text) display.update(reply.text);
    let settle!: () => void;
    reply.running = new Promise<void>((r) => (settle = r));
    reply.runningOn = engine;
    const ended = () => {
      reply.runningOn = undefined;
      settle();
    };
    let result: Awaited<ReturnType<TextGenerator["generate"]>> | undefined;
    try {
      // a resume may have to leave out old turns; a reply that fills the context ends as it is
      const room = reply.tokens.length === 0 || (await this.fitToResume(reply));
      result = room ? await engine.generate({
        messages: reply.context,
        assistantPrefixTokens: reply.tokens.length ? reply.tokens.map((t) => t.id) : undefined,
        assistantPrefix: reply.text,
        maxTokens: reply.settings.maxTokens ?? config.generation.max_tokens,
        temperature: reply.settings.temperature ?? config.generation.temperature,
        signal,
        onToken: (t) => {
          if (signal.aborted) return;
          reply.append([t]);
          display.update(reply.text);
          if (display.goneError) reply.abort(stream);
        },
      }) : { text: "", tokens: [], stopReason: "maxTokens" };
    } catch (e) {
      ended();
      const busy = e instanceof EngineBusyError;
      if (busy) log.warn({ generation: reply.generationId, waiting: e.waiting }, "the engine is busy; generation refused");
      else log.error({ err: e, generation: reply.generationId }, "generation failed");
      const why = busy ? "(the bot is busy right now: please try again in a minute)" : "(generation failed)";
      const failed = await reply.run(async () => {
        if (!reply.markEnded(stream, "done")) return false;
        await store.conversations.finishGeneration(reply.generationId, "failed", reply.text, {}).catch(() => {});
        this.observer.replyFinished(platform, "failed");
        return true;
      });
      if (failed) await display.finish(reply.text ? `${reply.text}\n\n${why}` : why).catch(() => {});
      return;
    }
    ended();
    if (!reply.isStreaming(stream)) return; // a stop (cut) owns the ending
    if (display.goneError) {
      const reason = display.goneError.message;
      await reply.run(async () => {
        if (!reply.markEnded(stream, "stopped")) return;
        this.observer.replyFinished(platform, "gone");
        log.info({ generation: reply.generationId, reason }, "reply message gone; generation stopped");
        await store.conversations.finishGeneration(reply.generationId, "stopped", reply.text.slice(0, display.shownLength), {});
        this.forget(reply);
      });
      return;
    }
    await display.finish(reply.text);
    const generatedTokens = result.tokens.length;
    await reply.run(async () => {
      if (!reply.markEnded(stream, "done")) return; // stopped while the last edits went out: cut() owned the ending
      this.observer.replyFinished(platform, "done");
      await this.saveReply(reply, "done", { generatedTokens });
    });
  }

  /** Tokens a prompt may take so that a whole reply (`generation.max_tokens`, or the conversation's) still fits. */
  private contextBudget(engine: TextGenerator, maxTokens = this.deps.config.generation.max_tokens): number {
    return engine.contextSize - maxTokens;
  }

  /**
   * Before a reply resumes after a steer its text so far is part of the prompt too, so older
   * turns may have to go for the continuation to have room for a whole reply; the generation
   * row follows (what the model sees, how many messages it does not). False when the reply
   * alone fills the context: it ends where it is.
   */
  private async fitToResume(reply: Reply): Promise<boolean> {
    const { store, log } = this.deps;
    const fitted = fitContext(reply.engine, reply.context, this.contextBudget(reply.engine, reply.settings.maxTokens), reply.tokens.length);
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

  /**
   * Aborts generation and cuts the reply to exactly the text the person saw (never shorter
   * than what the stream resumed from: that was seen in the older message). Runs inside the
   * reply's queue, on a generating reply.
   */
  private async cut(reply: Reply, displayed?: number): Promise<void> {
    reply.markStopped();
    this.observer.replyFinished(reply.thread.platform, "stopped");
    const display = reply.display;
    let shown = display ? await display.freeze() : reply.text.length;
    // What the person's screen says it displayed, when it says (the studio): never more than was sent.
    if (displayed !== undefined && Number.isSafeInteger(displayed) && displayed >= 0 && displayed < shown) {
      shown = displayed;
      const code = reply.text.charCodeAt(shown - 1);
      if (code >= 0xd800 && code <= 0xdbff) shown--; // never half a surrogate pair
    }
    shown = Math.max(shown, reply.resumedFrom);
    await reply.running;
    reply.truncate(shown);
    await display?.cutTo(shown);
    await this.saveReply(reply, "stopped", {});
  }

  private async saveReply(reply: Reply, status: "done" | "stopped", timings: Record<string, number>): Promise<void> {
    const { store } = this.deps;
    await store.conversations.finishGeneration(reply.generationId, status, reply.text, timings);
    if (reply.historyMessageId === undefined) {
      reply.historyMessageId = await store.conversations.addMessage(reply.threadDbId, { role: "assistant", text: reply.text, platformMessageIds: reply.messageIds });
    } else {
      await store.conversations.updateMessageText(reply.historyMessageId, reply.text);
    }
  }
}

/** Answer to a correction of an accepted reply. */
const ACCEPTED_NOTICE = "That reply was accepted, so it takes no more corrections. Ask again to start a new one.";
/** Answer to a correction of an older message whose text another correction has replaced since. */
const GONE_NOTICE =
  "Another correction has changed that part of the reply since, so yours no longer fits the text. Look at the reply as it is now and correct that if needed.";

/** A split at a clicked point; `form` "click" is stored on the steer. */
export type PointedResult = { ok: true; prefix: string; rejected: string; chosen: string; form: "click"; divergence: number } | { ok: false; message: string };

/**
 * A correction at an explicit point (the studio: a click in the reply's text): no alignment
 * guess, the divergence is where the person pointed (snapped to a token afterwards, as every
 * alignment is), everything after it up to the stop point is rejected, the text is the chosen
 * span.
 */
export function pointedCorrection(shown: string, text: string, divergence: number, maxChars: number): PointedResult {
  const chosen = text; // as typed: a leading space after the clicked word is meant
  if (!Number.isSafeInteger(divergence) || divergence < 0 || divergence > shown.length) {
    return { ok: false, message: `That point (${divergence}) is not in the reply (it has ${shown.length} characters). Click in the reply's text.` };
  }
  if (chosen.trim() === "") return { ok: false, message: "Type what it should have said from the point you clicked." };
  const length = [...chosen].length;
  if (length > maxChars) return { ok: false, message: `That correction is ${length} characters; the limit is ${maxChars}. Keep it short: just the part that should change.` };
  let d = divergence;
  const code = shown.charCodeAt(d - 1);
  if (d > 0 && d < shown.length && code >= 0xd800 && code <= 0xdbff) d--; // never inside a surrogate pair
  return { ok: true, prefix: shown.slice(0, d), rejected: shown.slice(d), chosen, form: "click", divergence: d };
}

function limiterKey(actor: Actor): string {
  return `${actor.platform}:${actor.userId}`;
}

/**
 * Takes one point from `limiter` in one step (check and consume cannot be split by another
 * request of the same person); undefined when taken, else the milliseconds until one is free.
 */
async function take(limiter: RateLimiterMemory, key: string): Promise<number | undefined> {
  try {
    await limiter.consume(key);
    return undefined;
  } catch (e) {
    if (e instanceof RateLimiterRes) return e.msBeforeNext;
    throw e;
  }
}

function threadKey(t: ThreadRef): string {
  return `${t.platform}:${t.chatId}:${t.threadId}`;
}

export type { Actor };
