/**
 * Admin commands shared by every platform: status, pending steers and their review, retrain,
 * adapters, and each user's own privacy commands (opt-out, forget).
 *
 * Owns: who may run each command and the short text answers. Platforms only render them.
 */
import type { InstanceStatus, Operations } from "../store/operations.ts";
import type { AdminStore } from "./core-store.ts";
import type { Permissions } from "./permissions.ts";
import type { Actor, Outcome, TrainingStep } from "./ports.ts";
import type { TextGenerator } from "./text-generator.ts";

/** The training pipeline as the admin commands see it (provided once training lands in the build). */
export interface TrainingControl {
  retrain(actor: Actor, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome>;
  adapters(action: "list" | "activate" | "rollback", version?: string): Promise<Outcome>;
  describeActive(): Promise<string>;
  /** Cancels the run going on in this process; false when there is none. */
  cancel(): boolean;
  /** Cancels the queued or running training job wherever it runs (the job queue); preferred over `cancel` when present. */
  cancelJob?(): Promise<Outcome>;
}

const NOT_ADMIN: Outcome = { ok: false, notice: "Sorry, only admins can do that." };
const PREVIEW = 60;
const MAX_INSTANCES_LISTED = 8;

export class AdminCommands {
  constructor(
    private readonly deps: {
      store: AdminStore;
      permissions: Permissions;
      engine: Pick<TextGenerator, "modelPath" | "fingerprint">;
      /** The training pipeline, once attached (undefined in a build or run without it). */
      training: () => TrainingControl | undefined;
      activeGenerations: () => number;
      /**
       * Stops and drops the live replies that hold a forgotten person's words (theirs, and
       * every reply in the threads they took part in), so none is saved or steered again.
       */
      dropReplies?: (platform: string, userId: string, threadDbIds: readonly number[]) => Promise<void>;
    },
  ) {}

  async status(actor: Actor): Promise<Outcome> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const { store, engine } = this.deps;
    const training = this.deps.training();
    const counts = await store.steers.countByState();
    const since = await store.steers.countApprovedSince(await store.training.lastSucceededAt());
    const fp = (await engine.fingerprint()).slice(0, 12);
    const lines = [
      `Model: ${engine.modelPath} (sha256 ${fp}…)`,
      `Adapter: ${training ? await training.describeActive() : "none (training is not part of this build yet)"}`,
      `Replies generating: ${this.deps.activeGenerations()}`,
      `Steers: ${counts.approved} approved, ${counts.pending} pending, ${counts.rejected} rejected; ${since} approved since the last training`,
      ...describeOperations(await store.operations()),
    ];
    return { ok: true, notice: lines.join("\n") };
  }

  async pendingSteers(actor: Actor, limit = 10): Promise<Outcome & { steers?: { id: string; preview: string }[] }> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const rows = await this.deps.store.steers.list({ states: ["pending"], limit });
    if (rows.length === 0) return { ok: true, notice: "No steers are waiting for review.", steers: [] };
    const steers = rows.map((r) => ({ id: String(r.id), preview: `#${r.id} by ${r.author ?? "?"}: “${clipText(r.rejected)}” → “${clipText(r.chosen)}”` }));
    return { ok: true, notice: `${rows.length} steer(s) waiting for review:\n${steers.map((s) => s.preview).join("\n")}`, steers };
  }

  async reviewSteer(actor: Actor, steerId: string, verdict: "approve" | "reject"): Promise<Outcome> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const id = Number(steerId);
    if (!Number.isInteger(id) || id <= 0) return { ok: false, notice: `“${steerId}” is not a steer number.` };
    const row = await this.deps.store.steers.setTrust(id, verdict === "approve" ? "approved" : "rejected");
    if (!row) return { ok: false, notice: `There is no steer #${id}.` };
    return { ok: true, notice: `Steer #${id} ${verdict === "approve" ? "approved" : "rejected"}.` };
  }

  async reviewSteers(actor: Actor, steerIds: readonly number[], verdict: "approve" | "reject"): Promise<Outcome & { changed?: number[]; unchanged?: number[]; missing?: number[] }> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const ids = [...new Set(steerIds)];
    if (ids.length === 0) return { ok: false, notice: "Select at least one steer." };
    if (!ids.every((id) => Number.isInteger(id) && id > 0)) return { ok: false, notice: "Steer numbers are positive whole numbers." };
    const out = await this.deps.store.steers.review(ids, verdict === "approve" ? "approved" : "rejected");
    const done = verdict === "approve" ? "approved" : "rejected";
    const parts = [`${out.changed.length} steer(s) ${done}`];
    if (out.unchanged.length) parts.push(`${out.unchanged.length} already ${done}`);
    if (out.missing.length) parts.push(`no steer ${out.missing.map((id) => `#${id}`).join(", ")}`);
    return { ok: out.missing.length === 0, notice: `${parts.join("; ")}.`, ...out };
  }

  async retrain(actor: Actor, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const training = this.deps.training();
    if (!training) {
      return {
        ok: false,
        notice:
          "Retraining is not available in this build yet: the training pipeline (trainer run, evaluation gate, adapter hot-swap) has not landed. " +
          "Steers keep being collected; `steerbot export` hands them to an external trainer.",
      };
    }
    return training.retrain(actor, progress, onStep);
  }

  async cancelTraining(actor: Actor): Promise<Outcome> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const training = this.deps.training();
    if (training?.cancelJob) return training.cancelJob();
    if (!training?.cancel()) return { ok: false, notice: "No training run is going in this bot." };
    return { ok: true, notice: "Cancelling the training run; the live adapter stays as it is." };
  }

  async adapters(actor: Actor, action: "list" | "activate" | "rollback", version?: string): Promise<Outcome> {
    if (!this.deps.permissions.isAdmin(actor)) return NOT_ADMIN;
    const training = this.deps.training();
    if (training) return training.adapters(action, version);
    if (action === "list") {
      const rows = await this.deps.store.training.adapters();
      return { ok: true, notice: rows.length ? rows.map((r) => `${r.version}: ${r.state}`).join("\n") : "No adapters yet." };
    }
    return { ok: false, notice: "Adapters cannot be switched in this build yet: the training pipeline has not landed." };
  }

  /** Stops storing this user's messages and steers (their corrections still steer live replies). */
  async optOut(actor: Actor): Promise<Outcome> {
    await this.deps.store.users.setOptedOut(actor.platform, actor.userId, true);
    return { ok: true, notice: "Done: from now on, none of your messages or corrections are stored. Use /forget to delete what was stored before." };
  }

  /**
   * Deletes every copy of this user's words and id (store/personal-data.ts says where they
   * live), drops the live replies holding them, and keeps them opted out; asks first.
   */
  async forget(actor: Actor, confirmed: boolean): Promise<Outcome> {
    if (!confirmed) {
      return { ok: true, notice: "This deletes every message and steer of yours that steerbot stored, and stops storing new ones. Confirm to go ahead." };
    }
    const { store, dropReplies } = this.deps;
    // Live replies first: one still generating would otherwise save its text after the forget.
    await dropReplies?.(actor.platform, actor.userId, await store.personalData.threadsOf(actor.platform, actor.userId));
    const out = await store.personalData.forget(actor.platform, actor.userId);
    await dropReplies?.(actor.platform, actor.userId, out.threadIds); // any that started meanwhile
    const others = out.othersDeleted + out.othersRewritten;
    return {
      ok: true,
      notice: `Deleted ${out.steers} steer(s) and ${out.messages} message(s) of yours${others ? `, and removed your words from ${others} other record(s)` : ""}. Nothing of yours will be stored again.`,
    };
  }
}

