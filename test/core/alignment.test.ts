/**
 * Tests of `alignCorrection`: a table of exact cases per form (Unicode, CJK, emoji, several
 * lines, repeated phrases, s/// delimiters and escapes, quotes with and without position, every
 * failure code) and a seeded property loop for the invariants every success must keep.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  alignCorrection,
  CORRECTION_HOWTO,
  isWordBoundary,
  parseSubstitute,
  renderedView,
  unwrapAlignment,
  type AlignmentOk,
  type AlignOptions,
  type Correction,
} from "../../src/core/alignment.ts";
import { CorrectionError } from "../../src/core/errors.ts";
import { SeededRandom } from "../../src/engine/fixture/seeded-random.ts";

type Expected = Omit<AlignmentOk, "ok" | "divergence" | "rejected"> & { rejected?: string };

interface OkCase {
  name: string;
  shown: string;
  correction: Correction | string;
  expect: Expected;
  opts?: AlignOptions;
}

const CAPITAL = "The capital of France is Lyon. It has a population of 500k people.";

const okCases: OkCase[] = [
  // --- overlap ---------------------------------------------------------------------------
  {
    name: "overlap: the shared words stay in prefix, the space included",
    shown: CAPITAL,
    correction: "The capital of France is Paris.",
    expect: { form: "overlap", prefix: "The capital of France is ", chosen: "Paris." },
  },
  {
    name: "overlap: ends before punctuation when the correction goes on differently",
    shown: "The capital is Lyon, a city.",
    correction: "The capital is, in fact, Paris",
    expect: { form: "overlap", prefix: "The capital is", rejected: " Lyon, a city.", chosen: ", in fact, Paris" },
  },
  {
    name: "overlap: repeated phrase aligns at the last occurrence",
    shown: "I think so. I think so. I think not.",
    correction: "I think maybe",
    expect: { form: "overlap", prefix: "I think so. I think so. I think ", rejected: "not.", chosen: "maybe" },
  },
  {
    name: "overlap: several lines",
    shown: "Step 1: boil water.\nStep 2: add salt.\nStep 3: add pasta.",
    correction: "Step 2: add pasta.",
    expect: { form: "overlap", prefix: "Step 1: boil water.\nStep 2: add ", rejected: "salt.\nStep 3: add pasta.", chosen: "pasta." },
  },
  {
    name: "overlap: overlap that reaches the stop point leaves rejected empty",
    shown: "The capital is",
    correction: "The capital is Paris",
    expect: { form: "overlap", prefix: "The capital is", rejected: "", chosen: " Paris" },
  },
  {
    name: "overlap: a word cut by the stop point is rejected whole",
    shown: "The capital is Pa",
    correction: "The capital is Paris",
    expect: { form: "overlap", prefix: "The capital is ", rejected: "Pa", chosen: "Paris" },
  },
  {
    name: "overlap: numbers are words (3.14 is not split at the dot)",
    shown: "Pi is 3.14 roughly.",
    correction: "Pi is 3.1416 exactly",
    expect: { form: "overlap", prefix: "Pi is ", rejected: "3.14 roughly.", chosen: "3.1416 exactly" },
  },
  {
    name: "overlap: an apostrophe inside a word is no boundary",
    shown: "I don't know the answer.",
    correction: "I don't think so",
    expect: { form: "overlap", prefix: "I don't ", rejected: "know the answer.", chosen: "think so" },
  },
  {
    name: "overlap: CJK has no spaces, any character boundary counts",
    shown: "東京は日本の首都です。大阪は",
    correction: "東京は日本の首都であり",
    expect: { form: "overlap", prefix: "東京は日本の首都で", rejected: "す。大阪は", chosen: "あり" },
  },
  {
    name: "overlap: an NFD correction matches NFC shown text",
    shown: "Café au lait, please.",
    correction: "Cafe\u0301 noir, please.",
    expect: { form: "overlap", prefix: "Café ", rejected: "au lait, please.", chosen: "noir, please." },
  },
  {
    name: "overlap: CRLF in the correction matches LF in the shown text",
    shown: "First line here.\nSecond line is bad.",
    correction: "First line here.\r\nSecond line is good.",
    expect: { form: "overlap", prefix: "First line here.\nSecond line is ", rejected: "bad.", chosen: "good." },
  },
  {
    name: "overlap: four letters are enough",
    shown: "It is a cat.",
    correction: "It is a dog.",
    expect: { form: "overlap", prefix: "It is a ", rejected: "cat.", chosen: "dog." },
  },
  // --- continuation ------------------------------------------------------------------------
  {
    name: "continuation: no overlap, joined with a space after a word",
    shown: "The answer is",
    correction: "Paris.",
    expect: { form: "continuation", prefix: "The answer is", rejected: "", chosen: " Paris." },
  },
  {
    name: "continuation: joined with a space after a full stop",
    shown: CAPITAL,
    correction: "Also, it is nice.",
    expect: { form: "continuation", prefix: CAPITAL, rejected: "", chosen: " Also, it is nice." },
  },
  {
    name: "continuation: shown text ending in whitespace is kept exactly, no extra space",
    shown: "Done. \n",
    correction: "  More to say.  \n",
    expect: { form: "continuation", prefix: "Done. \n", rejected: "", chosen: "More to say." },
  },
  {
    name: "continuation: no space before punctuation",
    shown: "It works",
    correction: ", mostly.",
    expect: { form: "continuation", prefix: "It works", rejected: "", chosen: ", mostly." },
  },
  {
    name: "continuation: no space in CJK",
    shown: "答案是",
    correction: "巴黎。",
    expect: { form: "continuation", prefix: "答案是", rejected: "", chosen: "巴黎。" },
  },
  {
    name: "continuation: empty shown text",
    shown: "",
    correction: "Hello there",
    expect: { form: "continuation", prefix: "", rejected: "", chosen: "Hello there" },
  },
  {
    name: "continuation: an overlap inside a longer word does not count",
    shown: "The capitals are Paris and Rome",
    correction: "The capital of Italy is Rome.",
    expect: { form: "continuation", prefix: "The capitals are Paris and Rome", rejected: "", chosen: " The capital of Italy is Rome." },
  },
  {
    name: "continuation: fewer than four letters of overlap is chance",
    shown: "It is a cat.",
    correction: "A dog.",
    expect: { form: "continuation", prefix: "It is a cat.", rejected: "", chosen: " A dog." },
  },
  {
    name: "continuation: a different apostrophe does not make a half-word overlap",
    shown: "I don\u2019t know",
    correction: "I don't care",
    expect: { form: "continuation", prefix: "I don\u2019t know", rejected: "", chosen: " I don't care" },
  },
  {
    name: "continuation: prose starting with s. is not a substitute command",
    shown: "Okay",
    correction: "s.t. x.y",
    expect: { form: "continuation", prefix: "Okay", rejected: "", chosen: " s.t. x.y" },
  },
  {
    name: "continuation: s= reads as prose or code, not as a command",
    shown: "Okay",
    correction: "s=3 is the speed",
    expect: { form: "continuation", prefix: "Okay", rejected: "", chosen: " s=3 is the speed" },
  },
  // --- substitute --------------------------------------------------------------------------
  {
    name: "substitute: basic",
    shown: CAPITAL,
    correction: "s/Lyon/Paris/",
    expect: { form: "substitute", prefix: "The capital of France is ", chosen: "Paris" },
  },
  {
    name: "substitute: last occurrence of a repeated phrase",
    shown: "a cat and a cat and a dog",
    correction: "s/a cat/a bird/",
    expect: { form: "substitute", prefix: "a cat and ", rejected: "a cat and a dog", chosen: "a bird" },
  },
  {
    name: "substitute: | delimiter with / inside",
    shown: "Use the path a/b for it.",
    correction: "s|a/b|c/d|",
    expect: { form: "substitute", prefix: "Use the path ", rejected: "a/b for it.", chosen: "c/d" },
  },
  {
    name: "substitute: escaped delimiters",
    shown: "Use a/b here.",
    correction: "s/a\\/b/c\\/d/",
    expect: { form: "substitute", prefix: "Use ", rejected: "a/b here.", chosen: "c/d" },
  },
  {
    name: "substitute: other backslashes are kept, \\\\ is one backslash",
    shown: "Open C:\\temp\\x now",
    correction: "s/C:\\temp\\\\x/D:\\data/",
    expect: { form: "substitute", prefix: "Open ", rejected: "C:\\temp\\x now", chosen: "D:\\data" },
  },
  {
    name: "substitute: trailing delimiter optional",
    shown: CAPITAL,
    correction: "s/Lyon/Paris",
    expect: { form: "substitute", prefix: "The capital of France is ", chosen: "Paris" },
  },
  {
    name: "substitute: trailing g flag is accepted",
    shown: CAPITAL,
    correction: "s#Lyon#Paris#g",
    expect: { form: "substitute", prefix: "The capital of France is ", chosen: "Paris" },
  },
  {
    name: "substitute: whitespace inside the parts is verbatim, outside trimmed",
    shown: "The capital is Lyon.",
    correction: "  s/ Lyon/ Paris/  \n",
    expect: { form: "substitute", prefix: "The capital is", rejected: " Lyon.", chosen: " Paris" },
  },
  {
    name: "substitute: the new part may span lines",
    shown: "Line one.\nLine two.",
    correction: "s/Line two./Line 2.\nLine 3./",
    expect: { form: "substitute", prefix: "Line one.\n", rejected: "Line two.", chosen: "Line 2.\nLine 3." },
  },
  {
    name: "substitute: trailing whitespace of the shown text stays in rejected",
    shown: "The capital is Lyon.  \n",
    correction: "s/Lyon/Paris/",
    expect: { form: "substitute", prefix: "The capital is ", rejected: "Lyon.  \n", chosen: "Paris" },
  },
  {
    name: "substitute: an emoji inside a skin-tone sequence is skipped",
    shown: "I like 👍 and 👍🏽 a lot",
    correction: "s/👍/👎/",
    expect: { form: "substitute", prefix: "I like ", rejected: "👍 and 👍🏽 a lot", chosen: "👎" },
  },
  {
    name: "substitute: emoji after emoji, UTF-16 offsets",
    shown: "😀😀 ok 😀",
    correction: "s/😀/🙂/",
    expect: { form: "substitute", prefix: "😀😀 ok ", rejected: "😀", chosen: "🙂" },
  },
  {
    name: "substitute: CJK",
    shown: "首都は大阪です。",
    correction: "s/大阪/東京/",
    expect: { form: "substitute", prefix: "首都は", rejected: "大阪です。", chosen: "東京" },
  },
  // --- quote -------------------------------------------------------------------------------
  {
    name: "quote (Telegram): position that matches is used, not the last occurrence",
    shown: "Lyon is big. Lyon is old.",
    correction: { text: "Paris is big.", quote: { text: "Lyon", position: 0 } },
    expect: { form: "quote", prefix: "", rejected: "Lyon is big. Lyon is old.", chosen: "Paris is big." },
  },
  {
    name: "quote (Telegram): a position that does not match falls back to the last occurrence",
    shown: "Lyon is big. Lyon is old.",
    correction: { text: "Paris", quote: { text: "Lyon", position: 5 } },
    expect: { form: "quote", prefix: "Lyon is big. ", rejected: "Lyon is old.", chosen: "Paris" },
  },
  {
    name: "quote (Telegram): no position, last occurrence",
    shown: "Lyon is big. Lyon is old.",
    correction: { text: "Paris", quote: { text: "Lyon" } },
    expect: { form: "quote", prefix: "Lyon is big. ", rejected: "Lyon is old.", chosen: "Paris" },
  },
  {
    name: "quote (Telegram): quote with leading space, position shifted with it",
    shown: "The capital is Lyon.",
    correction: { text: "Paris.", quote: { text: " Lyon", position: 14 } },
    expect: { form: "quote", prefix: "The capital is ", rejected: "Lyon.", chosen: "Paris." },
  },
  {
    name: "quote (Telegram): text is the chosen span verbatim even if it looks like s///",
    shown: "The capital is Lyon.",
    correction: { text: "s/x/y/", quote: { text: "Lyon." } },
    expect: { form: "quote", prefix: "The capital is ", rejected: "Lyon.", chosen: "s/x/y/" },
  },
  {
    name: "quote (Telegram): UTF-16 position after an emoji",
    shown: "👋 Hi! Lyon it is.",
    correction: { text: "Paris it is.", quote: { text: "Lyon", position: 7 } },
    expect: { form: "quote", prefix: "👋 Hi! ", rejected: "Lyon it is.", chosen: "Paris it is." },
  },
  {
    name: "quote (Discord): several > lines, the reply below is chosen",
    shown: "Line one.\nLine two is wrong.\nLine three.",
    correction: "> Line two is wrong.\n> Line three.\nLine two is right.",
    expect: { form: "quote", prefix: "Line one.\n", rejected: "Line two is wrong.\nLine three.", chosen: "Line two is right." },
  },
  {
    name: "quote (Discord): line breaks lost in copy-paste still match",
    shown: "Line one.\nLine two is wrong.\nLine three.",
    correction: "> Line two is wrong. Line three.\nBetter.",
    expect: { form: "quote", prefix: "Line one.\n", rejected: "Line two is wrong.\nLine three.", chosen: "Better." },
  },
  {
    name: "quote (Discord): chosen keeps its own lines",
    shown: "A. B. C.",
    correction: "> B.\nX.\nY.",
    expect: { form: "quote", prefix: "A. ", rejected: "B. C.", chosen: "X.\nY." },
  },
  {
    name: "quote (Discord): ZWJ emoji quote",
    shown: "Family: 👨‍👩‍👧 here",
    correction: "> 👨‍👩‍👧 here\n🐶 here",
    expect: { form: "quote", prefix: "Family: ", rejected: "👨‍👩‍👧 here", chosen: "🐶 here" },
  },
];

interface FailCase {
  name: string;
  shown: string;
  correction: Correction | string;
  code: string;
  message: string;
  opts?: AlignOptions;
}

const failCases: FailCase[] = [
  { name: "empty", shown: CAPITAL, correction: "", code: "empty", message: `That correction is empty. ${CORRECTION_HOWTO}` },
  { name: "whitespace only", shown: CAPITAL, correction: "  \n\t ", code: "empty", message: `That correction is empty. ${CORRECTION_HOWTO}` },
  { name: "zero-width characters only", shown: CAPITAL, correction: "\u200b\u200c\u200d\u2060\ufeff \u200b", code: "empty", message: `That correction is empty. ${CORRECTION_HOWTO}` },
  { name: "a quote of invisible characters, no fix", shown: CAPITAL, correction: "> \u200b", code: "empty", message: `That correction is empty. ${CORRECTION_HOWTO}` },
  {
    name: "s/old/ zero-width only /",
    shown: CAPITAL,
    correction: "s/Lyon/\u200b/",
    code: "empty_chosen",
    message: "s/Lyon// would only delete text; tell me what to say instead: s/Lyon/right text/.",
  },
  {
    name: "s|old without its closing delimiter",
    shown: CAPITAL,
    correction: "s|Lyon",
    code: "substitute_malformed",
    message: "That looks like s|old|new| but I can't read it. Write s|old|new| with something between the first two | signs, and \\| for a | inside old or new.",
  },
  {
    name: "too long (default 2000)",
    shown: CAPITAL,
    correction: "x".repeat(2001),
    code: "too_long",
    message: "That correction is 2001 characters; the limit is 2000. Keep it short: just the part that should change.",
  },
  {
    name: "too long counts code points, not UTF-16 units",
    shown: CAPITAL,
    correction: "😀".repeat(11),
    opts: { maxChars: 10 },
    code: "too_long",
    message: "That correction is 11 characters; the limit is 10. Keep it short: just the part that should change.",
  },
  {
    name: "s/// that matches nothing",
    shown: CAPITAL,
    correction: "s/Marseille/Paris/",
    code: "substitute_not_found",
    message: `I can't find "Marseille" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
  },
  {
    name: "s/// is case-sensitive",
    shown: CAPITAL,
    correction: "s/lyon/Paris/",
    code: "substitute_not_found",
    message: `I can't find "lyon" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
  },
  {
    name: "s/// does not match half of a grapheme (combining mark)",
    shown: "Cafe\u0301 au lait",
    correction: "s/e/x/",
    code: "substitute_not_found",
    message: `I can't find "e" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
  },
  {
    name: "s/// does not match inside a ZWJ sequence",
    shown: "Family: 👨‍👩‍👧!",
    correction: "s/👩/x/",
    code: "substitute_not_found",
    message: `I can't find "👩" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
  },
  {
    name: "s/old// deletes only",
    shown: CAPITAL,
    correction: "s/Lyon//",
    code: "empty_chosen",
    message: "s/Lyon// would only delete text; tell me what to say instead: s/Lyon/right text/.",
  },
  {
    name: "s//new/",
    shown: CAPITAL,
    correction: "s//Paris/",
    code: "substitute_malformed",
    message:
      "That looks like s/old/new/ but I can't read it. Write s/old/new/ with something between the first two slashes, and \\/ for a / inside old or new.",
  },
  {
    name: "s/a/b/c/ has text after the last slash",
    shown: CAPITAL,
    correction: "s/a/b/c/",
    code: "substitute_malformed",
    message:
      "That looks like s/old/new/ but I can't read it. Write s/old/new/ with something between the first two slashes, and \\/ for a / inside old or new.",
  },
  {
    name: "quote not found (Telegram)",
    shown: CAPITAL,
    correction: { text: "Paris", quote: { text: "Marseille is", position: 3 } },
    code: "quote_not_found",
    message: `I can't find "Marseille is" in my reply. Quote text exactly as I wrote it, or reply with the fix alone.`,
  },
  {
    name: "quote not found (Discord)",
    shown: CAPITAL,
    correction: "> Marseille\nParis",
    code: "quote_not_found",
    message: `I can't find "Marseille" in my reply. Quote text exactly as I wrote it, or reply with the fix alone.`,
  },
  {
    name: "quote with nothing after it (Telegram)",
    shown: CAPITAL,
    correction: { text: "   ", quote: { text: "Lyon" } },
    code: "empty_chosen",
    message: "You quoted the wrong part but wrote no fix. Reply again with the quote and what I should have said below it.",
  },
  {
    name: "quote with nothing after it (Discord)",
    shown: CAPITAL,
    correction: "> Lyon.\n> It has",
    code: "empty_chosen",
    message: "You quoted the wrong part but wrote no fix. Reply again with the quote and what I should have said below it.",
  },
  {
    name: ">>> block quote leaves no fix",
    shown: CAPITAL,
    correction: ">>> Lyon.\nParis.",
    code: "empty_chosen",
    message:
      "A >>> block quotes everything after it, so there is no fix left. Put > before each quoted line only, then write the fix below.",
  },
  {
    name: "plain text that only repeats the shown text",
    shown: CAPITAL,
    correction: "It has a population",
    code: "empty_chosen",
    message: "That only repeats what I already wrote. Add what I should have said after it, or use s/wrong/right/.",
  },
];

function corr(c: Correction | string): Correction {
  return typeof c === "string" ? { text: c } : c;
}

describe("alignCorrection: successes", () => {
  for (const c of okCases) {
    it(c.name, () => {
      const result = alignCorrection(c.shown, corr(c.correction), c.opts);
      assert.equal(result.ok, true, JSON.stringify(result));
      const r = result as AlignmentOk;
      const rejected = c.expect.rejected ?? c.shown.slice(c.expect.prefix.length);
      assert.deepEqual(r, {
        ok: true,
        prefix: c.expect.prefix,
        rejected,
        chosen: c.expect.chosen,
        form: c.expect.form,
        divergence: c.expect.prefix.length,
      });
      assert.equal(r.prefix + r.rejected, c.shown);
    });
  }
});

describe("alignCorrection: failures", () => {
  for (const c of failCases) {
    it(c.name, () => {
      assert.deepEqual(alignCorrection(c.shown, corr(c.correction), c.opts), { ok: false, code: c.code, message: c.message });
    });
  }

  it("exactly at the limit is accepted, counted in code points", () => {
    const r = alignCorrection("Hi", { text: "😀".repeat(10) }, { maxChars: 10 });
    assert.equal(r.ok, true);
    assert.equal(alignCorrection("Hi", { text: "y".repeat(2000) }).ok, true);
  });

  it("the limit applies to the trimmed text", () => {
    assert.equal(alignCorrection("Hi", { text: `  ${"y".repeat(2000)}  \n` }).ok, true);
  });

  it("unwrapAlignment throws a CorrectionError with the code", () => {
    assert.throws(
      () => unwrapAlignment(alignCorrection("Hi", { text: "" })),
      (e: unknown) => e instanceof CorrectionError && e.code === "empty" && e.name === "CorrectionError",
    );
    assert.equal(unwrapAlignment(alignCorrection("Hi", { text: "there" })).chosen, " there");
  });
});

describe("parseSubstitute", () => {
  const table: [string, ReturnType<typeof parseSubstitute>][] = [
    ["s/a/b/", { old: "a", replacement: "b" }],
    ["s/a/b", { old: "a", replacement: "b" }],
    ["s/a/b/g", { old: "a", replacement: "b" }],
    ["s|a/b|c|", { old: "a/b", replacement: "c" }],
    ["s,a\\,b,c,", { old: "a,b", replacement: "c" }],
    ["s/a\\\\/b/", { old: "a\\", replacement: "b" }],
    ["s/a\\nb/c/", { old: "a\\nb", replacement: "c" }],
    ["s/a//", { old: "a", replacement: "" }],
    ["s/a", "malformed"],
    ["s//b/", "malformed"],
    ["s/a/b/x", "malformed"],
    ["s|a|b|x", "malformed"],
    ["s|a", "malformed"],
    ["s#a", "malformed"],
    ["s.a", null],
    ["s=3", null],
    ["s'il vous plaît'non'", null],
    ["sa/b/", null],
    ["so/what/", null],
    ["s /a/b/", null],
    ["Hello", null],
  ];
  for (const [input, expected] of table) {
    it(JSON.stringify(input), () => assert.deepEqual(parseSubstitute(input), expected));
  }
});

describe("isWordBoundary", () => {
  it("is a boundary between words and punctuation, not inside words", () => {
    const t = "it's 3.14, ok";
    const boundaries = [...Array(t.length + 1).keys()].filter((i) => isWordBoundary(t, i));
    assert.deepEqual(boundaries, [0, 4, 5, 9, 10, 11, 13]);
  });
  it("every character boundary is one in CJK and Thai", () => {
    assert.deepEqual([0, 1, 2, 3].map((i) => isWordBoundary("日本語", i)), [true, true, true, true]);
    assert.deepEqual([1, 2].map((i) => isWordBoundary("สวัสดี", i)), [true, true]);
  });
  it("a combining mark belongs to its letter", () => {
    assert.equal(isWordBoundary("Cafe\u0301s", 4), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-style: random shown texts and corrections, seeded.

/** Seeded uniform numbers in (0, 1), from the fixture models' generator. */
function prng(seed: number): () => number {
  const g = new SeededRandom(seed);
  return () => g.uniform();
}

