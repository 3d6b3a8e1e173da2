/**
 * Writing and reading the safetensors format (Hugging Face's tensor file).
 *
 * Owns: the byte layout — an 8-byte little-endian header length, a JSON header naming each
 * tensor's dtype, shape and `[begin, end)` byte range in the data, then the raw little-endian
 * data. It is small enough to write here; no npm package for it is in the project, and PEFT's
 * `adapter_model.safetensors` is nothing more than this.
 */
import { readFileSync, writeFileSync } from "node:fs";

export type SafetensorsDtype = "F32" | "F16" | "BF16";

export interface SafeTensor {
  dtype: SafetensorsDtype;
  /** Row-major (torch) shape. */
  shape: number[];
  data: Buffer;
}

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Writes tensors (in name order, 8-byte aligned as the reference writer does) and metadata. */
export function writeSafetensors(file: string, tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const names = [...tensors.keys()].sort();
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.length !== want) throw new Error(`tensor ${name}: ${t.data.length} bytes for shape [${t.shape.join(", ")}] ${t.dtype}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // data starts 8-byte aligned
  const head = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  writeFileSync(file, Buffer.concat([len, head, ...names.map((n) => tensors.get(n)!.data)]));
}

/** Reads a safetensors file back (tests, and checking what was written). */
export function readSafetensors(file: string): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: SafetensorsDtype; shape: number[]; data_offsets: [number, number] }> & { __metadata__?: Record<string, string> };
  const { __metadata__: metadata = {}, ...rest } = header;
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of Object.entries(rest)) {
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: Buffer.from(buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])) });
  }
  return { tensors, metadata };
}
