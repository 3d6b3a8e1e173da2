/**
 * The steer interchange format: one JSON object a line (JSONL), used by `steerbot import`,
 * `steerbot export --format steers` and the trainer.
 *
 * Owns: the schema of one steer line and the line-by-line parser that reports every bad line
 * with its number and reason instead of failing the whole file.
 *
 * `context` is the chat before the assistant reply, `prefix` the accepted assistant text before
 * the divergence, `rejected` the span the person stopped, `chosen` their correction. Extra
 * fields (e.g. `id`, `author`) are allowed and kept verbatim.
 */
import { z } from "zod";

export const chatRoleSchema = z.enum(["system", "user", "assistant"]);
export type ChatRole = z.infer<typeof chatRoleSchema>;

export const chatMessageSchema = z.object({ role: chatRoleSchema, content: z.string() }).strict();
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const steerRecordSchema = z
  .object({
    context: z.array(chatMessageSchema).min(1, "context needs at least one message (the user's question)"),
    prefix: z.string(),
    rejected: z.string(),
    chosen: z.string().min(1, "chosen must not be empty: a steer without a correction teaches nothing"),
  })
  .passthrough();

/** One steer as it travels between files, the store and the trainer. */
export type SteerRecord = z.infer<typeof steerRecordSchema> & Record<string, unknown>;

export interface SteerLineError {
  line: number;
  reason: string;
}

export interface ParsedSteers {
  steers: { line: number; steer: SteerRecord }[];
  errors: SteerLineError[];
}

/**
 * Parses JSONL text; blank lines are skipped, bad lines are collected, never thrown. A UTF-8
 * byte-order mark at the start (Windows editors write one) is not part of line 1.
 */
export function parseSteerJsonl(text: string): ParsedSteers {
  const result: ParsedSteers = { steers: [], errors: [] };
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      result.errors.push({ line, reason: `not valid JSON (${(e as Error).message})` });
      return;
    }
    const parsed = steerRecordSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.length ? issue.path.join(".") : "line";
      result.errors.push({ line, reason: `${where}: ${issue.message}` });
      return;
    }
    // Keep the object as written (key order included), not zod's copy: export must give back
    // exactly what was imported.
    result.steers.push({ line, steer: value as SteerRecord });
  });
  return result;
}
