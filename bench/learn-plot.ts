/**
 * The plot of a bench/learn run: per habit, the held-out violation rates before and after
 * (greedy and T = 0.7) and the share of replies repeating a sentence, rendered as the bot's
 * training charts are (ECharts SSR → PNG); for a learning curve (`--curve`), the rates after
 * training against the number of steers, a line per habit. `npx tsx bench/learn-plot.ts
 * results/FILE.json` draws it again from a run's JSON, next to it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { renderChartPng } from "../src/training/charts/render-chart.ts";

/** The parts of a habit's result the plot shows. */
export interface PlottedResult {
  habit: string;
  steers: number;
  before: { greedy: number; sampled: number; repeated?: number; degenerate?: number };
  after: { greedy: number; sampled: number; repeated?: number; degenerate?: number };
  perplexity: { base: number; adapter: number };
}

export function learnPlot(model: string, results: readonly PlottedResult[], examples: "steers" | "rewrites"): Buffer {
  const bar = (name: string, get: (r: PlottedResult) => number | undefined) => ({
    name,
    type: "bar" as const,
    data: results.map((r) => Math.round((get(r) ?? Number.NaN) * 1000) / 10),
    label: { show: true, position: "top" as const },
  });
  const ppl = (r: PlottedResult) => (((r.perplexity.adapter - r.perplexity.base) / r.perplexity.base) * 100).toFixed(1);
  return renderChartPng(
    {
      title: { text: `bench/learn on ${model}: held-out replies breaking the habit (%)`, left: "center", top: 4, textStyle: { fontSize: 14 } },
      legend: { top: 32, itemGap: 28 },
      grid: { top: 80, bottom: 40, left: 50, right: 20 },
      xAxis: { type: "category", data: results.map((r) => `${r.habit} (${r.steers} ${examples}, neutral ppl ${ppl(r)}%)`) },
      yAxis: { type: "value", max: 100 },
      series: [
        bar("greedy before", (r) => r.before.greedy),
        bar("greedy after", (r) => r.after.greedy),
        bar("T=0.7 before", (r) => r.before.sampled),
        bar("T=0.7 after", (r) => r.after.sampled),
        bar("repeating a sentence, after", (r) => r.after.repeated),
        ...(results.some((r) => r.after.degenerate !== undefined) ? [bar("no longer text, after", (r) => r.after.degenerate)] : []),
      ],
    },
    { width: 900, height: 420 },
  );
}

/** A learning curve: held-out violation rate after training (greedy solid, T = 0.7 dashed) against steers; 0 steers is the base. */
export function learnCurvePlot(model: string, results: readonly PlottedResult[], title = ""): Buffer {
  const habits = [...new Set(results.map((r) => r.habit))];
  const series = habits.flatMap((h) => {
    const points = results.filter((r) => r.habit === h);
    const line = (name: string, get: (r: PlottedResult["after"]) => number, type: "solid" | "dashed") => ({
      name,
      type: "line" as const,
      lineStyle: { type },
      data: [[0, Math.round(get(points[0]!.before) * 1000) / 10], ...points.map((r) => [r.steers, Math.round(get(r.after) * 1000) / 10])],
    });
    return [line(`${h} greedy`, (x) => x.greedy, "solid"), line(`${h} T=0.7`, (x) => x.sampled, "dashed")];
  });
  return renderChartPng(
    {
      title: { text: `bench/learn on ${model}: held-out replies breaking the habit (%) against steers${title ? ` (${title})` : ""}`, left: "center", top: 4, textStyle: { fontSize: 14 } },
      legend: { top: 32 },
      grid: { top: 80, bottom: 50, left: 50, right: 20 },
      xAxis: { type: "value", name: "steers", nameLocation: "middle", nameGap: 28 },
      yAxis: { type: "value", max: 100 },
      series,
    },
    { width: 900, height: 420 },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: npx tsx bench/learn-plot.ts bench/results/learn-….json");
  const run = JSON.parse(readFileSync(file, "utf8")) as { model: string; examples?: "steers" | "rewrites"; curve?: number[]; training?: { objective?: string }; results: PlottedResult[] };
  const png = file.replace(/\.json$/, "") + ".png";
  writeFileSync(png, run.curve ? learnCurvePlot(run.model, run.results, run.training?.objective ?? "") : learnPlot(run.model, run.results, run.examples ?? "steers"));
  console.log(`wrote ${png}`);
}
