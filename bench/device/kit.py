#!/usr/bin/env python3
"""The measurements of the GPU device run (called by bench/device/run.sh after the build).

Owns, in this order (each step has its own time limit; once the run's budget is spent the
remaining steps are recorded as skipped, so the JSON and the table always come back):
1. the benchmark models, written here from a shape and a seed with the patched tree's gguf-py
   (tokenizer copied from its models/ggml-vocab-qwen2.gguf; weights as the TypeScript fixture
   writer draws them: embeddings N(0,1), projections N(0,1/n_in), norms 1, output scaled to
   logits of std 3) -- nothing is carried but the shape;
2. the finite-difference gradient check (`steer-train grad-check`, the trainer test's tolerance)
   and the learning task (the colour task, pre-tokenized in kit/data: held-out preference
   accuracy before and after sft, >= 0.95 wanted) on the tiny shape;
3. per benchmark shape: steer-train's LoRA throughput (bench/train's windows: random tokens, one
   window of ctx tokens per step, rank 16 on q,k,v,o,gate,up,down), llama-finetune (full
   finetune, same windows), and PyTorch + PEFT LoRA (bench/peft/peft_lora.py: same shape,
   rank, targets, window and tokens per step, bf16): tokens/s (steady: after the first step),
   4*P*tokens/s (6*P for full finetune) as a fraction of the bf16 peak (790 TFLOP/s measured on
   the H200; --peak-tflops), peak GPU memory (nvidia-smi, sampled) or RSS;
4. $OUT/device-bench.json and $OUT/device-bench.md.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# shapes: (arch, layers, embd, heads, kv heads, ff, rope theta, rms eps); qwen2 adds q/k/v biases
SHAPES = {
    "tiny": ("llama", 2, 64, 4, 2, 128, 10000.0, 1e-5),            # the tests' fixture shape
    "tiny-qwen2": ("qwen2", 2, 128, 4, 2, 256, 1_000_000.0, 1e-6),  # the dry run's bench shapes
    "small-qwen2": ("qwen2", 4, 256, 4, 2, 512, 1_000_000.0, 1e-6),
    "qwen2-0.5b": ("qwen2", 24, 896, 14, 2, 4864, 1_000_000.0, 1e-6),
    "qwen2-1.5b": ("qwen2", 28, 1536, 12, 2, 8960, 1_000_000.0, 1e-6),
    "qwen2.5-3b": ("qwen2", 36, 2048, 16, 2, 11008, 1_000_000.0, 1e-6),
}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def log(msg: str) -> None:
    print(f"[kit.py {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- models ------------------------------------------------------------------------------------
_VOCABS: dict = {}


def write_model(gguf, path: Path, shape: str, seed: int, vocab_file: Path) -> dict:
    """A loadable GGUF of `shape` with seeded random F32 weights and the qwen2 tokenizer."""
    import numpy as np

    arch, n_layer, n_embd, n_head, n_head_kv, n_ff, theta, eps = SHAPES[shape]
    if str(vocab_file) not in _VOCABS:  # reading 151k token strings takes a while: once
        reader = gguf.GGUFReader(str(vocab_file))
        fields = [f for f in reader.fields.values() if f.name.startswith("tokenizer.")]
        _VOCABS[str(vocab_file)] = ([(f.name, f.contents(), f.types) for f in fields], len(reader.fields["tokenizer.ggml.tokens"].data))
    tok_fields, n_vocab = _VOCABS[str(vocab_file)]
    if path.exists():
        return {"path": str(path), "vocab": n_vocab, "written": False}
    t = time.monotonic()
    rng = np.random.Generator(np.random.PCG64(seed))
    w = gguf.GGUFWriter(str(path) + ".tmp", arch)
    w.add_name(f"steerbot-kit-{shape}-s{seed}")
    w.add_context_length(32768 if arch == "qwen2" else 4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, value, types in tok_fields:
        sub = types[1] if types[0] == gguf.GGUFValueType.ARRAY and len(types) > 1 else None
        w.add_key_value(name, value, types[0], sub_type=sub)
    hd = n_embd // n_head

    def normal(rows: int, cols: int, std: float):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std))

    w.add_tensor("token_embd.weight", normal(n_vocab, n_embd, 1.0))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", normal(n_vocab, n_embd, 3.0 / n_embd**0.5))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(b + "attn_q.weight", normal(n_embd, n_embd, n_embd**-0.5))
        w.add_tensor(b + "attn_k.weight", normal(n_head_kv * hd, n_embd, n_embd**-0.5))
        w.add_tensor(b + "attn_v.weight", normal(n_head_kv * hd, n_embd, n_embd**-0.5))
        if arch == "qwen2":
            for n, d in (("q", n_embd), ("k", n_head_kv * hd), ("v", n_head_kv * hd)):
                w.add_tensor(b + f"attn_{n}.bias", (rng.standard_normal(d, dtype=np.float32) * np.float32(0.02)))
        w.add_tensor(b + "attn_output.weight", normal(n_embd, n_embd, n_embd**-0.5))
        w.add_tensor(b + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(b + "ffn_gate.weight", normal(n_ff, n_embd, n_embd**-0.5))
        w.add_tensor(b + "ffn_up.weight", normal(n_ff, n_embd, n_embd**-0.5))
        w.add_tensor(b + "ffn_down.weight", normal(n_embd, n_ff, n_ff**-0.5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(str(path) + ".tmp", path)
    log(f"model {path.name}: {path.stat().st_size / 2**30:.2f} GiB in {time.monotonic() - t:.1f} s")
    return {"path": str(path), "vocab": n_vocab, "written": True}


def shape_params(shape: str, n_vocab: int) -> dict:
    """Parameters in all, and in matrix products (all but the token embedding table: a lookup)."""
    arch, n_layer, n_embd, n_head, n_head_kv, n_ff, _, _ = SHAPES[shape]
    kv = n_head_kv * (n_embd // n_head)
    layer = 2 * n_embd * n_embd + 2 * kv * n_embd + 3 * n_ff * n_embd
    mm = n_layer * layer + n_vocab * n_embd
    total = mm + n_vocab * n_embd + n_layer * (2 * n_embd + (n_embd + 2 * kv if arch == "qwen2" else 0)) + n_embd
    return {"parameters": total, "matmulParameters": mm}


# ---- processes and GPU memory ------------------------------------------------------------------
class Peaks:
    """Peak GPU `memory.used` (nvidia-smi, above what was used before) and peak RSS of a child
    (/proc/PID/status VmHWM), sampled every 0.2 s while it runs."""

    def __init__(self, gpu: bool):
        self.gpu = gpu
        self.gpu_peak = 0.0
        self.rss_peak = 0.0
        self.base = self.gpu_used() if gpu else 0.0
        self._stop = threading.Event()

    @staticmethod
    def gpu_used() -> float:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
            return float(out.split()[0])
        except Exception:
            return 0.0

    def watch(self, pid: int):
        def loop():
            while not self._stop.wait(0.2):
                try:
                    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
                    if m:
                        self.rss_peak = max(self.rss_peak, int(m[1]) / 1024)
                except OSError:
                    pass
                if self.gpu:
                    self.gpu_peak = max(self.gpu_peak, self.gpu_used())
        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()

    def stop(self):
        self._stop.set()
        self._t.join()


def run(cmd: list, timeout: float, env: dict | None = None, cwd: str | None = None, gpu: bool = False) -> dict:
    """Runs `cmd`; returns exit code, output, wall seconds, peak RSS (MiB) and peak GPU memory (MiB)."""
    t = time.monotonic()
    peaks = Peaks(gpu)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    peaks.watch(p.pid)
    try:
        out, err = p.communicate(timeout=max(1, timeout))
        code = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        code = 124
    peaks.stop()
    return {"code": code, "stdout": out, "stderr": err, "seconds": time.monotonic() - t,
            "peakRssMiB": peaks.rss_peak or None, "gpuPeakMiB": (peaks.gpu_peak - peaks.base) if gpu and peaks.gpu_peak else None}


def events(stdout: str) -> list:
    out = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def failure(r: dict, what: str) -> dict:
    err = next((e for e in events(r["stdout"]) if e.get("type") == "error"), None)
    msg = err["message"] if err else (r["stderr"] or r["stdout"])[-1500:]
    return {"ok": False, "error": f"{what} exited {r['code']}" + (" (time limit)" if r["code"] == 124 else "") + f": {msg}"}


# ---- steps -------------------------------------------------------------------------------------
def grad_check(a, model: str, manifest: dict, limit: float) -> dict:
    g = manifest["gradCheck"]
    r = run([a.trainer, "grad-check", "--model", model, "--data", str(Path(a.kit) / "data" / "grad-check.jsonl"), "--targets", g["targets"],
             "--rank", str(g["rank"]), "--alpha", str(g["alpha"]), "--seed", str(g["seed"]), "--threads", str(a.threads)], limit, gpu=a.gpu)
    if r["code"] != 0:
        return failure(r, "grad-check")
    grads = [e for e in events(r["stdout"]) if e.get("type") == "grad"]
    worst, bad = 0.0, []
    for e in grads:
        err = abs(e["analytic"] - e["numeric"])
        worst = max(worst, err / (abs(e["numeric"]) + 1e-12))
        if err > g["relTol"] * abs(e["numeric"]) + g["absTol"] or abs(e["analyticRepeat"] - e["analytic"]) > 1e-6 + 1e-4 * abs(e["analytic"]) or not e["maxAbsGrad"] > 0:
            bad.append(e["name"])
    ok = len(grads) == 2 * 2 * 7 and not bad
    return {"ok": ok, "tensors": len(grads), "failed": bad, "maxRelError": worst, "seconds": r["seconds"], "gpuPeakMiB": r["gpuPeakMiB"]}


def evaluate(a, model: str, data: Path, adapter: str | None, limit: float) -> dict:
    cmd = [a.trainer, "eval", "--model", model, "--data", str(data), "--threads", str(a.threads)]
    if adapter:
        cmd += ["--adapter", adapter]
    r = run(cmd, limit, gpu=a.gpu)
    if r["code"] != 0:
        return failure(r, "eval")
    ev = [e for e in events(r["stdout"]) if e.get("type") == "eval"]
    margins = [e["chosenMeanLogprob"] - e["rejectedMeanLogprob"] for e in ev if e.get("rejectedMeanLogprob") is not None]
    return {"ok": True, "pairs": len(ev), "accuracy": sum(m > 0 for m in margins) / max(1, len(margins)), "meanMargin": sum(margins) / max(1, len(margins))}


def learn(a, model: str, manifest: dict, budget: Budget) -> dict:
    L = manifest["learn"]
    d = Path(a.kit) / "data"
    base = evaluate(a, model, d / "colour-held.jsonl", None, min(120, budget.left()))
    if not base.get("ok"):
        return base
    out = str(Path(a.work) / "colour-sft.gguf")
    D = manifest["defaults"]
    r = run([a.trainer, "train", "--model", model, "--data", str(d / "colour-train.jsonl"), "--out", out, "--objective", L["objective"],
             "--rank", str(L["rank"]), "--alpha", str(L["alpha"]), "--epochs", str(L["epochs"]), "--lr", str(L["lr"]),
             "--schedule", D["schedule"], "--warmup", str(D["warmup"]), "--weight-decay", str(D["weightDecay"]), "--beta", str(D["beta"]),
             "--grad-accum", str(D["gradAccum"]), "--targets", ",".join(D["targets"]), "--seed", str(D["seed"]), "--threads", str(a.threads)],
            min(300, budget.left()), gpu=a.gpu)
    if r["code"] != 0:
        return failure(r, "train (colour task)")
    ev = events(r["stdout"])
    epochs = [e["loss"] for e in ev if e.get("type") == "epoch"]
    start = next((e for e in ev if e.get("type") == "start"), {})
    tuned = evaluate(a, model, d / "colour-held.jsonl", out, min(120, budget.left()))
    if not tuned.get("ok"):
        return tuned
    return {"ok": tuned["accuracy"] >= L["minHeldOutAccuracy"], "baseAccuracy": base["accuracy"], "accuracy": tuned["accuracy"],
            "baseMargin": base["meanMargin"], "margin": tuned["meanMargin"], "epochLosses": epochs, "trainSeconds": r["seconds"],
            "gpu": start.get("gpu"), "computeType": next((e.get("computeType") for e in ev if e.get("type") == "backward"), None)}


def windows(path: Path, n: int, ctx: int, seed: int = 12345) -> None:
    """bench/train's steer-train data: n windows of ctx random tokens, every position but the first weighted."""
    x = seed
    lines = []
    for _ in range(n):
        toks = []
        for _ in range(ctx):
            x = (x * 1103515245 + 12345) % 2147483648
            toks.append(1000 + x % 20000)
        lines.append(json.dumps({"tokens": toks, "weights": [0] + [1] * (ctx - 1)}))
    path.write_text("\n".join(lines) + "\n")


