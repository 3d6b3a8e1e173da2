#!/usr/bin/env python3
"""PyTorch + PEFT LoRA on a random-weight model of a given shape: the baseline a user would pick.

Shared by `bench/train.ts` (CPU, from the benchmark-only venv `bench/.venv`) and the GPU device
kit (`bench/device/kit.py`). It builds the model from a transformers config (Qwen2 or Llama,
random weights from a seed: nothing is downloaded), wraps it with PEFT LoRA on the same targets,
rank and alpha as steer-train, and trains it on random token windows with AdamW: one window of
`--seq-len` tokens per step (the loss counts `seq-len - 1` of them, as steer-train's windows and
llama-finetune's do). Prints one JSON line:

  {"type":"peft", "tokensPerSecond", "steadyTokensPerSecond" (after the first step, which pays
   one-time setup), "peakMemoryMiB" (GPU: torch's max allocated; CPU: peak RSS), "loss": [first,
   last], "parameters", "trainableParameters", "versions", ...}

Run: python3 bench/peft/peft_lora.py --arch qwen2 --layers 24 --embd 896 --heads 14 --kv-heads 2
     --ff 4864 --vocab 151936 --rank 16 --alpha 32 --targets q,k,v,o,gate,up,down --seq-len 256
     --steps 8 --device cpu|cuda --dtype bf16|f32 [--threads N] [--seed 1]
"""
import argparse
import json
import resource
import sys
import time

TARGET_MODULES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--embd", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, required=True)
    ap.add_argument("--ff", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--rope-theta", type=float, default=1_000_000.0)
    ap.add_argument("--rms-eps", type=float, default=1e-6)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--targets", default="q,k,v,o,gate,up,down")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1, help="windows per step (tokens per step = batch x (seq-len - 1))")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    try:
        import torch
        import peft
        import transformers
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # the caller prints this as the reason the baseline is skipped
        print(json.dumps({"type": "error", "code": "missing_package", "message": str(e)}))
        return 3

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    common = dict(
        vocab_size=a.vocab, hidden_size=a.embd, intermediate_size=a.ff, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, rms_norm_eps=a.rms_eps,
        rope_theta=a.rope_theta, max_position_embeddings=max(4096, a.seq_len), tie_word_embeddings=False,
        use_cache=False,
    )
    if a.arch == "qwen2":
        config = transformers.Qwen2Config(**common)
    else:
        config = transformers.LlamaConfig(**common, attention_bias=False, mlp_bias=False)
    t_load = time.perf_counter()
    with torch.device(a.device):
        # transformers 5 names it `dtype` (4.x: `torch_dtype`)
        kw = {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", **kw)
    targets = [TARGET_MODULES[t] for t in a.targets.split(",")]
    model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=a.alpha, target_modules=targets, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=0.0)
    load_s = time.perf_counter() - t_load

    gen = torch.Generator().manual_seed(a.seed)
    on_cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, step_s = [], []
    tokens_per_step = a.batch * (a.seq_len - 1)
    for _ in range(a.steps):
        ids = torch.randint(1000, min(a.vocab, 21000), (a.batch, a.seq_len), generator=gen).to(a.device)
        sync()
        t = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        step_s.append(time.perf_counter() - t)
        losses.append(float(out.loss.detach()))
    total = sum(step_s)
    steady = (len(step_s) - 1) * tokens_per_step / sum(step_s[1:]) if len(step_s) > 1 else tokens_per_step / total
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "type": "peft", "device": a.device, "dtype": a.dtype, "threads": torch.get_num_threads(), "arch": a.arch,
        "rank": a.rank, "alpha": a.alpha, "targets": a.targets, "seqLen": a.seq_len, "batch": a.batch, "steps": a.steps,
        "tokensPerStep": tokens_per_step, "parameters": params, "trainableParameters": sum(p.numel() for p in trainable),
        "tokensPerSecond": a.steps * tokens_per_step / total, "steadyTokensPerSecond": steady,
        "stepSeconds": step_s, "loadSeconds": load_s, "peakMemoryMiB": peak, "loss": [losses[0], losses[-1]],
        "versions": {"torch": torch.__version__, "peft": peft.__version__, "transformers": transformers.__version__},
        "gpu": torch.cuda.get_device_name() if on_cuda else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
