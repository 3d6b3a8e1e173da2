/**
 * The running instances: what each serves — the live adapter per process (table
 * `instance_adapters`) — and who each is and when it last said it is alive (table
 * `instance_heartbeats`: role, host, pid, whether it takes training jobs).
 *
 * Owns: the SQL on both tables. A row says what an instance last recorded; whether the instance
 * still runs is answered by its instance lock (Store.liveInstances, Store.instanceStatus), so a
 * crashed process's row is shown as gone, not as serving. Heartbeat times are the database
 * server's `now()`, and ages are computed there too: machines whose clocks differ still agree.
 */
import { sql, type Kysely } from "kysely";
import type { Database } from "./database.ts";

/** Who a process is, as it records itself with its heartbeat. */
export interface InstanceAbout {
  /** "bot" (the app: the bots and/or the studio) or "worker" (`steerbot worker`). */
  role: string;
  host: string;
  pid: number;
  /** It runs queued training jobs (a worker, or a bot with `training.run_here`). */
  runsJobs: boolean;
}

export interface InstanceHeartbeat extends InstanceAbout {
  instanceId: string;
  startedAt: Date;
  heartbeatAt: Date;
  /** Seconds since the last heartbeat, by the database server's clock. */
  ageSeconds: number;
}

export interface InstanceAdapter {
  instanceId: string;
  /** null: the base model, no adapter. */
  adapterVersion: string | null;
  updatedAt: Date;
}

export class InstanceRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records what `instanceId` serves from now on. */
  async recordLive(instanceId: string, adapterVersion: string | null): Promise<void> {
    const now = new Date();
    await this.db
      .insertInto("instance_adapters")
      .values({ instance_id: instanceId, adapter_version: adapterVersion, updated_at: now })
      .onConflict((oc) => oc.column("instance_id").doUpdateSet({ adapter_version: adapterVersion, updated_at: now }))
      .execute();
  }

  /** Every instance that ever recorded what it serves, newest record first. */
  async all(): Promise<InstanceAdapter[]> {
    const rows = await this.db.selectFrom("instance_adapters").selectAll().orderBy("updated_at", "desc").execute();
    return rows.map((r) => ({ instanceId: r.instance_id, adapterVersion: r.adapter_version, updatedAt: r.updated_at }));
  }

  /** Forgets the rows of instances that are gone (their lock is free). */
  async remove(instanceIds: readonly string[]): Promise<void> {
    if (instanceIds.length) await this.db.deleteFrom("instance_adapters").where("instance_id", "in", instanceIds).execute();
  }

  /** Records who `instanceId` is (at start) and that it is alive now. */
  async announce(instanceId: string, about: InstanceAbout): Promise<void> {
    const row = { role: about.role, host: about.host, pid: about.pid, runs_jobs: about.runsJobs, heartbeat_at: sql<Date>`now()` };
    await this.db
      .insertInto("instance_heartbeats")
      .values({ instance_id: instanceId, ...row, started_at: sql<Date>`now()` })
      .onConflict((oc) => oc.column("instance_id").doUpdateSet(row))
      .execute();
  }

  /** The heartbeat: `instanceId` is alive now. False when its row is gone (another process dropped it as dead): announce again. */
  async beat(instanceId: string): Promise<boolean> {
    const r = await this.db.updateTable("instance_heartbeats").set({ heartbeat_at: sql<Date>`now()` }).where("instance_id", "=", instanceId).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Every instance that announced itself, oldest first, with its heartbeat age. */
  async heartbeats(): Promise<InstanceHeartbeat[]> {
    const rows = await this.db
      .selectFrom("instance_heartbeats")
      .selectAll()
      .select(sql<number>`extract(epoch from (now() - heartbeat_at))::float8`.as("age_seconds"))
      .orderBy("started_at")
      .orderBy("instance_id")
      .execute();
    return rows.map((r) => ({
      instanceId: r.instance_id,
      role: r.role,
      host: r.host,
      pid: r.pid,
      runsJobs: r.runs_jobs,
      startedAt: r.started_at,
      heartbeatAt: r.heartbeat_at,
      ageSeconds: Math.max(0, Number(r.age_seconds)),
    }));
  }

  /** Forgets the heartbeat rows of instances that are gone, or of this one as it stops. */
  async removeHeartbeats(instanceIds: readonly string[]): Promise<void> {
    if (instanceIds.length) await this.db.deleteFrom("instance_heartbeats").where("instance_id", "in", instanceIds).execute();
  }
}
