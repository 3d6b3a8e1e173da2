/**
 * Do steers make a real model better? The measurement behind steerbot's promise, on a real
 * instruct model from PyPI (SmolLM2-135M-Instruct Q4_1 by default), through the product itself.
 *
 * Per habit (test/helpers/habits.ts): the bot's free generations on held-out prompts are measured
 * first (violation rate, greedy and T = 0.7); a simulated steerer (test/helpers/
 * simulated-steerer.ts) then asks the training prompts through the core, stops each stream where
 * the first violation was shown, quotes it with the fix and resumes, as often as the reply breaks
 * the habit; the product's own pipeline trains on those steers (`train --from-db`: held-out gate,
 * activation, hot-swap) on the served quantized file; and the same measurements are taken on the
 * bot after the swap, plus held-out preference accuracy, whether log p(chosen) rose, and
 * retention: perplexity of a neutral text with the adapter vs the base model, and KL to the base
 * on neutral prompts (sampled from the base at T = 1).
 *
 * Run: `npx tsx bench/learn.ts [--model smollm2-135m|gemma3-270m] [--habits persona,british-spelling,list-bullets]
 *       [--steers N] [--held-out N | --full] [--curve 25,50,100,200] [--samples K]
 *       [--lr X --epochs N --objective O --retention W --learned-at P --anchors N --seed N --rewrites CHARS --out FILE]`
 * Quick mode (the default): 40 steered prompts and 24 of the held-out prompts per habit (≈ 10 min
 * a habit on 2 cores). `--full`: every held-out prompt (100+ per habit) and 200 steered prompts.
 * Prints a table; writes bench/results/learn-<model>.json (with a few replies before and after)
 * and a PNG plot of it (violation rates before and after, per habit).
 *
 * `--curve 25,50,100,200`: a learning curve. The steers are collected from the base model (the
 * adapter is rolled back while steering) until the next count is reached, then the pipeline
 * trains on all collected so far and the bot is measured with that adapter (activated by hand
 * where the gate kept the previous one: the curve measures every point).
 *
 * `--rewrites CHARS`: full rewrites instead of steers (the bot's whole reply typed again with
 * the habit fixed, one preference pair per reply) until CHARS characters are typed: steers vs
 * rewrites at the same typing budget.
 *
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { Engine, cpuCores } from "../src/engine/engine.ts";
import { createLogger } from "../src/log.ts";
import { Store } from "../src/store/store.ts";
import { learnCurvePlot, learnPlot } from "./learn-plot.ts";
import { fetchRealModel, type RealModelName } from "../test/helpers/real-model.ts";
import { SimulatedSteerer, type Habit } from "../test/helpers/simulated-steerer.ts";
import { HABITS, violates } from "../test/helpers/habits.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "smollm2-135m" },
    habits: { type: "string", default: "persona,british-spelling,list-bullets" },
    steers: { type: "string" },
    "held-out": { type: "string", default: "24" },
    full: { type: "boolean", default: false },
    curve: { type: "string" },
    seed: { type: "string" },
    samples: { type: "string", default: "2" },
    "max-tokens": { type: "string", default: "48" },
    // training settings to compare against the defaults (config/default.yaml) in a sweep
    lr: { type: "string" },
    epochs: { type: "string" },
    objective: { type: "string" },
    retention: { type: "string" },
    "learned-at": { type: "string" },
    // unsteered replies to everyday questions asked before training: the retention term's replay anchors (training.anchors, 64 as shipped)
    anchors: { type: "string", default: "64" },
    // full rewrites instead of steers, within this many typed characters (see rewrite())
    rewrites: { type: "string" },
    "compute-type": { type: "string" },
    out: { type: "string" },
  },
});
const trainingOverrides = {
  ...(values.lr ? { learning_rate: Number(values.lr) } : {}),
  ...(values.epochs ? { epochs: Number(values.epochs) } : {}),
  ...(values.objective ? { objective: values.objective } : {}),
  ...(values.retention ? { retention: Number(values.retention) } : {}),
  ...(values["learned-at"] ? { learned_at: Number(values["learned-at"]) } : {}),
  anchors: Number(values.anchors),
  ...(values.seed ? { seed: Number(values.seed) } : {}),
  ...(values["compute-type"] ? { compute_type: values["compute-type"] } : {}),
};
const modelPath = await fetchRealModel(values.model as RealModelName);
const maxTokens = Number(values["max-tokens"]);
const samples = Number(values.samples);
const steeredPrompts = Number(values.steers ?? (values.full ? 200 : 40));
const curve = values.curve?.split(",").map(Number);
if (curve && (curve.some((n) => !(n > 0)) || curve.some((n, i) => i > 0 && n <= curve[i - 1]!))) throw new Error(`--curve ${values.curve}: rising steer counts, e.g. 25,50,100,200`);
if (curve && values.rewrites !== undefined) throw new Error("--curve is for steers; --rewrites measures one budget");

/** `n` of `list` spread evenly over it (prompts are frames × subjects: every frame, many subjects). */
function spread<T>(list: readonly T[], n: number): T[] {
  if (n >= list.length) return [...list];
  return Array.from({ length: n }, (_, i) => list[Math.floor((i * list.length) / n)]!);
}

