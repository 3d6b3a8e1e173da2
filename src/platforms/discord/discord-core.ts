/**
 * What the Discord adapter needs from the conversation core.
 *
 * Owns: the structural slice of `SteeringCore` (src/core/steering-core.ts) this platform calls.
 * Typed here rather than imported so the adapter depends on the contract in
 * src/core/CORE-API.md, not on the core's implementation: the real core satisfies it
 * structurally, and transport tests can drive the adapter with a scripted stand-in.
 */
import type {
  AcceptRequest,
  Actor,
  AskRequest,
  CorrectRequest,
  Outcome,
  StopRequest,
  ThreadRef,
} from "../../core/ports.ts";

export interface DiscordCoreAdmin {
  status(actor: Actor): Promise<Outcome>;
  pendingSteers(actor: Actor): Promise<Outcome & { steers?: { id: string; preview: string }[] }>;
  reviewSteer(actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome>;
  retrain(actor: Actor, progress: (text: string) => Promise<void>): Promise<Outcome>;
  adapters(actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome>;
  optOut(actor: Actor): Promise<Outcome>;
  forget(actor: Actor, confirmed: boolean): Promise<Outcome>;
}

/** The calls the Discord adapter makes into the core; permissions and storage live there. */
export interface DiscordCore {
  ask(req: AskRequest): Promise<Outcome>;
  stop(req: StopRequest): Promise<Outcome>;
  correct(req: CorrectRequest): Promise<Outcome>;
  accept(req: AcceptRequest): Promise<Outcome>;
  isBotMessage(platform: string, messageId: string): boolean;
  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined;
  readonly admin: DiscordCoreAdmin;
  /**
   * The core's permission rules, when it exposes them (SteeringCore does). Used only to avoid
   * opening an empty thread for a question the core will refuse; the refusal itself (and its
   * wording) still comes from `ask`.
   */
  readonly permissions?: { allows(action: "ask", actor: Actor, thread?: ThreadRef): boolean };
}

/** Platform name used in every Actor, ThreadRef and request this adapter builds. */
export const DISCORD = "discord";
