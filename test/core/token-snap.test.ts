/**
 * Tests of `snapToTokens`: exact cases (inside a token, on a boundary, at the stop point, a stop
 * point that cuts a token, multi-byte tokens, partial-UTF-8 empty tokens), contract violations,
 * and a seeded property loop over random tokenisations.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { alignCorrection, type AlignmentOk } from "../../src/core/alignment.ts";
import { TokenSnapError } from "../../src/core/errors.ts";
import { snapToTokens, type GeneratedToken } from "../../src/core/token-snap.ts";
import { seededRandom as prng } from "../helpers/seeded-random.ts";

/** Tokens from their texts, offsets computed; ids are 100, 101, … */
function toks(...texts: string[]): GeneratedToken[] {
  let offset = 0;
  return texts.map((text, i) => {
    const t = { id: 100 + i, text, offset };
    offset += text.length;
    return t;
  });
}

function aligned(shown: string, text: string): AlignmentOk {
  const r = alignCorrection(shown, { text });
  assert.ok(r.ok, JSON.stringify(r));
  return r;
}

const CAPITAL = "The capital is Lyon.";
const CAPITAL_TOKENS = toks("The", " capital", " is", " Lyon", ".");

describe("snapToTokens", () => {
  it("moves a divergence inside a token back to its start, the token's text into chosen", () => {
    const a = aligned(CAPITAL, "s/Lyon/Paris/");
    assert.equal(a.divergence, 15);
    assert.deepEqual(snapToTokens(a, CAPITAL_TOKENS), {
      prefix: "The capital is",
      rejected: " Lyon.",
      chosen: " Paris",
      prefixTokenCount: 3,
      divergence: 14,
    });
  });

  it("keeps a divergence that is already on a token boundary", () => {
    const a = aligned(CAPITAL, "The capital is, I think, Paris.");
    assert.equal(a.divergence, 14);
    assert.deepEqual(snapToTokens(a, CAPITAL_TOKENS), {
      prefix: "The capital is",
      rejected: " Lyon.",
      chosen: ", I think, Paris.",
      prefixTokenCount: 3,
      divergence: 14,
    });
  });

  it("divergence 0 keeps no token", () => {
    const a = aligned(CAPITAL, "> The capital\nParis is the capital.");
    assert.deepEqual(snapToTokens(a, CAPITAL_TOKENS), {
      prefix: "",
      rejected: CAPITAL,
      chosen: "Paris is the capital.",
      prefixTokenCount: 0,
      divergence: 0,
    });
  });

  it("continuation at a token boundary keeps every shown token, none of the unseen ones", () => {
    const shown = "The capital is";
    const tokens = toks("The", " capital", " is", " Lyon", ".");
    const a = aligned(shown, "Paris.");
    assert.deepEqual(snapToTokens(a, tokens), {
      prefix: "The capital is",
      rejected: "",
      chosen: " Paris.",
      prefixTokenCount: 3,
      divergence: 14,
    });
  });

  it("a stop point that cuts a token: the cut token is not a prefix token", () => {
    const shown = "The capital is Ly";
    const a: AlignmentOk = { ok: true, prefix: shown, rejected: "", chosen: "on, I mean Paris.", form: "continuation", divergence: 17 };
    assert.deepEqual(snapToTokens(a, CAPITAL_TOKENS), {
      prefix: "The capital is",
      rejected: " Ly",
      chosen: " Lyon, I mean Paris.",
      prefixTokenCount: 3,
      divergence: 14,
    });
  });

  it("a stop point that cuts a token, correction aligned before it", () => {
    const a = aligned("The capital is Ly", "The capital is Paris");
    assert.deepEqual([a.prefix, a.rejected, a.chosen], ["The capital is ", "Ly", "Paris"]);
    assert.deepEqual(snapToTokens(a, CAPITAL_TOKENS), {
      prefix: "The capital is",
      rejected: " Ly",
      chosen: " Paris",
      prefixTokenCount: 3,
      divergence: 14,
    });
  });

  it("a multi-character CJK token is moved whole", () => {
    const shown = "日本語です";
    const a: AlignmentOk = { ok: true, prefix: "日", rejected: "本語です", chosen: "本人です", form: "overlap", divergence: 1 };
    assert.deepEqual(snapToTokens(a, toks("日本", "語", "です")), {
      prefix: "",
      rejected: shown,
      chosen: "日本人です",
      prefixTokenCount: 0,
      divergence: 0,
    });
  });

  it("an emoji token (two UTF-16 units) with text after it", () => {
    const shown = "Hi 😀! there";
    const a = aligned(shown, "s/! there/? here/");
    assert.equal(a.divergence, 5);
    assert.deepEqual(snapToTokens(a, toks("Hi", " ", "😀!", " there")), {
      prefix: "Hi ",
      rejected: "😀! there",
      chosen: "😀? here",
      prefixTokenCount: 2,
      divergence: 3,
    });
  });

  it("partial-UTF-8 tokens (empty text) before an emoji belong to the emoji, not the prefix", () => {
    const shown = "Hi 😀 there";
    const tokens = toks("Hi", " ", "", "😀", " there");
    const before = snapToTokens(aligned(shown, "s/😀/🙂/"), tokens);
    assert.deepEqual(before, { prefix: "Hi ", rejected: "😀 there", chosen: "🙂", prefixTokenCount: 2, divergence: 3 });
    const after = snapToTokens(aligned(shown, "s/ there/ here/"), tokens);
    assert.deepEqual(after, { prefix: "Hi 😀", rejected: " there", chosen: " here", prefixTokenCount: 4, divergence: 5 });
  });

  it("a divergence inside a token after partial-UTF-8 tokens moves back before those too", () => {
    // "" holds the first bytes of 源, which the next token completes together with "X"
    const shown = "旅游资源X";
    const tokens = toks("旅游", "资", "", "源X");
    const s = snapToTokens({ prefix: "旅游资源", rejected: "X", chosen: "Y", divergence: 4 }, tokens);
    assert.deepEqual(s, { prefix: "旅游资", rejected: "源X", chosen: "源Y", prefixTokenCount: 2, divergence: 3 });
    assert.equal(shown, s.prefix + s.rejected);
  });

  it("prefix token ids are the first prefixTokenCount tokens", () => {
    const s = snapToTokens(aligned(CAPITAL, "s/Lyon/Paris/"), CAPITAL_TOKENS);
    assert.deepEqual(CAPITAL_TOKENS.slice(0, s.prefixTokenCount).map((t) => t.id), [100, 101, 102]);
  });
});

