/**
 * Telegram updates across the instances sharing one bot: which were handled, by whom, and
 * where they were forwarded (table `telegram_processed_updates`).
 *
 * Owns: the SQL on that table — claiming an update (the first instance whose insert lands
 * handles it; a retry of the same update reaching any instance later finds the row), taking over
 * an update whose claimer died before handling it (Telegram redelivers it), marking one handled
 * or forwarded, pruning old rows — and the NOTIFY channel on which instances hand each other
 * updates (src/platforms/telegram/telegram-instance-routing.ts). Works unchanged on PGlite,
 * where the one process is the only claimer and the rows outlive a crash and restart.
 */
import { sql, type Kysely } from "kysely";
import type { Database } from "./database.ts";

/** NOTIFY channel of the instances' messages to each other about Telegram updates. */
export const TELEGRAM_INSTANCES_CHANNEL = "steerbot_telegram";
/** How long an update is remembered: Telegram keeps an undelivered update for 24 hours. */
export const KEEP_UPDATES_MS = 48 * 3600_000;
/** Pruning runs at most this often (at a claim). */
const PRUNE_EVERY_MS = 10 * 60_000;

export class TelegramUpdateRepository {
  private lastPrune = 0;

  constructor(
    private readonly db: Kysely<Database>,
    /** This process (Store.instanceId). */
    private readonly instanceId: string,
    /** Whether the instance with this id still runs (its instance lock is held). */
    private readonly instanceAlive: (instanceId: string) => Promise<boolean>,
  ) {}

  /**
   * Claims an update for this instance: true for the first claimer (INSERT … ON CONFLICT DO
   * NOTHING), false for every later one — a retry of the same update on any instance. One
   * exception: an update claimed by an instance that died before handling it (and not handed
   * to an instance that still runs) is taken over, once, by the first instance Telegram
   * redelivers it to.
   */
  async claim(botId: number, updateId: number): Promise<boolean> {
    await this.pruneIfDue();
    const inserted = await this.db
      .insertInto("telegram_processed_updates")
      .values({ bot_id: botId, update_id: updateId, instance_id: this.instanceId })
      .onConflict((oc) => oc.columns(["bot_id", "update_id"]).doNothing())
      .returning("instance_id")
      .executeTakeFirst();
    if (inserted) return true;
    const row = await this.db.selectFrom("telegram_processed_updates").selectAll().where("bot_id", "=", botId).where("update_id", "=", updateId).executeTakeFirst();
    if (!row || row.handled_at !== null || row.instance_id === this.instanceId) return false;
    if (await this.instanceAlive(row.instance_id)) return false; // still being handled there
    // Handed to an instance that runs: it handles it (a redelivery to that instance itself takes it over; its own memory drops a repeat).
    if (row.forwarded_to !== null && row.forwarded_to !== this.instanceId && (await this.instanceAlive(row.forwarded_to))) return false;
    const taken = await this.db
      .updateTable("telegram_processed_updates")
      .set({ instance_id: this.instanceId, forwarded_to: null, claimed_at: new Date() })
      .where("bot_id", "=", botId)
      .where("update_id", "=", updateId)
      .where("instance_id", "=", row.instance_id)
      .where("handled_at", "is", null)
      .returning("instance_id")
      .executeTakeFirst();
    return taken !== undefined;
  }

  /** The update was handled (here, or by the instance it was forwarded to). */
  async markHandled(botId: number, updateId: number): Promise<void> {
    await this.db.updateTable("telegram_processed_updates").set({ handled_at: new Date() }).where("bot_id", "=", botId).where("update_id", "=", updateId).execute();
  }

  /** The update was handed to `instanceId`, which handles it. */
  async markForwarded(botId: number, updateId: number, instanceId: string): Promise<void> {
    await this.db.updateTable("telegram_processed_updates").set({ forwarded_to: instanceId }).where("bot_id", "=", botId).where("update_id", "=", updateId).execute();
  }

  /** How an update stands, for diagnostics and tests. */
  async get(botId: number, updateId: number) {
    return this.db.selectFrom("telegram_processed_updates").selectAll().where("bot_id", "=", botId).where("update_id", "=", updateId).executeTakeFirst();
  }

  /** Deletes the rows of updates claimed before `before`; returns how many. */
  async prune(before: Date): Promise<number> {
    const r = await this.db.deleteFrom("telegram_processed_updates").where("claimed_at", "<", before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Sends one message to the instances listening on {@link TELEGRAM_INSTANCES_CHANNEL}. */
  async notify(message: unknown): Promise<void> {
    await sql`select pg_notify(${TELEGRAM_INSTANCES_CHANNEL}, ${JSON.stringify(message)})`.execute(this.db);
  }

  private async pruneIfDue(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.prune(new Date(now - KEEP_UPDATES_MS)).catch(() => {}); // retried at the next due claim
  }
}
