/**
 * What each running instance serves: the live adapter per process (table `instance_adapters`).
 *
 * Owns: the SQL on `instance_adapters`. The row says what an instance last put live; whether the
 * instance still runs is answered by its instance lock (Store.liveInstances), so a crashed
 * process's row is shown as gone, not as serving.
 */
import type { Kysely } from "kysely";
import type { Database } from "./database.ts";

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
}
