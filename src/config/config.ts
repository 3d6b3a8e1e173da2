/**
 * Configuration: the schema, the files and the environment.
 *
 * Owns: loading `config/default.yaml`, then `config/local.yaml` (or `$STEERBOT_CONFIG`), then
 * `STEERBOT_<SECTION>__<KEY>` environment variables; validating the result with zod so that a
 * bad value is named by its key and the expected value; and reading secrets (bot tokens,
 * DATABASE_URL) from the environment only — a secret in a file is refused, because config
 * files get committed and pasted into issues.
 */
import { APPROXIMATE_STEERS, COMPUTE_TYPES, OBJECTIVES } from "../training/training-options.ts";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { projectRoot } from "../engine/llama-source.ts";
import { MAX_SHARD_COUNT, shardProblems } from "../platforms/discord/discord-shards.ts";

/**
 * Discord and Telegram ids are strings. An unquoted one is a number to YAML, and ids past 2^53
 * come out rounded (123456789012345678 → 123456789012345680): refused, never coerced.
 */
const id = z.string({
  error: (iss) => (typeof iss.input === "number" ? `ids are strings: write it in quotes ("…"); unquoted, YAML reads a number and long ids lose digits` : undefined),
});
const who = z.object({ users: z.array(id).default([]), roles: z.array(id).default([]) }).strict();
const rule = who.extend({ channels: z.array(id).default([]) }).strict();
/** admins/trusted: Telegram chat roles count only in these chats (a chat admin is not a steerbot admin). */
const scopedWho = who.extend({ role_chats: z.array(id).default([]) }).strict();
const emoji = z.string().min(1).max(16);

