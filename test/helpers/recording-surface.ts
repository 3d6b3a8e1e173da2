/**
 * A ReplySurface that keeps messages in memory, as a chat client would show them. Sends and
 * edits take `delayMs` (a platform round trip), so the model runs ahead of the display as it
 * does on a real platform.
 */
import { SurfaceGoneError, type ReplySurface } from "../../src/core/ports.ts";

export class RecordingSurface implements ReplySurface {
  readonly messages = new Map<string, string>();
  readonly order: string[] = [];
  edits = 0;
  gone = false;
  /** Called after every send and edit with what a person now sees (a simulated steerer watches it). */
  onChange?: (visible: string) => void;
  private next = 1;

  constructor(
    readonly maxMessageLength = 2000,
    readonly minEditIntervalMs = 0,
    private readonly delayMs = 0,
    private readonly prefix = "m",
  ) {}

  /** What a person sees: every message's text, in order. */
  get visible(): string {
    return this.order.map((id) => this.messages.get(id)).join("");
  }

  async send(text: string): Promise<string> {
    await this.wait();
    if (this.gone) throw new SurfaceGoneError("chat gone");
    if (text.length > this.maxMessageLength) throw new Error(`message of ${text.length} chars exceeds ${this.maxMessageLength}`);
    const id = `${this.prefix}${this.next++}`;
    this.messages.set(id, text);
    this.order.push(id);
    this.onChange?.(this.visible);
    return id;
  }

  async edit(id: string, text: string): Promise<void> {
    await this.wait();
    if (this.gone || !this.messages.has(id)) throw new SurfaceGoneError("message deleted");
    if (text.length > this.maxMessageLength) throw new Error(`edit of ${text.length} chars exceeds ${this.maxMessageLength}`);
    this.messages.set(id, text);
    this.edits++;
    this.onChange?.(this.visible);
  }

  private wait(): Promise<void> {
    return this.delayMs ? new Promise((r) => setTimeout(r, this.delayMs)) : Promise.resolve();
  }
}
