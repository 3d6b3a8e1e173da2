/**
 * Short messages the bot says in a chat: the core's notices, usage hints, group-check advice.
 *
 * Owns: sending such a text as a reply to the message that caused it, in its forum topic,
 * through the chat's pacer (Telegram has no ephemeral messages). A notice that cannot be
 * delivered is logged, never thrown: it must not fail the update that caused it.
 */
import type { Api, Context } from "grammy";
import type { Message } from "grammy/types";
import type { PlatformLog } from "../platform-log.ts";
import type { ChatPacer } from "./chat-pacer.ts";
import { threadOf } from "./telegram-admin-commands.ts";

export class TelegramNotices {
  constructor(
    private readonly api: Api,
    private readonly pacer: ChatPacer,
    private readonly log: PlatformLog,
  ) {}

  /** A notice as a reply to `to` (default: the update's message), in its topic. */
  async reply(ctx: Context, text: string, to: Message | undefined = ctx.msg): Promise<void> {
    if (!ctx.chat) return;
    const thread = to ? (to.is_topic_message ? to.message_thread_id : undefined) : threadOf(ctx).message_thread_id;
    await this.send(ctx.chat.id, text, to?.message_id, thread);
  }

  async send(chatId: number, text: string, replyTo?: number, threadId?: number): Promise<void> {
    try {
      await this.pacer.run(chatId, () =>
        this.api.sendMessage(chatId, text.slice(0, 4096), {
          ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
          ...(replyTo !== undefined ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}),
        }),
      );
    } catch (err) {
      this.log.warn({ chatId, err: String(err) }, "telegram: notice not delivered");
    }
  }
}