// a neutral passage no habit touches (retention: its perplexity must not rise)
const NEUTRAL = [
  { q: "Explain how rain forms.", a: "Rain forms when water vapour in the air cools and condenses into tiny droplets around dust particles. These droplets join together in clouds until they are heavy enough to fall to the ground." },
  { q: "What does a heart do?", a: "The heart is a muscle that pumps blood through the body. Blood carries oxygen and nutrients to the organs and takes waste away from them." },
  { q: "How do plants grow?", a: "Plants take in water through their roots and light through their leaves. With carbon dioxide from the air they make sugar, which gives them the energy to grow." },
];

/**
 * Everyday questions no habit touches, answered by the bot and left unsteered (the replies a
 * community lets stand): with `--anchors N` the first N are asked after the steering, so they
 * are the newest unsteered replies and the retention term holds them (training.anchors = N).
 * None is about the neutral passages above.
 */
const EVERYDAY = [
  "How do bees make honey?", "Why is the sea salty?", "What is a volcano?", "How does a bicycle stay upright?", "Why do leaves change colour in autumn?",
  "What makes thunder?", "How do fish breathe?", "What is the moon made of?", "How does a compass work?", "Why do we need sleep?",
  "What is a rainbow?", "How do birds fly?", "What is an island?", "How does bread rise?", "Why is the sky dark at night?",
  "What does a farmer do?", "How do magnets work?", "What is a glacier?", "How do trains run on rails?", "Why do cats purr?",
  "What is a desert?", "How is paper made?", "What are clouds made of?", "How does a battery work?", "Why do we have seasons?",
  "What is a river delta?", "How do ants find food?", "What is snow?", "How does soap clean?", "Why do onions make us cry?",
  "What is a lighthouse for?", "How do seeds spread?", "What is an earthquake?", "How does a kite fly?", "Why does ice float?",
  "What is a coral reef?", "How do bats see in the dark?", "What is a fossil?", "How does a clock keep time?", "Why do stars twinkle?",
  "What is a canyon?", "How do spiders spin webs?", "What is fog?", "How does a boat float?", "Why do dogs wag their tails?",
  "What is a comet?", "How do bridges stay up?", "What is wind?", "How does cheese get made?", "Why do we yawn?",
  "What is a forest made of?", "How do whales communicate?", "What is lava?", "How does a windmill work?", "Why is grass green?",
  "What is a tide?", "How do frogs grow?", "What is hail?", "How does a lock open with a key?", "Why do apples fall?",
  "What is a marsh?", "How do owls hunt?", "What is steam?", "How does a pump move water?",
];

