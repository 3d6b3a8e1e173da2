/**
 * ShareGPT-style chats with a corrected last turn (`steerbot import --from sharegpt`), in the
 * shape LLaMA-Factory's preference data uses: `conversations` (`{from, value}` turns up to the
 * question), `chosen` and `rejected` (the corrected and the model's last turn; a turn object or
 * a string), optional `system`.
 *
 * Owns: turning such a row into one localized steer at the first divergence of rejected and
 * chosen. Unlike a TRL pair, a row whose two turns share no start is refused: a correction that
 * rewrote the whole turn has no place where the model went wrong.
 */
import type { ChatMessage } from "../steer-record.ts";
import { derive, FormatError, localizedPair, readMessages, readReply, type Derived } from "./chat-input.ts";

export function fromShareGpt(value: unknown): Derived {
  return derive(() => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new FormatError("expected a JSON object");
    const row = value as Record<string, unknown>;
    const turns = readMessages(row.conversations ?? row.messages, row.conversations !== undefined ? "conversations" : "conversations (or messages)");
    let context: ChatMessage[] = turns;
    const chosen = row.chosen;
    const rejected = row.rejected;
    if (chosen === undefined || rejected === undefined) {
      throw new FormatError("needs chosen and rejected: the corrected and the model's last turn (LLaMA-Factory's ShareGPT preference format)");
    }
    if (typeof row.system === "string" && !turns.some((t) => t.role === "system")) context = [{ role: "system", content: row.system }, ...turns];
    // a trailing model turn in conversations is the one being corrected: rejected says it again
    if (context.at(-1)?.role === "assistant") context = context.slice(0, -1);
    if (!context.some((t) => t.role === "user")) throw new FormatError("conversations hold no human turn before the corrected reply");
    return { steers: [localizedPair(context, "", readReply(chosen, "chosen"), readReply(rejected, "rejected"), true)] };
  });
}
