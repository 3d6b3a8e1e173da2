/**
 * Runs the real `steerbot` CLI the two ways the tests need.
 *
 * Owns: `runCli`, the command in a child process as a user runs it (the binary, its exit, its
 * own stdin and data-directory lock), and `runCliInProcess`, the same program
 * (`src/cli/main.ts` `createProgram`) run inside the test's process with its streams, exit code,
 * environment, working directory and stdin captured or set for the call. Loading the CLI costs
 * a child process seconds (tsx, discord.js, node-llama-cpp…); where the process boundary is not
 * what a case checks, the in-process run checks the same output and exit code without that
 * cost. Each command keeps at least one spawned case so the binary path stays tested.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { Readable } from "node:stream";
import { projectRoot } from "../../src/engine/llama-source.ts";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (or, with `undefined`, removed from) the environment for this run. */
  env?: NodeJS.ProcessEnv;
  /** Standard input; empty when not given. */
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(projectRoot, "bin", "steerbot.js"), ...args], {
      cwd: opts.cwd ?? projectRoot,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** What `process.exit` throws during an in-process run, so the command stops where it would. */
class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

type Write = typeof process.stdout.write;

/**
 * A `write` that appends the command's text to a string instead of the terminal. Only strings:
 * every command writes text, while the test runner in this process sends its reports to its
 * parent over the same stdout as v8-serialized buffers, which must pass through untouched.
 */
function capture(stream: NodeJS.WriteStream, append: (text: string) => void): Write {
  const write = stream.write;
  return ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((e?: Error | null) => void), cb?: (e?: Error | null) => void) => {
    if (typeof chunk !== "string") return write.call(stream, chunk, encoding as BufferEncoding, cb);
    append(chunk);
    const done = typeof encoding === "function" ? encoding : cb;
    if (done) process.nextTick(done);
    return true;
  }) as Write;
}

let running = false;

/**
 * The same command line as `runCli`, run by the CLI's own program inside this process: what it
 * writes to stdout and stderr is captured, its exit code is `process.exitCode` (or what it passed
 * to `process.exit`), and environment, working directory, stdin and those globals are restored
 * afterwards. One run at a time (they share the process's globals).
 */
export async function runCliInProcess(args: string[], opts: Omit<CliOptions, "timeoutMs"> = {}): Promise<CliResult> {
  if (running) throw new Error("runCliInProcess: one run at a time (they share process.env, stdout and the exit code)");
  running = true;
  const loaded = Promise.all([import("../../src/cli/main.ts"), import("../../src/cli/app-context.ts")]);
  const [{ createProgram }, { reportError }] = await loaded.catch((e: unknown) => {
    running = false;
    throw e;
  });
  const saved = {
    env: { ...process.env },
    cwd: process.cwd(),
    exit: process.exit,
    exitCode: process.exitCode,
    stdoutWrite: process.stdout.write,
    stderrWrite: process.stderr.write,
    stdin: Object.getOwnPropertyDescriptor(process, "stdin"),
  };
  let stdout = "";
  let stderr = "";
  let code: number | null;
  try {
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    process.chdir(opts.cwd ?? projectRoot);
    const stdin = Readable.from([Buffer.from(opts.input ?? "")]);
    Object.defineProperty(process, "stdin", { configurable: true, enumerable: true, get: () => stdin });
    process.exitCode = undefined;
    process.exit = ((c?: number) => {
      throw new ExitCalled(c ?? 0);
    }) as typeof process.exit;
    process.stdout.write = capture(process.stdout, (t) => (stdout += t));
    process.stderr.write = capture(process.stderr, (t) => (stderr += t));
    try {
      await createProgram().parseAsync(["node", "steerbot", ...args]);
      code = typeof process.exitCode === "number" ? process.exitCode : 0;
    } catch (e) {
      // what escapes a command becomes its one line, as in main.ts
      code = e instanceof ExitCalled ? e.code : reportError(e);
    }
  } finally {
    process.stdout.write = saved.stdoutWrite;
    process.stderr.write = saved.stderrWrite;
    process.exit = saved.exit;
    process.exitCode = saved.exitCode;
    if (saved.stdin) Object.defineProperty(process, "stdin", saved.stdin);
    process.chdir(saved.cwd);
    for (const k of Object.keys(process.env)) if (!(k in saved.env)) delete process.env[k];
    Object.assign(process.env, saved.env);
    running = false;
  }
  return { code, stdout, stderr };
}
