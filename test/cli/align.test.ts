/**
 * Tests of `steerbot align`: JSON output and exit codes. The first case runs the binary
 * (bin/steerbot.js) in a child process and the last `tsx src/cli/main.ts` (what `npm run
 * steerbot` runs); the others run the same program in this process (test/helpers/cli.ts).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../src/engine/llama-source.ts";
import { runCli, runCliInProcess } from "../helpers/cli.ts";

const steerbot = (args: string[]) => runCliInProcess(args);

let dir: string;
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text, "utf8");
  return p;
}

describe("steerbot align", () => {
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "steerbot-align-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("prints prefix/rejected/chosen/form and exits 0", async () => {
    const shown = file("shown.txt", "The capital of France is Lyon.");
    const correction = file("c.txt", "s/Lyon/Paris/\n");
    const r = await runCli(["align", "--shown-file", shown, "--correction-file", correction]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"prefix":"The capital of France is ","rejected":"Lyon.","chosen":"Paris","form":"substitute"}\n');
  });

  it("uses the shown file byte-exact, a final newline included", async () => {
    const shown = file("shown-nl.txt", "Café 😀 ok\n");
    const correction = file("c-nl.txt", "Next line.");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { prefix: "Café 😀 ok\n", rejected: "", chosen: "Next line.", form: "continuation" });
  });

  it("--quote and --quote-position act as a Telegram quote", async () => {
    const shown = file("shown-q.txt", "Lyon is big. Lyon is old.");
    const correction = file("c-q.txt", "Paris is big.");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction, "--quote", "Lyon", "--quote-position", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { prefix: "", rejected: "Lyon is big. Lyon is old.", chosen: "Paris is big.", form: "quote" });
  });

  it("an unalignable correction prints the error JSON and exits 2", async () => {
    const shown = file("shown-e.txt", "The capital of France is Lyon.");
    const correction = file("c-e.txt", "s/Marseille/Paris/");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction]);
    assert.equal(r.code, 2);
    assert.deepEqual(JSON.parse(r.stdout), {
      error: {
        code: "substitute_not_found",
        message: `I can't find "Marseille" in my reply. Copy the wrong words exactly (case and spaces count) into s/wrong/right/.`,
      },
    });
  });

  it("a quote that is not in the shown text exits 2", async () => {
    const shown = file("shown-qe.txt", "The capital of France is Lyon.");
    const correction = file("c-qe.txt", "Paris");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction, "--quote", "Rome"]);
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, "quote_not_found");
  });

  it("an empty correction file exits 2 with code empty", async () => {
    const shown = file("shown-empty.txt", "Hello.");
    const correction = file("c-empty.txt", " \n");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction]);
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, "empty");
  });

  it("a missing file exits 2 with code file_unreadable", async () => {
    const shown = file("shown-m.txt", "Hello.");
    const missing = path.join(dir, "nope.txt");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", missing]);
    assert.equal(r.code, 2);
    assert.deepEqual(JSON.parse(r.stdout), { error: { code: "file_unreadable", message: `cannot read ${missing}: ENOENT` } });
  });

  it("a missing required option is a usage error (non-zero, nothing on stdout)", async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", path.join(projectRoot, "src", "cli", "main.ts"), "align", "--shown-file", "x"], { cwd: projectRoot }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
      );
    });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /required option '--correction-file <file>' not specified/);
  });
});
