/**
 * The whole database as text, for privacy tests: every column of every table of the schema,
 * found in the catalog (so a column added later is searched without changing any test), each
 * value cast to text.
 */
import { sql } from "kysely";
import type { Store } from "../../src/store/store.ts";

export interface DumpedValue {
  table: string;
  column: string;
  value: string;
}

/** The columns of every base table of the current schema, with their catalog data type. */
export async function schemaColumns(store: Store): Promise<{ table: string; column: string; type: string }[]> {
  const r = await sql<{ table_name: string; column_name: string; data_type: string }>`
    select c.table_name, c.column_name, c.data_type
    from information_schema.columns c
    join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
    where c.table_schema = current_schema() and t.table_type = 'BASE TABLE'
    order by c.table_name, c.ordinal_position`.execute(store.db);
  return r.rows.map((row) => ({ table: row.table_name, column: row.column_name, type: row.data_type }));
}

export async function dumpDatabase(store: Store): Promise<DumpedValue[]> {
  const out: DumpedValue[] = [];
  for (const { table, column } of await schemaColumns(store)) {
    const r = await sql<{ v: string | null }>`select ${sql.ref(column)}::text as v from ${sql.table(table)}`.execute(store.db);
    for (const row of r.rows) if (row.v !== null) out.push({ table, column, value: row.v });
  }
  return out;
}

/** Where any of `needles` occurs (case-insensitive) in the dump, as `table.column: value` lines. */
export async function findInDatabase(store: Store, needles: readonly string[]): Promise<string[]> {
  const lower = needles.map((n) => n.toLowerCase());
  return (await dumpDatabase(store))
    .filter((d) => lower.some((n) => d.value.toLowerCase().includes(n)))
    .map((d) => `${d.table}.${d.column}: ${d.value.length > 300 ? `${d.value.slice(0, 300)}…` : d.value}`);
}