def ours(a, model: str, data: Path, ctx: int, compute: str, limit: float) -> dict:
    r = run([a.trainer, "train", "--model", model, "--data", str(data), "--out", str(Path(a.work) / "bench-lora.gguf"), "--objective", "sft",
             "--rank", str(a.rank), "--alpha", str(2 * a.rank), "--targets", a.targets, "--epochs", "1", "--grad-accum", "1", "--lr", "1e-4",
             "--threads", str(a.threads), "--compute-type", compute], limit, gpu=a.gpu)
    if r["code"] != 0:
        return failure(r, f"steer-train ({compute})")
    ev = events(r["stdout"])
    prog = [e for e in ev if e.get("type") == "progress"]
    done = next(e for e in ev if e.get("type") == "done")
    tps_step = ctx - 1
    elapsed = lambda p: p["step"] * tps_step / p["tokensPerSecond"]  # noqa: E731 (cumulative rate after each step)
    steady = ((prog[-1]["step"] - prog[0]["step"]) * tps_step / (elapsed(prog[-1]) - elapsed(prog[0]))) if len(prog) > 1 else done["tokensPerSecond"]
    return {"ok": True, "computeType": next((e.get("computeType") for e in ev if e.get("type") == "backward"), compute),
            "gpu": next((e.get("gpu") for e in ev if e.get("type") == "start"), None), "tokensPerSecond": done["tokensPerSecond"],
            "steadyTokensPerSecond": steady, "loss": [prog[0]["loss"], prog[-1]["loss"]] if prog else None, "peakRssMiB": r["peakRssMiB"],
            "gpuPeakMiB": r["gpuPeakMiB"], "seconds": r["seconds"]}


