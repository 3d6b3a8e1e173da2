/**
 * Putting an adapter into the running bot without a restart (hot-swap), and taking it out.
 *
 * Owns: the checks before an adapter goes live (the file's sha256 equals the stored one, the
 * adapter loads, and the model generates with it) and the swap itself. node-llama-cpp applies
 * adapters when a context is created and frees them only with the model, so each swap loads a
 * fresh model instance with the new adapter (the file is mmap'd: cheap) and disposes the old
 * instance once the replies still streaming on it have finished. Memory stays bounded however
 * many swaps happen, because nothing of an old adapter outlives its model.
 */
import type { SteeringCore } from "../core/steering-core.ts";
import type { Engine } from "../engine/engine.ts";
import { fileSha256 } from "../engine/model-file.ts";
import type { Logger } from "../log.ts";
import type { AdapterRow } from "../store/database.ts";
import type { Store } from "../store/store.ts";

export class AdapterRefusedError extends Error {
  override readonly name = "AdapterRefusedError";
}


/**
 * Checks an adapter and loads it into a new engine: refuses (AdapterRefusedError) a missing,
 * changed, truncated or unloadable file. The engine is returned unused; dispose it if not swapped in.
 */
export async function checkAdapter(
  adapter: Pick<AdapterRow, "version" | "file_path" | "sha256">,
  loadEngine: (adapterPath?: string) => Promise<Engine>,
): Promise<Engine> {
  let sha: string;
  try {
    sha = await fileSha256(adapter.file_path);
  } catch (e) {
    throw new AdapterRefusedError(`adapter ${adapter.version}: cannot read ${adapter.file_path} (${(e as Error).message})`);
  }
  if (sha !== adapter.sha256) throw new AdapterRefusedError(`adapter ${adapter.version}: checksum mismatch (file changed or truncated since training)`);
  let engine: Engine;
  try {
    engine = await loadEngine(adapter.file_path);
  } catch (e) {
    throw new AdapterRefusedError(`adapter ${adapter.version}: does not load (${(e as Error).message})`);
  }
  try {
    await engine.generate({ messages: [{ role: "user", content: "ping" }], maxTokens: 2, temperature: 0 });
  } catch (e) {
    await engine.dispose();
    throw new AdapterRefusedError(`adapter ${adapter.version}: load test failed (${(e as Error).message})`);
  }
  return engine;
}

export interface AdapterActivatorDeps {
  store: Store;
  core: SteeringCore;
  log: Logger;
  /** Loads the configured base model with this adapter applied (none: the base model). */
  loadEngine: (adapterPath?: string) => Promise<Engine>;
  baseFingerprint: () => Promise<string>;
}

export class AdapterActivator {
  /** The adapter live in this process (null: the base model). */
  liveVersion: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: AdapterActivatorDeps) {}

  /** {@link checkAdapter} with this app's engine loader. */
  loadChecked(adapter: Pick<AdapterRow, "version" | "file_path" | "sha256">): Promise<Engine> {
    return checkAdapter(adapter, this.deps.loadEngine);
  }

  /** Swaps the core onto `version` (null = base model). Serialised: one swap at a time. */
  swapTo(version: string | null): Promise<void> {
    const run = this.queue.then(() => this.doSwap(version));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Brings this process in line with the database's active adapter (after NOTIFY or at start). */
  async sync(): Promise<void> {
    const active = await this.deps.store.training.activeAdapter(await this.deps.baseFingerprint());
    const want = active?.version ?? null;
    if (want !== this.liveVersion) await this.swapTo(want);
  }

  private async doSwap(version: string | null): Promise<void> {
    const { core, log, store } = this.deps;
    const started = performance.now();
    let next: Engine;
    let adapterId: number | null = null;
    if (version) {
      const row = await store.training.adapter(version);
      if (!row) throw new AdapterRefusedError(`there is no adapter ${version}`);
      next = await this.loadChecked(row);
      adapterId = row.id;
    } else {
      next = await this.deps.loadEngine();
    }
    const readyMs = performance.now() - started;
    const previous = await core.useEngine(next, adapterId);
    this.liveVersion = version;
    log.info({ adapter: version ?? "(base model)", loadMs: Math.round(readyMs) }, "adapter swapped in");
    if (previous !== next) await (previous as Engine).dispose();
  }
}
