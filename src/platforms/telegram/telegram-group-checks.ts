/**
 * Whether a stop reaction can work in a group, and telling the group when it cannot.
 *
 * Owns: the per-group check behind "stop by reaction". Telegram sends `message_reaction` updates
 * of a group only to a bot that is an administrator there (Bot API, Update.message_reaction), and
 * a group may restrict which reactions its members can set (`getChat` → `available_reactions`;
 * omitted: every emoji, an empty list: none). The check runs when the bot is added or promoted
 * (`my_chat_member`), the first time it streams in a group, and on start for configured chats.
 * When reactions cannot work, the group is told once, in plain words, what to change; meanwhile
 * the bot's replies there carry an inline Stop button (which needs no admin rights).
 */
import type { Api } from "grammy";
import type { PlatformLog } from "../platform-log.ts";

/** The outcome of one check: whether a stop reaction reaches the bot, and why not. */
export interface GroupVerdict {
  reactionsWork: boolean;
  /** What is wrong, in words for the group (empty when reactions work). */
  problems: string[];
}

export interface GroupChecksOptions {
  api: Api;
  /** The bot's own user id (known once the bot has called getMe). */
  botId: () => number;
  stopReactions: string[];
  log: PlatformLog;
  /** Sends a notice to a chat (through its pacer). */
  notify: (chatId: number, text: string, threadId?: number) => Promise<void>;
}

/** How long a verdict is trusted before the group is checked again (admins change settings). */
const RECHECK_MS = 10 * 60_000;

export class GroupChecks {
  private readonly verdicts = new Map<number, { at: number; verdict: Promise<GroupVerdict> }>();
  /** The problems last told to each chat: each set is said once, not on every reply. */
  private readonly told = new Map<number, string>();

  constructor(private readonly o: GroupChecksOptions) {}

  /** Private chats always get reactions; no check, no call. */
  static isGroup(chat: { type: string }): boolean {
    return chat.type === "group" || chat.type === "supergroup";
  }

  /**
   * The verdict for a group (cached for a while), telling the group once if reactions cannot
   * work. A failed lookup counts as "cannot work" without a notice: the Stop button is offered,
   * and nobody is told something that may be false.
   */
  verdict(chatId: number, threadId?: number): Promise<GroupVerdict> {
    const hit = this.verdicts.get(chatId);
    if (hit && Date.now() - hit.at < RECHECK_MS) return hit.verdict;
    const verdict = this.check(chatId).then(async (v) => {
      await this.tell(chatId, v, threadId);
      return v;
    });
    this.verdicts.set(chatId, { at: Date.now(), verdict });
    if (this.verdicts.size > 10_000) this.verdicts.delete(this.verdicts.keys().next().value as number);
    return verdict;
  }

  /** Forgets a chat's verdict (the bot's rights there changed): the next call checks again. */
  recheck(chatId: number, threadId?: number): Promise<GroupVerdict> {
    this.verdicts.delete(chatId);
    return this.verdict(chatId, threadId);
  }

  private async check(chatId: number): Promise<GroupVerdict> {
    try {
      const [member, chat] = await Promise.all([this.o.api.getChatMember(chatId, this.o.botId()), this.o.api.getChat(chatId)]);
      const problems: string[] = [];
      const stop = this.o.stopReactions[0]!;
      if (member.status !== "administrator" && member.status !== "creator") {
        problems.push(`Telegram only shows reactions to bots that are administrators, so I cannot see a ${stop} here: make me an administrator of this group (no special rights are needed).`);
      }
      const avail = chat.available_reactions;
      if (avail !== undefined) {
        const allowed = new Set(avail.filter((r) => r.type === "emoji").map((r) => (r as { emoji: string }).emoji));
        if (!this.o.stopReactions.some((e) => allowed.has(e))) {
          problems.push(`${stop} is not an allowed reaction in this group: allow it in the group's settings (Reactions).`);
        }
      }
      return { reactionsWork: problems.length === 0, problems };
    } catch (err) {
      this.o.log.warn({ chatId, err: String(err) }, "telegram: group check failed; offering the Stop button");
      return { reactionsWork: false, problems: [] };
    }
  }

  private async tell(chatId: number, v: GroupVerdict, threadId?: number): Promise<void> {
    const said = v.problems.join("\n");
    if (this.told.get(chatId) === said) return;
    this.told.set(chatId, said);
    if (!said) return;
    const text = `Stopping me with a reaction will not work in this group yet.\n${v.problems.map((p) => `• ${p}`).join("\n")}\nUntil then, press the Stop button under my reply to stop it where it goes wrong.`;
    await this.o.notify(chatId, text, threadId);
  }
}
