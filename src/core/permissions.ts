/**
 * Who may do what: ask, stop, steer, administer — and whose steers are trusted.
 *
 * Owns: reading the `permissions` section of the configuration. One rule shape for every
 * platform, so Discord and Telegram behave the same. An empty list means "everyone"; the
 * person who asked may always stop and steer their own reply, and admins may do anything. The
 * operator at the terminal (the playground) is an admin. Roles that hold in one chat only
 * (Telegram chat admins, `Actor.rolesChatId`) make an admin or a trusted person only in the
 * chats listed in that rule's `role_chats`: a chat admin is not a steerbot admin.
 */
import type { AppConfig } from "../config/config.ts";
import type { Actor, ThreadRef } from "./ports.ts";

type Rule = { users: string[]; roles: string[]; channels?: string[] };

export type Action = "ask" | "stop" | "steer";

export class Permissions {
  constructor(private readonly cfg: AppConfig["permissions"]) {}

  isAdmin(actor: Actor): boolean {
    return actor.operator === true || matchesWho(this.cfg.admins, scoped(actor, this.cfg.admins.role_chats), false);
  }

  /** May this actor do `action` in this thread? `ownerId` = who asked for the reply. */
  allows(action: Action, actor: Actor, thread?: ThreadRef, ownerId?: string): boolean {
    if (this.isAdmin(actor)) return true;
    if (action !== "ask" && ownerId !== undefined && ownerId === actor.userId) return true;
    const rule: Rule = this.cfg[action];
    if (rule.channels?.length && thread && !rule.channels.includes(thread.chatId) && !rule.channels.includes(thread.threadId)) return false;
    return matchesWho(rule, actor, true);
  }

  /** Steers of trusted people are approved at once; the rest wait for an admin. */
  isTrusted(actor: Actor, userTrust?: string): boolean {
    if (userTrust === "trusted" || this.isAdmin(actor)) return true;
    if (userTrust === "blocked") return false;
    return this.cfg.default_trust === "approved" || matchesWho(this.cfg.trusted, scoped(actor, this.cfg.trusted.role_chats), false);
  }
}

/** The actor with its chat-scoped roles dropped unless their chat is one of `roleChats`. */
function scoped(actor: Actor, roleChats: string[] | undefined): Actor {
  if (actor.rolesChatId === undefined || (roleChats ?? []).includes(actor.rolesChatId)) return actor;
  return { ...actor, roles: [] };
}

function matchesWho(rule: { users: string[]; roles: string[] }, actor: Actor, emptyMeansEveryone: boolean): boolean {
  if (rule.users.length === 0 && rule.roles.length === 0) return emptyMeansEveryone;
  return rule.users.includes(actor.userId) || (actor.roles ?? []).some((r) => rule.roles.includes(r));
}
