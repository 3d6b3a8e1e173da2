/**
 * What a failed Bot API call means for a streamed reply.
 *
 * Owns: the mapping from Telegram's error codes/descriptions to "harmless" (the edit changed
 * nothing), "gone" (the message or chat will never take our text again → `SurfaceGoneError`),
 * or "other" (let it propagate; 429s never reach here because auto-retry handles them).
 */
import { GrammyError } from "grammy";

export type ApiFailure = "not-modified" | "gone" | "other";

const GONE_400 = [
  "message to edit not found",
  "message can't be edited",
  "message_id_invalid",
  "chat not found",
  "message thread not found",
  "topic_deleted",
  "topic_closed",
  "not enough rights",
  "have no rights to send",
  "chat_write_forbidden",
  "peer_id_invalid",
];

export function classifyApiError(err: unknown): ApiFailure {
  if (!(err instanceof GrammyError)) return "other";
  const d = err.description.toLowerCase();
  if (err.error_code === 400 && d.includes("message is not modified")) return "not-modified";
  // 403: bot blocked by the user, kicked from the group, or the user is deactivated.
  if (err.error_code === 403) return "gone";
  if (err.error_code === 400 && GONE_400.some((s) => d.includes(s))) return "gone";
  return "other";
}