def finetune(a, model: str, ctx: int, n_windows: int, limit: float) -> dict:
    words = ["river", "stone", "light", "garden", "window", "morning", "paper", "silver", "market", "letter", "mountain", "harbor"]
    x = 12345
    text = []
    for _ in range(round(ctx * (n_windows + 1) / 2) + 8):
        x = (x * 1103515245 + 12345) % 2147483648
        text.append(words[x % len(words)])
    tf = Path(a.work) / "finetune.txt"
    tf.write_text(" ".join(text))
    r = run([a.finetune, "-m", model, "-f", str(tf), "-c", str(ctx), "-b", str(ctx), "-ub", str(ctx), "-t", str(a.threads), "-tb", str(a.threads),
             "-ngl", "999" if a.gpu else "0", "--epochs", "1", "-val-split", "0", "-o", str(Path(a.work) / "finetuned.gguf")],
            limit, env={"LLAMA_GRAPH_NODES_SCALE": "4"}, cwd=a.lib, gpu=a.gpu)
    lines = [l for l in re.split(r"[\r\n]", r["stderr"]) if l.startswith("train:")]
    # stopped at its time limit: what it printed until then still measures it
    if r["code"] != 0 and not (r["code"] == 124 and len(lines) > 2):
        return failure(r, "llama-finetune")
    at = []
    for l in lines:
        m = re.search(r"data=(\d+)/(\d+).*?t=(\d+):(\d+):(\d+)", l)
        if m:
            at.append((int(m[1]), int(m[2]), int(m[3]) * 3600 + int(m[4]) * 60 + int(m[5])))
    if not at:
        return {"ok": False, "error": "cannot parse llama-finetune's progress: " + r["stderr"][-800:]}
    ft_ctx = int((re.search(r"n_ctx\s*=\s*(\d+)", r["stderr"]) or [None, ctx])[1])
    last, first = at[-1], next((p for p in at if p[0] == 1), at[0])
    whole = last[1] * ft_ctx / max(1, last[2])
    steady = (last[0] - first[0]) * ft_ctx / max(1, last[2] - first[2]) if last[0] > first[0] else whole
    # its clock ticks in whole seconds: on a fast GPU a window takes well under one, so the
    # wall time of the process (load included) bounds it from below too
    if r["code"] == 124:  # only the windows done so far count
        whole = last[0] * ft_ctx / max(1, last[2])
    return {"ok": True, "cutAtTimeLimit": r["code"] == 124, "ctx": ft_ctx, "windows": last[0], "tokensPerSecond": whole, "steadyTokensPerSecond": steady,
            "clockSeconds": last[2], "wallSeconds": r["seconds"], "wallTokensPerSecond": last[1] * ft_ctx / r["seconds"],
            "peakRssMiB": r["peakRssMiB"], "gpuPeakMiB": r["gpuPeakMiB"]}


