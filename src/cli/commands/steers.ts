/**
 * `steerbot steers list|show|approve|reject`: reviewing stored steers from the terminal.
 *
 * Owns: the options that pick steers (state, author, date, ids or `--all-pending`), their
 * one-line and full renderings, and the review verdicts. Whoever runs the CLI is an admin. With
 * PostgreSQL this is one more connection, so it works while bots run (training reads the trust
 * state when it runs); the embedded PGlite belongs to one process, whose lock says so.
 *
 *   steerbot steers list [--state pending|approved|rejected|all] [--author PLATFORM:ID] [--since DATE] [--before DATE] [--limit N] [--json]
 *   steerbot steers show ID... [--json]
 *   steerbot steers approve|reject (ID... | --all-pending [--author …] [--since …] [--before …])
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { clipText } from "../../core/admin-commands.ts";
import type { SteerRow, TrustState } from "../../store/database.ts";
import type { SteerFilter } from "../../store/steer-repository.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";
import { positiveInt } from "./train.ts";

interface PickOptions {
  author?: string;
  since?: Date;
  before?: Date;
}

/** `2026-11-30` (midnight UTC) or an ISO date-time; anything else is refused. */
function parseDate(value: string): Date {
  const d = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? new Date(value.length === 10 ? `${value}T00:00:00Z` : value) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError("not a date (use YYYY-MM-DD or an ISO date-time such as 2026-11-30T14:00Z)");
  return d;
}

/** Steer ids as written: `12` or `#12`. */
function parseIds(values: string[]): number[] {
  return values.map((v) => {
    const m = /^#?(\d+)$/.exec(v.trim());
    if (!m || Number(m[1]) < 1 || !Number.isSafeInteger(Number(m[1]))) throw new CliError(`"${v}" is not a steer id (a number, as steerbot steers list shows it)`, EXIT.badInput);
    return Number(m[1]);
  });
}

function withPickOptions(cmd: Command): Command {
  return cmd
    .option("--author <who>", "PLATFORM:ID (e.g. telegram:123456789) or a bare author id")
    .option("--since <date>", "created on or after (YYYY-MM-DD, UTC, or an ISO date-time)", parseDate)
    .option("--before <date>", "created before (YYYY-MM-DD, UTC, or an ISO date-time)", parseDate);
}

function pickFilter(opts: PickOptions): SteerFilter {
  return { author: opts.author, since: opts.since, before: opts.before };
}

function who(row: SteerRow): string {
  return row.author ? (row.platform ? `${row.platform}:${row.author}` : row.author) : row.source === "import" ? "(imported)" : "?";
}

function line(row: SteerRow): string {
  const when = row.created_at.toISOString().slice(0, 16).replace("T", " ");
  return `#${row.id}\t${row.trust_state}\t${who(row)}\t${when}\t“${clipText(row.rejected)}” → “${clipText(row.chosen)}”`;
}

function asJson(row: SteerRow): Record<string, unknown> {
  return {
    id: row.id,
    state: row.trust_state,
    source: row.source,
    platform: row.platform,
    author: row.author,
    createdAt: row.created_at,
    generationId: row.generation_id,
    ordinal: row.ordinal,
    form: row.form,
    context: row.context,
    prefix: row.prefix,
    rejected: row.rejected,
    chosen: row.chosen,
  };
}

function details(row: SteerRow): string {
  const out = [
    `steer #${row.id} — ${row.trust_state}, ${row.source === "import" ? "imported" : `from ${row.platform}`}, by ${who(row)}, ${row.created_at.toISOString()}`,
    ...(row.generation_id !== null ? [`generation ${row.generation_id}, steer ${row.ordinal + 1} on it${row.form ? `, written as ${row.form}` : ""}`] : []),
    "context:",
    ...row.context.map((m) => `  ${m.role}: ${m.content.replace(/\n/g, "\n    ")}`),
    `prefix:   ${JSON.stringify(row.prefix)}`,
    `rejected: ${JSON.stringify(row.rejected)}`,
    `chosen:   ${JSON.stringify(row.chosen)}`,
  ];
  return out.join("\n");
}

const ids = (list: number[]) => list.map((i) => `#${i}`).join(", ");

