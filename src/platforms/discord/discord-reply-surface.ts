/**
 * The Discord side of one streamed reply: sends and edits the bot's messages in one channel
 * (a thread, a text channel when threads are not allowed, or a DM).
 *
 * Owns: the REST calls that show text (with SUPPRESS_EMBEDS: a URL in model output must not
 * unfurl into a preview), the mapping of Discord's "gone for good" and "not allowed" errors to
 * `SurfaceGoneError`, and the pace of calls after a failure: never faster than the edit interval,
 * and a few failures in a row end the stream. Discord bans an IP after 10,000 invalid requests
 * (401/403/429) in 10 minutes, so a refused call is never repeated. Throttling, splitting at 2000 characters and deciding when to edit are the
 * core's job (it reads `maxMessageLength` and `minEditIntervalMs`). 429s never reach here:
 * discord.js's REST queue waits out `retry_after` per bucket and retries, and because the queue
 * of one bucket is first-in first-out, the last edit sent is the last edit applied.
 */
import { DiscordAPIError, MessageFlags, RESTJSONErrorCodes, Routes, type REST } from "discord.js";
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

/**
 * Errors that say "the bot may not do this here" (Missing Permissions: a read-only channel, no
 * Send Messages in Threads, the bot timed out; slowmode): retrying cannot help until a person
 * changes something, so the stream ends and the asker is told.
 */
const REFUSED_CODES = new Set<number>([
  RESTJSONErrorCodes.MissingPermissions,
  RESTJSONErrorCodes.CannotExecuteActionOnThisChannelType,
  RESTJSONErrorCodes.ActionCannotBePerformedDueToSlowmodeRateLimit,
  RESTJSONErrorCodes.AnnouncementEditLimitExceeded,
]);

/** Failures in a row (each after discord.js's own retries) after which a stream gives up. */
const MAX_FAILURES_IN_A_ROW = 3;

/** Why a surface stopped showing the reply, for the notice to the asker. */
export interface SurfaceFailure {
  kind: "refused" | "failing";
  /** Discord's error message and code, e.g. "Missing Permissions (code 50013)". */
  reason: string;
}

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
  #failuresInARow = 0;
  #lastFailureAt = 0;
  /** Set when Discord refused or kept failing: the stream ended here and the asker should know. */
  failure: SurfaceFailure | undefined;

  constructor(rest: REST, channelId: string, options: DiscordReplySurfaceOptions) {
    this.#rest = rest;
    this.channelId = channelId;
    this.minEditIntervalMs = options.minEditIntervalMs;
    this.#options = options;
  }

  async send(text: string): Promise<string> {
    await this.#pace();
    const replyTo = !this.#replied ? this.#options.replyToMessageId : undefined;
    this.#replied = true;
    try {
      const body: Record<string, unknown> = {
        content: visible(text),
        flags: MessageFlags.SuppressEmbeds,
        // Model output must never ping @everyone, roles or users.
        allowed_mentions: { parse: [] },
      };
      if (replyTo) body.message_reference = { message_id: replyTo, fail_if_not_exists: false };
      const msg = (await this.#rest.post(Routes.channelMessages(this.channelId), { body })) as { id: string };
      this.#failuresInARow = 0;
      return msg.id;
    } catch (err) {
      this.#options.onError?.("send", err);
      throw this.#failed(err, `send in channel ${this.channelId}`);
    }
  }

  async edit(messageId: string, text: string): Promise<void> {
    await this.#pace();
    try {
      await this.#rest.patch(Routes.channelMessage(this.channelId, messageId), {
        body: { content: visible(text), flags: MessageFlags.SuppressEmbeds, allowed_mentions: { parse: [] } },
      });
      this.#failuresInARow = 0;
    } catch (err) {
      this.#options.onError?.("edit", err);
      throw this.#failed(err, `edit message ${messageId} in channel ${this.channelId}`);
    }
  }

  /**
   * Before each call: refuse once closed or given up, and after a failure wait out the edit
   * interval (the core retries at once on an error it does not know; Discord must not see that).
   */
  async #pace(): Promise<void> {
    if (this.#options.isClosed?.()) throw new SurfaceGoneError("Discord: the bot is shutting down");
    if (this.failure) throw new SurfaceGoneError(`Discord: stopped showing this reply: ${this.failure.reason}`);
    if (this.#failuresInARow > 0) {
      const wait = this.#lastFailureAt + this.minEditIntervalMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.#options.isClosed?.()) throw new SurfaceGoneError("Discord: the bot is shutting down");
    }
  }

  /** The error to throw for a failed call; records refusals and repeated failures. */
  #failed(err: unknown, what: string): unknown {
    this.#lastFailureAt = Date.now();
    this.#failuresInARow++;
    const gone = translate(err, what);
    if (gone instanceof SurfaceGoneError) return gone;
    const reason = err instanceof DiscordAPIError ? `${err.message} (code ${err.code})` : err instanceof Error ? err.message : String(err);
    if (isRefusal(err)) this.failure = { kind: "refused", reason };
    else if (this.#failuresInARow >= MAX_FAILURES_IN_A_ROW) this.failure = { kind: "failing", reason };
    if (this.failure) return new SurfaceGoneError(`Discord: cannot ${what}: ${reason}`, { cause: err });
    return err;
  }
}

/** A 401/403, or one of the refusal codes: no retry can succeed. */
function isRefusal(err: unknown): boolean {
  if (!(err instanceof DiscordAPIError)) return false;
  return err.status === 401 || err.status === 403 || (typeof err.code === "number" && REFUSED_CODES.has(err.code));
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