def peft(a, shape: str, n_vocab: int, ctx: int, steps: int, limit: float) -> dict:
    arch, n_layer, n_embd, n_head, n_head_kv, n_ff, theta, eps = SHAPES[shape]
    r = run([a.python, str(ROOT / "bench" / "peft" / "peft_lora.py"), "--arch", arch, "--layers", str(n_layer), "--embd", str(n_embd),
             "--heads", str(n_head), "--kv-heads", str(n_head_kv), "--ff", str(n_ff), "--vocab", str(n_vocab), "--rope-theta", str(theta),
             "--rms-eps", str(eps), "--rank", str(a.rank), "--alpha", str(2 * a.rank), "--targets", a.targets, "--seq-len", str(ctx),
             "--steps", str(steps), "--device", "cuda" if a.gpu else "cpu", "--dtype", a.peft_dtype, "--threads", str(a.threads)], limit, gpu=a.gpu)
    ev = events(r["stdout"])
    res = next((e for e in ev if e.get("type") == "peft"), None)
    if r["code"] != 0 or not res:
        err = next((e for e in ev if e.get("type") == "error"), None)
        return {"ok": False, "error": err["message"] if err else f"peft exited {r['code']}: {(r['stderr'] or r['stdout'])[-1500:]}"}
    return {"ok": True, **res, "gpuPeakMiB": r["gpuPeakMiB"]}


