/**
 * `adapters export --as ollama`: an Ollama Modelfile for the base model plus the adapter.
 *
 * Owns: converting the base's Jinja chat template into Ollama's Go-template `TEMPLATE` as far
 * as it honestly can be, and the `PARAMETER stop` lines. The conversion does not parse Jinja:
 * it renders the real template (node-llama-cpp's Jinja wrapper) on conversations whose
 * contents are unique markers, reads off the text each role's turn is wrapped in, writes a
 * Go template of the form `range .Messages` → prefix + `.Content` + suffix per role, and then
 * checks it: the Go template's rendering (simulated here: it only concatenates) must equal the
 * Jinja rendering on every probe conversation, character for character. What does not pass
 * (a system prompt folded into the first user turn, per-turn logic, tools) is left out with a
 * comment in the Modelfile saying why, never guessed.
 */
import { JinjaTemplateChatWrapper, type ChatHistoryItem } from "node-llama-cpp";
import { readGgufHeader } from "../engine/gguf/gguf-reader.ts";

type Role = "system" | "user" | "assistant";
/** Texts of the base's BOS/EOS tokens and of its control tokens. */
export interface Tokens {
  bos?: string;
  eos?: string;
  control?: string[];
}
interface Msg {
  role: Role;
  content: string;
}

/** The per-role wrapping read off a template: prefix + content + suffix, then `generation` after the last message. */
export interface TurnFormat {
  user: [string, string];
  assistant: [string, string];
  /** Undefined when the template's system prompt does not fit the per-role form. */
  system?: [string, string];
  /** Text before the first message when the conversation has no system message (a default system prompt). */
  noSystemPreamble: string;
  generation: string;
}

export interface TemplateConversion {
  /** The Go template, or undefined when the Jinja template could not be converted. */
  template?: string;
  format?: TurnFormat;
  /** Modelfile comment lines explaining what was (not) converted. */
  notes: string[];
}

const M = (i: number) => `\u0002m${i}\u0003`; // unique, never produced by a template

/** Renders a Jinja chat template the way node-llama-cpp does (with the generation prompt), special tokens as their text. */
function renderJinja(template: string, msgs: Msg[], tokens: Tokens): string {
  const wrapper = new JinjaTemplateChatWrapper({ template, trimLeadingWhitespaceInResponses: false });
  const chatHistory: ChatHistoryItem[] = msgs.map((m) =>
    m.role === "system" ? { type: "system", text: m.content } : m.role === "user" ? { type: "user", text: m.content } : { type: "model", response: [m.content] },
  );
  chatHistory.push({ type: "model", response: [] });
  const parts = wrapper.generateContextState({ chatHistory }).contextText.toJSON();
  return (Array.isArray(parts) ? parts : [parts])
    .map((p) => {
      if (typeof p === "string") return p;
      if (p.type === "specialTokensText") return p.value;
      const text = p.value === "BOS" ? tokens.bos : p.value === "EOS" ? tokens.eos : undefined;
      if (text === undefined) throw new Error(`the template emits the special token ${p.value}, which has no text here`);
      return text;
    })
    .join("");
}

/** What the Go template renders for `msgs` (it only concatenates, so this is exact). */
export function renderTurnFormat(f: TurnFormat, msgs: Msg[]): string {
  // without a system form the preamble is written always (the Go template cannot tell)
  let out = msgs.some((m) => m.role === "system") && f.system ? "" : f.noSystemPreamble;
  for (const m of msgs) {
    const w = m.role === "system" ? f.system : f[m.role];
    if (w) out += w[0] + m.content + w[1];
  }
  return out + f.generation;
}

/** Splits a rendering at the marker contents; undefined when a marker is missing or out of order. */
function between(text: string, markers: string[]): string[] | undefined {
  const parts: string[] = [];
  let at = 0;
  for (const mk of markers) {
    const i = text.indexOf(mk, at);
    if (i < 0) return undefined;
    parts.push(text.slice(at, i));
    at = i + mk.length;
  }
  parts.push(text.slice(at));
  return parts;
}

function commonPrefix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.slice(0, i);
}

