/**
 * The fake Discord gateway: a WebSocket endpoint speaking gateway v10 JSON without compression.
 *
 * Owns: HELLO, IDENTIFY (token check) → READY listing the guilds of the connection's shard as
 * unavailable, followed by their GUILD_CREATEs, heartbeats and their ACKs, RESUME → RESUMED, and
 * `dispatch()` of events with a per-connection sequence number. discord.js's @discordjs/ws
 * connects to `${url}?v=10&encoding=json` where url comes from GET /gateway/bot, one connection
 * per shard it runs (several Clients, or one Client with several shards, connect at once).
 *
 * Sharding as Discord documents it (https://discord.com/developers/docs/events/gateway#sharding):
 * IDENTIFY carries `shard: [shard_id, num_shards]` (absent: [0, 1]); a guild's events go only
 * to the connections whose `shard_id = (guild_id >> 22) % num_shards`, events without a guild
 * (DMs) only to shard 0. IDENTIFY with an invalid shard is closed with 4010 Invalid shard; a
 * shard that would hold more guilds than `guildsPerShard.max` (Discord: 2500) with 4011
 * Sharding required. IDENTIFYs are limited per 5 s per bucket `shard_id % max_concurrency`:
 * one too many is answered with op 9 Invalid Session (d: false), and the client identifies
 * again later. GET /gateway/bot's `shards` (one per `guildsPerShard.recommended` guilds) and
 * `session_start_limit` come from here.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { guildShard, type FakeDiscordState } from "./fake-discord-state.ts";

export interface GuildsPerShard {
  /** Most guilds one shard may hold: more, and its IDENTIFY is closed with 4011. */
  max: number;
  /** Guilds per shard GET /gateway/bot's recommended `shards` counts with. */
  recommended: number;
}

export interface GatewayOptions {
  maxConcurrency: number;
  guildsPerShard: GuildsPerShard;
}

interface Session {
  ws: WebSocket;
  seq: number;
  identified: boolean;
  sessionId: string;
  /** [shard_id, num_shards] of its IDENTIFY (kept across RESUMEs). */
  shard: [number, number];
}

/** One event delivered to one connection (tests check which shard got what). */
export interface Delivery {
  t: string;
  shard: [number, number];
  sessionId: string;
  guildId?: string;
}

/** Events about a guild itself carry its id as `id`; every other guild event as `guild_id`. */
const GUILD_ITSELF = new Set(["GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"]);

/** Identifies per bucket per this window (Discord: max_concurrency per 5 seconds). */
const IDENTIFY_WINDOW_MS = 5000;
const SESSION_START_TOTAL = 1000;

/** Gateway connections of the fake; each event reaches the identified connections of its shard. */
export class FakeDiscordGateway {
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sessions = new Set<Session>();
  readonly #state: FakeDiscordState;
  readonly #token: string;
  readonly #options: GatewayOptions;
  #url = "";
  /** IDENTIFY payloads accepted (tests check intents and shards). */
  readonly identifies: Record<string, unknown>[] = [];
  /** IDENTIFYs refused: the shard asked for and the close code (4010, 4011) or 9 (op 9, too many at once). */
  readonly refusedIdentifies: { shard: unknown; code: number }[] = [];
  /** Every dispatch and the connection it went to, in order. */
  readonly deliveries: Delivery[] = [];
  heartbeatIntervalMs = 15_000;
  #resumes = 0;
  /** Shard of each session ever identified, for RESUME (Discord resumes by session id). */
  readonly #shardOfSession = new Map<string, [number, number]>();
  /** Last accepted IDENTIFY per rate-limit bucket. */
  readonly #lastIdentify = new Map<number, number>();

  constructor(state: FakeDiscordState, token: string, options: GatewayOptions = { maxConcurrency: 1, guildsPerShard: { max: 2500, recommended: 1000 } }) {
    this.#state = state;
    this.#token = token;
    this.#options = options;
  }

  set url(url: string) {
    this.#url = url;
  }

