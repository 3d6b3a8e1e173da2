/**
 * Building the native trainer (`native/trainer/` → `steer-train`).
 *
 * Owns: choosing the variant (cpu or cuda), preparing a patched copy of the bundled llama.cpp
 * source (our `native/trainer/patches/*.diff`), running CMake against node-llama-cpp's prebuilt
 * ggml libraries of the same release, and caching the result under
 * `<cache>/trainer/<release>-<hash of native/trainer>-<variant>/` (`<cache>` is the project's
 * build cache, see `cacheDir`) so a rebuild happens only when the trainer sources or the patch
 * change. The CMake build directory is kept per release and variant, so such a rebuild is
 * incremental. The CUDA variant links `@node-llama-cpp/linux-x64-cuda`'s prebuilt ggml (CUDA
 * backend included): it compiles no CUDA code, so it needs no nvcc run, and `auto` picks it the way
 * node-llama-cpp decides that its own CUDA binaries can run (see `detectCuda`), never by `nvcc`
 * on PATH (users run the prebuilt CUDA binaries without a toolkit). A lock directory keeps concurrent processes
 * (parallel test files) from building at the same time.
 *
 * Run `npm run build:trainer` to build ahead of time; otherwise the first training run builds.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { cacheDir, llamaRelease, llamaSourceDir, projectRoot } from "../engine/llama-source.ts";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export type TrainerVariant = "cpu" | "cuda";

export interface TrainerBuild {
  /** Path of the `steer-train` executable. */
  binary: string;
  /** Directory of the prebuilt ggml libraries and backends the trainer loads. */
  ggmlLibDir: string;
  variant: TrainerVariant;
  /** Release tag of the llama.cpp source (e.g. `v0.4.0`). */
  release: string;
  /** Seconds spent building now; 0 when the cached build was used. */
  buildSeconds: number;
  /** Path of `llama-finetune` when it was requested. */
  finetuneBinary?: string;
  /** Path of `llama-bench` (linked against node-llama-cpp's prebuilt libllama) when it was requested. */
  llamaBenchBinary?: string;
}

export interface BuildTrainerOptions {
  /** `auto` (default): cuda when `detectCuda` finds an NVIDIA GPU its prebuilt CUDA ggml can run on. Env: STEERBOT_TRAINER_BACKEND. */
  variant?: TrainerVariant | "auto";
  /** Also build llama.cpp's `llama-finetune` (the training benchmark's baseline). */
  finetune?: boolean;
  /** Also build llama.cpp's `llama-bench` (the generation benchmark's baseline). */
  llamaBench?: boolean;
  /** Build output lines (cmake/make) go here; default: discarded. */
  log?: (line: string) => void;
  /** Parallel compile jobs (default 2: the dev machine is shared). */
  jobs?: number;
}

const TRAINER_DIR = path.join(projectRoot, "native", "trainer");

/**
 * What `detectCuda` looks at: a directory's entry names (`[]` when it is missing). The real one
 * reads the file system; tests pass temporary directories as `devDir` and `libDirs` instead.
 */
export interface CudaProbe {
  /** Where device nodes live (`/dev`): `nvidiactl`/`nvidia0` (Linux), `dxg` (WSL). */
  devDir: string;
  /** Folders searched for the driver and runtime libraries, in order. */
  libDirs: string[];
  /** Whether node-llama-cpp's prebuilt CUDA package (`@node-llama-cpp/linux-x64-cuda`) is installed. */
  prebuiltInstalled: () => boolean;
}

export interface CudaDetection {
  cuda: boolean;
  /** Why (or why not), for logs and the benchmark's header. */
  reason: string;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The library folders node-llama-cpp's own CUDA detection searches on Linux
 * (`detectAvailableComputeLayers`: LD_LIBRARY_PATH, CUDA_PATH, the system lib folders, CUDA
 * installs), plus where containers mount the driver (`/usr/local/nvidia/lib64`) and WSL's.
 */
export function cudaLibraryDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = [...(env.LD_LIBRARY_PATH ?? "").split(path.delimiter), ...(env.CUDA_PATH ? [env.CUDA_PATH, path.join(env.CUDA_PATH, "lib64")] : [])];
  const cudaInstalls = entries("/usr/local")
    .filter((d) => /^cuda(-[\d.]+)?$/.test(d))
    .flatMap((d) => [path.join("/usr/local", d, "lib64"), path.join("/usr/local", d, "targets", `${process.arch === "arm64" ? "sbsa" : "x86_64"}-linux`, "lib")]);
  const system = ["/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib"];
  return [...new Set([...fromEnv, ...cudaInstalls, ...system].filter((d) => d))];
}

