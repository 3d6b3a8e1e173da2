/**
 * `adapters import`: an adapter trained elsewhere (a GGUF LoRA from llama.cpp's
 * `convert_lora_to_gguf.py`, or another steerbot) becomes a stored adapter version.
 *
 * Owns: the checks (a LoRA GGUF whose every A/B pair fits the configured base model: its arch,
 * its weights, their shapes — lora-gguf.ts), the copy into the adapters folder under the
 * version's name (written under a temporary name, then renamed) and what is recorded with it.
 * The version is stored as a `candidate`, like a trained one that has not been activated:
 * `adapters activate` then load-tests it as it does every adapter.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, renameSync } from "node:fs";
import path from "node:path";
import { fileSha256 } from "../engine/model-file.ts";
import { checkLoraFitsBase, LoraFileError, pairRank, readLoraGguf } from "./lora-gguf.ts";

export interface ImportedAdapter {
  version: string;
  filePath: string;
  sha256: string;
  metrics: Record<string, unknown>;
}

/** A version name for an imported adapter: sortable like trained ones, marked as imported. */
export function importVersion(now = new Date()): string {
  return `v${now.toISOString().replace(/[-:T]/g, "").slice(0, 14)}-import-${randomBytes(2).toString("hex")}`;
}

export async function importAdapter(opts: { file: string; baseModel: string; adaptersDir: string; version?: string }): Promise<ImportedAdapter> {
  if (!existsSync(opts.file)) throw new LoraFileError(`${opts.file} not found`);
  const lora = readLoraGguf(opts.file);
  checkLoraFitsBase(lora, opts.baseModel, path.basename(opts.file));
  const version = opts.version ?? importVersion();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(version)) throw new LoraFileError(`version ${version}: use letters, digits, '.', '_' and '-'`);
  mkdirSync(opts.adaptersDir, { recursive: true });
  const filePath = path.join(opts.adaptersDir, `${version}.gguf`);
  if (existsSync(filePath)) throw new LoraFileError(`${filePath} already exists`);
  const tmp = `${filePath}.partial-${process.pid}`;
  copyFileSync(opts.file, tmp);
  renameSync(tmp, filePath);
  const ranks = [...new Set(lora.pairs.map(pairRank))];
  const targets = [...new Set(lora.pairs.map((p) => /^blk\.\d+\.(.+)\.weight$/.exec(p.base)?.[1] ?? p.base))].sort();
  return {
    version,
    filePath,
    sha256: await fileSha256(filePath),
    metrics: { imported: { from: path.resolve(opts.file), arch: lora.arch, alpha: lora.alpha, ranks, targets, tensors: lora.pairs.length } },
  };
}
