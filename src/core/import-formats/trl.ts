/**
 * Hugging Face TRL's dataset rows as steers (`steerbot import --from trl-dpo|trl-sft`).
 *
 * Owns: reading TRL's preference rows (`prompt`/`chosen`/`rejected`, standard or
 * conversational, and the implicit-prompt form where chosen and rejected are whole
 * conversations) and its prompt-completion / messages rows. A pair is localized at the first
 * divergence of chosen and rejected (their shared start joins the prefix); without a shared
 * start it is a pair over the whole reply. A completion is an SFT example: a steer with an
 * empty rejected span, which the trainer's `sft` term learns and its `dpo` term skips.
 */
import type { ChatMessage } from "../steer-record.ts";
import { derive, FormatError, localizedPair, readContext, readMessages, readReply, steerOf, type Derived } from "./chat-input.ts";

function object(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new FormatError("expected a JSON object");
  return value as Record<string, unknown>;
}

/** The messages two conversations share from the start (the implicit prompt of TRL's format). */
function sharedStart(a: ChatMessage[], b: ChatMessage[]): number {
  let i = 0;
  while (i < a.length - 1 && i < b.length - 1 && a[i]!.role === b[i]!.role && a[i]!.content === b[i]!.content) i++;
  return i;
}

export function fromTrlDpo(value: unknown): Derived {
  return derive(() => {
    const row = object(value);
    if (row.chosen === undefined || row.rejected === undefined) throw new FormatError("a DPO row needs chosen and rejected");
    if (row.prompt === undefined) {
      // implicit prompt: chosen and rejected are whole conversations ending in the two replies
      const chosen = readMessages(row.chosen, "chosen");
      const rejected = readMessages(row.rejected, "rejected");
      const n = sharedStart(chosen, rejected);
      if (n === 0) throw new FormatError("no prompt, and chosen and rejected share no leading messages to take as one");
      const [c, r] = [chosen.slice(n), rejected.slice(n)];
      if (c.length !== 1 || r.length !== 1 || c[0]!.role !== "assistant" || r[0]!.role !== "assistant") {
        throw new FormatError("chosen and rejected must each end in one assistant message after the shared prompt");
      }
      return { steers: [localizedPair(chosen.slice(0, n), "", c[0]!.content, r[0]!.content, false)] };
    }
    const { context, prefix } = readContext(row.prompt);
    return { steers: [localizedPair(context, prefix, readReply(row.chosen, "chosen"), readReply(row.rejected, "rejected"), false)] };
  });
}

export function fromTrlSft(value: unknown): Derived {
  return derive(() => {
    const row = object(value);
    if (row.messages !== undefined) {
      const messages = readMessages(row.messages, "messages");
      const last = messages.at(-1);
      if (last?.role !== "assistant") throw new FormatError("messages: the last message must be the assistant's reply to learn");
      return { steers: [steerOf({ context: messages.slice(0, -1), prefix: "", rejected: "", chosen: last.content })] };
    }
    if (row.prompt === undefined || row.completion === undefined) {
      throw new FormatError(row.text !== undefined ? "a plain-text row (text) has no prompt to condition on: write prompt/completion or messages" : "an SFT row needs prompt and completion, or messages");
    }
    const { context, prefix } = readContext(row.prompt);
    return { steers: [steerOf({ context, prefix, rejected: "", chosen: readReply(row.completion, "completion") })] };
  });
}
