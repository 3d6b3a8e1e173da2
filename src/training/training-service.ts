/**
 * The training pipeline: steers collected during the day become a better model by the next
 * morning, with no restart and no risk to the live bot.
 *
 * Owns: one run from trigger to activation — the cross-instance lock (one run at a time),
 * the "too few new steers" skip, the dataset (approved steers of people who did not opt out,
 * a held-out split by a stable hash of the steer id), the native trainer run with progress,
 * the evaluation gate (base, live and candidate on the held-out steers; activate only when the
 * candidate beats the live one by the configured margin) and the summary with a loss-curve
 * picture. A failed or killed run is recorded as `failed` and never touches the live adapter.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { dataDir, type AppConfig } from "../config/config.ts";
import type { TrainingControl } from "../core/admin-commands.ts";
import type { Actor, Outcome, TrainingStep } from "../core/ports.ts";
import type { SteerRecord } from "../core/steer-record.ts";
import type { Logger } from "../log.ts";
import { PersonalData } from "../store/personal-data.ts";
import { SteerRepository } from "../store/steer-repository.ts";
import type { Store } from "../store/store.ts";
import type { AdapterRow } from "../store/database.ts";
import { cpuCores, type Engine } from "../engine/engine.ts";
import { resolveModelPath } from "../engine/model-file.ts";
import { AdapterNotRecordedError, AdapterRefusedError, type AdapterActivator } from "./adapter-activator.ts";
import { evaluateSteers, type SteerEvaluationSummary } from "./evaluate-steers.ts";
import { renderChartPng } from "./charts/render-chart.ts";
import { lossCurveOption, pct, type GateDecision } from "./charts/training-charts.ts";
import { steerContinuations } from "./steer-continuations.ts";
import { trainAdapter, type TrainProgress } from "./train-adapter.ts";

export type Trigger = "cron" | "command" | "cli";

export interface RunRequest {
  trigger: Trigger;
  actor?: Actor;
  /** Short progress texts (an admin message being edited, a log line). */
  progress?: (text: string) => Promise<void> | void;
  /** Every trainer progress event (the CLI draws a progress bar from them). */
  onTrainerProgress?: (p: TrainProgress) => void;
  /** The run's id once recorded (a queued job links to it). */
  onRunCreated?: (runId: number) => void | Promise<void>;
  /** Who asked, when no actor is at hand (a queued job carries the name). */
  requestedBy?: string;
  /**
   * Stops the run like a cancel, for another reason than an admin's (the queue taking its job
   * back: the worker is stopping). The run is recorded as cancelled with the reason's message.
   */
  signal?: AbortSignal;
}

export interface RunOutcome extends Outcome {
  runId?: number;
  state: "succeeded" | "failed" | "skipped" | "busy" | "cancelled";
  adapterVersion?: string;
  activated?: boolean;
}

export interface TrainingServiceDeps {
  store: Store;
  config: AppConfig;
  log: Logger;
  activator: AdapterActivator;
  baseFingerprint: () => Promise<string>;
  /**
   * The engine serving now: training tokenizes through it (no extra model loads in the bot)
   * and, with `training.base_model` empty, trains on its file (already resolved from `hf:`).
   */
  engine: () => Engine;
  /**
   * Caps the bot's generation threads while the trainer runs (undefined restores them):
   * spinning llama.cpp threads must never outnumber the cores.
   */
  limitGenerationThreads?: (limit?: number) => void;
  /** A local file of a stored adapter (adapter-cache.ts); its `file_path` when absent. */
  adapterFile?: (row: Pick<AdapterRow, "version" | "file_path" | "sha256">) => Promise<string>;
}

/**
 * How the cores are shared while a training run goes: the trainer's (and the evaluator's)
 * threads and the cap on the bot's generation threads, together never more than the cores
 * (on one core both get one: the bot must still answer). `setting` is `training.threads`
 * (0 = half the cores each, the trainer taking the odd one).
 */
