// The Adapters admin page: every adapter with its held-out metrics (and their chart), Activate /
// Roll back (the chats' /adapters commands), and what each running instance serves now.
import { session } from "./studio-client.js";
import { call, chartFigure, el, refusedHere, renderNav, say } from "./admin-common.js";

function cell(text) {
  return el("td", text ?? "—");
}

async function load() {
  const res = await call("/api/admin/adapters");
  if (refusedHere(res)) return;
  if (!res.data.ok) return say(res.data.notice, true);
  const { adapters, instances, chart } = res.data;
  const list = document.getElementById("instances");
  list.replaceChildren(
    ...instances.map((i) => el("li", `${i.self ? "this instance" : `instance ${i.instanceId.slice(0, 8)}`}: ${i.adapterVersion ?? "base model (no adapter)"} (since ${i.since.slice(0, 19).replace("T", " ")} UTC)`, { "data-instance": i.instanceId })),
  );
  if (!instances.length) list.append(el("li", "No running instance has recorded what it serves."));
  const rows = document.getElementById("rows");
  rows.replaceChildren(
    ...adapters.map((a) => {
      const tr = el("tr", undefined, { "data-version": a.version });
      const action = el("td");
      if (a.state !== "active") {
        const b = el("button", "Activate", { type: "button", "aria-label": `Activate ${a.version}` });
        b.addEventListener("click", () => post("/api/admin/adapters/activate", { version: a.version }));
        action.append(b);
      }
      const gate = a.gate ? `${a.gate.activated ? "activated" : "not activated"} — ${a.gate.reason}` : null;
      tr.append(cell(a.version), el("td", a.state, { class: `state ${a.state}` }), cell(a.runId === null ? null : `#${a.runId}`), cell(a.heldOut), cell(a.accuracy?.base), cell(a.accuracy?.live), cell(a.accuracy?.candidate), cell(gate), action);
      return tr;
    }),
  );
  if (!adapters.length) rows.append(el("tr")).append(el("td", "No adapters yet.", { colspan: "9" }));
  const box = document.getElementById("chart");
  box.querySelectorAll(".chart-box").forEach((c) => window.echarts.getInstanceByDom(c)?.dispose());
  box.replaceChildren();
  if (chart) {
    const c = chartFigure("Held-out metrics per adapter", chart);
    box.append(c.fig);
    c.draw();
  }
}

async function post(path, body) {
  const { csrfToken } = await session();
  const res = await call(path, { method: "POST", body, csrf: csrfToken });
  if (refusedHere(res)) return;
  await load();
  say(res.data.notice, !res.data.ok);
}

document.getElementById("rollback").addEventListener("click", () => post("/api/admin/adapters/rollback"));
void renderNav();
void load();
