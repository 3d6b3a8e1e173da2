/**
 * The admin and privacy commands: /status, /pending, /retrain, /cancel, /adapters, /optout, /forget.
 *
 * Owns: parsing those commands, the inline keyboards they show (approve/reject a pending steer,
 * confirm /forget) and answering the button presses. /retrain shows progress by editing one
 * message, then the result notice, then each file the run attached (the loss curve) as a photo.
 * Who may do what is the core's decision: the adapter passes the actor and shows the core's
 * notice, so a refused user sees the refusal. Everything a chat receives goes through the
 * chat's pacer (a /pending list is 20 messages: sent at once they draw 429s, and a stop in that
 * chat then waits behind the retries); a button press is answered (answerCallbackQuery, which
 * is not a chat message) once the core has decided, before anything else the handler sends.
 */
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { InlineKeyboard, InputFile, type Bot, type Context } from "grammy";
import type { Actor } from "../../core/ports.ts";
import type { ChatPacer } from "./chat-pacer.ts";
import type { TelegramActors } from "./telegram-actors.ts";
import type { TelegramCore } from "./telegram-core-port.ts";
import type { PlatformLog } from "../platform-log.ts";

/** The commands shown in Telegram's command menu (setMyCommands). */
export const TELEGRAM_COMMANDS = [
  { command: "ask", description: "Ask the model (in groups)" },
  { command: "status", description: "Model, adapter, steers, instances and training queue" },
  { command: "pending", description: "Review steers waiting for approval (admins)" },
  { command: "retrain", description: "Train a new adapter now (admins)" },
  { command: "cancel", description: "Cancel the training run going on (admins)" },
  { command: "adapters", description: "list | activate <version> | rollback (admins)" },
  { command: "optout", description: "Stop storing my steers" },
  { command: "forget", description: "Delete everything stored about me" },
];

/** Callback data prefixes (Telegram allows 64 bytes). */
const REVIEW = "rv";
const FORGET = "fg";

export interface AdminDeps {
  core: TelegramCore;
  actors: TelegramActors;
  log: PlatformLog;
  /** Keeps a long task (retrain) alive outside the update handler. */
  track(task: Promise<unknown>): void;
  /** Shows a notice as a reply to the message that caused it, in its topic. */
  reply(ctx: Context, text: string): Promise<void>;
  /** The bot's per-chat pacer: every send and edit here runs through it. */
  pacer: ChatPacer;
}