/**
 * The operations part of `/status`: the running instances (id, role, host/pid, live adapter,
 * heartbeat), the training queue's depth, the running job (step/total, loss, ETA, worker) and
 * its worker's heartbeat age. Also shown by the studio's Status page (as data).
 */
export function describeOperations(ops: Operations): string[] {
  // a chat message has room for a few (Discord: 2000 characters in all)
  const shown = ops.instances.slice(0, MAX_INSTANCES_LISTED);
  const lines = [`Instances: ${ops.instances.length} running${ops.instances.length ? ":" : ""}`, ...shown.map((i) => `  ${describeInstance(i)}`)];
  if (ops.instances.length > shown.length) lines.push(`  … and ${ops.instances.length - shown.length} more (the studio's Status page lists them all)`);
  const takers = ops.instances.filter((i) => i.runsJobs);
  const waiting = ops.queueDepth > 0 && ops.running.length === 0 && takers.length === 0 ? " (no running instance takes training jobs: start `steerbot worker`, or a bot with training.run_here)" : "";
  lines.push(`Training queue: ${ops.queueDepth} job(s) queued${waiting}`);
  if (ops.running.length === 0) lines.push("Training job: none running", "Worker heartbeat: no job running");
  for (const j of ops.running) {
    const progress = j.step !== null && j.steps !== null ? `step ${j.step}/${j.steps}` : "preparing (no step yet)";
    const loss = j.loss !== null && Number.isFinite(j.loss) ? `, loss ${j.loss.toFixed(4)}` : "";
    const eta = j.etaSeconds !== null && Number.isFinite(j.etaSeconds) ? `, ETA ${formatSeconds(j.etaSeconds)}` : "";
    const worker = j.worker ? describeWorker(j.worker) : j.workerInstance ? `${j.workerInstance.slice(0, 8)} (not running: its job is handed back at the next worker check)` : "?";
    lines.push(`Training job: ${j.id.slice(0, 8)} running on ${worker}, ${progress}${loss}${eta} (attempt ${j.attempts})`);
    lines.push(`Worker heartbeat: ${formatSeconds(j.workerHeartbeatAgeSeconds)} ago`);
  }
  return lines;
}

function describeWorker(i: InstanceStatus): string {
  const where = [i.role, i.host && `host ${i.host}`, i.pid !== null && `pid ${i.pid}`].filter(Boolean).join(", ");
  return `${i.instanceId.slice(0, 8)}${i.self ? " (this instance" + (where ? `, ${where}` : "") + ")" : where ? ` (${where})` : ""}`;
}

function describeInstance(i: InstanceStatus): string {
  const parts = [i.role ?? "role unknown"];
  if (i.host) parts.push(`host ${i.host}`);
  if (i.pid !== null) parts.push(`pid ${i.pid}`);
  if (i.self) parts.push("this one");
  if (i.adapterVersion !== undefined) parts.push(`serves ${i.adapterVersion ?? "the base model"}`);
  if (i.runsJobs) parts.push("takes training jobs");
  parts.push(i.heartbeatAgeSeconds === null ? "no heartbeat recorded" : `heartbeat ${formatSeconds(i.heartbeatAgeSeconds)} ago`);
  return `${i.instanceId.slice(0, 8)}: ${parts.join(", ")}`;
}

/** 42 s, 3 min 5 s, 2 h 10 min. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

/** A span on one line, clipped to a preview's length (admin listings, `steerbot steers list`). */
export function clipText(s: string): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > PREVIEW ? `${one.slice(0, PREVIEW - 1)}…` : one;
}
