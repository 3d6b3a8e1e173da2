/**
 * The live progress of a training run started from the studio, for every open Training page.
 *
 * Owns: starting a run through the admin port (the same `/retrain` command, lock and rules as
 * the chat platforms: a second request while one runs is told so by the training service), the
 * run's steps as they come (step, loss, ETA and the loss-curve chart built by the same option
 * builder as the PNG), and fanning them out to subscribers (the SSE streams). Runs started
 * elsewhere (a chat's /retrain, the nightly job) have no live feed here; the page lists them.
 */
import type { EChartsOption } from "echarts";
import type { Actor, AdminPort, Outcome, TrainingStep } from "../../core/ports.ts";
import type { Logger } from "../../log.ts";
import { lossCurveOption } from "../../training/charts/training-charts.ts";

export type FeedEvent =
  | { type: "state"; running: boolean; runId: number | null; step: TrainingStep | null; chart: EChartsOption | null }
  | { type: "step"; runId: number | null; step: TrainingStep; chart?: EChartsOption }
  | { type: "text"; text: string }
  | { type: "done"; ok: boolean; notice: string; runId: number | null };

/** Charts sent with steps at most this often (each carries every point so far). */
const CHART_EVERY_MS = 500;

export class TrainingFeed {
  private readonly listeners = new Set<(e: FeedEvent) => void>();
  private running = false;
  private runId: number | null = null;
  /** The lookup of the run's id when the first step came before it was known. */
  private idLookup: Promise<void> | undefined;
  private points: { step: number; loss: number }[] = [];
  private last: TrainingStep | null = null;
  private lastChartAt = 0;

  constructor(
    private readonly deps: {
      admin: Pick<AdminPort, "retrain">;
      /** The id of the run going now (the store's `running` run). */
      runningRunId: () => Promise<number | null>;
      log: Logger;
    },
  ) {}

  /**
   * Asks for a run. Resolves as soon as it is known whether this request runs: with its first
   * progress text (`started`), or with the service's answer when it did not start (busy,
   * too few steers, not an admin).
   */
  start(actor: Actor): Promise<Outcome & { started: boolean; runId?: number | null }> {
    let settle!: (o: Outcome & { started: boolean; runId?: number | null }) => void;
    const first = new Promise<Outcome & { started: boolean; runId?: number | null }>((r) => (settle = r));
    let mine = false;
    let begun: Promise<void> = Promise.resolve();
    const run = this.deps.admin.retrain(
      actor,
      async (text) => {
        if (!mine) {
          mine = true;
          begun = this.begin();
          await begun;
          settle({ ok: true, started: true, notice: text, runId: this.runId });
        }
        this.emit({ type: "text", text });
      },
      (step) => {
        if (mine) this.step(step);
      },
    );
    run.then(
      async (out) => {
        if (mine) {
          await begun;
          this.finish(out.ok, out.notice ?? "The run ended.");
        }
        settle({ ...out, started: false });
      },
      async (err: Error) => {
        this.deps.log.error({ err }, "training run from the studio failed");
        if (mine) {
          await begun;
          this.finish(false, `The run failed: ${err.message}`);
        }
        settle({ ok: false, started: false, notice: `The run failed: ${err.message}` });
      },
    );
    return first;
  }

  /** Calls `fn` with every event from now on, the current state first; returns the unsubscribe. */
  subscribe(fn: (e: FeedEvent) => void): () => void {
    fn({ type: "state", running: this.running, runId: this.runId, step: this.last, chart: this.running ? this.chart() : null });
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private async begin(): Promise<void> {
    this.running = true;
    this.points = [];
    this.last = null;
    this.idLookup = undefined;
    this.runId = await this.deps.runningRunId().catch(() => null);
    this.emit({ type: "state", running: true, runId: this.runId, step: null, chart: this.chart() });
  }

  private step(p: TrainingStep): void {
    const step = { step: p.step, steps: p.steps, loss: p.loss, etaSeconds: p.etaSeconds, tokensPerSecond: p.tokensPerSecond };
    this.last = step;
    this.points.push({ step: p.step, loss: p.loss });
    const now = Date.now();
    const withChart = now - this.lastChartAt >= CHART_EVERY_MS || p.step >= p.steps;
    if (withChart) this.lastChartAt = now;
    const send = () => this.emit({ type: "step", runId: this.runId, step, ...(withChart ? { chart: this.chart() } : {}) });
    if (this.runId !== null) return send();
    // A queued job's first text comes before its run is recorded; by the first step the run
    // exists, so it is looked up once and the steps waiting on it go out in order, with it.
    this.idLookup ??= this.deps
      .runningRunId()
      .catch(() => null)
      .then((id) => {
        this.runId = id;
      });
    void this.idLookup.then(send);
  }

  private finish(ok: boolean, notice: string): void {
    this.running = false;
    // after any step still waiting for the run's id
    void (this.idLookup ?? Promise.resolve()).then(() => this.emit({ type: "done", ok, notice, runId: this.runId }));
  }

  private chart(): EChartsOption {
    return lossCurveOption({ runId: this.runId ?? 0, lossCurve: this.points });
  }

  private emit(e: FeedEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.deps.log.warn({ err }, "a training progress listener failed");
      }
    }
  }
}
