/**
 * A streaming GGUF (v3) writer.
 *
 * Owns: serialising metadata (typed key/values) and F32/F16/Q8_0/Q4_0 tensors into a GGUF file that
 * llama.cpp loads. Tensor data is produced by callbacks in chunks and written with bounded
 * memory, so a multi-GB fixture model (F32 0.5B ≈ 2 GB) never sits in memory whole. Used for
 * fixture models and, by the trainer, for LoRA adapter files.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueType,
  ggmlTypeBytes,
  type GgufScalar,
  type GgufValue,
} from "./gguf-types.ts";

/** Fills `out` with the tensor's elements starting at flat element index `start`. */
export type TensorFill = (out: Float32Array, start: number) => void;

interface PendingTensor {
  name: string;
  dims: number[];
  type: GgmlType;
  fill: TensorFill;
  nElements: number;
  nBytes: number;
  offset: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.grow(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  i8(v: number): void {
    this.grow(1);
    this.buf.writeInt8(v, this.length);
    this.length += 1;
  }
  u16(v: number): void {
    this.grow(2);
    this.buf.writeUInt16LE(v, this.length);
    this.length += 2;
  }
  i16(v: number): void {
    this.grow(2);
    this.buf.writeInt16LE(v, this.length);
    this.length += 2;
  }
  u32(v: number): void {
    this.grow(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.grow(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  f32(v: number): void {
    this.grow(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  f64(v: number): void {
    this.grow(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }
  u64(v: bigint | number): void {
    this.grow(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  i64(v: bigint | number): void {
    this.grow(8);
    this.buf.writeBigInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.grow(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(s: ByteSink, type: GgufValueType, v: GgufScalar): void {
  switch (type) {
    case GgufValueType.UINT8:
      return s.u8(Number(v));
    case GgufValueType.INT8:
      return s.i8(Number(v));
    case GgufValueType.UINT16:
      return s.u16(Number(v));
    case GgufValueType.INT16:
      return s.i16(Number(v));
    case GgufValueType.UINT32:
      return s.u32(Number(v));
    case GgufValueType.INT32:
      return s.i32(Number(v));
    case GgufValueType.FLOAT32:
      return s.f32(Number(v));
    case GgufValueType.BOOL:
      return s.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      return s.str(String(v));
    case GgufValueType.UINT64:
      return s.u64(BigInt(v as number | bigint));
    case GgufValueType.INT64:
      return s.i64(BigInt(v as number | bigint));
    case GgufValueType.FLOAT64:
      return s.f64(Number(v));
    default:
      throw new Error(`cannot write GGUF value type ${type as number}`);
  }
}

function writeValue(s: ByteSink, v: GgufValue): void {
  if (v.type !== GgufValueType.ARRAY) return writeScalar(s, v.type, v.value);
  s.u32(v.itemType);
  s.u64(v.value.length);
  if (v.itemType === GgufValueType.ARRAY) {
    for (const item of v.value as GgufValue[]) {
      s.u32(item.type);
      writeValue(s, item);
    }
    return;
  }
  for (const item of v.value as GgufScalar[]) writeScalar(s, v.itemType, item);
}

const F32_VIEW = new Float32Array(1);
const U32_VIEW = new Uint32Array(F32_VIEW.buffer);

/** IEEE 754 half from a float, round-to-nearest-even, with overflow to infinity. */
export function f32ToF16Bits(value: number): number {
  F32_VIEW[0] = value;
  const x = U32_VIEW[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/**
 * ggml's reference quantization (quantize_row_q8_0_ref / quantize_row_q4_0_ref) of whole
 * 32-value blocks: the fixtures' quantized models, so the trainer's dequantizing path and the
 * engine on quantized files are tested without a real model.
 */
export function quantizeBlocks(type: GgmlType, x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  if (!Number.isInteger(nb)) throw new Error(`${x.length} values are not whole blocks of 32`);
  if (type === GgmlType.Q8_0) {
    const out = new DataView(new ArrayBuffer(nb * 34));
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      const d = amax / 127;
      const id = d ? 1 / d : 0;
      out.setUint16(b * 34, f32ToF16Bits(d), true);
      for (let j = 0; j < 32; j++) {
        const v = x[b * 32 + j]! * id;
        out.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v))); // roundf: halves away from zero
      }
    }
    return new Uint8Array(out.buffer);
  }
  if (type === GgmlType.Q4_0) {
    const out = new DataView(new ArrayBuffer(nb * 18));
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[b * 32 + j]!;
        if (Math.abs(v) > amax) [amax, max] = [Math.abs(v), v];
      }
      const d = max / -8;
      const id = d ? 1 / d : 0;
      out.setUint16(b * 18, f32ToF16Bits(d), true);
      const q = (v: number) => Math.min(15, Math.trunc(v * id + 8.5));
      for (let j = 0; j < 16; j++) out.setUint8(b * 18 + 2 + j, q(x[b * 32 + j]!) | (q(x[b * 32 + 16 + j]!) << 4));
    }
    return new Uint8Array(out.buffer);
  }
  throw new Error(`cannot quantize to ggml type ${type as number}`);
}

/**
 * Collects metadata and tensor descriptions, then writes the file in one pass. The file is
 * written to `<path>.tmp-<pid>` and renamed, so a crash never leaves a truncated model that a
 * cache would later trust.
 */
export class GgufWriter {
  private readonly kv = new Map<string, GgufValue>();
  private readonly tensors: PendingTensor[] = [];
  private readonly alignment: number;
  private dataBytes = 0;

  constructor(options: { alignment?: number } = {}) {
    this.alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  }

  /** Sets (or replaces) a metadata key; insertion order is kept in the file. */
  set(key: string, value: GgufValue): this {
    this.kv.set(key, value);
    return this;
  }

  has(key: string): boolean {
    return this.kv.has(key);
  }

  /**
   * Adds a tensor. `dims` are in ggml order (dims[0] contiguous), e.g. a matmul weight mapping
   * n_in → n_out is `[n_in, n_out]`.
   */
  addTensor(name: string, dims: number[], type: GgmlType, data: TensorFill | Float32Array): this {
    const nElements = dims.reduce((a, b) => a * b, 1);
    const fill: TensorFill =
      data instanceof Float32Array
        ? (() => {
            if (data.length !== nElements) throw new Error(`tensor ${name}: ${data.length} values for ${nElements} elements`);
            return (out: Float32Array, start: number) => out.set(data.subarray(start, start + out.length));
          })()
        : data;
    const nBytes = ggmlTypeBytes(type, nElements);
    const offset = this.dataBytes;
    this.tensors.push({ name, dims, type, fill, nElements, nBytes, offset });
    this.dataBytes += Math.ceil(nBytes / this.alignment) * this.alignment;
    return this;
  }

  private header(): Buffer {
    const s = new ByteSink();
    s.u32(GGUF_MAGIC);
    s.u32(GGUF_VERSION);
    s.u64(this.tensors.length);
    const kv = new Map(this.kv);
    if (this.alignment !== GGUF_DEFAULT_ALIGNMENT) kv.set("general.alignment", { type: GgufValueType.UINT32, value: this.alignment });
    s.u64(kv.size);
    for (const [key, value] of kv) {
      s.str(key);
      s.u32(value.type);
      writeValue(s, value);
    }
    for (const t of this.tensors) {
      s.str(t.name);
      s.u32(t.dims.length);
      for (const d of t.dims) s.u64(d);
      s.u32(t.type);
      s.u64(t.offset);
    }
    s.pad(this.alignment);
    return s.bytes();
  }

  /** Writes the file; returns its size in bytes. */
  write(filePath: string): number {
    const tmp = `${filePath}.tmp-${process.pid}`;
    const fd = openSync(tmp, "w");
    let size = 0;
    try {
      const put = (b: Uint8Array) => {
        let done = 0;
        while (done < b.length) done += writeSync(fd, b, done, b.length - done);
        size += b.length;
      };
      put(this.header());
      const chunk = 1 << 20; // elements per chunk
      const f32 = new Float32Array(chunk);
      const f16 = new Uint16Array(chunk);
      for (const t of this.tensors) {
        for (let start = 0; start < t.nElements; start += chunk) {
          const n = Math.min(chunk, t.nElements - start);
          const view = f32.subarray(0, n);
          t.fill(view, start);
          if (t.type === GgmlType.F32) {
            put(new Uint8Array(view.buffer, 0, n * 4));
          } else if (t.type === GgmlType.F16) {
            for (let i = 0; i < n; i++) f16[i] = f32ToF16Bits(view[i]!);
            put(new Uint8Array(f16.buffer, 0, n * 2));
          } else {
            put(quantizeBlocks(t.type, view));
          }
        }
        const padded = Math.ceil(t.nBytes / this.alignment) * this.alignment;
        if (padded > t.nBytes) put(new Uint8Array(padded - t.nBytes));
      }
      closeSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    renameSync(tmp, filePath);
    return size;
  }
}
