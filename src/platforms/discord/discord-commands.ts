/**
 * The slash commands steerbot offers on Discord and their registration.
 *
 * Owns: the command definitions (`/ask`, `/retrain`, `/adapters`, `/status`, `/steers pending`,
 * `/optout`, `/forget`), the custom ids of the buttons admin answers carry, and the one REST
 * call that registers the commands (guild-scoped for instant updates while testing, global
 * otherwise). It needs no gateway connection, so `steerbot discord register` can run it alone.
 */
import {
  REST,
  Routes,
  SlashCommandBuilder,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from "discord.js";

/** Builds the JSON definitions of every steerbot slash command. */
export function commandDefinitions(): RESTPostAPIChatInputApplicationCommandsJSONBody[] {
  return [
    new SlashCommandBuilder()
      .setName("ask")
      .setDescription("Ask the model; the answer streams into a thread")
      .addStringOption((o) => o.setName("question").setDescription("Your question").setRequired(true).setMaxLength(4000)),
    new SlashCommandBuilder().setName("retrain").setDescription("Train a new adapter from the approved steers (admins)"),
    new SlashCommandBuilder().setName("cancel").setDescription("Cancel the training run going on (admins)"),
    new SlashCommandBuilder()
      .setName("adapters")
      .setDescription("List, activate or roll back fine-tuned adapters (admins)")
      .addStringOption((o) =>
        o
          .setName("action")
          .setDescription("What to do")
          .setRequired(true)
          .addChoices({ name: "list", value: "list" }, { name: "activate", value: "activate" }, { name: "rollback", value: "rollback" }),
      )
      .addStringOption((o) => o.setName("version").setDescription("Adapter version (for activate)")),
    new SlashCommandBuilder().setName("status").setDescription("Model, adapter, steers, instances and training queue (admins)"),
    new SlashCommandBuilder()
      .setName("steers")
      .setDescription("Review steers (admins)")
      .addSubcommand((s) => s.setName("pending").setDescription("List steers waiting for approval")),
    new SlashCommandBuilder().setName("optout").setDescription("Stop storing your steers from now on"),
    new SlashCommandBuilder().setName("forget").setDescription("Delete every steer and message stored from you"),
  ].map((b) => b.toJSON());
}

/** Button custom ids: `steerbot:<what>:<verb>:<id>`; parsing is strict so foreign ids are ignored. */
export const customIds = {
  review: (verdict: "approve" | "reject", steerId: string) => `steerbot:steer:${verdict}:${steerId}`,
  forget: (userId: string) => `steerbot:forget:confirm:${userId}`,
  parse(
    id: string,
  ): { kind: "review"; verdict: "approve" | "reject"; steerId: string } | { kind: "forget"; userId: string } | undefined {
    const m = /^steerbot:(steer|forget):(approve|reject|confirm):(.{1,60})$/.exec(id);
    if (!m) return undefined;
    if (m[1] === "steer" && (m[2] === "approve" || m[2] === "reject")) return { kind: "review", verdict: m[2], steerId: m[3] };
    if (m[1] === "forget" && m[2] === "confirm") return { kind: "forget", userId: m[3] };
    return undefined;
  },
};

export interface RegisterCommandsOptions {
  /** Register in this guild only (updates at once); without it commands are global (up to an hour). */
  guildId?: string;
  /** Application id; fetched from GET /applications/@me when absent. */
  applicationId?: string;
}

/** Replaces the application's slash commands with steerbot's; returns how many were registered. */
export async function registerCommands(rest: REST, options: RegisterCommandsOptions = {}): Promise<number> {
  const appId = options.applicationId ?? ((await rest.get(Routes.currentApplication())) as { id: string }).id;
  const route = options.guildId ? Routes.applicationGuildCommands(appId, options.guildId) : Routes.applicationCommands(appId);
  const result = (await rest.put(route, { body: commandDefinitions() })) as unknown[];
  return result.length;
}

/** A REST client for a bot token, without a gateway connection (for the CLI). */
export function restFor(token: string, api?: string): REST {
  return new REST(api ? { api } : {}).setToken(token);
}
