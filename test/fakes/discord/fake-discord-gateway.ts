/**
 * The fake Discord gateway: a WebSocket endpoint speaking gateway v10 JSON without compression.
 *
 * Owns: HELLO, IDENTIFY (token check) → READY with one unavailable guild followed by its
 * GUILD_CREATE, heartbeats and their ACKs, RESUME → RESUMED, and `dispatch()` of events with a
 * per-connection sequence number. discord.js's @discordjs/ws connects to
 * `${url}?v=10&encoding=json` where url comes from GET /gateway/bot.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { FakeDiscordState } from "./fake-discord-state.ts";

interface Session {
  ws: WebSocket;
  seq: number;
  identified: boolean;
  sessionId: string;
}

/** Gateway connections of the fake; events reach every identified connection. */
export class FakeDiscordGateway {
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sessions = new Set<Session>();
  readonly #state: FakeDiscordState;
  readonly #token: string;
  #url = "";
  /** IDENTIFY payloads received (tests check intents). */
  readonly identifies: Record<string, unknown>[] = [];
  heartbeatIntervalMs = 15_000;
  #resumes = 0;

  constructor(state: FakeDiscordState, token: string) {
    this.#state = state;
    this.#token = token;
  }

  set url(url: string) {
    this.#url = url;
  }

  get readyCount(): number {
    return [...this.#sessions].filter((s) => s.identified).length;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws));
  }

  #open(ws: WebSocket): void {
    const session: Session = { ws, seq: 0, identified: false, sessionId: `fake-${Math.random().toString(36).slice(2)}` };
    this.#sessions.add(session);
    ws.on("close", () => this.#sessions.delete(session));
    ws.on("error", () => this.#sessions.delete(session));
    ws.on("message", (raw) => {
      let payload: { op: number; d: any };
      try {
        payload = JSON.parse(String(raw));
      } catch {
        ws.close(4002, "Decode error");
        return;
      }
      this.#onPayload(session, payload);
    });
    this.#send(session, { op: 10, d: { heartbeat_interval: this.heartbeatIntervalMs } });
  }

  #onPayload(session: Session, payload: { op: number; d: any }): void {
    switch (payload.op) {
      case 1:
        this.#send(session, { op: 11 });
        return;
      case 2: {
        const token = String(payload.d?.token ?? "").replace(/^Bot /, "");
        if (token !== this.#token) {
          session.ws.close(4004, "Authentication failed.");
          return;
        }
        this.identifies.push(payload.d);
        session.identified = true;
        const s = this.#state;
        this.#dispatchTo(session, "READY", {
          v: 10,
          user_settings: {},
          user: { ...s.userJSON(s.bot), verified: true, mfa_enabled: false, flags: 0 },
          guilds: [{ id: s.guildId, unavailable: true }],
          session_id: session.sessionId,
          resume_gateway_url: this.#url,
          shard: [0, 1],
          application: { id: s.applicationId, flags: 0 },
          private_channels: [],
          relationships: [],
          presences: [],
          guild_join_requests: [],
          geo_ordered_rtc_regions: [],
        });
        setTimeout(() => this.#dispatchTo(session, "GUILD_CREATE", s.guildJSON()), 5);
        return;
      }
      case 6:
        this.#resumes++;
        session.identified = true;
        this.#dispatchTo(session, "RESUMED", {});
        return;
      default:
        return;
    }
  }

  #send(session: Session, payload: Record<string, unknown>): void {
    if (session.ws.readyState === session.ws.OPEN) session.ws.send(JSON.stringify(payload));
  }

  #dispatchTo(session: Session, t: string, d: unknown): void {
    session.seq++;
    this.#send(session, { op: 0, t, s: session.seq, d });
  }

  /** Sends one dispatch event to every identified connection. */
  dispatch(t: string, d: unknown): void {
    for (const s of this.#sessions) if (s.identified) this.#dispatchTo(s, t, d);
  }

  /** Drops every connection abruptly (a network blip); clients reconnect and RESUME. */
  dropAll(): void {
    for (const s of this.#sessions) s.ws.terminate();
  }

  /** RESUME payloads received. */
  get resumeCount(): number {
    return this.#resumes;
  }

  close(): void {
    for (const s of this.#sessions) s.ws.terminate();
    this.#sessions.clear();
    this.#wss.close();
  }
}
