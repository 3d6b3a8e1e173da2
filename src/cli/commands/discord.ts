/**
 * `steerbot discord register [--guild ID]`: registers steerbot's slash commands with Discord.
 *
 * Owns: the CLI side of command registration. It uses only Discord's REST API (no gateway
 * login), so it can run next to a running bot. Guild registration shows the commands at once
 * (use it while setting up); global registration can take up to an hour to appear everywhere.
 */
import type { Command } from "commander";
import { registerCommands, restFor } from "../../platforms/discord/discord-commands.ts";
import { action, appContext, CliError, EXIT } from "../app-context.ts";

export function register(program: Command): void {
  const discord = program.command("discord").description("Discord bot utilities");
  discord
    .command("register")
    .description("register the slash commands (/ask, /retrain, /adapters, /status, /steers, /optout, /forget)")
    .option("--guild <id>", "register in one guild only (instant) instead of globally (up to an hour)")
    .option("--api <url>", "Discord REST base URL (for a test server)")
    .action(
      action(async (opts: { guild?: string; api?: string }) => {
        const ctx = appContext();
        const token = ctx.secrets.discordToken;
        if (!token) throw new CliError("DISCORD_TOKEN is not set: export the bot token first", EXIT.badInput);
        if (opts.guild !== undefined && !/^\d{5,25}$/.test(opts.guild)) {
          throw new CliError(`--guild must be a numeric guild id, got "${opts.guild}"`, EXIT.badInput);
        }
        try {
          const count = await registerCommands(restFor(token, opts.api), { guildId: opts.guild });
          process.stdout.write(
            `registered ${count} slash commands ${opts.guild ? `in guild ${opts.guild}` : "globally (may take up to an hour to appear)"}\n`,
          );
        } catch (err) {
          const e = err as { status?: number; message?: string };
          if (e.status === 401) throw new CliError("Discord refused the token (401): check DISCORD_TOKEN");
          if (e.status === 403) throw new CliError("Discord refused (403): is the bot in that guild with the applications.commands scope?");
          throw new CliError(`could not register commands: ${e.message ?? String(err)}`);
        }
      }),
    );
}
