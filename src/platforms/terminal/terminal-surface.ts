/**
 * The terminal as a reply surface: one "message" that only grows. An edit prints the new
 * characters, so what is on screen is exactly what the core recorded as shown.
 */
import type { ReplySurface } from "../../core/ports.ts";

export class TerminalSurface implements ReplySurface {
  readonly maxMessageLength = Number.MAX_SAFE_INTEGER;
  readonly minEditIntervalMs = 0;
  private printed = "";
  private static next = 0;
  /** The id of this surface's one message, once something was shown. */
  id: string | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  async send(text: string): Promise<string> {
    this.print(text);
    this.id = `terminal-${++TerminalSurface.next}`;
    return this.id;
  }

  async edit(_id: string, text: string): Promise<void> {
    this.print(text);
  }

  private print(text: string): void {
    // The core only ever extends or keeps the text of a message; a cut leaves it as printed.
    if (text.startsWith(this.printed)) {
      this.out.write(text.slice(this.printed.length));
      this.printed = text;
    }
  }
}
