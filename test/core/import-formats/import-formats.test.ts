/**
 * The foreign import formats on their own: TRL rows, ShareGPT chats and edited replies (the last
 * through the real tokenizer of the tiny fixture model).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { firstDivergence, readContext } from "../../../src/core/import-formats/chat-input.ts";
import { fromEdits, type TextTokenizer } from "../../../src/core/import-formats/edits.ts";
import { fromShareGpt } from "../../../src/core/import-formats/sharegpt.ts";
import { fromTrlDpo, fromTrlSft } from "../../../src/core/import-formats/trl.ts";
import { renderPromptText } from "../../../src/core/steer-export.ts";
import { engineTokenizer } from "../../../src/cli/commands/import.ts";
import { SteerTokenizer } from "../../../src/training/steer-tokenizer.ts";
import { tinyModelPath } from "../../helpers/tiny-model.ts";

const user = (content: string) => ({ role: "user" as const, content });
const steers = (d: ReturnType<typeof fromTrlDpo>) => {
  assert.ok(!("error" in d), "error" in d ? d.error : "");
  return d.steers;
};
const error = (d: ReturnType<typeof fromTrlDpo>) => {
  assert.ok("error" in d, `expected a refusal, got ${JSON.stringify(d)}`);
  return d.error;
};

describe("TRL and ShareGPT rows", () => {
  it("localizes a DPO pair at the start of the word where chosen and rejected part", () => {
    assert.deepEqual(steers(fromTrlDpo({ prompt: "Name a pet.", chosen: "My pet is a cat now.", rejected: "My pet is a car now." })), [
      { context: [user("Name a pet.")], prefix: "My pet is a ", rejected: "car now.", chosen: "cat now." },
    ]);
    // conversational prompt and replies; no shared start: a pair over the whole reply
    assert.deepEqual(
      steers(fromTrlDpo({ prompt: [{ role: "system", content: "Terse." }, user("Hi")], chosen: [{ role: "assistant", content: "Hello." }], rejected: [{ role: "assistant", content: "Go away." }] })),
      [{ context: [{ role: "system", content: "Terse." }, user("Hi")], prefix: "", rejected: "Go away.", chosen: "Hello." }],
    );
    // implicit prompt: the shared leading messages
    assert.deepEqual(
      steers(fromTrlDpo({ chosen: [user("Q"), { role: "assistant", content: "A yes" }], rejected: [user("Q"), { role: "assistant", content: "A no" }] })),
      [{ context: [user("Q")], prefix: "A ", rejected: "no", chosen: "yes" }],
    );
  });

  it("reads back the ChatML prompt steerbot's own trl export writes", () => {
    const context = [{ role: "system" as const, content: "Be brief." }, user("Two\nlines")];
    assert.deepEqual(readContext(renderPromptText(context, "So far: ")), { context, prefix: "So far: " });
    assert.match(error(fromTrlDpo({ prompt: "<|im_start|>user\nhi<|im_end|>\n", chosen: "a", rejected: "b" })), /open assistant turn/);
  });

  it("never splits an emoji's surrogate pair", () => {
    const d = firstDivergence("ok 🙂", "ok 😀");
    assert.equal(d, 3);
  });

  it("refuses what cannot be a steer, saying why", () => {
    assert.match(error(fromTrlDpo({ prompt: "p", chosen: "same", rejected: "same" })), /same text/);
    assert.match(error(fromTrlDpo({ prompt: "p", chosen: "Stop", rejected: "Stop here and more" })), /end-of-sequence/);
    assert.match(error(fromTrlDpo({ prompt: "p", chosen: "x" })), /needs chosen and rejected/);
    assert.match(error(fromTrlDpo({ prompt: [{ role: "tool", content: "x" }], chosen: "a", rejected: "b" })), /prompt\[0\]: role "tool"/);
    assert.match(error(fromTrlSft({ text: "just text" })), /plain-text row/);
    assert.match(error(fromShareGpt({ conversations: [{ from: "human", value: "Q" }], chosen: { from: "gpt", value: "Yes." }, rejected: { from: "gpt", value: "No." } })), /share no start/);
    assert.match(error(fromShareGpt({ conversations: [{ from: "human", value: "Q" }] })), /needs chosen and rejected/);
  });

  it("reads SFT rows as steers with an empty rejected span", () => {
    assert.deepEqual(steers(fromTrlSft({ prompt: [user("Q")], completion: [{ role: "assistant", content: "A." }] })), [{ context: [user("Q")], prefix: "", rejected: "", chosen: "A." }]);
    assert.deepEqual(steers(fromTrlSft({ messages: [user("Q"), { role: "assistant", content: "A." }] })), [{ context: [user("Q")], prefix: "", rejected: "", chosen: "A." }]);
  });

  it("reads a ShareGPT chat with a corrected last turn", () => {
    const row = {
      system: "Be kind.",
      conversations: [{ from: "human", value: "Weather?" }],
      chosen: { from: "gpt", value: "It is sunny and warm." },
      rejected: { from: "gpt", value: "It is rainy and cold." },
    };
    assert.deepEqual(steers(fromShareGpt(row)), [
      { context: [{ role: "system", content: "Be kind." }, user("Weather?")], prefix: "It is ", rejected: "rainy and cold.", chosen: "sunny and warm." },
    ]);
  });
});

describe("edited replies (token-level diff on the fixture model)", () => {
  let tok: SteerTokenizer;
  let tokenize: TextTokenizer;
  before(async () => {
    tok = await SteerTokenizer.open(await tinyModelPath());
    tokenize = engineTokenizer(tok.model);
  });
  after(() => tok.dispose());
  const context = [user("Describe it.")];

  it("makes one steer a hunk: the first exact, the later ones approximate", () => {
    const d = fromEdits({ context, generated: "The sky is green and the grass is blue today.", corrected: "The sky is blue and the grass is green today." }, tokenize);
    assert.deepEqual(steers(d), [
      { context, prefix: "The sky is", rejected: " green", chosen: " blue" },
      { context, prefix: "The sky is blue and the grass is", rejected: " blue", chosen: " green", approximate: true },
    ]);
  });

  it("every hunk's prefix is the corrected text before it, and its spans are whole tokens", () => {
    const generated = "Paris is the capital of Germany, and 🙂 it has 3 million people.";
    const corrected = "Paris is the capital of France, and 😀 it has 2 million people!";
    const out = steers(fromEdits({ context, generated, corrected }, tokenize));
    assert.ok(out.length >= 3, JSON.stringify(out));
    const cut = new Set(tokenize(corrected).map((t) => t.offset));
    for (const s of out) {
      assert.ok(corrected.startsWith(s.prefix + s.chosen), JSON.stringify(s));
      assert.ok(cut.has(s.prefix.length), `prefix ${JSON.stringify(s.prefix)} ends inside a token`);
      assert.ok(generated.includes(s.rejected), JSON.stringify(s));
    }
    assert.deepEqual(out.map((s) => s.approximate === true), out.map((_, i) => i > 0));
  });

  it("appended only and truncated only are SFT examples; deletions and insertions inside the text are pairs", () => {
    assert.deepEqual(steers(fromEdits({ context, generated: "one two", corrected: "one two three" }, tokenize)), [{ context, prefix: "one two", rejected: "", chosen: " three" }]);
    assert.deepEqual(steers(fromEdits({ context, generated: "one two three", corrected: "one two" }, tokenize)), [{ context, prefix: "", rejected: "", chosen: "one two" }]);
    // deletion: after "I really" the model said " very much", the person wanted " like"
    assert.deepEqual(steers(fromEdits({ context, generated: "I really very much like tea.", corrected: "I really like tea." }, tokenize)), [
      { context, prefix: "I really", rejected: " very much", chosen: " like" },
    ]);
    // insertion: the model went on with " tea", the person inserted " green"
    assert.deepEqual(steers(fromEdits({ context, generated: "I like tea.", corrected: "I like green tea." }, tokenize)), [{ context, prefix: "I like", rejected: " tea", chosen: " green" }]);
  });

  it("refuses lines with nothing to learn", () => {
    assert.match(error(fromEdits({ context, generated: "same", corrected: "same" }, tokenize)), /no edit/);
    assert.match(error(fromEdits({ context, generated: "x", corrected: "  " }, tokenize)), /corrected is empty/);
    assert.match(error(fromEdits({ context: [], generated: "a", corrected: "b" }, tokenize)), /context/);
    assert.match(error(fromEdits({ context, generated: 3, corrected: "b" }, tokenize)), /strings/);
  });
});

describe("edited replies under a SentencePiece vocabulary (llama-spm fixture)", () => {
  it("diffs on its tokens too, and refuses a text its tokens cannot spell", async () => {
    const tok = await SteerTokenizer.open(await tinyModelPath("llama-spm"));
    try {
      const tokenize = engineTokenizer(tok.model);
      const context = [user("Sky?")];
      assert.deepEqual(steers(fromEdits({ context, generated: "The sky is green and the grass is blue.", corrected: "The sky is blue and the grass is green." }, tokenize)), [
        { context, prefix: "The sky is", rejected: " green", chosen: " blue" },
        { context, prefix: "The sky is blue and the grass is", rejected: " blue", chosen: " green", approximate: true },
      ]);
      // SentencePiece drops a leading space when detokenizing: no exact token diff is possible
      assert.match(error(fromEdits({ context, generated: " The sky is green.", corrected: " The sky is blue." }, tokenize)), /do not spell the text exactly/);
    } finally {
      await tok.dispose();
    }
  });
});
