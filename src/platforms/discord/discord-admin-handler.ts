/**
 * Admin and privacy slash commands and their buttons on Discord.
 *
 * Owns: mapping `/retrain`, `/adapters`, `/status`, `/steers pending`, `/optout`, `/forget` to
 * `core.admin.*`, the approve/reject buttons of pending steers and the confirmation button of
 * `/forget`. Every answer is ephemeral: admin output and privacy actions are nobody else's
 * business. Who may do what is decided by the core; a refusal is just its notice shown here.
 *
 * One exception: `/retrain` runs longer than an interaction token lives (15 minutes), so its
 * progress and its summary (with the loss-curve picture) are normal messages in the channel,
 * where they stay readable; the ephemeral answer only says where to look.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  MessageFlags,
  Routes,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type REST,
} from "discord.js";
import { discordActor } from "./discord-actor.ts";
import { customIds } from "./discord-commands.ts";
import type { DiscordCore } from "./discord-core.ts";
import type { PlatformLog as DiscordLog } from "../platform-log.ts";

const STEERS_PER_MESSAGE = 5; // Discord allows 5 action rows per message: one row per steer.
/** Least time between two edits of the training progress message. */
const PROGRESS_INTERVAL_MS = 1500;

/** Maps admin commands and buttons to `core.admin.*`; answers only the person who asked. */
export class DiscordAdminHandler {
  readonly #core: DiscordCore;
  readonly #log: DiscordLog;
  readonly #rest: REST;

  constructor(core: DiscordCore, log: DiscordLog, rest: REST) {
    this.#core = core;
    this.#log = log;
    this.#rest = rest;
  }

