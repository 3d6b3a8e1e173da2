/**
 * `adapters export --as ollama`: the folder's files. The TEMPLATE is checked by executing it
 * (a small evaluator for the Go-template constructs it uses) against node-llama-cpp's rendering
 * of the base's own Jinja template, on a conversation the converter never probed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { JinjaTemplateChatWrapper, type ChatHistoryItem } from "node-llama-cpp";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { exportAdapter } from "../../src/training/adapter-export.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-ollama-"));
after(() => rmSync(dir, { recursive: true, force: true }));

type Msg = { role: "system" | "user" | "assistant"; content: string };

/** Executes the Go-template subset: `{{ if not .System }}`, `{{ range .Messages }}`, `{{ if eq .Role "r" }}`, `{{ .Content }}`, `{{ end }}`. */
function execGoTemplate(tpl: string, msgs: Msg[]): string {
  const tokens = tpl.split(/(\{\{.*?\}\})/s).filter((t) => t !== "");
  const system = msgs.find((m) => m.role === "system")?.content ?? "";
  const run = (from: number, ctx: Msg | undefined, out: string[]): number => {
    for (let i = from; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (!t.startsWith("{{")) {
        out.push(t);
        continue;
      }
      const action = t.slice(2, -2).trim();
      if (action === "end") return i;
      if (action === ".Content") out.push(ctx!.content);
      else if (action === "range .Messages") {
        let end = i;
        for (const m of msgs) end = run(i + 1, m, out);
        if (msgs.length === 0) end = run(i + 1, undefined, []);
        i = end;
      } else {
        const cond = action === "if not .System" ? !system : /^if eq \.Role "(\w+)"$/.exec(action)?.[1] === ctx?.role && ctx !== undefined;
        if (!/^if (not \.System|eq \.Role "\w+")$/.test(action)) throw new Error(`unexpected action ${action}`);
        const sink: string[] = [];
        i = run(i + 1, ctx, sink);
        if (cond) out.push(...sink);
      }
    }
    return tokens.length;
  };
  const out: string[] = [];
  run(0, undefined, out);
  return out.join("");
}

function jinja(model: string, msgs: Msg[]): string {
  const h = readGgufHeader(model);
  const list = h.metadata.get("tokenizer.ggml.tokens")!.value as string[];
  const tok = (k: string) => list[Number(h.metadata.get(k)?.value)]!;
  const w = new JinjaTemplateChatWrapper({ template: String(h.metadata.get("tokenizer.chat_template")!.value), trimLeadingWhitespaceInResponses: false });
  const history: ChatHistoryItem[] = msgs.map((m) => (m.role === "system" ? { type: "system", text: m.content } : m.role === "user" ? { type: "user", text: m.content } : { type: "model", response: [m.content] }));
  history.push({ type: "model", response: [] });
  const parts = w.generateContextState({ chatHistory: history }).contextText.toJSON();
  return (Array.isArray(parts) ? parts : [parts]).map((p) => (typeof p === "string" ? p : p.type === "specialTokensText" ? p.value : p.value === "BOS" ? tok("tokenizer.ggml.bos_token_id") : tok("tokenizer.ggml.eos_token_id"))).join("");
}

async function exportFor(vocab: string) {
  const model = await tinyModelPath(vocab);
  const adapter = path.join(dir, `${vocab}.gguf`);
  writeRandomLora(model, adapter, 2);
  const out = path.join(dir, vocab);
  const r = await exportAdapter({ format: "ollama", adapter, baseModel: model, out, version: "v7" });
  const text = readFileSync(path.join(out, "Modelfile"), "utf8");
  return { model, adapter, out, r, text, template: /^TEMPLATE """([\s\S]*?)"""$/m.exec(text)?.[1] };
}

const chat: Msg[] = [
  { role: "user", content: "Name a colour." },
  { role: "assistant", content: "Teal." },
  { role: "user", content: "Another one, please." },
];

test("ChatML base (default system prompt): FROM, ADAPTER, a TEMPLATE that renders as the Jinja one, with and without a system prompt, and the stops", async () => {
  const { model, adapter, out, r, text, template } = await exportFor("qwen2");
  assert.match(text, new RegExp(`^FROM ${model.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  assert.match(text, /^ADAPTER \.\/adapter\.gguf$/m);
  assert.ok(readFileSync(path.join(out, "adapter.gguf")).equals(readFileSync(adapter)), "the folder holds the adapter unchanged");
  assert.equal(r.command, `ollama create steerbot-v7 -f ${path.join(out, "Modelfile")}`);
  assert.ok(template, "a TEMPLATE line");
  assert.equal(execGoTemplate(template, chat), jinja(model, chat));
  const withSystem: Msg[] = [{ role: "system", content: "You answer in one word." }, ...chat];
  assert.equal(execGoTemplate(template, withSystem), jinja(model, withSystem));
  assert.match(execGoTemplate(template, chat), /^<\|im_start\|>system\nYou are a helpful assistant<\|im_end\|>\n<\|im_start\|>user\nName a colour\.<\|im_end\|>\n/);
  const stops = [...text.matchAll(/^PARAMETER stop (.*)$/gm)].map((m) => JSON.parse(m[1]!) as string);
  assert.ok(stops.includes("<|im_end|>") && stops.includes("<|endoftext|>"), `stops: ${stops.join(" ")}`);
});

test("Llama 2 base: the turns are converted, the system prompt (folded into the first turn) is not, and the Modelfile says so", async () => {
  const { model, text, template } = await exportFor("llama-spm");
  assert.ok(template);
  assert.equal(execGoTemplate(template, chat), jinja(model, chat));
  assert.match(text, /# System prompts are not converted: the Jinja template has no system turn of its own/);
  assert.doesNotMatch(template, /"system"/);
  assert.match(text, /^PARAMETER stop "<\/s>"$/m);
});

test("Phi-3 base (no system turn): the template writes BOS and the turns, and the Modelfile says system prompts are not converted", async () => {
  const { model, text, template } = await exportFor("phi-3");
  assert.ok(template);
  assert.equal(execGoTemplate(template, chat), jinja(model, chat));
  assert.match(template, /^<s>\{\{ range \.Messages \}\}/);
  assert.match(text, /# System prompts are not converted: the Jinja template has no system turn of its own/);
  assert.match(text, /^PARAMETER stop "<\|end\|>"$/m);
});

test("a template with per-turn logic gets no TEMPLATE and a comment that says why", async () => {
  const { convertChatTemplate } = await import("../../src/training/ollama-modelfile.ts");
  // numbers its turns: no fixed prefix per role can say that
  const numbered = "{% for m in messages %}{{ loop.index ~ '. ' ~ m['role'] ~ ': ' ~ m['content'] ~ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
  const c = convertChatTemplate(numbered, {});
  assert.equal(c.template, undefined);
  assert.match(c.notes[0]!, /could not be converted to Ollama's Go template syntax: /);
  assert.match(c.notes.join(" "), /No TEMPLATE is written/);
});
