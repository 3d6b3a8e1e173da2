/**
 * Server-side rendering of a chart option (training-charts.ts) to SVG and PNG.
 *
 * Owns: ECharts' SSR (no DOM, no browser: `renderer: 'svg', ssr: true`) and the SVG → PNG step
 * with resvg (a prebuilt native binary; text drawn with the system's fonts — DejaVu Sans is
 * what `.ci/run` installs). Chat platforms show the PNG; the page renders the same option itself.
 */
import { Resvg } from "@resvg/resvg-js";
import * as echarts from "echarts";
import type { EChartsOption } from "echarts";

export interface ChartSize {
  width: number;
  height: number;
}

export const DEFAULT_CHART_SIZE: ChartSize = { width: 800, height: 420 };

/** The chart as an SVG document (text stays text: titles, axis names and labels are `<text>`). */
export function renderChartSvg(option: EChartsOption, size: ChartSize = DEFAULT_CHART_SIZE): string {
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width: size.width, height: size.height });
  try {
    chart.setOption(option);
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

/** An SVG document as a PNG of its own size, its text drawn with the system's sans-serif font. */
export function svgToPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    background: "#ffffff",
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
  });
  return Buffer.from(resvg.render().asPng());
}

/** {@link renderChartSvg} then {@link svgToPng}. */
export function renderChartPng(option: EChartsOption, size: ChartSize = DEFAULT_CHART_SIZE): Buffer {
  return svgToPng(renderChartSvg(option, size));
}
