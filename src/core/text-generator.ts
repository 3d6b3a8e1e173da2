/**
 * What the conversation core needs from a language model — a small injectable interface, so
 * the core does not depend on how the engine is built (the node-llama-cpp `Engine` fits it).
 */
import type { ChatMessage } from "./steer-record.ts";

export interface StreamedToken {
  id: number;
  text: string;
  offset: number;
}

export interface TextGenerator {
  readonly modelPath: string;
  /** Tokens of context one conversation may use (prompt and reply together). */
  readonly contextSize: number;
  /** Conversations it generates at once (further ones wait); unset = 1. */
  readonly sequences?: number;
  fingerprint(): Promise<string>;
  tokenize(text: string): number[];
  detokenize(ids: readonly number[]): string;
  renderContext(messages: ChatMessage[], assistantPrefix?: string): { text: string; tokens: number[] };
  generate(options: {
    messages: ChatMessage[];
    assistantPrefix?: string;
    assistantPrefixTokens?: number[];
    maxTokens?: number;
    temperature?: number;
    seed?: number;
    signal?: AbortSignal;
    onToken?: (token: StreamedToken) => void | Promise<void>;
  }): Promise<{ text: string; tokens: StreamedToken[]; stopReason: "eos" | "maxTokens" | "abort" }>;
}
