// What the studio's admin pages share: the notice line, the "admins only" answer, charts drawn
// by ECharts (loaded as /vendor/echarts.min.js) from options the server built with the same
// builder as the PNGs /retrain posts, and small DOM helpers. Text from the server is only ever
// set as textContent.
import { renderNav } from "./nav.js";

/** Writes a short answer into the page's notice line (role=status). */
export function say(text, bad = false) {
  const el = document.getElementById("notice");
  el.textContent = text ?? "";
  el.classList.toggle("bad", bad);
}

/**
 * A JSON answer that says the session is no admin (403): the page says so, hides its controls
 * and answers true; otherwise false.
 */
export function refusedHere(res) {
  if (res.status !== 403) return false;
  const main = document.querySelector("main");
  const p = document.createElement("p");
  p.setAttribute("role", "alert");
  p.textContent = `Admins only: ${res.data?.notice ?? "this page is for steerbot's admins."}`;
  main.replaceChildren(p);
  return true;
}

/** fetch() for the admin APIs: { status, data } with the CSRF header on state changes. */
export async function call(path, { method = "GET", body, csrf } = {}) {
  const headers = {};
  if (csrf) headers["x-csrf-token"] = csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  let data;
  try {
    data = await res.json();
  } catch {
    data = { ok: false, notice: `The server answered ${res.status}.` };
  }
  return { status: res.status, data };
}

/** Draws (or redraws) an ECharts option into `el` with the SVG renderer (its text is DOM text). */
export function drawChart(el, option) {
  const chart = window.echarts.getInstanceByDom(el) ?? window.echarts.init(el, null, { renderer: "svg", width: 800, height: 420 });
  chart.setOption(option, { notMerge: true });
  return chart;
}

/** An element with text content (never HTML). */
export function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** A figure (accessible name `label`) holding one chart. */
export function chartFigure(label, option) {
  const fig = el("figure", undefined, { "aria-label": label, class: "chart" });
  const box = el("div", undefined, { class: "chart-box" });
  fig.append(box);
  return { fig, draw: () => drawChart(box, option) };
}

export { renderNav };
