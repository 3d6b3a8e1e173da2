/**
 * A LoRA adapter GGUF as data: its A/B pairs with their raw bytes, and the checks that it fits a
 * base model.
 *
 * Owns: reading an adapter file (ours, or one made by llama.cpp's `convert_lora_to_gguf.py`)
 * into `{ arch, alpha, pairs }`, refusing what is not a plain LoRA (other tensor kinds, a
 * missing half, ranks that disagree), and `checkLoraFitsBase`: the same arch and, per pair,
 * the shapes of the base weight it adapts. A converted adapter carries no fingerprint of the
 * base file, so shapes (and arch) are what can be checked: they are what llama.cpp itself
 * checks when it loads one, with a far less readable error.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { readGgufHeader, type GgufFile } from "../engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../engine/gguf/gguf-types.ts";
import { GgufWriter } from "../engine/gguf/gguf-writer.ts";

/** The ggml tensor types an adapter may hold here (F32 is what our trainer writes). */
export const LORA_TYPES = { 0: "F32", 1: "F16", 30: "BF16" } as const satisfies Record<number, string>;
const ELEMENT_BYTES: Record<number, number> = { 0: 4, 1: 2, 30: 2 };

export interface LoraTensor {
  /** ggml order: dims[0] is the contiguous one. */
  dims: [number, number];
  /** ggml type code: 0 F32, 1 F16, 30 BF16. */
  type: number;
  /** The tensor's bytes as stored (little-endian). */
  bytes: Buffer;
}

export interface LoraPair {
  /** Name of the base weight, e.g. `blk.0.attn_q.weight`. */
  base: string;
  /** `<base>.lora_a`: ggml dims [n_in, rank]. */
  a: LoraTensor;
  /** `<base>.lora_b`: ggml dims [rank, n_out]. */
  b: LoraTensor;
}

export interface LoraFile {
  arch: string;
  alpha: number;
  pairs: LoraPair[];
  header: GgufFile;
}

export class LoraFileError extends Error {}

/** Rank of a pair (lora_a's second ggml dim). */
export const pairRank = (p: LoraPair): number => p.a.dims[1];

/** Reads a LoRA adapter GGUF with its tensor data (adapters are small: megabytes). */
export function readLoraGguf(file: string): LoraFile {
  let header: GgufFile;
  try {
    header = readGgufHeader(file);
  } catch (e) {
    throw new LoraFileError(`${file}: not a readable GGUF file (${(e as Error).message})`);
  }
  const meta = (k: string) => header.metadata.get(k)?.value;
  if (meta("general.type") !== "adapter" || meta("adapter.type") !== "lora") {
    throw new LoraFileError(`${file} is not a LoRA adapter GGUF (general.type=${String(meta("general.type"))}, adapter.type=${String(meta("adapter.type"))}): give a file made by steerbot or llama.cpp's convert_lora_to_gguf.py`);
  }
  const arch = String(meta("general.architecture") ?? "");
  const alpha = Number(meta("adapter.lora.alpha") ?? 0);
  const halves = new Map<string, { a?: LoraTensor; b?: LoraTensor }>();
  const fd = openSync(file, "r");
  try {
    for (const t of header.tensors) {
      const m = /^(.*)\.lora_(a|b)$/.exec(t.name);
      if (!m) throw new LoraFileError(`${file}: tensor ${t.name} is not a LoRA A/B matrix (adapters that replace norms or embeddings are not supported)`);
      if (!(t.type in ELEMENT_BYTES)) throw new LoraFileError(`${file}: tensor ${t.name} has ggml type ${t.type}; supported: F32, F16, BF16`);
      if (t.dims.length !== 2) throw new LoraFileError(`${file}: tensor ${t.name} has ${t.dims.length} dimensions, expected 2`);
      const n = t.dims[0]! * t.dims[1]!;
      const bytes = Buffer.alloc(n * ELEMENT_BYTES[t.type]!);
      const got = readSync(fd, bytes, 0, bytes.length, header.dataOffset + Number(t.offset));
      if (got !== bytes.length) throw new LoraFileError(`${file}: truncated (tensor ${t.name} ends past the end of the file)`);
      const slot = halves.get(m[1]!) ?? {};
      slot[m[2] as "a" | "b"] = { dims: [t.dims[0]!, t.dims[1]!], type: t.type, bytes };
      halves.set(m[1]!, slot);
    }
  } finally {
    closeSync(fd);
  }
  const pairs: LoraPair[] = [];
  for (const [base, { a, b }] of halves) {
    if (!a || !b) throw new LoraFileError(`${file}: ${base} has lora_${a ? "a" : "b"} but no lora_${a ? "b" : "a"}`);
    if (a.dims[1] !== b.dims[0]) throw new LoraFileError(`${file}: ${base}: lora_a has rank ${a.dims[1]} but lora_b ${b.dims[0]}`);
    pairs.push({ base, a, b });
  }
  if (pairs.length === 0) throw new LoraFileError(`${file}: the adapter has no LoRA tensors`);
  if (!(alpha > 0)) throw new LoraFileError(`${file}: no adapter.lora.alpha`);
  return { arch, alpha, pairs, header };
}

/**
 * Refuses an adapter that was not made for this base: another architecture, a weight the
 * base does not have, or a shape that differs. Returns nothing when it fits.
 */
export function checkLoraFitsBase(lora: LoraFile, baseModel: string, label = "the adapter"): void {
  const base = readGgufHeader(baseModel);
  const baseArch = String(base.metadata.get("general.architecture")?.value ?? "");
  if (lora.arch !== baseArch) throw new LoraFileError(`${label} is for architecture ${lora.arch || "(none)"}, the base model is ${baseArch}: it was made for another model`);
  const shapes = new Map(base.tensors.map((t) => [t.name, t.dims]));
  for (const p of lora.pairs) {
    const dims = shapes.get(p.base);
    if (!dims) throw new LoraFileError(`${label} adapts ${p.base}, which the base model does not have: it was made for another model`);
    const [nIn, nOut] = [Number(dims[0]), Number(dims[1])];
    if (p.a.dims[0] !== nIn || p.b.dims[1] !== nOut) {
      throw new LoraFileError(`${label}: ${p.base} is ${nIn}×${nOut} in the base model but the adapter's A/B are ${p.a.dims[0]}×${p.a.dims[1]} and ${p.b.dims[0]}×${p.b.dims[1]}: it was made for another model`);
    }
  }
}

/** An F16 / BF16 / F32 tensor's values as F32. */
export function loraTensorF32(t: LoraTensor): Float32Array {
  const n = t.dims[0] * t.dims[1];
  if (t.type === 0) return new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + n * 4));
  const out = new Float32Array(n);
  const u32 = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const h = t.bytes.readUInt16LE(2 * i);
    if (t.type === 30) {
      u32[i] = h << 16; // BF16 is the top half of an F32
      continue;
    }
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

/** Writes the adapter again with F32 tensors (what the trainer continues from), same names and metadata that matter. */
export function writeLoraF32(lora: LoraFile, file: string): void {
  const w = new GgufWriter();
  w.set("general.architecture", gv.str(lora.arch));
  w.set("general.type", gv.str("adapter"));
  w.set("adapter.type", gv.str("lora"));
  w.set("adapter.lora.alpha", gv.f32(lora.alpha));
  for (const p of lora.pairs) {
    w.addTensor(`${p.base}.lora_a`, p.a.dims, GgmlType.F32, loraTensorF32(p.a));
    w.addTensor(`${p.base}.lora_b`, p.b.dims, GgmlType.F32, loraTensorF32(p.b));
  }
  w.write(file);
}
