/**
 * Alignment of a correction against the text the person saw (DESIGN.md §4).
 *
 * Owns: turning (shown text S, correction reply) into a steer split — `prefix` (accepted),
 * `rejected` (the part the person stopped), `chosen` (what it should have said) — or a short,
 * friendly failure that tells the person how to write a correction. Pure and platform-free:
 * no I/O, no SDK, no clock; the only platform facility used is `Intl.Segmenter` (with a
 * code-point fallback).
 *
 * Forms, tried in this order:
 * 1. `quote`        — an explicit quote (Telegram: text + UTF-16 position) or leading `> ` lines
 *                     (Discord). Divergence at the start of the quoted part; the reply text
 *                     (after the `> ` lines) is the chosen span.
 * 2. `substitute`   — `s/old/new/` with an ASCII punctuation delimiter. Divergence at the start
 *                     of the LAST occurrence of `old`; chosen = `new`; all after it is rejected.
 * 3. `overlap`      — plain text C whose longest word-bounded prefix (≥ `minOverlap` letters or
 *                     digits) occurs in S (last occurrence): the overlap stays in prefix, the rest
 *                     of C is chosen, everything in S after the overlap is rejected.
 * 4. `continuation` — no overlap: prefix = S, rejected = "", chosen = C (an SFT-only steer).
 *
 * Invariants of every success: `prefix + rejected === shown` (S is never altered, not even its
 * trailing whitespace), `divergence === prefix.length`, the divergence is a grapheme boundary of
 * S (never inside a surrogate pair, an emoji ZWJ sequence or before a combining mark), and
 * `chosen` is non-empty.
 *
 * Documented choices:
 * - Whitespace: the correction text is trimmed at both ends (chat clients do this anyway and a
 *   trailing newline is never meant); inside `s/old/new/` both parts are taken verbatim. A quote
 *   is trimmed too, so the divergence lands on the first non-space quoted character.
 * - Continuation joins with one space when S ends in a word character or closing punctuation and
 *   C starts with a letter or digit (neither being CJK/Thai-like), so prefix + chosen reads as
 *   text ("…is" + " Paris") instead of "…isParis".
 * - Normalisation: when S is NFC (LLM output practically always is) the correction and quote are
 *   NFC-normalised, so an NFD "é" typed on macOS still matches. CRLF in the correction becomes LF
 *   unless S itself contains CR. S is never normalised (its offsets must stay valid).
 * - Word boundary: between two characters unless both are word characters (letters, digits,
 *   marks, connector punctuation) of a space-separated script; apostrophes between letters and
 *   `.`/`,`/`:` between digits are inside a word ("don't", "3.14"). In CJK, Thai, Lao, Khmer and
 *   Myanmar text every character boundary is a word boundary. The overlap must start and end on
 *   word boundaries in S and end on one in C.
 * - Empty chosen is an error (`empty_chosen`): a quote with nothing under it, `s/old//` or an
 *   all-whitespace `new` (deleting is not a steer: chosen must teach the model something), or
 *   plain text that only repeats S.
 * - A text starting `s/` (or `s|`, `s#`, `s@`, `s%`, `s&`, `s~`, `s!`, `s$`) that cannot be
 *   parsed is `substitute_malformed` (`s|foo` lacks its closing delimiter); other delimiters
 *   that do not parse fall through to plain text (so "s.t. x.y" and "s=3" stay prose). Quote characters
 *   (' " `) are not delimiters. A trailing `g` flag is accepted and ignored.
 * - Length limit: counted in Unicode code points of the trimmed correction.
 * - Quotes are matched exactly first, then with any run of whitespace matching any run of
 *   whitespace (line breaks lost in copy-paste), then against the *rendered* text: chat apps
 *   show `**bold**` as bold, so a quote copied from the screen lacks the markup. The rendered
 *   view drops Markdown markers (`**`, `*`, `__`, `_`, `~~`, `||`, backticks, `#` headings,
 *   `>` quote lines, `[text](url)` link syntax, `\` escapes) and keeps a map from each rendered
 *   character back to its offset in S, so the divergence is still an offset of S: the start of
 *   the quote's first character, moved back over markup that opens just before it (the prefix
 *   then never ends in a dangling `**`). `s/old/` is matched exactly.
 */