/**
 * A full rewrite of a reply, as a person who corrects whole answers would type it: every
 * violation of the habit fixed, the rest kept word for word (the whole reply is typed).
 */
function rewrite(habit: Habit, text: string): string {
  let t = text;
  let from = 0;
  for (let v = habit.firstViolation(t, from, true); v; v = habit.firstViolation(t, from, true)) {
    t = t.slice(0, v.at) + v.fix + t.slice(v.at + v.wrong.length);
    from = v.at + v.fix.length;
  }
  return t;
}

/** Neutral questions for the KL to the base: none is a habit's, an anchor's or a passage's above. */
const KL_PROMPTS = [
  "What is a library for?", "How do tides work?", "Why do people keep diaries?", "What does a carpenter make?", "How does a telescope work?", "What is a museum?",
  "Why do birds migrate?", "How is glass made?", "What is a harbour?", "How do plants drink water?", "What does a pilot do?", "Why do we cook food?",
  "How does a refrigerator keep food cold?", "What is a mountain?", "Why do people learn history?", "How do submarines dive?",
];

/**
 * KL(base ‖ adapter) per token on neutral questions, estimated by sampling: replies drawn from
 * the base at T = 1 (no top-k/top-p), KL ≈ mean of log p_base(y) − log p_adapter(y) over their
 * tokens. 0 when the adapter left these answers alone.
 */
async function klToBase(base: Engine, tuned: Engine): Promise<number> {
  let diff = 0;
  let n = 0;
  for (const q of KL_PROMPTS) {
    const messages = [{ role: "user" as const, content: q }];
    for (let s = 0; s < 2; s++) {
      const y = await base.generate({ messages, maxTokens: 32, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 7 + s });
      const spanTokens = y.tokens.map((t) => t.id);
      if (spanTokens.length === 0) continue;
      const p = await base.scoreSpan({ messages, span: y.text, spanTokens });
      const r = await tuned.scoreSpan({ messages, span: y.text, spanTokens });
      diff += p.logprob - r.logprob;
      n += spanTokens.length;
    }
  }
  return diff / n;
}

async function perplexity(engine: Engine): Promise<number> {
  let nll = 0;
  let n = 0;
  for (const { q, a } of NEUTRAL) {
    const r = await engine.scoreSpan({ messages: [{ role: "user", content: q }], span: a });
    nll -= r.logprob;
    n += r.tokens;
  }
  return Math.exp(nll / n);
}

/** Share of `prompts` whose reply breaks the habit: greedy through the bot, and sampled at T = 0.7 on its live engine. */
/**
 * Whether a reply says the same thing twice: a sentence of 4 or more words that occurs again
 * (a steer teaches a span and nothing after it; a small model may start the span over).
 */
function repeats(reply: string): boolean {
  const sentences = reply.split(/(?<=[.!?])\s+|\n+/).map((x) => x.trim().toLowerCase()).filter((x) => x.split(/\s+/).length >= 4);
  return new Set(sentences).size < sentences.length;
}

/**
 * Whether a reply has stopped being text: fewer than half of its visible characters are letters
 * or digits ("- **-\n- - - -\n- - - -"), or it is empty. A habit's detector passes such a reply
 * (it has no numbered line, no "color"), so without this rate a habit can seem to go where the
 * adapter has broken the replies instead.
 */
function degenerate(reply: string): boolean {
  const visible = reply.replace(/\s+/g, "");
  const wordy = visible.match(/[\p{L}\p{N}]/gu)?.length ?? 0;
  return visible.length === 0 || wordy < visible.length / 2;
}

