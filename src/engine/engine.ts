/**
 * The inference engine: one loaded model behind a small API the conversation core uses.
 *
 * Owns: loading a model (path or hf: URI) with a deliberate CPU thread count, the model
 * fingerprint, tokenization, rendering the exact prompt (chat template + assistant prefix),
 * streaming generation that continues an assistant message from a prefix with per-token
 * text offsets and abort within one token, span log-probabilities for training evaluation,
 * and the one place where llama contexts (and so LoRA adapters) are created.
 *
 * Concurrency: one llama context with several sequences (see {@link SequencePool}); up to
 * `sequences` conversations generate at once and are batched together by node-llama-cpp,
 * further ones wait in a FIFO queue.
 *
 * We drive `LlamaContextSequence.evaluate` directly rather than `LlamaChat`: the chat wrapper
 * still renders the prompt (so templates match node-llama-cpp's), but we need every token id
 * as generated (steers store prefix token ids exactly as produced), abort between two tokens,
 * and no hidden hold-back of text for stop-trigger detection.
 */
import os from "node:os";
import { statSync } from "node:fs";
import {
  getLlama,
  LlamaLogLevel,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextOptions,
  type LlamaModel,
  type LlamaText,
  SpecialTokensText,
  type Token,
} from "node-llama-cpp";
import type { ChatMessage } from "../core/steer-record.ts";
import { fileSha256, ModelUnavailableError, resolveModelPath } from "./model-file.ts";
import { DEFAULT_MAX_WAITING, SequencePool, commonPrefixLength } from "./sequence-pool.ts";
import { TokenTextDecoder } from "./token-text-decoder.ts";

export type { ChatMessage };

/** A LoRA adapter applied when a context is created. */
export interface LoraAdapterSpec {
  filePath: string;
  /** Default 1. */
  scale?: number;
}

export type GpuOption = "auto" | false | "cuda" | "vulkan" | "metal";

export interface EngineLoadOptions {
  /** A GGUF file path, or an `hf:` URI / https URL (downloaded once into `modelsDir`). */
  model: string;
  /**
   * CPU threads for evaluation; 0 or unset = {@link defaultThreads} (physical cores for real
   * models, 1 for tiny ones). Never more than the cores you have: llama.cpp's threads spin
   * while waiting for each other, and oversubscription is catastrophic (measured: 24 s for
   * 100 tokens with node-llama-cpp's default of 4 threads on 2 cores, versus 62 ms with 1).
   */
  threads?: number;
  /** Tokens per sequence (default min(4096, the model's training context)). */
  contextSize?: number;
  /** Conversations that can generate at the same time (default 4). */
  sequences?: number;
  /**
   * Requests (generations, scorings) that may wait for a busy sequence; one more is refused at
   * once with EngineBusyError (default 64, `generation.max_waiting`). See {@link SequencePool}.
   */
  maxWaiting?: number;
  /** GPU backend (default `"auto"`: CUDA/Vulkan/Metal when present, else CPU). */
  gpu?: GpuOption;
  /** Layers to offload to the GPU (default: node-llama-cpp's automatic choice). */
  gpuLayers?: number | "auto" | "max";
  /** LoRA adapter(s) to apply to the context. */
  lora?: string | LoraAdapterSpec | LoraAdapterSpec[];
  /** Where `hf:` models are cached (default `cacheDir("models")`, i.e. `~/.cache/steerbot/models`). */
  modelsDir?: string;
  /** Allow downloading a remote model (default true). */
  download?: boolean;
  /** llama.cpp log level (default `warn`). */
  logLevel?: LlamaLogLevel;
  signal?: AbortSignal;
}

/** One generated token: its id, its text and the char offset of that text in the continuation. */
export interface GeneratedToken {
  id: number;
  text: string;
  offset: number;
}

export type StopReason = "eos" | "maxTokens" | "abort";