const defaultProbe = (): CudaProbe => ({
  devDir: "/dev",
  libDirs: cudaLibraryDirs(),
  prebuiltInstalled: () => {
    try {
      prebuiltLibDir("cuda");
      return true;
    } catch {
      return false;
    }
  },
});

/**
 * Whether the CUDA trainer can run here, decided as node-llama-cpp decides for its prebuilt CUDA
 * binaries (`getLlamaGpuTypes("supported")`): the NVIDIA driver library (`libcuda.so[.1]`) and
 * the CUDA runtime the prebuilt ggml links (`libcudart`, `libcublas`, `libcublasLt`, any major
 * version 11–13) in the library folders, plus an NVIDIA device node, and the prebuilt CUDA
 * package installed. `nvcc` plays no part: the prebuilt binaries need no toolkit, and CI images
 * carry a toolkit without a GPU.
 */
export function detectCuda(probe: CudaProbe = defaultProbe()): CudaDetection {
  const dev = entries(probe.devDir);
  const node = dev.find((e) => e === "nvidiactl" || /^nvidia\d+$/.test(e) || e === "dxg");
  if (!node) return { cuda: false, reason: `no NVIDIA device node in ${probe.devDir}` };
  const libs = new Map<string, string>();
  for (const d of probe.libDirs) for (const e of entries(d)) if (!libs.has(e)) libs.set(e, d);
  const find = (base: string, majors: string[]) => [base, ...majors.map((m) => `${base}.${m}`)].find((n) => libs.has(n));
  const need: [string, string[]][] = [
    ["libcuda.so", ["1"]],
    ["libcudart.so", ["11", "12", "13"]],
    ["libcublas.so", ["11", "12", "13"]],
    ["libcublasLt.so", ["11", "12", "13"]],
  ];
  const missing = need.filter(([b, m]) => !find(b, m)).map(([b]) => b);
  if (missing.length) return { cuda: false, reason: `${probe.devDir}/${node} is there, but not ${missing.join(", ")} (searched ${probe.libDirs.length} library folders)` };
  if (!probe.prebuiltInstalled()) return { cuda: false, reason: "an NVIDIA GPU and the CUDA libraries are there, but @node-llama-cpp/linux-x64-cuda is not installed" };
  return { cuda: true, reason: `${probe.devDir}/${node}, ${need.map(([b, m]) => `${find(b, m)} in ${libs.get(find(b, m)!)}`).join(", ")}` };
}

export function chooseVariant(requested: TrainerVariant | "auto" = "auto", probe?: CudaProbe): TrainerVariant {
  const env = process.env.STEERBOT_TRAINER_BACKEND;
  const want = requested !== "auto" ? requested : env === "cpu" || env === "cuda" ? env : "auto";
  if (want !== "auto") return want;
  return detectCuda(probe).cuda ? "cuda" : "cpu";
}

/** node-llama-cpp's prebuilt library folder for a variant. */
export function prebuiltLibDir(variant: TrainerVariant): string {
  const pkg = variant === "cuda" ? "@node-llama-cpp/linux-x64-cuda" : "@node-llama-cpp/linux-x64";
  const sub = variant === "cuda" ? "linux-x64-cuda" : "linux-x64";
  let dir: string;
  try {
    dir = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bins", sub);
  } catch {
    dir = path.join(projectRoot, "node_modules", pkg, "bins", sub);
  }
  if (!existsSync(path.join(dir, "libggml-base.so"))) {
    throw new Error(`prebuilt ggml libraries not found in ${dir} (is ${pkg} installed?)`);
  }
  return dir;
}