const PIECES = [
  "the", "cat", "sat", "on", "a", "mat", "Paris", "Lyon", "is", "capital", " ", " ", " ", "\n", ". ", ", ", "/", "|", "\\",
  "'", "3.14", "😀", "👍🏽", "👨‍👩‍👧", "é", "e\u0301", "東京", "日本", "です", "。", "สวัสดี", "  ", ">", "s/", "\r\n", "\u200b",
];

function randomText(rand: () => number, maxPieces: number): string {
  const n = Math.floor(rand() * maxPieces);
  let s = "";
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(rand() * PIECES.length)];
  return s;
}

/** A random slice of s on code-point boundaries (may still cut a grapheme: the aligner must cope). */
function randomSlice(rand: () => number, s: string): string {
  const cps = Array.from(s);
  const a = Math.floor(rand() * (cps.length + 1));
  const b = a + Math.floor(rand() * (cps.length - a + 1));
  return cps.slice(a, b).join("");
}

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
function graphemeStarts(s: string): Set<number> {
  const set = new Set<number>([s.length]);
  for (const { index } of segmenter.segment(s)) set.add(index);
  return set;
}

describe("alignCorrection: invariants over random cases (seeded)", () => {
  it("prefix + rejected === shown, divergence on a grapheme boundary, chosen non-empty", () => {
    const rand = prng(20261125);
    const forms: Record<string, number> = {};
    const CASES = 4000;
    for (let n = 0; n < CASES; n++) {
      const shown = randomText(rand, 30);
      const kind = Math.floor(rand() * 6);
      let correction: Correction;
      const piece = randomSlice(rand, shown);
      const extra = randomText(rand, 6);
      switch (kind) {
        case 0:
          correction = { text: randomText(rand, 12) };
          break;
        case 1:
          correction = { text: piece + extra };
          break;
        case 2:
          correction = { text: `s/${piece.replaceAll("/", "\\/")}/${extra.replaceAll("/", "\\/")}/` };
          break;
        case 3:
          correction = { text: `> ${piece.replaceAll("\n", "\n> ")}\n${extra}` };
          break;
        case 4:
          correction = { text: extra, quote: { text: piece, position: Math.floor(rand() * (shown.length + 2)) - 1 } };
          break;
        default:
          correction = { text: `s|${piece}|${extra}` };
      }
      const r = alignCorrection(shown, correction, { maxChars: 200 });
      const where = `case ${n}: ${JSON.stringify({ shown, correction })} → ${JSON.stringify(r)}`;
      if (!r.ok) {
        assert.ok(r.message.length > 0 && r.message.length < 300, where);
        forms[r.code] = (forms[r.code] ?? 0) + 1;
        continue;
      }
      forms[r.form] = (forms[r.form] ?? 0) + 1;
      assert.equal(r.prefix + r.rejected, shown, where);
      assert.equal(r.divergence, r.prefix.length, where);
      assert.ok(graphemeStarts(shown).has(r.divergence), `divergence splits a grapheme: ${where}`);
      assert.notEqual(r.chosen.trim(), "", `empty chosen: ${where}`);
      assert.ok(!/^[\uDC00-\uDFFF]/.test(r.chosen) && !/[\uD800-\uDBFF]$/.test(r.chosen), `lone surrogate: ${where}`);
      if (r.form === "continuation") assert.equal(r.rejected, "", where);
    }
    // The generator must actually reach every form, or this test proves little.
    for (const form of ["quote", "substitute", "overlap", "continuation"]) {
      assert.ok((forms[form] ?? 0) > 50, `form ${form} reached only ${forms[form] ?? 0} times: ${JSON.stringify(forms)}`);
    }
  });
});