async function violationRates(app: Awaited<ReturnType<typeof createApp>>, steerer: SimulatedSteerer, habit: Habit, prompts: readonly string[]): Promise<Rates> {
  let greedy = 0;
  let repeated = 0;
  let broken = 0;
  const examples: string[] = [];
  const degenerateExamples: string[] = [];
  for (const q of prompts) {
    const reply = (await steerer.converse(q, null)).text;
    if (violates(habit, reply)) greedy++;
    if (repeats(reply)) repeated++;
    if (degenerate(reply)) {
      broken++;
      if (degenerateExamples.length < 4) degenerateExamples.push(`${q} → ${reply}`);
    }
    if (examples.length < 4) examples.push(`${q} → ${reply}`);
  }
  let sampled = 0;
  const engine = app.core.currentEngine;
  for (const q of prompts) {
    for (let s = 0; s < samples; s++) {
      const r = await engine.generate({ messages: [{ role: "user", content: q }], maxTokens, temperature: 0.7, seed: 1000 + s });
      if (violates(habit, r.text)) sampled++;
    }
  }
  return { greedy: greedy / prompts.length, sampled: sampled / (prompts.length * samples), repeated: repeated / prompts.length, degenerate: broken / prompts.length, examples, degenerateExamples };
}

/** A habit's rates on the held-out prompts (greedy replies unless named sampled). */
interface Rates {
  greedy: number;
  sampled: number;
  /** Greedy replies that say a sentence twice. */
  repeated: number;
  /** Greedy replies that are no longer text (see degenerate()). */
  degenerate: number;
  examples: string[];
  degenerateExamples: string[];
}

interface HabitResult {
  habit: string;
  /** Held-out prompts the rates are measured on. */
  heldOutPrompts: number;
  steeredPrompts: number;
  steers: number;
  typedChars: number;
  /** Violation rates, the shares of greedy replies that repeat a sentence or are no longer text, and the first replies (see Rates). */
  before: Rates;
  after: Rates;
  heldOutAccuracy: { base: number; candidate: number };
  chosenLogprob: { base: number; candidate: number };
  perplexity: { base: number; adapter: number };
  /** KL(base ‖ adapter) in nats per token on neutral questions ({@link klToBase}). */
  klToBase: number;
  trainSeconds: number;
  /** Whether the gate put the adapter live (else it was activated by hand to be measured). */
  activated: boolean;
  notice: string;
}

