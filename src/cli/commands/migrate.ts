/** `steerbot migrate`: applies the migrations in migrations/ to the configured database. */
import type { Command } from "commander";
import { migrateToLatest } from "../../store/open-database.ts";
import { action, appContext, openStore } from "../app-context.ts";

export function register(program: Command): void {
  program
    .command("migrate")
    .description("apply pending database migrations (also done at every start)")
    .action(
      action(async () => {
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          const result = await migrateToLatest(store.db); // idempotent: reports what is left
          const applied = (result.results ?? []).filter((r) => r.status === "Success").length;
          process.stdout.write(`database ${store.kind} at ${store.location}: up to date${applied ? ` (${applied} applied)` : ""}\n`);
        } finally {
          await store.close();
        }
      }),
    );
}
