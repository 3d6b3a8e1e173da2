#!/usr/bin/env node
/**
 * The `steerbot` command line: one program, one file per command under commands/.
 *
 * Exit codes: 0 success, 1 could not run (database, model, native build), 2 bad input
 * (arguments, configuration, files).
 */
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

const program = new Command()
  .name("steerbot")
  .description("collect steers (stop + short correction) on Discord and Telegram and fine-tune a local LLM from them")
  // commander's usage errors as one line, pointing at --help instead of printing all of it
  .configureOutput({ outputError: (str, write) => write(`${str.trim().replace(/\s*\n\s*/g, " ")} (--help for usage)\n`) })
  .exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument) are bad input.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

for (const register of [
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
])
  register(program);

// Every command reports its own errors (app-context.ts `action`); this catches what escapes one.
await program.parseAsync(process.argv).catch((e: unknown) => {
  process.exitCode = reportError(e);
});
