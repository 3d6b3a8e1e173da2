/**
 * steerbot's Prometheus metrics (prom-client): one registry per app instance, never prom-client's
 * global default one, so several apps in one process (the tests) each count their own.
 *
 * Owns: the metric names, their help texts, labels and buckets; turning the core's events
 * ({@link CoreObserver}) and the bots' events ({@link PlatformObserver}, the same events the
 * bots' in-memory counters see) into counters and histograms; timing training jobs; and, at
 * every scrape, reading the operations snapshot (instances, queue depth, running job, worker
 * heartbeat: Store.operations) into gauges. Knows no platform SDK and serves no HTTP
 * (metrics-server.ts and the studio do).
 *
 * Names (all `steerbot_…`; README "Observability"):
 * - counters: `replies_started_total{platform,trigger}`, `replies_finished_total{platform,outcome}`,
 *   `stops_total{platform}`, `steers_total{platform,status}`, `rate_limited_total{platform,handling}`
 *   (the platform's 429s), `refusals_total{platform,reason}` (the bot's own "too fast"/"busy"
 *   answers), `reply_update_errors_total{platform,op}`, `platform_handler_errors_total{platform}`;
 * - histograms: `edit_latency_seconds{platform,op}`, `stop_latency_seconds{platform}`,
 *   `training_job_duration_seconds{outcome}`;
 * - gauges read at scrape: `replies_generating`, `training_queue_depth`,
 *   `training_job_running{job_id,worker_instance,worker_role}` (1 while a job runs; one series
 *   without labels at 0 otherwise), `training_job_progress_ratio{job_id}`, `training_job_loss{job_id}`,
 *   `training_job_eta_seconds{job_id}`, `worker_heartbeat_age_seconds{job_id,worker_instance}`
 *   (the job gauges only while a job runs), `instances_alive{role}`,
 *   `instance_heartbeat_age_seconds{instance_id,role,host}`, `database_up`,
 *   `info{instance_id,role,version}`;
 * - and prom-client's default process metrics (`process_*`, `nodejs_*`).
 */
import { createRequire } from "node:module";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CoreObserver, RefusalReason, SteerStatus, StreamOutcome, StreamTrigger } from "../core/core-observer.ts";
import type { PlatformObserver } from "../platforms/platform-metrics.ts";
import type { TrainingJobRow } from "../store/database.ts";
import type { Operations } from "../store/operations.ts";

const VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

/** Where a bot's updates wait on a platform: milliseconds to a few seconds (Telegram's pacing). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Training jobs: seconds (a skip) to hours. */
const JOB_BUCKETS = [1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800, 43_200];
const FINAL = new Set(["succeeded", "failed", "cancelled", "skipped"]);

export interface MetricsOptions {
  /** This process in the database (Store.instanceId), for `steerbot_info`. */
  instanceId: string;
  /** "bot" or "worker". */
  role: string;
  /** Read at every scrape: instances, queue depth, the running job (Store.operations). */
  operations?: () => Promise<Operations>;
  /** Read at every scrape: replies generating now (the core's count). */
  generating?: () => number;
  /** prom-client's default process and Node.js metrics (default true). */
  processMetrics?: boolean;
  /** Told when the scrape-time reads fail (the gauges then say `database_up 0`). */
  onError?: (err: unknown) => void;
}

type Labels<K extends string> = Partial<Record<K, string | number>>;

export class Metrics implements CoreObserver, PlatformObserver {
  readonly registry = new Registry();
  private readonly repliesStarted: Counter<"platform" | "trigger">;
  private readonly repliesFinished: Counter<"platform" | "outcome">;
  private readonly stops: Counter<"platform">;
  private readonly steers: Counter<"platform" | "status">;
  private readonly rateLimits: Counter<"platform" | "handling">;
  private readonly refusals: Counter<"platform" | "reason">;
  private readonly updateErrors: Counter<"platform" | "op">;
  private readonly handlerErrors: Counter<"platform">;
  private readonly editLatency: Histogram<"platform" | "op">;
  private readonly stopLatency: Histogram<"platform">;
  private readonly jobDuration: Histogram<"outcome">;
  private readonly g: {
    generating: Gauge;
    queueDepth: Gauge;
    jobRunning: Gauge<"job_id" | "worker_instance" | "worker_role">;
    jobProgress: Gauge<"job_id">;
    jobLoss: Gauge<"job_id">;
    jobEta: Gauge<"job_id">;
    workerHeartbeat: Gauge<"job_id" | "worker_instance">;
    instancesAlive: Gauge<"role">;
    instanceHeartbeat: Gauge<"instance_id" | "role" | "host">;
    databaseUp: Gauge;
  };
  private rendering: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    const counter = <K extends string>(name: string, help: string, labelNames: K[]) => new Counter<K>({ name: `steerbot_${name}`, help, labelNames, registers });
    const histogram = <K extends string>(name: string, help: string, labelNames: K[], buckets: number[]) => new Histogram<K>({ name: `steerbot_${name}`, help, labelNames, buckets, registers });
    const gauge = <K extends string>(name: string, help: string, labelNames: K[] = []) => new Gauge<K>({ name: `steerbot_${name}`, help, labelNames, registers });

