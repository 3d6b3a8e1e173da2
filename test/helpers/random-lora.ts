/**
 * A random LoRA adapter GGUF for a model (rank 8 on every attn_q / attn_output), shaped from
 * the model's own tensor list: swap tests and the swap benchmark need many distinct adapters
 * without training each.
 */
import { SeededRandom } from "../../src/engine/fixture/seeded-random.ts";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter } from "../../src/engine/gguf/gguf-writer.ts";

export function writeRandomLora(model: string, file: string, seed: number, rank = 8): void {
  const header = readGgufHeader(model);
  const arch = String(header.metadata.get("general.architecture")?.value ?? "llama");
  const w = new GgufWriter();
  w.set("general.architecture", gv.str(arch));
  w.set("general.type", gv.str("adapter"));
  w.set("adapter.type", gv.str("lora"));
  w.set("adapter.lora.alpha", gv.f32(2 * rank));
  const rng = new SeededRandom(seed);
  for (const t of header.tensors) {
    if (!/\.(attn_q|attn_output)\.weight$/.test(t.name)) continue;
    const [nIn, nOut] = [Number(t.dims[0]), Number(t.dims[1])];
    w.addTensor(`${t.name}.lora_a`, [nIn, rank], GgmlType.F32, Float32Array.from({ length: nIn * rank }, () => rng.normal() / Math.sqrt(nIn)));
    w.addTensor(`${t.name}.lora_b`, [rank, nOut], GgmlType.F32, Float32Array.from({ length: rank * nOut }, () => rng.normal() * 0.01));
  }
  w.write(file);
}