describe("snapToTokens: contract violations throw TokenSnapError", () => {
  const a = aligned(CAPITAL, "s/Lyon/Paris/");
  const cases: [string, GeneratedToken[], RegExp, number | undefined][] = [
    [
      "a gap between tokens",
      [{ id: 1, text: "The", offset: 0 }, { id: 2, text: " is", offset: 4 }],
      /^token 1 \(id 2\) starts at 4, expected 3: tokens must be contiguous from offset 0$/,
      1,
    ],
    ["text that differs from the shown text", toks("The", " capitol", " is", " Lyon", "."), /^token 1 \(id 101\) text " capitol" differs/, 1],
    ["tokens that stop before the shown text ends", toks("The", " capital"), /^tokens cover 11 of the 20 shown characters$/, undefined],
  ];
  for (const [name, tokens, message, index] of cases) {
    it(name, () => {
      assert.throws(
        () => snapToTokens(a, tokens),
        (e: unknown) => e instanceof TokenSnapError && message.test(e.message) && e.tokenIndex === index,
      );
    });
  }
  it("a divergence that is not the prefix length", () => {
    assert.throws(() => snapToTokens({ ...a, divergence: 3 }, CAPITAL_TOKENS), /^TokenSnapError: divergence 3 does not match the prefix length 15$/);
  });
});

describe("snapToTokens: invariants over random tokenisations (seeded)", () => {
  const PIECES = ["the ", "cat ", "Paris", "Lyon", ". ", "\n", "😀", "👍🏽", "é", "東京", "です", "s/", "/", "is "];

  it("prefix is exactly the prefix tokens' text, prefix + rejected === shown", () => {
    const rand = prng(7);
    let snappedBack = 0;
    for (let n = 0; n < 2000; n++) {
      // A generated text, tokenised at random code-point cuts, with random empty tokens.
      let full = "";
      const len = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < len; i++) full += PIECES[Math.floor(rand() * PIECES.length)];
      const cps = Array.from(full);
      const texts: string[] = [];
      let cur = "";
      for (const cp of cps) {
        cur += cp;
        if (rand() < 0.4) {
          if (rand() < 0.15) texts.push("");
          texts.push(cur);
          cur = "";
        }
      }
      if (cur) texts.push(cur);
      const tokens = toks(...texts);
      // Shown: a code-point prefix of the generated text (the model ran ahead).
      const shown = cps.slice(0, Math.floor(rand() * (cps.length + 1))).join("");
      const piece = Array.from(shown).slice(Math.floor(rand() * 3)).slice(0, 1 + Math.floor(rand() * 6)).join("");
      const corrections = [`s/${piece.replaceAll("/", "\\/")}/X/`, `${piece}Y`, "Z z"];
      const a = alignCorrection(shown, { text: corrections[Math.floor(rand() * corrections.length)]! });
      if (!a.ok) continue;
      const s = snapToTokens(a, tokens);
      const where = JSON.stringify({ shown, texts, a, s });
      assert.equal(s.prefix + s.rejected, shown, where);
      assert.equal(s.prefix, tokens.slice(0, s.prefixTokenCount).map((t) => t.text).join(""), where);
      assert.equal(s.divergence, s.prefix.length, where);
      assert.ok(s.divergence <= a.divergence, where);
      assert.equal(s.chosen, shown.slice(s.divergence, a.divergence) + a.chosen, where);
      // rejected starts on a token boundary
      assert.ok(tokens.some((t) => t.offset === s.divergence || t.offset + t.text.length === s.divergence), where);
      // the next token (if any) is not wholly inside the prefix
      const next = tokens[s.prefixTokenCount];
      if (next) assert.ok(next.offset >= s.divergence && (next.text !== "" || next.offset === s.divergence), where);
      if (s.divergence < a.divergence) snappedBack++;
    }
    assert.ok(snappedBack > 100, `only ${snappedBack} cases moved the divergence`);
  });
});
