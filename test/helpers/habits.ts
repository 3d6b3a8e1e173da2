/**
 * Habits a real small instruct model really has, for `bench/learn` and the real-model test:
 * each with a programmatic detector, the fix a person would type, training prompts and held-out
 * prompts of other wordings (other subjects and other sentence frames, never trained on).
 *
 * Measured on SmolLM2-135M-Instruct (greedy, 48 tokens, held-out prompts): it introduces itself
 * as a person, writes American spellings, and numbers its lists ("1. **Start small**"); the
 * rates are in bench/README.md.
 */
import type { Habit, Violation } from "./simulated-steerer.ts";

/** Every frame with every subject, subject by subject: any first N prompts cover all the frames. */
const cross = (frames: readonly ((x: string) => string)[], subjects: readonly string[]) => subjects.flatMap((x) => frames.map((f) => f(x)));

// --- persona: "I'm Dr. Elena Maria Rodriguez, a renowned astrophysicist…" → "I'm Steerbot…"

export const PERSONA_NAME = "Steerbot, an AI assistant.";

// 8 frames × 26 openers = 208 training prompts; 6 other frames × 17 other openers = 102 held out
const IDENTITY_TRAIN = cross(
  [(g) => `${g}What is your name?`, (g) => `${g}What's your name?`, (g) => `${g}Tell me your name.`, (g) => `${g}Who are you?`, (g) => `${g}Please introduce yourself.`, (g) => `${g}Can you tell me who you are?`, (g) => `${g}Who is this?`, (g) => `${g}What are you called?`],
  [
    "", "Hi! ", "Hello. ", "Hey there, ", "Good morning! ", "Excuse me, ", "Quick question: ", "Hi again. ",
    "Hey! ", "Hello there. ", "Good afternoon. ", "Hi, I'm new here. ", "Yo, ", "Greetings! ", "Hiya. ", "Morning! ",
    "Hello friend. ", "OK, first things first: ", "Hi, one question. ", "Nice to meet you. ", "Hey, quick one: ", "Hello again! ",
    "So, ", "Right, ", "Hi bot. ", "Welcome back. ",
  ],
);
const IDENTITY_HELD_OUT = cross(
  [(g) => `${g}Could you tell me your name, please?`, (g) => `${g}Who exactly are you?`, (g) => `${g}Introduce yourself, please.`, (g) => `${g}What name do you go by?`, (g) => `${g}May I know your name?`, (g) => `${g}Who am I speaking with?`],
  [
    "", "Before we start: ", "Good evening. ", "Sorry to bother you. ", "Pardon me, ", "Hi, I have a question. ", "Dear assistant, ", "Just curious: ",
    "Hello, it's me again. ", "Allow me to ask: ", "Hey, sorry, ", "Good day! ", "Well, ", "One thing first: ", "Howdy! ", "To begin with, ", "Evening! ",
  ],
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

// 5 frames × 42 subjects = 210 training prompts; 4 other frames × 26 other subjects = 104 held out
const SPELLING_TRAIN = cross(
  [(x) => `Describe the colors of ${x}.`, (x) => `What is your favorite thing about ${x}?`, (x) => `How do I organize ${x}?`, (x) => `Describe the flavor and color of ${x}.`, (x) => `What colors and flavors remind you of ${x}?`],
  [
    "a sunset", "autumn leaves", "a peacock", "a coral reef", "a spring garden", "my kitchen", "a birthday party", "a summer holiday", "a farmers market", "a bookshelf",
    "a rainforest", "a winter morning", "a fruit salad", "a butterfly", "a fireworks show", "a country fair", "a tropical beach", "a flower shop", "a candy store", "a harvest festival",
    "a mountain lake", "a street market", "a rose garden", "a chocolate cake", "a lemon tree", "a parrot", "an art studio", "a toy box", "a vineyard", "a bakery window",
    "a desert at dawn", "a carnival", "a pumpkin patch", "a tea party", "a seaside town", "a lavender field", "a Christmas tree", "a spice rack", "an ice cream parlor", "a meadow in June",
    "a pantry", "a craft room",
  ],
);
const SPELLING_HELD_OUT = cross(
  [(x) => `Which colors would you use to paint ${x}?`, (x) => `Tell me about your favorite ${x}.`, (x) => `What is the best way to organize ${x}?`, (x) => `Suggest a color scheme for ${x}.`],
  [
    "a bedroom", "a school project", "a wedding", "a garage", "a weekly schedule", "a picnic", "a city center", "a music festival",
    "a living room", "a nursery", "a classroom", "a home office", "a restaurant", "a holiday card", "a website", "a poster",
    "a cafe", "a hotel lobby", "a baby shower", "a science fair", "a workshop", "a boat", "a bathroom", "a dinner menu", "a family reunion", "a library",
  ],
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

// --- list convention: numbered lists ("1. **Start small**") → dash bullets ("- **Start small**")

// 8 frames × 26 subjects = 208 training prompts; 4 other frames × 26 other subjects = 104 held out
const LIST_TRAIN = cross(
  [
    (x) => `Give me three tips for ${x}.`, (x) => `List five ideas for ${x}.`, (x) => `What are the steps for ${x}?`, (x) => `Give me a list of tips for ${x}.`,
    (x) => `List the main things to know about ${x}.`, (x) => `What are some common mistakes in ${x}?`, (x) => `Write a short checklist for ${x}.`, (x) => `List a few rules for ${x}.`,
  ],
  [
    "learning to cook", "saving money", "studying for exams", "running a marathon", "starting a garden", "planning a wedding", "writing a novel", "learning a language",
    "moving house", "training a puppy", "cleaning a kitchen", "starting a business", "losing weight", "painting a room", "learning the guitar", "making friends",
    "camping in the woods", "baking bread", "waking up early", "keeping a journal", "packing for a trip", "buying a car", "hosting a dinner party", "learning to swim",
    "fixing a bike", "decorating a bedroom",
  ],
);
const LIST_HELD_OUT = cross(
  [(x) => `Name four things that help with ${x}.`, (x) => `Write down five steps for ${x}.`, (x) => `Make a list of advice for ${x}.`, (x) => `What are ten tips for ${x}?`],
  [
    "learning to code", "growing tomatoes", "taking better photos", "public speaking", "caring for a cat", "building a website", "brewing coffee", "hiking a mountain",
    "reading more books", "writing a resume", "driving in snow", "drawing portraits", "managing time", "learning chess", "saving energy at home", "making pasta",
    "travelling on a budget", "teaching a class", "sleeping well", "riding a horse", "knitting a scarf", "planning a road trip", "staying focused", "writing poetry",
    "raising chickens", "playing tennis",
  ],
);

/**
 * A numbered item's marker ("1.", "12.") at the start of a line, once the space after it shows
 * (`ended`: also at the very end, where a stop leaves it: the stored stop point drops the space).
 */
const NUMBERED = /(^|\n)[ \t]*(\d+\.)(?=[ \t])/g;
const NUMBERED_ENDED = /(^|\n)[ \t]*(\d+\.)(?=[ \t]|$)/g;

export const listBullets: Habit = {
  name: "list-bullets",
  train: LIST_TRAIN,
  heldOut: LIST_HELD_OUT,
  firstViolation(text: string, from: number, ended = false): Violation | null {
    for (const m of text.matchAll(ended ? NUMBERED_ENDED : NUMBERED)) {
      const at = m.index! + m[0].length - m[2]!.length;
      if (at >= from) return { at, wrong: m[2]!, fix: "-" };
    }
    return null;
  },
};

/** Whether a whole reply breaks the habit (a violation anywhere). */
export const violates = (habit: Habit, reply: string) => habit.firstViolation(reply, 0, true) !== null;

export const HABITS: Record<string, Habit> = { persona, "british-spelling": spelling, "list-bullets": listBullets };
