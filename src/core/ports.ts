/**
 * The seams between the platform adapters and the platform-free conversation core.
 *
 * Owns: the small interfaces a platform (Discord, Telegram, the terminal playground) implements
 * so the core can show a streamed reply, and the request/answer shapes the adapters send into
 * the core. Nothing here knows an SDK: adapters translate their events into these calls.
 */
import type { Correction as TypedCorrection } from "./alignment.ts";

/**
 * A correction as an adapter delivers it: the typed forms (aligned by alignment.ts), or — where
 * the platform knows exactly where the person pointed (the studio: a click in the reply's text)
 * — an explicit `divergence`, a UTF-16 offset into the text of the message answered. With it no
 * alignment is guessed: the offset is snapped back to a token boundary and `text` is the chosen
 * span as typed.
 */
export interface Correction extends TypedCorrection {
  divergence?: number;
}

/**
 * Generation settings one conversation may choose (the studio's settings panel); each unset
 * one is the configuration's `generation.*`. A reply keeps the settings it was asked with for
 * every resume after a steer.
 */
export interface GenerationSettings {
  /** "" for none. */
  systemPrompt?: string;
  temperature?: number;
  maxTokens?: number;
}

/** Who did something, as the platform reports it. Permissions and trust are decided in the core. */
export interface Actor {
  platform: string;
  /** Platform user id (string form). */
  userId: string;
  /** Shown in logs and admin listings only. */
  displayName?: string;
  /** Platform role ids (Discord roles; Telegram: "administrator"/"creator" for chat admins). */
  roles?: string[];
  /**
   * Set when `roles` are only meaningful in one chat (Telegram: the chat whose admin status they
   * are; anyone can make a group and be its admin). Such roles count for `admins`/`trusted` only
   * where that chat is in the rule's `role_chats`. Discord role ids are guild-scoped already.
   */
  rolesChatId?: string;
  /**
   * The person running this steerbot at its own terminal (the playground): an admin, whose
   * steers are approved, as on the CLI. Only the terminal platform sets it.
   */
  operator?: boolean;
}

/** Where a conversation lives: the model's context is the history of this thread. */
export interface ThreadRef {
  platform: string;
  /** Guild channel / Telegram chat id. */
  chatId: string;
  /** Discord thread id, Telegram forum topic id, or the chatId itself for plain chats/DMs. */
  threadId: string;
}

/**
 * What a platform offers to show one streamed reply. The core decides when to edit (throttle,
 * only when changed) and where to split; the surface only talks to the platform.
 */
export interface ReplySurface {
  /** Longest text one message may hold here (Discord 2000, Telegram 4096). */
  readonly maxMessageLength: number;
  /** Minimum time between two edits of the same message, in ms (about 1000). */
  readonly minEditIntervalMs: number;
  /**
   * Time between two edits for this surface, in ms, instead of the configured
   * `stream.edit_interval_ms` (a platform limit): the studio streams token by token.
   */
  readonly editIntervalMs?: number;
  /** Sends a new message and returns its platform message id. */
  send(text: string): Promise<string>;
  /** Replaces the text of a message this surface sent. */
  edit(messageId: string, text: string): Promise<void>;
}

/**
 * Thrown by a surface when the message or chat is gone for good (deleted message, bot removed
 * from the chat): the core stops the generation cleanly instead of retrying.
 */
export class SurfaceGoneError extends Error {
  override readonly name = "SurfaceGoneError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface AskRequest {
  thread: ThreadRef;
  actor: Actor;
  /** The question as the user wrote it (mention stripped). */
  text: string;
  /** Platform id of the user's message (duplicates of the same message start nothing). */
  sourceMessageId: string;
  surface: ReplySurface;
  /** Per-conversation generation settings (unset: the configuration's). */
  settings?: GenerationSettings;
}

export interface StopRequest {
  platform: string;
  /** Any message id of the reply (a reply may span several messages). */
  messageId: string;
  actor: Actor;
  /**
   * Characters of the reply the person's screen had displayed when they stopped (the studio
   * counts what it rendered). The stop point is the shorter of this and what the core knows was
   * shown, so nothing the person did not see enters the rejected span.
   */
  displayed?: number;
}

export interface CorrectRequest {
  thread: ThreadRef;
  actor: Actor;
  /** The bot message replied to; absent for "the next message in the thread". */
  replyToMessageId?: string;
  correction: Correction;
  /** Platform id of the correction message: the same message is stored once. */
  messageId: string;
  /** Where to show the corrected, resumed reply. */
  surface: ReplySurface;
}

export interface AcceptRequest {
  platform: string;
  messageId: string;
  actor: Actor;
}

/**
 * What the core answers. `notice` is a short text the adapter may show to the actor alone
 * (ephemeral on Discord, a reply on Telegram) — undefined means say nothing (e.g. a stranger's
 * stop reaction is ignored silently).
 */
export interface Outcome {
  ok: boolean;
  notice?: string;
  /** Files to show with the notice (e.g. the PNG loss curve of a training run). */
  attachments?: string[];
}

/** One step of a training run as it goes (the studio's live progress: step, loss, ETA). */
export interface TrainingStep {
  step: number;
  steps: number;
  loss: number;
  etaSeconds: number;
  tokensPerSecond: number;
}

/** The admin and privacy commands every platform maps its commands to. */
export interface AdminPort {
  status(actor: Actor): Promise<Outcome>;
  pendingSteers(actor: Actor): Promise<Outcome & { steers?: { id: string; preview: string }[] }>;
  reviewSteer(actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome>;
  /** `onStep`: every trainer step, for a platform that draws live progress (the studio). */
  retrain(actor: Actor, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome>;
  /**
   * Approves or rejects several steers at once (the studio's bulk review), in one transaction.
   * Optional: the chat platforms review one steer at a time and their test doubles omit it.
   */
  reviewSteers?(actor: Actor, steerIds: readonly number[], verdict: "approve" | "reject"): Promise<Outcome & { changed?: number[]; unchanged?: number[]; missing?: number[] }>;
  /** Cancels the training run going on in this bot (the live adapter stays). */
  cancelTraining(actor: Actor): Promise<Outcome>;
  adapters(actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome>;
  optOut(actor: Actor): Promise<Outcome>;
  forget(actor: Actor, confirmed: boolean): Promise<Outcome>;
}

/**
 * What a platform adapter calls in the core. `SteeringCore` satisfies it; adapters depend on
 * this contract, not on the core's implementation.
 */
export interface CorePort {
  ask(req: AskRequest): Promise<Outcome>;
  stop(req: StopRequest): Promise<Outcome>;
  correct(req: CorrectRequest): Promise<Outcome>;
  accept(req: AcceptRequest): Promise<Outcome>;
  isBotMessage(platform: string, messageId: string): boolean;
  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined;
  readonly admin: AdminPort;
}
