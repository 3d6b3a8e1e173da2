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
    /**
     * The prefix is text the model never produced (a later hunk of an edited reply, see
     * core/import-formats/edits.ts): training includes or skips these by `training.approximate_steers`.
     */
    approximate: z.boolean().optional(),
  })
  .passthrough();

/** One steer as it travels between files, the store and the trainer. */
export type SteerRecord = z.infer<typeof steerRecordSchema> & Record<string, unknown>;

export interface SteerLineError {
  line: number;
  reason: string;
}

export interface ParsedSteers {
  steers: { line: number; steer: SteerRecord; text: string }[];
  errors: SteerLineError[];
}

/** One line of a steers file: the steer and the line's very text, or why it is refused; null for a blank line. */
export type ParsedLine = { steer: SteerRecord; text: string } | { error: string } | null;

/**
 * Parses one JSONL line (`line` 1 strips a UTF-8 byte-order mark, which Windows editors write).
 * `text` is the line as written, without its line break: stored and exported as it is, since
 * re-serializing would change it (integers above 2^53 in extra fields, key spacing, escapes).
 */
export function parseSteerLine(raw: string, line: number): ParsedLine {
  const json = parseJsonLine(raw, line);
  if (json === null || "error" in json) return json;
  return checkSteer(json.value, json.text);
}

/**
 * One JSONL line as a JSON value, for every import format: the byte-order mark on line 1 and a
 * Windows line break are not part of it; null for a blank line.
 */
export function parseJsonLine(raw: string, line: number): { value: unknown; text: string } | { error: string } | null {
  const text = (line === 1 ? raw.replace(/^\uFEFF/, "") : raw).replace(/\r$/, "");
  if (text.trim() === "") return null;
  try {
    return { value: JSON.parse(text), text };
  } catch (e) {
    return { error: `not valid JSON (${(e as Error).message})` };
  }
}

/** A value checked against the steer schema; `text` is what is stored as the steer's line. */
export function checkSteer(value: unknown, text: string): { steer: SteerRecord; text: string } | { error: string } {
  const parsed = steerRecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? issue.path.join(".") : "line";
    return { error: `${where}: ${issue.message}` };
  }
  // The object as written (key order included), not zod's copy.
  return { steer: value as SteerRecord, text };
}

/** Parses JSONL text; blank lines are skipped, bad lines are collected, never thrown. */
export function parseSteerJsonl(text: string): ParsedSteers {
  const result: ParsedSteers = { steers: [], errors: [] };
  text.split("\n").forEach((raw, i) => {
    const parsed = parseSteerLine(raw, i + 1);
    if (parsed === null) return;
    if ("error" in parsed) result.errors.push({ line: i + 1, reason: parsed.error });
    else result.steers.push({ line: i + 1, steer: parsed.steer, text: parsed.text });
  });
  return result;
}
