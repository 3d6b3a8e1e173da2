/**
 * `adapters export` on the fixture models: the merged GGUF (llama.cpp's own llama-export-lora,
 * built from the bundled source) generates what base + adapter generates; the PEFT folder maps
 * back to the very tensors by the converter's own rules; the Ollama folder has the adapter and
 * a Modelfile for the base.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { writeFixtureModel, FIXTURE_SHAPES } from "../../src/engine/fixture/fixture-model.ts";
import { readGgufHeader } from "../../src/engine/gguf/gguf-reader.ts";
import { exportAdapter } from "../../src/training/adapter-export.ts";
import { LoraFileError, readLoraGguf } from "../../src/training/lora-gguf.ts";
import { readSafetensors } from "../../src/training/safetensors.ts";
import { writeRandomLora } from "../helpers/random-lora.ts";
import { realModelOrSkip } from "../helpers/real-model.ts";
import { tinyModelPath } from "../helpers/tiny-model.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-export-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const ALL7 = /\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/;

describe("gguf-merged", () => {
  test("the merged file loads in node-llama-cpp and gives the same greedy tokens as base + adapter (and not the base's)", async () => {
    const model = await tinyModelPath("llama-spm"); // the 32k vocab: a merged file of 17 MB, not 84
    const adapter = path.join(dir, "strong.gguf");
    writeRandomLora(model, adapter, 5, { rank: 4, bStd: 1, targets: /\.(attn_q|attn_output|ffn_down)\.weight$/ });
    const merged = path.join(dir, "merged.gguf");
    const r = await exportAdapter({ format: "gguf-merged", adapter, baseModel: model, out: merged, version: "v1", threads: 1 });
    assert.deepEqual(r.files, [merged]);
    assert.equal(readGgufHeader(merged).metadata.get("general.type")?.value ?? "model", "model");
    const messages = [{ role: "user" as const, content: "Say something." }];
    const ids = async (file: string, lora?: string) => {
      const engine = await Engine.load({ model: file, gpu: false, lora, sequences: 1, threads: 1 });
      try {
        return (await engine.generate({ messages, maxTokens: 16, temperature: 0 })).tokens.map((t) => t.id);
      } finally {
        await engine.dispose();
      }
    };
    const base = await ids(model);
    const withAdapter = await ids(model, adapter);
    assert.notDeepEqual(withAdapter, base, "the adapter must change the output, or the comparison proves nothing");
    assert.deepEqual(await ids(merged), withAdapter);
  });

  test("real model (SmolLM2-135M, Q4_1): the merged file scores the adapter's reply as base + adapter does, not as the base", async (t) => {
    const real = await realModelOrSkip("smollm2-135m");
    if (real.path === undefined) return t.skip(real.skip);
    const base = real.path;
    const adapter = path.join(dir, "smollm2-lora.gguf");
    writeRandomLora(base, adapter, 3, { rank: 4, bStd: 0.3 });
    const merged = path.join(dir, "smollm2-merged.gguf");
    await exportAdapter({ format: "gguf-merged", adapter, baseModel: base, out: merged, version: "v1", threads: 1 });
    const messages = [{ role: "user" as const, content: "Name three colours." }];
    const load = (file: string, lora?: string) => Engine.load({ model: file, gpu: false, lora, sequences: 1, threads: 1 });
    const tuned = await load(base, adapter);
    let reply: string;
    let lpTuned: number;
    try {
      reply = (await tuned.generate({ messages, maxTokens: 12, temperature: 0 })).text;
      lpTuned = (await tuned.scoreSpan({ messages, span: reply })).logprob;
    } finally {
      await tuned.dispose();
    }
    const score = async (file: string) => {
      const e = await load(file);
      try {
        return (await e.scoreSpan({ messages, span: reply })).logprob;
      } finally {
        await e.dispose();
      }
    };
    const lpBase = await score(base);
    const lpMerged = await score(merged);
    console.log(`reply ${JSON.stringify(reply)}: log p base ${lpBase.toFixed(2)}, base + adapter ${lpTuned.toFixed(2)}, merged ${lpMerged.toFixed(2)}`);
    assert.ok(lpTuned - lpBase > 3, "the adapter must change the model, or the comparison proves nothing");
    // llama-export-lora stores a merged quantized weight as F16, and the quantized product at run time
    // rounds activations to 8 bits: close, not bit-equal
    assert.ok(Math.abs(lpMerged - lpTuned) < 0.2 * (lpTuned - lpBase), "the merged file behaves like base + adapter");
  });

  test("an adapter for another model is refused before anything is written", async () => {
    const model = await tinyModelPath("qwen2");
    const other = path.join(dir, "other-base.gguf");
    await writeFixtureModel({ out: other, vocab: "llama-spm", shape: { ...FIXTURE_SHAPES.tiny, nEmbd: 32, nHead: 2, nHeadKv: 1, nFf: 64 }, seed: 2 });
    const adapter = path.join(dir, "for-other.gguf");
    writeRandomLora(other, adapter, 1);
    await assert.rejects(
      exportAdapter({ format: "gguf-merged", adapter, baseModel: model, out: path.join(dir, "never.gguf"), version: "v9" }),
      (e: unknown) => e instanceof LoraFileError && /blk\.0\.attn_q\.weight is 64×64 in the base model but the adapter's A\/B are 32×8 and 8×32/.test(e.message),
    );
  });
});

/**
 * llama.cpp's convert_lora_to_gguf.py, re-implemented for the tensors it would see from PEFT:
 * `base_model.model.` dropped, HF module → GGUF name (the converter's tensor map), lora_A/B
 * kept as they are, and for llama `LlamaModel.permute(B, n_head, n_head_kv)` on q/k's lora_B:
 * `B.reshape(n_head, 2, rows // n_head // 2, r).swapaxes(1, 2).reshape(rows, r)`.
 */
