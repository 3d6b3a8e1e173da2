/**
 * Steers: the localized preference pairs everything else exists to collect.
 *
 * Owns: every SQL statement on `steers` — storing a bot steer, importing JSONL records once
 * (content hash), exporting them, finding them by state, author and date, reviewing them (the
 * pending queue). Which steers may be trained on or exported, and forgetting a person, are
 * personal-data.ts's rule; this file applies it.
 */
import { createHash } from "node:crypto";
import type { Expression, ExpressionBuilder, Kysely, SqlBool } from "kysely";
import { toTrlDpo, toTrlSft, type ExportFormat } from "../core/steer-export.ts";
import type { SteerRecord } from "../core/steer-record.ts";
import type { Database, NewSteer, SteerRow, TrustState } from "./database.ts";
import { PersonalData } from "./personal-data.ts";

export interface ImportOutcome {
  stored: number;
  duplicates: number;
  /** Records by a forgotten person (author `platform:id`), not stored. */
  withheld: number;
}

/** Which steers: every condition given must hold. */
export interface SteerFilter {
  states?: TrustState[];
  ids?: readonly number[];
  /**
   * `platform:id` (a bot steer's platform and author, or an imported steer's author written
   * that way, as export writes it) or a bare author id on any platform.
   */
  author?: string;
  /** Created at or after. */
  since?: Date;
  /** Created before. */
  before?: Date;
  afterId?: number;
  limit?: number;
  /** Only steers that may leave the store (export): see {@link PersonalData.usable}. */
  usable?: boolean;
}

/**
 * The studio's Steers page filter: {@link SteerFilter} plus the steer's platform and a text
 * that must occur (case-insensitive) in its prefix, rejected or chosen span.
 */
export interface SteerListFilter extends SteerFilter {
  platform?: string;
  text?: string;
}

function matching(eb: ExpressionBuilder<Database, "steers">, f: SteerFilter): Expression<SqlBool> {
  const all: Expression<SqlBool>[] = [];
  if (f.states?.length) all.push(eb("trust_state", "in", f.states));
  if (f.ids) all.push(f.ids.length ? eb("id", "in", f.ids) : eb.lit(false));
  if (f.author !== undefined) {
    const colon = f.author.indexOf(":");
    const either = [eb("author", "=", f.author)];
    if (colon > 0) either.push(eb.and([eb("platform", "=", f.author.slice(0, colon)), eb("author", "=", f.author.slice(colon + 1))]));
    all.push(eb.or(either));
  }
  if (f.since) all.push(eb("created_at", ">=", f.since));
  if (f.before) all.push(eb("created_at", "<", f.before));
  if (f.afterId !== undefined) all.push(eb("id", ">", f.afterId));
  if (f.usable) all.push(PersonalData.usable(eb));
  return eb.and(all);
}

export function contentHash(json: string): string {
  return createHash("sha256").update(json).digest("hex");
}

