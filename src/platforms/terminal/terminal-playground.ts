/**
 * The terminal playground (`steerbot chat`, and `npm start` when no platform token is set):
 * the whole steer flow with no chat platform.
 *
 * Owns: the terminal conversation. A reply streams; **any key stops it** at what is on
 * screen; the next line typed is the correction (any form: plain text, `s/old/new/`, a
 * `> quoted` line) and the reply resumes from it. Commands: /accept, /steer TEXT (correct a
 * finished reply), /new, /help, /quit. Steers land in the store like any other, approved: the
 * person at the terminal is the operator.
 */
import { Writable } from "node:stream";
import { createInterface, type Interface } from "node:readline/promises";
import type { SteeringCore } from "../../core/steering-core.ts";
import type { Actor, ThreadRef } from "../../core/ports.ts";
import { TerminalSurface } from "./terminal-surface.ts";

const HELP = `Type a question and press Enter. While the reply streams, press any key to stop it where it went wrong,
then type your correction: plain text (what it should have said), s/wrong/right/, or "> quoted part" then your fix.
Commands: /accept (keep the reply)  /steer TEXT (correct a finished reply)  /new (new conversation)  /quit`;

export class TerminalPlayground {
  private thread: ThreadRef;
  private conversation = 1;
  /** Whoever types here runs this steerbot: the operator, so their steers are approved at once. */
  private readonly actor: Actor = { platform: "terminal", userId: process.env.USER || "you", displayName: "terminal", operator: true };
  private lastMessageId: string | undefined;
  private counter = 0;
  private muted = false;
  private rl: Interface | undefined;
  private closed = false;

  constructor(
    private readonly core: SteeringCore,
    private readonly input: NodeJS.ReadStream = process.stdin,
    private readonly output: NodeJS.WriteStream = process.stdout,
  ) {
    this.thread = this.newThread();
  }

  async run(): Promise<void> {
    this.output.write(`${HELP}\n\n`);
    // One readline for the session. Its echo goes through a mutable stream: while a reply
    // streams, a key press must stop it, not be echoed into the middle of the reply.
    const echo = new Writable({
      write: (chunk, _enc, done) => {
        if (!this.muted) this.output.write(chunk);
        done();
      },
    });
    this.rl = createInterface({ input: this.input, output: echo, terminal: this.input.isTTY });
    this.rl.on("close", () => (this.closed = true));
    try {
      await this.loop();
    } finally {
      this.rl.close();
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      const state = this.core.openReplyIn(this.thread)?.state;
      const line = await this.question(state === "stopped" ? "correction> " : "you> ");
      if (line === undefined || line.trim() === "/quit") return;
      const text = line.trim();
      if (text === "") continue;
      if (text === "/help") this.output.write(`${HELP}\n`);
      else if (text === "/new") {
        this.thread = this.newThread();
        this.output.write("(new conversation)\n");
      } else if (text === "/accept") {
        const out = this.lastMessageId ? await this.core.accept({ platform: "terminal", messageId: this.lastMessageId, actor: this.actor }) : { ok: false, notice: "Nothing to accept yet." };
        this.output.write(out.ok ? "(accepted)\n" : `${out.notice ?? "Nothing to accept."}\n`);
      } else if (state === "stopped" || text.startsWith("/steer ")) {
        await this.streamed((surface) =>
          this.core.correct({
            thread: this.thread,
            actor: this.actor,
            correction: { text: text.startsWith("/steer ") ? text.slice(7) : line },
            messageId: this.nextId("c"),
            surface,
          }),
        );
      } else {
        await this.streamed((surface) => this.core.ask({ thread: this.thread, actor: this.actor, text, sourceMessageId: this.nextId("q"), surface }));
      }
    }
  }

  /** Runs one streaming call; a key press meanwhile stops the reply at what is on screen. */
  private async streamed(start: (surface: TerminalSurface) => Promise<{ ok: boolean; notice?: string }>): Promise<void> {
    const surface = new TerminalSurface(this.output);
    this.output.write("bot> ");
    let stopped = false;
    const onKey = () => {
      if (stopped || !surface.id) return; // nothing on screen yet: nothing to stop at
      stopped = true;
      void this.core.stop({ platform: "terminal", messageId: surface.id, actor: this.actor });
    };
    this.muted = true;
    this.input.on("keypress", onKey);
    this.input.on("data", onKey); // not a TTY (piped input): any input stops
    try {
      const out = await start(surface);
      this.output.write(stopped ? "  [stopped]\n" : "\n");
      if (out.notice) this.output.write(`(${out.notice})\n`);
    } finally {
      this.input.off("keypress", onKey);
      this.input.off("data", onKey);
      this.rl?.write(null, { ctrl: true, name: "u" }); // drop the key that stopped it
      this.muted = false;
    }
    this.lastMessageId = surface.id ?? this.lastMessageId;
  }

  private async question(prompt: string): Promise<string | undefined> {
    if (!this.rl || this.closed) return undefined;
    const rl = this.rl;
    return new Promise<string | undefined>((resolve) => {
      const onClose = () => resolve(undefined);
      rl.once("close", onClose);
      rl.question(prompt).then(
        (answer) => {
          rl.off("close", onClose);
          resolve(answer);
        },
        () => resolve(undefined),
      );
    });
  }

  private newThread(): ThreadRef {
    return { platform: "terminal", chatId: "local", threadId: `${Date.now()}-${this.conversation++}` };
  }

  private nextId(kind: string): string {
    return `${kind}-${Date.now()}-${++this.counter}`;
  }
}
