/**
 * The Steers page's filter as it arrives in a query string, checked and turned into the store's
 * typed {@link SteerListFilter}: the listing and the export read the very same filter.
 *
 * Owns: the query-string shape (`state`, `author`, `platform`, `from`, `to` as YYYY-MM-DD, `text`,
 * `limit`) and the clear answer when a value is wrong.
 */
import { z } from "zod";
import type { SteerListFilter } from "../../store/steer-repository.ts";

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "a date as YYYY-MM-DD")
  .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), "a real calendar date");

const query = z.object({
  state: z.enum(["all", "pending", "approved", "rejected"]).default("all"),
  author: z.string().trim().max(200).optional(),
  platform: z.string().trim().max(50).optional(),
  from: day.optional().or(z.literal("")),
  to: day.optional().or(z.literal("")),
  text: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
});

export type SteerQuery = z.input<typeof query>;

/** The store filter for a query string, or the words saying what is wrong with it. */
export function parseSteerFilter(raw: unknown): { ok: true; filter: SteerListFilter } | { ok: false; notice: string } {
  const q = query.safeParse(raw ?? {});
  if (!q.success) {
    const issue = q.error.issues[0]!;
    return { ok: false, notice: `The filter's ${issue.path.join(".") || "value"} is not valid: ${issue.message}.` };
  }
  const v = q.data;
  const filter: SteerListFilter = { limit: v.limit };
  if (v.state !== "all") filter.states = [v.state];
  if (v.author) filter.author = v.author;
  if (v.platform) filter.platform = v.platform;
  if (v.text) filter.text = v.text;
  if (v.from) filter.since = new Date(`${v.from}T00:00:00Z`);
  // "to" is the last day included: before the start of the next one
  if (v.to) filter.before = new Date(Date.parse(`${v.to}T00:00:00Z`) + 24 * 3600 * 1000);
  if (filter.since && filter.before && filter.since >= filter.before) return { ok: false, notice: "The filter's dates are the wrong way round: “from” is after “to”." };
  return { ok: true, filter };
}
