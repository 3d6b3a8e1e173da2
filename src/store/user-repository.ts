/**
 * Users: trust level and privacy choices per platform account.
 *
 * Owns: every SQL statement on `users` (upsert on first sight, opt-out, trust). A forgotten
 * person's row keeps a pseudonym instead of their id (personal-data.ts writes it): they are
 * found by it, stay opted out, and their id and name are not stored again.
 */
import type { Kysely } from "kysely";
import type { Database, UserRow } from "./database.ts";
import { pseudonym } from "./personal-data.ts";

export class UserRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** The person's row; a forgotten person's is found by their pseudonym. */
  async get(platform: string, userId: string): Promise<UserRow | undefined> {
    return this.db
      .selectFrom("users")
      .selectAll()
      .where("platform", "=", platform)
      .where("platform_user_id", "in", [userId, pseudonym(platform, userId)])
      .orderBy("forgotten_at", (o) => o.desc().nullsLast()) // forgotten wins
      .executeTakeFirst();
  }

  /** The person's row, created on first sight; a forgotten person's is returned as it is (no id, no name written). */
  async upsert(platform: string, userId: string, displayName?: string): Promise<UserRow> {
    const known = await this.get(platform, userId);
    if (known?.forgotten_at || known?.opted_out) return known; // their name is not stored either
    return this.db
      .insertInto("users")
      .values({ platform, platform_user_id: userId, display_name: displayName ?? null })
      .onConflict((oc) => oc.constraint("users_platform_user_unique").doUpdateSet({ display_name: displayName ?? null }))
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Opts in or out (out: the name goes too); a forgotten person stays opted out (what they asked forget for). */
  async setOptedOut(platform: string, userId: string, optedOut: boolean): Promise<void> {
    const row = await this.upsert(platform, userId);
    if (row.forgotten_at) return;
    await this.db.updateTable("users").set(optedOut ? { opted_out: true, display_name: null } : { opted_out: false }).where("id", "=", row.id).execute();
  }

  async setTrust(platform: string, userId: string, trust: "default" | "trusted" | "blocked"): Promise<void> {
    const row = await this.upsert(platform, userId);
    await this.db.updateTable("users").set({ trust }).where("id", "=", row.id).execute();
  }
}