import type { CorrectionErrorCode } from "./errors.ts";
import { CorrectionError } from "./errors.ts";

/** A correction as the platform adapters deliver it. */
export interface Correction {
  /** The reply text as the person wrote it (the bot mention already stripped). */
  text: string;
  /**
   * Telegram's reply quote: the quoted part of the bot's message and its UTF-16 offset in that
   * message. The offset is a hint: a reply spread over several messages, or edited later, may
   * not line up with the shown text, so it is used only when it matches.
   */
  quote?: { text: string; position?: number };
}

export type AlignmentForm = "quote" | "substitute" | "overlap" | "continuation";

export interface AlignmentOk {
  ok: true;
  /** Accepted text before the divergence; `prefix + rejected === shown`. */
  prefix: string;
  /** The shown text from the divergence to the stop point (may be empty). */
  rejected: string;
  /** What the model should have written at the divergence; never empty. */
  chosen: string;
  form: AlignmentForm;
  /** UTF-16 offset of the divergence in the shown text (= prefix.length). */
  divergence: number;
}

export interface AlignmentFailure {
  ok: false;
  code: CorrectionErrorCode;
  /** Short, friendly, addressed to the person: what went wrong and how to write a correction. */
  message: string;
}

export type AlignmentResult = AlignmentOk | AlignmentFailure;

export interface AlignOptions {
  /** Longest correction accepted, in code points (default 2000, Discord's message limit). */
  maxChars?: number;
  /** Letters/digits an overlap needs before it counts (default 4): shorter ones are chance. */
  minOverlap?: number;
}

export const DEFAULT_MAX_CHARS = 2000;
export const DEFAULT_MIN_OVERLAP = 4;

/** The one-line "how to" every failure message ends with. */
export const CORRECTION_HOWTO =
  "Reply with what I should have said, quote the wrong part (a line starting with > , your fix below it), or send s/wrong/right/.";

/**
 * Aligns a correction against the shown text. Never throws for user input: failures are
 * returned so the adapter can show `message` to the person.
 */
export function alignCorrection(shown: string, correction: Correction, opts: AlignOptions = {}): AlignmentResult {
  const maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
  const minOverlap = opts.minOverlap ?? DEFAULT_MIN_OVERLAP;
  const text = normalizeLike(shown, correction.text).trim();
  const quoteText = correction.quote ? normalizeLike(shown, correction.quote.text) : "";
  const hasQuote = !isBlank(quoteText);

  const length = codePointLength(text);
  if (length > maxChars) {
    return fail(
      "too_long",
      `That correction is ${length} characters; the limit is ${maxChars}. Keep it short: just the part that should change.`,
    );
  }

  const shownGraphemes = graphemeBoundaries(shown);

  // 1. Quote: Telegram's quote object wins over anything in the text.
  if (hasQuote) {
    return alignQuote(shown, shownGraphemes, quoteText, correction.quote!.position, text);
  }
  if (isBlank(text)) return fail("empty", `That correction is empty. ${CORRECTION_HOWTO}`);

  // 1b. Discord-style quote lines.
  if (text.startsWith(">>> ")) {
    return fail(
      "empty_chosen",
      `A >>> block quotes everything after it, so there is no fix left. Put > before each quoted line only, then write the fix below.`,
    );
  }
  const lines = text.split("\n");
  let quoted = 0;
  while (quoted < lines.length && /^>( |$)/.test(lines[quoted]!)) quoted++;
  if (quoted > 0) {
    const quote = lines
      .slice(0, quoted)
      .map((l) => l.replace(/^> ?/, ""))
      .join("\n");
    const rest = lines.slice(quoted).join("\n").trim();
    if (!isBlank(quote)) return alignQuote(shown, shownGraphemes, quote, undefined, rest);
    if (isBlank(rest)) return fail("empty", `That correction is empty. ${CORRECTION_HOWTO}`);
    return alignPlain(shown, shownGraphemes, rest, minOverlap);
  }

  // 2. s/old/new/
  const sub = parseSubstitute(text);
  if (sub === "malformed") {
    const d = text[1]!;
    const form = `s${d}old${d}new${d}`;
    return fail(
      "substitute_malformed",
      `That looks like ${form} but I can't read it. Write ${form} with something between the first two ${d === "/" ? "slashes" : `${d} signs`}, and \\${d} for a ${d} inside old or new.`,
    );
  }
  if (sub) return alignSubstitute(shown, shownGraphemes, sub.old, sub.replacement);

  // 3./4. Plain text.
  return alignPlain(shown, shownGraphemes, text, minOverlap);
}

