/**
 * The logger shape every platform adapter writes to.
 *
 * Owns: a minimal pino-compatible interface (a pino logger or a test recorder fits), shared by
 * the Discord and Telegram adapters so neither defines its own.
 */
export interface PlatformLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Discards everything (tests that do not look at logs). */
export const silentLog: PlatformLog = { debug() {}, info() {}, warn() {}, error() {} };
