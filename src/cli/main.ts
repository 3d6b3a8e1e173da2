#!/usr/bin/env node
/**
 * The `steerbot` command line: one program, one file per command under commands/.
 *
 * Exit codes: 0 success, 1 could not run (database, model, native build), 2 bad input
 * (arguments, configuration, files).
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { reportError } from "./app-context.ts";
import { register as registerAdapters } from "./commands/adapters.ts";
import { register as registerAlign } from "./commands/align.ts";
import { register as registerDiscord } from "./commands/discord.ts";
import { register as registerEval } from "./commands/eval.ts";
import { register as registerExport } from "./commands/export.ts";
import { register as registerFixtureModel } from "./commands/fixture-model.ts";
import { register as registerImport } from "./commands/import.ts";
import { register as registerMigrate } from "./commands/migrate.ts";
import { register as registerStart } from "./commands/start.ts";
import { register as registerSteers } from "./commands/steers.ts";
import { register as registerTrain } from "./commands/train.ts";
import { register as registerWeb } from "./commands/web.ts";
import { register as registerWorker } from "./commands/worker.ts";

/**
 * A fresh program with every command. Exported so that tests can run commands inside their own
 * process (test/helpers/cli.ts): loading the CLI takes seconds, a spawn per case adds up.
 */
export function createProgram(): Command {
  const program = new Command()
    .name("steerbot")
    .description("collect steers (stop + short correction) on Discord and Telegram and fine-tune a local LLM from them")
    // commander's usage errors as one line, pointing at --help instead of printing all of it
    .configureOutput({ outputError: (str, write) => write(`${str.trim().replace(/\s*\n\s*/g, " ")} (--help for usage)\n`) })
    .exitOverride((err) => {
      // commander's own usage errors (unknown option, missing argument) are bad input.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  for (const register of commands) register(program);
  return program;
}

const commands = [
  registerStart,
  registerMigrate,
  registerImport,
  registerExport,
  registerSteers,
  registerAlign,
  registerFixtureModel,
  registerTrain,
  registerEval,
  registerAdapters,
  registerDiscord,
  registerWeb,
  registerWorker,
];

/** Runs one command line. Every command reports its own errors (app-context.ts `action`); this catches what escapes one. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await createProgram()
    .parseAsync(argv)
    .catch((e: unknown) => {
      process.exitCode = reportError(e);
    });
}

/** This process is the command (bin/steerbot.js, or tsx src/cli/main.ts), not a test that imports it. */
function isEntry(): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  const argv1 = process.argv[1] ? real(process.argv[1]) : "";
  return argv1 === real(fileURLToPath(import.meta.url)) || argv1 === real(fileURLToPath(new URL("../../bin/steerbot.js", import.meta.url)));
}

if (isEntry()) await main();
