/**
 * The Discord side of one streamed reply: sends and edits the bot's messages in one channel
 * (a thread, a text channel when threads are not allowed, or a DM).
 *
 * Owns: the REST calls that show text and the mapping of Discord's "gone for good" errors to
 * `SurfaceGoneError`. Throttling, splitting at 2000 characters and deciding when to edit are the
 * core's job (it reads `maxMessageLength` and `minEditIntervalMs`). 429s never reach here:
 * discord.js's REST queue waits out `retry_after` per bucket and retries, and because the queue
 * of one bucket is first-in first-out, the last edit sent is the last edit applied.
 */
import { DiscordAPIError, RESTJSONErrorCodes, Routes, type REST } from "discord.js";
import { SurfaceGoneError, type ReplySurface } from "../../core/ports.ts";

/** Discord's limit for one message's content. */
export const DISCORD_MAX_MESSAGE_LENGTH = 2000;

/** Errors after which editing or sending in this place can never succeed again. */
const GONE_CODES = new Set<number>([
  RESTJSONErrorCodes.UnknownMessage,
  RESTJSONErrorCodes.UnknownChannel,
  RESTJSONErrorCodes.MissingAccess,
  RESTJSONErrorCodes.ThreadLocked,
  RESTJSONErrorCodes.CannotEditMessageAuthoredByAnotherUser,
  RESTJSONErrorCodes.CannotSendMessagesInNonTextChannel,
]);

export interface DiscordReplySurfaceOptions {
  /** Least time between two edits of one message; Discord tolerates about one a second. */
  minEditIntervalMs: number;
  /** Message the first message of this reply answers (shown as a Discord reply). */
  replyToMessageId?: string;
  /**
   * True once the bot is shutting down: every call then throws SurfaceGoneError, so the core
   * ends the generation cleanly instead of generating into a closed connection.
   */
  isClosed?: () => boolean;
  /** Counts every send/edit that failed, by kind, for the benchmark and the logs. */
  onError?: (op: "send" | "edit", err: unknown) => void;
}

/** Sends/edits the bot's messages of one reply in one Discord channel. */
export class DiscordReplySurface implements ReplySurface {
  readonly maxMessageLength = DISCORD_MAX_MESSAGE_LENGTH;
  readonly minEditIntervalMs: number;
  readonly channelId: string;
  readonly #rest: REST;
  readonly #options: DiscordReplySurfaceOptions;
  #replied = false;

  constructor(rest: REST, channelId: string, options: DiscordReplySurfaceOptions) {
    this.#rest = rest;
    this.channelId = channelId;
    this.minEditIntervalMs = options.minEditIntervalMs;
    this.#options = options;
  }

  async send(text: string): Promise<string> {
    this.#assertOpen();
    const replyTo = !this.#replied ? this.#options.replyToMessageId : undefined;
    this.#replied = true;
    try {
      const body: Record<string, unknown> = {
        content: visible(text),
        // Model output must never ping @everyone, roles or users.
        allowed_mentions: { parse: [] },
      };
      if (replyTo) body.message_reference = { message_id: replyTo, fail_if_not_exists: false };
      const msg = (await this.#rest.post(Routes.channelMessages(this.channelId), { body })) as { id: string };
      return msg.id;
    } catch (err) {
      this.#options.onError?.("send", err);
      throw translate(err, `send in channel ${this.channelId}`);
    }
  }

  async edit(messageId: string, text: string): Promise<void> {
    this.#assertOpen();
    try {
      await this.#rest.patch(Routes.channelMessage(this.channelId, messageId), {
        body: { content: visible(text), allowed_mentions: { parse: [] } },
      });
    } catch (err) {
      this.#options.onError?.("edit", err);
      throw translate(err, `edit message ${messageId} in channel ${this.channelId}`);
    }
  }

  #assertOpen(): void {
    if (this.#options.isClosed?.()) throw new SurfaceGoneError("Discord: the bot is shutting down");
  }
}

/** Discord refuses empty content; an empty reply so far shows an ellipsis. */
function visible(text: string): string {
  return text.trim().length === 0 ? "…" : text;
}

function translate(err: unknown, what: string): unknown {
  if (err instanceof DiscordAPIError && typeof err.code === "number" && GONE_CODES.has(err.code)) {
    return new SurfaceGoneError(`Discord: cannot ${what}: ${err.message} (code ${err.code})`, { cause: err });
  }
  return err;
}

/** True when a failure came from Discord saying "no permission" (thread creation fallback). */
export function isMissingPermission(err: unknown): boolean {
  return (
    err instanceof DiscordAPIError &&
    (err.code === RESTJSONErrorCodes.MissingPermissions || err.code === RESTJSONErrorCodes.MissingAccess)
  );
}
