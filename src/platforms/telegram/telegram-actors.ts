/**
 * Who a Telegram user is, for the core.
 *
 * Owns: turning a Telegram `User` into an `Actor`, with `roles` = the user's admin status in
 * the chat ("creator" / "administrator"), looked up with getChatMember and cached for a minute
 * so a burst of reactions costs one call. A failed lookup gives no roles (the core then treats
 * the user as an ordinary member) rather than failing the event.
 */
import type { Api } from "grammy";
import type { User } from "grammy/types";
import type { Actor } from "../../core/ports.ts";
import type { TelegramLog } from "./telegram-log.ts";
import { TELEGRAM } from "./telegram-core-port.ts";

const TTL_MS = 60_000;

export class TelegramActors {
  private readonly cache = new Map<string, { roles: string[]; at: number }>();

  constructor(
    private readonly api: Api,
    private readonly log: TelegramLog,
  ) {}

  async actor(user: User, chat: { id: number; type: string }): Promise<Actor> {
    const roles = chat.type === "private" ? [] : await this.roles(chat.id, user.id);
    return {
      platform: TELEGRAM,
      userId: String(user.id),
      displayName: user.username ? `@${user.username}` : [user.first_name, user.last_name].filter(Boolean).join(" "),
      roles,
    };
  }

  private async roles(chatId: number, userId: number): Promise<string[]> {
    const key = `${chatId}:${userId}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < TTL_MS) return hit.roles;
    let roles: string[] = [];
    try {
      const member = await this.api.getChatMember(chatId, userId);
      roles = member.status === "creator" || member.status === "administrator" ? [member.status] : [];
    } catch (err) {
      this.log.warn({ chatId, userId, err: String(err) }, "telegram: getChatMember failed; no roles");
    }
    this.cache.set(key, { roles, at: Date.now() });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    return roles;
  }
}
