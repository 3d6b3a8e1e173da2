// The Steers admin page: filter, the diff of each steer (prefix grey, rejected red struck
// through, chosen green — text nodes only), its context on demand, approve / reject one or the
// selected ones, and the export link of the current filter.
import { session } from "./studio-client.js";
import { call, el, refusedHere, renderNav, say } from "./admin-common.js";

const form = document.getElementById("filter");
const rows = document.getElementById("rows");
const PREFIX_SHOWN = 300;

function filterQuery() {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (String(v).trim() !== "" && !(k === "state" && v === "all")) q.set(k, String(v).trim());
  return q;
}

function updateExportLink() {
  const q = filterQuery();
  q.set("format", document.getElementById("export-format").value);
  document.getElementById("export").href = `/api/admin/steers/export?${q}`;
}

/** The steer as a diff: what the model kept, what it was stopped at, what the person wrote. */
function diff(s) {
  const box = el("span", undefined, { class: "diff" });
  const prefix = s.prefix.length > PREFIX_SHOWN ? `…${s.prefix.slice(-PREFIX_SHOWN)}` : s.prefix;
  box.append(el("span", prefix, { class: "prefix" }), el("del", s.rejected, { class: "rejected" }), el("ins", s.chosen, { class: "chosen" }));
  return box;
}

async function toggleContext(s, button, cell) {
  const open = button.getAttribute("aria-expanded") === "true";
  cell.querySelector(".context")?.remove();
  button.setAttribute("aria-expanded", String(!open));
  if (open) return;
  const res = await call(`/api/admin/steers/${s.id}/context`);
  if (refusedHere(res)) return;
  const list = el("ol", undefined, { class: "context", "aria-label": `Context of steer #${s.id}` });
  if (!res.data.ok) list.append(el("li", res.data.notice));
  for (const m of res.data.context ?? []) {
    const li = el("li");
    li.append(el("strong", `${m.role}: `), el("span", m.content));
    list.append(li);
  }
  cell.append(list);
}

function row(s) {
  const tr = el("tr", undefined, { "data-steer": String(s.id) });
  const pick = el("input", undefined, { type: "checkbox", class: "pick", "aria-label": `Select steer #${s.id}`, value: String(s.id) });
  const td = (child) => {
    const c = el("td");
    if (child instanceof Node) c.append(child);
    else c.textContent = child ?? "";
    return c;
  };
  const steerCell = td(diff(s));
  const ctx = el("button", "Context", { type: "button", "aria-label": `Context of steer #${s.id}`, "aria-expanded": "false" });
  ctx.addEventListener("click", () => toggleContext(s, ctx, steerCell));
  steerCell.append(" ", ctx);
  const actions = el("td");
  for (const [verdict, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
    const b = el("button", label, { type: "button", "aria-label": `${label} steer #${s.id}` });
    b.addEventListener("click", () => review([s.id], verdict));
    actions.append(b);
  }
  const who = [s.platform, s.author].filter(Boolean).join(":") || s.source;
  tr.append(td(pick), td(`#${s.id}`), td(el("span", s.state, { class: `state ${s.state}` })), td(who), td(s.createdAt.slice(0, 16).replace("T", " ")), steerCell, actions);
  return tr;
}

async function load() {
  updateExportLink();
  const res = await call(`/api/admin/steers?${filterQuery()}`);
  if (refusedHere(res)) return;
  if (!res.data.ok) return say(res.data.notice, true);
  rows.replaceChildren(...res.data.steers.map(row));
  document.getElementById("select-all").checked = false;
  const n = res.data.steers.length;
  say(`${n} steer(s)${n >= res.data.limit ? ` (the first ${res.data.limit})` : ""}.`);
}

async function review(ids, verdict) {
  if (ids.length === 0) return say("Select at least one steer first.", true);
  const { csrfToken } = await session();
  const res = await call("/api/admin/steers/review", { method: "POST", body: { ids, verdict }, csrf: csrfToken });
  if (refusedHere(res)) return;
  await load();
  say(res.data.notice, !res.data.ok);
}

const selected = () => [...rows.querySelectorAll("input.pick:checked")].map((c) => Number(c.value));
form.addEventListener("submit", (e) => {
  e.preventDefault();
  void load();
});
document.getElementById("export-format").addEventListener("change", updateExportLink);
form.addEventListener("input", updateExportLink);
document.getElementById("select-all").addEventListener("change", (e) => {
  for (const c of rows.querySelectorAll("input.pick")) c.checked = e.target.checked;
});
document.getElementById("approve-selected").addEventListener("click", () => review(selected(), "approve"));
document.getElementById("reject-selected").addEventListener("click", () => review(selected(), "reject"));

void renderNav();
void load();
