/**
 * Building llama.cpp's own `llama-export-lora` (base + LoRA → one merged GGUF) from the bundled
 * llama.cpp source, for `adapters export --as gguf-merged`.
 *
 * Owns: the build (`native/export-lora/`: only the tool's source and a two-function CPU shim,
 * linked against node-llama-cpp's prebuilt libllama, libllama-common and ggml of the same
 * release — seconds, not the minutes of a llama.cpp build) and its cache, the trainer's cache
 * keyed the same way: `<cache>/trainer/export-lora-<release>-<hash of native/export-lora + commit>-cpu/`.
 * It always uses the CPU libraries: a merge is one pass over the weights, I/O bound.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { cacheDir, llamaRelease, llamaSourceDir, projectRoot } from "../engine/llama-source.ts";
import { listFiles, prebuiltLibDir, runLogged, syncTree, withLock } from "./build-trainer.ts";

const SOURCE_DIR = path.join(projectRoot, "native", "export-lora");

export interface ExportLoraBuild {
  binary: string;
  release: string;
  /** Seconds spent building now; 0 when the cached build was used. */
  buildSeconds: number;
}

function sourceHash(extra: string[]): string {
  const h = createHash("sha256");
  for (const rel of listFiles(SOURCE_DIR)) h.update(rel + "\0").update(readFileSync(path.join(SOURCE_DIR, rel))).update("\0");
  for (const e of extra) h.update(e + "\0");
  return h.digest("hex").slice(0, 12);
}

/** Builds (or finds cached) `llama-export-lora`; see the module comment. */
export async function buildExportLora(options: { log?: (line: string) => void; jobs?: number } = {}): Promise<ExportLoraBuild> {
  const log = options.log ?? (() => {});
  const rel = await llamaRelease();
  const libDir = prebuiltLibDir("cpu");
  const hash = sourceHash([rel.commit, libDir]);
  const outDir = path.join(cacheDir("trainer"), `export-lora-${rel.tag}-${hash}-cpu`);
  const binary = path.join(outDir, "llama-export-lora");
  const done = path.join(outDir, "complete");
  if (existsSync(done)) return { binary, release: rel.tag, buildSeconds: 0 };
  const workDir = cacheDir("trainer", `work-export-lora-${rel.tag}-cpu`);
  return withLock(path.join(workDir, "lock"), async () => {
    if (existsSync(done)) return { binary, release: rel.tag, buildSeconds: 0 };
    const t0 = Date.now();
    const llama = await llamaSourceDir(); // read only: the tool is built unchanged
    // CMake pins a build directory to its source path: configure from a copy at the cache's own path
    const src = path.join(workDir, "src");
    syncTree(SOURCE_DIR, src);
    const buildDir = path.join(workDir, "build");
    const cmakeCache = path.join(buildDir, "CMakeCache.txt");
    if (existsSync(cmakeCache) && !readFileSync(cmakeCache, "utf8").includes(`CMAKE_HOME_DIRECTORY:INTERNAL=${src}\n`)) rmSync(buildDir, { recursive: true, force: true });
    const soname = readdirSync(libDir).find((f) => /^libllama\..*so$/.test(f)) ?? "libllama.so";
    await runLogged("cmake", ["-S", src, "-B", buildDir, "-DCMAKE_BUILD_TYPE=Release", `-DLLAMA_SRC=${llama}`, `-DGGML_LIB_DIR=${libDir}`, `-DLLAMA_SONAME=${soname}`], log);
    await runLogged("cmake", ["--build", buildDir, "-j", String(options.jobs ?? 2), "--target", "llama-export-lora"], log);
    const tmp = `${outDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    copyFileSync(path.join(buildDir, "llama-export-lora"), path.join(tmp, "llama-export-lora"));
    const seconds = (Date.now() - t0) / 1000;
    writeFileSync(path.join(tmp, "build-info.json"), JSON.stringify({ release: rel.tag, commit: rel.commit, hash, libDir, seconds }, null, 2));
    writeFileSync(path.join(tmp, "complete"), "");
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmp, outDir);
    return { binary, release: rel.tag, buildSeconds: seconds };
  });
}
