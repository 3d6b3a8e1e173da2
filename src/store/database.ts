/**
 * The typed shape of the database (Kysely `Database` interface), one interface per table.
 *
 * Owns: the TypeScript view of the schema that `migrations/` creates. Ids are `integer`
 * identities; token ids are `integer[]`; JSON columns are typed where their shape is ours.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";
import type { ChatMessage } from "../core/steer-record.ts";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string | T, string | T>;
type JsonWithDefault<T> = ColumnType<T, string | T | undefined, string | T>;

export type TrustState = "approved" | "pending" | "rejected";
export type GenerationStatus = "streaming" | "stopped" | "done" | "interrupted" | "failed";
export type AdapterState = "candidate" | "active" | "retired" | "rejected";
export type RunState = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "skipped";

export interface UsersTable {
  id: Generated<number>;
  platform: string;
  platform_user_id: string;
  display_name: string | null;
  trust: ColumnType<"default" | "trusted" | "blocked", "default" | "trusted" | "blocked" | undefined>;
  opted_out: ColumnType<boolean, boolean | undefined>;
  forgotten_at: Timestamp | null;
  created_at: Generated<Date>;
}

export interface ThreadsTable {
  id: Generated<number>;
  platform: string;
  chat_id: string;
  platform_thread_id: string;
  created_by: string | null;
  created_at: Generated<Date>;
}

export interface MessagesTable {
  id: Generated<number>;
  thread_id: number;
  role: "system" | "user" | "assistant";
  author: string | null;
  text: string;
  platform_message_ids: ColumnType<string[], string[] | undefined>;
  created_at: Generated<Date>;
}

export interface GenerationsTable {
  id: Generated<number>;
  thread_id: number;
  context_messages: Json<ChatMessage[]>;
  context_text: string;
  /** Older messages of the thread left out of `context_messages` to fit the model's context. */
  dropped_messages: ColumnType<number, number | undefined>;
  model_fingerprint: string;
  adapter_id: number | null;
  /** The process streaming it (Store.instanceId); null before that was recorded. */
  instance_id: ColumnType<string | null, string | null | undefined>;
  status: ColumnType<GenerationStatus, GenerationStatus | undefined>;
  final_text: string | null;
  platform_message_ids: ColumnType<string[], string[] | undefined>;
  source_message_id: string | null;
  timings: JsonWithDefault<Record<string, number>>;
  created_at: Generated<Date>;
  finished_at: Timestamp | null;
}

export interface SteersTable {
  id: Generated<number>;
  generation_id: number | null;
  ordinal: ColumnType<number, number | undefined>;
  source: "bot" | "import";
  context: Json<ChatMessage[]>;
  prefix: string;
  rejected: string;
  chosen: string;
  prefix_tokens: number[] | null;
  rejected_tokens: number[] | null;
  chosen_tokens: number[] | null;
  divergence_char: number | null;
  divergence_token: number | null;
  shown_chars: number | null;
  shown_tokens: number | null;
  form: string | null;
  model_fingerprint: string | null;
  platform: string | null;
  author: string | null;
  correction_message_id: string | null;
  trust_state: ColumnType<TrustState, TrustState | undefined>;
  content_hash: string;
  original_json: string | null;
  created_at: Generated<Date>;
  /** The prefix is text the model never produced (a later hunk of an edited reply). */
  approximate: ColumnType<boolean, boolean | undefined>;
}

export interface AdaptersTable {
  id: Generated<number>;
  version: string;
  file_path: string;
  sha256: string;
  base_fingerprint: string;
  training_run_id: number | null;
  state: ColumnType<AdapterState, AdapterState | undefined>;
  metrics: JsonWithDefault<Record<string, unknown>>;
  created_at: Generated<Date>;
  activated_at: Timestamp | null;
}

