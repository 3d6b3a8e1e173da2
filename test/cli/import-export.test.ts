import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { freshPostgres, type TestDatabase } from "../helpers/databases.ts";
import { runCli } from "../helpers/cli.ts";
import { Store } from "../../src/store/store.ts";
import { spawn } from "node:child_process";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { BATCH_LINES } from "../../src/cli/commands/import.ts";

const lines = [
  { context: [{ role: "user", content: "Name a fruit." }], prefix: "A fruit: ", rejected: "carrot", chosen: "apple", id: "s1" },
  { author: "ann", context: [{ role: "system", content: "Terse." }, { role: "user", content: "Emoji?" }], prefix: "Sure: ", rejected: "🙂🙂", chosen: "👍 ok" },
  { context: [{ role: "user", content: "Multi\nline" }], prefix: "a\nb", rejected: "", chosen: "c\nd" },
];
const file = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";

for (const kind of ["pglite", "postgres"] as const) {
  describe(`import/export CLI on ${kind}`, () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    let pgdb: TestDatabase | undefined;
    before(async () => {
      dir = mkdtempSync(path.join(tmpdir(), "steerbot-cli-"));
      env = { STEERBOT_STORE__DATA_DIR: path.join(dir, "data"), DATABASE_URL: "" };
      if (kind === "postgres") {
        pgdb = await freshPostgres();
        env.DATABASE_URL = pgdb.target.databaseUrl;
      }
      writeFileSync(path.join(dir, "steers.jsonl"), file);
    });
    after(async () => pgdb?.drop());

    it("imports, refuses to store twice, and round-trips exactly", async () => {
      const first = await runCli(["import", path.join(dir, "steers.jsonl")], { env });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /imported 3 steers \(0 already stored, 0 invalid lines\)/);
      const again = await runCli(["import", path.join(dir, "steers.jsonl")], { env });
      assert.equal(again.code, 0);
      assert.match(again.stdout, /imported 0 steers \(3 already stored/);
      const out = path.join(dir, "out.jsonl");
      const exp = await runCli(["export", "--out", out], { env });
      assert.equal(exp.code, 0, exp.stderr);
      assert.equal(readFileSync(out, "utf8"), file);
    });

    it("writes TRL DPO and SFT rows without an end-of-sequence marker", async () => {
      const dpo = await runCli(["export", "--format", "trl-dpo"], { env });
      const rows = dpo.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(rows.length, 3);
      assert.deepEqual(rows[0], { prompt: "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\nA fruit: ", chosen: "apple", rejected: "carrot" });
      for (const r of rows) assert.doesNotMatch(r.chosen + r.rejected, /<\|im_end\|>|<\/s>|<\|endoftext\|>/);
      const sft = await runCli(["export", "--format", "trl-sft"], { env });
      assert.deepEqual(JSON.parse(sft.stdout.split("\n")[1]!), {
        prompt: "<|im_start|>system\nTerse.<|im_end|>\n<|im_start|>user\nEmoji?<|im_end|>\n<|im_start|>assistant\nSure: ",
        completion: "👍 ok",
      });
    });

    it("reports bad lines with their numbers, stores the good ones, exits 2", async () => {
      const bad = path.join(dir, "bad.jsonl");
      writeFileSync(bad, `${JSON.stringify({ ...lines[0], id: "new" })}\n{oops\n${JSON.stringify({ context: [], prefix: "", rejected: "", chosen: "x" })}\n`);
      const r = await runCli(["import", bad], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /bad\.jsonl:2: not valid JSON/);
      assert.match(r.stderr, /bad\.jsonl:3: context: /);
      assert.match(r.stdout, /imported 1 steers/);
    });

    it("imports a file saved with a UTF-8 byte-order mark", async () => {
      const bom = path.join(dir, "bom.jsonl");
      writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${JSON.stringify({ ...lines[0], id: "bom" })}\n`)]));
      const r = await runCli(["import", bom], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, /imported 1 steers \(0 already stored, 0 invalid lines\)/);
    });

    it("exports no steer of a person who opted out, also one imported under their name", async () => {
      const mine = path.join(dir, "frank.jsonl");
      writeFileSync(mine, `${JSON.stringify({ author: "test:frank", context: [{ role: "user", content: "Frank's own question" }], prefix: "", rejected: "", chosen: "Frank's answer" })}\n`);
      assert.equal((await runCli(["import", mine], { env })).code, 0);
      const store = await Store.open({ databaseUrl: env.DATABASE_URL || undefined, dataDir: env.STEERBOT_STORE__DATA_DIR! });
      try {
        await store.users.setOptedOut("test", "frank", true);
      } finally {
        await store.close();
      }
      for (const format of ["steers", "trl-dpo", "trl-sft"]) {
        const exp = await runCli(["export", "--format", format, "--state", "all"], { env });
        assert.equal(exp.code, 0, exp.stderr);
        assert.ok(exp.stdout.length > 0);
        assert.doesNotMatch(exp.stdout, /Frank/, format);
      }
    });

    it("keeps the very line: an id above 2^53 and the line's own spacing come back unchanged", async () => {
      const line = `{"context": [{"role": "user", "content": "Big ids?"}], "prefix": "Yes: ", "rejected": "no", "chosen": "yes", "id": 123456789012345678901}`;
      const f = path.join(dir, "bigint.jsonl");
      writeFileSync(f, line + "\r\n"); // a Windows line break is not part of the line
      const imp = await runCli(["import", f], { env });
      assert.equal(imp.code, 0, imp.stderr);
      const exp = await runCli(["export", "--format", "steers"], { env });
      assert.ok(exp.stdout.split("\n").includes(line), `not exported as written:\n${exp.stdout}`);
    });

    if (kind === "postgres") {
      it("streams a file in batches: steers are stored while the input is still coming", async () => {
        const child = spawn(process.execPath, [path.join(projectRoot, "bin", "steerbot.js"), "import", "-"], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        const exited = new Promise<number | null>((r) => child.on("close", r));
        const steer = (i: number) => JSON.stringify({ context: [{ role: "user", content: `Streamed question ${i}` }], prefix: "", rejected: "", chosen: `answer ${i}` });
        child.stdin.write(Array.from({ length: BATCH_LINES + 100 }, (_, i) => steer(i)).join("\n") + "\n");
        const store = await Store.open({ databaseUrl: env.DATABASE_URL, dataDir: "memory://" }, { migrate: false });
        try {
          const streamed = () => store.db.selectFrom("steers").select((eb) => eb.fn.countAll<number>().as("n")).where("chosen", "like", "answer %").executeTakeFirstOrThrow();
          // the first batch is committed while stdin is still open (the old import read it all first)
          const end = Date.now() + 60_000;
          while (Number((await streamed()).n) < BATCH_LINES) {
            assert.ok(Date.now() < end, `no batch stored before the end of the input: ${stderr}`);
            await new Promise((r) => setTimeout(r, 100)); // a query again shortly: another process writes
          }
          child.stdin.end(steer(BATCH_LINES + 100) + "\n");
          assert.equal(await exited, 0, stderr);
          assert.equal(Number((await streamed()).n), BATCH_LINES + 101);
        } finally {
          child.kill();
          await store.close();
        }
      });
    }

    it("says what is wrong with a missing file and a bad format", async () => {
      const r = await runCli(["import", path.join(dir, "nope.jsonl")], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /cannot read .*nope\.jsonl/);
      const f = await runCli(["export", "--format", "csv"], { env });
      assert.equal(f.code, 2);
      assert.match(f.stderr, /Allowed choices are steers, trl-dpo, trl-sft/);
    });
  });
}

describe("CLI configuration errors", () => {
  it("exits 2 naming the bad key", async () => {
    const r = await runCli(["migrate"], { env: { STEERBOT_MODEL__CONTEXT_SIZE: "-5" } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /model\.context_size/);
  });
  it("exits 1 with a clear line when Postgres cannot be reached", async () => {
    const r = await runCli(["migrate"], { env: { DATABASE_URL: "postgres://nobody:secretpw@127.0.0.1:1/db" } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/db/);
    assert.doesNotMatch(r.stderr, /secretpw/);
  });
});
