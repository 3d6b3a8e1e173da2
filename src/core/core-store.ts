/**
 * What the conversation core needs of the store, and nothing more: the repositories' methods it
 * calls. The core is written against these, not against `Store` (which also opens, migrates and
 * locks the database), so a reader sees at a glance what the core may touch; `Store` satisfies
 * both structurally.
 */
import type { ConversationRepository } from "../store/conversation-repository.ts";
import type { Kysely } from "kysely";
import type { Database } from "../store/database.ts";
import type { Operations } from "../store/operations.ts";
import type { PersonalData } from "../store/personal-data.ts";
import type { SteerRepository } from "../store/steer-repository.ts";
import type { TrainingRepository } from "../store/training-repository.ts";
import type { UserRepository } from "../store/user-repository.ts";

/** The store as SteeringCore uses it. */
export interface CoreStore {
  conversations: Pick<
    ConversationRepository,
    "addMessage" | "addPlatformMessage" | "createGeneration" | "finishGeneration" | "getGeneration" | "history" | "updateGeneration" | "updateMessageText" | "upsertThread"
  >;
  steers: Pick<SteerRepository, "findByCorrection" | "insert" | "removeOwn">;
  users: Pick<UserRepository, "upsert">;
  personalData: Pick<PersonalData, "withhold">;
  /** One transaction: a steer and the generation and history it changes, together or not at all. */
  transaction<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
}

/** The store as AdminCommands uses it. */
export interface AdminStore {
  steers: Pick<SteerRepository, "countApprovedSince" | "countByState" | "list" | "setTrust" | "review">;
  training: Pick<TrainingRepository, "lastSucceededAt" | "adapters">;
  users: Pick<UserRepository, "setOptedOut">;
  personalData: Pick<PersonalData, "forget" | "threadsOf">;
  /** Instances, training queue depth, the running job and its worker's heartbeat (/status). */
  operations(): Promise<Operations>;
}
