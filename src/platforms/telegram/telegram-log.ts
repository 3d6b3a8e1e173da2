/**
 * The logger shape the adapter writes to.
 *
 * Owns: a minimal pino-compatible interface, so a pino logger or a test stub can be passed.
 */
export interface TelegramLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Discards everything (tests that do not look at logs). */
export const silentLog: TelegramLog = { debug() {}, info() {}, warn() {}, error() {} };