# ---- report ------------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    peak = res["peakTflops"]
    rows = ["| shape | trainer | tokens/s steady (whole run) | TFLOP/s | of bf16 peak | memory MiB |", "| --- | --- | --- | --- | --- | --- |"]
    for s in res["shapes"]:
        if "matmulParameters" not in s:
            rows.append(f"| {s['shape']} | all | skipped: {s.get('skipped', '?')} | | | |")
            continue
        mm = s["matmulParameters"]
        for name, r, k in [(f"steer-train LoRA r{res['rank']} ({x.get('computeType', '?')})", x, 4) for x in s.get("ours", [])] + \
                          [("llama-finetune full", s.get("finetune"), 6), (f"PyTorch + PEFT LoRA r{res['rank']} {res['peftDtype']}", s.get("peft"), 4)]:
            if not r:
                continue
            if not r.get("ok"):
                why = re.sub(r"\s+", " ", str(r.get("error", r.get("skipped", "?")))).replace("|", "/")[:200]
                rows.append(f"| {s['shape']} | {name} | failed or skipped: {why} | | | |")
                continue
            st = r["steadyTokensPerSecond"]
            tf = k * mm * st / 1e12
            mem = r.get("gpuPeakMiB") or r.get("peakMemoryMiB") or r.get("peakRssMiB")
            rows.append(f"| {s['shape']} ({mm / 1e6:.0f}M in products) | {name} | {st:.1f} ({r['tokensPerSecond']:.1f}) | {tf:.3g} | {100 * tf / peak:.3g} % | {mem:.0f} |" if mem else
                        f"| {s['shape']} ({mm / 1e6:.0f}M in products) | {name} | {st:.1f} ({r['tokensPerSecond']:.1f}) | {tf:.3g} | {100 * tf / peak:.3g} % | |")
    g, l = res.get("gradCheck", {}), res.get("learn", {})
    head = [f"# Device run: {res['device']} ({res['mode']})", "",
            f"build {res['buildSeconds']} s (ok: {res['buildOk']}); budget {res['budgetSeconds']:.0f} s, used {res['seconds']:.0f} s", "",
            f"- gradient check: {'PASS' if g.get('ok') else 'FAIL'} ({g.get('tensors', 0)} tensors, max relative error {g.get('maxRelError', float('nan')):.2e}{'; ' + g['error'][:300] if g.get('error') else ''})",
            f"- learning task (colour, held-out): {'PASS' if l.get('ok') else 'FAIL'} (accuracy {l.get('baseAccuracy', float('nan')):.3f} -> {l.get('accuracy', float('nan')):.3f}{'; ' + l['error'][:300] if l.get('error') else ''})",
            f"- fractions: 4*P*tokens/s (LoRA) or 6*P*tokens/s (full) of {peak:.0f} TFLOP/s; P = parameters in matrix products", ""]
    return "\n".join(head + rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["cuda", "cpu"], default="cuda")
    for k in ("work", "out", "kit", "src", "lib", "trainer", "finetune"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--build-ok", type=int, default=1)
    ap.add_argument("--build-seconds", type=float, default=0)
    ap.add_argument("--budget", type=float, default=400)
    ap.add_argument("--shapes", help="comma-separated benchmark shapes (default: qwen2-0.5b,qwen2-1.5b; --mode cpu: tiny-qwen2,small-qwen2)")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--step-limit", type=float, default=150, help="seconds one benchmark run may take")
    ap.add_argument("--windows", type=int, default=0, help="windows (steps) per throughput run (default 32 on the GPU, 4 on the CPU)")
    ap.add_argument("--finetune-windows", type=int, default=0,
                    help="llama-finetune's windows (default 400 on the GPU: its clock ticks in whole seconds, so it must run for many; the CPU: --windows)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="q,k,v,o,gate,up,down")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores with CUDA, 1 for the CPU dry run)")
    ap.add_argument("--peak-tflops", type=float, default=790.0, help="the card's dense bf16 peak (H200: 790 measured)")
    ap.add_argument("--peft-dtype", choices=["bf16", "f32"], help="PEFT's weights (default bf16 on the GPU; f32 on the CPU: on an AVX2 CPU without BF16 instructions torch's bf16 ran 24x slower)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: grad,learn,ours,finetune,peft")
    a = ap.parse_args()
    for k in ("work", "out", "kit", "src", "lib", "trainer", "finetune"):  # llama-finetune runs in --lib
        setattr(a, k, str(Path(getattr(a, k)).resolve()))
    a.gpu = a.mode == "cuda"
    a.peft_dtype = a.peft_dtype or ("bf16" if a.gpu else "f32")
    # the dry run on a shared small machine: one thread (ggml's spinning workers crawl on busy cores)
    a.threads = a.threads or ((os.cpu_count() or 1) if a.gpu else 1)
    shapes = (a.shapes or ("qwen2-0.5b,qwen2-1.5b" if a.gpu else "tiny-qwen2,small-qwen2")).split(",")
    n_windows = a.windows or (32 if a.gpu else 4)
    ft_windows = a.finetune_windows or (400 if a.gpu else n_windows)
    skip = set(filter(None, a.skip.split(",")))
    budget = Budget(a.budget)
    t0 = time.monotonic()
    manifest = json.loads((Path(a.kit) / "manifest.json").read_text())
    dev = "cpu"
    if a.gpu:
        try:
            dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout.strip() or "?"
        except Exception as e:
            dev = f"no nvidia-smi ({e})"
    res = {"mode": a.mode, "device": dev, "release": manifest["release"], "trainerSourceHash": manifest["trainerSourceHash"],
           "buildOk": bool(a.build_ok), "buildSeconds": a.build_seconds, "budgetSeconds": a.budget, "peakTflops": a.peak_tflops,
           "rank": a.rank, "targets": a.targets, "ctx": a.ctx, "windows": n_windows, "threads": a.threads, "peftDtype": a.peft_dtype, "shapes": []}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def save():
        res["seconds"] = time.monotonic() - t0
        (out / "device-bench.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / "device-bench.md").write_text(markdown(res))

    sys.path.insert(0, str(Path(a.src) / "gguf-py"))
    import gguf  # the patched tree's own gguf-py

    vocab_file = Path(a.src) / "models" / "ggml-vocab-qwen2.gguf"
    models = Path(a.work) / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not a.build_ok or not Path(a.trainer).exists():
        res["gradCheck"] = res["learn"] = {"ok": False, "error": "the build failed (see device-run.log)"}
        skip |= {"grad", "learn", "ours", "finetune"}
    try:
        tiny = write_model(gguf, models / "tiny-s1.gguf", "tiny", 1, vocab_file)["path"]
        if "grad" not in skip:
            log("gradient check ...")
            res["gradCheck"] = grad_check(a, tiny, manifest, min(120, budget.left()))
            log(f"gradient check: {res['gradCheck']}")
            save()
        if "learn" not in skip:
            log("learning task ...")
            res["learn"] = learn(a, tiny, manifest, budget)
            log(f"learning task: {res['learn']}")
            save()
        for shape in shapes:
            if budget.left() < 20:
                res["shapes"].append({"shape": shape, "skipped": "budget spent"})
                continue
            m = write_model(gguf, models / f"{shape}-s1-f32.gguf", shape, 1, vocab_file)
            s = {"shape": shape, **shape_params(shape, m["vocab"]), "vocab": m["vocab"], "ours": []}
            res["shapes"].append(s)
            data = Path(a.work) / f"windows-{a.ctx}x{n_windows}.jsonl"
            windows(data, n_windows, a.ctx)
            # each run gets at most --step-limit seconds, and never more than the budget has left
            each = lambda: max(5, min(a.step_limit, budget.left() - 5))  # noqa: E731
            if "ours" not in skip:
                for ct in (["auto", "bf16"] if a.gpu else ["auto"]):
                    log(f"{shape}: steer-train ({ct}) ...")
                    r = ours(a, m["path"], data, a.ctx, ct, each())
                    s["ours"].append(r)
                    log(f"  {r}")
                    save()
                    if r.get("ok") and r["computeType"] == "bf16":
                        break  # auto already was bf16
            if "peft" not in skip:
                log(f"{shape}: PyTorch + PEFT ...")
                s["peft"] = peft(a, shape, m["vocab"], a.ctx, n_windows, each())
                log(f"  {s['peft']}")
                save()
            if "finetune" not in skip:
                log(f"{shape}: llama-finetune ...")
                s["finetune"] = finetune(a, m["path"], a.ctx, ft_windows, each())
                log(f"  {s['finetune']}")
                save()
    finally:
        save()
    print(markdown(res))
    ok = res.get("gradCheck", {}).get("ok") and res.get("learn", {}).get("ok")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
