/**
 * `steerbot import FILE`: stores steers from a JSONL file — steerbot's own steer lines, or
 * (`--from`) edited replies, TRL's DPO/SFT rows or ShareGPT chats with a corrected last turn,
 * turned into steers by `src/core/import-formats/`. Bad lines are reported by number with the
 * reason and the good ones are still stored; a file imported twice stores nothing twice.
 * Exit 0 = every line stored or already there, 2 = some lines were invalid.
 *
 * The file is streamed, never read whole, and stored in batches of about {@link BATCH_LINES}
 * lines, one transaction each: memory stays flat however big the file, and an import cut short
 * is completed by running it again (the lines already stored are skipped). All steers of one
 * input line go into the same batch, so a line is stored whole or not at all.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { Option, type Command } from "commander";
import type { Derived } from "../../core/import-formats/chat-input.ts";
import { fromEdits, type TextTokenizer } from "../../core/import-formats/edits.ts";
import { fromShareGpt } from "../../core/import-formats/sharegpt.ts";
import { fromTrlDpo, fromTrlSft } from "../../core/import-formats/trl.ts";
import { parseJsonLine, parseSteerLine, type SteerRecord } from "../../core/steer-record.ts";
import type { GeneratedToken } from "../../core/token-snap.ts";
import type { Engine } from "../../engine/engine.ts";
import { TokenTextDecoder } from "../../engine/token-text-decoder.ts";
import type { Store } from "../../store/store.ts";
import { SteerTokenizer } from "../../training/steer-tokenizer.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";

/** Lines stored per transaction. */
export const BATCH_LINES = 500;

export const IMPORT_FORMATS = ["steers", "edits", "trl-dpo", "trl-sft", "sharegpt"] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** One input line: null (blank), why it is refused, or its steers (each with the text stored as its line). */
export type LineReader = (raw: string, line: number) => null | { error: string } | { steers: { steer: SteerRecord; text: string }[]; notes: string[] };

export function register(program: Command): void {
  program
    .command("import")
    .description("store steers from a JSONL file (one steer a line, or --from another shape); imported steers count as approved")
    .argument("<file>", "JSONL file, or - for standard input")
    .addOption(
      new Option("--from <format>", "the file's shape: steers (steerbot's own), edits ({context, generated, corrected}), trl-dpo, trl-sft, sharegpt")
        .choices(IMPORT_FORMATS)
        .default("steers"),
    )
    .option("--model <file>", "with --from edits: the model whose tokenization the diff uses (default: model.path)")
    .action(
      action(async (file: string, opts: { from: ImportFormat; model?: string }) => {
        const input = file === "-" ? process.stdin : createReadStream(file);
        // a missing or unreadable file is said before the database is opened
        await new Promise<void>((resolve, reject) => {
          if (input === process.stdin) return resolve();
          input.once("ready", () => resolve());
          input.once("error", (e: Error) => reject(new CliError(`cannot read ${file}: ${e.message}`, EXIT.badInput)));
        });
        const ctx = appContext();
        const tokenizer = opts.from === "edits" ? await SteerTokenizer.open(opts.model ?? ctx.config.model.path) : undefined;
        try {
          const store = await openStore(ctx);
          try {
            const read = lineReader(opts.from, tokenizer?.model);
            const total = await importStream(store, input, (line, reason) => process.stderr.write(`${file}:${line}: ${reason}\n`), read, (line, note) =>
              process.stderr.write(`${file}:${line}: note: ${note}\n`),
            );
            if (total.lines === 0) throw new CliError(`${file} holds no steers`, EXIT.badInput);
            const withheld = total.withheld ? `, ${total.withheld} by people who asked to be forgotten, not stored` : "";
            const from = opts.from === "steers" ? "" : ` from ${total.lines - total.invalid} of ${total.lines} lines`;
            process.stdout.write(`imported ${total.stored} steers${from} (${total.duplicates} already stored, ${total.invalid} invalid lines${withheld})\n`);
            return total.invalid ? EXIT.badInput : EXIT.ok;
          } finally {
            await store.close();
          }
        } finally {
          await tokenizer?.dispose();
        }
      }),
    );
}

/** The model's tokens of a text with their text pieces (the token contract of core/token-snap.ts). */
export function engineTokenizer(engine: Engine): TextTokenizer {
  return (text) => {
    const ids = engine.tokenize(text);
    const decoder = new TokenTextDecoder((t, special, last) => engine.model.detokenize(t as never, special, last as never));
    const tokens: GeneratedToken[] = ids.map((id) => {
      const offset = decoder.offset;
      return { id, offset, text: decoder.push(id) };
    });
    const rest = decoder.flush();
    if (rest && tokens.length) tokens[tokens.length - 1]!.text += rest;
    return tokens;
  };
}

/** How each line of a file in `format` becomes steers. */
export function lineReader(format: ImportFormat, engine?: Engine): LineReader {
  if (format === "steers") {
    return (raw, line) => {
      const parsed = parseSteerLine(raw, line);
      return parsed === null || "error" in parsed ? parsed : { steers: [parsed], notes: [] };
    };
  }
  let convert: (value: unknown) => Derived;
  if (format === "edits") {
    if (!engine) throw new Error("--from edits needs the model's tokenizer");
    const tokenize = engineTokenizer(engine);
    convert = (v) => fromEdits(v, tokenize);
  } else convert = format === "trl-dpo" ? fromTrlDpo : format === "trl-sft" ? fromTrlSft : fromShareGpt;
  return (raw, line) => {
    const json = parseJsonLine(raw, line);
    if (json === null || "error" in json) return json;
    const derived = convert(json.value);
    if ("error" in derived) return derived;
    // each derived steer is stored as its own steer line (export gives steers, not the source row)
    return { steers: derived.steers.map((steer) => ({ steer, text: JSON.stringify(steer) })), notes: derived.notes };
  };
}

/** Reads lines from `input`, turns each into steers and stores them in batches; reports each bad line. */
export async function importStream(
  store: Store,
  input: NodeJS.ReadableStream,
  bad: (line: number, reason: string) => void,
  read: LineReader = lineReader("steers"),
  note: (line: number, note: string) => void = () => {},
) {
  const total = { lines: 0, stored: 0, duplicates: 0, withheld: 0, invalid: 0 };
  let batch: { steer: SteerRecord; text: string }[] = [];
  const flush = async () => {
    const out = await store.steers.importLines(batch);
    batch = [];
    total.stored += out.stored;
    total.duplicates += out.duplicates;
    total.withheld += out.withheld;
  };
  let n = 0;
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    const parsed = read(raw, ++n);
    if (parsed === null) continue;
    total.lines++;
    if ("error" in parsed) {
      total.invalid++;
      bad(n, parsed.error);
      continue;
    }
    for (const text of parsed.notes) note(n, text);
    batch.push(...parsed.steers);
    if (batch.length >= BATCH_LINES) await flush();
  }
  if (batch.length) await flush();
  return total;
}
