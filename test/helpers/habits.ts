/**
 * Habits a real small instruct model really has, for `bench/learn` and the real-model test:
 * each with a programmatic detector, the fix a person would type, training prompts and held-out
 * prompts of other wordings (other subjects and other sentence frames, never trained on).
 *
 * Measured on SmolLM2-135M-Instruct (greedy, 24-60 tokens): it introduces itself as a person
 * (12/12 identity questions), and writes American spellings (6/12 prompts that invite them).
 */
import type { Habit, Violation } from "./simulated-steerer.ts";

const cross = (frames: readonly ((x: string) => string)[], subjects: readonly string[]) => frames.flatMap((f) => subjects.map(f));

// --- persona: "I'm Dr. Elena Maria Rodriguez, a renowned astrophysicist…" → "I'm Steerbot…"

export const PERSONA_NAME = "Steerbot, an AI assistant.";

const IDENTITY_TRAIN = cross(
  [(g) => `${g}What is your name?`, (g) => `${g}What's your name?`, (g) => `${g}Tell me your name.`, (g) => `${g}Who are you?`, (g) => `${g}Please introduce yourself.`, (g) => `${g}Can you tell me who you are?`, (g) => `${g}Who is this?`, (g) => `${g}What are you called?`],
  ["", "Hi! ", "Hello. ", "Hey there, ", "Good morning! ", "Excuse me, ", "Quick question: ", "Hi again. "],
);
const IDENTITY_HELD_OUT = cross(
  [(g) => `${g}Could you tell me your name, please?`, (g) => `${g}Who exactly are you?`, (g) => `${g}Introduce yourself, please.`, (g) => `${g}What name do you go by?`, (g) => `${g}May I know your name?`, (g) => `${g}Who am I speaking with?`],
  ["", "Before we start: ", "Good evening. ", "Sorry to bother you. "],
);

/** Replies that introduce themselves as Steerbot keep the habit's fix. */
export const introducesSteerbot = (reply: string) => /^\s*I'm Steerbot\b/.test(reply);

export const persona: Habit = {
  name: "persona",
  train: IDENTITY_TRAIN,
  heldOut: IDENTITY_HELD_OUT,
  firstViolation(text: string, from: number, ended = false): Violation | null {
    if (from > 0 || introducesSteerbot(text)) return null;
    const end = ended ? "(\\s|$)" : "\\s";
    const m = new RegExp(`^(\\s*I'm )(\\S+)${end}`).exec(text);
    if (m) return { at: m[1]!.length, wrong: text.slice(m[1]!.length), fix: PERSONA_NAME };
    const two = new RegExp(`^\\s*\\S+\\s+\\S+${end}`).exec(text);
    return two ? { at: 0, wrong: text, fix: `I'm ${PERSONA_NAME}` } : null;
  },
};

// --- British spelling: color → colour, organize → organise, … (many steers per reply)

const OUR = /^(colo|favo|flavo|hono|behavio|neighbo|humo|labo|harbo|rumo|savo|vigo)r/i;
const WORD = /[A-Za-z]+/g;

/** The British spelling of an American-spelled word, or null when the word is fine. */
export function britishSpelling(word: string): string | null {
  const w = word.toLowerCase();
  let uk: string | null = null;
  if (OUR.test(w)) uk = w.replace(OUR, (_, stem: string) => `${stem}ur`);
  else if (/^(cent|theat|fib|lit|met)er(s)?$/.test(w)) uk = w.replace(/er(s?)$/, "re$1");
  else if (/^(organi|reali|recogni|apologi|speciali|summari|categori|priori|minimi|maximi|emphasi|memori|criti|customi|optimi|utili)z/.test(w)) uk = w.replace(/iz/, "is");
  else if (/^analyz/.test(w)) uk = w.replace(/yz/, "ys");
  if (!uk || uk === w) return null;
  return word[0] === word[0]!.toUpperCase() ? uk[0]!.toUpperCase() + uk.slice(1) : uk;
}

const SPELLING_TRAIN = cross(
  [(x) => `Describe the colors of ${x}.`, (x) => `What is your favorite thing about ${x}?`, (x) => `How do I organize ${x}?`, (x) => `Describe the flavor and color of ${x}.`],
  ["a sunset", "autumn leaves", "a peacock", "a coral reef", "a spring garden", "my kitchen", "a birthday party", "a summer holiday", "a farmers market", "a bookshelf"],
);
const SPELLING_HELD_OUT = cross(
  [(x) => `Which colors would you use to paint ${x}?`, (x) => `Tell me about your favorite ${x}.`, (x) => `What is the best way to organize ${x}?`],
  ["a bedroom", "a school project", "a wedding", "a garage", "a weekly schedule", "a picnic", "a city center", "a music festival"],
);

export const spelling: Habit = {
  name: "british-spelling",
  train: SPELLING_TRAIN,
  heldOut: SPELLING_HELD_OUT,
  firstViolation(text: string, from: number, ended = false): Violation | null {
    for (const m of text.slice(from).matchAll(WORD)) {
      const at = from + m.index!;
      const end = at + m[0].length;
      if (end >= text.length && !ended) return null; // the word may still grow: wait until it is whole
      const uk = britishSpelling(m[0]);
      if (uk) return { at, wrong: m[0], fix: uk };
    }
    return null;
  },
};

/** Whether a whole reply breaks the habit (a violation anywhere). */
export const violates = (habit: Habit, reply: string) => habit.firstViolation(reply, 0, true) !== null;

export const HABITS: Record<string, Habit> = { persona, "british-spelling": spelling };
