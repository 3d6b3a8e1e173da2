import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_CONTINUATION_CHARS, steerContinuations, type SteerPlace } from "../../src/training/steer-continuations.ts";
import { PersonalData } from "../../src/store/personal-data.ts";

const steer = (id: number, generation_id: number | null, ordinal: number, prefix: string, chosen: string): SteerPlace => ({ id, generation_id, ordinal, prefix, chosen });

describe("steer continuations", () => {
  it("takes the model's words after each chosen span, up to the next steer's point or the reply's end", () => {
    // one reply, two steers: "color" → "colour", then "favorite" → "favourite"
    const final = "The colour of the sea is blue. My favourite is green, like a forest.";
    const steers = [steer(2, 7, 1, "The colour of the sea is blue. My ", "favourite"), steer(1, 7, 0, "The ", "colour")];
    const out = steerContinuations(steers, new Map([[7, final]]));
    assert.equal(out.get(1), " of the sea is blue. My ", "up to the next steer's point: its correction is a person's words");
    assert.equal(out.get(2), " is green, like a forest.");
  });

  it("leaves out a reply rewritten since, one holding withheld text, an imported steer, and an empty continuation", () => {
    const out = steerContinuations(
      [
        steer(1, 1, 0, "I'm ", "Steerbot."), // a later correction replaced the text before its point
        steer(2, 2, 0, "Hi, ", "there."),
        steer(3, null, 0, "An ", "import."),
        steer(4, 4, 0, "The end ", "is here."),
        steer(5, 5, 0, "Nothing ", "given."),
      ],
      new Map([
        [1, "I am SmolLM, an assistant."],
        [2, "Hi, there. [withheld: the author opted out] said it."],
        [4, "The end is here.  "],
      ]),
      PersonalData.holdsNoWithheldText,
    );
    assert.deepEqual([...out.keys()], []);
  });

  it("keeps at most MAX_CONTINUATION_CHARS, never half a surrogate pair", () => {
    const tail = "x".repeat(MAX_CONTINUATION_CHARS - 1) + "😀 and more";
    const out = steerContinuations([steer(1, 1, 0, "A ", "b")], new Map([[1, "A b" + tail]]));
    assert.equal(out.get(1), "x".repeat(MAX_CONTINUATION_CHARS - 1));
  });
});
