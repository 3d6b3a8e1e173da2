/**
 * `steerbot import FILE`: stores steers from a JSONL file. Bad lines are reported by number
 * with the reason and the good ones are still stored; a file imported twice stores nothing
 * twice. Exit 0 = every line stored or already there, 2 = some lines were invalid.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { parseSteerJsonl } from "../../core/steer-record.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";

export function register(program: Command): void {
  program
    .command("import")
    .description("store steers from a JSONL file (one steer a line); imported steers count as approved")
    .argument("<file>", "JSONL file, or - for standard input")
    .action(
      action(async (file: string) => {
        let text: string;
        try {
          text = readFileSync(file === "-" ? 0 : file, "utf8");
        } catch (e) {
          throw new CliError(`cannot read ${file}: ${(e as Error).message}`, EXIT.badInput);
        }
        const parsed = parseSteerJsonl(text);
        for (const err of parsed.errors) process.stderr.write(`${file}:${err.line}: ${err.reason}\n`);
        if (parsed.steers.length === 0 && parsed.errors.length === 0) throw new CliError(`${file} holds no steers`, EXIT.badInput);
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          const out = await store.steers.importRecords(parsed.steers.map((s) => s.steer));
          const withheld = out.withheld ? `, ${out.withheld} by people who asked to be forgotten, not stored` : "";
          process.stdout.write(`imported ${out.stored} steers (${out.duplicates} already stored, ${parsed.errors.length} invalid lines${withheld})\n`);
        } finally {
          await store.close();
        }
        return parsed.errors.length ? EXIT.badInput : EXIT.ok;
      }),
    );
}
