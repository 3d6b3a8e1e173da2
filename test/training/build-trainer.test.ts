/**
 * The trainer build cache: keyed by the native sources, reused when nothing changed, and the
 * variant choice (cuda where node-llama-cpp's prebuilt CUDA ggml can run, detected from the device
 * node and the driver/runtime libraries, never from nvcc; or forced by env).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { buildTrainer, chooseVariant, detectCuda, trainerSourceHash, type CudaProbe } from "../../src/training/build-trainer.ts";

test("a second build with unchanged sources reuses the cached binary", async () => {
  const first = await buildTrainer();
  const second = await buildTrainer();
  assert.equal(second.binary, first.binary);
  assert.equal(second.buildSeconds, 0);
  assert.ok(existsSync(second.binary));
  const info = JSON.parse(readFileSync(path.join(path.dirname(second.binary), "build-info.json"), "utf8")) as { hash: string; variant: string };
  assert.ok(path.basename(path.dirname(second.binary)).includes(info.hash));
  assert.equal(info.variant, second.variant);
});

test("the cache key follows the native sources and the variant", () => {
  assert.equal(trainerSourceHash(["a"]), trainerSourceHash(["a"]));
  assert.notEqual(trainerSourceHash(["cpu"]), trainerSourceHash(["cuda"]));
});

test("the cache key follows source edits and ignores documentation edits", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-trainer-src-"));
  try {
    writeFileSync(path.join(dir, "kernel.cpp"), "int f() { return 1; }\n");
    writeFileSync(path.join(dir, "README.md"), "# trainer\n");
    const first = trainerSourceHash([], dir);
    writeFileSync(path.join(dir, "README.md"), "# trainer\n\nNew figures.\n");
    assert.equal(trainerSourceHash([], dir), first, "a README edit keeps the cached build");
    writeFileSync(path.join(dir, "kernel.cpp"), "int f() { return 2; }\n");
    assert.notEqual(trainerSourceHash([], dir), first, "a source edit rebuilds");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("variant: explicit choice wins, env STEERBOT_TRAINER_BACKEND next", () => {
  assert.equal(chooseVariant("cpu"), "cpu");
  assert.equal(chooseVariant("cuda"), "cuda");
  const before = process.env.STEERBOT_TRAINER_BACKEND;
  try {
    process.env.STEERBOT_TRAINER_BACKEND = "cpu";
    assert.equal(chooseVariant("auto"), "cpu");
  } finally {
    if (before === undefined) delete process.env.STEERBOT_TRAINER_BACKEND;
    else process.env.STEERBOT_TRAINER_BACKEND = before;
  }
});

/** A temporary machine: a folder standing in for /dev and library folders holding the named files. */
function fakeRoot(files: { dev?: string[]; lib?: string[]; lib2?: string[] }, prebuilt = true): { probe: CudaProbe; dispose: () => void } {
  const root = mkdtempSync(path.join(os.tmpdir(), "steerbot-cuda-probe-"));
  const dirs = { dev: path.join(root, "dev"), lib: path.join(root, "lib"), lib2: path.join(root, "lib2") };
  for (const [k, names] of Object.entries(files) as [keyof typeof dirs, string[]][]) {
    mkdirSync(dirs[k], { recursive: true });
    for (const n of names) writeFileSync(path.join(dirs[k], n), "");
  }
  return {
    probe: { devDir: dirs.dev, libDirs: [dirs.lib, dirs.lib2, path.join(root, "missing")], prebuiltInstalled: () => prebuilt },
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

test("auto detects CUDA from the device node and the driver + runtime libraries, as node-llama-cpp does, without nvcc", () => {
  const runtime = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"];
  const cases: { name: string; files: Parameters<typeof fakeRoot>[0]; prebuilt?: boolean; cuda: boolean; why?: RegExp }[] = [
    // a GPU machine: device nodes, the driver's libcuda in one folder, the runtime in another; no nvcc anywhere
    { name: "gpu", files: { dev: ["nvidia0", "nvidiactl", "null"], lib: ["libcuda.so.1", "libnvidia-ml.so.1"], lib2: runtime }, cuda: true },
    { name: "wsl", files: { dev: ["dxg"], lib: ["libcuda.so", "libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12"] }, cuda: true },
    // CI images: the toolkit's runtime (and nvcc) without a GPU
    { name: "toolkit, no device", files: { dev: ["null", "zero"], lib: ["libcuda.so.1", ...runtime, "nvcc"] }, cuda: false, why: /no NVIDIA device node/ },
    { name: "device, no driver library", files: { dev: ["nvidia0"], lib: runtime }, cuda: false, why: /not libcuda\.so/ },
    { name: "driver, no runtime", files: { dev: ["nvidiactl"], lib: ["libcuda.so.1"] }, cuda: false, why: /libcudart\.so, libcublas\.so, libcublasLt\.so/ },
    { name: "a similar name is not the library", files: { dev: ["nvidia0"], lib: ["libcuda.so.1.bak", "libcudart.so.10", "libcublas.so.13", "libcublasLt.so.13", "libcuda.so.1x"] }, cuda: false, why: /libcuda\.so, libcudart\.so/ },
    { name: "no prebuilt CUDA package", files: { dev: ["nvidia0"], lib: ["libcuda.so.1", ...runtime] }, prebuilt: false, cuda: false, why: /linux-x64-cuda is not installed/ },
  ];
  for (const c of cases) {
    const { probe, dispose } = fakeRoot(c.files, c.prebuilt ?? true);
    try {
      const d = detectCuda(probe);
      assert.equal(d.cuda, c.cuda, `${c.name}: ${d.reason}`);
      if (c.why) assert.match(d.reason, c.why, c.name);
      if (c.cuda) assert.equal(chooseVariant("auto", probe), "cuda", c.name);
    } finally {
      dispose();
    }
  }
  // an explicit choice and the env variable still win over what is detected
  const { probe, dispose } = fakeRoot({ dev: ["nvidia0"], lib: ["libcuda.so.1", ...runtime] });
  const before = process.env.STEERBOT_TRAINER_BACKEND;
  try {
    assert.equal(chooseVariant("cpu", probe), "cpu");
    process.env.STEERBOT_TRAINER_BACKEND = "cpu";
    assert.equal(chooseVariant("auto", probe), "cpu");
  } finally {
    if (before === undefined) delete process.env.STEERBOT_TRAINER_BACKEND;
    else process.env.STEERBOT_TRAINER_BACKEND = before;
    dispose();
  }
});

test("this machine: the real probe reads /dev and the library folders", () => {
  const d = detectCuda();
  console.log(`detectCuda here: ${d.cuda} (${d.reason})`);
  // the dev machines and CI have no NVIDIA device node: their answer must be cpu, with that reason
  if (!["nvidiactl", "nvidia0", "dxg"].some((n) => existsSync(path.join("/dev", n)))) {
    assert.equal(d.cuda, false);
    assert.match(d.reason, /no NVIDIA device node in \/dev/);
  }
});
