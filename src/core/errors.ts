/**
 * Error classes of the conversation core: its text handling (alignment of a correction, token
 * snapping), a reply's state machine, and the engine being too busy to take more work.
 *
 * Owns: the closed set of correction failure codes, and the error classes thrown by core
 * code. In the style of grammY's `GrammyError`: one class per kind of failure, a stable
 * machine-readable `code`, a human `message`, nothing else.
 */

/**
 * Why a correction could not be aligned. Stable strings: they are stored, logged, printed by
 * `steerbot align` and matched by the platform adapters, so never rename one.
 */
export type CorrectionErrorCode =
  /** The correction is empty: whitespace or invisible characters (zero-width space, joiners) only. */
  | "empty"
  /** Longer than the limit (`maxChars`). */
  | "too_long"
  /** A quote (Telegram quote or `> ` lines) that is not in the shown text. */
  | "quote_not_found"
  /** `s/old/new/` whose `old` is not in the shown text. */
  | "substitute_not_found"
  /** Starts like `s/old/new/` but cannot be read (empty old, text after the last `/`). */
  | "substitute_malformed"
  /** Nothing would be left for the chosen span (quote with no text, `s/old//`, a pure repeat). */
  | "empty_chosen";

/**
 * A correction that cannot become a steer. `alignCorrection` returns failures as values (they
 * are ordinary user input, not bugs); this class is for callers that prefer to throw them, see
 * `unwrapAlignment`. The message is written for the person who sent the correction.
 */
export class CorrectionError extends Error {
  override readonly name = "CorrectionError";
  constructor(
    readonly code: CorrectionErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The token list handed to `snapToTokens` does not describe the shown text (gaps, overlaps,
 * text that differs from the shown text). This is a bug in the caller (engine bookkeeping),
 * never the user's fault, so it is thrown rather than returned.
 */
export class TokenSnapError extends Error {
  override readonly name = "TokenSnapError";
  constructor(
    message: string,
    /** Index of the first offending token, when one is to blame. */
    readonly tokenIndex?: number,
  ) {
    super(message);
  }
}

/**
 * A reply was asked to make a step its state machine does not have (e.g. accept a reply that
 * is still generating, resume an accepted one). The core checks states before it acts, so this
 * is a bug in the core, thrown so it is never silently ignored.
 */
export class ReplyStateError extends Error {
  override readonly name = "ReplyStateError";
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super(`a reply cannot go from ${from} to ${to}`);
  }
}

/**
 * The engine's queue of conversations waiting for a free sequence is full: thrown by the
 * sequence pool instead of queueing without end, so one burst cannot make everyone wait for
 * minutes. The core shows it as "busy, try again", never as a crash.
 */
export class EngineBusyError extends Error {
  override readonly name = "EngineBusyError";
  constructor(readonly waiting: number) {
    super(`the engine is busy: ${waiting} conversations are already waiting for the model`);
  }
}