  async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    const actor = discordActor(interaction.user, interaction.member, interaction.guildId);
    const admin = this.#core.admin;
    // Deferring first: the core may take longer than Discord's 3 s to answer.
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    switch (interaction.commandName) {
      case "status":
        return this.#show(interaction, await admin.status(actor));
      case "cancel":
        return this.#show(interaction, await admin.cancelTraining(actor));
      case "optout":
        return this.#show(interaction, await admin.optOut(actor));
      case "adapters": {
        const action = interaction.options.getString("action", true) as "list" | "activate" | "rollback";
        const version = interaction.options.getString("version") ?? undefined;
        return this.#show(interaction, await admin.adapters(actor, action, version));
      }
      case "retrain":
        return this.#retrain(interaction, actor);
      case "steers": {
        const outcome = await admin.pendingSteers(actor);
        if (!outcome.ok || !outcome.steers) return this.#show(interaction, outcome);
        if (outcome.steers.length === 0) {
          await interaction.editReply({ content: outcome.notice ?? "No steers are waiting for review." });
          return;
        }
        const pages = chunk(outcome.steers, STEERS_PER_MESSAGE);
        for (let i = 0; i < pages.length; i++) {
          const page = pages[i];
          // The core's notice already lists the steers; later pages list their own.
          const content = (
            i === 0 && outcome.notice
              ? outcome.notice
              : [i === 0 ? `${outcome.steers.length} steer(s) waiting for review:` : "More steers waiting for review:", ...page.map((s) => `• ${oneLine(s.preview, 300)}`)].join("\n")
          ).slice(0, 2000);
          const components = page.map((s) =>
            new ActionRowBuilder<ButtonBuilder>().addComponents(
              new ButtonBuilder().setCustomId(customIds.review("approve", s.id)).setLabel(`Approve ${short(s.id)}`).setStyle(ButtonStyle.Success),
              new ButtonBuilder().setCustomId(customIds.review("reject", s.id)).setLabel(`Reject ${short(s.id)}`).setStyle(ButtonStyle.Danger),
            ),
          );
          if (i === 0) await interaction.editReply({ content, components });
          else await interaction.followUp({ content, components, flags: MessageFlags.Ephemeral });
        }
        return;
      }
      case "forget": {
        const outcome = await admin.forget(actor, false);
        const confirm = new ActionRowBuilder<ButtonBuilder>().addComponents(
          new ButtonBuilder().setCustomId(customIds.forget(actor.userId)).setLabel("Yes, forget me").setStyle(ButtonStyle.Danger),
        );
        await interaction.editReply({
          content: (outcome.notice ?? "Delete everything stored from you? This cannot be undone.").slice(0, 2000),
          components: outcome.ok ? [confirm] : [],
        });
        return;
      }
      default:
        await interaction.editReply({ content: `Unknown command /${interaction.commandName}.` });
    }
  }

  async onButton(interaction: ButtonInteraction): Promise<void> {
    const parsed = customIds.parse(interaction.customId);
    if (!parsed) return; // not ours (another app's component on a shared message): say nothing
    const actor = discordActor(interaction.user, interaction.member, interaction.guildId);
    if (parsed.kind === "forget") {
      if (parsed.userId !== actor.userId) {
        await interaction.reply({ content: "This button is for someone else.", flags: MessageFlags.Ephemeral });
        return;
      }
      await interaction.deferUpdate();
      const outcome = await this.#core.admin.forget(actor, true);
      await interaction.editReply({ content: (outcome.notice ?? (outcome.ok ? "Done." : "Not done.")).slice(0, 2000), components: [] });
      return;
    }
    await interaction.deferUpdate();
    const outcome = await this.#core.admin.reviewSteer(actor, parsed.steerId, parsed.verdict);
    const line = outcome.notice ?? (outcome.ok ? `Steer \`${parsed.steerId}\`: ${parsed.verdict}d.` : "Not done.");
    if (!outcome.ok) {
      await interaction.followUp({ content: line.slice(0, 2000), flags: MessageFlags.Ephemeral });
      return;
    }
    // Drop the reviewed steer's row of buttons; keep the others for the next click.
    const rows = interaction.message.components
      .map((row) => row.toJSON() as { components?: { custom_id?: string }[] })
      .filter((row) => !row.components?.some((c) => c.custom_id?.endsWith(`:${parsed.steerId}`)));
    await interaction.editReply({ content: `${interaction.message.content}\n${line}`.slice(-2000), components: rows as never });
  }

  /**
   * `/retrain`: progress edits one channel message (at most one edit per interval, the newest
   * text always shown last), the summary is a new channel message with the loss curve attached.
   * A refusal (not an admin, training busy) has no progress and stays ephemeral. Where the bot
   * may not post in the channel, the interaction reply is the fallback while its token lives.
   */
  async #retrain(interaction: ChatInputCommandInteraction, actor: ReturnType<typeof discordActor>): Promise<void> {
    const channelId = interaction.channelId;
    let progressId: string | undefined;
    let channelRefused = false;
    let shown = "";
    let latest = "";
    let lastAt = 0;
    let chain: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const showLatest = async (): Promise<void> => {
      const text = latest;
      if (text === shown) return;
      lastAt = Date.now();
      shown = text;
      const content = `Training (started by ${actor.displayName ?? actor.userId}): ${text}`.slice(0, 2000);
      if (channelRefused) {
        await interaction.editReply({ content }).catch(() => {});
        return;
      }
      try {
        if (!progressId) {
          // Say where to look first, while the interaction token is surely alive.
          await interaction.editReply({ content: "Training started: progress and the summary are posted in this channel." }).catch(() => {});
          const msg = (await this.#rest.post(Routes.channelMessages(channelId), { body: { content, flags: MessageFlags.SuppressEmbeds, allowed_mentions: { parse: [] } } })) as { id: string };
          progressId = msg.id;
        } else {
          await this.#rest.patch(Routes.channelMessage(channelId, progressId), { body: { content, allowed_mentions: { parse: [] } } });
        }
      } catch (err) {
        channelRefused = !progressId;
        this.#log.warn({ channelId, err: String(err) }, "discord: could not post training progress in the channel");
        if (channelRefused) await interaction.editReply({ content }).catch(() => {});
      }
    };
    const flush = (): Promise<void> => (chain = chain.then(showLatest));
    const outcome = await this.#core.admin.retrain(actor, async (text) => {
      latest = text;
      const wait = lastAt + PROGRESS_INTERVAL_MS - Date.now();
      if (wait <= 0) return flush();
      // Too soon: the newest text goes out once the interval is over (earlier ones are skipped).
      timer ??= setTimeout(() => {
        timer = undefined;
        void flush();
      }, wait);
    });
    if (timer) clearTimeout(timer);
    if (latest) {
      const wait = lastAt + PROGRESS_INTERVAL_MS - Date.now();
      if (wait > 0 && latest !== shown) await new Promise((r) => setTimeout(r, wait));
      await flush();
    }
    await chain;
    if (!progressId && !outcome.ok) return this.#show(interaction, outcome); // refused: only the admin sees why
    const content = (outcome.notice ?? (outcome.ok ? "Training done." : "Training failed.")).slice(0, 2000);
    const files = await Promise.all((outcome.attachments ?? []).map(async (path) => ({ name: basename(path), data: await readFile(path) })));
    try {
      if (channelRefused) throw new Error("the channel refused the progress message");
      await this.#rest.post(Routes.channelMessages(channelId), {
        body: { content, flags: MessageFlags.SuppressEmbeds, allowed_mentions: { parse: [] }, attachments: files.map((f, id) => ({ id, filename: f.name })) },
        files,
      });
      // Without progress the ephemeral answer still says "thinking": point it to the summary (the token may be gone).
      if (!progressId) await interaction.editReply({ content: "Training finished: the summary is posted in this channel." }).catch(() => {});
    } catch (err) {
      this.#log.warn({ channelId, err: String(err) }, "discord: could not post the training summary in the channel; answering the interaction instead");
      await this.#show(interaction, outcome).catch((e) => this.#log.warn({ err: String(e) }, "discord: the training summary is lost (interaction token expired?)"));
    }
  }

  async #show(interaction: ChatInputCommandInteraction, outcome: { ok: boolean; notice?: string; attachments?: string[] }): Promise<void> {
    // Pictures (the training loss curve) travel as files with the answer.
    await interaction.editReply({ content: (outcome.notice ?? (outcome.ok ? "Done." : "Not allowed.")).slice(0, 2000), files: outcome.attachments ?? [] });
  }
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function oneLine(text: string, max: number): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Button labels are short (80 chars max): "#12" for numeric ids, a prefix of long ones. */
function short(id: string): string {
  if (/^\d+$/.test(id)) return `#${id}`;
  return id.length > 8 ? id.slice(0, 8) : id;
}
