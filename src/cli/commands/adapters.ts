/**
 * `steerbot adapters list|activate|rollback|export|import`: the adapters of the configured base model.
 *
 * `export VERSION --as gguf-merged|ollama|peft --out PATH` writes a stored adapter in a form
 * llama.cpp, Ollama or Hugging Face PEFT loads; `import FILE` stores an adapter made elsewhere
 * (a llama.cpp LoRA GGUF for the same base) as a new version. Exit codes: 0 done, 2 bad input
 * (unknown version, an adapter that does not fit the base), 1 could not run.
 *
 * `pull VERSION` fetches an adapter stored in the database into this machine's data directory
 * (it is checked against its sha256; bots do the same by themselves when they must load one).
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
import { EXPORT_FORMATS, exportAdapter, type ExportFormat } from "../../training/adapter-export.ts";
import { importAdapter } from "../../training/adapter-import.ts";
import { AdapterCache } from "../../training/adapter-cache.ts";
import { LoraFileError } from "../../training/lora-gguf.ts";
import { InvalidArgumentError } from "commander";
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
          // this machine may not have the file: the database's copy, fetched and verified
          const file = await new AdapterCache(store, path.join(dataDir(ctx.config), "adapters")).localFile(row);
          await (await checkAdapter({ ...row, file_path: file }, engineLoader(ctx.config))).dispose();
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

  cmd
    .command("pull")
    .description("fetch an adapter from the database into this machine's data directory (verified by sha256)")
    .argument("<version>", "adapter version (see adapters list)")
    .action(
      action(async (version: string) => {
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          const row = await store.training.adapter(version);
          if (!row) throw new CliError(`there is no adapter ${version} (steerbot adapters list)`, EXIT.badInput);
          try {
            const got = await new AdapterCache(store, path.join(dataDir(ctx.config), "adapters")).pull(row);
            process.stdout.write(`fetched adapter ${version} (${got.size} bytes, sha256 ${row.sha256.slice(0, 12)}… verified) to ${got.file}\n`);
          } catch (e) {
            if (e instanceof AdapterRefusedError) throw new CliError(e.message, EXIT.failure);
            throw e;
          }
        } finally {
          await store.close();
        }
      }),
    );

  cmd
    .command("export")
    .description("write an adapter for llama.cpp (merged GGUF), Ollama (Modelfile) or Hugging Face PEFT")
    .argument("<version>", "adapter version (see adapters list)")
    .requiredOption("--as <format>", EXPORT_FORMATS.join(", "), parseFormat)
    .requiredOption("--out <path>", "gguf-merged: the GGUF file to write; ollama, peft: the folder to write")
    .option("--base-model-id <id>", "peft: base_model_name_or_path for adapter_config.json (a Hugging Face id)")
    .option("--threads <n>", "gguf-merged: CPU threads", (v) => Number.parseInt(v, 10))
    .action(
      action(async (version: string, opts: { as: ExportFormat; out: string; baseModelId?: string; threads?: number }) => {
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          const row = await store.training.adapter(version);
          if (!row) throw new CliError(`there is no adapter ${version} (steerbot adapters list)`, EXIT.badInput);
          const model = await resolveModelPath(ctx.config.model.path, { modelsDir: path.join(dataDir(ctx.config), "models"), download: false });
          if ((await fileSha256(model)) !== row.base_fingerprint) {
            throw new CliError(`adapter ${version} was trained on another base model than model.path (${model}): configure that base to export it`, EXIT.badInput);
          }
          let adapterFile: string;
          try {
            // this machine's copy, or the database's (fetched and verified by sha256)
            adapterFile = await new AdapterCache(store, path.join(dataDir(ctx.config), "adapters")).localFile(row);
          } catch (e) {
            if (e instanceof AdapterRefusedError) throw new CliError(`${e.message} (checksum mismatch or missing)`, EXIT.failure);
            throw e;
          }
          if (opts.as === "gguf-merged") process.stderr.write("merging with llama.cpp's llama-export-lora (its first use builds it: seconds)...\n");
          const r = await exportAdapter({ format: opts.as, adapter: adapterFile, baseModel: model, out: opts.out, version, baseModelId: opts.baseModelId, threads: opts.threads });
          for (const f of r.files) process.stdout.write(`wrote ${f}\n`);
          for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
          if (r.command) process.stdout.write(`create the Ollama model with:\n  ${r.command}\n`);
        } catch (e) {
          if (e instanceof LoraFileError) throw new CliError(e.message, EXIT.badInput);
          throw e;
        } finally {
          await store.close();
        }
      }),
    );

  cmd
    .command("import")
    .description("store a LoRA GGUF made elsewhere (llama.cpp's convert_lora_to_gguf.py) for the configured base model as a new version")
    .argument("<file>", "the adapter GGUF")
    .option("--name <version>", "the version name to store it under (default: v<timestamp>-import-<hex>)")
    .action(
      action(async (file: string, opts: { name?: string }) => {
        const ctx = appContext();
        const store = await openStore(ctx);
        try {
          if (opts.name && (await store.training.adapter(opts.name))) throw new CliError(`there is already an adapter ${opts.name}`, EXIT.badInput);
          const model = await resolveModelPath(ctx.config.model.path, { modelsDir: path.join(dataDir(ctx.config), "models"), download: false });
          let imported;
          try {
            imported = await importAdapter({ file, baseModel: model, adaptersDir: path.join(dataDir(ctx.config), "adapters"), version: opts.name });
          } catch (e) {
            if (e instanceof LoraFileError) throw new CliError(`refused: ${e.message}`, EXIT.badInput);
            throw e;
          }
          await store.adapterBlobs.put(imported.version, imported.filePath); // every instance can fetch it
          await store.training.addAdapter({ ...imported, baseFingerprint: await fileSha256(model), trainingRunId: null, state: "candidate" });
          process.stdout.write(`imported ${file} as adapter ${imported.version} (candidate): steerbot adapters activate ${imported.version}\n`);
        } finally {
          await store.close();
        }
      }),
    );
}

function parseFormat(value: string): ExportFormat {
  if (!(EXPORT_FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`use ${EXPORT_FORMATS.join(", ")}`);
  return value as ExportFormat;
}