    this.repliesStarted = counter("replies_started_total", "Reply streams started: a question (trigger=question) or the continuation after a steer (trigger=steer).", ["platform", "trigger"]);
    this.repliesFinished = counter("replies_finished_total", "Reply streams ended, by outcome: done, stopped (a stop or a correction cut it), failed, gone (its message was deleted or refused), dropped (/forget).", ["platform", "outcome"]);
    this.stops = counter("stops_total", "Stops that cut a streaming reply.", ["platform"]);
    this.steers = counter("steers_total", "Steers applied to a reply, by status: approved or pending (stored so), withheld (the author opted out: applied, not stored).", ["platform", "status"]);
    this.rateLimits = counter("rate_limited_total", "Rate limits (429) the platform answered: absorbed (waited out, the call went on) or surfaced (still failing after the retries).", ["platform", "handling"]);
    this.refusals = counter("refusals_total", "The bot's own rate-limited or busy answers: ask_rate_limit, steer_rate_limit (per user per minute), busy (too many replies being written).", ["platform", "reason"]);
    this.updateErrors = counter("reply_update_errors_total", "Sends (op=send) and edits (op=edit) of reply messages that failed.", ["platform", "op"]);
    this.handlerErrors = counter("platform_handler_errors_total", "Platform update/event handlers that threw (logged, never fatal).", ["platform"]);
    this.editLatency = histogram("edit_latency_seconds", "From the core asking the platform to show a reply's text (op=send: a new message, op=edit: an edit) until the platform confirmed it; pacing and rate-limit waits included.", ["platform", "op"], LATENCY_BUCKETS);
    this.stopLatency = histogram("stop_latency_seconds", "From a stop's platform event (reaction, button) arriving until the reply was cut.", ["platform"], LATENCY_BUCKETS);
    this.jobDuration = histogram("training_job_duration_seconds", "Training jobs this process ran, from taking the job to its end, by outcome: succeeded, failed, cancelled, skipped, error (the worker failed unexpectedly).", ["outcome"], JOB_BUCKETS);
    this.g = {
      generating: gauge("replies_generating", "Replies being generated by this process now."),
      queueDepth: gauge("training_queue_depth", "Training jobs queued (waiting for a worker), across all instances."),
      jobRunning: gauge("training_job_running", "1 for the training job running now (labels: the job, its worker); a single 0 without labels when none runs.", ["job_id", "worker_instance", "worker_role"]),
      jobProgress: gauge("training_job_progress_ratio", "Trainer steps done / steps of the running training job (absent when none runs or before its first step).", ["job_id"]),
      jobLoss: gauge("training_job_loss", "Latest training loss of the running job (absent when none runs).", ["job_id"]),
      jobEta: gauge("training_job_eta_seconds", "Estimated seconds left of the running training job (absent when none runs).", ["job_id"]),
      workerHeartbeat: gauge("worker_heartbeat_age_seconds", "Seconds since the running job's worker last gave a sign of life (a heartbeat or a progress write of the job); absent when no job runs.", ["job_id", "worker_instance"]),
      instancesAlive: gauge("instances_alive", "steerbot processes running on this database (their instance lock is held), by role.", ["role"]),
      instanceHeartbeat: gauge("instance_heartbeat_age_seconds", "Seconds since each running instance's last heartbeat.", ["instance_id", "role", "host"]),
      databaseUp: gauge("database_up", "1 when the scrape could read the database (instances, queue, jobs), else 0."),
    };
    gauge<"instance_id" | "role" | "version">("info", "This process: its instance id (as /status shows it), role and steerbot version.", ["instance_id", "role", "version"]).set({ instance_id: opts.instanceId, role: opts.role, version: VERSION }, 1);
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition's Content-Type: `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in Prometheus text format, the scrape-time gauges read first (one scrape at a time). */
  render(): Promise<string> {
    const next = this.rendering.then(async () => {
      await this.refresh();
      return this.registry.metrics();
    });
    this.rendering = next.catch(() => {});
    return next;
  }