export interface GenerationTimings {
  /** Waiting for a free sequence. */
  queueMs: number;
  /** From start of evaluation to the first generated token (prompt processing). */
  promptMs: number;
  /** From the first to the last generated token. */
  generateMs: number;
  promptTokens: number;
  /** Prompt tokens whose KV cache was reused from an earlier request. */
  reusedTokens: number;
  generatedTokens: number;
  /** Generated tokens per second after the first token (0 when fewer than 2 tokens). */
  tokensPerSecond: number;
}

export interface GenerateOptions {
  messages: ChatMessage[];
  /** Assistant text the reply continues from (accepted prefix + correction), default "". */
  assistantPrefix?: string;
  /**
   * Token ids of the prefix exactly as they should be fed (e.g. the tokens the model produced
   * before a steer). When given they replace the tokenization of `assistantPrefix`: the prompt
   * is the rendered chat with an empty assistant message followed by these tokens.
   */
  assistantPrefixTokens?: readonly number[];
  /** Default 512. Also capped by the space left in the context. */
  maxTokens?: number;
  signal?: AbortSignal;
  /** Called for each generated token, in order; may return a promise (awaited). */
  onToken?: (token: GeneratedToken) => void | Promise<void>;
  /** Default 0.7; 0 is greedy (deterministic). */
  temperature?: number;
  /** Sampling seed (default: random). */
  seed?: number;
  topK?: number;
  topP?: number;
  minP?: number;
}

export interface GenerateResult {
  /** The generated continuation (after the prefix); equals the concatenation of token texts. */
  text: string;
  tokens: GeneratedToken[];
  stopReason: StopReason;
  timings: GenerationTimings;
}

export interface ScoreSpanOptions {
  messages: ChatMessage[];
  assistantPrefix?: string;
  assistantPrefixTokens?: readonly number[];
  span: string;
  /** Token ids of the span (default: `tokenize(span)`). */
  spanTokens?: readonly number[];
}

export interface ScoreSpanResult {
  /** Sum of natural-log probabilities of the span tokens. */
  logprob: number;
  tokens: number;
  perToken: number[];
}

export interface RenderedContext {
  /** The prompt as text, special tokens written out. */
  text: string;
  tokens: number[];
}

const DEFAULT_CONTEXT_SIZE = 4096;
const DEFAULT_SEQUENCES = 4;
const DEFAULT_MAX_TOKENS = 512;

/**
 * Below this file size a model is "tiny": one decode step takes well under a millisecond and
 * thread synchronisation dominates, so one thread is fastest (measured on 2 cores: tiny model
 * 1 thread ≈ 1600 tok/s vs 2 threads ≈ 60 tok/s; 0.5B model 2 threads faster than 1).
 */
const SMALL_MODEL_BYTES = 256 * 1024 * 1024;

/** CPUs this process may use: `os.availableParallelism()` (respects affinity limits). */
export function cpuCores(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

/**
 * The default CPU thread count for a model file: 1 for tiny models, otherwise one per physical
 * core (never more: see {@link EngineLoadOptions.threads}).
 */
export function defaultThreads(modelBytes: number, cores = cpuCores()): number {
  return modelBytes < SMALL_MODEL_BYTES ? 1 : cores;
}

const llamas = new Map<string, Promise<Llama>>();

/** One Llama (native backend) per GPU choice per process: loading a backend is slow and global. */
function llamaFor(gpu: GpuOption, logLevel: LlamaLogLevel): Promise<Llama> {
  const key = JSON.stringify(gpu);
  let p = llamas.get(key);
  if (!p) {
    p = getLlama({ gpu, logLevel, maxThreads: cpuCores(), build: "never", progressLogs: false });
    llamas.set(key, p);
    p.catch(() => llamas.delete(key));
  }
  return p;
}

function normalizeLora(lora: EngineLoadOptions["lora"]): LoraAdapterSpec[] {
  if (!lora) return [];
  if (typeof lora === "string") return [{ filePath: lora }];
  return Array.isArray(lora) ? lora : [lora];
}

function toHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  return messages.map((m): ChatHistoryItem => {
    switch (m.role) {
      case "system":
        return { type: "system", text: m.content };
      case "user":
        return { type: "user", text: m.content };
      case "assistant":
        return { type: "model", response: [m.content] };
    }
  });
}

