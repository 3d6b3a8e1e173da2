/**
 * The store: one object that opens the database, migrates it and hands out the repositories.
 *
 * Owns: the database lifetime. All SQL of steerbot lives in this folder; the rest of the code
 * talks to repositories.
 */
import { createHash, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Kysely } from "kysely";
import type { Database } from "./database.ts";
import { ConversationRepository } from "./conversation-repository.ts";
import { migrateToLatest, openDatabase, type DatabaseTarget, type Listen, type TryLock } from "./open-database.ts";
import { InstanceRepository, type InstanceAbout, type InstanceAdapter } from "./instance-repository.ts";
import { readOperations, type InstanceStatus, type Operations } from "./operations.ts";
import { AdapterBlobRepository } from "./adapter-blob-repository.ts";
import { TrainingJobRepository } from "./training-job-repository.ts";
import { TelegramUpdateRepository } from "./telegram-update-repository.ts";
import { PersonalData } from "./personal-data.ts";
import { SteerRepository } from "./steer-repository.ts";
import { TrainingRepository } from "./training-repository.ts";
import { UserRepository } from "./user-repository.ts";

export class Store {
  readonly steers: SteerRepository;
  readonly conversations: ConversationRepository;
  readonly users: UserRepository;
  readonly training: TrainingRepository;
  /** What each running process serves (the studio's Adapters page). */
  readonly instances: InstanceRepository;
  /** Adapter files in the database (chunked bytea), so any machine can fetch the active one. */
  readonly adapterBlobs: AdapterBlobRepository;
  /** Training jobs with their progress, readable by every instance. */
  readonly jobs: TrainingJobRepository;
  /** Telegram updates claimed, handled and forwarded by the instances sharing one bot. */
  readonly telegramUpdates: TelegramUpdateRepository;
  /** Where people's words live: opt-out redaction, usable steers, forget (personal-data.ts). */
  readonly personalData: PersonalData;
  /** This process among the instances sharing the database (generations record it). */
  readonly instanceId = randomUUID();
  private releaseInstance: (() => Promise<void>) | undefined;
  private heartbeat: { timer: NodeJS.Timeout; about: InstanceAbout; beating: Promise<void> } | undefined;

  private constructor(
    readonly db: Kysely<Database>,
    /** NOTIFY subscriptions (adapter changes); on PGlite only within this process. */
    readonly listen: Listen,
    readonly tryLock: TryLock,
    readonly kind: "postgres" | "pglite",
    readonly location: string,
    private readonly release: () => Promise<void>,
  ) {
    this.personalData = new PersonalData(db);
    this.steers = new SteerRepository(db, this.personalData);
    this.conversations = new ConversationRepository(db, this.personalData, this.instanceId, (id) => this.instanceAlive(id));
    this.users = new UserRepository(db);
    this.training = new TrainingRepository(db, tryLock);
    this.instances = new InstanceRepository(db);
    this.adapterBlobs = new AdapterBlobRepository(db);
    this.jobs = new TrainingJobRepository(db);
    this.telegramUpdates = new TelegramUpdateRepository(db, this.instanceId, (id) => this.instanceAlive(id));
  }

  /** Opens the database and applies pending migrations (steerbot migrates at every start). */
  static async open(target: DatabaseTarget, opts: { migrate?: boolean } = {}): Promise<Store> {
    const { db, listen, tryLock, kind, location, release } = await openDatabase(target);
    const store = new Store(db, listen, tryLock, kind, location, release ?? (async () => {}));
    if (opts.migrate !== false) {
      try {
        await migrateToLatest(db);
      } catch (e) {
        await store.close();
        throw e;
      }
    }
    return store;
  }

  /**
   * Holds this instance's lock for as long as the store is open: the sign, to every other
   * process on the database, that the generations this one streams are alive (a session
   * advisory lock is freed by the server when the process or its connection dies). With
   * `about`, the process also records who it is (role, host, pid) and, every `heartbeatSeconds`,
   * that it is still alive (table `instance_heartbeats`, for /status and /metrics); a heartbeat
   * that fails is simply tried again at the next one.
   */
  async holdInstance(about?: Partial<InstanceAbout>, heartbeatSeconds = 15): Promise<void> {
    if (!this.releaseInstance) {
      const release = await this.tryLock(instanceLockKey(this.instanceId));
      if (!release) throw new Error(`instance lock of ${this.instanceId} is taken`); // a random id: cannot happen
      this.releaseInstance = release;
    }
    if (!about || this.heartbeat) return;
    const who: InstanceAbout = { role: about.role ?? "bot", host: about.host ?? hostname(), pid: about.pid ?? process.pid, runsJobs: about.runsJobs ?? false };
    await this.instances.announce(this.instanceId, who);
    const beat = async () => {
      // a row dropped meanwhile (this process looked dead to another: a lock check raced a restart) is written anew
      if (!(await this.instances.beat(this.instanceId))) await this.instances.announce(this.instanceId, who);
    };
    const timer = setInterval(() => {
      if (this.heartbeat) this.heartbeat.beating = this.heartbeat.beating.then(beat).catch(() => {});
    }, Math.max(1, heartbeatSeconds) * 1000);
    timer.unref();
    this.heartbeat = { timer, about: who, beating: Promise.resolve() };
  }

