/**
 * Snapping an alignment to the generated tokens (DESIGN.md §4, last paragraph).
 *
 * Owns: moving the divergence back to the start of the token it falls in, so that the prefix is
 * exactly a run of tokens the model produced (training and resume then use the model's own
 * token ids for it instead of a re-tokenisation that may differ), and moving the cut-off part of
 * that token into the chosen span. Pure and platform-free.
 *
 * Token contract (checked; a violation throws `TokenSnapError`, it is an engine bug):
 * - `tokens` are the generated tokens in order; `offset` is the UTF-16 offset of the token's
 *   text in the shown text; tokens are contiguous: `tokens[0].offset === 0` and each offset is
 *   the previous offset + the previous text's length.
 * - A token's text is what it added to the detokenised text. A token holding only part of a
 *   multi-byte character has text "" and the token that completes the character carries it (what
 *   a streaming UTF-8 decoder yields), so no text is ever a broken surrogate or U+FFFD stand-in.
 * - The text of every token agrees with the shown text where they overlap. Tokens may run past
 *   the end of the shown text (the model ran ahead of the last edit; the last shown token may be
 *   cut): those are never prefix tokens, and only their shown part exists in `rejected`.
 * - The tokens must reach at least to the end of the shown text.
 */
import { TokenSnapError } from "./errors.ts";

export interface GeneratedToken {
  id: number;
  text: string;
  /** UTF-16 offset of `text` in the shown text. */
  offset: number;
}

/** The parts of an alignment that snapping reads (an `AlignmentOk` fits). */
export interface AlignmentSplit {
  prefix: string;
  rejected: string;
  chosen: string;
  divergence: number;
}

export interface SnappedAlignment {
  /** `shown.slice(0, divergence)`: exactly the text of the first `prefixTokenCount` tokens. */
  prefix: string;
  /** `shown.slice(divergence)`: starts on a token boundary; `prefix + rejected === shown`. */
  rejected: string;
  /** The moved-back token text (its shown part) followed by the aligned chosen span. */
  chosen: string;
  /** How many of `tokens` form the prefix; their ids are the prefix token ids. */
  prefixTokenCount: number;
  /** UTF-16 offset of the snapped divergence in the shown text (≤ the aligned one). */
  divergence: number;
}

/**
 * Moves the divergence back to the start of the token it falls in. A divergence already on a
 * token boundary is kept. Empty-text tokens sitting exactly at the (snapped) divergence — the
 * first bytes of a character that the next token completes — are left out of the prefix: they
 * belong to the character after it.
 */
export function snapToTokens(alignment: AlignmentSplit, tokens: readonly GeneratedToken[]): SnappedAlignment {
  const shown = alignment.prefix + alignment.rejected;
  const d = alignment.divergence;
  if (d !== alignment.prefix.length) {
    throw new TokenSnapError(`divergence ${d} does not match the prefix length ${alignment.prefix.length}`);
  }
  checkTokens(shown, tokens);

  let snapped = d;
  let count = 0;
  for (const t of tokens) {
    const end = t.offset + t.text.length;
    if (end < d || (end === d && t.text !== "")) {
      count++;
      continue;
    }
    // First token that is not wholly before d: d falls inside it or on its start.
    if (t.offset < d) snapped = t.offset;
    break;
  }
  // Moved back to a token's start: empty-text tokens just before it hold the first bytes of
  // that token's first character, so they leave the prefix with it.
  while (count > 0 && tokens[count - 1]!.text === "" && tokens[count - 1]!.offset === snapped) count--;
  return {
    prefix: shown.slice(0, snapped),
    rejected: shown.slice(snapped),
    chosen: shown.slice(snapped, d) + alignment.chosen,
    prefixTokenCount: count,
    divergence: snapped,
  };
}

function checkTokens(shown: string, tokens: readonly GeneratedToken[]): void {
  let expected = 0;
  tokens.forEach((t, i) => {
    if (t.offset !== expected) {
      throw new TokenSnapError(
        `token ${i} (id ${t.id}) starts at ${t.offset}, expected ${expected}: tokens must be contiguous from offset 0`,
        i,
      );
    }
    if (t.offset < shown.length) {
      const visible = shown.slice(t.offset, t.offset + t.text.length);
      if (!t.text.startsWith(visible)) {
        throw new TokenSnapError(
          `token ${i} (id ${t.id}) text ${JSON.stringify(t.text)} differs from the shown text ${JSON.stringify(visible)} at ${t.offset}`,
          i,
        );
      }
    }
    expected = t.offset + t.text.length;
  });
  if (expected < shown.length) {
    throw new TokenSnapError(`tokens cover ${expected} of the ${shown.length} shown characters`);
  }
}