/** Throws the failure as a `CorrectionError`, for callers that prefer exceptions. */
export function unwrapAlignment(result: AlignmentResult): AlignmentOk {
  if (!result.ok) throw new CorrectionError(result.code, result.message);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Forms

function alignQuote(
  shown: string,
  graphemes: Uint8Array,
  rawQuote: string,
  position: number | undefined,
  rest: string,
): AlignmentResult {
  const quote = rawQuote.trim();
  const chosen = rest.trim();
  if (isBlank(chosen)) {
    return fail(
      "empty_chosen",
      "You quoted the wrong part but wrote no fix. Reply again with the quote and what I should have said below it.",
    );
  }
  let at = -1;
  if (position !== undefined && Number.isInteger(position)) {
    // The quote may carry leading whitespace that we trimmed: shift the position with it.
    const lead = rawQuote.length - rawQuote.trimStart().length;
    const p = position + lead;
    if (p >= 0 && shown.startsWith(quote, p) && graphemes[p] && graphemes[p + quote.length]) at = p;
  }
  if (at < 0) at = lastOccurrence(shown, quote, graphemes);
  if (at < 0) at = lastFlexibleOccurrence(shown, quote, graphemes);
  if (at < 0) at = renderedOccurrence(shown, quote, graphemes);
  if (at < 0) {
    return fail(
      "quote_not_found",
      `I can't find "${preview(quote)}" in my reply. Quote text exactly as I wrote it, or reply with the fix alone.`,
    );
  }
  return ok(shown, at, chosen, "quote");
}

function alignSubstitute(shown: string, graphemes: Uint8Array, old: string, replacement: string): AlignmentResult {
  if (isBlank(replacement)) {
    return fail(
      "empty_chosen",
      `s/${preview(old)}// would only delete text; tell me what to say instead: s/${preview(old)}/right text/.`,
    );
  }
  const at = lastOccurrence(shown, old, graphemes);
  if (at < 0) {
    return fail(
      "substitute_not_found",
      `I can't find "${preview(old)}" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
    );
  }
  return ok(shown, at, replacement, "substitute");
}

function alignPlain(shown: string, graphemes: Uint8Array, text: string, minOverlap: number): AlignmentResult {
  const overlap = findOverlap(shown, graphemes, text, minOverlap);
  if (overlap) {
    const chosen = text.slice(overlap.length);
    if (isBlank(chosen)) {
      return fail(
        "empty_chosen",
        `That only repeats what I already wrote. Add what I should have said after it, or use s/wrong/right/.`,
      );
    }
    return ok(shown, overlap.end, chosen, "overlap");
  }
  return ok(shown, shown.length, joinContinuation(shown, text), "continuation");
}

function ok(shown: string, divergence: number, chosen: string, form: AlignmentForm): AlignmentOk {
  return {
    ok: true,
    prefix: shown.slice(0, divergence),
    rejected: shown.slice(divergence),
    chosen,
    form,
    divergence,
  };
}

function fail(code: CorrectionErrorCode, message: string): AlignmentFailure {
  return { ok: false, code, message };
}

// ---------------------------------------------------------------------------------------------
// s/old/new/

/** ASCII punctuation usable as a delimiter: not alphanumeric, not space, not \ and no quotes. */
const SUB_DELIMITER = /^[!#$%&()*+,\-./:;<=>?@[\]^_{|}~]$/;
/**
 * Delimiters nobody writes after a lone "s" in prose or code: `s|foo` that does not parse is a
 * broken command (refused, never stored as prose). After any other one (`s.t.`, `s=3`, `s[0]`)
 * text that does not parse is plain text.
 */
const SURE_DELIMITER = /^[/|#@%&~!$]$/;

/**
 * Parses `s<d>old<d>new[<d>[g]]`. `\<d>` is a literal delimiter, `\\` a literal backslash, any
 * other backslash is kept as written (so `C:\path` survives). Returns null for text that is not
 * a substitute command, "malformed" for text that starts `s/` (or another sure delimiter, see
 * {@link SURE_DELIMITER}) but is broken.
 */
export function parseSubstitute(text: string): { old: string; replacement: string } | "malformed" | null {
  if (text.length < 2 || text[0] !== "s" || !SUB_DELIMITER.test(text[1]!)) return null;
  const d = text[1]!;
  const broken = SURE_DELIMITER.test(d) ? ("malformed" as const) : null;
  const first = readPart(text, 2, d);
  if (!first.closed || first.part === "") return broken;
  const second = readPart(text, first.next, d);
  if (second.closed && !/^g?$/.test(text.slice(second.next))) return broken;
  return { old: first.part, replacement: second.part };
}

function readPart(text: string, start: number, d: string): { part: string; next: number; closed: boolean } {
  let part = "";
  let i = start;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "\\" && i + 1 < text.length) {
      const n = text[i + 1]!;
      part += n === d || n === "\\" ? n : c + n;
      i += 2;
      continue;
    }
    if (c === d) return { part, next: i + 1, closed: true };
    part += c;
    i++;
  }
  return { part, next: i, closed: false };
}

// ---------------------------------------------------------------------------------------------
// Overlap

/**
 * The longest prefix of `text` that ends on a word boundary of `text`, has at least
 * `minOverlap` letters/digits, and occurs in `shown` between word boundaries (last occurrence).
 */
function findOverlap(
  shown: string,
  shownGraphemes: Uint8Array,
  text: string,
  minOverlap: number,
): { length: number; end: number } | null {
  const textGraphemes = graphemeBoundaries(text);
  // Prefix sums of letters/digits, to stop as soon as the candidate is too short.
  const alnum = new Uint32Array(text.length + 1);
  for (let i = 0; i < text.length; i++) alnum[i + 1] = alnum[i]! + (/[\p{L}\p{N}]/u.test(text[i]!) || isHighSurrogateOfAlnum(text, i) ? 1 : 0);
  for (let k = text.length; k > 0; k--) {
    if (alnum[k]! < minOverlap) break;
    if (!textGraphemes[k] || !isWordBoundary(text, k)) continue;
    const part = text.slice(0, k);
    const at = lastOccurrence(shown, part, shownGraphemes, (s, e) => isWordBoundary(shown, s) && isWordBoundary(shown, e));
    if (at >= 0) return { length: k, end: at + k };
  }
  return null;
}

function isHighSurrogateOfAlnum(text: string, i: number): boolean {
  const cp = text.codePointAt(i)!;
  return cp > 0xffff && /[\p{L}\p{N}]/u.test(String.fromCodePoint(cp));
}

/** Joins a continuation so prefix + chosen reads as text; see the head comment. */
function joinContinuation(shown: string, text: string): string {
  if (shown === "" || /\s$/u.test(shown) || /^\s/u.test(text)) return text;
  const last = lastCodePoint(shown);
  const first = String.fromCodePoint(text.codePointAt(0)!);
  if (NO_SPACE_SCRIPT.test(last) || NO_SPACE_SCRIPT.test(first)) return text;
  if (!/[\p{L}\p{N}]/u.test(first)) return text;
  if (WORD_CHAR.test(last) || /[.,;:!?)\]}»”’"'…]/u.test(last)) return " " + text;
  return text;
}

// ---------------------------------------------------------------------------------------------
// Unicode helpers

const WORD_CHAR = /[\p{L}\p{N}\p{M}\p{Pc}]/u;
const LETTER = /\p{L}/u;
const DIGIT = /\p{N}/u;
/** Scripts written without spaces between words: every character boundary is a word boundary. */
const NO_SPACE_SCRIPT =
  /[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Bopomofo}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}]/u;

let segmenter: Intl.Segmenter | null | undefined;

/**
 * `b[i] === 1` when UTF-16 offset i is a grapheme-cluster boundary (0 and length included).
 * Falls back to code-point boundaries where `Intl.Segmenter` is missing (small-ICU builds), which
 * still never splits a surrogate pair.
 */
export function graphemeBoundaries(text: string): Uint8Array {
  const b = new Uint8Array(text.length + 1);
  if (segmenter === undefined) {
    segmenter = typeof Intl !== "undefined" && "Segmenter" in Intl ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  }
  if (segmenter) {
    for (const { index } of segmenter.segment(text)) b[index] = 1;
  } else {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (!(c >= 0xdc00 && c <= 0xdfff && i > 0 && isHigh(text.charCodeAt(i - 1)))) b[i] = 1;
    }
  }
  b[text.length] = 1;
  return b;
}

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function lastCodePoint(text: string): string {
  const i = text.length - 1;
  if (i > 0 && isHigh(text.charCodeAt(i - 1))) return text.slice(i - 1);
  return text.slice(i);
}

function codePointBefore(text: string, i: number): string {
  if (i >= 2 && isHigh(text.charCodeAt(i - 2)) && !isHigh(text.charCodeAt(i - 1))) {
    const c = text.charCodeAt(i - 1);
    if (c >= 0xdc00 && c <= 0xdfff) return text.slice(i - 2, i);
  }
  return text.slice(i - 1, i);
}

function codePointAt(text: string, i: number): string {
  const cp = text.codePointAt(i);
  return cp === undefined ? "" : String.fromCodePoint(cp);
}

/** Word boundary at UTF-16 offset i of text, as defined in the head comment. */
export function isWordBoundary(text: string, i: number): boolean {
  if (i <= 0 || i >= text.length) return true;
  const a = codePointBefore(text, i);
  const b = codePointAt(text, i);
  const aw = WORD_CHAR.test(a);
  const bw = WORD_CHAR.test(b);
  if (aw && bw) return NO_SPACE_SCRIPT.test(a) || NO_SPACE_SCRIPT.test(b);
  // Infix punctuation inside a word: don't, l’eau, 3.14, 1,000, 12:30.
  if (aw && !bw && i + b.length < text.length) {
    const c = codePointAt(text, i + b.length);
    if (isInfix(a, b, c)) return false;
  }
  if (!aw && bw && i - a.length > 0) {
    const z = codePointBefore(text, i - a.length);
    if (isInfix(z, a, b)) return false;
  }
  return true;
}

function isInfix(before: string, mid: string, after: string): boolean {
  if ((mid === "'" || mid === "’") && LETTER.test(before) && LETTER.test(after)) return true;
  if ((mid === "." || mid === "," || mid === ":") && DIGIT.test(before) && DIGIT.test(after)) return true;
  return false;
}

function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Brings the correction to the shown text's conventions; see the head comment. */
/**
 * Nothing a person could read: whitespace and invisible format characters only (zero-width
 * space and joiners, word joiner, BOM, direction marks).
 */
function isBlank(text: string): boolean {
  return text.replace(/[\s\p{Cf}]/gu, "") === "";
}

function normalizeLike(shown: string, text: string): string {
  let t = text;
  if (!shown.includes("\r")) t = t.replace(/\r\n?/g, "\n");
  if (shown === shown.normalize("NFC")) t = t.normalize("NFC");
  return t;
}

/**
 * Last occurrence of needle in text that starts and ends on grapheme boundaries (and satisfies
 * `accept`), or -1. Overlapping occurrences are considered.
 */
function lastOccurrence(
  text: string,
  needle: string,
  graphemes: Uint8Array,
  accept?: (start: number, end: number) => boolean,
): number {
  if (needle === "") return -1;
  let from = text.length - needle.length;
  while (from >= 0) {
    const at = text.lastIndexOf(needle, from);
    if (at < 0) return -1;
    const end = at + needle.length;
    if (graphemes[at] && graphemes[end] && (!accept || accept(at, end))) return at;
    from = at - 1;
  }
  return -1;
}

/** Like `lastOccurrence`, but any run of whitespace in the needle matches any run in the text. */
function lastFlexibleOccurrence(text: string, needle: string, graphemes: Uint8Array): number {
  const words = needle.split(/\s+/u).filter((w) => w !== "");
  if (words.length < 2) return -1;
  const re = new RegExp(words.map(escapeRegExp).join("\\s+"), "gu");
  let best = -1;
  for (const m of text.matchAll(re)) {
    const start = m.index!;
    if (graphemes[start] && graphemes[start + m[0].length]) best = start;
  }
  return best;
}

/**
 * What a chat client shows for Markdown text: markers removed. `map[i]` is the offset in `raw`
 * of rendered character `i`, and `map[rendered.length] === raw.length`.
 */
export function renderedView(raw: string): { text: string; map: number[] } {
  let text = "";
  const map: number[] = [];
  const emit = (i: number, n = 1): void => {
    for (let k = 0; k < n; k++) {
      text += raw[i + k];
      map.push(i + k);
    }
  };
  const wordy = (c: string | undefined): boolean => c !== undefined && /[\p{L}\p{N}]/u.test(c);
  let i = 0;
  let lineStart = true;
  while (i < raw.length) {
    const c = raw[i]!;
    if (lineStart) {
      const block = /^(?:#{1,3} |>>> |> |[-*] )/.exec(raw.slice(i, i + 4));
      lineStart = false;
      if (block) {
        i += block[0].length;
        continue;
      }
    }
    if (c === "\n") {
      emit(i);
      i++;
      lineStart = true;
      continue;
    }
    if (c === "\\" && i + 1 < raw.length && /[\p{P}\p{S}]/u.test(raw[i + 1]!)) {
      emit(i + 1); // an escaped marker shows as itself
      i += 2;
      continue;
    }
    if (c === "[") {
      const link = /^\[([^\]\n]+)\]\((?:https?:\/\/|<https?:\/\/)[^)\s]+\)/.exec(raw.slice(i));
      if (link) {
        emit(i + 1, link[1]!.length);
        i += link[0].length;
        continue;
      }
    }
    const run = /^(?:\*+|_+|~~+|\|\|+|`+)/.exec(raw.slice(i));
    if (run) {
      const n = run[0].length;
      // snake_case and 2*3*4 keep their characters: markers never sit between two word characters.
      const inWord = (c === "_" || c === "*") && wordy(raw[i - 1]) && wordy(raw[i + n]);
      if (!inWord) {
        i += n;
        continue;
      }
      emit(i, n);
      i += n;
      continue;
    }
    emit(i);
    i++;
  }
  map.push(raw.length);
  return { text, map };
}

/**
 * Where a quote copied from the rendered text starts in `shown`: its last occurrence in the
 * rendered view (exact, then whitespace-flexible), mapped back and moved before the markup that
 * opens right before it; -1 when it is not there either.
 */
function renderedOccurrence(shown: string, quote: string, graphemes: Uint8Array): number {
  const view = renderedView(shown);
  if (view.text === shown) return -1;
  const viewGraphemes = graphemeBoundaries(view.text);
  let at = lastOccurrence(view.text, quote, viewGraphemes);
  if (at < 0) at = lastFlexibleOccurrence(view.text, quote, viewGraphemes);
  if (at < 0) return -1;
  const raw = at === 0 ? 0 : view.map[at - 1]! + 1;
  if (graphemes[raw]) return raw;
  return graphemes[view.map[at]!] ? view.map[at]! : -1;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A short single-line excerpt of user text for error messages. */
function preview(s: string): string {
  const one = s.replace(/\s+/gu, " ");
  const cps = Array.from(one);
  return cps.length > 40 ? cps.slice(0, 39).join("") + "…" : one;
}