function abortedError(signal?: AbortSignal): boolean {
  return Boolean(signal?.aborted);
}

export class Engine {
  private context!: LlamaContext;
  private pool!: SequencePool;
  private readonly stopTokens = new Set<Token>();
  private disposed = false;
  /**
   * Bookkeeping of the model instance this engine shares with the engines derived from it
   * ({@link withAdapter}): the model is freed with the last of them, and node-llama-cpp keeps
   * every adapter loaded on it until then.
   */
  private shared = { engines: 1, adapterFiles: new Set<string>() };

  private constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    /** Resolved local path of the model file. */
    readonly modelPath: string,
    readonly chatWrapper: ChatWrapper,
    /** Threads used for evaluation (resolved default). */
    readonly threads: number,
    /** Tokens per sequence. */
    readonly contextSize: number,
    readonly sequences: number,
    private lora: LoraAdapterSpec[],
    /** Requests that may wait for a sequence (the pool's bound). */
    readonly maxWaiting: number = DEFAULT_MAX_WAITING,
  ) {}

  /** Loads a model and creates its context; see {@link EngineLoadOptions} for defaults. */
  static async load(options: EngineLoadOptions): Promise<Engine> {
    const modelPath = await resolveModelPath(options.model, {
      modelsDir: options.modelsDir,
      download: options.download,
      signal: options.signal,
    });
    const bytes = statSync(modelPath).size;
    const llama = await llamaFor(options.gpu ?? "auto", options.logLevel ?? LlamaLogLevel.warn);
    // cpuMathCores: physical cores (hyper-threads do not help matmuls), within our CPU quota
    const cores = Math.max(1, Math.min(llama.cpuMathCores || cpuCores(), cpuCores()));
    const threads = options.threads ? Math.max(1, Math.floor(options.threads)) : defaultThreads(bytes, cores); // 0 = auto
    if (threads > llama.maxThreads) llama.maxThreads = threads;
    let model: LlamaModel;
    try {
      model = await llama.loadModel({
        modelPath,
        gpuLayers: options.gpuLayers ?? "auto",
        loadSignal: options.signal,
      });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ModelUnavailableError(options.model, `cannot load model ${modelPath}: ${why}. Is it a valid GGUF file for this llama.cpp release?`, { cause: err });
    }
    const trainCtx = model.trainContextSize || DEFAULT_CONTEXT_SIZE;
    const contextSize = options.contextSize ?? Math.min(DEFAULT_CONTEXT_SIZE, trainCtx);
    const chatWrapper = resolveChatWrapper(model);
    const engine = new Engine(
      llama,
      model,
      modelPath,
      chatWrapper,
      threads,
      contextSize,
      options.sequences ?? DEFAULT_SEQUENCES,
      normalizeLora(options.lora),
      options.maxWaiting ?? DEFAULT_MAX_WAITING,
    );
    try {
      await engine.openContext();
    } catch (err) {
      await model.dispose();
      throw err;
    }
    for (const a of engine.lora) engine.shared.adapterFiles.add(a.filePath);
    return engine;
  }

  /**
   * Creates the llama context (with the current LoRA adapters) and its sequence pool. The only
   * place contexts are made, so an adapter hot-swap (DESIGN §6) can create a fresh one here.
   */
  private async openContext(): Promise<void> {
    const opts: LlamaContextOptions = {
      contextSize: this.contextSize, // per sequence: node-llama-cpp multiplies by `sequences`
      sequences: this.sequences,
      threads: this.threads,
      // a conversation resumed after a steer shares its whole prompt with the cached one
      swaFullCache: true,
    };
    if (this.lora.length > 0) {
      opts.lora = { adapters: this.lora.map((a) => ({ filePath: a.filePath, scale: a.scale ?? 1 })) };
    }
    this.context = await this.model.createContext(opts);
    this.pool = new SequencePool(this.context, this.sequences, this.maxWaiting);
    this.stopTokens.clear();
  }

  /** The loaded LoRA adapters. */
  get adapters(): readonly LoraAdapterSpec[] {
    return this.lora;
  }

  /**
   * A new engine on the same model instance with other LoRA adapters (none: the base model):
   * only a new context is created, so it is ready in milliseconds instead of a model load.
   * Adapters stay in memory until the model is freed ({@link adapterFilesLoaded} tells how
   * many), so a caller swapping often should load a fresh model now and then.
   */
  async withAdapter(lora?: EngineLoadOptions["lora"]): Promise<Engine> {
    this.ensureOpen();
    const next = new Engine(this.llama, this.model, this.modelPath, this.chatWrapper, this.threads, this.contextSize, this.sequences, normalizeLora(lora), this.maxWaiting);
    next.shared = this.shared;
    this.shared.engines++;
    try {
      await next.openContext();
    } catch (err) {
      next.disposed = true;
      this.shared.engines--;
      throw err;
    }
    for (const a of next.lora) this.shared.adapterFiles.add(a.filePath);
    return next;
  }

  /** Distinct adapter files loaded on this model instance so far (held until the model is freed). */
  get adapterFilesLoaded(): number {
    return this.shared.adapterFiles.size;
  }

  /**
   * Caps the CPU threads evaluations may use from the next token on, or restores the loaded
   * count with `undefined`. Spinning llama.cpp threads must never outnumber free cores, so a
   * trainer running on the same machine should take cores away from generation for its
   * duration (on 2 cores: generation at 1 thread while training, 2 otherwise). The cap is per
   * process (node-llama-cpp's Llama instance), so it also limits other engines in it.
   */
  setThreadLimit(limit?: number): void {
    this.llama.maxThreads = limit === undefined ? Math.max(this.threads, cpuCores()) : Math.max(1, Math.floor(limit));
  }

  /**
   * How prompts are formatted: node-llama-cpp's chat wrapper, and whether the file carries a chat
   * template (`tokenizer.chat_template`). Without one the format is a guess from the model's
   * name and architecture, and a file without one is often a base (pretrained) model, which
   * continues text instead of answering: worth a warning at start.
   */
  chatFormat(): { wrapper: string; fromFileTemplate: boolean } {
    const template = this.model.fileInfo.metadata?.tokenizer?.chat_template;
    return { wrapper: this.chatWrapper.wrapperName, fromFileTemplate: typeof template === "string" && template.length > 0 };
  }

  /** sha256 of the model file: identifies the base model of stored steers and adapters. */
  fingerprint(): Promise<string> {
    return fileSha256(this.modelPath);
  }

  /** Token ids of `text`, no BOS/EOS added, special-token text treated as plain text. */
  tokenize(text: string): number[] {
    return this.model.tokenize(text, false);
  }

  /** Text of `ids` (special tokens rendered as empty, as in generated text). */
  detokenize(ids: readonly number[]): string {
    return this.model.detokenize(ids as readonly Token[], false);
  }

  /**
   * The exact prompt the model sees before continuing the assistant message: the chat
   * template applied to `messages` followed by an open assistant turn holding
   * `assistantPrefix`.
   */
  renderContext(messages: ChatMessage[], assistantPrefix = ""): RenderedContext {
    const rendered = this.render(messages, assistantPrefix);
    // text from the template parts, not by detokenizing: SPM detokenization adds spaces around
    // special tokens, so only the parts give the template's own text
    const text = rendered.values
      .map((v) => (typeof v === "string" ? v : v instanceof SpecialTokensText ? v.value : this.model.detokenize(v.tokenize(this.model.tokenizer), true)))
      .join("");
    return { text, tokens: rendered.tokenize(this.model.tokenizer) };
  }

  /** The chat wrapper's rendering of `messages` plus an open assistant turn holding `assistantPrefix`. */
  private render(messages: readonly ChatMessage[], assistantPrefix: string): LlamaText {
    const history = toHistory(messages);
    history.push({ type: "model", response: assistantPrefix ? [assistantPrefix] : [] });
    const state = this.chatWrapper.generateContextState({ chatHistory: history });
    if (this.stopTokens.size === 0) this.collectStopTokens(state.stopGenerationTriggers);
    return state.contextText;
  }

  private contextTokens(messages: readonly ChatMessage[], assistantPrefix: string, prefixTokens?: readonly number[]): Token[] {
    const tokens = this.render(messages, prefixTokens ? "" : assistantPrefix).tokenize(this.model.tokenizer);
    return prefixTokens ? [...tokens, ...(prefixTokens as readonly Token[])] : tokens;
  }

  /** Single-token stop triggers of the chat template (e.g. `<|im_end|>`); EOG tokens are always stops. */
  private collectStopTokens(triggers: readonly { tokenize: ChatWrapperTokenize }[]): void {
    for (const trigger of triggers) {
      const ids = trigger.tokenize(this.model.tokenizer);
      if (ids.length === 1) this.stopTokens.add(ids[0]!);
    }
  }

  private isStop(token: Token): boolean {
    return this.model.isEogToken(token) || this.stopTokens.has(token);
  }

  /**
   * Streams the assistant reply continuing from `assistantPrefix`. Resolves (never rejects) on
   * abort, with the tokens generated so far and `stopReason: "abort"`; an abort is noticed
   * between two tokens, so at most the token being computed is lost.
   */
  async generate(options: GenerateOptions): Promise<GenerateResult> {
    this.ensureOpen();
    const { signal, onToken } = options;
    const started = performance.now();
    const prompt = this.contextTokens(options.messages, options.assistantPrefix ?? "", options.assistantPrefixTokens);
    const tokens: GeneratedToken[] = [];
    let text = "";
    const timings: GenerationTimings = {
      queueMs: 0,
      promptMs: 0,
      generateMs: 0,
      promptTokens: prompt.length,
      reusedTokens: 0,
      generatedTokens: 0,
      tokensPerSecond: 0,
    };
    const done = (stopReason: StopReason): GenerateResult => {
      timings.generatedTokens = tokens.length;
      if (tokens.length > 1 && timings.generateMs > 0) timings.tokensPerSecond = ((tokens.length - 1) * 1000) / timings.generateMs;
      return { text, tokens, stopReason, timings };
    };
    if (abortedError(signal)) return done("abort");

    let seq;
    try {
      seq = await this.pool.acquire(prompt, signal);
    } catch (err) {
      if (abortedError(signal)) return done("abort");
      throw err;
    }
    try {
      timings.queueMs = performance.now() - started;
      if (prompt.length >= seq.contextSize) {
        throw new Error(`prompt is ${prompt.length} tokens, the context holds ${seq.contextSize} per conversation: raise contextSize or shorten the chat`);
      }
      const toEval = await this.alignSequence(seq, prompt, prompt.length);
      timings.reusedTokens = prompt.length - toEval.length;
      const maxTokens = Math.max(0, Math.min(options.maxTokens ?? DEFAULT_MAX_TOKENS, seq.contextSize - prompt.length));
      if (maxTokens === 0) return done("maxTokens");

      const decoder = new TokenTextDecoder(
        (t, special, last) => this.model.detokenize(t as readonly Token[], special, last as readonly Token[] | undefined),
        prompt,
      );
      const temperature = options.temperature ?? 0.7;
      const evalStart = performance.now();
      let firstAt = 0;
      let stopReason: StopReason = "maxTokens";
      const gen = seq.evaluate(toEval, {
        temperature,
        seed: options.seed,
        topK: options.topK ?? (temperature > 0 ? 40 : undefined),
        topP: options.topP ?? (temperature > 0 ? 0.95 : undefined),
        minP: options.minP ?? (temperature > 0 ? 0.05 : undefined),
        yieldEogToken: true,
      });
      try {
        for await (const id of gen) {
          if (signal?.aborted) {
            stopReason = "abort";
            break;
          }
          if (tokens.length === 0) {
            firstAt = performance.now();
            timings.promptMs = firstAt - evalStart;
          }
          if (this.isStop(id)) {
            stopReason = "eos";
            break;
          }
          const piece = decoder.push(id);
          const tok: GeneratedToken = { id, text: piece, offset: text.length };
          text += piece;
          tokens.push(tok);
          if (onToken) {
            const r = onToken(tok);
            if (r && typeof (r as Promise<void>).then === "function") await r;
          }
          if (signal?.aborted) {
            stopReason = "abort";
            break;
          }
          if (tokens.length >= maxTokens) {
            stopReason = "maxTokens";
            break;
          }
        }
      } finally {
        await gen.return();
      }
      // an incomplete UTF-8 char at the very end belongs to the last token
      const rest = decoder.flush();
      if (rest && tokens.length > 0) {
        tokens[tokens.length - 1]!.text += rest;
        text += rest;
      }
      if (tokens.length > 0) timings.generateMs = performance.now() - firstAt;
      return done(stopReason);
    } finally {
      this.pool.release(seq);
    }
  }

  /**
   * Log-probability of `span` given the rendered chat and `assistantPrefix` (teacher-forced,
   * natural log). Used by training evaluation to compare a base model and an adapter.
   */
  async scoreSpan(options: ScoreSpanOptions): Promise<ScoreSpanResult> {
    this.ensureOpen();
    const ctx = this.contextTokens(options.messages, options.assistantPrefix ?? "", options.assistantPrefixTokens);
    const span = (options.spanTokens ?? this.tokenize(options.span)) as readonly Token[];
    if (span.length === 0) return { logprob: 0, tokens: 0, perToken: [] };
    const all = [...ctx, ...span];
    const seq = await this.pool.acquire(all);
    try {
      if (all.length > seq.contextSize) {
        throw new Error(`context + span is ${all.length} tokens, the context holds ${seq.contextSize} per conversation`);
      }
      // we need logits after the last context token and after every span token but the last
      const input = await this.alignSequence(seq, all.slice(0, -1), ctx.length - 1);
      const firstIndex = all.length - 1 - input.length; // absolute position of input[0]
      const items = input.map((token, i) =>
        firstIndex + i >= ctx.length - 1
          ? ([token, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as const)
          : token,
      );
      const out = await seq.controlledEvaluate(items as Parameters<typeof seq.controlledEvaluate>[0]);
      const perToken: number[] = [];
      for (let j = 0; j < span.length; j++) {
        const idx = ctx.length - 1 + j - firstIndex;
        const probs = out[idx]?.next.probabilities;
        if (!probs) throw new Error(`no probabilities at span position ${j}`);
        const p = probs.get(span[j]!) ?? 0;
        perToken.push(Math.log(Math.max(p, Number.MIN_VALUE)));
      }
      return { logprob: perToken.reduce((a, b) => a + b, 0), tokens: span.length, perToken };
    } finally {
      this.pool.release(seq);
    }
  }

  /**
   * Erases the sequence's cache after the longest prefix it shares with `target` (keeping at
   * most `maxKeep` tokens) and returns the tokens of `target` still to be evaluated; at least
   * one token is always left, since logits come only from evaluated tokens.
   */
  private async alignSequence(
    seq: Awaited<ReturnType<SequencePool["acquire"]>>,
    target: readonly Token[],
    maxKeep: number,
  ): Promise<Token[]> {
    let keep = Math.min(commonPrefixLength(seq.contextTokens, target), maxKeep, target.length - 1);
    keep = Math.max(0, keep);
    if (seq.nextTokenIndex > keep) await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
    if (seq.nextTokenIndex !== keep) {
      // the cache could not be kept (e.g. a recurrent model): start over
      await seq.clearHistory();
      return target.slice();
    }
    return target.slice(keep);
  }

  private ensureOpen(): void {
    if (this.disposed) throw new Error("engine is disposed");
  }

  /** Frees the context and the model (adapters are freed with the model). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.close();
    await this.context.dispose();
    if (--this.shared.engines === 0) await this.model.dispose();
  }
}

type ChatWrapperTokenize = (tokenizer: LlamaModel["tokenizer"]) => Token[];
