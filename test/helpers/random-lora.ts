/**
 * A random LoRA adapter GGUF for a model (by default rank 8 on every attn_q / attn_output),
 * shaped from the model's own tensor list: swap tests and the swap benchmark need many distinct
 * adapters without training each, the engine's adapter test one with B = 0 and one with a
 * strong B.
 */
import { SeededRandom } from "../../src/engine/fixture/seeded-random.ts";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter } from "../../src/engine/gguf/gguf-writer.ts";

export interface RandomLoraOptions {
  rank?: number;
  /** Standard deviation of B's entries (default 0.01; 0 gives the base model back). */
  bStd?: number;
  /** Weights to adapt (default attn_q and attn_output). */
  targets?: RegExp;
}

export function writeRandomLora(model: string, file: string, seed: number, options: RandomLoraOptions = {}): void {
  const { rank = 8, bStd = 0.01, targets = /\.(attn_q|attn_output)\.weight$/ } = options;
  const header = readGgufHeader(model);
  const arch = String(header.metadata.get("general.architecture")?.value ?? "llama");
  const w = new GgufWriter();
  w.set("general.architecture", gv.str(arch));
  w.set("general.type", gv.str("adapter"));
  w.set("adapter.type", gv.str("lora"));
  w.set("adapter.lora.alpha", gv.f32(2 * rank));
  const rng = new SeededRandom(seed);
  for (const t of header.tensors) {
    if (!targets.test(t.name)) continue;
    const [nIn, nOut] = [Number(t.dims[0]), Number(t.dims[1])];
    w.addTensor(`${t.name}.lora_a`, [nIn, rank], GgmlType.F32, Float32Array.from({ length: nIn * rank }, () => rng.normal() / Math.sqrt(nIn)));
    w.addTensor(`${t.name}.lora_b`, [rank, nOut], GgmlType.F32, Float32Array.from({ length: rank * nOut }, () => rng.normal() * bStd));
  }
  w.write(file);
}
