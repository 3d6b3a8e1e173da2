/**
 * The training charts rendered server-side: the loss curve PNG `/retrain` posts (pngjs decodes
 * it, it has the size asked for, its title band holds drawn glyphs) and the SVG it comes from
 * (title, axis names, accuracy labels and the gate's decision as text), plus the held-out
 * metrics chart. The option builders are the ones the studio's pages run in the browser.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PNG } from "pngjs";
import { renderChartPng, renderChartSvg } from "../../../src/training/charts/render-chart.ts";
import { heldOutMetricsOption, lossCurveOption, type HeldOutMetrics } from "../../../src/training/charts/training-charts.ts";

const evalOf = (preferenceAccuracy: number) => ({ pairs: 8, preferenceAccuracy, meanMargin: 0.1, chosenLogprob: -1.2 });
const metrics: HeldOutMetrics = {
  heldOut: 8,
  base: evalOf(0.5),
  live: { version: "v1", ...evalOf(0.625) },
  candidate: evalOf(0.875),
  gate: { activated: true, reason: "candidate held-out accuracy 87.5% beats live 62.5% by at least 5.0%" },
};
const curve = Array.from({ length: 30 }, (_, i) => ({ step: i + 1, loss: 2 / (1 + i / 5) }));

/** The text content of every `<text>` element of an SVG document, entities decoded. */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&"));
}

/** Pixels clearly darker than the white background in a band of rows. */
function darkPixels(png: PNG, fromRow: number, toRow: number): number {
  let n = 0;
  for (let y = fromRow; y < toRow; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      if (png.data[i]! + png.data[i + 1]! + png.data[i + 2]! < 3 * 128) n++;
    }
  }
  return n;
}

describe("training charts", () => {
  it("the loss curve's SVG names the run, the axes, the accuracies and the gate's decision as text", () => {
    const texts = svgTexts(renderChartSvg(lossCurveOption({ runId: 7, lossCurve: curve, metrics, adapterVersion: "v2" })));
    assert.ok(texts.includes("Training run #7 — loss (adapter v2)"), texts.join(" | "));
    assert.ok(texts.includes("step") && texts.includes("loss"), "both axis names");
    const all = texts.join("\n");
    for (const label of ["base 50.0%", "live 62.5%", "candidate 87.5%", "Gate: activated"]) assert.ok(all.includes(label), `${label} in ${all}`);
  });

  it("the loss curve's PNG decodes, has the asked size and its title is drawn", () => {
    const png = PNG.sync.read(renderChartPng(lossCurveOption({ runId: 7, lossCurve: curve, metrics }), { width: 700, height: 380 }));
    assert.equal(png.width, 700);
    assert.equal(png.height, 380);
    // the title band (above the plot): glyphs from the system font, not a blank strip
    assert.ok(darkPixels(png, 0, 28) > 200, `title glyphs drawn (${darkPixels(png, 0, 28)} dark pixels)`);
    // without a font the same band stays white: the check above can fail
    const untitled = PNG.sync.read(renderChartPng({ ...lossCurveOption({ runId: 7, lossCurve: curve, metrics }), title: { show: false } }, { width: 700, height: 380 }));
    assert.equal(darkPixels(untitled, 0, 28), 0);
  });

  it("a run without evaluation says so instead of accuracies", () => {
    const all = svgTexts(renderChartSvg(lossCurveOption({ runId: 3, lossCurve: curve }))).join("\n");
    assert.match(all, /No held-out evaluation yet/);
    assert.doesNotMatch(all, /candidate/);
  });

  it("the held-out metrics chart has one bar group per adapter with its accuracy labels", () => {
    const option = heldOutMetricsOption({ entries: [{ label: "v1", metrics: { ...metrics, live: null, candidate: evalOf(0.625) } }, { label: "v2", metrics }] });
    const texts = svgTexts(renderChartSvg(option));
    for (const t of ["Held-out preference accuracy per adapter", "adapter", "accuracy (%)", "v1", "v2", "base", "live", "candidate", "87.5%", "62.5%", "50%"]) {
      assert.ok(texts.includes(t), `${t} in ${texts.join(" | ")}`);
    }
    // options are plain JSON: the page gets the very same chart
    assert.deepEqual(JSON.parse(JSON.stringify(option)), option);
  });
});
