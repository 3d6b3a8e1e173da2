/**
 * The model's context within its token budget.
 *
 * Owns: choosing which messages of a conversation the model sees. A thread can last forever (a
 * Telegram private chat, a Discord DM), the model's context cannot: the leading system prompt
 * and the last message (the question) are always kept; of the turns between them, the newest
 * that fit are kept whole (a turn is a question and the replies after it), so that the rendered
 * prompt plus the reply's text so far leaves room for a whole reply (`generation.max_tokens`)
 * in `model.context_size`. What is left out is counted, so the generation records it and a
 * steer's stored context is exactly what the model saw.
 */
import type { ChatMessage } from "./steer-record.ts";
import type { TextGenerator } from "./text-generator.ts";

export interface FittedContext {
  /** True when the kept messages leave room for the reply. */
  ok: boolean;
  /** The messages the model sees (when !ok: the fewest there can be, system prompt and question). */
  messages: ChatMessage[];
  /** How many messages of the input were left out: `dropped` of them from index `droppedFrom` on. */
  dropped: number;
  droppedFrom: number;
  /** Tokens of the rendered prompt, `extraTokens` included. */
  promptTokens: number;
}

/**
 * The newest whole turns of `messages` (system prompt first and question last always kept)
 * whose rendered prompt plus `extraTokens` (an assistant prefix being continued) is at most
 * `budget` tokens.
 */
export function fitContext(engine: Pick<TextGenerator, "renderContext">, messages: readonly ChatMessage[], budget: number, extraTokens = 0): FittedContext {
  let head = 0;
  while (head < messages.length - 1 && messages[head]!.role === "system") head++;
  const middle = messages.slice(head, -1);
  const keepFrom = (cut: number): FittedContext => {
    const kept = [...messages.slice(0, head), ...middle.slice(cut), ...messages.slice(-1)];
    const promptTokens = engine.renderContext(kept).tokens.length + extraTokens;
    return { ok: promptTokens <= budget, messages: kept, dropped: cut, droppedFrom: head, promptTokens };
  };
  // Where a kept history may start: at a question, or at a reply whose question is not there
  // (an opted-out author's messages are not stored). Never between a question and its reply.
  const cuts = [...middle.keys()].filter((j) => j === 0 || middle[j]!.role !== "assistant" || middle[j - 1]!.role === "assistant");
  cuts.push(middle.length);
  // More messages never render to fewer tokens: binary search for the first cut that fits.
  let lo = 0;
  let hi = cuts.length - 1;
  let best = keepFrom(cuts[hi]!);
  if (!best.ok) return best;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const tried = keepFrom(cuts[mid]!);
    if (tried.ok) {
      best = tried;
      hi = mid;
    } else lo = mid + 1;
  }
  return best;
}