export function threadBudget(cores: number, setting: number): { trainer: number; generation: number } {
  if (cores <= 1) return { trainer: 1, generation: 1 };
  const trainer = setting > 0 ? Math.min(setting, cores - 1) : Math.ceil(cores / 2);
  return { trainer, generation: cores - trainer };
}

/** A steer's side of the split: stable across runs because it depends on its id only. */
export function isHeldOut(steerId: number, fraction: number): boolean {
  const h = createHash("sha256").update(`steer:${steerId}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}

/** The number compared by the gate: preference accuracy, or the chosen log-prob when no steer has a rejected span. */
function score(e: SteerEvaluationSummary): number {
  return Number.isFinite(e.preferenceAccuracy) ? e.preferenceAccuracy : e.chosenLogprob;
}

export class TrainingService implements TrainingControl {
  private current: AbortController | undefined;

  constructor(private readonly deps: TrainingServiceDeps) {}

  /**
   * The local file the trainer trains on: `training.base_model`, or the served model's file
   * when that is empty. An `hf:` URI is resolved once here, to the same cached file the bot
   * uses, so nothing but a path reaches the native trainer.
   */
  async baseModelPath(): Promise<string> {
    const { config } = this.deps;
    const base = config.training.base_model;
    if (!base) return this.deps.engine().modelPath;
    return resolveModelPath(base, { modelsDir: path.join(dataDir(config), "models") });
  }

  async retrain(actor: Actor, progress: (text: string) => Promise<void>, onStep?: (step: TrainingStep) => void): Promise<Outcome> {
    return this.run({ trigger: "command", actor, progress, onTrainerProgress: onStep });
  }

  /** Cancels the run going on in this process, if any. */
  cancel(): boolean {
    if (!this.current) return false;
    this.current.abort();
    return true;
  }

  async run(req: RunRequest): Promise<RunOutcome> {
    const { store, log } = this.deps;
    const locked = await store.training.withRunLock((lost) => this.runLocked(req, lost));
    if (!locked.ran) {
      const running = await store.training.runningRun();
      const since = running ? ` (run #${running.id}, started ${running.started_at.toISOString().slice(0, 16).replace("T", " ")} UTC)` : "";
      return { ok: false, state: "busy", notice: `A training run is already going${since}. Wait for it to finish.` };
    }
    log.info({ state: locked.value.state, run: locked.value.runId }, "training run ended");
    return locked.value;
  }

  private async runLocked(req: RunRequest, lockLost: AbortSignal): Promise<RunOutcome> {
    const { store, config } = this.deps;
    const t = config.training;
    const say = async (text: string) => {
      try {
        await req.progress?.(text);
      } catch (e) {
        this.deps.log.warn({ err: e }, "could not post training progress");
      }
    };
    await store.training.failOrphanedRuns("the process running it ended before it finished");
    const engine = this.deps.engine();
    const baseModel = await this.baseModelPath();
    const threads = threadBudget(cpuCores(), t.threads);
    const hyper = { rank: t.rank, alpha: t.alpha, epochs: t.epochs, learningRate: t.learning_rate, heldOutFraction: t.held_out_fraction, seed: t.seed, baseModel, threads: threads.trainer };
    const since = await store.training.lastSucceededAt();
    const fresh = await store.steers.countApprovedSince(since);
    if (fresh < t.min_new_steers) {
      const runId = await store.training.createRun({ trigger: req.trigger, requestedBy: actorName(req.actor) ?? req.requestedBy, objective: t.objective, hyperparameters: hyper, state: "skipped" });
      const notice = `Skipped: ${fresh} new approved steer(s) since the last training; at least ${t.min_new_steers} are needed (training.min_new_steers).`;
      await store.training.updateRun(runId, { error: notice, finished: true });
      return { ok: true, state: "skipped", runId, notice };
    }

    const rows = await store.steers.listForTraining({ approximate: t.approximate_steers === "include" });
    const trainRows = rows.filter((r) => !isHeldOut(r.id, t.held_out_fraction));
    const train: SteerRecord[] = trainRows.map((r) => SteerRepository.toRecord(r));
    const heldOut: SteerRecord[] = rows.filter((r) => isHeldOut(r.id, t.held_out_fraction)).map((r) => SteerRepository.toRecord(r));
    // replay anchors, and the words after each chosen span: the retention term's hold on the
    // model's ordinary answers and on what follows a correction
    const anchors = t.retention > 0 ? await store.conversations.unsteeredReplies(t.anchors) : [];
    // (cut at every steer on a reply, held out or not approved too: each is a person's correction)
    const replies = trainRows.flatMap((r) => (r.generation_id === null ? [] : [r.generation_id]));
    const after = t.retention > 0 ? steerContinuations(await store.steers.placesOn(replies), await store.conversations.finalTexts(replies), PersonalData.holdsNoWithheldText) : new Map<number, string>();
    const continuations = trainRows.map((r) => after.get(r.id));
    const runId = await store.training.createRun({ trigger: req.trigger, requestedBy: actorName(req.actor) ?? req.requestedBy, objective: t.objective, hyperparameters: hyper });
    await req.onRunCreated?.(runId);
    await store.training.updateRun(runId, { steer_count: train.length });
    const version = `v${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}-${runId}-${randomBytes(2).toString("hex")}`;
    const adaptersDir = path.join(dataDir(config), "adapters");
    mkdirSync(adaptersDir, { recursive: true });
    const file = path.join(adaptersDir, `${version}.gguf`);
    const abort = (this.current = new AbortController());
    const onLockLost = () => abort.abort(lockLost.reason);
    lockLost.addEventListener("abort", onLockLost, { once: true });
    const onStop = () => abort.abort(req.signal!.reason);
    if (req.signal?.aborted) onStop();
    else req.signal?.addEventListener("abort", onStop, { once: true });
    const logLines: string[] = [];
    let lastSaid = 0;
    try {
      if (train.length === 0) throw new Error("every approved steer fell into the held-out split: collect more steers or lower training.held_out_fraction");
      this.deps.limitGenerationThreads?.(threads.generation);
      const held = anchors.length ? `, holding ${anchors.length} unsteered repl${anchors.length === 1 ? "y" : "ies"} as they are` : "";
      await say(`Training run #${runId}: ${train.length} steers (${heldOut.length} held out), objective ${t.objective}${held}…`);
      const result = await trainAdapter(
        {
          model: baseModel,
          engine,
          threads: threads.trainer,
          steers: train,
          out: `${file}.partial`,
          objective: t.objective,
          rank: t.rank,
          alpha: t.alpha,
          epochs: t.epochs,
          lr: t.learning_rate,
          retention: t.retention,
          learnedAt: t.learned_at,
          anchors,
          continuations,
          computeType: t.compute_type,
          seed: t.seed,
          signal: abort.signal,
        },
        (p) => {
          req.onTrainerProgress?.(p);
          logLines.push(JSON.stringify(p));
          if (logLines.length > 200) logLines.shift();
          if (Date.now() - lastSaid > 5000) {
            lastSaid = Date.now();
            void say(`Training run #${runId}: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(4)}, ${Math.round(p.tokensPerSecond)} tokens/s`);
          }
        },
      );
      copyFileSync(`${file}.partial`, file);
      rmSync(`${file}.partial`, { force: true });
      await store.training.updateRun(runId, { loss_curve: result.lossCurve.map((p) => ({ step: p.step, loss: p.loss })), log_tail: logLines.slice(-50).join("\n") });

      await say(`Training run #${runId}: evaluating on ${heldOut.length} held-out steers…`);
      const evalSet = heldOut.length ? heldOut : train;
      // on the served file (the adapter is for it), tokenized once through the live engine
      const evaluate = (adapter?: string) => evaluateSteers({ model: engine.modelPath, adapter, steers: evalSet, engine, threads: threads.trainer, signal: abort.signal });
      const base = await evaluate();
      const liveRow = await store.training.activeAdapter(await this.deps.baseFingerprint());
      const live = liveRow ? await evaluate(this.deps.adapterFile ? await this.deps.adapterFile(liveRow) : liveRow.file_path) : base;
      const cand = await evaluate(file);
      const wins = heldOut.length > 0 && score(cand) >= score(live) + t.min_improvement;
      const gate: GateDecision = { activated: wins, reason: gateReason(heldOut.length, score(cand), score(live), t.min_improvement, Number.isFinite(cand.preferenceAccuracy)) };
      const metrics = {
        heldOut: heldOut.length,
        evaluatedOn: heldOut.length ? "held-out" : "training steers (no held-out steers yet)",
        base: summary(base),
        live: liveRow ? { version: liveRow.version, ...summary(live) } : null,
        candidate: summary(cand),
        gate,
      };
      // stored in the database, so that every instance on any machine can fetch and verify it
      const { sha256 } = await store.adapterBlobs.put(version, file);
      const row = await store.training.addAdapter({ version, filePath: file, sha256, baseFingerprint: await this.deps.baseFingerprint(), trainingRunId: runId, state: wins ? "candidate" : "rejected", metrics });
      let activated = false;
      if (wins) {
        try {
          // Checked and loaded here, recorded as active (which tells the other instances), then live.
          await this.deps.activator.swapTo(version, () => store.training.activate(row.base_fingerprint, version));
          activated = true;
        } catch (e) {
          if (!(e instanceof AdapterRefusedError || e instanceof AdapterNotRecordedError)) throw e;
          await store.training.setAdapterState(row.id, "rejected").catch((err) => this.deps.log.warn({ err }, "could not mark the refused adapter rejected"));
          metrics.candidate = { ...metrics.candidate, refused: e.message } as typeof metrics.candidate;
          metrics.gate = { activated: false, reason: `the candidate won but was refused at activation: ${e.message}` };
        }
      }
      await store.training.updateRun(runId, { state: "succeeded", eval_before: metrics.live ?? metrics.base, eval_after: metrics.candidate, finished: true });
      const png = path.join(adaptersDir, `${version}-loss.png`);
      writeFileSync(png, renderChartPng(lossCurveOption({ runId, lossCurve: result.lossCurve, metrics, adapterVersion: version })));
      const losses = result.lossCurve.map((p) => p.loss);
      const notice = [
        `Training run #${runId} done: adapter ${version} ${activated ? "is now live ✅" : "was not activated"}.`,
        `Preference accuracy on ${heldOut.length} held-out steers: base ${pct(base.preferenceAccuracy)}, live ${pct(live.preferenceAccuracy)}, candidate ${pct(cand.preferenceAccuracy)} (needs +${pct(t.min_improvement)} over live).`,
        heldOut.length === 0 ? "No held-out steers yet, so nothing is activated: collect more steers." : "",
        `Loss ${losses[0]?.toFixed(4) ?? "?"} → ${losses.at(-1)?.toFixed(4) ?? "?"} over ${result.steps} steps, ${Math.round(result.tokensPerSecond)} tokens/s on ${result.threads ?? "?"} thread(s), ${Math.round(result.seconds)} s.`,
      ]
        .filter(Boolean)
        .join("\n");
      return { ok: true, state: "succeeded", runId, notice, attachments: [png], adapterVersion: version, activated };
    } catch (e) {
      rmSync(`${file}.partial`, { force: true });
      const lostLock = lockLost.aborted;
      const cancelled = abort.signal.aborted && !lostLock;
      const reason = lostLock
        ? `stopped: the connection holding the training lock dropped (${(lockLost.reason as Error).message}), so another instance may start a run now`
        : cancelled
          ? req.signal?.aborted
            ? `stopped: ${(req.signal.reason as Error)?.message ?? "the queue took the job back"}`
            : "cancelled by an admin"
          : (e as Error).message;
      await store.training.updateRun(runId, { state: cancelled ? "cancelled" : "failed", error: reason, log_tail: logLines.slice(-50).join("\n"), finished: true });
      this.deps.log.error({ err: e, run: runId }, "training run failed");
      return { ok: false, state: cancelled ? "cancelled" : "failed", runId, notice: `Training run #${runId} ${cancelled ? "was cancelled" : `failed: ${reason}`}. The live adapter is unchanged.` };
    } finally {
      lockLost.removeEventListener("abort", onLockLost);
      req.signal?.removeEventListener("abort", onStop);
      this.current = undefined;
      this.deps.limitGenerationThreads?.(undefined);
    }
  }

  async adapters(action: "list" | "activate" | "rollback", version?: string): Promise<Outcome> {
    const { store } = this.deps;
    const base = await this.deps.baseFingerprint();
    const rows = await store.training.adapters(base);
    if (action === "list") {
      if (rows.length === 0) return { ok: true, notice: "No adapters yet." };
      return { ok: true, notice: rows.map((r) => `${r.version}: ${r.state}${accuracyOf(r.metrics)}`).join("\n") };
    }
    let target: string | null;
    if (action === "activate") {
      if (!version) return { ok: false, notice: "Name the adapter version to activate (see the list)." };
      const row = rows.find((r) => r.version === version);
      if (!row) return { ok: false, notice: `There is no adapter ${version} for this base model.` };
      target = version;
    } else {
      // Rollback: the adapter active before the current one, or the base model.
      const active = rows.find((r) => r.state === "active");
      const earlier = rows.filter((r) => r.state === "retired" && (!active || r.id < active.id)).at(-1);
      target = earlier?.version ?? null;
    }
    try {
      // checked and loaded here, recorded (every instance hears it), then live here
      await this.deps.activator.swapTo(target, () => store.training.activate(base, target));
    } catch (e) {
      if (e instanceof AdapterRefusedError) return { ok: false, notice: `Refused: ${e.message}` };
      if (e instanceof AdapterNotRecordedError) return { ok: false, notice: `Not activated: ${e.message}` };
      throw e;
    }
    return { ok: true, notice: target ? `Adapter ${target} is now live.` : "Back to the base model (no adapter)." };
  }

  async describeActive(): Promise<string> {
    return this.deps.activator.liveVersion ?? "none (base model)";
  }
}

