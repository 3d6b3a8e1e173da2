/**
 * `steerbot align`: runs the correction aligner on files, to try corrections by hand and to debug
 * a stored steer.
 *
 * Owns: the command's options, its JSON output and its exit codes. The alignment itself lives in
 * `src/core/alignment.ts`.
 *
 *   steerbot align --shown-file F --correction-file F [--quote TEXT] [--quote-position N]
 *
 * Success: prints `{"prefix","rejected","chosen","form"}` as one JSON line, exit code 0.
 * Failure: prints `{"error":{"code","message"}}` as one JSON line, exit code 2 — for a correction
 * that cannot be aligned (the codes of `CorrectionErrorCode`) and for a file that cannot be read
 * (`file_unreadable`), so scripts have one shape to handle.
 *
 * The shown file is used byte-exact (UTF-8, a final newline included: it is part of S); the
 * correction is trimmed by the aligner like any chat reply.
 */
import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { alignCorrection, type Correction } from "../../core/alignment.ts";
import { action } from "../app-context.ts";

/** Exit code of every failure this command reports as JSON. */
export const ALIGN_FAILURE_EXIT_CODE = 2;

interface AlignCliOptions {
  shownFile: string;
  correctionFile: string;
  quote?: string;
  quotePosition?: number;
}

export function register(program: Command): void {
  program
    .command("align")
    .description("Align a correction against the shown text and print prefix/rejected/chosen as JSON")
    .requiredOption("--shown-file <file>", "the reply text as the person saw it (UTF-8, used exactly)")
    .requiredOption("--correction-file <file>", "the correction reply text (UTF-8)")
    .option("--quote <text>", "the quoted part of the reply (as a Telegram reply quote)")
    .option("--quote-position <n>", "UTF-16 offset of the quote in the shown text", parseOffset)
    .action(action((opts: AlignCliOptions) => runAlign(opts)));
}

/** Runs the command and returns its exit code; output goes to stdout as one JSON line. */
async function runAlign(opts: AlignCliOptions): Promise<number> {
  let shown: string;
  let text: string;
  try {
    shown = await readFile(opts.shownFile, "utf8");
    text = await readFile(opts.correctionFile, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    printJson({ error: { code: "file_unreadable", message: `cannot read ${err.path ?? "file"}: ${err.code ?? err.message}` } });
    return ALIGN_FAILURE_EXIT_CODE;
  }
  const correction: Correction = { text };
  if (opts.quote !== undefined) {
    correction.quote = opts.quotePosition === undefined ? { text: opts.quote } : { text: opts.quote, position: opts.quotePosition };
  }
  const result = alignCorrection(shown, correction);
  if (!result.ok) {
    printJson({ error: { code: result.code, message: result.message } });
    return ALIGN_FAILURE_EXIT_CODE;
  }
  printJson({ prefix: result.prefix, rejected: result.rejected, chosen: result.chosen, form: result.form });
  return 0;
}

function parseOffset(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("not a non-negative integer");
  }
  return n;
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}
