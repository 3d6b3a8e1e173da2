/**
 * Users: trust level and privacy choices per platform account.
 *
 * Owns: every SQL statement on `users` (upsert on first sight, opt-out, forget marker).
 */
import type { Kysely } from "kysely";
import type { Database, UserRow } from "./database.ts";

export class UserRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get(platform: string, userId: string): Promise<UserRow | undefined> {
    return this.db.selectFrom("users").selectAll().where("platform", "=", platform).where("platform_user_id", "=", userId).executeTakeFirst();
  }

  async upsert(platform: string, userId: string, displayName?: string): Promise<UserRow> {
    return this.db
      .insertInto("users")
      .values({ platform, platform_user_id: userId, display_name: displayName ?? null })
      .onConflict((oc) => oc.constraint("users_platform_user_unique").doUpdateSet({ display_name: displayName ?? null }))
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async setOptedOut(platform: string, userId: string, optedOut: boolean): Promise<void> {
    await this.upsert(platform, userId);
    await this.db.updateTable("users").set({ opted_out: optedOut }).where("platform", "=", platform).where("platform_user_id", "=", userId).execute();
  }

  async setTrust(platform: string, userId: string, trust: "default" | "trusted" | "blocked"): Promise<void> {
    await this.upsert(platform, userId);
    await this.db.updateTable("users").set({ trust }).where("platform", "=", platform).where("platform_user_id", "=", userId).execute();
  }

  async markForgotten(platform: string, userId: string, db: Kysely<Database> = this.db): Promise<void> {
    await db
      .updateTable("users")
      .set({ forgotten_at: new Date(), display_name: null })
      .where("platform", "=", platform)
      .where("platform_user_id", "=", userId)
      .execute();
  }
}
