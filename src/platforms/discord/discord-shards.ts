/**
 * Discord sharding: which of the bot's gateway shards this instance runs.
 *
 * Owns: `discord.shards` and `discord.shard_count` (src/config/config.ts) checked — one message
 * per problem, for the config loader and for a bot built without it — and turned into
 * discord.js's `shards`/`shardCount` client options; and Discord's routing rule, so the bot can
 * name the shard of each event: a server's events arrive on shard `(guild_id >> 22) % shard_count`
 * only, DMs on shard 0 only (https://discord.com/developers/docs/events/gateway#sharding).
 *
 * Several instances share one bot token by each running some of the shards (`[0, 1]` on one
 * machine, `[2, 3]` on another, all with `shard_count: 4`); they share the PostgreSQL database,
 * not memory, and each server's questions, stops and corrections reach the one instance whose
 * shard owns that server, so a reply is stopped where it streams.
 */

/** `discord.shards`: every shard of `shard_count` in this process, Discord's recommended count ("auto"), or these ids. */
export type ShardsSetting = "all" | "auto" | readonly number[];

export interface ShardConfigInput {
  shards?: ShardsSetting;
  shard_count?: number;
}

/** What the discord.js Client is told (ClientOptions `shards`, `shardCount`). */
export type ShardClientOptions = Record<string, never> | { shards: "auto" } | { shards: number[]; shardCount: number };

/** Most shards one bot may have here (Discord's largest bots run a few thousand). */
export const MAX_SHARD_COUNT = 1 << 16;

export interface ShardProblem {
  key: "shards" | "shard_count";
  message: string;
}

/** What is wrong with a `discord.shards` / `discord.shard_count` pair; empty when nothing is. */
export function shardProblems(shards: unknown, count: unknown): ShardProblem[] {
  const problems: ShardProblem[] = [];
  const countOk = typeof count === "number" && Number.isInteger(count) && count >= 1 && count <= MAX_SHARD_COUNT;
  if (!countOk) problems.push({ key: "shard_count", message: `the total number of shards of all instances: a whole number from 1 to ${MAX_SHARD_COUNT}` });
  if (shards === "all") return problems;
  if (shards === "auto") {
    if (countOk && count !== 1)
      problems.push({ key: "shards", message: `auto runs every shard of the count Discord recommends in this instance, so shard_count ${count} has no say: list this instance's shard ids, or use all` });
    return problems;
  }
  if (!Array.isArray(shards)) return [...problems, { key: "shards", message: 'expected all, auto, or the shard ids this instance runs, like [0, 1]' }];
  if (shards.length === 0) problems.push({ key: "shards", message: "list at least one shard id (or all)" });
  const seen = new Set<number>();
  for (const id of shards as unknown[]) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      problems.push({ key: "shards", message: `shard ids are whole numbers from 0: ${JSON.stringify(id)} is not one` });
      continue;
    }
    if (seen.has(id)) problems.push({ key: "shards", message: `shard ${id} is listed twice` });
    seen.add(id);
    if (countOk && id >= (count as number))
      problems.push({ key: "shards", message: `there is no shard ${id} among shard_count ${count} (ids run from 0 to ${(count as number) - 1}): raise shard_count to the total of all instances, or fix the id` });
  }
  return problems;
}

export class ShardConfigError extends Error {
  override readonly name = "ShardConfigError";
}

/**
 * The client options for a sharding setting (throws ShardConfigError when it is invalid). The
 * default (`all` of 1) tells discord.js nothing, so it runs as it always did: one shard.
 */
export function shardClientOptions(input: ShardConfigInput = {}): ShardClientOptions {
  const shards = input.shards ?? "all";
  const count = input.shard_count ?? 1;
  const problems = shardProblems(shards, count);
  if (problems.length) throw new ShardConfigError(problems.map((p) => `discord.${p.key}: ${p.message}`).join("; "));
  if (shards === "auto") return { shards: "auto" };
  if (shards === "all") return count === 1 ? {} : { shards: Array.from({ length: count }, (_, i) => i), shardCount: count };
  return { shards: [...shards].sort((a, b) => a - b), shardCount: count };
}

/** The shard a gateway event of this server arrives on; DMs (no server) arrive on shard 0. */
export function shardOfGuild(guildId: string | null | undefined, shardCount: number): number {
  if (!guildId || shardCount <= 1) return 0;
  return Number((BigInt(guildId) >> 22n) % BigInt(shardCount));
}
