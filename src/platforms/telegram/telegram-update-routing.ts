/**
 * Which handler each Telegram update reaches.
 *
 * Owns: the middleware order of the bot — drop duplicate deliveries (Telegram redelivers after
 * a crash or a lost confirmation; in memory first, then, with a database, claimed once for every
 * instance sharing the bot), count and log handler failures, announce each update on `handled`
 * once its handlers have returned, keep order within a chat, hand an update about a reply
 * another instance streams to that instance (telegram-instance-routing.ts) — and the routes:
 * reactions, draft stops and the Stop button (telegram-stops.ts), `my_chat_member` (group
 * checks), /ask and /start, the admin commands (telegram-admin-commands.ts), other text
 * (telegram-conversation.ts). Handlers only await short calls, never a generation.
 */
import { sequentialize } from "@grammyjs/runner";
import type { Context } from "grammy";
import type { HandledEvent, HandledEvents } from "../handled-events.ts";
import { noteHandlerError } from "../platform-metrics.ts";
import { TELEGRAM } from "./telegram-core-port.ts";
import { RecentKeys } from "../recent-keys.ts";
import { installAdminCommands } from "./telegram-admin-commands.ts";
import type { TelegramConversation } from "./telegram-conversation.ts";
import type { TelegramInstanceRouting } from "./telegram-instance-routing.ts";
import type { TelegramDeps } from "./telegram-deps.ts";
import { GroupChecks } from "./telegram-group-checks.ts";
import { STOP_BUTTON_DATA } from "./telegram-reply-surface.ts";
import type { TelegramStops } from "./telegram-stops.ts";

export function installUpdateRouting(
  d: TelegramDeps,
  handled: HandledEvents,
  stops: TelegramStops,
  conversation: TelegramConversation,
  /** Several instances on one database: claims in the database, updates handed to a reply's instance. */
  instances?: TelegramInstanceRouting,
): void {
  const { bot, log, metrics, config } = d;
  /** Recently seen update ids: Telegram redelivers after a crash or a lost confirmation (a cheap first filter before the database's claim). */
  const seenUpdates = new RecentKeys();

  // A safety net: the first middleware below already catches what handlers throw.
  bot.catch((err) => {
    noteHandlerError(d, TELEGRAM);
    log.error({ update: err.ctx?.update?.update_id, err: String(err.error) }, "telegram: update handler failed");
  });

  // Outermost: drop duplicate deliveries of one update seen here (the core also dedupes by
  // message id), count and log handler failures, wait for an update handed to another instance,
  // and announce each update on `handled` once everything below is done with it.
  bot.use(async (ctx, next) => {
    const u = ctx.update;
    const event = { kind: Object.keys(u).find((k) => k !== "update_id") ?? "unknown", id: String(u.update_id), userId: ctx.from ? String(ctx.from.id) : undefined };
    // An update another instance handed here was claimed there; remember it all the same.
    if (!seenUpdates.firstTime(String(u.update_id)) && !instances?.isIncoming(u)) return handled.emit({ ...event, outcome: "duplicate" });
    let outcome: HandledEvent["outcome"] = "done";
    try {
      await next();
    } catch (err) {
      // Counted here rather than in bot.catch, so it is counted before the update is announced.
      outcome = "failed";
      noteHandlerError(d, TELEGRAM);
      log.error({ update: u.update_id, err: String(err) }, "telegram: update handler failed");
    } finally {
      // Outside the per-chat order: the chat's next updates need not wait for another instance.
      const became = await instances?.finish(ctx).catch((err: unknown) => void log.error({ update: u.update_id, err: String(err) }, "telegram: finishing the update failed"));
      if (became && outcome === "done") outcome = became;
      handled.emit({ ...event, outcome });
    }
  });

  // Keep order within a chat (a stop before the correction that follows it). Handlers only
  // await short calls, never a generation, so nothing queues behind a streaming reply.
  bot.use(sequentialize((ctx: Context) => (ctx.chat ? String(ctx.chat.id) : undefined)));

  // In the chat's order: claim the update for all instances (a retry another one got goes no
  // further), and hand it to the instance streaming its reply when that is another one.
  if (instances) bot.use(instances.middleware);

  bot.on("message_reaction", (ctx) => stops.onReaction(ctx));
  bot.on("stopped_message_generation", (ctx) => stops.onDraftStopped(ctx));
  bot.callbackQuery(STOP_BUTTON_DATA, (ctx) => stops.onStopButton(ctx));
  // Added to a group, or its rights there changed: check (in the background) whether reactions reach it.
  bot.on("my_chat_member", (ctx) => {
    const m = ctx.myChatMember!;
    if (GroupChecks.isGroup(m.chat) && (m.new_chat_member.status === "member" || m.new_chat_member.status === "administrator")) {
      d.track(d.groups.recheck(m.chat.id));
    }
  });

  bot.command("ask", async (ctx) => {
    const text = ctx.match.trim();
    if (!text) return d.notices.reply(ctx, "Usage: /ask <your question>");
    await conversation.startAsk(ctx, ctx.msg, text);
  });
  bot.command("start", (ctx) => {
    const drafts = config.privateDrafts && ctx.chat.type === "private";
    const stopHow = drafts ? "press the stop button under my draft" : `react ${config.stopReactions[0]} to my message`;
    return d.notices.reply(
      ctx,
      `Ask me anything. While I answer, ${stopHow} to stop me where I went wrong, then reply to my message with a short correction ` +
        `(quote the part that is wrong, write s/old/new/, or just write how it should go on); I continue from it. ` +
        `React ${config.acceptReactions[0]} to say an answer is good.`,
    );
  });
  installAdminCommands(bot, {
    core: d.core,
    actors: d.actors,
    log,
    track: (t) => d.track(t),
    reply: (ctx, text) => d.notices.reply(ctx, text),
    pacer: d.pacer,
  });

  bot.on("message:text", (ctx) => conversation.onText(ctx));
}
