/**
 * `adapters export`: a stored adapter in a form other tools load.
 *
 * Owns: the three targets and their files — `gguf-merged` (base + adapter merged into one
 * GGUF by llama.cpp's own `llama-export-lora`, built on first use, see build-export-lora.ts),
 * `ollama` (the adapter GGUF beside a Modelfile, see ollama-modelfile.ts) and `peft`
 * (see peft-export.ts). Each first checks that the adapter fits the base model it is exported
 * with (lora-gguf.ts), and a merged file is written under a temporary name and renamed into
 * place, so a failed merge never leaves a file that looks finished.
 */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { buildExportLora } from "./build-export-lora.ts";
import { checkLoraFitsBase, readLoraGguf } from "./lora-gguf.ts";
import { buildModelfile } from "./ollama-modelfile.ts";
import { exportPeft } from "./peft-export.ts";

const run = promisify(execFile);

export const EXPORT_FORMATS = ["gguf-merged", "ollama", "peft"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportAdapterOptions {
  format: ExportFormat;
  adapter: string;
  baseModel: string;
  /** A file for gguf-merged, a folder for ollama and peft. */
  out: string;
  /** Adapter version (named in the Modelfile). */
  version: string;
  /** PEFT only: `base_model_name_or_path`. */
  baseModelId?: string;
  threads?: number;
  log?: (line: string) => void;
}

export interface ExportAdapterResult {
  files: string[];
  /** For ollama: the command that creates the model. */
  command?: string;
  /** Lines worth telling the user (what was not converted, what to set). */
  notes: string[];
}

export async function exportAdapter(opts: ExportAdapterOptions): Promise<ExportAdapterResult> {
  checkLoraFitsBase(readLoraGguf(opts.adapter), opts.baseModel, `adapter ${opts.version}`);
  if (opts.format === "gguf-merged") return exportMerged(opts);
  if (opts.format === "ollama") return exportOllama(opts);
  const r = exportPeft({ adapter: opts.adapter, baseModel: opts.baseModel, outDir: opts.out, baseModelId: opts.baseModelId });
  const notes = [`${r.arch} architecture, rank ${r.rank}, modules ${r.targetModules.join(", ")}${r.permuted ? "; llama.cpp's Q/K row permutation undone" : ""}`];
  if (!r.baseModelId) notes.push("adapter_config.json has no base_model_name_or_path (the GGUF names no source repo): pass --base-model-id ORG/NAME, or set it there");
  else notes.push(`base_model_name_or_path: ${r.baseModelId}`);
  return { files: r.files, notes };
}

async function exportMerged(opts: ExportAdapterOptions): Promise<ExportAdapterResult> {
  const build = await buildExportLora({ log: opts.log });
  mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  const tmp = `${opts.out}.partial-${process.pid}`;
  const args = ["-m", opts.baseModel, "--lora", opts.adapter, "-o", tmp];
  if (opts.threads) args.push("-t", String(opts.threads));
  try {
    await run(build.binary, args, { maxBuffer: 1 << 26 });
    if (!existsSync(tmp) || statSync(tmp).size === 0) throw new Error("llama-export-lora wrote no file");
    renameSync(tmp, opts.out);
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as Error & { stdout?: string; stderr?: string };
    const tail = `${err.stdout ?? ""}\n${err.stderr ?? ""}`.trim().split("\n").slice(-8).join("\n");
    throw new Error(`llama-export-lora failed: ${err.message.split("\n")[0]}${tail ? `\n${tail}` : ""}`);
  }
  return { files: [path.resolve(opts.out)], notes: [`merged with llama.cpp ${build.release}'s llama-export-lora`] };
}

function exportOllama(opts: ExportAdapterOptions): ExportAdapterResult {
  mkdirSync(opts.out, { recursive: true });
  const adapterFile = path.join(opts.out, "adapter.gguf");
  copyFileSync(opts.adapter, adapterFile);
  const mf = buildModelfile({ baseModel: path.resolve(opts.baseModel), adapterFile: "./adapter.gguf", version: opts.version });
  const modelfile = path.join(opts.out, "Modelfile");
  writeFileSync(modelfile, mf.text);
  const name = `steerbot-${opts.version}`.toLowerCase().replace(/[^a-z0-9._-]/g, "-");
  return {
    files: [adapterFile, modelfile],
    command: `ollama create ${name} -f ${path.resolve(modelfile)}`,
    notes: mf.conversion.template ? [] : ["the chat template could not be converted: see the comment in the Modelfile"],
  };
}
