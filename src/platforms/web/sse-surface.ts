/**
 * One streamed reply shown in the browser: a {@link ReplySurface} that writes Server-Sent
 * Events into the response of the request that started the stream (ask or resume).
 *
 * Owns: the event format the page reads (`public/steer-stream.js`):
 * - `{"type":"message","id"}` — the stream's one message was "sent" (its id is what stop,
 *   accept and correct name);
 * - `{"type":"delta","at","text"}` — the message now shows its first `at` characters followed by
 *   `text` (appends are `at` = what it showed; a cut is `text` = "");
 * - `{"type":"end", …}` — written by the route when the stream is over.
 * Each edit is written token by token (the surface asks for no throttle); the core counts a
 * write as shown, and the page reports what it really rendered when it stops.
 */
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { SurfaceGoneError, type ReplySurface } from "../../core/ports.ts";

export class SseSurface implements ReplySurface {
  readonly maxMessageLength = Number.MAX_SAFE_INTEGER;
  readonly minEditIntervalMs = 0;
  readonly editIntervalMs = 0;
  /** The id of this stream's message, once sent. */
  id: string | undefined;
  private shown = "";
  /** Characters written so far at most (what the server sent; the page may lag behind). */
  sentLength = 0;

  constructor(private readonly res: ServerResponse) {}

  /** Starts the event stream on the response. */
  open(): void {
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      connection: "keep-alive",
    });
  }

  async send(text: string): Promise<string> {
    this.id = `w-${randomBytes(9).toString("base64url")}`;
    await this.write({ type: "message", id: this.id });
    await this.show(text);
    return this.id;
  }

  async edit(_id: string, text: string): Promise<void> {
    await this.show(text);
  }

  /** Writes one event (also the route's final one). */
  async write(event: Record<string, unknown>): Promise<void> {
    if (this.res.destroyed || this.res.writableEnded) throw new SurfaceGoneError("the browser closed the stream");
    // No wait for "drain": a slow browser must never hold the core's reply queue (a stop waiting
    // behind a pending edit would only land once the backlog crossed the link). What waits in
    // memory is the reply's own text, once: each delta carries only what changed.
    this.res.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }

  private async show(text: string): Promise<void> {
    let at = 0;
    const max = Math.min(text.length, this.shown.length);
    while (at < max && text.charCodeAt(at) === this.shown.charCodeAt(at)) at++;
    if (at === text.length && at === this.shown.length) return;
    await this.write({ type: "delta", at, text: text.slice(at) });
    this.shown = text;
    this.sentLength = Math.max(this.sentLength, text.length);
  }
}
