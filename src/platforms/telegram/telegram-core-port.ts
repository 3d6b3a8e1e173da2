/**
 * The slice of the steering core the Telegram adapter calls.
 *
 * Owns: nothing but a structural type. `SteeringCore` (src/core/steering-core.ts) satisfies it;
 * tests and the benchmark can pass a scripted core. Keeping the adapter on this slice means it
 * compiles and is tested without the model, and documents exactly what Telegram needs.
 */
import type { AcceptRequest, Actor, AskRequest, CorrectRequest, Outcome, StopRequest, ThreadRef } from "../../core/ports.ts";

export interface TelegramCore {
  ask(req: AskRequest): Promise<Outcome>;
  stop(req: StopRequest): Promise<Outcome>;
  correct(req: CorrectRequest): Promise<Outcome>;
  accept(req: AcceptRequest): Promise<Outcome>;
  isBotMessage(platform: string, messageId: string): boolean;
  openReplyIn(thread: ThreadRef): { messageIds: string[]; state: "generating" | "stopped" | "done" } | undefined;
  readonly admin: {
    status(actor: Actor): Promise<Outcome>;
    pendingSteers(actor: Actor): Promise<Outcome & { steers?: { id: string; preview: string }[] }>;
    reviewSteer(actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome>;
    retrain(actor: Actor, progress: (text: string) => Promise<void>): Promise<Outcome>;
    adapters(actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome>;
    optOut(actor: Actor): Promise<Outcome>;
    forget(actor: Actor, confirmed: boolean): Promise<Outcome>;
  };
}

/** Platform name used in every ThreadRef, Actor and request. */
export const TELEGRAM = "telegram";
