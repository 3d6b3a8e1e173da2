/**
 * The llama.cpp source that node-llama-cpp ships as a git bundle.
 *
 * Owns: finding the bundled release (tag + commit) and checking it out once into
 * the build cache (`cacheDir`) so that the fixture-model writer can read the real
 * tokenizer vocabularies (`models/ggml-vocab-*.gguf`) and the native trainer can build from
 * the very same source node-llama-cpp's prebuilt libraries come from.
 */
import { execFile } from "node:child_process";
import os from "node:os";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/** The release node-llama-cpp was built from, read from its package. */
export interface LlamaRelease {
  tag: string;
  commit: string;
  bundlePath: string;
}

/** Repository root (where package.json lives). */
export const projectRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");

/**
 * A directory under the build cache: `$STEERBOT_CACHE_DIR`, else `$XDG_CACHE_HOME/steerbot`,
 * else `~/.cache/steerbot`. It lives outside the checkout on purpose: a fresh clone (CI, a new
 * worktree) reuses the llama.cpp checkout, the native trainer build and the fixture models,
 * each keyed by release + source hash, instead of spending minutes rebuilding them.
 */
export function cacheDir(...parts: string[]): string {
  const root = process.env.STEERBOT_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "steerbot");
  const dir = path.join(root, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function llamaRelease(): Promise<LlamaRelease> {
  // node-llama-cpp's exports map hides package.json; resolve the entry point and walk up.
  let pkgDir = path.dirname(require.resolve("node-llama-cpp"));
  while (!existsSync(path.join(pkgDir, "llama", "llama.cpp.info.json"))) {
    const up = path.dirname(pkgDir);
    if (up === pkgDir) throw new Error("cannot find node-llama-cpp's llama/ folder: is node-llama-cpp installed?");
    pkgDir = up;
  }
  const info = JSON.parse(readFileSync(path.join(pkgDir, "llama", "llama.cpp.info.json"), "utf8")) as { tag: string };
  const bundlePath = path.join(pkgDir, "llama", "gitRelease.bundle");
  const { stdout } = await run("git", ["bundle", "list-heads", bundlePath]);
  const commit = stdout.trim().split(/\s+/)[0];
  if (!commit) throw new Error(`cannot read the llama.cpp bundle at ${bundlePath}`);
  return { tag: info.tag, commit, bundlePath };
}

/**
 * Checks the bundled llama.cpp source out once and returns its directory. The checkout is
 * written to a temporary directory and renamed into place, so an interrupted run never
 * leaves a half checkout that later runs would trust.
 */
export async function llamaSourceDir(): Promise<string> {
  const rel = await llamaRelease();
  const base = cacheDir("llama.cpp");
  const dir = path.join(base, `${rel.tag}-${rel.commit.slice(0, 12)}`);
  if (existsSync(path.join(dir, "CMakeLists.txt"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await run("git", ["clone", "--quiet", rel.bundlePath, tmp], { maxBuffer: 1 << 26 });
  await run("git", ["-C", tmp, "checkout", "--quiet", rel.commit]);
  if (existsSync(path.join(dir, "CMakeLists.txt"))) {
    rmSync(tmp, { recursive: true, force: true }); // another process won the race
  } else {
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  return dir;
}
