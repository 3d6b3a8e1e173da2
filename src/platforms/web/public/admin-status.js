// The Status admin page: the running instances (role, host, pid, what each serves, heartbeat),
// the training queue's depth, the running job (step/total, loss, ETA, worker) and its worker's
// heartbeat — what /status says, refreshed every 2 s. Server text only ever as textContent.
import { call, el, refusedHere, renderNav, say } from "./admin-common.js";

const REFRESH_MS = 2000;

function set(id, text) {
  document.getElementById(id).textContent = text ?? "—";
}

function who(i) {
  const where = [i.role, i.host && `host ${i.host}`, i.pid !== null && `pid ${i.pid}`].filter(Boolean).join(", ");
  return `${i.short}${i.self ? " (this instance)" : ""}${where ? ` — ${where}` : ""}`;
}

async function load() {
  const res = await call("/api/admin/status");
  if (refusedHere(res)) return false;
  if (!res.data.ok) {
    say(res.data.notice, true);
    return true;
  }
  const { instances, queueDepth, running, takers } = res.data;
  set("queue-depth", `${queueDepth} job(s) queued${queueDepth > 0 && running.length === 0 && takers === 0 ? " — no running instance takes training jobs" : ""}`);
  const job = running[0];
  if (job) {
    set("job", `${job.short} (${job.trigger}, attempt ${job.attempts})`);
    set("job-progress", job.step !== null && job.steps !== null ? `step ${job.step}/${job.steps}` : "preparing (no step yet)");
    set("job-loss", job.loss === null ? null : job.loss.toFixed(4));
    set("job-eta", job.eta);
    set("job-worker", job.worker ? who(job.worker) : job.workerInstance ? `${job.workerInstance.slice(0, 8)} (not running)` : null);
    set("worker-heartbeat", job.workerHeartbeat);
  } else {
    set("job", "none running");
    for (const id of ["job-progress", "job-loss", "job-eta", "job-worker"]) set(id, null);
    set("worker-heartbeat", "no job running");
  }
  const rows = document.getElementById("instances");
  rows.replaceChildren(
    ...instances.map((i) => {
      const tr = el("tr", undefined, { "data-instance": i.instanceId });
      tr.append(
        el("td", `${i.short}${i.self ? " (this instance)" : ""}`),
        el("td", i.role ?? "unknown"),
        el("td", i.host ?? "—"),
        el("td", i.pid ?? "—"),
        el("td", i.serves ?? "—"),
        el("td", i.runsJobs === null ? "—" : i.runsJobs ? "yes" : "no"),
        el("td", i.heartbeat ?? "—", { class: "heartbeat" }),
      );
      return tr;
    }),
  );
  if (!instances.length) rows.append(el("tr")).append(el("td", "No running instance announced itself.", { colspan: "7" }));
  say(`As of ${res.data.at.slice(11, 19)} UTC.`);
  return true;
}

async function loop() {
  let go = true;
  try {
    go = await load();
  } catch (e) {
    say(`Could not read the status: ${e.message}`, true);
  }
  if (go) setTimeout(loop, REFRESH_MS);
}

void renderNav();
void loop();
