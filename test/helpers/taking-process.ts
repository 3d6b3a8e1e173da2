/**
 * A worker that dies while taking a job, for the queue tests: its PgBossQueue fetches a job
 * (pg-boss marks it active) and then stops inside that transaction, before the job's row is
 * marked running — it tells the parent the job's id over IPC and waits there for the SIGKILL
 * the parent sends. DATABASE_URL names the database.
 */
import { createLogger } from "../../src/log.ts";
import { Store } from "../../src/store/store.ts";
import { PgBossQueue } from "../../src/training/queue/pg-boss-queue.ts";

const databaseUrl = process.env.DATABASE_URL!;
const store = await Store.open({ databaseUrl, dataDir: "memory://" });
await store.holdInstance();
const queue = new PgBossQueue({
  store,
  log: createLogger("silent"),
  databaseUrl,
  checkSeconds: 3600,
  jobTimeoutHours: 1,
  pollMs: 200,
  onTaking: async (jobId) => {
    process.send?.({ type: "taking", jobId, instance: store.instanceId });
    await new Promise(() => {}); // until killed
  },
});
await queue.start({
  work: async () => {
    throw new Error("never reached: the process is killed while taking the job");
  },
});
process.send?.({ type: "ready" });
