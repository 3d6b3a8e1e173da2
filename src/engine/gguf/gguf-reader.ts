/**
 * A small GGUF metadata reader.
 *
 * Owns: parsing a GGUF header (metadata key/values with their exact types, and tensor infos)
 * without reading tensor data. node-llama-cpp's `readGgufFileInfo` is built for inspection and
 * returns plain JS values without their GGUF types; copying a tokenizer into a new file needs
 * the types (int32 token types, float32 scores, string merges) and every array in full, so we
 * read the header ourselves. Reads the file in chunks, so a multi-GB model costs only its header.
 */
import { closeSync, openSync, readSync } from "node:fs";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  type GgufScalar,
  type GgufTensorInfo,
  type GgufValue,
} from "./gguf-types.ts";

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
}

/** Sequential reader over a file descriptor with a refillable buffer. */
class ChunkedCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  private pos = 0; // absolute file offset

  constructor(
    private readonly fd: number,
    private readonly filePath: string,
  ) {}

  get offset(): number {
    return this.pos;
  }

  private ensure(n: number): number {
    const rel = this.pos - this.bufStart;
    if (rel + n <= this.buf.length) return rel;
    const keep = this.buf.subarray(rel);
    const want = Math.max(n, 1 << 20);
    const fresh = Buffer.alloc(keep.length + want);
    keep.copy(fresh, 0);
    const got = readSync(this.fd, fresh, keep.length, want, this.pos + keep.length);
    this.buf = fresh.subarray(0, keep.length + got);
    this.bufStart = this.pos;
    if (n > this.buf.length) throw new Error(`${this.filePath}: truncated GGUF header at byte ${this.pos}`);
    return 0;
  }

  u8(): number {
    const r = this.ensure(1);
    this.pos += 1;
    return this.buf.readUInt8(r);
  }
  i8(): number {
    const r = this.ensure(1);
    this.pos += 1;
    return this.buf.readInt8(r);
  }
  u16(): number {
    const r = this.ensure(2);
    this.pos += 2;
    return this.buf.readUInt16LE(r);
  }
  i16(): number {
    const r = this.ensure(2);
    this.pos += 2;
    return this.buf.readInt16LE(r);
  }
  u32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readUInt32LE(r);
  }
  i32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readInt32LE(r);
  }
  f32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readFloatLE(r);
  }
  f64(): number {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readDoubleLE(r);
  }
  u64(): bigint {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readBigUInt64LE(r);
  }
  i64(): bigint {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readBigInt64LE(r);
  }
  /** A u64 count that must fit in a JS number (lengths, dims). */
  count(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.filePath}: implausible count ${v} at byte ${this.pos - 8}`);
    return Number(v);
  }
  str(): string {
    const len = this.count();
    const r = this.ensure(len);
    this.pos += len;
    return this.buf.toString("utf8", r, r + len);
  }
}

function readScalar(c: ChunkedCursor, type: GgufValueType): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8();
    case GgufValueType.INT8:
      return c.i8();
    case GgufValueType.UINT16:
      return c.u16();
    case GgufValueType.INT16:
      return c.i16();
    case GgufValueType.UINT32:
      return c.u32();
    case GgufValueType.INT32:
      return c.i32();
    case GgufValueType.FLOAT32:
      return c.f32();
    case GgufValueType.BOOL:
      return c.u8() !== 0;
    case GgufValueType.STRING:
      return c.str();
    case GgufValueType.UINT64:
      return c.u64();
    case GgufValueType.INT64:
      return c.i64();
    case GgufValueType.FLOAT64:
      return c.f64();
    default:
      throw new Error(`unknown GGUF value type ${type as number}`);
  }
}

function readValue(c: ChunkedCursor, type: GgufValueType): GgufValue {
  if (type !== GgufValueType.ARRAY) return { type, value: readScalar(c, type) } as GgufValue;
  const itemType = c.u32() as GgufValueType;
  const n = c.count();
  if (itemType === GgufValueType.ARRAY) {
    const items: GgufValue[] = [];
    for (let i = 0; i < n; i++) items.push(readValue(c, c.u32() as GgufValueType));
    return { type, itemType, value: items };
  }
  const items: GgufScalar[] = new Array(n);
  for (let i = 0; i < n; i++) items[i] = readScalar(c, itemType);
  return { type, itemType, value: items };
}

/** Reads a GGUF file's header: metadata with types, tensor infos, data offset. */
export function readGgufHeader(filePath: string): GgufFile {
  const fd = openSync(filePath, "r");
  try {
    const c = new ChunkedCursor(fd, filePath);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) throw new Error(`${filePath} is not a GGUF file (bad magic)`);
    const version = c.u32();
    if (version < 2 || version > 3) throw new Error(`${filePath}: unsupported GGUF version ${version}`);
    const nTensors = c.count();
    const nKv = c.count();
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str();
      const type = c.u32() as GgufValueType;
      metadata.set(key, readValue(c, type));
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.str();
      const nDims = c.u32();
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.count());
      const type = c.u32();
      const offset = c.u64();
      tensors.push({ name, dims, type, offset });
    }
    const alignVal = metadata.get("general.alignment");
    const alignment = alignVal && typeof alignVal.value === "number" ? alignVal.value : GGUF_DEFAULT_ALIGNMENT;
    const dataOffset = Math.ceil(c.offset / alignment) * alignment;
    return { version, metadata, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}

/** Plain JS value of a metadata entry (arrays of scalars flattened), for inspection. */
export function plainValue(v: GgufValue | undefined): unknown {
  if (!v) return undefined;
  if (v.type !== GgufValueType.ARRAY) return v.value;
  return (v.value as unknown[]).map((x) => (typeof x === "object" && x !== null && "type" in x ? plainValue(x as GgufValue) : x));
}
