/**
 * Logging: one pino logger for the whole process.
 *
 * Owns: the log format and the redaction of secrets. Tokens and database passwords are
 * redacted by key wherever they appear in a logged object, so a careless `log.info({ config })`
 * cannot leak them.
 */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level = "info", destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ["token", "*.token", "discordToken", "telegramToken", "databaseUrl", "*.databaseUrl", "*.password", "password", "secrets"],
        censor: "[redacted]",
      },
    },
    (destination ?? process.stderr) as pino.DestinationStream,
  );
}
