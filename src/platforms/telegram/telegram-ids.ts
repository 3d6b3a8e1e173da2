/**
 * Platform message ids for the core.
 *
 * Owns: the string form of a Telegram message id. Telegram numbers messages per chat, so the
 * core (which keys replies by one string) gets `<chatId>:<messageId>`; a streamed draft that has
 * no message yet is `<chatId>:d<draftId>`.
 */

export function messageKey(chatId: number | string, messageId: number | string): string {
  return `${chatId}:${messageId}`;
}

export function draftKey(chatId: number | string, draftId: number): string {
  return `${chatId}:d${draftId}`;
}

/** Splits a key made by {@link messageKey}; throws on anything else (drafts included). */
export function parseMessageKey(key: string): { chatId: number; messageId: number } {
  const m = /^(-?\d+):(\d+)$/.exec(key);
  if (!m) throw new Error(`not a Telegram message key: ${key}`);
  return { chatId: Number(m[1]), messageId: Number(m[2]) };
}
