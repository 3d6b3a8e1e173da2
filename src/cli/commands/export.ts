/**
 * `steerbot export`: writes stored steers as JSONL — the interchange format (round-trips with
 * import) or TRL's DPO/SFT rows.
 */
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { Option, type Command } from "commander";
import { exportFormats, type ExportFormat } from "../../core/steer-export.ts";
import type { TrustState } from "../../store/database.ts";
import { SteerRepository } from "../../store/steer-repository.ts";
import { action, appContext, openStore } from "../app-context.ts";

export function register(program: Command): void {
  program
    .command("export")
    .description("write stored steers as JSONL")
    .addOption(new Option("--format <format>", "output shape").choices(exportFormats).default("steers"))
    .addOption(new Option("--state <state>", "which steers").choices(["approved", "pending", "rejected", "all"]).default("approved"))
    .option("--out <file>", "write here instead of standard output")
    .action(
      action(async (opts: { format: ExportFormat; state: TrustState | "all"; out?: string }) => {
        const ctx = appContext();
        const store = await openStore(ctx);
        const out = opts.out ? createWriteStream(opts.out) : process.stdout;
        let n = 0;
        try {
          // never the steers of people who opted out or were forgotten (store/personal-data.ts)
          const rows = await store.steers.list(opts.state === "all" ? { usable: true } : { states: [opts.state], usable: true });
          for (const row of rows) {
            const line = SteerRepository.toExportLine(row, opts.format);
            if (!out.write(line + "\n")) await once(out, "drain");
            n++;
          }
        } finally {
          await store.close();
          if (opts.out) {
            out.end();
            await once(out, "finish");
          }
        }
        process.stderr.write(`exported ${n} steers\n`);
      }),
    );
}
