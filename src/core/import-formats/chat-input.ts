/**
 * The pieces every foreign import format is made of: chat messages in the shapes other tools
 * write them, prompts that may be a rendered ChatML string, and the localization of a
 * chosen/rejected pair at its first divergence.
 *
 * Owns: {@link Derived} (what one input line becomes: steers, or the reason it cannot be),
 * {@link readContext}, {@link readReply} and {@link localize}. Pure and platform-free.
 */
import { checkSteer, type ChatMessage, type SteerRecord } from "../steer-record.ts";

/** One input line: the steers it gives (all stored in one transaction, or none), or why it gives none. */
export type Derived = { steers: SteerRecord[]; notes: string[] } | { error: string };

/** Roles as other tools spell them (ShareGPT's `from`, OpenAI's `role`). */
const ROLES: Record<string, ChatMessage["role"]> = {
  system: "system",
  user: "user",
  human: "user",
  assistant: "assistant",
  gpt: "assistant",
  model: "assistant",
  bot: "assistant",
};

export class FormatError extends Error {}

/** A chat message `{role, content}` or `{from, value}`; throws a FormatError naming `where`. */
export function readMessage(value: unknown, where: string): ChatMessage {
  if (typeof value !== "object" || value === null) throw new FormatError(`${where}: expected a chat message object`);
  const m = value as Record<string, unknown>;
  const roleName = m.role ?? m.from;
  const content = m.content ?? m.value;
  if (typeof roleName !== "string" || !(roleName in ROLES)) {
    throw new FormatError(`${where}: role ${JSON.stringify(roleName)} is not one of system, user, assistant (or ShareGPT's human, gpt)`);
  }
  if (typeof content !== "string") throw new FormatError(`${where}: content must be a string (text only)`);
  return { role: ROLES[roleName]!, content };
}

export function readMessages(value: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(value)) throw new FormatError(`${where}: expected a list of chat messages`);
  return value.map((m, i) => readMessage(m, `${where}[${i}]`));
}

const CHATML_TURN = /^<\|im_start\|>(system|user|assistant)\n([\s\S]*?)<\|im_end\|>\n?/;

/**
 * A prompt as a context and the assistant text already written after it. A string is one user
 * message, unless it is ChatML as `steerbot export --format trl-dpo|trl-sft` writes it (turns,
 * then an open assistant turn holding the prefix), which is read back into the same context and
 * prefix. A message list ending in an assistant message: that message is the prefix.
 */
export function readContext(prompt: unknown, where = "prompt"): { context: ChatMessage[]; prefix: string } {
  if (typeof prompt === "string") {
    if (!prompt.startsWith("<|im_start|>")) return { context: [{ role: "user", content: prompt }], prefix: "" };
    const context: ChatMessage[] = [];
    let rest = prompt;
    for (let m = CHATML_TURN.exec(rest); m; m = CHATML_TURN.exec(rest)) {
      context.push({ role: m[1] as ChatMessage["role"], content: m[2]! });
      rest = rest.slice(m[0].length);
    }
    if (!rest.startsWith("<|im_start|>assistant\n")) throw new FormatError(`${where}: ChatML prompt does not end in an open assistant turn (<|im_start|>assistant)`);
    return { context, prefix: rest.slice("<|im_start|>assistant\n".length) };
  }
  const messages = readMessages(prompt, where);
  const last = messages.at(-1);
  if (last?.role === "assistant") return { context: messages.slice(0, -1), prefix: last.content };
  return { context: messages, prefix: "" };
}

/** A reply: a string, or TRL's conversational form (a list holding one assistant message). */
export function readReply(value: unknown, where: string): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value) || (typeof value === "object" && value !== null)) {
    const messages = Array.isArray(value) ? readMessages(value, where) : [readMessage(value, where)];
    if (messages.length !== 1 || messages[0]!.role !== "assistant") throw new FormatError(`${where}: expected one assistant message`);
    return messages[0]!.content;
  }
  throw new FormatError(`${where}: expected a string or an assistant message`);
}

const WORD = /[\p{L}\p{N}_]/u;

/**
 * Where `chosen` and `rejected` first differ, moved back to the start of the word it falls in
 * (a steer corrects from a word on, as the chat aligner does) and never inside a surrogate pair.
 */
export function firstDivergence(chosen: string, rejected: string): number {
  const n = Math.min(chosen.length, rejected.length);
  let d = 0;
  while (d < n && chosen[d] === rejected[d]) d++;
  if (d > 0 && /[\uD800-\uDBFF]/.test(chosen[d - 1]!)) d--;
  const midWord = (s: string) => d < s.length && WORD.test(s[d]!);
  if (d > 0 && WORD.test(chosen[d - 1]!) && (midWord(chosen) || midWord(rejected))) {
    while (d > 0 && WORD.test(chosen[d - 1]!)) d--;
  }
  return d;
}

/** A steer record from parts, checked by the steer schema (context, non-empty chosen…). */
export function steerOf(parts: SteerRecord): SteerRecord {
  const checked = checkSteer(parts, "");
  if ("error" in checked) throw new FormatError(checked.error);
  return checked.steer;
}

/** Runs a format's reader, turning its FormatErrors into the line's reason. */
export function derive(read: () => { steers: SteerRecord[]; notes?: string[] }): Derived {
  try {
    const out = read();
    return { steers: out.steers, notes: out.notes ?? [] };
  } catch (e) {
    if (e instanceof FormatError) return { error: e.message };
    throw e;
  }
}

/**
 * A pair as a localized steer after `prefix`: the shared start of the two replies joins the
 * prefix; the rest of each is chosen and rejected. Refuses pairs that differ only in where the
 * reply ends (steerbot trains no end-of-sequence marker, so that cannot be taught).
 */
export function localizedPair(context: ChatMessage[], prefix: string, chosen: string, rejected: string, requireOverlap: boolean): SteerRecord {
  if (chosen === rejected) throw new FormatError("chosen and rejected are the same text: nothing to prefer");
  const d = firstDivergence(chosen, rejected);
  if (requireOverlap && d === 0) throw new FormatError("chosen and rejected share no start: a rewrite of the whole turn, not a correction of it (no prefix overlap to align on)");
  if (d === chosen.length) throw new FormatError("chosen is the start of rejected: they differ only in where the reply ends, which steerbot cannot teach (it trains no end-of-sequence marker)");
  return steerOf({ context, prefix: prefix + chosen.slice(0, d), rejected: rejected.slice(d), chosen: chosen.slice(d) });
}
