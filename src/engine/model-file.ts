/**
 * Finding the model file the engine loads, and identifying it.
 *
 * Owns: resolving a configured model (a local path, an `hf:` URI or an https URL) to a local
 * GGUF file with node-llama-cpp's `resolveModelFile` (downloads are cached in the models
 * directory and show a progress bar), turning every way that can fail into one error that
 * names the model and says what to do; and the model fingerprint, the sha256 of the file,
 * which ties stored steers and adapters to the exact base model they were made on.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { resolveModelFile } from "node-llama-cpp";
import { cacheDir } from "./llama-source.ts";

/** A model that could not be had; `message` names it and says what to do. */
export class ModelUnavailableError extends Error {
  constructor(
    readonly model: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ModelUnavailableError";
  }
}

export function isRemoteModel(model: string): boolean {
  return /^(hf:|huggingface:|https?:\/\/)/i.test(model);
}

export interface ResolveModelOptions {
  /** Where remote models are cached (default `cacheDir("models")`, i.e. `~/.cache/steerbot/models`). */
  modelsDir?: string;
  /** Allow downloading a remote model that is not cached yet (default true). */
  download?: boolean;
  /** Show a download progress bar on the terminal (default: when stderr is a TTY). */
  progress?: boolean;
  signal?: AbortSignal;
}

/** Resolves `model` to an existing local GGUF file path or throws {@link ModelUnavailableError}. */
export async function resolveModelPath(model: string, options: ResolveModelOptions = {}): Promise<string> {
  if (!model) throw new ModelUnavailableError(model, "no model configured: set `model` to a GGUF file path or an hf: URI");
  if (!isRemoteModel(model)) {
    const file = path.resolve(model);
    if (!existsSync(file)) {
      throw new ModelUnavailableError(
        model,
        `model file not found: ${file}. Point \`model\` at an existing GGUF file, use an hf:<user>/<repo>:<quant> URI, ` +
          "or make a test model with `steerbot fixture-model --out <file>`",
      );
    }
    if (!statSync(file).isFile()) throw new ModelUnavailableError(model, `model path is not a file: ${file}`);
    return file;
  }
  const directory = options.modelsDir ?? cacheDir("models");
  try {
    return await resolveModelFile(model, {
      directory,
      download: options.download === false ? false : "auto",
      cli: options.progress ?? Boolean(process.stderr.isTTY),
      signal: options.signal,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const hint =
      options.download === false
        ? "downloads are disabled; download it once with network access or point `model` at a local file"
        : "check the URI and your network connection (offline machines need a local file path), " +
          "and set HF_TOKEN for gated models";
    throw new ModelUnavailableError(model, `cannot get model ${model} (cache: ${directory}): ${why}. ${hint}`, { cause: err });
  }
}

const memo = new Map<string, Promise<string>>();

/**
 * sha256 (hex) of a file, cached in memory and on disk by real path + size + mtime, because
 * hashing a multi-GB model takes seconds and the file rarely changes.
 */
export async function fileSha256(filePath: string): Promise<string> {
  const real = realpathSync(filePath);
  const st = statSync(real);
  const key = `${real}\0${st.size}\0${st.mtimeMs}`;
  let p = memo.get(key);
  if (!p) {
    p = hashWithDiskCache(real, key);
    memo.set(key, p);
    p.catch(() => memo.delete(key));
  }
  return p;
}

async function hashWithDiskCache(real: string, key: string): Promise<string> {
  const keyHash = createHash("sha256").update(key).digest("hex").slice(0, 32);
  const cacheFile = path.join(cacheDir("fingerprints"), `${keyHash}.txt`);
  if (existsSync(cacheFile)) {
    const [storedKey, digest] = readFileSync(cacheFile, "utf8").split("\n");
    if (storedKey === JSON.stringify(key) && digest && /^[0-9a-f]{64}$/.test(digest)) return digest;
  }
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(real, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  const digest = hash.digest("hex");
  writeFileSync(cacheFile, `${JSON.stringify(key)}\n${digest}\n`);
  return digest;
}
