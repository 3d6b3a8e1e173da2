// The Training admin page: start a run (the same /retrain as in the chats), its live progress
// (step, loss, ETA) over server-sent events, cancel, and each run's loss curve and held-out
// metrics drawn by ECharts from the options the server built (the PNG's builder), with the
// gate's decision and why.
import { session } from "./studio-client.js";
import { call, chartFigure, drawChart, el, refusedHere, renderNav, say } from "./admin-common.js";

const progress = document.getElementById("progress");
const live = document.getElementById("live-chart");

function eta(seconds) {
  if (!Number.isFinite(seconds)) return "?";
  return seconds >= 90 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

function showStep(runId, s) {
  progress.textContent = `Run #${runId ?? "?"}: step ${s.step}/${s.steps} · loss ${s.loss.toFixed(4)} · ETA ${eta(s.etaSeconds)}`;
}

function runArticle(r) {
  const art = el("article", undefined, { class: "run", "aria-label": `Run #${r.id}` });
  art.append(el("h3", `Run #${r.id} — ${r.state}`));
  const facts = [`${r.trigger}${r.requestedBy ? ` by ${r.requestedBy}` : ""}`, `started ${r.startedAt.slice(0, 16).replace("T", " ")} UTC`, `${r.steerCount} steers`];
  if (r.adapter) facts.push(`adapter ${r.adapter.version} (${r.adapter.state})`);
  art.append(el("p", facts.join(" · ")));
  if (r.gate) art.append(el("p", `Gate: ${r.gate.activated ? "activated" : "not activated"} — ${r.gate.reason}`, { class: "gate" }));
  if (r.error) art.append(el("p", r.error, { class: "error" }));
  const draws = [];
  if (r.lossChart) {
    const c = chartFigure(`Loss curve of run #${r.id}`, r.lossChart);
    art.append(c.fig);
    draws.push(c.draw);
  }
  if (r.metricsChart) {
    const c = chartFigure(`Held-out metrics of run #${r.id}`, r.metricsChart);
    art.append(c.fig);
    draws.push(c.draw);
  }
  return { art, draws };
}

async function loadRuns() {
  const res = await call("/api/admin/training/runs");
  if (refusedHere(res)) return false;
  if (!res.data.ok) {
    say(res.data.notice, true);
    return true;
  }
  const box = document.getElementById("runs");
  for (const c of box.querySelectorAll(".chart-box")) window.echarts.getInstanceByDom(c)?.dispose();
  const built = res.data.runs.map(runArticle);
  box.replaceChildren(...built.map((b) => b.art));
  if (!built.length) box.append(el("p", "No training runs yet."));
  for (const b of built) for (const d of b.draws) d();
  return true;
}

function listen() {
  const events = new EventSource("/api/admin/training/events");
  events.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (e.type === "state") {
      if (e.running) {
        live.hidden = false;
        if (e.chart) drawChart(live.querySelector(".chart-box"), e.chart);
        if (e.step) showStep(e.runId, e.step);
        else progress.textContent = `Run #${e.runId ?? "?"} is starting…`;
      }
    } else if (e.type === "step") {
      showStep(e.runId, e.step);
      if (e.chart) {
        live.hidden = false;
        drawChart(live.querySelector(".chart-box"), e.chart);
      }
    } else if (e.type === "text") {
      if (!/step \d+\//.test(e.text)) progress.textContent = e.text;
    } else if (e.type === "done") {
      progress.textContent = e.notice;
      live.hidden = true;
      say(e.notice, !e.ok);
      void loadRuns();
    }
  };
}

async function post(path) {
  const { csrfToken } = await session();
  const res = await call(path, { method: "POST", csrf: csrfToken });
  if (refusedHere(res)) return;
  say(res.data.notice, !res.data.ok);
  return res.data;
}

document.getElementById("start").addEventListener("click", async () => {
  const out = await post("/api/admin/training/start");
  if (out?.started) progress.textContent = out.notice;
  else void loadRuns();
});
document.getElementById("cancel").addEventListener("click", () => post("/api/admin/training/cancel"));

void renderNav();
if (await loadRuns()) listen();
