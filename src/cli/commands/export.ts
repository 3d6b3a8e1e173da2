/**
 * `steerbot export`: writes stored steers as JSONL — the interchange format (round-trips with
 * import) or TRL's DPO/SFT rows — or (`--format hf-dataset --out DIR`) a Hugging Face `datasets`
 * folder: JSONL shards with the token ids of the model, and a dataset card (src/core/hf-dataset.ts).
 */
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import path from "node:path";
import { Option, type Command } from "commander";
import { datasetCard, HF_SHARD_ROWS, hfRow, shardName } from "../../core/hf-dataset.ts";
import { exportFormats, type ExportFormat } from "../../core/steer-export.ts";
import type { SteerRow, TrustState } from "../../store/database.ts";
import { SteerRepository } from "../../store/steer-repository.ts";
import { SteerTokenizer } from "../../training/steer-tokenizer.ts";
import { action, appContext, CliError, EXIT, openStore, type AppContext } from "../app-context.ts";

type Format = ExportFormat | "hf-dataset";

interface ExportOptions {
  format: Format;
  state: TrustState | "all";
  out?: string;
  model?: string;
}

export function register(program: Command): void {
  program
    .command("export")
    .description("write stored steers as JSONL, or as a Hugging Face dataset folder (--format hf-dataset --out DIR)")
    .addOption(new Option("--format <format>", "output shape").choices([...exportFormats, "hf-dataset"]).default("steers"))
    .addOption(new Option("--state <state>", "which steers").choices(["approved", "pending", "rejected", "all"]).default("approved"))
    .option("--out <file>", "write here instead of standard output (hf-dataset: the folder, required)")
    .option("--model <file>", "hf-dataset: the model whose token ids the rows carry (default: model.path)")
    .action(
      action(async (opts: ExportOptions) => {
        const ctx = appContext();
        if (opts.format === "hf-dataset") return exportHfDataset(ctx, opts);
        const store = await openStore(ctx);
        const out = opts.out ? createWriteStream(opts.out) : process.stdout;
        let n = 0;
        try {
          // never the steers of people who opted out or were forgotten (store/personal-data.ts)
          const rows = await store.steers.list(filterOf(opts));
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

function filterOf(opts: ExportOptions) {
  return opts.state === "all" ? { usable: true } : { states: [opts.state as TrustState], usable: true };
}

/**
 * Writes the dataset folder. Rows are tokenized by steerbot's own trainer tokenizer (the ids it
 * trains on); a steer that does not tokenize is left out and said on stderr. Shards are written
 * under a temporary name and renamed once their count is known.
 */
async function exportHfDataset(ctx: AppContext, opts: ExportOptions): Promise<number> {
  if (!opts.out) throw new CliError("--format hf-dataset needs --out DIR (the dataset folder to write)", EXIT.badInput);
  const dir = opts.out;
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new CliError(`${dir} is not empty: give a new or empty folder, so that no old shard is loaded with the new ones`, EXIT.badInput);
  const tokenizer = await SteerTokenizer.open(opts.model ?? ctx.config.model.path);
  const store = await openStore(ctx);
  const counts = { rows: 0, pairs: 0, sft: 0, approximate: 0, skipped: 0, bytes: 0 };
  const shards: string[] = [];
  try {
    const engine = tokenizer.model;
    const fingerprint = await engine.fingerprint();
    mkdirSync(path.join(dir, "data"), { recursive: true });
    let out: ReturnType<typeof createWriteStream> | undefined;
    let inShard = 0;
    const close = async () => {
      if (!out) return;
      out.end();
      await once(out, "finish");
      out = undefined;
    };
    const rows: SteerRow[] = await store.steers.list(filterOf(opts));
    for (const row of rows) {
      const record = SteerRepository.toRecord(row);
      let tokens;
      try {
        tokens = tokenizer.tokenize(record);
      } catch (e) {
        counts.skipped++;
        process.stderr.write(`steer ${row.id}: not exported, does not tokenize: ${(e as Error).message}\n`);
        continue;
      }
      const hf = hfRow({
        id: `steerbot:${row.id}`,
        context: record.context,
        prefix: record.prefix,
        chosen: record.chosen,
        rejected: record.rejected,
        approximate: row.approximate,
        source: row.source,
        prompt: engine.renderContext(record.context, record.prefix).text,
        prompt_ids: tokens.prompt,
        chosen_ids: tokens.chosen,
        rejected_ids: tokens.rejected,
        model_fingerprint: fingerprint,
      });
      if (!out || inShard >= HF_SHARD_ROWS) {
        await close();
        const tmp = path.join(dir, "data", `part-${shards.length}.tmp`);
        shards.push(tmp);
        out = createWriteStream(tmp);
        inShard = 0;
      }
      const line = JSON.stringify(hf) + "\n";
      counts.bytes += Buffer.byteLength(line);
      if (!out.write(line)) await once(out, "drain");
      inShard++;
      counts.rows++;
      counts[hf.kind === "pair" ? "pairs" : "sft"]++;
      if (hf.approximate) counts.approximate++;
    }
    await close();
    if (counts.rows === 0) throw new CliError(`no steers to export (state ${opts.state}${counts.skipped ? `; ${counts.skipped} did not tokenize` : ""})`, EXIT.badInput);
    shards.forEach((tmp, i) => renameSync(tmp, path.join(dir, shardName(i, shards.length))));
    writeFileSync(path.join(dir, "README.md"), datasetCard({ ...counts, shards: shards.length, modelFile: path.basename(engine.modelPath), modelFingerprint: fingerprint }));
  } finally {
    await store.close();
    await tokenizer.dispose();
  }
  process.stderr.write(`exported ${counts.rows} steers to ${dir} (${counts.pairs} pairs, ${counts.sft} SFT examples, ${counts.approximate} approximate${counts.skipped ? `, ${counts.skipped} not tokenizable, left out` : ""})\n`);
  return EXIT.ok;
}
