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
}

/** Bytes per element for the tensor types we write. */
export function ggmlTypeSize(type: GgmlType): number {
  switch (type) {
    case GgmlType.F32:
      return 4;
    case GgmlType.F16:
      return 2;
    default:
      throw new Error(`unsupported ggml type ${type as number}`);
  }
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