describe("alignCorrection: quotes copied from rendered Markdown", () => {
  const quote = (shown: string, text: string) => {
    const r = alignCorrection(shown, { text: `> ${text}\nthe fix` });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.form, "quote");
    assert.equal(r.prefix + r.rejected, shown, "S is never altered");
    return r;
  };

  it("a quote spanning **bold** aligns at the raw offset of its first character", () => {
    const shown = "Paris is the **capital of France** and a big city.";
    const r = quote(shown, "the capital of France and");
    assert.equal(r.prefix, "Paris is ");
  });

  it("a quote starting on a bold word diverges before the opening markers, not inside them", () => {
    const shown = "Paris is the **capital of France** and a big city.";
    const r = quote(shown, "capital of France and a");
    assert.equal(r.prefix, "Paris is the ");
    assert.equal(r.rejected, "**capital of France** and a big city.");
  });

  it("inline code, italics, strike-through, spoilers, links and headings are rendered away", () => {
    const shown = "# Setup\nRun `npm install` *first*, then ~~never~~ ||ever|| read [the docs](https://example.com/d) now.";
    assert.equal(quote(shown, "Run npm install first, then").prefix, "# Setup\n");
    assert.equal(quote(shown, "never ever read the docs now").prefix, "# Setup\nRun `npm install` *first*, then ");
    assert.equal(quote(shown, "Setup Run npm").prefix, "", "the heading line and the line break (flexible whitespace)");
  });

  it("the exact text still wins when it is there, and snake_case keeps its underscores", () => {
    const shown = "Set my_var to **2** and my_var stays.";
    assert.equal(quote(shown, "my_var stays").prefix, "Set my_var to **2** and ");
    assert.equal(quote(shown, "to 2 and my_var").prefix, "Set my_var ");
  });

  it("a quote that is in neither view is still not found", () => {
    const r = alignCorrection("Paris is the **capital**.", { text: "> Lyon is\nfix" });
    assert.ok(!r.ok);
    assert.equal(r.code, "quote_not_found");
  });

  it("renderedView maps every rendered character back to its raw offset", () => {
    const raw = "a **b** `c` [d](https://x.y) \\*e\\*";
    const { text, map } = renderedView(raw);
    assert.equal(text, "a b c d *e*");
    for (let i = 0; i < text.length; i++) assert.equal(raw[map[i]!], text[i], `char ${i}`);
    assert.equal(map[text.length], raw.length);
  });
});
