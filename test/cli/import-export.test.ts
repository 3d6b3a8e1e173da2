/**
 * `steerbot import` and `steerbot export` on both databases: the round trip's export on PGlite
 * and the streaming import on PostgreSQL run the binary in a child process; the other cases run
 * the same program in this process (test/helpers/cli.ts), checking the same output and exit codes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { freshPostgres, type TestDatabase } from "../helpers/databases.ts";
import { runCli, runCliInProcess } from "../helpers/cli.ts";
import { Store } from "../../src/store/store.ts";
import { spawn } from "node:child_process";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { BATCH_LINES } from "../../src/cli/commands/import.ts";
import { parse as parseYaml } from "yaml";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { tinyModelPath } from "../helpers/tiny-model.ts";
import { SteerTokenizer } from "../../src/training/steer-tokenizer.ts";
import { HF_FEATURES } from "../../src/core/hf-dataset.ts";

const ask = (content: string) => [{ role: "user", content }];
const editsFile = [
  { context: ask("Sky?"), generated: "The sky is green and the grass is blue today.", corrected: "The sky is blue and the grass is green today." },
  { context: ask("Count."), generated: "one two three", corrected: "one two three four" },
  { context: ask("Count."), generated: "one two three", corrected: "one two" },
  { context: ask("Same?"), generated: "same", corrected: "same" },
  { context: [], generated: "a", corrected: "b" },
]
  .map((l) => JSON.stringify(l))
  .join("\n");

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
      const first = await runCliInProcess(["import", path.join(dir, "steers.jsonl")], { env });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /imported 3 steers \(0 already stored, 0 invalid lines\)/);
      const again = await runCliInProcess(["import", path.join(dir, "steers.jsonl")], { env });
      assert.equal(again.code, 0);
      assert.match(again.stdout, /imported 0 steers \(3 already stored/);
      const out = path.join(dir, "out.jsonl");
      // export as the binary itself once (the streaming case below spawns import on PostgreSQL)
      const exp = await (kind === "pglite" ? runCli : runCliInProcess)(["export", "--out", out], { env });
      assert.equal(exp.code, 0, exp.stderr);
      assert.equal(readFileSync(out, "utf8"), file);
    });

    it("writes TRL DPO and SFT rows without an end-of-sequence marker", async () => {
      const dpo = await runCliInProcess(["export", "--format", "trl-dpo"], { env });
      const rows = dpo.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(rows.length, 3);
      assert.deepEqual(rows[0], { prompt: "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\nA fruit: ", chosen: "apple", rejected: "carrot" });
      for (const r of rows) assert.doesNotMatch(r.chosen + r.rejected, /<\|im_end\|>|<\/s>|<\|endoftext\|>/);
      const sft = await runCliInProcess(["export", "--format", "trl-sft"], { env });
      assert.deepEqual(JSON.parse(sft.stdout.split("\n")[1]!), {
        prompt: "<|im_start|>system\nTerse.<|im_end|>\n<|im_start|>user\nEmoji?<|im_end|>\n<|im_start|>assistant\nSure: ",
        completion: "👍 ok",
      });
    });

    it("reports bad lines with their numbers, stores the good ones, exits 2", async () => {
      const bad = path.join(dir, "bad.jsonl");
      writeFileSync(bad, `${JSON.stringify({ ...lines[0], id: "new" })}\n{oops\n${JSON.stringify({ context: [], prefix: "", rejected: "", chosen: "x" })}\n`);
      const r = await runCliInProcess(["import", bad], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /bad\.jsonl:2: not valid JSON/);
      assert.match(r.stderr, /bad\.jsonl:3: context: /);
      assert.match(r.stdout, /imported 1 steers/);
    });

    it("imports a file saved with a UTF-8 byte-order mark", async () => {
      const bom = path.join(dir, "bom.jsonl");
      writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${JSON.stringify({ ...lines[0], id: "bom" })}\n`)]));
      const r = await runCliInProcess(["import", bom], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, /imported 1 steers \(0 already stored, 0 invalid lines\)/);
    });

    it("exports no steer of a person who opted out, also one imported under their name", async () => {
      const mine = path.join(dir, "frank.jsonl");
      writeFileSync(mine, `${JSON.stringify({ author: "test:frank", context: [{ role: "user", content: "Frank's own question" }], prefix: "", rejected: "", chosen: "Frank's answer" })}\n`);
      assert.equal((await runCliInProcess(["import", mine], { env })).code, 0);
      const store = await Store.open({ databaseUrl: env.DATABASE_URL || undefined, dataDir: env.STEERBOT_STORE__DATA_DIR! });
      try {
        await store.users.setOptedOut("test", "frank", true);
      } finally {
        await store.close();
      }
      for (const format of ["steers", "trl-dpo", "trl-sft"]) {
        const exp = await runCliInProcess(["export", "--format", format, "--state", "all"], { env });
        assert.equal(exp.code, 0, exp.stderr);
        assert.ok(exp.stdout.length > 0);
        assert.doesNotMatch(exp.stdout, /Frank/, format);
      }
    });

    it("keeps the very line: an id above 2^53 and the line's own spacing come back unchanged", async () => {
      const line = `{"context": [{"role": "user", "content": "Big ids?"}], "prefix": "Yes: ", "rejected": "no", "chosen": "yes", "id": 123456789012345678901}`;
      const f = path.join(dir, "bigint.jsonl");
      writeFileSync(f, line + "\r\n"); // a Windows line break is not part of the line
      const imp = await runCliInProcess(["import", f], { env });
      assert.equal(imp.code, 0, imp.stderr);
      const exp = await runCliInProcess(["export", "--format", "steers"], { env });
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

    // The other shapes are parsed and aligned before the store sees them, and they store through
    // the same batched import as the lines above (tested on both databases): once, on the
    // default database, keeps the suite's time down.
    if (kind === "pglite") {
      it("imports edited replies: one steer a hunk, later hunks approximate, SFT examples, bad lines by number", async () => {
        const f = path.join(dir, "edits.jsonl");
        writeFileSync(f, editsFile + "\n");
        const r = await runCliInProcess(["import", "--from", "edits", f], { env: { ...env, STEERBOT_MODEL__PATH: await tinyModelPath() } });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stdout, /imported 4 steers from 3 of 5 lines \(0 already stored, 2 invalid lines\)/);
        assert.match(r.stderr, /edits\.jsonl:2: note: only appended to/);
        assert.match(r.stderr, /edits\.jsonl:3: note: only truncated/);
        assert.match(r.stderr, /edits\.jsonl:4: corrected is the same as generated/);
        assert.match(r.stderr, /edits\.jsonl:5: context: /);
        const store = await Store.open({ databaseUrl: env.DATABASE_URL || undefined, dataDir: env.STEERBOT_STORE__DATA_DIR! });
        try {
          const sky = (await store.steers.list()).filter((s) => s.context[0]?.content === "Sky?");
          assert.deepEqual(
            sky.map((s) => [s.prefix, s.rejected, s.chosen, s.approximate]),
            [
              ["The sky is", " green", " blue", false],
              ["The sky is blue and the grass is", " blue", " green", true],
            ],
          );
          // training.approximate_steers: include trains on both, skip leaves the approximate one out
          const approximateId = sky[1]!.id;
          assert.ok((await store.steers.listForTraining({ approximate: true })).some((s) => s.id === approximateId));
          const skipped = await store.steers.listForTraining({ approximate: false });
          assert.ok(!skipped.some((s) => s.id === approximateId) && skipped.some((s) => s.id === sky[0]!.id));
        } finally {
          await store.close();
        }
        // the marking travels with the steer: exported as a steer line, imported again as approximate
        const exp = await runCliInProcess(["export"], { env });
        assert.ok(exp.stdout.split("\n").includes(JSON.stringify({ context: ask("Sky?"), prefix: "The sky is blue and the grass is", rejected: " blue", chosen: " green", approximate: true })), exp.stdout);
      });

      it("imports TRL DPO/SFT rows and ShareGPT chats, reporting by line what cannot be aligned", async () => {
        const write = (name: string, rows: unknown[]) => {
          const f = path.join(dir, name);
          writeFileSync(f, rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n");
          return f;
        };
        const dpo = write("dpo.jsonl", [
          { prompt: [{ role: "user", content: "Pet?" }], chosen: [{ role: "assistant", content: "A cat, surely." }], rejected: [{ role: "assistant", content: "A car, surely." }] },
          { prompt: "Pet?", chosen: "Same", rejected: "Same" },
          "{not json",
        ]);
        let r = await runCliInProcess(["import", "--from", "trl-dpo", dpo], { env });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stdout, /imported 1 steers from 1 of 3 lines/);
        assert.match(r.stderr, /dpo\.jsonl:2: chosen and rejected are the same text/);
        assert.match(r.stderr, /dpo\.jsonl:3: not valid JSON/);
        const sft = write("sft.jsonl", [{ prompt: "Capital of France?", completion: "Paris." }, { messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello there." }] }]);
        r = await runCliInProcess(["import", "--from", "trl-sft", sft], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /imported 2 steers from 2 of 2 lines/);
        const chats = write("sharegpt.jsonl", [
          { conversations: [{ from: "human", value: "Weather?" }], chosen: { from: "gpt", value: "It is sunny." }, rejected: { from: "gpt", value: "It is rainy." } },
          { conversations: [{ from: "human", value: "Weather?" }], chosen: { from: "gpt", value: "Sunny." }, rejected: { from: "gpt", value: "Rain." } },
        ]);
        r = await runCliInProcess(["import", "--from", "sharegpt", chats], { env });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /sharegpt\.jsonl:2: chosen and rejected share no start/);
        const again = await runCliInProcess(["import", "--from", "sharegpt", chats], { env });
        assert.match(again.stdout, /imported 0 steers from 1 of 2 lines \(1 already stored/);
        const all = (await runCliInProcess(["export"], { env })).stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
        for (const want of [
          { context: ask("Pet?"), prefix: "A ", rejected: "car, surely.", chosen: "cat, surely." },
          { context: ask("Capital of France?"), prefix: "", rejected: "", chosen: "Paris." },
          { context: ask("Hi"), prefix: "", rejected: "", chosen: "Hello there." },
          { context: ask("Weather?"), prefix: "It is ", rejected: "rainy.", chosen: "sunny." },
        ]) {
          assert.ok(all.some((s) => JSON.stringify(s) === JSON.stringify(want)), `missing ${JSON.stringify(want)}`);
        }
      });

      it("exports a Hugging Face dataset folder: a JSONL shard and a card declaring its schema, token ids and model", async () => {
        const model = await tinyModelPath();
        const out = path.join(dir, "hf");
        const r = await runCliInProcess(["export", "--format", "hf-dataset", "--out", out], { env: { ...env, STEERBOT_MODEL__PATH: model } });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(readdirSync(out).sort(), ["README.md", "data"]);
        assert.deepEqual(readdirSync(path.join(out, "data")), ["train-00000-of-00001.jsonl"]);
        const rows = readFileSync(path.join(out, "data", "train-00000-of-00001.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
        const store = await Store.open({ databaseUrl: env.DATABASE_URL || undefined, dataDir: env.STEERBOT_STORE__DATA_DIR! });
        let expected;
        try {
          expected = await store.steers.list({ states: ["approved"], usable: true });
        } finally {
          await store.close();
        }
        assert.equal(rows.length, expected.length);
        const card = readFileSync(path.join(out, "README.md"), "utf8");
        const front = parseYaml(card.split(/^---$/m)[1]!);
        assert.deepEqual(front.configs, [{ config_name: "default", data_files: [{ split: "train", path: "data/train-*.jsonl" }] }]);
        assert.equal(front.dataset_info.splits[0].num_examples, rows.length);
        const features: { name: string; dtype?: string; sequence?: string; list?: unknown }[] = front.dataset_info.features;
        assert.deepEqual(features.map((f) => f.name), HF_FEATURES.map((f) => f.name));
        const fingerprint = createHash("sha256").update(readFileSync(model)).digest("hex");
        assert.match(card, new RegExp(fingerprint));
        assert.match(card, /eos_token/);
        const tok = await SteerTokenizer.open(model);
        try {
          for (const row of rows) {
            assert.deepEqual(Object.keys(row), features.map((f) => f.name));
            for (const f of features) {
              const v = row[f.name];
              if (f.dtype === "string") assert.equal(typeof v, "string", f.name);
              if (f.dtype === "bool") assert.equal(typeof v, "boolean", f.name);
              if (f.sequence) assert.ok(Array.isArray(v) && v.every((x: unknown) => Number.isInteger(x)), f.name);
              if (f.list) assert.ok(Array.isArray(v) && v.every((m: { role: unknown; content: unknown }) => typeof m.role === "string" && typeof m.content === "string"), f.name);
            }
            // the ids steerbot's trainer trains on, nothing appended after chosen or rejected
            const ids = tok.tokenize({ context: row.context, prefix: row.prefix, rejected: row.rejected, chosen: row.chosen });
            assert.deepEqual([row.prompt_ids, row.chosen_ids, row.rejected_ids], [ids.prompt, ids.chosen, ids.rejected]);
            // the ids spell the prompt, prefix and chosen and end right there (the cut between prompt and chosen
            // ids is where the token sequences part, so a prefix's trailing space may open chosen_ids)
            assert.ok(tok.model.detokenize([...row.prompt_ids, ...row.chosen_ids]).endsWith(row.prefix + row.chosen), JSON.stringify(row));
            assert.deepEqual(row.input_ids, [...row.prompt_ids, ...row.chosen_ids]);
            assert.equal(row.kind, row.rejected === "" ? "sft" : "pair");
            assert.equal(row.model_fingerprint, fingerprint);
          }
        } finally {
          await tok.dispose();
        }
        assert.ok(rows.some((x) => x.approximate) && rows.some((x) => !x.approximate));
        // an old folder is never mixed with a new export
        const again = await runCliInProcess(["export", "--format", "hf-dataset", "--out", out], { env: { ...env, STEERBOT_MODEL__PATH: model } });
        assert.equal(again.code, 2);
        assert.match(again.stderr, /is not empty/);
        assert.ok(existsSync(path.join(out, "README.md")));
      });
    }

    it("says what is wrong with a missing file and a bad format", async () => {
      const r = await runCliInProcess(["import", path.join(dir, "nope.jsonl")], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /cannot read .*nope\.jsonl/);
      const f = await runCliInProcess(["export", "--format", "csv"], { env });
      assert.equal(f.code, 2);
      assert.match(f.stderr, /Allowed choices are steers, trl-dpo, trl-sft, hf-dataset/);
      const noOut = await runCliInProcess(["export", "--format", "hf-dataset"], { env });
      assert.equal(noOut.code, 2);
      assert.match(noOut.stderr, /needs --out DIR/);
      const from = await runCliInProcess(["import", "--from", "csv", path.join(dir, "steers.jsonl")], { env });
      assert.equal(from.code, 2);
      assert.match(from.stderr, /Allowed choices are steers, edits, trl-dpo, trl-sft, sharegpt/);
    });
  });
}

describe("CLI configuration errors", () => {
  it("exits 2 naming the bad key", async () => {
    const r = await runCliInProcess(["migrate"], { env: { STEERBOT_MODEL__CONTEXT_SIZE: "-5" } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /model\.context_size/);
  });
  it("exits 1 with a clear line when Postgres cannot be reached", async () => {
    const r = await runCliInProcess(["migrate"], { env: { DATABASE_URL: "postgres://nobody:secretpw@127.0.0.1:1/db" } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/db/);
    assert.doesNotMatch(r.stderr, /secretpw/);
  });
});