function summary(e: SteerEvaluationSummary) {
  return { pairs: e.pairs, preferenceAccuracy: e.preferenceAccuracy, meanMargin: e.meanMargin, chosenLogprob: e.chosenLogprob };
}

/**
 * Why the gate decided as it did, in the words the charts and the admin pages show: the
 * compared numbers (preference accuracy, or the chosen log-prob when no steer has a rejected span).
 */
export function gateReason(heldOut: number, candidate: number, live: number, margin: number, accuracy: boolean): string {
  if (heldOut === 0) return "no held-out steers yet, so nothing is activated";
  const f = (x: number) => (accuracy ? pct(x) : x.toFixed(3));
  const what = accuracy ? "held-out accuracy" : "held-out chosen log-prob";
  const need = accuracy ? pct(margin) : margin.toFixed(3);
  return candidate >= live + margin
    ? `candidate ${what} ${f(candidate)} beats live ${f(live)} by at least ${need}`
    : `candidate ${what} ${f(candidate)} does not beat live ${f(live)} by ${need}`;
}

function accuracyOf(metrics: Record<string, unknown>): string {
  const c = (metrics.candidate as { preferenceAccuracy?: number } | undefined)?.preferenceAccuracy;
  return typeof c === "number" ? ` (held-out accuracy ${pct(c)})` : "";
}

function actorName(a?: Actor): string | undefined {
  return a ? `${a.platform}:${a.userId}` : undefined;
}