export interface TrainingRunsTable {
  id: Generated<number>;
  trigger: "cron" | "command" | "cli";
  requested_by: string | null;
  objective: string;
  hyperparameters: JsonWithDefault<Record<string, unknown>>;
  steer_count: ColumnType<number, number | undefined>;
  state: ColumnType<RunState, RunState | undefined>;
  loss_curve: JsonWithDefault<{ step: number; loss: number }[]>;
  eval_before: JsonWithDefault<Record<string, unknown> | null>;
  eval_after: JsonWithDefault<Record<string, unknown> | null>;
  log_tail: string | null;
  error: string | null;
  started_at: Generated<Date>;
  finished_at: Timestamp | null;
}

/** What one running process serves (AdapterActivator records it); null version = the base model. */
export interface InstanceAdaptersTable {
  instance_id: string;
  adapter_version: string | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** Who a running process is and when it last said it is alive (Store.holdInstance writes it). */
export interface InstanceHeartbeatsTable {
  instance_id: string;
  /** "bot" (the app: bots and/or the studio) or "worker" (`steerbot worker`). */
  role: string;
  host: string;
  pid: number;
  runs_jobs: ColumnType<boolean, boolean | undefined>;
  started_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** The database server's time of the last heartbeat. */
  heartbeat_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** An adapter's bytes in the database (adapter-blob-repository.ts): the file's sha256 and size. */
export interface AdapterFilesTable {
  version: string;
  sha256: string;
  size: number;
  chunk_size: number;
  chunks: number;
  created_at: Generated<Date>;
}

export interface AdapterChunksTable {
  version: string;
  seq: number;
  data: Uint8Array;
}

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "skipped" | "busy";

/** A training job as every instance sees it (training-job-repository.ts). */
export interface TrainingJobsTable {
  id: string;
  trigger: "cron" | "command" | "cli";
  requested_by: string | null;
  singleton_key: string | null;
  state: ColumnType<JobState, JobState | undefined>;
  attempts: ColumnType<number, number | undefined>;
  worker_instance: string | null;
  run_id: number | null;
  step: number | null;
  steps: number | null;
  loss: number | null;
  eta_seconds: number | null;
  cancel_requested: ColumnType<boolean, boolean | undefined>;
  adapter_version: string | null;
  activated: boolean | null;
  notice: string | null;
  error: string | null;
  created_at: Generated<Date>;
  started_at: Timestamp | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  finished_at: Timestamp | null;
}

/**
 * A Telegram update some instance received (telegram-update-repository.ts): who claimed it, when it
 * was handled, and where it was forwarded; ids only.
 */
export interface TelegramProcessedUpdatesTable {
  bot_id: number;
  update_id: number;
  /** The instance that claimed it (Store.instanceId). */
  instance_id: string;
  /** The instance it was handed to, when another one streams the reply it is about. */
  forwarded_to: string | null;
  claimed_at: ColumnType<Date, Date | undefined, Date>;
  handled_at: Timestamp | null;
}

export interface Database {
  users: UsersTable;
  threads: ThreadsTable;
  messages: MessagesTable;
  generations: GenerationsTable;
  steers: SteersTable;
  adapters: AdaptersTable;
  training_runs: TrainingRunsTable;
  instance_adapters: InstanceAdaptersTable;
  instance_heartbeats: InstanceHeartbeatsTable;
  adapter_files: AdapterFilesTable;
  adapter_chunks: AdapterChunksTable;
  training_jobs: TrainingJobsTable;
  telegram_processed_updates: TelegramProcessedUpdatesTable;
}

export type SteerRow = Selectable<SteersTable>;
export type NewSteer = Insertable<SteersTable>;
export type GenerationRow = Selectable<GenerationsTable>;
export type GenerationUpdate = Updateable<GenerationsTable>;
export type AdapterRow = Selectable<AdaptersTable>;
export type UserRow = Selectable<UsersTable>;
export type TrainingJobRow = Selectable<TrainingJobsTable>;