function convertPeftToGguf(peftDir: string, arch: string, nHead: number, nHeadKv: number): Map<string, { dims: number[]; data: Buffer }> {
  const hfToGguf: Record<string, string> = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
  };
  const out = new Map<string, { dims: number[]; data: Buffer }>();
  for (const [name, t] of readSafetensors(path.join(peftDir, "adapter_model.safetensors")).tensors) {
    const m = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$/.exec(name);
    assert.ok(m, `unexpected PEFT tensor name ${name}`);
    const [, layer, module, ab] = m;
    let data = t.data;
    const [rows, cols] = t.shape as [number, number];
    if (arch === "llama" && ab === "B" && (module === "self_attn.q_proj" || module === "self_attn.k_proj")) {
      const heads = module === "self_attn.q_proj" ? nHead : nHeadKv;
      const half = rows / heads / 2;
      const permuted = Buffer.alloc(data.length);
      const rowBytes = cols * 4;
      // new[h][j][s] = old[h][s][j]
      for (let h = 0; h < heads; h++) for (let j = 0; j < half; j++) for (let s = 0; s < 2; s++) {
        const from = (h * 2 + s) * half + j;
        const to = (h * half + j) * 2 + s;
        data.copy(permuted, to * rowBytes, from * rowBytes, (from + 1) * rowBytes);
      }
      data = permuted;
    }
    // numpy shape (rows, cols) is ggml dims [cols, rows]
    out.set(`blk.${layer}.${hfToGguf[module!]}.weight.lora_${ab!.toLowerCase()}`, { dims: [cols, rows], data });
  }
  return out;
}

