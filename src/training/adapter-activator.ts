/**
 * Putting an adapter into the running bot without a restart (hot-swap), and taking it out.
 *
 * Owns: the checks before an adapter goes live (the file's sha256 equals the stored one, the
 * adapter loads, and the model generates with it) and the swap itself. node-llama-cpp applies
 * adapters when a context is created and frees them only with the model. So a swap creates a
 * new context with the new adapter on the model already loaded (milliseconds), and once
 * {@link MAX_ADAPTERS_PER_MODEL} adapter files have been loaded on that model, a fresh model
 * instance is loaded in the background with just the live adapter; the old one — and every
 * adapter on it — is freed when the replies still streaming on it have finished. Memory stays
 * bounded however many swaps happen, and no swap waits for a model load.
 */
import type { Engine } from "../engine/engine.ts";
import { fileSha256 } from "../engine/model-file.ts";
import type { Logger } from "../log.ts";
import type { AdapterRow } from "../store/database.ts";
import type { Store } from "../store/store.ts";

export class AdapterRefusedError extends Error {
  override readonly name = "AdapterRefusedError";
}

/** The database write that makes an adapter active failed; nothing was swapped. */
export class AdapterNotRecordedError extends Error {
  override readonly name = "AdapterNotRecordedError";
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

/** Adapter files loaded on one model instance before it is reloaded (in the background) to free them. */
export const MAX_ADAPTERS_PER_MODEL = 4;

/** Where the served engine is switched: the conversation core (all the activator needs of it). */
export interface EngineSwitch {
  /** New replies use `next` from now on; resolves once no reply uses the previous engine. */
  useEngine(next: Engine, adapterId: number | null): Promise<unknown>;
}

export interface AdapterActivatorDeps {
  store: Store;
  core: EngineSwitch;
  /** The engine served at start (the base model). */
  engine: Engine;
  log: Logger;
  /** Loads the configured base model with this adapter applied (none: the base model). */
  loadEngine: (adapterPath?: string) => Promise<Engine>;
  baseFingerprint: () => Promise<string>;
  /**
   * A local file with the adapter's bytes (adapter-cache.ts: fetched from the database when
   * this machine does not have it); the row's `file_path` when absent.
   */
  adapterFile?: (row: Pick<AdapterRow, "version" | "file_path" | "sha256">) => Promise<string>;
  /** Record what this process serves in `instance_adapters` (default true; a training worker serves nothing). */
  recordsLive?: boolean;
}

export class AdapterActivator {
  /** The adapter live in this process (null: the base model). */
  liveVersion: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private live: Engine;
  /**
   * How long a swap waits for the replies still streaming on the previous engine. A reply can
   * stall for a long time (grammY's auto-retry backs off for up to an hour in a Telegram
   * outage); past this the swap is done anyway — new replies already use the new engine — and
   * the previous one is freed when its last reply ends, so neither the swap queue nor the
   * training lock waits on a platform.
   */
  drainTimeoutMs = 60_000;
  /** Previous engines still waiting for their last replies after a swap gave up waiting. */
  draining = 0;

  constructor(private readonly deps: AdapterActivatorDeps) {
    this.live = deps.engine;
  }

  /** The engine new replies are generated with (this activator put it live). */
  get engine(): Engine {
    return this.live;
  }

  /** {@link checkAdapter} on the engine this process would swap to. */
  async loadChecked(adapter: Pick<AdapterRow, "version" | "file_path" | "sha256">): Promise<Engine> {
    const file = await this.localFile(adapter);
    return checkAdapter({ ...adapter, file_path: file }, (f) => this.engineWith(f));
  }

  /** The local file of an adapter (fetched from the database if this machine lacks it). */
  private localFile(adapter: Pick<AdapterRow, "version" | "file_path" | "sha256">): Promise<string> {
    return this.deps.adapterFile ? this.deps.adapterFile(adapter) : Promise.resolve(adapter.file_path);
  }

  /** A new context on the live model: the fast path of every swap. */
  private engineWith(adapterPath?: string): Promise<Engine> {
    return this.live.withAdapter(adapterPath);
  }

