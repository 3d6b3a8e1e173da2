/**
 * What a reply went on with after each steer's chosen span: the retention term's hold on the
 * text after a correction.
 *
 * Owns: cutting, from the stored reply, the model's own words between a steer's chosen span
 * and the next steer on the same reply (or the reply's end). With retention on, the trainer
 * holds the base model's distribution there, so an adapter learns the corrected span and the
 * base decides what follows it. Without it a small model learns to start the span over
 * (bench/README.md: "I'm Steerbot, an AI assistant. I'm Steerbot, an AI assistant. …").
 * Only the model's words: the next steer's correction (a person's) and anything after it
 * stay out, and so does a reply whose text no longer follows the steer (a later correction
 * rewrote it) or that holds withheld or forgotten text.
 */

/** The parts of a stored steer this needs. */
export interface SteerPlace {
  id: number;
  generation_id: number | null;
  ordinal: number;
  prefix: string;
  chosen: string;
}

/** Characters of continuation kept per steer (the trainer keeps at most its retention rows of them). */
export const MAX_CONTINUATION_CHARS = 400;

/**
 * Per steer id, the model's words after its chosen span: up to the next steer's point on the
 * same reply, else up to the end of the reply (`finalTexts`, by generation id; a reply not
 * given, or whose text `isUsable` refuses, gives none).
 */
export function steerContinuations(steers: readonly SteerPlace[], finalTexts: ReadonlyMap<number, string>, isUsable: (text: string) => boolean = () => true): Map<number, string> {
  const byGeneration = new Map<number, SteerPlace[]>();
  for (const s of steers) {
    if (s.generation_id === null) continue;
    let list = byGeneration.get(s.generation_id);
    if (!list) byGeneration.set(s.generation_id, (list = []));
    list.push(s);
  }
  const out = new Map<number, string>();
  for (const [generationId, list] of byGeneration) {
    const final = finalTexts.get(generationId);
    if (final === undefined || !isUsable(final)) continue;
    list.sort((a, b) => a.ordinal - b.ordinal || a.id - b.id);
    for (const [i, s] of list.entries()) {
      const upTo = s.prefix + s.chosen;
      const next = list[i + 1];
      // the text this steer's span went on to: the next steer's prefix, or the reply
      const later = next ? next.prefix : final;
      if (!later.startsWith(upTo) || !final.startsWith(later)) continue;
      let words = later.slice(upTo.length, upTo.length + MAX_CONTINUATION_CHARS);
      const last = words.charCodeAt(words.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) words = words.slice(0, -1); // never half a surrogate pair
      if (words.trim()) out.set(s.id, words);
    }
  }
  return out;
}
