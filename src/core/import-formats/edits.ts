/**
 * Edited replies as steers (`steerbot import --from edits`): a line
 * `{"context":[…], "generated":"…", "corrected":"…"}` holds the model's reply and the same
 * reply after a person edited it.
 *
 * Owns: the token-level diff of the two texts under the model's tokenization and the steers it
 * gives. Each changed hunk is a steer: prefix = the corrected text before it, rejected = the
 * model's tokens of the hunk, chosen = the edit. Only the first hunk's prefix is text the model
 * produced; every later one follows earlier edits, a prefix the model never wrote, so those are
 * marked `approximate` (training includes or skips them: `training.approximate_steers`).
 *
 * Decisions, in order:
 * - only appended to (`corrected` starts with `generated`): one SFT example — prefix = the
 *   model's reply, rejected empty, chosen = what was added (exact);
 * - only truncated (`generated` starts with `corrected`): one SFT example of the kept text
 *   (prefix and rejected empty). It cannot teach "stop here": steerbot adds no end-of-sequence
 *   marker anywhere, so the cut itself is not learned (a note says so);
 * - a pure deletion inside the text: chosen = the corrected text's next token (after the model's
 *   words, the person wanted what follows the deletion), rejected = the deleted tokens;
 * - a pure insertion inside the text: rejected = the model's next token, chosen = the insertion;
 *   at the very end it is an SFT-style steer (rejected empty);
 * - a deletion of the reply's end after earlier edits: no steer (nothing was chosen there); a
 *   note says so.
 * Pure: the tokenizer comes in as a function (the CLI passes the engine's).
 */
import { diffArrays } from "diff";
import { chatMessageSchema, type SteerRecord } from "../steer-record.ts";
import type { GeneratedToken } from "../token-snap.ts";
import { derive, FormatError, steerOf, type Derived } from "./chat-input.ts";

/**
 * The model's tokens of a text, each with the text it adds and its offset (the token contract
 * of token-snap.ts: contiguous from 0, the texts joining to exactly `text`).
 */
export type TextTokenizer = (text: string) => GeneratedToken[];

interface Hunk {
  g0: number;
  g1: number;
  c0: number;
  c1: number;
}

function text(tokens: readonly GeneratedToken[], from: number, to: number): string {
  return tokens.slice(from, to).map((t) => t.text).join("");
}

/** Tokens from `from` up to and including the first one with text (a character's first bytes have none). */
function nextToken(tokens: readonly GeneratedToken[], from: number): number {
  let i = from;
  while (i < tokens.length && tokens[i]!.text === "") i++;
  return Math.min(i + 1, tokens.length);
}

function hunks(g: readonly GeneratedToken[], c: readonly GeneratedToken[]): Hunk[] {
  const out: Hunk[] = [];
  let gi = 0;
  let ci = 0;
  let open: Hunk | null = null;
  for (const part of diffArrays(g.map((t) => t.id), c.map((t) => t.id))) {
    const n = part.count ?? part.value.length;
    if (!part.added && !part.removed) {
      if (open) out.push(open);
      open = null;
      gi += n;
      ci += n;
      continue;
    }
    open ??= { g0: gi, g1: gi, c0: ci, c1: ci };
    if (part.removed) open.g1 = gi += n;
    else open.c1 = ci += n;
  }
  if (open) out.push(open);
  return out;
}

function checkTokens(what: string, s: string, tokens: readonly GeneratedToken[]): void {
  if (text(tokens, 0, tokens.length) !== s) throw new FormatError(`${what}: the model's tokens do not spell the text exactly (detokenizing changes it), so no token diff can be taken`);
}

export function fromEdits(value: unknown, tokenize: TextTokenizer): Derived {
  return derive(() => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new FormatError("expected a JSON object");
    const row = value as Record<string, unknown>;
    const parsedContext = chatMessageSchema.array().min(1).safeParse(row.context);
    if (!parsedContext.success) throw new FormatError("context: expected a non-empty list of {role, content} messages (the chat before the reply)");
    const context = parsedContext.data;
    const { generated, corrected } = row;
    if (typeof generated !== "string" || typeof corrected !== "string") throw new FormatError("generated and corrected must both be strings");
    if (corrected.trim() === "") throw new FormatError("corrected is empty: there is no reply to learn");
    if (generated === corrected) throw new FormatError("corrected is the same as generated: no edit to learn from");

    if (corrected.startsWith(generated)) {
      return { steers: [steerOf({ context, prefix: generated, rejected: "", chosen: corrected.slice(generated.length) })], notes: ["only appended to: stored as an SFT example (empty rejected span)"] };
    }
    if (generated.startsWith(corrected)) {
      return {
        steers: [steerOf({ context, prefix: "", rejected: "", chosen: corrected })],
        notes: ["only truncated: stored as an SFT example of the kept text; where it was cut is not learned (no end-of-sequence marker is trained)"],
      };
    }

    const g = tokenize(generated);
    const c = tokenize(corrected);
    checkTokens("generated", generated, g);
    checkTokens("corrected", corrected, c);
    const steers: SteerRecord[] = [];
    const notes: string[] = [];
    for (const h of hunks(g, c)) {
      let rejected = text(g, h.g0, h.g1);
      let chosen = text(c, h.c0, h.c1);
      if (chosen === "") {
        if (h.c1 >= c.length) {
          notes.push(`the last edit deletes the end of the reply (${JSON.stringify(rejected.slice(0, 40))}): not a steer, nothing was chosen there`);
          continue;
        }
        chosen = text(c, h.c1, nextToken(c, h.c1));
      } else if (rejected === "" && h.g1 < g.length) {
        rejected = text(g, h.g1, nextToken(g, h.g1));
      }
      const prefix = text(c, 0, h.c0);
      const steer: SteerRecord = { context, prefix, rejected, chosen };
      if (steers.length > 0) steer.approximate = true;
      steers.push(steerOf(steer));
    }
    if (steers.length === 0) throw new FormatError("the edits give no steer (the token diff found no change with a chosen text)");
    return { steers, notes };
  });
}
