/**
 * `steerbot adapters list|activate|rollback`: the adapters of the configured base model.
 *
 * Activation is checked here (checksum, load test) and written to the database, which tells
 * every running bot (LISTEN/NOTIFY) to swap — so this works from another machine too, as long
 * as it shares the PostgreSQL database (an embedded PGlite is one process's alone).
 */
import type { Command } from "commander";
import { engineLoader } from "../../app.ts";
import path from "node:path";
import { dataDir } from "../../config/config.ts";
import { fileSha256, resolveModelPath } from "../../engine/model-file.ts";
import { AdapterRefusedError, checkAdapter } from "../../training/adapter-activator.ts";
import { action, appContext, CliError, EXIT, openStore } from "../app-context.ts";

export function register(program: Command): void {
  const cmd = program.command("adapters").description("list, activate or roll back LoRA adapters");

  cmd
    .command("list")
    .description("the adapters of the configured base model, with their state")
    .option("--json", "one JSON array: version, state, file, sha256, metrics, created/activated")
    .action(
      action(async (opts: { json?: boolean }) => {
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          const rows = await store.training.adapters();
          if (opts.json) {
            const out = rows.map((r) => ({
              version: r.version,
              state: r.state,
              file: r.file_path,
              sha256: r.sha256,
              baseFingerprint: r.base_fingerprint,
              metrics: r.metrics,
              createdAt: r.created_at,
              activatedAt: r.activated_at,
            }));
            process.stdout.write(JSON.stringify(out, null, 2) + "\n");
          } else if (rows.length === 0) process.stdout.write("no adapters yet\n");
          else for (const r of rows) process.stdout.write(`${r.version}\t${r.state}\t${r.file_path}\n`);
        } finally {
          await store.close();
        }
      }),
    );

  const activate = async (version: string | null) => {
    const ctx = appContext();
    const store = await openStore(ctx);
    try {
      const model = await resolveModelPath(ctx.config.model.path, { modelsDir: path.join(dataDir(ctx.config), "models"), download: false });
      const base = await fileSha256(model);
      const rows = await store.training.adapters(base);
      let target = version;
      if (version === null) {
        const active = rows.find((r) => r.state === "active");
        target = rows.filter((r) => r.state === "retired" && (!active || r.id < active.id)).at(-1)?.version ?? null;
      }
      const row = target ? rows.find((r) => r.version === target) : undefined;
      if (target && !row) throw new CliError(`there is no adapter ${target} for the configured base model (steerbot adapters list)`, EXIT.badInput);
      if (row) {
        try {
          await (await checkAdapter(row, engineLoader(ctx.config))).dispose();
        } catch (e) {
          if (e instanceof AdapterRefusedError) throw new CliError(`refused: ${e.message}`, EXIT.failure);
          throw e;
        }
      }
      await store.training.activate(base, target);
      process.stdout.write(target ? `adapter ${target} is active; running bots swap to it now\n` : "back to the base model (no adapter)\n");
    } finally {
      await store.close();
    }
  };

  cmd
    .command("activate")
    .description("check an adapter (checksum, load test) and make it the live one")
    .argument("<version>", "adapter version (see adapters list)")
    .action(action((version: string) => activate(version)));

  cmd
    .command("rollback")
    .description("go back to the adapter that was live before the current one (or to the base model)")
    .action(action(() => activate(null)));
}