export const configSchema = z
  .object({
    store: z.object({ data_dir: z.string().min(1) }).strict(),
    model: z
      .object({
        path: z.string().min(1),
        threads: z.number().int().min(0).max(256),
        context_size: z.number().int().min(256).max(1 << 20),
        gpu: z.union([z.enum(["auto", "cuda", "vulkan", "metal"]), z.literal(false)]),
      })
      .strict(),
    generation: z
      .object({
        max_tokens: z.number().int().min(1).max(1 << 16),
        temperature: z.number().min(0).max(5),
        system_prompt: z.string(),
        max_queued: z.number().int().min(0).max(10_000),
        max_waiting: z.number().int().min(1).max(100_000),
      })
      .strict(),
    ask: z.object({ per_user_per_minute: z.number().int().min(1) }).strict(),
    stream: z.object({ edit_interval_ms: z.number().int().min(0).max(60_000) }).strict(),
    steer: z
      .object({
        max_correction_chars: z.number().int().min(1).max(100_000),
        per_user_per_minute: z.number().int().min(1),
      })
      .strict(),
    permissions: z
      .object({
        ask: rule,
        stop: rule,
        steer: rule,
        admins: scopedWho,
        trusted: scopedWho,
        default_trust: z.enum(["pending", "approved"]),
      })
      .strict(),
    discord: z
      .object({
        stop_emoji: emoji,
        accept_emoji: emoji,
        // Sharding (several instances on one bot token): checked in discord-shards.ts, one message per problem.
        shards: z.union([z.enum(["all", "auto"]), z.array(z.number())], { error: "expected all, auto, or the shard ids this instance runs, like [0, 1]" }),
        shard_count: z.number({ error: `the total number of shards of all instances: a whole number from 1 to ${MAX_SHARD_COUNT}` }),
      })
      .strict()
      .superRefine((d, ctx) => {
        for (const p of shardProblems(d.shards, d.shard_count)) ctx.addIssue({ code: "custom", path: [p.key], message: p.message });
      }),
    telegram: z
      .object({
        stop_emoji: emoji,
        accept_emoji: emoji,
        private_drafts: z.boolean(),
        // Telegram's limits: ~1 message/s per chat, 20/min per group; less only buys 429s.
        chat_min_interval_ms: z.number().int().min(1000, "Telegram allows about one message a second per chat: use 1000 or more").max(60_000),
        group_chat_min_interval_ms: z.number().int().min(3000, "Telegram allows 20 messages a minute per group: use 3000 or more").max(60_000),
        mode: z.enum(["polling", "webhook"]),
        webhook: z.object({ port: z.number().int().min(1).max(65535), host: z.string(), path: z.string().startsWith("/"), url: z.string() }).strict(),
        // Groups checked at start (bot admin? stop reaction allowed?): group ids are negative.
        check_chats: z.array(id.regex(/^-\d{1,15}$/, 'a group chat id is negative, like "-1001234567890"')).default([]),
      })
      .strict(),
    training: z
      .object({
        enabled: z.boolean(),
        schedule: z.string().min(9),
        base_model: z.string(),
        threads: z.number().int().min(0).max(1024),
        timezone: z.string().min(1),
        min_new_steers: z.number().int().min(1),
        objective: z.enum(OBJECTIVES),
        rank: z.number().int().min(1).max(512),
        alpha: z.number().positive(),
        epochs: z.number().int().min(1).max(1000),
        learning_rate: z.number().positive().max(1),
        retention: z.number().min(0).max(100),
        /** A steer is not pushed further in a step where the adapter writes its chosen span with this mean token probability (1 = always pushed). */
        learned_at: z.number().gt(0).max(1),
        /** Replies nobody steered (newest first) the retention term also holds; used only when retention > 0. */
        anchors: z.number().int().min(0).max(10_000),
        compute_type: z.enum(COMPUTE_TYPES),
        /** The trainer's random seed (adapter initialisation, steer order, retention positions). */
        seed: z.number().int().min(0).max(2_147_483_647),
        held_out_fraction: z.number().min(0).max(0.9),
        min_improvement: z.number().min(0).max(1),
        approximate_steers: z.enum(APPROXIMATE_STEERS),
        /** Run queued training jobs in this bot process; false: only `steerbot worker` trains (needs DATABASE_URL). */
        run_here: z.boolean(),
        /** A run going longer than this is stopped, a failed attempt (retried once). At most 23: pg-boss expires jobs within 24 h. */
        job_timeout_hours: z.number().positive().max(23),
        /** How often each process checks that the workers of running jobs are alive. */
        worker_check_seconds: z.number().positive().max(3600),
      })
      .strict(),
    log: z.object({ level: z.enum(["trace", "debug", "info", "warn", "error"]) }).strict(),
    /** The studio (src/platforms/web/): host and port; any host but loopback needs STEERBOT_WEB_TOKEN. */
    web: z.object({ enabled: z.boolean(), host: z.string().min(1), port: z.number().int().min(0).max(65535) }).strict(),
    /**
     * Observability (src/observability/): `GET /metrics` on a listener of its own (the studio
     * serves it too); any host but loopback needs STEERBOT_METRICS_TOKEN. The heartbeat is how
     * often each process records that it is alive (/status, /metrics).
     */
    metrics: z
      .object({
        enabled: z.boolean(),
        host: z.string().min(1),
        port: z.number().int().min(0).max(65535),
        heartbeat_seconds: z.number().min(1).max(3600),
      })
      .strict(),
  })
  .strict()
  .refine((c) => c.generation.max_tokens < c.model.context_size, {
    path: ["generation", "max_tokens"],
    message: "must be less than model.context_size: the conversation needs room in the context too",
  })
  .refine((c) => c.generation.max_waiting >= c.generation.max_queued, {
    path: ["generation", "max_waiting"],
    message: "must be at least generation.max_queued: the engine would refuse questions the core has let queue",
  });

export type AppConfig = z.infer<typeof configSchema>;

