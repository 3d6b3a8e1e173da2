/**
 * Tests of `steerbot align`: JSON output and exit codes, run as a child process. Through
 * `src/cli/main.ts` once it registers the command; until then through a minimal program that
 * builds a commander `Command` and calls `register`, exactly as main.ts does.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const mainPath = path.join(root, "src", "cli", "main.ts");
const viaMain = (() => {
  try {
    return /commands\/align\.ts/.test(readFileSync(mainPath, "utf8"));
  } catch {
    return false;
  }
})();
const HARNESS = [
  'import { Command } from "commander";',
  'import { register } from "./src/cli/commands/align.ts";',
  "const program = new Command().name('steerbot');",
  "register(program);",
  "await program.parseAsync(process.argv.slice(1), { from: 'user' });",
].join("\n");

function steerbot(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = viaMain
    ? ["--import", "tsx", mainPath, ...args]
    : ["--import", "tsx", "--input-type=module", "-e", HARNESS, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { cwd: root }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text, "utf8");
  return p;
}

describe(`steerbot align (${viaMain ? "via src/cli/main.ts" : "via register() harness"})`, () => {
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "steerbot-align-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("prints prefix/rejected/chosen/form and exits 0", async () => {
    const shown = file("shown.txt", "The capital of France is Lyon.");
    const correction = file("c.txt", "s/Lyon/Paris/\n");
    const r = await steerbot(["align", "--shown-file", shown, "--correction-file", correction]);
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
    const r = await steerbot(["align", "--shown-file", "x"]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /required option '--correction-file <file>' not specified/);
  });
});