export class SteerRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly personal: PersonalData,
  ) {}

  /** {@link importLines} for records built in code (each stored as its JSON text). */
  importRecords(records: readonly SteerRecord[]): Promise<ImportOutcome> {
    return this.importLines(records.map((steer) => ({ steer, text: JSON.stringify(steer) })));
  }

  /**
   * Stores imported steers (approved: whoever runs the CLI is an admin), each with the very
   * line it came from (`text`, kept as `original_json` so export gives back exactly that line).
   * A line already imported — same text — is skipped, so importing a file twice stores nothing
   * twice. One call is one transaction: the CLI streams a file in batches of these, and an
   * import cut short is completed by running it again. Lines whose author (`platform:id`, as
   * export writes it) was forgotten are not stored: an old export must not bring back what
   * /forget deleted.
   */
  async importLines(lines: readonly { steer: SteerRecord; text: string }[]): Promise<ImportOutcome> {
    if (lines.length === 0) return { stored: 0, duplicates: 0, withheld: 0 };
    const forgotten = await this.personal.forgottenAuthors(lines.flatMap(({ steer: r }) => (typeof r.author === "string" ? [r.author] : [])));
    const allowed = lines.filter(({ steer: r }) => !(typeof r.author === "string" && forgotten.has(r.author)));
    const withheld = lines.length - allowed.length;
    return this.db.transaction().execute(async (tx) => {
      let stored = 0;
      for (const { steer: r, text: json } of allowed) {
        const row = await tx
          .insertInto("steers")
          .values({
            source: "import",
            context: JSON.stringify(r.context),
            prefix: r.prefix,
            rejected: r.rejected,
            chosen: r.chosen,
            prefix_tokens: null,
            rejected_tokens: null,
            chosen_tokens: null,
            divergence_char: r.prefix.length,
            divergence_token: null,
            shown_chars: null,
            shown_tokens: null,
            form: null,
            model_fingerprint: null,
            generation_id: null,
            platform: null,
            author: typeof r.author === "string" ? r.author : null,
            correction_message_id: null,
            trust_state: "approved",
            content_hash: contentHash(json),
            original_json: json,
            approximate: r.approximate === true,
          })
          .onConflict((oc) => oc.column("content_hash").where("source", "=", "import").doNothing())
          .returning("id")
          .executeTakeFirst();
        if (row) stored++;
      }
      return { stored, duplicates: allowed.length - stored, withheld };
    });
  }

  /**
   * Stores one steer collected by a bot. Returns undefined when this correction message was
   * stored before (a platform delivered the same event twice). The context of a steer on a
   * generation is the context that generation stored, so a question withheld there (its author
   * opted out) is withheld here too, whoever steers; so is an opted-out person's correction
   * earlier in the reply ({@link PersonalData.redact}).
   */
  async insert(steer: Omit<NewSteer, "content_hash" | "source">, db: Kysely<Database> = this.db): Promise<SteerRow | undefined> {
    const generationId = steer.generation_id;
    if (generationId != null) {
      const gen = await db.selectFrom("generations").select("context_messages").where("id", "=", generationId).executeTakeFirst();
      if (gen) steer = { ...steer, context: JSON.stringify(gen.context_messages) };
      // an opted-out person's correction earlier in this reply is withheld, and so are the token ids spelling it
      const at = { generationId };
      const [prefix, rejected, chosen] = [steer.prefix, steer.rejected, steer.chosen].map((t) => this.personal.redact(t, at)) as [string, string, string];
      if (prefix !== steer.prefix) steer = { ...steer, prefix, prefix_tokens: null };
      if (rejected !== steer.rejected) steer = { ...steer, rejected, rejected_tokens: null };
      if (chosen !== steer.chosen) steer = { ...steer, chosen, chosen_tokens: null };
    }
    const hash = contentHash(JSON.stringify([steer.platform, steer.correction_message_id, steer.prefix, steer.chosen]));
    return db
      .insertInto("steers")
      .values({ ...steer, source: "bot", content_hash: hash })
      .onConflict((oc) => oc.constraint("steers_correction_unique").doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  async findByCorrection(platform: string, messageId: string): Promise<SteerRow | undefined> {
    return this.db.selectFrom("steers").selectAll().where("platform", "=", platform).where("correction_message_id", "=", messageId).executeTakeFirst();
  }

  async list(filter: SteerFilter = {}): Promise<SteerRow[]> {
    let q = this.db.selectFrom("steers").selectAll().where((eb) => matching(eb, filter)).orderBy("id");
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    return q.execute();
  }

  /** The steers an admin's filter picks (the studio's Steers page and its export), oldest first. */
  async listFiltered(filter: SteerListFilter): Promise<SteerRow[]> {
    const { platform, text, ...rest } = filter;
    let q = this.db.selectFrom("steers").selectAll().where((eb) => matching(eb, rest)).orderBy("id");
    if (platform) q = q.where("platform", "=", platform);
    if (text) {
      const like = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q = q.where((eb) => eb.or([eb("prefix", "ilike", like), eb("rejected", "ilike", like), eb("chosen", "ilike", like)]));
    }
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    return q.execute();
  }

  /** One line of `steerbot export --format <format>` for a stored steer (the CLI and the studio both write these). */
  static toExportLine(row: SteerRow, format: ExportFormat): string {
    if (format === "steers") return SteerRepository.toJsonLine(row);
    const record = SteerRepository.toRecord(row);
    return JSON.stringify(format === "trl-dpo" ? toTrlDpo(record) : toTrlSft(record));
  }

  /**
   * Sets the trust state of the steers with these ids; returns the ids changed, those already
   * in that state and those that do not exist.
   */
  async review(ids: readonly number[], state: TrustState): Promise<{ changed: number[]; unchanged: number[]; missing: number[] }> {
    if (ids.length === 0) return { changed: [], unchanged: [], missing: [] };
    return this.db.transaction().execute(async (tx) => {
      const found = await tx.selectFrom("steers").select(["id", "trust_state"]).where("id", "in", ids).forUpdate().execute();
      const unchanged = found.filter((r) => r.trust_state === state).map((r) => r.id);
      const changed = found.filter((r) => r.trust_state !== state).map((r) => r.id);
      if (changed.length) await tx.updateTable("steers").set({ trust_state: state }).where("id", "in", changed).execute();
      const known = new Set(found.map((r) => r.id));
      return { changed: changed.sort((a, b) => a - b), unchanged: unchanged.sort((a, b) => a - b), missing: [...new Set(ids)].filter((id) => !known.has(id)) };
    });
  }

  /**
   * The steers training and its held-out evaluation may use: approved and usable
   * ({@link PersonalData.usable}: no opted-out or forgotten author, no withheld question);
   * approximate ones only with `approximate: true` (training.approximate_steers).
   */
  async listForTraining(opts: { approximate?: boolean } = {}): Promise<SteerRow[]> {
    let q = this.db
      .selectFrom("steers")
      .selectAll("steers")
      .where("trust_state", "=", "approved")
      .where((eb) => PersonalData.usable(eb));
    if (opts.approximate === false) q = q.where("approximate", "=", false);
    return q.orderBy("steers.id").execute();
  }

  /**
   * Where every steer on these generations cut its reply, in any trust state (a correction
   * resumed the reply whether or not it trains): the points a training steer's continuation
   * ends at (src/training/steer-continuations.ts).
   */
  async placesOn(generationIds: readonly number[]): Promise<Pick<SteerRow, "id" | "generation_id" | "ordinal" | "prefix" | "chosen">[]> {
    const ids = [...new Set(generationIds)];
    if (ids.length === 0) return [];
    return this.db.selectFrom("steers").select(["id", "generation_id", "ordinal", "prefix", "chosen"]).where("generation_id", "in", ids).execute();
  }

  /**
   * The steers of one generation in order (the studio's timeline), each with whether it has
   * trained (see {@link removeOwn}).
   */
  async ofGeneration(generationId: number): Promise<(SteerRow & { trained: boolean })[]> {
    const rows = await this.db.selectFrom("steers").selectAll().where("generation_id", "=", generationId).orderBy("ordinal").orderBy("id").execute();
    const since = await this.lastTrainingStart();
    return rows.map((r) => ({ ...r, trained: trainedBy(r, since) }));
  }

  /**
   * Deletes a steer of the author's own (platform + user id) unless it has trained: an approved
   * steer created before the start of the newest succeeded training run counts as trained (the
   * runs do not record their steers one by one, so this errs on the side of refusing). One
   * transaction; the answer says why nothing was deleted.
   */
  async removeOwn(id: number, who: { platform: string; author: string }): Promise<{ removed: true } | { removed: false; reason: "missing" | "not_author" | "trained" }> {
    return this.db.transaction().execute(async (tx) => {
      const row = await tx.selectFrom("steers").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
      if (!row) return { removed: false, reason: "missing" } as const;
      if (row.platform !== who.platform || row.author !== who.author) return { removed: false, reason: "not_author" } as const;
      const since = await tx.selectFrom("training_runs").select("started_at").where("state", "=", "succeeded").orderBy("id", "desc").executeTakeFirst();
      if (trainedBy(row, since?.started_at ?? null)) return { removed: false, reason: "trained" } as const;
      await tx.deleteFrom("steers").where("id", "=", id).execute();
      return { removed: true } as const;
    });
  }

  private async lastTrainingStart(): Promise<Date | null> {
    const r = await this.db.selectFrom("training_runs").select("started_at").where("state", "=", "succeeded").orderBy("id", "desc").executeTakeFirst();
    return r?.started_at ?? null;
  }

  async setTrust(id: number, state: TrustState): Promise<SteerRow | undefined> {
    return this.db.updateTable("steers").set({ trust_state: state }).where("id", "=", id).returningAll().executeTakeFirst();
  }

  async countByState(): Promise<Record<TrustState, number>> {
    const rows = await this.db.selectFrom("steers").select(["trust_state"]).select((eb) => eb.fn.countAll<number>().as("n")).groupBy("trust_state").execute();
    const out: Record<TrustState, number> = { approved: 0, pending: 0, rejected: 0 };
    for (const r of rows) out[r.trust_state] = Number(r.n);
    return out;
  }

  async countApprovedSince(since: Date | null): Promise<number> {
    let q = this.db.selectFrom("steers").select((eb) => eb.fn.countAll<number>().as("n")).where("trust_state", "=", "approved");
    if (since) q = q.where("created_at", ">", since);
    return Number((await q.executeTakeFirstOrThrow()).n);
  }

  /** The interchange form of a stored steer (imported ones come back exactly as imported). */
  static toRecord(row: SteerRow): SteerRecord {
    if (row.original_json) return JSON.parse(row.original_json) as SteerRecord;
    const record: SteerRecord = { context: row.context, prefix: row.prefix, rejected: row.rejected, chosen: row.chosen, id: `steerbot:${row.id}` };
    if (row.author) record.author = row.platform ? `${row.platform}:${row.author}` : row.author;
    if (row.approximate) record.approximate = true;
    return record;
  }

  /** JSON text of the interchange form; for imported steers the very line that was imported. */
  static toJsonLine(row: SteerRow): string {
    return row.original_json ?? JSON.stringify(SteerRepository.toRecord(row));
  }
}

/** Whether a steer has trained: approved, and created before a succeeded run started. */
function trainedBy(row: SteerRow, lastRunStart: Date | null): boolean {
  return row.trust_state === "approved" && lastRunStart !== null && row.created_at < lastRunStart;
}
