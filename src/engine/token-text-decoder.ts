/**
 * Incremental token → text decoding for streamed generations.
 *
 * Owns: turning a stream of generated token ids into per-token text pieces whose
 * concatenation is exactly the generated text. The stop point (DESIGN §3) is recorded as
 * chars and tokens shown, and steers store divergence offsets in both units, so every char
 * must belong to exactly one token. A token that ends inside a multi-byte UTF-8 character
 * (byte-level BPE splits emoji and CJK across tokens) gets the empty string; the token that
 * completes the character carries the whole character. A genuine U+FFFD in the output only
 * delays its text by at most three tokens. Detokenization is given the preceding
 * tokens as context so tokenizer-specific leading-space rules match a whole-text decode.
 */
/** The detokenizer we need: node-llama-cpp's `LlamaModel.detokenize` (token ids as plain numbers). */
export type Detokenize = (tokens: readonly number[], specialTokens?: boolean, lastTokens?: readonly number[]) => string;

/** How many preceding tokens to pass as detokenizer context. */
const CONTEXT_TOKENS = 16;
/** A UTF-8 char spans at most 4 bytes, so at most 4 byte-tokens; then we give up waiting. */
const MAX_PENDING = 4;

export class TokenTextDecoder {
  private readonly history: number[];
  private pending: number[] = [];
  private emitted = 0;

  /**
   * @param detokenize the model's detokenizer
   * @param contextTokens tokens before the first generated one (the rendered prompt); only the tail is used
   */
  constructor(
    private readonly detokenize: Detokenize,
    contextTokens: readonly number[] = [],
  ) {
    this.history = contextTokens.slice(-CONTEXT_TOKENS);
  }

  /** Chars emitted so far (the offset of the next piece). */
  get offset(): number {
    return this.emitted;
  }

  /**
   * Adds one token and returns its text piece (possibly "" while a character is incomplete).
   */
  push(token: number): string {
    this.pending.push(token);
    const text = this.detokenize(this.pending, false, this.history.slice(-CONTEXT_TOKENS));
    if (text.endsWith("\uFFFD") && this.pending.length < MAX_PENDING) return "";
    return this.commit(text);
  }

  /** Text of tokens still held back (an incomplete character at the end of the stream). */
  flush(): string {
    if (this.pending.length === 0) return "";
    return this.commit(this.detokenize(this.pending, false, this.history.slice(-CONTEXT_TOKENS)));
  }

  private commit(text: string): string {
    this.history.push(...this.pending);
    if (this.history.length > CONTEXT_TOKENS * 2) this.history.splice(0, this.history.length - CONTEXT_TOKENS);
    this.pending = [];
    this.emitted += text.length;
    return text;
  }

}
