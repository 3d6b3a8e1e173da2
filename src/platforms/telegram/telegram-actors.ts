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
import type { PlatformLog } from "../platform-log.ts";
import { TELEGRAM } from "./telegram-core-port.ts";

const TTL_MS = 60_000;

export class TelegramActors {
  private readonly cache = new Map<string, { roles: string[]; at: number }>();

  constructor(
    private readonly api: Api,
    private readonly log: PlatformLog,
  ) {}

  /**
   * The actor of a message. A message sent on behalf of a chat (an anonymous group admin, a
   * channel post: `sender_chat` set) carries a shared `from` (GroupAnonymousBot, the channel
   * bot): many people behind one id. Such a sender is nobody in particular — a fresh id per
   * message, no roles — so it never counts as the asker of another anonymous message ("own
   * reply"), is never an admin, and is never trusted.
   */
  async messageActor(msg: { from?: User; sender_chat?: { id: number; title?: string }; chat: { id: number; type: string }; message_id: number }): Promise<Actor> {
    if (msg.sender_chat || !msg.from) {
      const who = msg.sender_chat?.title ?? "anonymous";
      return { platform: TELEGRAM, userId: `anonymous:${msg.chat.id}:${msg.message_id}`, displayName: `${who} (anonymous)`, roles: [] };
    }
    return this.actor(msg.from, msg.chat);
  }

  async actor(user: User, chat: { id: number; type: string }): Promise<Actor> {
    const roles = chat.type === "private" ? [] : await this.roles(chat.id, user.id);
    return {
      platform: TELEGRAM,
      userId: String(user.id),
      displayName: user.username ? `@${user.username}` : [user.first_name, user.last_name].filter(Boolean).join(" "),
      roles,
      // Chat admin status holds in this chat only: the core counts it for admins/trusted only
      // in the chats configured for that (permissions.admins.role_chats / trusted.role_chats).
      ...(chat.type === "private" ? {} : { rolesChatId: String(chat.id) }),
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
