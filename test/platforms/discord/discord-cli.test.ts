/** `steerbot discord register` against the fake Discord: guild and global registration, bad input. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { FakeDiscord } from "../../fakes/discord/fake-discord.ts";

const runner = fileURLToPath(new URL("../../fakes/discord/run-discord-cli.ts", import.meta.url));

/** Runs `steerbot <args>` (the discord commands) in a child process with the given token. */
function run(args: string[], token?: string): Promise<{ code: number; out: string; err: string }> {
  const env = { ...process.env };
  delete env.DISCORD_TOKEN;
  if (token !== undefined) env.DISCORD_TOKEN = token;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", runner, ...args], { env }, (error, out, err) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, out, err });
    });
  });
}

describe("steerbot discord register", () => {
  const fake = new FakeDiscord();
  before(() => fake.listen());
  after(() => fake.close());

  it("registers the commands in one guild", async () => {
    const r = await run(["discord", "register", "--guild", fake.state.guildId, "--api", fake.apiUrl], fake.token);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /registered 8 slash commands in guild/);
    assert.equal(fake.state.commandSets.at(-1)?.guildId, fake.state.guildId);
  });

  it("registers globally without --guild", async () => {
    const r = await run(["discord", "register", "--api", fake.apiUrl], fake.token);
    assert.equal(r.code, 0, r.err);
    assert.equal(fake.state.commandSets.at(-1)?.guildId, undefined);
    assert.equal(fake.state.commandSets.at(-1)?.commands.length, 8);
  });

  it("says clearly when the token is missing or refused", async () => {
    const missing = await run(["discord", "register", "--api", fake.apiUrl]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /DISCORD_TOKEN is not set/);
    const refused = await run(["discord", "register", "--api", fake.apiUrl], "wrong");
    assert.equal(refused.code, 1);
    assert.match(refused.err, /refused the token \(401\)/);
  });
});
