import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { readGgufHeader, plainValue } from "../../src/engine/gguf/gguf-reader.ts";
import { GgmlType, gv } from "../../src/engine/gguf/gguf-types.ts";
import { GgufWriter, f32ToF16Bits } from "../../src/engine/gguf/gguf-writer.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "steerbot-gguf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("GgufWriter output reads back: typed metadata, tensor infos, aligned F32/F16 data", () => {
  const file = path.join(dir, "t.gguf");
  const w = new GgufWriter();
  w.set("general.architecture", gv.str("llama"));
  w.set("x.count", gv.u32(7));
  w.set("x.scale", gv.f32(0.5));
  w.set("x.names", gv.strs(["a", "ü", ""]));
  w.set("x.ids", gv.i32s([-1, 2]));
  w.addTensor("a", [3], GgmlType.F32, new Float32Array([1, 2, 3]));
  w.addTensor("b", [2, 2], GgmlType.F16, (out, start) => {
    for (let i = 0; i < out.length; i++) out[i] = start + i + 0.5;
  });
  w.write(file);

  const h = readGgufHeader(file);
  assert.equal(h.version, 3);
  assert.equal(plainValue(h.metadata.get("general.architecture")), "llama");
  assert.equal(plainValue(h.metadata.get("x.count")), 7);
  assert.equal(plainValue(h.metadata.get("x.scale")), 0.5);
  assert.deepEqual(plainValue(h.metadata.get("x.names")), ["a", "ü", ""]);
  assert.deepEqual(plainValue(h.metadata.get("x.ids")), [-1, 2]);
  assert.deepEqual(
    h.tensors.map((t) => [t.name, t.dims, t.type, Number(t.offset)]),
    [
      ["a", [3], GgmlType.F32, 0],
      ["b", [2, 2], GgmlType.F16, 32],
    ],
  );
  assert.equal(h.dataOffset % 32, 0);
  const bytes = readFileSync(file);
  const a = new Float32Array(bytes.buffer.slice(bytes.byteOffset + h.dataOffset, bytes.byteOffset + h.dataOffset + 12));
  assert.deepEqual([...a], [1, 2, 3]);
  const b = bytes.subarray(h.dataOffset + 32, h.dataOffset + 40);
  assert.deepEqual([0, 1, 2, 3].map((i) => b.readUInt16LE(i * 2)), [0.5, 1.5, 2.5, 3.5].map(f32ToF16Bits));
});

test("f32ToF16Bits matches IEEE half for known values", () => {
  assert.equal(f32ToF16Bits(0), 0x0000);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(1e6), 0x7c00);
  assert.equal(f32ToF16Bits(5.960464477539063e-8), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(0.1), 0x2e66);
  assert.equal(f32ToF16Bits(Number.NaN) & 0x7c00, 0x7c00);
});
