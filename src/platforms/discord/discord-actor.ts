/**
 * Who did something on Discord, in the core's terms.
 *
 * Owns: turning a Discord user plus (in a guild) their member record into an `Actor` with the
 * user id and role ids. Roles must be complete and exact: the core's permission rules
 * (`permissions.*.roles`) and trust decisions match on them. `@everyone` (the guild id) is left
 * out because every member has it and a rule naming it would be a mistake.
 */
import type { APIInteractionGuildMember, GuildMember, User } from "discord.js";
import type { Actor } from "../../core/ports.ts";
import { DISCORD } from "./discord-core.ts";

/** Builds the Actor for a user, with role ids from their guild membership when there is one. */
export function discordActor(
  user: Pick<User, "id" | "username"> & { globalName?: string | null },
  member?: GuildMember | APIInteractionGuildMember | null,
  guildId?: string | null,
): Actor {
  let roles: string[] = [];
  if (member) {
    if (Array.isArray((member as APIInteractionGuildMember).roles)) roles = [...(member as APIInteractionGuildMember).roles];
    else roles = [...(member as GuildMember).roles.cache.keys()];
  }
  if (guildId) roles = roles.filter((r) => r !== guildId);
  return { platform: DISCORD, userId: user.id, displayName: user.globalName ?? user.username, roles };
}
