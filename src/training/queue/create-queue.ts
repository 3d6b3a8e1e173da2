/**
 * Choosing the training queue for a store: pg-boss on a PostgreSQL server, the in-process
 * queue on the embedded PGlite (see in-process-queue.ts for why).
 */
import type { AppConfig } from "../../config/config.ts";
import type { Logger } from "../../log.ts";
import type { Store } from "../../store/store.ts";
import { InProcessQueue } from "./in-process-queue.ts";
import { PgBossQueue } from "./pg-boss-queue.ts";
import type { TrainingQueue } from "./training-queue.ts";

export function createTrainingQueue(o: { store: Store; config: AppConfig; log: Logger; databaseUrl?: string }): TrainingQueue {
  if (o.store.kind === "pglite" || !o.databaseUrl) return new InProcessQueue({ store: o.store, log: o.log });
  return new PgBossQueue({
    store: o.store,
    log: o.log,
    databaseUrl: o.databaseUrl,
    checkSeconds: o.config.training.worker_check_seconds,
    jobTimeoutHours: o.config.training.job_timeout_hours,
  });
}
