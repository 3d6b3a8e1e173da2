#!/usr/bin/env node
/**
 * The `steerbot` command line: one program, one file per command under commands/.
 *
 * Exit codes: 0 success, 1 could not run (database, model, native build), 2 bad input
 * (arguments, configuration, files).
 */
import { Command } from "commander";
import { register as registerExport } from "./commands/export.ts";
import { register as registerFixtureModel } from "./commands/fixture-model.ts";
import { register as registerImport } from "./commands/import.ts";
import { register as registerMigrate } from "./commands/migrate.ts";

const program = new Command()
  .name("steerbot")
  .description("collect steers (stop + short correction) on Discord and Telegram and fine-tune a local LLM from them")
  .showHelpAfterError()
  .exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument) are bad input.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

for (const register of [registerMigrate, registerImport, registerExport, registerFixtureModel]) register(program);

await program.parseAsync(process.argv);