  /**
   * Once too many adapters sit on the live model, loads a fresh model with just the live
   * adapter and moves onto it, off the critical path of the swap that asked for it; the old
   * model and its adapters are freed when its last replies end.
   */
  private refreshIfCrowded(): void {
    const current = this.live;
    if (current.adapterFilesLoaded < MAX_ADAPTERS_PER_MODEL) return;
    const version = this.liveVersion;
    const run = this.queue.then(async () => {
      if (this.liveVersion !== version || this.live !== current) return; // swapped meanwhile
      const row = version ? await this.deps.store.training.adapter(version) : undefined;
      const fresh = await this.deps.loadEngine(row ? await this.localFile(row) : undefined);
      await this.putLive(fresh, row?.id ?? null);
      this.deps.log.info({ adapter: version ?? "(base model)" }, "reloaded the model to free earlier adapters");
    });
    this.queue = run.catch((err) => this.deps.log.error({ err }, "model reload after swaps failed; staying on the current model"));
  }

  /**
   * Swaps the core onto `version` (null = base model). Serialised: one swap at a time.
   *
   * `record` (the database write that makes `version` the active adapter for every instance)
   * runs after the adapter has been checked and loaded and before it goes live: if the write
   * fails, the loaded engine is dropped and the live adapter stays, so what runs here never
   * differs from what the database (and the notice built from it) says. Loading is the step
   * that can fail; putting a loaded engine live cannot.
   */
  swapTo(version: string | null, record?: () => Promise<void>): Promise<void> {
    return this.enqueue(() => this.doSwap(version, record));
  }

  /**
   * Brings this process in line with the database's active adapter (after NOTIFY or at start).
   *
   * The database is read inside the swap queue, not when the notice arrives. Why: a notice can
   * arrive late, after a newer local swap was queued but before it recorded itself; read then,
   * the database still names the older adapter and this process would swap back to it, ending
   * on an adapter the database no longer calls active. Read in turn, it sees every swap queued before.
   */
  sync(): Promise<void> {
    return this.enqueue(async () => {
      const active = await this.deps.store.training.activeAdapter(await this.deps.baseFingerprint());
      const want = active?.version ?? null;
      if (want !== this.liveVersion) await this.doSwap(want);
      else await this.recordLive();
    });
  }

  /** Runs `job` after every swap queued before it; one failing does not stop the next. */
  private enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.queue.then(job);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Writes what this process serves now where every instance's admin can read it (best effort). */
  private async recordLive(): Promise<void> {
    const { store, log } = this.deps;
    if (this.deps.recordsLive === false) return;
    await store.instances.recordLive(store.instanceId, this.liveVersion).catch((err) => log.warn({ err }, "could not record the live adapter of this instance"));
  }

  private async doSwap(version: string | null, record?: () => Promise<void>): Promise<void> {
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
      next = await this.engineWith();
    }
    const readyMs = performance.now() - started;
    if (record) {
      try {
        await record();
      } catch (e) {
        await next.dispose().catch(() => {});
        throw new AdapterNotRecordedError(`adapter ${version ?? "(base model)"} was loaded but could not be recorded as active (${(e as Error).message}); the live adapter is unchanged`, { cause: e });
      }
    }
    await this.putLive(next, adapterId, () => {
      this.liveVersion = version;
      log.info({ adapter: version ?? "(base model)", loadMs: Math.round(readyMs) }, "adapter swapped in");
    });
    await this.recordLive();
    this.refreshIfCrowded();
  }

  /**
   * New replies use `next` at once; the previous engine is disposed once the replies still
   * streaming on it have ended. `live` runs as soon as `next` serves.
   */
  private async putLive(next: Engine, adapterId: number | null, live?: () => void): Promise<void> {
    const previous = this.live;
    this.live = next;
    const drained = this.deps.core.useEngine(next, adapterId);
    live?.();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.drainTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (!timedOut) {
      if (previous !== next) await previous.dispose();
      return;
    }
    this.draining++;
    this.deps.log.warn(
      { waitedMs: this.drainTimeoutMs },
      "adapter swap: replies are still streaming on the previous engine (a platform is slow or retrying); the swap is done, the previous engine is freed when they end",
    );
    void drained
      .then(() => (previous !== next ? previous.dispose() : undefined))
      .catch((err) => this.deps.log.error({ err }, "adapter swap: freeing the previous engine failed"))
      .finally(() => this.draining--);
  }
}
