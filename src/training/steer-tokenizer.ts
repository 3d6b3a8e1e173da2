/**
 * Turning steers into the token ids the native trainer reads.
 *
 * Owns: the one place training tokenizes (through the {@link Engine}, so prompts are rendered
 * by exactly the chat template generation uses), the split of a rendered assistant turn into
 * prompt / chosen / rejected (/ after) token spans, replay anchors (a reply nobody steered, rendered as
 * its whole turn), and the trainer's dataset file format (JSONL
 * `{"prompt":[ids],"chosen":[ids],"rejected":[ids]}`, `{"anchor":[ids],"from":k}`).
 *
 * A span is cut from the rendering of the whole turn (context + prefix + span), not tokenized
 * on its own, so the tokens at the prefix/span boundary are the ones the model would see. The
 * prompt is the longest token prefix shared by the prefix-only rendering and both span
 * renderings, so chosen and rejected sequences share it exactly. Nothing is appended after a
 * span: the turn stays open (no EOS), a steer corrects a part of a reply, not its end.
 */
import { writeFileSync } from "node:fs";
import type { ChatMessage, SteerRecord } from "../core/steer-record.ts";
import { Engine } from "../engine/engine.ts";

export interface TokenizedSteer {
  prompt: number[];
  chosen: number[];
  rejected: number[];
  /** What the reply went on with after the chosen span (at most {@link MAX_AFTER_TOKENS}); optional. */
  after?: number[];
}

/** Tokens of a steer's continuation the trainer gets (it holds up to its retention rows of them). */
export const MAX_AFTER_TOKENS = 32;

/** A reply nobody steered, and the conversation before it: the retention term's replay anchor. */
export interface AnchorInput {
  context: ChatMessage[];
  reply: string;
}

/** An anchor's whole turn; `from`: the index of its first reply token. */
export interface TokenizedAnchor {
  tokens: number[];
  from: number;
}

export interface SteerTokenizeFailure {
  index: number;
  reason: string;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class SteerTokenizer {
  private constructor(
    private readonly engine: Engine,
    private readonly owned: boolean,
  ) {}

  /** Opens a tokenizer on a model file (loads it with a minimal context), or wraps an Engine. */
  static async open(model: string | Engine): Promise<SteerTokenizer> {
    if (typeof model !== "string") return new SteerTokenizer(model, false);
    const engine = await Engine.load({ model, sequences: 1, contextSize: 256, threads: 1, gpu: false });
    return new SteerTokenizer(engine, true);
  }

  /**
   * Tokenizes one steer; throws with a reason when a span yields no tokens of its own. `after`:
   * the reply's words after the chosen span (see steer-continuations.ts), cut from the rendering
   * of the whole (so the tokens at the span's end are the ones the model saw); left out when
   * that rendering does not keep the chosen span's tokens as they are.
   */
  tokenize(steer: SteerRecord, after?: string): TokenizedSteer {
    const base = this.engine.renderContext(steer.context, steer.prefix).tokens;
    const withChosen = this.engine.renderContext(steer.context, steer.prefix + steer.chosen).tokens;
    const withRejected = steer.rejected ? this.engine.renderContext(steer.context, steer.prefix + steer.rejected).tokens : null;
    let cut = commonPrefix(base, withChosen);
    if (withRejected) cut = Math.min(cut, commonPrefix(base, withRejected));
    if (cut === 0) throw new Error("the prompt renders to no tokens");
    const chosen = withChosen.slice(cut);
    if (chosen.length === 0) throw new Error("the chosen span renders to no tokens (whitespace only?)");
    const rejected = withRejected ? withRejected.slice(cut) : [];
    if (withRejected && rejected.length === 0) throw new Error("the rejected span renders to no tokens");
    const out: TokenizedSteer = { prompt: [...withChosen.slice(0, cut)], chosen: [...chosen], rejected: [...rejected] };
    if (after) {
      const whole = this.engine.renderContext(steer.context, steer.prefix + steer.chosen + after).tokens;
      if (commonPrefix(withChosen, whole) === withChosen.length && whole.length > withChosen.length) {
        out.after = [...whole.slice(withChosen.length, withChosen.length + MAX_AFTER_TOKENS)];
      }
    }
    return out;
  }

  /**
   * Tokenizes a replay anchor as the turn the model generated (the reply cut from the whole
   * rendering, as a span is); undefined when the reply renders to no tokens of its own.
   */
  tokenizeAnchor(anchor: AnchorInput): TokenizedAnchor | undefined {
    const prompt = this.engine.renderContext(anchor.context, "").tokens;
    const whole = this.engine.renderContext(anchor.context, anchor.reply).tokens;
    const from = commonPrefix(prompt, whole);
    if (from === 0 || from >= whole.length) return undefined;
    return { tokens: [...whole], from };
  }

  /** Tokenizes many steers (with their continuations by index, when given), collecting failures instead of throwing. */
  tokenizeAll(steers: readonly SteerRecord[], after: readonly (string | undefined)[] = []): { ok: { index: number; tokens: TokenizedSteer }[]; failed: SteerTokenizeFailure[] } {
    const ok: { index: number; tokens: TokenizedSteer }[] = [];
    const failed: SteerTokenizeFailure[] = [];
    steers.forEach((steer, index) => {
      try {
        ok.push({ index, tokens: this.tokenize(steer, after[index]) });
      } catch (e) {
        failed.push({ index, reason: (e as Error).message });
      }
    });
    return { ok, failed };
  }

  /** The end-of-turn token text is not needed here; exposed for tests that score continuations. */
  get model(): Engine {
    return this.engine;
  }

  async dispose(): Promise<void> {
    if (this.owned) await this.engine.dispose();
  }
}

/** Writes the trainer's dataset file: the steers, then the replay anchors. */
export function writeTrainerDataset(file: string, items: readonly TokenizedSteer[], anchors: readonly TokenizedAnchor[] = []): void {
  const lines = items.map((t) => JSON.stringify({ prompt: t.prompt, chosen: t.chosen, rejected: t.rejected, ...(t.after?.length ? { after: t.after } : {}) }));
  for (const a of anchors) lines.push(JSON.stringify({ anchor: a.tokens, from: a.from }));
  writeFileSync(file, lines.join("\n") + "\n");
}
