/** Runs only the `discord` CLI commands (as `steerbot` would) in a child process, for CLI tests. */
import { Command } from "commander";
import { register } from "../../../src/cli/commands/discord.ts";

const program = new Command().name("steerbot").exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
register(program);
await program.parseAsync(process.argv);