  /**
   * The instances running now (their instance lock is held) and what each serves; this process
   * among them once it holds its lock. Records of instances that are gone are dropped.
   */
  async liveInstances(): Promise<(InstanceAdapter & { self: boolean })[]> {
    const rows = await this.instances.all();
    const alive = await Promise.all(rows.map((r) => (r.instanceId === this.instanceId ? Promise.resolve(this.releaseInstance !== undefined) : this.instanceAlive(r.instanceId))));
    const gone = rows.filter((_, i) => !alive[i]).map((r) => r.instanceId);
    await this.instances.remove(gone.filter((id) => id !== this.instanceId));
    return rows.filter((_, i) => alive[i]).map((r) => ({ ...r, self: r.instanceId === this.instanceId }));
  }

  /**
   * The running instances as /status shows them: every process that announced itself or
   * records what it serves and still holds its instance lock, with role, host, pid, heartbeat
   * age and live adapter where known, oldest first. Rows of instances that are gone are dropped.
   */
  async instanceStatus(): Promise<InstanceStatus[]> {
    const [beats, serving] = await Promise.all([this.instances.heartbeats(), this.instances.all()]);
    // one lock check per instance (on PostgreSQL each is a connection of its own)
    const ids = [...new Set([...beats.map((b) => b.instanceId), ...serving.map((s) => s.instanceId)])];
    const alive = new Map(await Promise.all(ids.map(async (id) => [id, id === this.instanceId ? this.releaseInstance !== undefined : await this.instanceAlive(id)] as const)));
    const gone = ids.filter((id) => !alive.get(id) && id !== this.instanceId);
    await Promise.all([this.instances.remove(gone), this.instances.removeHeartbeats(gone)]);
    const out: InstanceStatus[] = beats
      .filter((b) => alive.get(b.instanceId))
      .map((b) => ({
        instanceId: b.instanceId,
        role: b.role,
        host: b.host,
        pid: b.pid,
        runsJobs: b.runsJobs,
        startedAt: b.startedAt,
        heartbeatAgeSeconds: b.ageSeconds,
        adapterVersion: serving.find((s) => s.instanceId === b.instanceId)?.adapterVersion,
        self: b.instanceId === this.instanceId,
      }));
    // an instance that records what it serves but announced nothing (an older steerbot)
    for (const s of serving) {
      if (!alive.get(s.instanceId) || out.some((o) => o.instanceId === s.instanceId)) continue;
      out.push({ instanceId: s.instanceId, role: null, host: null, pid: null, runsJobs: null, startedAt: null, heartbeatAgeSeconds: null, adapterVersion: s.adapterVersion, self: s.instanceId === this.instanceId });
    }
    return out;
  }

  /** Instances, queue depth, the running job and its worker's heartbeat (operations.ts). */
  operations(): Promise<Operations> {
    return readOperations(this);
  }

  /** Whether the process with this instance id still runs (its instance lock is held). */
  async instanceAlive(id: string): Promise<boolean> {
    const release = await this.tryLock(instanceLockKey(id));
    if (!release) return true;
    await release();
    return false;
  }

  /** Runs fn in one transaction: a steer and the generation it changes are written together or not at all. */
  transaction<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  async close(): Promise<void> {
    if (this.heartbeat) {
      clearInterval(this.heartbeat.timer);
      await this.heartbeat.beating;
      this.heartbeat = undefined;
      // stopping cleanly: gone from /status at once, not at the next lock check
      await this.instances.removeHeartbeats([this.instanceId]).catch(() => {});
    }
    await this.releaseInstance?.().catch(() => {});
    this.releaseInstance = undefined;
    try {
      await this.db.destroy();
    } finally {
      await this.release();
    }
  }
}

/** Advisory lock key of an instance: 48 bits of a hash of its id (a safe integer for int8). */
function instanceLockKey(id: string): number {
  return createHash("sha256").update(`steerbot-instance:${id}`).digest().readUIntBE(0, 6);
}
