/**
 * What the Discord adapter needs from the conversation core: the platform contract
 * (`CorePort`, src/core/ports.ts) plus, optionally, the core's permission rules.
 */
import type { Actor, AdminPort, CorePort, ThreadRef } from "../../core/ports.ts";

export type DiscordCoreAdmin = AdminPort;

/** The calls the Discord adapter makes into the core; permissions and storage live there. */
export interface DiscordCore extends CorePort {
  /**
   * The core's permission rules, when it exposes them (SteeringCore does). Used only to avoid
   * opening an empty thread for a question the core will refuse; the refusal itself (and its
   * wording) still comes from `ask`.
   */
  readonly permissions?: { allows(action: "ask", actor: Actor, thread?: ThreadRef): boolean };
}

/** Platform name used in every Actor, ThreadRef and request this adapter builds. */
export const DISCORD = "discord";
