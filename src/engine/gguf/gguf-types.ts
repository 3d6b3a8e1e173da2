/**
 * GGUF format constants shared by the reader and the writer.
 *
 * Owns: the metadata value type codes and the ggml tensor type codes this project writes, and
 * the typed metadata value representation. Values keep their GGUF type so that copying keys
 * from one file into another (the tokenizer from a vocab file into a fixture model) preserves
 * them bit for bit: llama.cpp checks some of these types strictly (e.g. token types as int32).
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types this project writes (the reader accepts any code and reports it). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  /** 32-value blocks: an F16 scale and 4-bit values (ggml's block_q4_0). */
  Q4_0 = 2,
  /** 32-value blocks: an F16 scale and int8 values (ggml's block_q8_0). */
  Q8_0 = 8,
}

/** Values per block and bytes per block of a tensor type (1 and the element size for floats). */
export function ggmlBlock(type: GgmlType): { values: number; bytes: number } {
  switch (type) {
    case GgmlType.F32:
      return { values: 1, bytes: 4 };
    case GgmlType.F16:
      return { values: 1, bytes: 2 };
    case GgmlType.Q4_0:
      return { values: 32, bytes: 18 };
    case GgmlType.Q8_0:
      return { values: 32, bytes: 34 };
    default:
      throw new Error(`unsupported ggml type ${type as number}`);
  }
}

/** Bytes of `nElements` values of `type` (a whole number of blocks). */
export function ggmlTypeBytes(type: GgmlType, nElements: number): number {
  const b = ggmlBlock(type);
  if (nElements % b.values) throw new Error(`${nElements} values are not a whole number of ${GgmlType[type]} blocks of ${b.values}`);
  return (nElements / b.values) * b.bytes;
}

export type GgufScalar = number | bigint | boolean | string;

/** A metadata value with its GGUF type; arrays carry their element type. */
export type GgufValue =
  | { type: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType; value: GgufScalar[] | GgufValue[] };

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  type: number;
  /** Offset relative to the start of the tensor data section. */
  offset: bigint;
}

/** Convenience constructors so callers do not spell type codes. */
export const gv = {
  u32: (v: number): GgufValue => ({ type: GgufValueType.UINT32, value: v }),
  i32: (v: number): GgufValue => ({ type: GgufValueType.INT32, value: v }),
  f32: (v: number): GgufValue => ({ type: GgufValueType.FLOAT32, value: v }),
  bool: (v: boolean): GgufValue => ({ type: GgufValueType.BOOL, value: v }),
  str: (v: string): GgufValue => ({ type: GgufValueType.STRING, value: v }),
  strs: (v: string[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: v }),
  f32s: (v: number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: v }),
  i32s: (v: number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: v }),
};
