/**
 * The synthetic steer task of the training tests: a systematic mistake that steers correct.
 *
 * Every reply reaches "…, the colour is" and the model names some colour; the person always
 * stops it there and corrects it to " blue". Contexts (the user's question and the subject
 * in the prefix) are drawn from word lists; held-out steers use words that never appear in
 * training, so learning must generalise past the contexts it saw.
 */
import { writeFileSync } from "node:fs";
import type { SteerRecord } from "../../src/core/steer-record.ts";
import { SeededRandom } from "../../src/engine/fixture/seeded-random.ts";

const TRAIN_WORDS = [
  "apple", "river", "engine", "garden", "window", "pencil", "forest", "candle", "bridge", "mirror",
  "rocket", "violin", "desert", "island", "ladder", "pillow", "tunnel", "wallet", "anchor", "basket",
];
const HELDOUT_WORDS = ["castle", "helmet", "kettle", "lantern", "meadow", "orchard", "parrot", "saddle", "teapot", "volcano"];
const WRONG = [" red", " green", " yellow", " purple", " orange", " brown", " black", " white", " pink", " grey"];
const QUESTIONS = [
  (a: string, b: string) => `Tell me about the ${a} and the ${b}.`,
  (a: string, b: string) => `What do you know about a ${a} near a ${b}?`,
  (a: string, b: string) => `Describe the ${a}, then the ${b}.`,
  (a: string, b: string) => `Write one line about a ${a} and a ${b}.`,
];

/** Seeded uniform numbers in (0, 1), from the fixture models' generator. */
function rng(seed: number): () => number {
  const g = new SeededRandom(seed);
  return () => g.uniform();
}

export const CHOSEN = " blue";

export function colourSteers(n: number, heldOut: boolean, seed = 1): SteerRecord[] {
  const r = rng(seed + (heldOut ? 1000 : 0));
  const words = heldOut ? HELDOUT_WORDS : TRAIN_WORDS;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const out: SteerRecord[] = [];
  for (let i = 0; i < n; i++) {
    const a = pick(words);
    let b = pick(words);
    if (b === a) b = words[(words.indexOf(a) + 1) % words.length]!;
    out.push({
      context: [{ role: "user", content: pick(QUESTIONS)(a, b) }],
      prefix: `The ${a} is next to the ${b}, and the colour is`,
      rejected: pick(WRONG),
      chosen: CHOSEN,
    });
  }
  return out;
}

export function writeSteers(file: string, steers: readonly SteerRecord[]): void {
  writeFileSync(file, steers.map((s) => JSON.stringify(s)).join("\n") + "\n");
}