export function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full, base));
    else if (entry.isFile()) out.push(path.relative(base, full));
  }
  return out.sort();
}

/**
 * Hash of what the build reads under native/trainer (sources, CMakeLists, patches). Markdown is
 * left out: a README edit must not throw away a cached build (a CPU build takes minutes).
 */
export function trainerSourceHash(extra: string[] = [], dir = TRAINER_DIR): string {
  const h = createHash("sha256");
  for (const rel of listFiles(dir)) {
    if (rel.endsWith(".md")) continue;
    h.update(rel + "\0");
    h.update(readFileSync(path.join(dir, rel)));
    h.update("\0");
  }
  for (const e of extra) h.update(e + "\0");
  return h.digest("hex").slice(0, 12);
}

/** Copies `from` into `to`, rewriting only files whose bytes differ (keeps mtimes for make). */
export function syncTree(from: string, to: string): void {
  const want = new Set(listFiles(from));
  if (existsSync(to)) {
    for (const rel of listFiles(to)) if (!want.has(rel)) unlinkSync(path.join(to, rel));
  }
  for (const rel of want) {
    const src = path.join(from, rel);
    const dst = path.join(to, rel);
    if (existsSync(dst) && statSync(dst).size === statSync(src).size && readFileSync(dst).equals(readFileSync(src))) continue;
    mkdirSync(path.dirname(dst), { recursive: true });
    copyFileSync(src, dst);
  }
}

/** The parts of the llama.cpp tree the build reads (folders, and single files). */
const SOURCE_PARTS = [
  "src",
  "include",
  "ggml/include",
  "ggml/src/ggml-impl.h", // ggml's private layouts, checked by native/trainer/ggml-private.h
  "examples/training",
  "tools/llama-bench",
  "common",
  "vendor/nlohmann",
];

async function preparePatchedSource(workDir: string, log: (l: string) => void): Promise<string> {
  const upstream = await llamaSourceDir();
  const staging = path.join(workDir, `staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  for (const part of SOURCE_PARTS) {
    const from = path.join(upstream, part);
    if (!existsSync(from)) continue;
    const to = path.join(staging, part);
    if (statSync(from).isFile()) {
      mkdirSync(path.dirname(to), { recursive: true });
      copyFileSync(from, to);
    } else {
      syncTree(from, to);
    }
  }
  const patchDir = path.join(TRAINER_DIR, "patches");
  const patches = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith(".diff")).sort() : [];
  for (const p of patches) {
    log(`applying ${p}`);
    try {
      // not `git apply`: inside the project's own git work tree it would resolve paths against it
      await run("patch", ["-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-d", staging, "-i", path.join(patchDir, p)]);
    } catch (e) {
      throw new Error(`patch ${p} does not apply to the bundled llama.cpp source: ${(e as Error).message}`);
    }
  }
  const tree = path.join(workDir, "llama");
  syncTree(staging, tree);
  rmSync(staging, { recursive: true, force: true });
  return tree;
}

export function runLogged(cmd: string, args: string[], log: (l: string) => void, cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    const onData = (buf: Buffer) => {
      for (const line of buf.toString().split("\n")) {
        if (!line) continue;
        log(line);
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(" ")} failed (exit ${code}):\n${tail.join("\n")}`));
    });
  });
}