/** Secrets, from the environment only; never written to logs. */
export interface Secrets {
  discordToken?: string;
  telegramToken?: string;
  /** Checked on every Telegram webhook call (X-Telegram-Bot-Api-Secret-Token). */
  telegramWebhookSecret?: string;
  databaseUrl?: string;
  /** STEERBOT_WEB_TOKEN: the studio's login (required on any host but loopback). */
  webToken?: string;
  /** STEERBOT_METRICS_TOKEN: the bearer token `GET /metrics` requires when set (required on a metrics listener off loopback). */
  metricsToken?: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const SECRET_KEYS = ["token", "discord_token", "telegram_token", "database_url", "password"];

type Tree = Record<string, unknown>;

function isTree(v: unknown): v is Tree {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  return out;
}

function readYaml(file: string): Tree {
  let value: unknown;
  try {
    value = parseYaml(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(`${file}: not valid YAML (${(e as Error).message})`);
  }
  if (value == null) return {};
  if (!isTree(value)) throw new ConfigError(`${file}: expected a mapping of settings at the top level`);
  refuseSecrets(value, file, []);
  return value;
}

function refuseSecrets(tree: Tree, file: string, at: string[]): void {
  for (const [k, v] of Object.entries(tree)) {
    if (SECRET_KEYS.includes(k.toLowerCase()))
      throw new ConfigError(`${file}: ${[...at, k].join(".")} looks like a secret; set it in the environment (DISCORD_TOKEN, TELEGRAM_TOKEN, DATABASE_URL) instead of a file`);
    if (isTree(v)) refuseSecrets(v, file, [...at, k]);
  }
}

/** `STEERBOT_MODEL__THREADS=2` → `{ model: { threads: 2 } }`; values parsed as YAML scalars. */
function fromEnv(env: NodeJS.ProcessEnv): Tree {
  const out: Tree = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("STEERBOT_") || raw === undefined || name === "STEERBOT_CONFIG" || name === "STEERBOT_CACHE_DIR" || name === "STEERBOT_WEB_TOKEN" || name === "STEERBOT_METRICS_TOKEN") continue;
    const keys = name.slice("STEERBOT_".length).toLowerCase().split("__");
    let node = out;
    for (const k of keys.slice(0, -1)) node = (node[k] = isTree(node[k]) ? node[k] : {}) as Tree;
    let value: unknown = raw;
    try {
      value = parseYaml(raw);
    } catch {
      /* keep the raw string */
    }
    node[keys.at(-1)!] = value;
  }
  return out;
}

export interface LoadOptions {
  /** Extra settings layered last (tests, CLI flags). */
  overrides?: Tree;
  env?: NodeJS.ProcessEnv;
  /** Directory holding default.yaml (default: the project's config/). */
  configDir?: string;
}

export interface LoadedConfig {
  config: AppConfig;
  secrets: Secrets;
  /**
   * True when `model.path` is the one `default.yaml` ships, i.e. nobody chose a model. Only
   * then may `npm start` fall back to the demo model when that default cannot be downloaded:
   * a model someone configured is never silently replaced.
   */
  modelPathIsDefault: boolean;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const dir = opts.configDir ?? path.join(projectRoot, "config");
  let tree = readYaml(path.join(dir, "default.yaml"));
  const defaultModelPath = isTree(tree.model) ? tree.model.path : undefined;
  const local = env.STEERBOT_CONFIG ?? path.join(dir, "local.yaml");
  if (env.STEERBOT_CONFIG && !existsSync(local)) throw new ConfigError(`STEERBOT_CONFIG names ${local}, which does not exist`);
  if (existsSync(local)) tree = merge(tree, readYaml(local));
  tree = merge(tree, fromEnv(env));
  if (opts.overrides) tree = merge(tree, opts.overrides);
  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = i.path.join(".");
      const got = i.path.reduce<unknown>((n, k) => (isTree(n) ? n[String(k)] : undefined), tree);
      return `  ${key || "(top level)"}: ${i.message}${got !== undefined && !isTree(got) ? ` (got ${JSON.stringify(got)})` : ""}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const secrets: Secrets = {
    discordToken: env.DISCORD_TOKEN || undefined,
    telegramToken: env.TELEGRAM_TOKEN || undefined,
    telegramWebhookSecret: env.TELEGRAM_WEBHOOK_SECRET || undefined,
    databaseUrl: env.DATABASE_URL || undefined,
    // only when set, so the shape of the other secrets stays as it was
    ...(env.STEERBOT_WEB_TOKEN ? { webToken: env.STEERBOT_WEB_TOKEN } : {}),
    ...(env.STEERBOT_METRICS_TOKEN ? { metricsToken: env.STEERBOT_METRICS_TOKEN } : {}),
  };
  return { config: parsed.data, secrets, modelPathIsDefault: parsed.data.model.path === defaultModelPath };
}

/** A database URL safe to print: the password replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable database URL)";
  }
}

/** The data directory as an absolute path (relative paths are taken from the working directory). */
export function dataDir(config: AppConfig): string {
  return path.resolve(config.store.data_dir);
}
