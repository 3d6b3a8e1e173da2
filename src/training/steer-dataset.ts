/**
 * From a steers file (or records) to a dataset file the native trainer reads.
 *
 * Owns: reading and validating steers (`parseSteerJsonl`), tokenizing through
 * {@link SteerTokenizer}, and the clear errors for an empty file, unparseable lines, and steers
 * that do not tokenize. Any GGUF llama.cpp runs is a base model (the trainer dequantizes
 * quantized weights itself and reports the rare type it cannot use).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseSteerJsonl, type SteerRecord } from "../core/steer-record.ts";
import type { Engine } from "../engine/engine.ts";
import { SteerTokenizer, writeTrainerDataset, type AnchorInput, type TokenizedAnchor, type TokenizedSteer } from "./steer-tokenizer.ts";

/** Steers given as a JSONL file path or as records. */
export type SteerInput = string | readonly SteerRecord[];

export interface SkippedSteer {
  /** 1-based line in the file (or index + 1 for records). */
  line: number;
  reason: string;
}

export interface PreparedDataset {
  /** The trainer's JSONL file (in a temporary directory removed by `dispose`). */
  file: string;
  steers: SteerRecord[];
  tokens: TokenizedSteer[];
  /** Line (or index + 1) of each dataset entry in the input. */
  lines: number[];
  skipped: SkippedSteer[];
  dispose(): void;
}

/** Reads steers from a file or records; throws on an empty input or when no line parses. */
export function readSteers(input: SteerInput): { steers: SteerRecord[]; lines: number[]; skipped: SkippedSteer[] } {
  if (typeof input !== "string") {
    if (input.length === 0) throw new Error("no steers given");
    return { steers: [...input], lines: input.map((_, i) => i + 1), skipped: [] };
  }
  let text: string;
  try {
    text = readFileSync(input, "utf8");
  } catch (e) {
    throw new Error(`cannot read steers file ${input}: ${(e as Error).message}`);
  }
  const parsed = parseSteerJsonl(text);
  const skipped = parsed.errors.map((e) => ({ line: e.line, reason: e.reason }));
  if (parsed.steers.length === 0) {
    if (skipped.length === 0) throw new Error(`${input} has no steers (empty file)`);
    const first = skipped.slice(0, 3).map((s) => `line ${s.line}: ${s.reason}`).join("; ");
    throw new Error(`${input} has no valid steers (${skipped.length} bad lines; ${first})`);
  }
  return { steers: parsed.steers.map((s) => s.steer), lines: parsed.steers.map((s) => s.line), skipped };
}

export interface PrepareOptions {
  /** Base model path (its tokenizer and chat template are used). */
  model: string;
  steers: SteerInput;
  /** An Engine already loaded on the same model, to tokenize without loading it again. */
  engine?: Engine;
  /** Replies nobody steered, for the retention term (see TrainAdapterOptions.anchors). */
  anchors?: readonly AnchorInput[];
  /** Per steer (by index in `steers` records), the reply's words after its chosen span (see TrainAdapterOptions.continuations). */
  continuations?: readonly (string | undefined)[];
}

/** Reads, tokenizes and writes steers for the trainer. */
export async function prepareDataset(options: PrepareOptions): Promise<PreparedDataset> {
  const { steers, lines, skipped } = readSteers(options.steers);
  const tokenizer = await SteerTokenizer.open(options.engine ?? options.model);
  let ok: { index: number; tokens: TokenizedSteer }[];
  const anchors: TokenizedAnchor[] = [];
  try {
    const res = tokenizer.tokenizeAll(steers, options.continuations);
    ok = res.ok;
    for (const f of res.failed) skipped.push({ line: lines[f.index]!, reason: `does not tokenize: ${f.reason}` });
    for (const a of options.anchors ?? []) {
      const t = tokenizer.tokenizeAnchor(a);
      if (t) anchors.push(t);
    }
  } finally {
    await tokenizer.dispose();
  }
  if (ok.length === 0) {
    const first = skipped.slice(0, 3).map((s) => `line ${s.line}: ${s.reason}`).join("; ");
    throw new Error(`none of the ${steers.length} steers could be tokenized (${first})`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-train-"));
  const file = path.join(dir, "dataset.jsonl");
  const tokens = ok.map((o) => o.tokens);
  writeTrainerDataset(file, tokens, anchors);
  return {
    file,
    steers: ok.map((o) => steers[o.index]!),
    tokens,
    lines: ok.map((o) => lines[o.index]!),
    skipped: skipped.sort((a, b) => a.line - b.line),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