/** Reads the per-role wrapping off the template; undefined if it does not have that form. */
export function inferTurnFormat(template: string, tokens: Tokens): TurnFormat | undefined {
  let t: string[] | undefined;
  try {
    t = between(renderJinja(template, [{ role: "user", content: M(1) }, { role: "assistant", content: M(2) }, { role: "user", content: M(3) }], tokens), [M(1), M(2), M(3)]);
  } catch {
    return undefined;
  }
  if (!t) return undefined;
  const [t0, t1, t2, t3] = t as [string, string, string, string];
  // the user prefix is what precedes both the first and a later user message (their common
  // suffix); whatever comes before it on the first one is a preamble (a default system prompt)
  const userPrefix = turnStart(commonSuffix(t0, t2), tokens.control ?? []);
  const userSuffix = commonPrefix(t1, t3);
  const format: TurnFormat = {
    user: [userPrefix, userSuffix],
    assistant: [t1.slice(userSuffix.length), t2.slice(0, t2.length - userPrefix.length)],
    noSystemPreamble: t0.slice(0, t0.length - userPrefix.length),
    generation: t3.slice(userSuffix.length),
  };
  try {
    const s = between(renderJinja(template, [{ role: "system", content: M(0) }, { role: "user", content: M(1) }], tokens), [M(0), M(1)]);
    if (s && s[1]!.endsWith(userPrefix)) format.system = [s[0]!, s[1]!.slice(0, s[1]!.length - userPrefix.length)];
  } catch {
    /* no system support in this form */
  }
  return format;
}

/**
 * The shortest tail of `text` that starts with a control token (`<|im_start|>user\n` rather than
 * `<|im_end|>\n<|im_start|>user\n`): any split renders the same, this one reads as the turn.
 */
function turnStart(text: string, control: string[]): string {
  for (let i = text.length - 1; i > 0; i--) if (control.some((c) => c && text.startsWith(c, i))) return text.slice(i);
  return text;
}

function commonSuffix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[a.length - 1 - i] === b[b.length - 1 - i]) i++;
  return a.slice(a.length - i);
}

/** Probe conversations the converted template must render exactly as the Jinja one does. */
function probes(withSystem: boolean): Msg[][] {
  const base: Msg[][] = [
    [{ role: "user", content: "Hello there" }],
    [
      { role: "user", content: "What is 2+2?" },
      { role: "assistant", content: "4." },
      { role: "user", content: "And 3+3?" },
    ],
    [
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: "c" },
      { role: "assistant", content: "d" },
      { role: "user", content: "e" },
    ],
  ];
  if (!withSystem) return base;
  return [...base, ...base.map((c) => [{ role: "system" as const, content: "Be brief." }, ...c])];
}

/** Probes for a format: with system prompts too when it converts them. */
function probesFor(f: TurnFormat): Msg[][] {
  return probes(f.system !== undefined);
}

const goLiteral = (s: string) => s; // literal text outside {{ }} is copied as is by Go templates

/** Converts a Jinja chat template to an Ollama Go template as far as it honestly can be (see the module comment). */
export function convertChatTemplate(template: string | undefined, tokens: Tokens): TemplateConversion {
  if (!template) return { notes: ["The base model has no chat template (tokenizer.chat_template): no TEMPLATE written; Ollama will send prompts as they are."] };
  const format = inferTurnFormat(template, tokens);
  const refuse = (why: string): TemplateConversion => ({
    notes: [
      `The base model's Jinja chat template could not be converted to Ollama's Go template syntax: ${why}.`,
      "No TEMPLATE is written (Ollama would then send the raw prompt): write one by hand from the base model's",
      "tokenizer.chat_template, or FROM an Ollama library model of the same base, which carries its template.",
    ],
  });
  if (!format) return refuse("it does not wrap each message in a fixed prefix and suffix per role (it has per-turn logic)");
  const pieces = [...format.user, ...format.assistant, ...(format.system ?? []), format.noSystemPreamble, format.generation];
  if (pieces.some((p) => p.includes("{{") || p.includes('"""'))) return refuse('its text contains "{{" or """, which the Modelfile cannot quote');
  for (const msgs of probesFor(format)) {
    let jinja: string;
    try {
      jinja = renderJinja(template, msgs, tokens);
    } catch (e) {
      return refuse(`rendering it failed (${(e as Error).message})`);
    }
    if (jinja !== renderTurnFormat(format, msgs)) return refuse(`a ${msgs.length}-message conversation renders differently in the per-role form (the template changes turns beyond wrapping them)`);
  }
  const branch = (role: Role, w: [string, string]) => `{{ if eq .Role "${role}" }}${goLiteral(w[0])}{{ .Content }}${goLiteral(w[1])}{{ end }}`;
  const preamble = !format.noSystemPreamble ? "" : !format.system ? goLiteral(format.noSystemPreamble) : `{{ if not .System }}${goLiteral(format.noSystemPreamble)}{{ end }}`;
  const template_ = `${preamble}{{ range .Messages }}${format.system ? branch("system", format.system) : ""}${branch("user", format.user)}${branch("assistant", format.assistant)}{{ end }}${goLiteral(format.generation)}`;
  const notes = ["TEMPLATE: converted from the base model's Jinja chat template; it renders the same text as the Jinja one on"];
  notes.push(`${format.system ? "conversations with and without a system prompt" : "conversations without a system prompt"} (checked when this file was written).`);
  if (format.noSystemPreamble && format.system) notes.push("Without a system prompt the template writes the base's default one (the `if not .System` part), as the Jinja template does.");
  if (!format.system) notes.push("System prompts are not converted: the Jinja template has no system turn of its own (it folds a system prompt into a user turn, or node-llama-cpp does), which this per-role form cannot express, so a SYSTEM line would be dropped.");
  if (tokens.bos && pieces.some((p) => p.includes(tokens.bos!))) notes.push(`The template writes the BOS token ${tokens.bos} itself, as the Jinja template does.`);
  return { template: template_, format, notes };
}