const results: HabitResult[] = [];
for (const name of values.habits.split(",")) {
  const habit = HABITS[name];
  if (!habit) throw new Error(`unknown habit ${name}; known: ${Object.keys(HABITS).join(", ")}`);
  const heldOut = values.full ? [...habit.heldOut] : spread(habit.heldOut, Number(values["held-out"]));
  const dir = mkdtempSync(path.join(os.tmpdir(), `steerbot-learn-${name}-`));
  const { config, secrets } = loadConfig({
    env: {},
    overrides: {
      model: { path: modelPath, gpu: false },
      generation: { max_tokens: maxTokens, temperature: 0, system_prompt: "" },
      stream: { edit_interval_ms: 0 },
      store: { data_dir: dir },
      steer: { per_user_per_minute: 100_000 },
      ask: { per_user_per_minute: 100_000 },
      permissions: { default_trust: "approved", admins: { users: ["steerer"] } },
      // the shipped training defaults, but for the held-out share the gate needs
      // (rewrites: a few pairs, all trained on; the adapter is then measured on the bot as it is)
      training: { base_model: "", ...(values.rewrites === undefined ? { held_out_fraction: 0.25, min_new_steers: 10 } : { held_out_fraction: 0, min_new_steers: 1 }), ...trainingOverrides },
    },
  });
  const store = await Store.open({ dataDir: "memory://" });
  const app = await createApp({ config, secrets, log: createLogger("warn"), store });
  const admin = { platform: "bench", userId: "steerer" };
  const steerer = new SimulatedSteerer(app.core, admin, { idPrefix: name });
  const base = await Engine.load({ model: modelPath, gpu: false, sequences: 1 });
  const basePerplexity = await perplexity(base);
  const t0 = performance.now();
  const before = await violationRates(app, steerer, habit, heldOut);
  console.log(`[${name}] held-out violation rate before (${heldOut.length} prompts): greedy ${pct(before.greedy)}, T=0.7 ${pct(before.sampled)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);

  let steers = 0;
  let typed = 0;
  let asked = 0;
  const steered: string[] = [];
  // one training point per count of steers (the curve), or one after `steeredPrompts` prompts
  for (const target of curve ?? [Number.POSITIVE_INFINITY]) {
    if (values.rewrites === undefined) {
      while (asked < habit.train.length && (curve ? steers < target : asked < steeredPrompts)) {
        const q = habit.train[asked++]!;
        const r = await steerer.converse(q, habit);
        if (r.steers > 0) steered.push(q);
        steers += r.steers;
        typed += r.typed;
      }
      if (curve && steers < target) console.log(`[${name}] the ${habit.train.length} training prompts gave ${steers} steers, fewer than ${target}`);
      console.log(`[${name}] ${steers} steers on ${steered.length} of ${asked} prompts asked (${typed} characters typed)`);
    } else {
      // the bot answers; the person types the whole reply again with the habit fixed, until the
      // typing budget is spent: one preference pair per reply (the reply rejected, the rewrite chosen)
      const budget = Number(values.rewrites);
      for (const q of habit.train) {
        if (typed >= budget) break;
        const r = await steerer.converse(q, null);
        const fixed = rewrite(habit, r.text);
        if (fixed === r.text) continue; // nothing to correct in this reply
        const [gen] = await store.conversations.unsteeredReplies(1);
        await store.steers.insert({
          generation_id: gen!.generationId, context: "[]", prefix: "", rejected: r.text, chosen: fixed, prefix_tokens: null, rejected_tokens: null, chosen_tokens: null,
          divergence_char: 0, divergence_token: null, shown_chars: r.text.length, shown_tokens: null, form: null, model_fingerprint: null,
          platform: "bench", author: "steerer", correction_message_id: `${name}-rewrite-${steered.length}`, trust_state: "approved", original_json: null,
        });
        steered.push(q);
        steers++;
        typed += fixed.length;
      }
      console.log(`[${name}] ${steers} full rewrites (${typed} characters typed, budget ${budget})`);
    }
    // the newest unsteered replies are the replay anchors: asked after this point's steering
    // (so the held-out replies measured before are never among them)
    const everyday = EVERYDAY.slice(0, Number(values.anchors));
    if (everyday.length < Number(values.anchors)) throw new Error(`--anchors ${values.anchors}: there are ${EVERYDAY.length} everyday questions`);
    for (const q of everyday) await steerer.converse(q, null);
    if (everyday.length) console.log(`[${name}] ${everyday.length} everyday questions answered and left unsteered (the replay anchors)`);

    const t1 = performance.now();
    const run = await app.training.run({ trigger: "cli" });
    const trainSeconds = (performance.now() - t1) / 1000;
    console.log(`[${name}] ${run.notice}`);
    const activated = run.activated === true;
    if (run.adapterVersion && !activated) {
      // a handful of rewrites leaves the gate too few held-out pairs, and on a curve the gate may
      // keep the previous point's adapter: measure this one anyway
      const forced = await app.core.admin.adapters(admin, "activate", run.adapterVersion);
      console.log(`[${name}] activated by hand to measure it: ${forced.notice}`);
    }
    const adapter = run.adapterVersion ? await store.training.adapter(run.adapterVersion) : undefined;
    const metrics = (adapter?.metrics ?? {}) as { base?: { preferenceAccuracy: number; chosenLogprob: number }; candidate?: { preferenceAccuracy: number; chosenLogprob: number } };
    const after = await violationRates(app, steerer, habit, heldOut);
    const tuned = adapter ? await Engine.load({ model: modelPath, gpu: false, sequences: 1, lora: adapter.file_path }) : base;
    const adapterPerplexity = await perplexity(tuned);
    const kl = tuned === base ? 0 : await klToBase(base, tuned);
    if (tuned !== base) await tuned.dispose();
    results.push({
      habit: name,
      heldOutPrompts: heldOut.length,
      steeredPrompts: steered.length,
      steers,
      typedChars: typed,
      before,
      after,
      heldOutAccuracy: { base: metrics.base?.preferenceAccuracy ?? Number.NaN, candidate: metrics.candidate?.preferenceAccuracy ?? Number.NaN },
      chosenLogprob: { base: metrics.base?.chosenLogprob ?? Number.NaN, candidate: metrics.candidate?.chosenLogprob ?? Number.NaN },
      perplexity: { base: basePerplexity, adapter: adapterPerplexity },
      klToBase: kl,
      trainSeconds,
      activated,
      notice: run.notice ?? "",
    });
    console.log(`[${name}] ${steers} steers: greedy ${pct(before.greedy)} → ${pct(after.greedy)}, T=0.7 ${pct(before.sampled)} → ${pct(after.sampled)}, KL to base ${kl.toFixed(3)} nats/token`);
    if (curve) {
      // the next steers come from the base model, as the first ones did
      for (let i = 0; i <= results.length && (await app.training.describeActive()) !== "none (base model)"; i++) await app.core.admin.adapters(admin, "rollback");
      if ((await app.training.describeActive()) !== "none (base model)") throw new Error("could not roll back to the base model to collect the next steers");
    }
    if (curve && steers < target) break;
  }
  await base.dispose();
  await app.close();
  await store.close();
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "n/a";
}

console.log(`\nbench/learn on ${values.model} (${path.basename(modelPath)}), ${cpuCores()} cores, max_tokens ${maxTokens}, T=0.7 samples ${samples} per prompt`);
console.log("| habit | steers (prompts, chars typed) | held-out prompts | violations greedy before → after | T=0.7 before → after | held-out pref. acc. base → adapter | mean log p(chosen) base → adapter | neutral perplexity base → adapter | KL to base (nats/token) | greedy replies repeating a sentence | greedy replies no longer text | train s |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.habit} | ${r.steers} (${r.steeredPrompts}, ${r.typedChars}) | ${r.heldOutPrompts} | ${pct(r.before.greedy)} → ${pct(r.after.greedy)} | ${pct(r.before.sampled)} → ${pct(r.after.sampled)} | ` +
      `${pct(r.heldOutAccuracy.base)} → ${pct(r.heldOutAccuracy.candidate)} | ${r.chosenLogprob.base.toFixed(2)} → ${r.chosenLogprob.candidate.toFixed(2)} | ` +
      `${r.perplexity.base.toFixed(2)} → ${r.perplexity.adapter.toFixed(2)} (${(((r.perplexity.adapter - r.perplexity.base) / r.perplexity.base) * 100).toFixed(1)}%) | ${r.klToBase.toFixed(3)} | ${pct(r.before.repeated)} → ${pct(r.after.repeated)} | ${pct(r.before.degenerate)} → ${pct(r.after.degenerate)} | ${r.trainSeconds.toFixed(0)} |`,
  );
}
const out = values.out ?? path.join(import.meta.dirname, "results", `learn-${values.model}.json`);
mkdirSync(path.dirname(out), { recursive: true });
const examples = values.rewrites === undefined ? "steers" : "rewrites";
writeFileSync(out, JSON.stringify({ model: values.model, date: new Date().toISOString(), cores: cpuCores(), maxTokens, samples, training: trainingOverrides, examples, ...(curve ? { curve } : {}), ...(values.rewrites !== undefined ? { rewriteBudget: Number(values.rewrites) } : {}), results }, null, 2) + "\n");
const png = out.replace(/\.json$/, "") + ".png";
writeFileSync(png, curve ? learnCurvePlot(values.model, results, values.objective ?? "") : learnPlot(values.model, results, examples));
console.log(`wrote ${out} and ${png}`);