async function review(verdict: "approved" | "rejected", idArgs: string[], opts: PickOptions & { allPending?: boolean }): Promise<number> {
  const picked = opts.author !== undefined || opts.since !== undefined || opts.before !== undefined;
  if (opts.allPending && idArgs.length) throw new CliError("name steer ids or --all-pending, not both", EXIT.badInput);
  if (!opts.allPending && !idArgs.length) throw new CliError("name the steers: their ids (steerbot steers list), or --all-pending", EXIT.badInput);
  if (!opts.allPending && picked) throw new CliError("--author, --since and --before pick steers for --all-pending; with ids, give the ids only", EXIT.badInput);
  const wanted = opts.allPending ? undefined : parseIds(idArgs);
  const store = await openStore(appContext());
  try {
    const targets = wanted ?? (await store.steers.list({ ...pickFilter(opts), states: ["pending"] })).map((r) => r.id);
    if (opts.allPending && targets.length === 0) {
      process.stdout.write("no pending steers match\n");
      return EXIT.ok;
    }
    const out = await store.steers.review(targets, verdict);
    const parts = [`${verdict} ${out.changed.length} steer${out.changed.length === 1 ? "" : "s"}${out.changed.length ? ` (${ids(out.changed)})` : ""}`];
    if (out.unchanged.length) parts.push(`${ids(out.unchanged)} ${out.unchanged.length === 1 ? "was" : "were"} already ${verdict}`);
    process.stdout.write(`${parts.join("; ")}\n`);
    if (out.missing.length) {
      process.stderr.write(`steerbot: there is no steer ${ids(out.missing)} (steerbot steers list --state all)\n`);
      return EXIT.badInput;
    }
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

export function register(program: Command): void {
  const cmd = program.command("steers").description("list, show, approve or reject stored steers (the CLI is an admin)");

  withPickOptions(
    cmd
      .command("list")
      .description("the steers, oldest first: id, state, author, created (UTC), rejected → chosen")
      .addOption(new Option("--state <state>", "which steers").choices(["pending", "approved", "rejected", "all"]).default("all")),
  )
    .option("--limit <n>", "at most this many", positiveInt)
    .option("--json", "one JSON array, with context and the full spans")
    .action(
      action(async (opts: PickOptions & { state: TrustState | "all"; limit?: number; json?: boolean }) => {
        const store = await openStore(appContext());
        try {
          const rows = await store.steers.list({ ...pickFilter(opts), states: opts.state === "all" ? undefined : [opts.state], limit: opts.limit });
          if (opts.json) process.stdout.write(JSON.stringify(rows.map(asJson), null, 2) + "\n");
          else if (rows.length === 0) process.stdout.write("no steers match\n");
          else for (const r of rows) process.stdout.write(`${line(r)}\n`);
        } finally {
          await store.close();
        }
      }),
    );

  cmd
    .command("show")
    .description("everything stored of these steers: context, prefix, rejected and chosen spans")
    .argument("<ids...>", "steer ids")
    .option("--json", "one JSON array")
    .action(
      action(async (idArgs: string[], opts: { json?: boolean }) => {
        const wanted = parseIds(idArgs);
        const store = await openStore(appContext());
        try {
          const rows = await store.steers.list({ ids: wanted });
          if (opts.json) process.stdout.write(JSON.stringify(rows.map(asJson), null, 2) + "\n");
          else process.stdout.write(rows.map(details).join("\n\n") + (rows.length ? "\n" : ""));
          const missing = wanted.filter((id) => !rows.some((r) => r.id === id));
          if (missing.length) throw new CliError(`there is no steer ${ids(missing)} (steerbot steers list --state all)`, EXIT.badInput);
        } finally {
          await store.close();
        }
      }),
    );

  for (const [name, verdict, what] of [
    ["approve", "approved", "train on these steers"],
    ["reject", "rejected", "never train on these steers"],
  ] as const) {
    withPickOptions(
      cmd
        .command(name)
        .description(`${what} (ids, or every pending steer with --all-pending)`)
        .argument("[ids...]", "steer ids (steerbot steers list)")
        .option("--all-pending", "every pending steer (narrowed by --author, --since, --before)"),
    ).action(action((idArgs: string[], opts: PickOptions & { allPending?: boolean }) => review(verdict, idArgs, opts)));
  }
}