/** Texts of the base's end-of-generation tokens (EOS, EOT) and of control tokens that end an assistant turn. */
export function stopTokens(baseModel: string, format?: TurnFormat): { stops: string[] } & Tokens {
  const h = readGgufHeader(baseModel);
  const list = h.metadata.get("tokenizer.ggml.tokens")?.value as string[] | undefined;
  const types = h.metadata.get("tokenizer.ggml.token_type")?.value as number[] | undefined;
  const tok = (key: string) => {
    const id = h.metadata.get(key)?.value;
    return typeof id === "number" && list ? list[id] : undefined;
  };
  const stops = new Set<string>();
  for (const k of ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]) {
    const t = tok(k);
    if (t) stops.add(t);
  }
  // control tokens that close an assistant turn (ChatML's <|im_end|>, Llama 3's <|eot_id|>): those
  // between an assistant message's content and the next user message's
  const end = format ? format.assistant[1] + format.user[0] : undefined;
  if (end && list && types) {
    for (let i = 0; i < list.length; i++) if (types[i] === 3 && list[i] && end.includes(list[i]!)) stops.add(list[i]!);
  }
  const control = list && types ? list.filter((t, i) => types[i] === 3 && t) : [];
  return { stops: [...stops], bos: tok("tokenizer.ggml.bos_token_id"), eos: tok("tokenizer.ggml.eos_token_id"), control };
}

/** The Modelfile text: FROM the base file, ADAPTER the file beside it, TEMPLATE and stops. */
export function buildModelfile(opts: { baseModel: string; adapterFile: string; version: string }): { text: string; conversion: TemplateConversion; stops: string[] } {
  const h = readGgufHeader(opts.baseModel);
  const jinja = h.metadata.get("tokenizer.chat_template")?.value as string | undefined;
  const first = stopTokens(opts.baseModel);
  const conversion = convertChatTemplate(jinja, first);
  const { stops } = stopTokens(opts.baseModel, conversion.format);
  const q = (s: string) => JSON.stringify(s); // a quoted Modelfile argument
  const lines = [
    `# Ollama Modelfile for steerbot adapter ${opts.version} (written by steerbot adapters export --as ollama)`,
    "# FROM: the base model file the adapter was trained on; ADAPTER: the LoRA, relative to this file.",
    `FROM ${opts.baseModel}`,
    `ADAPTER ${opts.adapterFile}`,
    "",
    ...conversion.notes.map((n) => `# ${n}`),
    ...(conversion.template ? [`TEMPLATE """${conversion.template}"""`] : []),
    "",
    "# stop: the base model's end-of-sequence / end-of-turn tokens",
    ...stops.map((s) => `PARAMETER stop ${q(s)}`),
    "",
  ];
  return { text: lines.join("\n"), conversion, stops };
}