export async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(path.join(lockDir, "pid"), String(process.pid));
      break;
    } catch {
      // stale lock: the owner died
      try {
        const pid = Number(readFileSync(path.join(lockDir, "pid"), "utf8"));
        if (pid && pid !== process.pid) {
          try {
            process.kill(pid, 0);
          } catch {
            rmSync(lockDir, { recursive: true, force: true });
            continue;
          }
        }
      } catch {
        /* pid file not written yet */
      }
      if (Date.now() - started > 30 * 60_000) throw new Error(`timed out waiting for the build lock ${lockDir}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** Builds (or finds cached) `steer-train`; see the module comment. */
export async function buildTrainer(options: BuildTrainerOptions = {}): Promise<TrainerBuild> {
  const log = options.log ?? (() => {});
  const variant = chooseVariant(options.variant);
  const rel = await llamaRelease();
  const ggmlLibDir = prebuiltLibDir(variant);
  const hash = trainerSourceHash([rel.commit, variant, ggmlLibDir]);
  const outDir = path.join(cacheDir("trainer"), `${rel.tag}-${hash}-${variant}`);
  const binary = path.join(outDir, "steer-train");
  const finetuneBinary = path.join(outDir, "llama-finetune");
  const llamaBenchBinary = path.join(outDir, "llama-bench");
  const result = (buildSeconds: number): TrainerBuild => ({
    binary,
    ggmlLibDir,
    variant,
    release: rel.tag,
    buildSeconds,
    ...(options.finetune ? { finetuneBinary } : {}),
    ...(options.llamaBench ? { llamaBenchBinary } : {}),
  });
  const ready = () =>
    existsSync(path.join(outDir, "complete")) &&
    (!options.finetune || existsSync(finetuneBinary)) &&
    (!options.llamaBench || existsSync(llamaBenchBinary));
  if (ready()) return result(0);

  const workDir = cacheDir("trainer", `work-${rel.tag}-${variant}`);
  return withLock(path.join(workDir, "lock"), async () => {
    if (ready()) return result(0);
    const t0 = Date.now();
    const tree = await preparePatchedSource(workDir, log);
    const buildDir = path.join(workDir, "build");
    // CMake pins a build directory to the source path that configured it; checkouts differ
    // (a CI clone, a worktree), so configure from a copy at a path of the cache's own.
    const trainerSrc = path.join(workDir, "trainer-src");
    syncTree(TRAINER_DIR, trainerSrc);
    const cmakeCache = path.join(buildDir, "CMakeCache.txt");
    if (existsSync(cmakeCache) && !readFileSync(cmakeCache, "utf8").includes(`CMAKE_HOME_DIRECTORY:INTERNAL=${trainerSrc}\n`)) {
      log("the build directory was configured from another source path: starting it afresh");
      rmSync(buildDir, { recursive: true, force: true });
    }
    const soname = readdirSync(ggmlLibDir).find((f) => /^libllama\..*so$/.test(f)) ?? "libllama.so";
    await runLogged(
      "cmake",
      [
        "-S", trainerSrc,
        "-B", buildDir,
        "-DCMAKE_BUILD_TYPE=Release",
        `-DLLAMA_SRC=${tree}`,
        `-DGGML_LIB_DIR=${ggmlLibDir}`,
        `-DLLAMA_SONAME=${soname}`,
        `-DSTEER_BUILD_FINETUNE=${options.finetune ? "ON" : "OFF"}`,
        `-DSTEER_BUILD_LLAMA_BENCH=${options.llamaBench ? "ON" : "OFF"}`,
      ],
      log,
    );
    const targets = ["steer-train", ...(options.finetune ? ["llama-finetune"] : []), ...(options.llamaBench ? ["llama-bench"] : [])];
    await runLogged("cmake", ["--build", buildDir, "-j", String(options.jobs ?? 2), "--target", ...targets], log);

    const tmp = `${outDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    if (existsSync(outDir)) for (const f of readdirSync(outDir)) copyFileSync(path.join(outDir, f), path.join(tmp, f));
    for (const f of [...targets, soname]) copyFileSync(path.join(buildDir, f), path.join(tmp, f));
    const seconds = (Date.now() - t0) / 1000;
    writeFileSync(path.join(tmp, "build-info.json"), JSON.stringify({ variant, release: rel.tag, commit: rel.commit, hash, ggmlLibDir, seconds }, null, 2));
    writeFileSync(path.join(tmp, "complete"), "");
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmp, outDir);
    return result(seconds);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const finetune = process.argv.includes("--finetune");
  const llamaBench = process.argv.includes("--llama-bench");
  const t = Date.now();
  buildTrainer({ finetune, llamaBench, log: (l) => process.stderr.write(l + "\n") }).then(
    (b) => {
      console.log(JSON.stringify({ ...b, wallSeconds: (Date.now() - t) / 1000 }));
    },
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