export function installAdminCommands(bot: Bot, d: AdminDeps): void {
  const actorOf = (ctx: Context): Promise<Actor> => (ctx.msg && !ctx.callbackQuery ? d.actors.messageActor(ctx.msg) : d.actors.actor(ctx.from!, ctx.chat!));
  /** One call to the command's chat, in its turn. */
  const paced = <T>(ctx: Context, fn: () => Promise<T>): Promise<T> => d.pacer.run(ctx.chat!.id, fn);

  bot.command("cancel", async (ctx) => {
    const out = await d.core.admin.cancelTraining(await actorOf(ctx));
    await d.reply(ctx, out.notice ?? (out.ok ? "OK" : "Refused."));
  });

  bot.command("status", async (ctx) => {
    const out = await d.core.admin.status(await actorOf(ctx));
    await d.reply(ctx, out.notice ?? (out.ok ? "OK" : "Refused."));
  });

  bot.command("optout", async (ctx) => {
    const out = await d.core.admin.optOut(await actorOf(ctx));
    await d.reply(ctx, out.notice ?? (out.ok ? "Your steers will no longer be stored." : "Refused."));
  });

  bot.command("forget", async (ctx) => {
    const actor = await actorOf(ctx);
    const out = await d.core.admin.forget(actor, false);
    const text = out.notice ?? "Delete everything stored about you?";
    if (!out.ok) return d.reply(ctx, text);
    await paced(ctx, () => ctx.reply(text, {
      reply_parameters: { message_id: ctx.msg!.message_id, allow_sending_without_reply: true },
      ...threadOf(ctx),
      reply_markup: new InlineKeyboard().text("Yes, forget me", `${FORGET}:y:${actor.userId}`).text("Cancel", `${FORGET}:n:${actor.userId}`),
    }));
  });

  bot.command("pending", async (ctx) => {
    const out = await d.core.admin.pendingSteers(await actorOf(ctx));
    if (!out.ok || !out.steers) return d.reply(ctx, out.notice ?? "Refused.");
    if (out.steers.length === 0) return d.reply(ctx, out.notice ?? "No steers are waiting for review.");
    // The core's notice repeats the previews; one message per steer with its buttons is enough.
    // Queued in the chat's pacer and sent in the background: a group takes 20 a minute, and
    // the chat's next update (a stop) must not wait behind this handler.
    const steers = out.steers.slice(0, 20);
    d.track((async () => {
      await d.reply(ctx, `${out.steers!.length} steer(s) waiting for review:`);
      for (const s of steers) {
        await paced(ctx, () => ctx.reply(truncate(s.preview, 3500), {
          ...threadOf(ctx),
          reply_markup: new InlineKeyboard().text("✅ Approve", `${REVIEW}:a:${s.id}`).text("❌ Reject", `${REVIEW}:r:${s.id}`),
        })).catch((err) => d.log.warn({ err: String(err) }, "telegram: pending steer not shown"));
      }
    })());
  });

  bot.command("adapters", async (ctx) => {
    const [action = "list", version] = ctx.match.trim().split(/\s+/).filter(Boolean);
    if (action !== "list" && action !== "activate" && action !== "rollback") {
      return d.reply(ctx, "Usage: /adapters [list | activate <version> | rollback]");
    }
    if (action === "activate" && !version) return d.reply(ctx, "Usage: /adapters activate <version>");
    const out = await d.core.admin.adapters(await actorOf(ctx), action, version);
    await d.reply(ctx, out.notice ?? (out.ok ? "Done." : "Refused."));
  });

  bot.command("retrain", async (ctx) => {
    const actor = await actorOf(ctx);
    // Training takes minutes: run it outside the handler, show progress by editing one message.
    let progressMsg: { chatId: number; id: number } | undefined;
    let last = "";
    const progress = async (text: string): Promise<void> => {
      const t = truncate(text, 4000) || "…";
      if (t === last) return;
      last = t;
      try {
        if (!progressMsg) {
          const m = await paced(ctx, () => ctx.reply(t, threadOf(ctx)));
          progressMsg = { chatId: m.chat.id, id: m.message_id };
        } else {
          const { chatId, id } = progressMsg;
          await paced(ctx, () => ctx.api.editMessageText(chatId, id, t));
        }
      } catch (err) {
        d.log.warn({ err: String(err) }, "telegram: retrain progress not shown");
      }
    };
    d.track(
      d.core.admin
        .retrain(actor, progress)
        .then(async (out) => {
          if (out.notice) await d.reply(ctx, out.notice);
          else if (!out.ok) await d.reply(ctx, "Refused.");
          // Files the run attached (the loss-curve PNG), each as a photo after the notice.
          for (const path of out.attachments ?? []) await sendPhoto(ctx, path, d.log, paced);
        })
        .catch((err) => d.log.error({ err: String(err) }, "telegram: /retrain failed")),
    );
  });

  bot.callbackQuery(new RegExp(`^${REVIEW}:([ar]):(.+)$`), async (ctx) => {
    const [, v, steerId] = ctx.match as RegExpMatchArray;
    const verdict = v === "a" ? "approve" : "reject";
    // Answered only once the core has decided, and also when it failed: the person sees what
    // happened (never an "ok" for a review that was not stored), and the button stops spinning.
    let out: Awaited<ReturnType<typeof d.core.admin.reviewSteer>>;
    try {
      out = await d.core.admin.reviewSteer(await actorOf(ctx), steerId!, verdict);
    } catch (err) {
      d.log.error({ steerId, err: String(err) }, "telegram: review failed");
      out = { ok: false, notice: `Sorry, the review could not be saved (${String((err as Error)?.message ?? err)}); nothing changed. Please try again.` };
    }
    await ctx.answerCallbackQuery({ text: truncate(out.notice ?? (out.ok ? `Steer ${verdict}d.` : "Refused."), 190) });
    if (out.ok && ctx.callbackQuery.message) {
      const original = ctx.callbackQuery.message.text ?? "";
      await paced(ctx, () => ctx.editMessageText(truncate(`${original}\n\n${verdict === "approve" ? "✅ approved" : "❌ rejected"} by ${ctx.from.first_name}`, 4096)))
        .catch((err) => d.log.debug({ err: String(err) }, "telegram: review message not updated"));
    }
  });

  bot.callbackQuery(new RegExp(`^${FORGET}:([yn]):(\\d+)$`), async (ctx) => {
    const [, yes, owner] = ctx.match as RegExpMatchArray;
    if (String(ctx.from.id) !== owner) {
      await ctx.answerCallbackQuery({ text: "This button is for the person who asked." });
      return;
    }
    if (yes !== "y") {
      await ctx.answerCallbackQuery({ text: "Nothing was deleted." });
      await paced(ctx, () => ctx.editMessageText("Cancelled: nothing was deleted.")).catch(() => undefined);
      return;
    }
    const out = await d.core.admin.forget(await actorOf(ctx), true);
    const text = out.notice ?? (out.ok ? "Everything stored about you was deleted." : "Refused.");
    await ctx.answerCallbackQuery({ text: truncate(text, 190) });
    await paced(ctx, () => ctx.editMessageText(truncate(text, 4096))).catch(() => undefined);
  });

  // Any other button (stale keyboards): answer so the client stops spinning.
  bot.on("callback_query:data", (ctx) => ctx.answerCallbackQuery());
}

/** Sends a file as a photo in the command's chat and topic; a failure is logged, never thrown. */
async function sendPhoto(ctx: Context, path: string, log: PlatformLog, paced: <T>(ctx: Context, fn: () => Promise<T>) => Promise<T>): Promise<void> {
  // A missing file would fail inside grammY's upload stream; say so plainly instead.
  if (!existsSync(path)) return log.warn({ path }, "telegram: attachment not sent: no such file");
  try {
    await paced(ctx, () => ctx.replyWithPhoto(new InputFile(path, basename(path)), {
      ...threadOf(ctx),
      ...(ctx.msg ? { reply_parameters: { message_id: ctx.msg.message_id, allow_sending_without_reply: true } } : {}),
    }));
  } catch (err) {
    log.warn({ path, err: String(err) }, "telegram: attachment not sent");
  }
}

export function threadOf(ctx: Context): { message_thread_id?: number } {
  const m = ctx.msg;
  return m?.is_topic_message && m.message_thread_id !== undefined ? { message_thread_id: m.message_thread_id } : {};
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}
