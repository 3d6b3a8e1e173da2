/**
 * `steerbot import FILE`: stores steers from a JSONL file. Bad lines are reported by number
 * with the reason and the good ones are still stored; a file imported twice stores nothing
 * twice. Exit 0 = every line stored or already there, 2 = some lines were invalid.
 *
 * The file is streamed, never read whole, and stored in batches of {@link BATCH_LINES} lines,
 * one transaction each: memory stays flat however big the file, and an import cut short is
 * completed by running it again (the lines already stored are skipped).
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { parseSteerLine, type SteerRecord } from "../../core/steer-record.ts";
import type { Store } from "../../store/store.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";

/** Lines stored per transaction. */
export const BATCH_LINES = 500;

export function register(program: Command): void {
  program
    .command("import")
    .description("store steers from a JSONL file (one steer a line); imported steers count as approved")
    .argument("<file>", "JSONL file, or - for standard input")
    .action(
      action(async (file: string) => {
        const input = file === "-" ? process.stdin : createReadStream(file);
        // a missing or unreadable file is said before the database is opened
        await new Promise<void>((resolve, reject) => {
          if (input === process.stdin) return resolve();
          input.once("ready", () => resolve());
          input.once("error", (e: Error) => reject(new CliError(`cannot read ${file}: ${e.message}`, EXIT.badInput)));
        });
        const store = await openStore(appContext());
        try {
          const total = await importStream(store, input, (line, reason) => process.stderr.write(`${file}:${line}: ${reason}\n`));
          if (total.lines === 0) throw new CliError(`${file} holds no steers`, EXIT.badInput);
          const withheld = total.withheld ? `, ${total.withheld} by people who asked to be forgotten, not stored` : "";
          process.stdout.write(`imported ${total.stored} steers (${total.duplicates} already stored, ${total.invalid} invalid lines${withheld})\n`);
          return total.invalid ? EXIT.badInput : EXIT.ok;
        } finally {
          await store.close();
        }
      }),
    );
}

/** Reads steers line by line from `input` and stores them in batches; reports each bad line. */
export async function importStream(store: Store, input: NodeJS.ReadableStream, bad: (line: number, reason: string) => void) {
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
    const parsed = parseSteerLine(raw, ++n);
    if (parsed === null) continue;
    total.lines++;
    if ("error" in parsed) {
      total.invalid++;
      bad(n, parsed.error);
      continue;
    }
    batch.push(parsed);
    if (batch.length >= BATCH_LINES) await flush();
  }
  if (batch.length) await flush();
  return total;
}
