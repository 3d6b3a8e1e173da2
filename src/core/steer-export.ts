/**
 * Export shapes of a steer for other trainers (Hugging Face TRL).
 *
 * Owns: turning the interchange record into TRL's DPO (`prompt/chosen/rejected`) and SFT
 * (`prompt/completion`) rows. The prompt is the context rendered in ChatML with the assistant
 * turn left open and the accepted prefix after it. No end-of-sequence marker is ever appended
 * to chosen or rejected: a steer is a span in the middle of a reply, and a model taught to end
 * there would learn to stop early.
 */
import type { ChatMessage, SteerRecord } from "./steer-record.ts";

export type ExportFormat = "steers" | "trl-dpo" | "trl-sft";
export const exportFormats: ExportFormat[] = ["steers", "trl-dpo", "trl-sft"];

/** ChatML rendering of the context, the assistant turn opened and the prefix written into it. */
export function renderPromptText(context: ChatMessage[], prefix: string): string {
  const turns = context.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("");
  return `${turns}<|im_start|>assistant\n${prefix}`;
}

export function toTrlDpo(s: SteerRecord): { prompt: string; chosen: string; rejected: string } {
  return { prompt: renderPromptText(s.context, s.prefix), chosen: s.chosen, rejected: s.rejected };
}

export function toTrlSft(s: SteerRecord): { prompt: string; completion: string } {
  return { prompt: renderPromptText(s.context, s.prefix), completion: s.chosen };
}