  private async refresh(): Promise<void> {
    const g = this.g;
    g.generating.set(this.opts.generating?.() ?? 0);
    if (!this.opts.operations) return;
    for (const m of [g.queueDepth, g.jobRunning, g.jobProgress, g.jobLoss, g.jobEta, g.workerHeartbeat, g.instancesAlive, g.instanceHeartbeat]) m.reset();
    let ops: Operations;
    try {
      ops = await this.opts.operations();
    } catch (err) {
      g.databaseUp.set(0);
      this.opts.onError?.(err);
      return;
    }
    g.databaseUp.set(1);
    g.queueDepth.set(ops.queueDepth);
    if (ops.running.length === 0) g.jobRunning.set(0);
    for (const j of ops.running) {
      const job = { job_id: j.id };
      g.jobRunning.set({ ...job, worker_instance: j.workerInstance ?? "", worker_role: j.worker?.role ?? "" }, 1);
      if (j.step !== null && j.steps) g.jobProgress.set(job, j.step / j.steps);
      if (j.loss !== null && Number.isFinite(j.loss)) g.jobLoss.set(job, j.loss);
      if (j.etaSeconds !== null && Number.isFinite(j.etaSeconds)) g.jobEta.set(job, j.etaSeconds);
      if (Number.isFinite(j.workerHeartbeatAgeSeconds)) g.workerHeartbeat.set({ ...job, worker_instance: j.workerInstance ?? "" }, j.workerHeartbeatAgeSeconds);
    }
    const roles = new Map<string, number>();
    for (const i of ops.instances) {
      const role = i.role ?? "unknown";
      roles.set(role, (roles.get(role) ?? 0) + 1);
      if (i.heartbeatAgeSeconds !== null) g.instanceHeartbeat.set({ instance_id: i.instanceId, role, host: i.host ?? "" }, i.heartbeatAgeSeconds);
    }
    for (const role of ["bot", "worker"]) g.instancesAlive.set({ role }, roles.get(role) ?? 0);
    for (const [role, n] of roles) g.instancesAlive.set({ role }, n);
  }

  /**
   * Wraps a queue's job handler so this process times the jobs it runs. The outcome is the
   * job's final state as its row says (succeeded, failed, cancelled, skipped), `error` when the
   * handler threw; a job that ended before this process took it (cancelled while queued) is not
   * counted.
   */
  timeJobs<A extends unknown[]>(work: (job: TrainingJobRow, ...rest: A) => Promise<void>, jobs: { get(id: string): Promise<TrainingJobRow | undefined> }): (job: TrainingJobRow, ...rest: A) => Promise<void> {
    return async (job, ...rest) => {
      const t0 = performance.now();
      let threw = false;
      try {
        await work(job, ...rest);
      } catch (e) {
        threw = true;
        throw e;
      } finally {
        const seconds = (performance.now() - t0) / 1000;
        const row = threw ? undefined : await jobs.get(job.id).catch(() => undefined);
        if (threw) this.safe(() => this.jobDuration.observe({ outcome: "error" }, seconds));
        else if (row && row.worker_instance === this.opts.instanceId && FINAL.has(row.state)) this.safe(() => this.jobDuration.observe({ outcome: row.state }, seconds));
      }
    };
  }

  // --- the core's events (CoreObserver) ---

  replyStarted(platform: string, trigger: StreamTrigger): void {
    this.inc(this.repliesStarted, { platform, trigger });
  }

  replyFinished(platform: string, outcome: StreamOutcome): void {
    this.inc(this.repliesFinished, { platform, outcome });
  }

  stopped(platform: string): void {
    this.inc(this.stops, { platform });
  }

  steerApplied(platform: string, status: SteerStatus): void {
    this.inc(this.steers, { platform, status });
  }

  refused(platform: string, reason: RefusalReason): void {
    this.inc(this.refusals, { platform, reason });
  }

  surfaceCall(platform: string, op: "send" | "edit", seconds: number, ok: boolean): void {
    if (ok) this.safe(() => this.editLatency.observe({ platform, op }, seconds));
    else this.inc(this.updateErrors, { platform, op });
  }

  // --- the bots' events (PlatformObserver) ---

  stopHandled(platform: string, latencyMs: number): void {
    this.safe(() => this.stopLatency.observe({ platform }, latencyMs / 1000));
  }

  rateLimited(platform: string, handling: "absorbed" | "surfaced"): void {
    this.inc(this.rateLimits, { platform, handling });
  }

  handlerError(platform: string): void {
    this.inc(this.handlerErrors, { platform });
  }

  private inc<K extends string>(c: Counter<K>, labels: Labels<K>): void {
    this.safe(() => c.inc(labels));
  }

  /** Counting never breaks what is counted. */
  private safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onError?.(err);
    }
  }
}