describe("peft", () => {
  const cases = [
    { arch: "llama", model: () => tinyModelPath("llama-spm") },
    {
      arch: "qwen2",
      model: async () => {
        const file = path.join(dir, "tiny-qwen2-arch.gguf");
        await writeFixtureModel({ out: file, vocab: "llama-spm", shape: { ...FIXTURE_SHAPES.tiny, arch: "qwen2" }, seed: 3 });
        return file;
      },
    },
  ];
  for (const c of cases) {
    test(`${c.arch}: exported to PEFT and converted back by the converter's rules, every tensor is bit-identical`, async () => {
      const model = await c.model();
      const h = readGgufHeader(model);
      assert.equal(h.metadata.get("general.architecture")?.value, c.arch);
      const adapter = path.join(dir, `peft-${c.arch}.gguf`);
      writeRandomLora(model, adapter, 11, { rank: 4, bStd: 0.5, targets: ALL7 });
      const out = path.join(dir, `peft-${c.arch}`);
      await exportAdapter({ format: "peft", adapter, baseModel: model, out, version: "v1", baseModelId: "org/base" });

      const config = JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8"));
      assert.equal(config.peft_type, "LORA");
      assert.equal(config.r, 4);
      assert.equal(config.lora_alpha, 8);
      assert.equal(config.base_model_name_or_path, "org/base");
      assert.deepEqual(config.target_modules, ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);

      const st = readSafetensors(path.join(out, "adapter_model.safetensors")).tensors;
      assert.equal(st.size, 2 * 7 * 2);
      // PEFT's shapes: lora_A [r, in_features], lora_B [out_features, r] (k_proj: 64 → 32)
      assert.deepEqual(st.get("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight")?.shape, [4, 64]);
      assert.deepEqual(st.get("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")?.shape, [32, 4]);
      assert.deepEqual(st.get("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")?.shape, [4, 128]);

      const nHead = Number(h.metadata.get(`${c.arch}.attention.head_count`)?.value);
      const nHeadKv = Number(h.metadata.get(`${c.arch}.attention.head_count_kv`)?.value);
      const back = convertPeftToGguf(out, c.arch, nHead, nHeadKv);
      const original = readLoraGguf(adapter);
      assert.equal(back.size, original.pairs.length * 2);
      for (const p of original.pairs) {
        for (const [half, t] of [["a", p.a], ["b", p.b]] as const) {
          const got = back.get(`${p.base}.lora_${half}`);
          assert.ok(got, `${p.base}.lora_${half} missing after the round trip`);
          assert.deepEqual(got.dims, t.dims, `${p.base}.lora_${half} dims`);
          assert.ok(got.data.equals(t.bytes), `${p.base}.lora_${half} differs after the round trip`);
        }
      }
      // the permutation is really undone for llama (and absent for qwen2): q_proj's B in PEFT is not llama.cpp's row order
      const qB = st.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!.data;
      const ggufQB = original.pairs.find((p) => p.base === "blk.0.attn_q.weight")!.b.bytes;
      assert.equal(qB.equals(ggufQB), c.arch === "qwen2");
    });
  }

  test("an architecture the export does not cover is refused by name", async () => {
    const file = path.join(dir, "phi3-arch.lora.gguf");
    const model = await tinyModelPath("llama-spm");
    writeRandomLora(model, file, 1);
    // same shapes, another arch name: the refusal names what is covered
    const { GgufWriter } = await import("../../src/engine/gguf/gguf-writer.ts");
    const { gv, GgmlType } = await import("../../src/engine/gguf/gguf-types.ts");
    const lora = readLoraGguf(file);
    const w = new GgufWriter().set("general.architecture", gv.str("gemma3")).set("general.type", gv.str("adapter")).set("adapter.type", gv.str("lora")).set("adapter.lora.alpha", gv.f32(16));
    for (const p of lora.pairs) {
      w.addTensor(`${p.base}.lora_a`, p.a.dims, GgmlType.F32, new Float32Array(p.a.bytes.buffer.slice(p.a.bytes.byteOffset, p.a.bytes.byteOffset + p.a.bytes.length)));
      w.addTensor(`${p.base}.lora_b`, p.b.dims, GgmlType.F32, new Float32Array(p.b.bytes.buffer.slice(p.b.bytes.byteOffset, p.b.bytes.byteOffset + p.b.bytes.length)));
    }
    const gemma = path.join(dir, "gemma.lora.gguf");
    w.write(gemma);
    const { exportPeft } = await import("../../src/training/peft-export.ts");
    assert.throws(() => exportPeft({ adapter: gemma, baseModel: model, outDir: path.join(dir, "never") }), /covers the llama and qwen2 architectures; this adapter is for gemma3/);
  });
});
