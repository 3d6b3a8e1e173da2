/**
 * The charts of training, as ECharts options: one builder for both places they are shown —
 * the interactive charts of the studio's Training and Adapters pages (the browser's ECharts
 * runs the option) and the PNG `/retrain` posts in Discord and Telegram (the same option
 * rendered server-side, render-chart.ts).
 *
 * Owns: what each chart says — the loss curve of a run (step → loss, with the held-out
 * accuracies and the gate's decision in its subtitle) and the held-out accuracies of several
 * runs/adapters side by side. Options are plain JSON (no functions), so they travel to the page
 * as they are.
 */
import type { EChartsOption } from "echarts";

/** One evaluation of a model on the held-out steers (training-service.ts's `summary`). */
export interface EvalNumbers {
  pairs: number;
  preferenceAccuracy: number;
  meanMargin: number;
  chosenLogprob: number;
}

/** Whether the gate activated a candidate, and why, in words an admin reads. */
export interface GateDecision {
  activated: boolean;
  reason: string;
}

/** The `metrics` a training run stores with its adapter (training-service.ts). */
export interface HeldOutMetrics {
  heldOut: number;
  evaluatedOn?: string;
  base: EvalNumbers;
  live: (EvalNumbers & { version?: string }) | null;
  candidate: EvalNumbers & { refused?: string };
  gate?: GateDecision;
}

export interface LossChartInput {
  runId: number;
  lossCurve: readonly { step: number; loss: number }[];
  /** Absent while the run goes (no evaluation yet) or for a run that failed before it. */
  metrics?: HeldOutMetrics;
  adapterVersion?: string;
}

export interface MetricsChartInput {
  /** One bar group per run/adapter, in the order given (oldest first reads best). */
  entries: readonly { label: string; metrics: HeldOutMetrics }[];
}

/** A fraction as the percentage every chart and notice prints ("n/a" when not a number). */
export function pct(x: number | undefined | null): string {
  return typeof x === "number" && Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "n/a";
}

/** The accuracy line every chart of a run carries: "base 50.0% · live 50.0% · candidate 75.0%". */
export function accuracyLabels(m: HeldOutMetrics): string[] {
  return [`base ${pct(m.base.preferenceAccuracy)}`, `live ${pct((m.live ?? m.base).preferenceAccuracy)}`, `candidate ${pct(m.candidate.preferenceAccuracy)}`];
}

const FONT = "DejaVu Sans, sans-serif";

/** The loss curve of one run: x step, y loss; title and subtitle say which run and how it scored. */
export function lossCurveOption(input: LossChartInput): EChartsOption {
  const { metrics: m } = input;
  const sub: string[] = [];
  if (m) {
    sub.push(`Held-out preference accuracy (${m.heldOut} steers): ${accuracyLabels(m).join(" · ")}`);
    if (m.gate) sub.push(`Gate: ${m.gate.activated ? "activated" : "not activated"} — ${m.gate.reason}`);
  } else {
    sub.push("No held-out evaluation yet");
  }
  const points = input.lossCurve.filter((p) => Number.isFinite(p.loss)).map((p) => [p.step, p.loss]);
  return {
    animation: false,
    backgroundColor: "#ffffff",
    textStyle: { fontFamily: FONT },
    title: {
      text: `Training run #${input.runId} — loss${input.adapterVersion ? ` (adapter ${input.adapterVersion})` : ""}`,
      subtext: sub.join("\n"),
      left: "center",
      textStyle: { fontSize: 15 },
      subtextStyle: { fontSize: 12, color: "#333333", lineHeight: 17 },
    },
    grid: { left: 70, right: 40, top: 96, bottom: 56 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 30, min: "dataMin", max: "dataMax" },
    yAxis: { type: "value", name: "loss", nameLocation: "middle", nameGap: 50, scale: true },
    series: [{ type: "line", name: "loss", data: points, showSymbol: points.length <= 40, lineStyle: { width: 2 }, itemStyle: { color: "#c62828" } }],
  };
}

/** Held-out accuracy of base, live and candidate for each run/adapter, as grouped bars. */
export function heldOutMetricsOption(input: MetricsChartInput): EChartsOption {
  const labels = input.entries.map((e) => e.label);
  const value = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 10 : null);
  const series = (name: "base" | "live" | "candidate", color: string) => ({
    type: "bar" as const,
    name,
    itemStyle: { color },
    label: { show: true, position: "top" as const, formatter: "{c}%", fontSize: 10 },
    data: input.entries.map((e) => value((name === "live" ? (e.metrics.live ?? e.metrics.base) : e.metrics[name]).preferenceAccuracy)),
  });
  return {
    animation: false,
    backgroundColor: "#ffffff",
    textStyle: { fontFamily: FONT },
    title: { text: "Held-out preference accuracy per adapter", left: "center", textStyle: { fontSize: 15 } },
    legend: { top: 36, data: ["base", "live", "candidate"] },
    grid: { left: 70, right: 30, top: 80, bottom: 60 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", name: "adapter", nameLocation: "middle", nameGap: 36, data: labels },
    yAxis: { type: "value", name: "accuracy (%)", nameLocation: "middle", nameGap: 45, min: 0, max: 100 },
    series: [series("base", "#9e9e9e"), series("live", "#1e88e5"), series("candidate", "#43a047")],
  };
}