  get readyCount(): number {
    return [...this.#sessions].filter((s) => s.identified).length;
  }

  /** The [shard_id, num_shards] of each identified connection now open. */
  get connectedShards(): [number, number][] {
    return [...this.#sessions].filter((s) => s.identified).map((s) => s.shard);
  }

  /** GET /gateway/bot `shards`: what Discord recommends for this many guilds. */
  get recommendedShards(): number {
    return Math.max(1, Math.ceil(this.#state.guilds.size / this.#options.guildsPerShard.recommended));
  }

  /** GET /gateway/bot `session_start_limit`. */
  get sessionStartLimit(): { total: number; remaining: number; reset_after: number; max_concurrency: number } {
    return {
      total: SESSION_START_TOTAL,
      remaining: Math.max(0, SESSION_START_TOTAL - this.identifies.length),
      reset_after: 60_000,
      max_concurrency: this.#options.maxConcurrency,
    };
  }

  /** The guilds a connection identified as `shard` receives. */
  guildsOf(shard: [number, number]): string[] {
    return [...this.#state.guilds.keys()].filter((id) => guildShard(id, shard[1]) === shard[0]);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws));
  }

  #open(ws: WebSocket): void {
    const session: Session = { ws, seq: 0, identified: false, sessionId: `fake-${Math.random().toString(36).slice(2)}`, shard: [0, 1] };
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
      case 2:
        this.#identify(session, payload.d);
        return;
      case 6: {
        const shard = this.#shardOfSession.get(String(payload.d?.session_id ?? ""));
        if (!shard) {
          this.#send(session, { op: 9, d: false });
          return;
        }
        this.#resumes++;
        session.shard = shard;
        session.sessionId = String(payload.d.session_id);
        session.identified = true;
        this.#dispatchTo(session, "RESUMED", {});
        return;
      }
      default:
        return;
    }
  }

  #identify(session: Session, d: any): void {
    const token = String(d?.token ?? "").replace(/^Bot /, "");
    if (token !== this.#token) {
      session.ws.close(4004, "Authentication failed.");
      return;
    }
    const asked = d?.shard ?? [0, 1];
    const valid =
      Array.isArray(asked) && asked.length === 2 && asked.every((n) => Number.isInteger(n)) && asked[1] >= 1 && asked[0] >= 0 && asked[0] < asked[1];
    if (!valid) {
      this.refusedIdentifies.push({ shard: asked, code: 4010 });
      session.ws.close(4010, "Invalid shard.");
      return;
    }
    const shard: [number, number] = [asked[0], asked[1]];
    const guilds = this.guildsOf(shard);
    if (guilds.length > this.#options.guildsPerShard.max) {
      this.refusedIdentifies.push({ shard, code: 4011 });
      session.ws.close(4011, "Sharding required.");
      return;
    }
    const bucket = shard[0] % this.#options.maxConcurrency;
    const last = this.#lastIdentify.get(bucket);
    if (last !== undefined && Date.now() - last < IDENTIFY_WINDOW_MS) {
      // Discord: "if they exceed this limit, the Gateway will respond with an Opcode 9 Invalid Session"
      this.refusedIdentifies.push({ shard, code: 9 });
      this.#send(session, { op: 9, d: false });
      return;
    }
    this.#lastIdentify.set(bucket, Date.now());
    this.identifies.push(d);
    session.shard = shard;
    session.identified = true;
    this.#shardOfSession.set(session.sessionId, shard);
    const s = this.#state;
    this.#dispatchTo(session, "READY", {
      v: 10,
      user_settings: {},
      user: { ...s.userJSON(s.bot), verified: true, mfa_enabled: false, flags: 0 },
      guilds: guilds.map((id) => ({ id, unavailable: true })),
      session_id: session.sessionId,
      resume_gateway_url: this.#url,
      shard,
      application: { id: s.applicationId, flags: 0 },
      private_channels: [],
      relationships: [],
      presences: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
    });
    setTimeout(() => {
      for (const id of guilds) this.#dispatchTo(session, "GUILD_CREATE", s.guildJSON(id));
    }, 5);
  }

  #send(session: Session, payload: Record<string, unknown>): void {
    if (session.ws.readyState === session.ws.OPEN) session.ws.send(JSON.stringify(payload));
  }

  #dispatchTo(session: Session, t: string, d: unknown): void {
    session.seq++;
    const guildId = guildOf(t, d);
    this.deliveries.push({ t, shard: session.shard, sessionId: session.sessionId, ...(guildId ? { guildId } : {}) });
    this.#send(session, { op: 0, t, s: session.seq, d });
  }

  /**
   * Sends one dispatch event to the identified connections of its shard: a guild's events to
   * shard `(guild_id >> 22) % num_shards`, the rest (DMs) to shard 0.
   */
  dispatch(t: string, d: unknown): void {
    const guildId = guildOf(t, d);
    for (const s of this.#sessions) {
      if (!s.identified) continue;
      const owner = guildId ? guildShard(guildId, s.shard[1]) : 0;
      if (owner === s.shard[0]) this.#dispatchTo(s, t, d);
    }
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

function guildOf(t: string, d: unknown): string | undefined {
  if (typeof d !== "object" || d === null) return undefined;
  const o = d as { id?: unknown; guild_id?: unknown };
  const id = GUILD_ITSELF.has(t) ? o.id : o.guild_id;
  return typeof id === "string" ? id : undefined;
}
