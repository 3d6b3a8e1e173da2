/**
 * The `telegram:` section of the config and its defaults.
 *
 * Owns: every Telegram-only knob (reactions that stop/accept, edit pacing, drafts, polling vs
 * webhook, groups checked at start) and how the `telegram:` section of the app config maps onto
 * them. Permissions are not here: the core decides them from `permissions:`.
 */
import type { AppConfig } from "../../config/config.ts";

/** Reaction emoji a Telegram user can set (Bot API `ReactionTypeEmoji`; 🛑 is not among them). */
export const TELEGRAM_REACTION_EMOJI: readonly string[] = [
  "👍", "👎", "❤", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉", "🤩", "🤮", "💩", "🙏", "👌", "🕊", "🤡",
  "🥱", "🥴", "😍", "🐳", "❤‍🔥", "🌚", "🌭", "💯", "🤣", "⚡", "🍌", "🏆", "💔", "🤨", "😐", "🍓", "🍾", "💋", "🖕", "😈",
  "😴", "😭", "🤓", "👻", "👨‍💻", "👀", "🎃", "🙈", "😇", "😨", "🤝", "✍", "🤗", "🫡", "🎅", "🎄", "☃", "💅", "🤪", "🗿",
  "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎", "👾", "🤷‍♂", "🤷", "🤷‍♀", "😡",
];

export interface TelegramConfig {
  /** Reactions that stop a streaming reply. Default 👎: 🛑 cannot be set as a Telegram reaction. */
  stopReactions: string[];
  /** Reactions that accept a reply as it is. */
  acceptReactions: string[];
  /** Minimum time between two edits of one message (the core throttles to this). */
  minEditIntervalMs: number;
  /** Minimum time between two sends/edits in one private chat, across all replies there. */
  chatMinIntervalMs: number;
  /** The same in groups and supergroups (Telegram allows a bot about 20 messages a minute there). */
  groupChatMinIntervalMs: number;
  /**
   * Stream private-chat replies as drafts (`sendMessageDraft`, Bot API 9.3+, with Telegram's own
   * stop button) and persist each as a real message when its generation ends; corrections and
   * reactions then work on that message. Off: private chats are streamed by edits like groups
   * (and stopped by reaction while streaming).
   */
  privateDrafts: boolean;
  /** Retries of a call answered 429 (auto-retry waits `retry_after` between them). */
  maxRetryAttempts: number;
  /** Long polling (default) or a webhook served by a node http server. */
  mode: "polling" | "webhook";
  /** Webhook server: `host` defaults to 127.0.0.1 (put a TLS proxy in front); `secretToken` is required. */
  webhook?: { port: number; host?: string; path?: string; secretToken?: string; url?: string };
  /** Long-poll timeout, seconds. */
  pollTimeoutSeconds: number;
  /**
   * Groups checked on start (is the bot an admin, is the stop reaction allowed there?) and told
   * what to change if a reaction cannot stop the bot; other groups are checked when the bot is
   * added or first answers there.
   */
  checkChats: number[];
}

/**
 * Pacing floors (Bot API FAQ: about one message a second in a chat, 20 a minute in a group, 30 a
 * second overall). Less would only buy 429s, and every 429 delays the stop behind it.
 */
export const TELEGRAM_PACING_FLOORS = { editIntervalMs: 1000, chatMinIntervalMs: 1000, groupChatMinIntervalMs: 3000, globalPerSecond: 30 } as const;

export const DEFAULT_TELEGRAM_CONFIG: TelegramConfig = {
  stopReactions: ["👎"],
  acceptReactions: ["👍"],
  minEditIntervalMs: 1000,
  chatMinIntervalMs: 1000,
  groupChatMinIntervalMs: 3000,
  privateDrafts: true,
  maxRetryAttempts: 8,
  mode: "polling",
  pollTimeoutSeconds: 30,
  checkChats: [],
  // webhook: unset
};

/**
 * The bot's settings from the app config (`telegram:` plus the shared `stream.edit_interval_ms`);
 * the webhook secret comes from the environment, never from a file.
 */
export function telegramConfigFrom(app: AppConfig, webhookSecret: string | undefined): Partial<TelegramConfig> {
  const t = app.telegram;
  return {
    stopReactions: [t.stop_emoji],
    acceptReactions: [t.accept_emoji],
    minEditIntervalMs: app.stream.edit_interval_ms,
    privateDrafts: t.private_drafts,
    chatMinIntervalMs: t.chat_min_interval_ms,
    groupChatMinIntervalMs: t.group_chat_min_interval_ms,
    mode: t.mode,
    webhook: t.mode === "webhook" ? { port: t.webhook.port, host: t.webhook.host, path: t.webhook.path, url: t.webhook.url || undefined, secretToken: webhookSecret } : undefined,
    // Quoted in the file (ids are strings there); group ids fit a double exactly.
    checkChats: t.check_chats.map(Number),
  };
}

/**
 * Fills defaults, raises pacing to Telegram's floors (unless `fastPacing`: only for a fake Bot
 * API in tests, which has no such limits unless told), and refuses what cannot work: reactions
 * Telegram would never deliver, a webhook without its secret.
 */
export function resolveTelegramConfig(partial: Partial<TelegramConfig> = {}, opts: { fastPacing?: boolean } = {}): TelegramConfig {
  const cfg: TelegramConfig = { ...DEFAULT_TELEGRAM_CONFIG, ...stripUndefined(partial) };
  if (!opts.fastPacing) {
    cfg.minEditIntervalMs = Math.max(cfg.minEditIntervalMs, TELEGRAM_PACING_FLOORS.editIntervalMs);
    cfg.chatMinIntervalMs = Math.max(cfg.chatMinIntervalMs, TELEGRAM_PACING_FLOORS.chatMinIntervalMs);
    cfg.groupChatMinIntervalMs = Math.max(cfg.groupChatMinIntervalMs, TELEGRAM_PACING_FLOORS.groupChatMinIntervalMs);
  }
  for (const e of [...cfg.stopReactions, ...cfg.acceptReactions]) {
    if (!TELEGRAM_REACTION_EMOJI.includes(e)) {
      throw new Error(`telegram: reaction ${e} is not one Telegram users can set; pick from ${TELEGRAM_REACTION_EMOJI.join(" ")}`);
    }
  }
  if (cfg.mode === "webhook" && !cfg.webhook) throw new Error("telegram: mode webhook needs telegram.webhook.port");
  if (cfg.mode === "webhook" && !cfg.webhook!.secretToken) {
    // Without it anyone who reaches the port can post forged updates (admin commands, approvals, /forget).
    throw new Error("telegram: webhook mode needs TELEGRAM_WEBHOOK_SECRET in the environment (1-256 characters A-Z a-z 0-9 _ -); Telegram sends it with every update and the bot refuses updates without it");
  }
  if (cfg.mode === "webhook" && !/^[A-Za-z0-9_-]{1,256}$/.test(cfg.webhook!.secretToken!)) {
    throw new Error("telegram: TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ - (Bot API setWebhook secret_token)");
  }
  return cfg;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
