/**
 * The loss curve of a training run as a PNG, drawn server-side for the admin channel.
 *
 * Owns: plotting (step, loss) points into a small RGBA raster with pngjs — axes, a light grid,
 * the curve — with no font or browser dependency. Axis ranges are printed in the summary text
 * next to the picture instead of drawn as glyphs.
 */
import { PNG } from "pngjs";

export interface LossPoint {
  step: number;
  loss: number;
}

export function renderLossCurvePng(points: readonly LossPoint[], width = 640, height = 320): Buffer {
  const png = new PNG({ width, height });
  const set = (x: number, y: number, [r, g, b]: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const i = (Math.round(y) * width + Math.round(x)) * 4;
    png.data[i] = r;
    png.data[i + 1] = g;
    png.data[i + 2] = b;
    png.data[i + 3] = 255;
  };
  png.data.fill(255);
  const pad = 24;
  const plotW = width - 2 * pad;
  const plotH = height - 2 * pad;
  const grid: [number, number, number] = [225, 225, 225];
  for (let k = 0; k <= 4; k++) {
    const y = pad + (plotH * k) / 4;
    const x = pad + (plotW * k) / 4;
    for (let i = 0; i <= plotW; i++) set(pad + i, y, grid);
    for (let j = 0; j <= plotH; j++) set(x, pad + j, grid);
  }
  const axis: [number, number, number] = [60, 60, 60];
  for (let i = 0; i <= plotW; i++) set(pad + i, pad + plotH, axis);
  for (let j = 0; j <= plotH; j++) set(pad, pad + j, axis);
  const finite = points.filter((p) => Number.isFinite(p.loss));
  if (finite.length) {
    const minS = finite[0]!.step;
    const maxS = Math.max(finite.at(-1)!.step, minS + 1);
    const lo = Math.min(...finite.map((p) => p.loss));
    const hi = Math.max(...finite.map((p) => p.loss), lo + 1e-9);
    const toXY = (p: LossPoint): [number, number] => [pad + ((p.step - minS) / (maxS - minS)) * plotW, pad + (1 - (p.loss - lo) / (hi - lo)) * plotH];
    const line: [number, number, number] = [200, 40, 40];
    for (let i = 0; i < finite.length; i++) {
      const [x1, y1] = toXY(finite[i]!);
      const [x0, y0] = i ? toXY(finite[i - 1]!) : [x1, y1];
      const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
      for (let t = 0; t <= n; t++) {
        const x = x0 + ((x1 - x0) * t) / n;
        const y = y0 + ((y1 - y0) * t) / n;
        set(x, y, line);
        set(x, y + 1, line);
      }
    }
  }
  return PNG.sync.write(png);
}
