/**
 * The logger shape the Telegram adapter writes to: the shared platform one (../platform-log.ts).
 */
export type { PlatformLog as TelegramLog } from "../platform-log.ts";
export { silentLog } from "../platform-log.ts";
