/**
 * `adapters export --as peft`: a steerbot (llama.cpp) LoRA adapter as a Hugging Face PEFT
 * adapter folder (`adapter_model.safetensors` + `adapter_config.json`) for the original model.
 *
 * Owns: the inverse of llama.cpp's `convert_lora_to_gguf.py` for the architectures listed in
 * `PEFT_ARCHITECTURES`. That converter keeps PEFT's matrices as they are (lora_A `[r, n_in]`,
 * lora_B `[n_out, r]` in torch order are exactly ggml's `[n_in, r]` / `[r, n_out]`), renames
 * `base_model.model.model.layers.N.self_attn.q_proj` → `blk.N.attn_q` (and so on), and for
 * llama-architecture models applies the Q/K row permutation `LlamaModel.permute` (llama.cpp's
 * RoPE wants each head's two halves interleaved) to lora_B of q_proj/k_proj — the permutation
 * commutes with B·A, so only B's rows move. Here: names mapped back, the permutation undone,
 * bytes otherwise copied unchanged (F32 stays F32: nothing is rounded).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { readGgufHeader } from "../engine/gguf/gguf-reader.ts";
import { LORA_TYPES, LoraFileError, pairRank, readLoraGguf, type LoraPair } from "./lora-gguf.ts";
import { writeSafetensors, type SafeTensor, type SafetensorsDtype } from "./safetensors.ts";

/** llama.cpp architectures this export covers, and whether their Q/K rows were permuted. */
export const PEFT_ARCHITECTURES: Record<string, { permuteQK: boolean }> = {
  llama: { permuteQK: true },
  qwen2: { permuteQK: false },
};

/** llama.cpp's per-block weight names → the Hugging Face (Llama/Qwen2) module names. */
export const GGUF_TO_HF_MODULE: Record<string, string> = {
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};

/** `blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj`; undefined for weights PEFT export does not map. */
export function hfModuleName(ggufWeight: string): string | undefined {
  const m = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(ggufWeight);
  const mod = m && GGUF_TO_HF_MODULE[m[2]!];
  return mod ? `model.layers.${m[1]}.${mod}` : undefined;
}

/**
 * Undoes `LlamaModel.permute(w, n_head, n_head_kv)` on the rows of a row-major matrix:
 * llama.cpp's row `h·2·half + 2j + s` came from HF's row `h·2·half + s·half + j`.
 */
export function unpermuteRows(data: Buffer, rows: number, rowBytes: number, nHead: number): Buffer {
  if (rows % (2 * nHead) !== 0) throw new LoraFileError(`cannot undo the Q/K permutation: ${rows} rows for ${nHead} heads`);
  const half = rows / nHead / 2;
  const out = Buffer.alloc(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const hf = h * 2 * half + s * half + j;
        const gg = h * 2 * half + 2 * j + s;
        data.copy(out, hf * rowBytes, gg * rowBytes, (gg + 1) * rowBytes);
      }
    }
  }
  return out;
}

export interface PeftExportOptions {
  adapter: string;
  /** The base model GGUF the adapter was trained on (head counts for the Q/K permutation). */
  baseModel: string;
  outDir: string;
  /** `base_model_name_or_path` in adapter_config.json (a Hugging Face repo id or a local folder). */
  baseModelId?: string;
}

export interface PeftExportResult {
  files: string[];
  arch: string;
  rank: number;
  targetModules: string[];
  baseModelId: string;
  permuted: boolean;
}

/** Writes the PEFT folder; throws LoraFileError for an architecture or a weight it does not cover. */
export function exportPeft(opts: PeftExportOptions): PeftExportResult {
  const lora = readLoraGguf(opts.adapter);
  const arch = PEFT_ARCHITECTURES[lora.arch];
  if (!arch) throw new LoraFileError(`PEFT export covers the ${Object.keys(PEFT_ARCHITECTURES).join(" and ")} architectures; this adapter is for ${lora.arch}`);
  const base = readGgufHeader(opts.baseModel);
  const meta = (k: string) => base.metadata.get(k)?.value;
  const nHead = Number(meta(`${lora.arch}.attention.head_count`));
  const nHeadKv = Number(meta(`${lora.arch}.attention.head_count_kv`) ?? nHead);

  const tensors = new Map<string, SafeTensor>();
  const ranks = new Map<string, number>();
  for (const p of lora.pairs) {
    const module = hfModuleName(p.base);
    if (!module) throw new LoraFileError(`PEFT export does not map ${p.base} (it maps the q/k/v/o and gate/up/down projections)`);
    const dtype = LORA_TYPES[p.a.type as keyof typeof LORA_TYPES] as SafetensorsDtype;
    const r = pairRank(p);
    ranks.set(module, r);
    let bData = p.b.bytes;
    if (arch.permuteQK && (module.endsWith(".q_proj") || module.endsWith(".k_proj"))) {
      bData = unpermuteRows(bData, p.b.dims[1], p.b.dims[0] * elementBytes(p), module.endsWith(".q_proj") ? nHead : nHeadKv);
    }
    tensors.set(`base_model.model.${module}.lora_A.weight`, { dtype, shape: [r, p.a.dims[0]], data: p.a.bytes });
    tensors.set(`base_model.model.${module}.lora_B.weight`, { dtype, shape: [p.b.dims[1], r], data: bData });
  }

  // one r for most modules; PEFT's rank_pattern names the others (its scale is lora_alpha / r per module, as llama.cpp's)
  const counts = new Map<number, number>();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const rank = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
  const rankPattern = Object.fromEntries([...ranks].filter(([, r]) => r !== rank));
  // short names when every layer has the same set (PEFT then adapts exactly these), full names otherwise
  const nLayer = Number(meta(`${lora.arch}.block_count`));
  const short = [...new Set([...ranks.keys()].map((m) => m.split(".").at(-1)!))].sort();
  const everyLayer = short.length * nLayer === ranks.size;
  const targetModules = everyLayer ? short : [...ranks.keys()].sort();
  const baseModelId = opts.baseModelId ?? guessBaseModelId(base.metadata);

  mkdirSync(opts.outDir, { recursive: true });
  const st = path.join(opts.outDir, "adapter_model.safetensors");
  writeSafetensors(st, tensors, { format: "pt" });
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModelId,
    r: rank,
    lora_alpha: lora.alpha,
    target_modules: targetModules,
    rank_pattern: rankPattern,
    alpha_pattern: {},
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
  };
  const cfg = path.join(opts.outDir, "adapter_config.json");
  writeFileSync(cfg, JSON.stringify(config, null, 2) + "\n");
  return { files: [st, cfg], arch: lora.arch, rank, targetModules, baseModelId, permuted: arch.permuteQK };
}

function elementBytes(p: LoraPair): number {
  return p.b.type === 0 ? 4 : 2;
}

/** The Hugging Face id the base GGUF names (its converter writes the source repo when it knows it), else "". */
function guessBaseModelId(metadata: Map<string, { value: unknown }>): string {
  for (const k of ["general.source.huggingface.repository", "general.base_model.0.repo_url", "general.source.url"]) {
    const v = metadata.get(k)?.value;
    if (typeof v === "string" && v) return v.replace(/^https:\/\/huggingface\.co\//, "");
  }
  return ""; // general.name ("Smollm2 135M 8k …") is no id: the user says which with --base-model-id
}
