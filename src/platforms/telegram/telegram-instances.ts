/**
 * What the Telegram adapter needs of the database to share one bot with other instances.
 *
 * Owns: the `TelegramInstances` port — claiming an update once for all instances, finding the
 * instance that streams the reply a message belongs to, whether an instance still runs, and the
 * messages instances send each other (an update handed on, its acknowledgement) — and
 * {@link storeInstances}, its implementation on the store (PostgreSQL, or PGlite for the one
 * process). The adapter's routing is in telegram-instance-routing.ts; no SQL lives here.
 */
import type { Update } from "grammy/types";
import type { ListenEvents } from "../../store/open-database.ts";
import type { GenerationOwner } from "../../store/conversation-repository.ts";
import type { Store } from "../../store/store.ts";
import { TELEGRAM_INSTANCES_CHANNEL } from "../../store/telegram-update-repository.ts";
import { TELEGRAM } from "./telegram-core-port.ts";

export type { GenerationOwner };

/** What one instance tells another (over NOTIFY). */
export type InstanceMessage =
  /** "Handle this update: it is about a reply you stream." */
  | { kind: "update"; to: string; from: string; update: Update }
  /** "I have handled the update you handed me." */
  | { kind: "done"; to: string; from: string; botId: number; updateId: number };

export interface TelegramInstances {
  /** This instance's id (Store.instanceId). */
  readonly self: string;
  /** True for the first instance to claim this update; false for every repeat, on any instance. */
  claim(botId: number, updateId: number): Promise<boolean>;
  markHandled(botId: number, updateId: number): Promise<void>;
  markForwarded(botId: number, updateId: number, to: string): Promise<void>;
  /** The generation a Telegram message key (`<chat>:<message>`, `<chat>:d<draft>`) belongs to. */
  ownerOfMessage(key: string): Promise<GenerationOwner | undefined>;
  /** The newest generation of a chat. */
  newestInChat(chatId: string): Promise<GenerationOwner | undefined>;
  /** Whether that instance still runs. */
  alive(instanceId: string): Promise<boolean>;
  send(message: InstanceMessage): Promise<void>;
  /** Hears every instance message (each listener filters its own by `to`); resolves to the unsubscribe. */
  listen(onMessage: (message: InstanceMessage) => void, events?: ListenEvents): Promise<() => Promise<void>>;
}

/** The port on the store the app opened. */
export function storeInstances(store: Pick<Store, "instanceId" | "telegramUpdates" | "conversations" | "instanceAlive" | "listen">): TelegramInstances {
  return {
    self: store.instanceId,
    claim: (botId, updateId) => store.telegramUpdates.claim(botId, updateId),
    markHandled: (botId, updateId) => store.telegramUpdates.markHandled(botId, updateId),
    markForwarded: (botId, updateId, to) => store.telegramUpdates.markForwarded(botId, updateId, to),
    ownerOfMessage: (key) => store.conversations.ownerOfMessage(TELEGRAM, key),
    newestInChat: (chatId) => store.conversations.newestInChat(TELEGRAM, chatId),
    alive: (id) => (id === store.instanceId ? Promise.resolve(true) : store.instanceAlive(id)),
    send: (message) => store.telegramUpdates.notify(message),
    listen: (onMessage, events) =>
      store.listen(
        TELEGRAM_INSTANCES_CHANNEL,
        (payload) => {
          let m: InstanceMessage;
          try {
            m = JSON.parse(payload) as InstanceMessage;
          } catch {
            return; // not ours
          }
          onMessage(m);
        },
        events,
      ),
  };
}
