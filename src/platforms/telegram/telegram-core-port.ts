/**
 * The slice of the steering core the Telegram adapter calls: the platform contract
 * (`CorePort`, src/core/ports.ts), which `SteeringCore` satisfies.
 */
import type { CorePort } from "../../core/ports.ts";

export type TelegramCore = CorePort;

/** Platform name used in every ThreadRef, Actor and request. */
export const TELEGRAM = "telegram";
