// steer-train: steerbot's LoRA trainer on llama.cpp graphs.
//
// Modes (first argument):
//   train       train a LoRA adapter (masked SFT, localized DPO, or both) and write its GGUF
//   eval        per pair: log-probs of the chosen and rejected spans given the prompt
//   grad-check  analytic vs finite-difference gradients of the weighted loss on LoRA entries
//
// Data (JSONL, one object a line, token ids written by the TypeScript wrapper):
//   {"prompt":[ids],"chosen":[ids],"rejected":[ids]}        a steer (rejected may be empty)
//   {"tokens":[ids],"weights":[w]}                           a raw weighted sequence (grad-check, tests)
//
// Loss: sum_i w_i * (logsumexp(x_i) - x_i[y_i]) over the positions with w_i != 0 only
// (the others are not even output by the model graph), with a per-row constant subtracted
// before exp (the row mean: its gradient is analytically zero, so it needs no detaching).
// Only the adapter's lora_a/lora_b tensors are trainable; gradients are accumulated in our
// own buffers and cleared after every optimizer step (AdamW, ggml_opt_step_adamw).
//
// stdout: JSON lines ({"type":"start"|"progress"|"epoch"|"done"|"eval"|"grad"|"error",...}).
// stderr: llama.cpp logs (only warnings and errors unless --verbose).
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "gguf.h"
#include "llama-steer.h"
#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <atomic>
#include <deque>

#include <sys/mman.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#endif

#ifndef STEER_GGML_LIB_DIR
#define STEER_GGML_LIB_DIR ""
#endif

// ----------------------------------------------------------------------------------------
// small utilities
// ----------------------------------------------------------------------------------------

static std::string fmt(const char * f, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return buf;
}

static std::string json_str(const std::string & s) {
    std::string o = "\"";
    for (char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if ((unsigned char) c < 0x20) o += fmt("\\u%04x", c);
                else o += c;
        }
    }
    return o + "\"";
}

static std::string json_num(double v) {
    if (!std::isfinite(v)) return "null";
    return fmt("%.9g", v);
}

static void emit(const std::string & line) {
    fputs(line.c_str(), stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

struct fatal : std::runtime_error {
    std::string code;
    fatal(const std::string & code, const std::string & msg) : std::runtime_error(msg), code(code) {}
};

static bool g_verbose = false;

static void log_cb(ggml_log_level level, const char * text, void *) {
    if (g_verbose || level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

// ----------------------------------------------------------------------------------------
// data
// ----------------------------------------------------------------------------------------

struct Pair {
    std::vector<llama_token> prompt, chosen, rejected;
    // raw weighted sequence (when `tokens` is given)
    std::vector<llama_token> tokens;
    std::vector<float> weights;
    bool raw = false;
    int line = 0;
};

// finds "key": [numbers] in a JSON object line; returns false when the key is absent
static bool json_array(const std::string & s, const char * key, std::vector<double> & out, int line) {
    const std::string k = std::string("\"") + key + "\"";
    size_t p = s.find(k);
    if (p == std::string::npos) return false;
    p = s.find(':', p + k.size());
    if (p == std::string::npos) throw fatal("bad_data", fmt("line %d: no value for %s", line, key));
    p = s.find_first_not_of(" \t", p + 1);
    if (p == std::string::npos || s[p] != '[') throw fatal("bad_data", fmt("line %d: %s is not an array", line, key));
    ++p;
    out.clear();
    for (;;) {
        p = s.find_first_not_of(" \t\r\n,", p);
        if (p == std::string::npos) throw fatal("bad_data", fmt("line %d: unterminated array %s", line, key));
        if (s[p] == ']') break;
        char * end = nullptr;
        double v = strtod(s.c_str() + p, &end);
        if (end == s.c_str() + p) throw fatal("bad_data", fmt("line %d: non-number in %s", line, key));
        out.push_back(v);
        p = end - s.c_str();
    }
    return true;
}

static std::vector<Pair> load_data(const std::string & path, int n_vocab) {
    std::ifstream f(path);
    if (!f) throw fatal("bad_data", "cannot open data file " + path);
    std::vector<Pair> pairs;
    std::string line;
    int ln = 0;
    std::vector<double> tmp;
    auto to_tokens = [&](std::vector<llama_token> & dst, const char * key) {
        dst.clear();
        for (double v : tmp) {
            if (v < 0 || v >= n_vocab || v != std::floor(v)) throw fatal("bad_data", fmt("line %d: token %g in %s is outside the vocab (%d)", ln, v, key, n_vocab));
            dst.push_back((llama_token) v);
        }
    };
    while (std::getline(f, line)) {
        ++ln;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        Pair p;
        p.line = ln;
        if (json_array(line, "tokens", tmp, ln)) {
            p.raw = true;
            to_tokens(p.tokens, "tokens");
            if (!json_array(line, "weights", tmp, ln) || tmp.size() != p.tokens.size()) throw fatal("bad_data", fmt("line %d: weights must match tokens", ln));
            for (double v : tmp) p.weights.push_back((float) v);
            if (p.tokens.size() < 2) throw fatal("bad_data", fmt("line %d: a sequence needs at least 2 tokens", ln));
        } else {
            if (!json_array(line, "prompt", tmp, ln)) throw fatal("bad_data", fmt("line %d: no prompt", ln));
            to_tokens(p.prompt, "prompt");
            if (!json_array(line, "chosen", tmp, ln)) throw fatal("bad_data", fmt("line %d: no chosen", ln));
            to_tokens(p.chosen, "chosen");
            if (json_array(line, "rejected", tmp, ln)) to_tokens(p.rejected, "rejected");
            if (p.prompt.empty()) throw fatal("bad_data", fmt("line %d: empty prompt", ln));
            if (p.chosen.empty()) throw fatal("bad_data", fmt("line %d: empty chosen span", ln));
        }
        pairs.push_back(std::move(p));
    }
    if (pairs.empty()) throw fatal("empty_data", "the data file has no examples: " + path);
    return pairs;
}

// one sequence to evaluate: tokens, and rows (positions whose next-token loss counts)
struct Row {
    int32_t pos;        // the logits at this position predict `target`
    llama_token target;
    float weight;
};
struct Seq {
    std::vector<llama_token> tokens;
    std::vector<Row> rows;  // ascending pos, unique
};

// prompt + span; one row for every span token (+ optionally the end token after the span)
static Seq span_seq(const std::vector<llama_token> & prompt, const std::vector<llama_token> & span, float w, llama_token end_token = LLAMA_TOKEN_NULL) {
    Seq s;
    s.tokens = prompt;
    s.tokens.insert(s.tokens.end(), span.begin(), span.end());
    for (size_t i = 0; i < span.size(); ++i) s.rows.push_back({(int32_t) (prompt.size() + i - 1), span[i], w});
    if (end_token != LLAMA_TOKEN_NULL) s.rows.push_back({(int32_t) (s.tokens.size() - 1), end_token, 0.0f});
    return s;
}

static Seq raw_seq(const Pair & p, float scale) {
    Seq s;
    s.tokens = p.tokens;
    for (size_t i = 1; i < p.tokens.size(); ++i)
        if (p.weights[i] != 0.0f) s.rows.push_back({(int32_t) (i - 1), p.tokens[i], p.weights[i] * scale});
    return s;
}

// ----------------------------------------------------------------------------------------
// options
// ----------------------------------------------------------------------------------------

struct Options {
    std::string mode;
    std::string model, data, out, adapter, backend_dir = STEER_GGML_LIB_DIR;
    std::string objective = "sft";
    std::string targets = "q,k,v,o,gate,up,down";
    std::string schedule = "cosine";
    int rank = 16;
    float alpha = 32.0f;
    int epochs = 3;
    float lr = 1e-3f;
    float warmup = 0.1f;  // fraction of the steps (< 1) or a step count (>= 1)
    float weight_decay = 0.0f;
    float beta = 0.1f;      // DPO beta
    float sft_weight = 1.0f;  // sft+dpo: weight of the SFT term
    int grad_accum = 4;     // pairs per optimizer step
    int seed = 42;
    int threads = 0;
    int gpu_layers = -1;    // -1: all when a GPU backend is present
    bool all_outputs = false;
    bool cached_kv = false;
    bool generic_loss = false;
    bool out_prod_backward = false;
    std::string compute_type = "auto";  // auto|f32|bf16: type of the frozen matrices while training  // keep ggml's OUT_PROD for gradients through frozen weights (slow on CPU; less memory)  // never use the fused cross-entropy path    // read K/V back from the cache as upstream does (no gradient through K/V)  // output logits for every position (tests: weight 0 rows then go through the loss)
    // grad-check
    float eps = 1e-2f;
    float init_b_std = 0.0f;  // grad-check: random B so A gets gradients too
    int max_steps = 0;
};

static void usage() {
    fprintf(stderr,
        "usage: steer-train train --model BASE.gguf --data DATA.jsonl --out ADAPTER.gguf [options]\n"
        "       steer-train eval --model BASE.gguf --data DATA.jsonl [--adapter ADAPTER.gguf]\n"
        "       steer-train grad-check --model BASE.gguf --data DATA.jsonl [--targets ...] [--init-b-std S]\n"
        "       steer-train peak --threads N   (measured F32 FMA / BF16 dot-product / AMX-BF16 tile GFLOP/s)\n"
        "options: --objective sft|dpo|sft+dpo --rank R --alpha A --targets q,k,v,o,gate,up,down\n"
        "         --epochs N --lr X --schedule cosine|linear|constant --warmup F --weight-decay W\n"
        "         --beta B --sft-weight W --grad-accum N --seed N --threads N --gpu-layers N\n"
        "         --max-steps N --all-outputs --cached-kv --generic-loss --out-prod-backward\n"
        "         --compute-type auto|f32|bf16|amx --eps E --backend-dir DIR --verbose\n");
}

static Options parse_args(int argc, char ** argv) {
    Options o;
    if (argc < 2) { usage(); throw fatal("usage", "missing mode"); }
    o.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw fatal("usage", "missing value for " + a);
            return argv[++i];
        };
        if (a == "--model") o.model = next();
        else if (a == "--data") o.data = next();
        else if (a == "--out") o.out = next();
        else if (a == "--adapter") o.adapter = next();
        else if (a == "--backend-dir") o.backend_dir = next();
        else if (a == "--objective") o.objective = next();
        else if (a == "--targets") o.targets = next();
        else if (a == "--schedule") o.schedule = next();
        else if (a == "--rank") o.rank = std::stoi(next());
        else if (a == "--alpha") o.alpha = std::stof(next());
        else if (a == "--epochs") o.epochs = std::stoi(next());
        else if (a == "--lr") o.lr = std::stof(next());
        else if (a == "--warmup") o.warmup = std::stof(next());
        else if (a == "--weight-decay") o.weight_decay = std::stof(next());
        else if (a == "--beta") o.beta = std::stof(next());
        else if (a == "--sft-weight") o.sft_weight = std::stof(next());
        else if (a == "--grad-accum") o.grad_accum = std::stoi(next());
        else if (a == "--seed") o.seed = std::stoi(next());
        else if (a == "--threads") o.threads = std::stoi(next());
        else if (a == "--gpu-layers") o.gpu_layers = std::stoi(next());
        else if (a == "--max-steps") o.max_steps = std::stoi(next());
        else if (a == "--eps") o.eps = std::stof(next());
        else if (a == "--init-b-std") o.init_b_std = std::stof(next());
        else if (a == "--all-outputs") o.all_outputs = true;
        else if (a == "--cached-kv") o.cached_kv = true;
        else if (a == "--generic-loss") o.generic_loss = true;
        else if (a == "--out-prod-backward") o.out_prod_backward = true;
        else if (a == "--compute-type") o.compute_type = next();
        else if (a == "--verbose") g_verbose = true;
        else if (a == "--help" || a == "-h") { usage(); exit(0); }
        else throw fatal("usage", "unknown option " + a);
    }
    if (o.mode != "train" && o.mode != "eval" && o.mode != "grad-check" && o.mode != "peak") throw fatal("usage", "unknown mode " + o.mode);
    if (o.mode != "peak" && o.model.empty()) throw fatal("usage", "--model is required");
    if (o.mode != "peak" && o.data.empty()) throw fatal("usage", "--data is required");
    if (o.mode == "train" && o.out.empty()) throw fatal("usage", "--out is required");
    if (o.objective != "sft" && o.objective != "dpo" && o.objective != "sft+dpo") throw fatal("usage", "--objective must be sft, dpo or sft+dpo");
    if (o.compute_type != "auto" && o.compute_type != "f32" && o.compute_type != "bf16" && o.compute_type != "amx")
        throw fatal("usage", "--compute-type must be auto, f32, bf16 or amx");
    if (o.schedule != "cosine" && o.schedule != "linear" && o.schedule != "constant") throw fatal("usage", "--schedule must be cosine, linear or constant");
    if (o.rank < 1 || o.epochs < 1 || o.grad_accum < 1 || !(o.lr > 0)) throw fatal("usage", "rank, epochs, grad-accum and lr must be positive");
    if (o.threads <= 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
    return o;
}

// ----------------------------------------------------------------------------------------
// base model inspection (before loading: clear errors for quantized models)
// ----------------------------------------------------------------------------------------

static const std::map<std::string, std::string> TARGET_NAMES = {
    {"q", "attn_q"}, {"k", "attn_k"}, {"v", "attn_v"}, {"o", "attn_output"},
    {"gate", "ffn_gate"}, {"up", "ffn_up"}, {"down", "ffn_down"},
};

struct TargetTensor {
    std::string name;  // base weight name, e.g. blk.0.attn_q.weight
    int64_t n_in, n_out;
};

struct BaseInfo {
    std::string arch;
    std::vector<TargetTensor> targets;
};

static BaseInfo inspect_base(const std::string & path, const std::vector<std::string> & short_targets) {
    ggml_context * meta = nullptr;
    gguf_init_params gp = {/*no_alloc*/ true, &meta};
    gguf_context * g = gguf_init_from_file(path.c_str(), gp);
    if (!g) throw fatal("bad_model", "cannot read the base model GGUF " + path);
    BaseInfo info;
    int64_t ak = gguf_find_key(g, "general.architecture");
    if (ak < 0) { gguf_free(g); ggml_free(meta); throw fatal("bad_model", "the base model has no general.architecture"); }
    info.arch = gguf_get_val_str(g, ak);
    std::set<std::string> wanted;
    for (auto & t : short_targets) {
        auto it = TARGET_NAMES.find(t);
        if (it == TARGET_NAMES.end()) { gguf_free(g); ggml_free(meta); throw fatal("usage", "unknown target " + t + " (use q,k,v,o,gate,up,down)"); }
        wanted.insert(it->second);
    }
    std::string unusable;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
        const char * name = gguf_get_tensor_name(g, i);
        ggml_tensor * t = ggml_get_tensor(meta, name);
        std::string n(name);
        // blk.N.<kind>.weight
        // every frozen weight is multiplied as F32 or BF16 in training: quantized ones are
        // dequantized once at load (see dequantize_weights), which needs a to_float kernel
        if (t->type != GGML_TYPE_F32 && !ggml_get_type_traits(t->type)->to_float && unusable.empty()) unusable = n + " is " + ggml_type_name(t->type);
        if (n.rfind("blk.", 0) != 0 || n.size() < 7 || n.compare(n.size() - 7, 7, ".weight") != 0) continue;
        size_t d1 = n.find('.', 4);
        std::string kind = n.substr(d1 + 1, n.size() - 7 - d1 - 1);
        if (wanted.count(kind) && ggml_n_dims(t) == 2) info.targets.push_back({n, t->ne[0], t->ne[1]});
    }
    gguf_free(g);
    ggml_free(meta);
    if (!unusable.empty())
        throw fatal("unsupported_model", "the base model has weights ggml cannot dequantize (" + unusable + "): use an F32, F16, BF16 or quantized GGUF of a type llama.cpp runs");
    if (info.targets.empty()) throw fatal("bad_model", "the base model has none of the target projections " + fmt("(%zu asked)", short_targets.size()));
    std::sort(info.targets.begin(), info.targets.end(), [](const TargetTensor & a, const TargetTensor & b) { return a.name < b.name; });
    return info;
}

static std::vector<std::string> split(const std::string & s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, sep)) if (!item.empty()) out.push_back(item);
    return out;
}

// ----------------------------------------------------------------------------------------
// adapter GGUF
// ----------------------------------------------------------------------------------------

struct HostLora {
    std::string name;           // base weight name
    int64_t n_in, n_out, rank;
    std::vector<float> a, b;    // a: [n_in, rank] (ne order), b: [rank, n_out]
};

static void write_adapter(const std::string & path, const std::string & arch, float alpha, const std::vector<HostLora> & loras,
                          const std::vector<std::pair<std::string, std::string>> & extra_kv) {
    size_t bytes = 0;
    for (auto & l : loras) bytes += (l.a.size() + l.b.size()) * sizeof(float);
    ggml_init_params ip = {bytes + (loras.size() * 2 + 8) * ggml_tensor_overhead(), nullptr, false};
    ggml_context * ctx = ggml_init(ip);
    gguf_context * g = gguf_init_empty();
    gguf_set_val_str(g, "general.architecture", arch.c_str());
    gguf_set_val_str(g, "general.type", "adapter");
    gguf_set_val_str(g, "general.name", "steerbot adapter");
    gguf_set_val_str(g, "adapter.type", "lora");
    gguf_set_val_f32(g, "adapter.lora.alpha", alpha);
    for (auto & kv : extra_kv) gguf_set_val_str(g, kv.first.c_str(), kv.second.c_str());
    for (auto & l : loras) {
        ggml_tensor * a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, l.n_in, l.rank);
        ggml_tensor * b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, l.rank, l.n_out);
        ggml_set_name(a, (l.name + ".lora_a").c_str());
        ggml_set_name(b, (l.name + ".lora_b").c_str());
        memcpy(a->data, l.a.data(), ggml_nbytes(a));
        memcpy(b->data, l.b.data(), ggml_nbytes(b));
        gguf_add_tensor(g, a);
        gguf_add_tensor(g, b);
    }
    const std::string tmp = path + ".tmp";
    bool ok = gguf_write_to_file(g, tmp.c_str(), false);
    gguf_free(g);
    ggml_free(ctx);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) throw fatal("io", "cannot write the adapter to " + path);
}

// ----------------------------------------------------------------------------------------
// the session: model, context, adapter, trainable tensors, graphs
// ----------------------------------------------------------------------------------------

struct Param {
    std::string name;   // tensor name (…lora_a / …lora_b)
    ggml_tensor * t;    // the adapter's tensor (trainable)
    ggml_tensor * acc;  // gradient accumulator
    ggml_tensor * m;    // AdamW moments
    ggml_tensor * v;
};

// ----------------------------------------------------------------------------------------
// AMX data (the kernel and its notes: see "AMX" below)
// ----------------------------------------------------------------------------------------

// The tile unit's configuration: tiles 0-7 all 16 rows of 64 bytes (16 F32 or 32 BF16 values),
// the only shape the trainer uses.
struct TileConfig {
    uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// A matrix M [N rows][K] (N, K multiples of 32) in tile order: tile (nb, kb) holds rows
// nb*16..+15 and columns kb*32..+31 as 16 rows of column pairs: row r, slot 2j+p =
// M[nb*16 + j][kb*32 + 2r + p] (the "B" operand layout of tdpbf16ps).
struct AmxMatrix {
    int64_t K = 0, N = 0;
    uint16_t * tiles = nullptr;  // N*K values, in anonymous memory of our own (huge pages where allowed)
    size_t bytes = 0;
    AmxMatrix() = default;
    AmxMatrix(const AmxMatrix &) = delete;
    AmxMatrix & operator=(const AmxMatrix &) = delete;
    ~AmxMatrix() { if (tiles) munmap(tiles, bytes); }
};

struct SpinBarrier {
    std::atomic<int> count{0}, gen{0};
    void wait(int n) {
        const int g = gen.load(std::memory_order_acquire);
        if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
            count.store(0, std::memory_order_relaxed);
            gen.fetch_add(1, std::memory_order_release);
        } else {
            // spin briefly (the others are a few microseconds behind), then yield: with more
            // threads than cores (the bot generating beside a training run) a spinning waiter
            // would burn the time slice of the thread it waits for
            for (int spins = 0; gen.load(std::memory_order_acquire) == g; ++spins) {
                if (spins < 2000) {
#if defined(__x86_64__)
                    _mm_pause();
#endif
                } else {
                    std::this_thread::yield();
                }
            }
        }
    }
};

struct AmxShared {
    std::vector<uint16_t> x;  // activations in BF16, [T rounded up to 32][K]
    SpinBarrier barrier;
};

struct AmxOp {
    const AmxMatrix * m;
    AmxShared * shared;
};

static bool amx_bf16_available();  // see "AMX" below

static bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

struct Session {
    Options opt;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    llama_adapter_lora * adapter = nullptr;
    const llama_vocab * vocab = nullptr;
    int n_vocab = 0;
    std::vector<Param> params;
    std::map<const ggml_tensor *, size_t> param_index;
    ggml_context * ctx_state = nullptr;         // accumulators, moments, loss seed
    ggml_backend_buffer_t buf_acc = nullptr;    // accumulators only (cleared after each optimizer step)
    ggml_backend_buffer_t buf_state = nullptr;  // moments + loss seed
    ggml_tensor * loss_seed = nullptr;
    int64_t opt_iter = 0;  // optimizer steps done
    std::string tmp_adapter;
    // transposed copies of the frozen weights (see transposed_weight): gradients through them
    // become ordinary matrix products instead of ggml's OUT_PROD
    std::map<const ggml_tensor *, ggml_tensor *> transposed;
    std::vector<std::pair<ggml_context *, ggml_backend_buffer_t>> transposed_bufs;
    bool backward_reported = false;
    bool bf16 = false;               // frozen F32 matrices multiplied as BF16 (see weights_to_bf16)
    bool weights_prepared = false;
    bool on_gpu = false;             // layers offloaded: leave the backward graph as ggml builds it
    bool amx = false;                // frozen products on the AMX tile unit (see amx_gemm)
    bool mmapped = false;            // the model's weights are a mapping of its file
    bool trainable = false;          // a train / grad-check session (quantized weights get dequantized)
    std::map<const ggml_tensor *, AmxMatrix> amx_fwd;  // W packed, by weight
    std::map<const ggml_tensor *, AmxMatrix> amx_bwd;  // Wᵀ packed, by weight
    AmxShared amx_shared;
    std::deque<AmxOp> amx_ops;       // userdata of the current graph's AMX nodes

    ~Session() {
        for (auto & [c, b] : transposed_bufs) { ggml_backend_buffer_free(b); ggml_free(c); }
        if (ctx) llama_free(ctx);
        if (buf_acc) ggml_backend_buffer_free(buf_acc);
        if (buf_state) ggml_backend_buffer_free(buf_state);
        if (ctx_state) ggml_free(ctx_state);
        if (model) llama_model_free(model);
        if (!tmp_adapter.empty()) remove(tmp_adapter.c_str());
    }

    void set_adapter_scale(float scale) {
        if (!adapter) return;
        llama_adapter_lora * ad = adapter;
        if (llama_set_adapters_lora(ctx, &ad, 1, &scale) != 0) throw fatal("internal", "cannot set the adapter");
    }
};

static void load_backends(const Options & o) {
    static bool done = false;
    if (done) return;
    done = true;
    if (!o.backend_dir.empty()) ggml_backend_load_all_from_path(o.backend_dir.c_str());
    else ggml_backend_load_all();
    if (ggml_backend_reg_count() == 0 || !ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        throw fatal("no_backend", "no ggml CPU backend could be loaded from " + o.backend_dir);
}

static bool has_gpu() {
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        auto t = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

static size_t max_seq_len(const std::vector<Pair> & pairs) {
    size_t n = 0;
    for (auto & p : pairs) {
        if (p.raw) n = std::max(n, p.tokens.size());
        else n = std::max(n, p.prompt.size() + std::max(p.chosen.size(), p.rejected.size()));
    }
    return n;
}

// Loads the model, the adapter (file, or fresh A random / B zero), and a context for n_ctx tokens.
static void open_session(Session & S, const BaseInfo & base, const std::vector<HostLora> * fresh, size_t n_ctx_needed, bool trainable) {
    const Options & o = S.opt;
    load_backends(o);
    llama_steer_set_graph_scale(trainable ? 4 : 1);
    // attend to the ubatch's own K/V: gradients then reach attn_k/attn_v and flow through them
    // to earlier layers (--cached-kv restores upstream's behaviour, for comparison)
    llama_steer_set_direct_kv(!o.cached_kv);

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o.gpu_layers >= 0 ? o.gpu_layers : (has_gpu() ? 999 : 0);
    S.on_gpu = mp.n_gpu_layers > 0 && has_gpu();
    // mapped, so that pages of weights we no longer read can leave memory (see prepare_weights)
    // training dequantizes quantized weights from their file layout (see convert_weights): no
    // repacking into the CPU's interleaved layouts, whose buffers are not plain host memory
    if (trainable) mp.use_extra_bufts = false;
    S.mmapped = llama_supports_mmap();
    if (S.mmapped) mp.load_mode = LLAMA_LOAD_MODE_MMAP;
    S.model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!S.model) throw fatal("bad_model", "cannot load the base model " + o.model);
    S.vocab = llama_model_get_vocab(S.model);
    S.n_vocab = llama_vocab_n_tokens(S.vocab);

    std::string adapter_path = o.adapter;
    if (fresh) {
        S.tmp_adapter = fmt("%s.init-%d.gguf", o.out.empty() ? "/tmp/steer-train" : o.out.c_str(), (int) getpid());
        write_adapter(S.tmp_adapter, base.arch, o.alpha, *fresh, {});
        adapter_path = S.tmp_adapter;
    }
    if (!adapter_path.empty()) {
        S.adapter = llama_adapter_lora_init(S.model, adapter_path.c_str());
        if (!S.adapter) throw fatal("bad_adapter", "cannot load the adapter " + adapter_path + " on this base model");
    }

    const uint32_t n_ctx = (uint32_t) std::max<size_t>(64, (n_ctx_needed + 63) / 64 * 64);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // FLASH_ATTN_EXT has no backward pass
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    S.ctx = llama_init_from_model(S.model, cp);
    if (!S.ctx) throw fatal("internal", "cannot create a llama context");
    S.set_adapter_scale(1.0f);

    S.trainable = trainable;
    if (!trainable) return;
    // BF16 products need the CPU's BF16 dot product (AVX512-BF16) to be faster than F32;
    // upstream's OUT_PROD has no BF16 kernel; grad-check's finite differences need F32 unless asked
    // AMX: the tile unit, when the CPU has one and the kernel grants it
    const bool auto_fast = o.compute_type == "auto" && o.mode == "train";
    S.amx = !o.out_prod_backward && !S.on_gpu && (o.compute_type == "amx" || auto_fast) && amx_bf16_available();
    if (o.compute_type == "amx" && !S.amx) throw fatal("usage", "--compute-type amx needs a CPU with AMX-BF16 (and no GPU offload)");
    S.bf16 = !S.amx && !o.out_prod_backward &&
             (o.compute_type == "bf16" || (auto_fast && cpu_has_avx512_bf16()));

    // trainable tensors: every lora_a/lora_b of the adapter
    struct Collect { std::vector<std::pair<std::string, ggml_tensor *>> v; } col;
    llama_steer_adapter_tensors(S.adapter, [](void * ud, const char *, ggml_tensor * a, ggml_tensor * b) {
        auto * c = (Collect *) ud;
        c->v.push_back({a->name, a});
        c->v.push_back({b->name, b});
    }, &col);
    std::sort(col.v.begin(), col.v.end());
    ggml_init_params ip = {(col.v.size() * 3 + 4) * ggml_tensor_overhead(), nullptr, true};
    S.ctx_state = ggml_init(ip);
    ggml_context * ctx_acc = ggml_init(ggml_init_params{(col.v.size() + 2) * ggml_tensor_overhead(), nullptr, true});
    for (auto & [name, t] : col.v) {
        if (t->type != GGML_TYPE_F32) throw fatal("bad_adapter", "adapter tensor " + name + " is not F32");
        ggml_set_param(t);
        Param p;
        p.name = name;
        p.t = t;
        p.acc = ggml_dup_tensor(ctx_acc, t);
        p.m = ggml_dup_tensor(S.ctx_state, t);
        p.v = ggml_dup_tensor(S.ctx_state, t);
        ggml_format_name(p.acc, "grad acc %s", name.c_str());
        S.param_index[t] = S.params.size();
        S.params.push_back(p);
    }
    S.loss_seed = ggml_new_tensor_1d(S.ctx_state, GGML_TYPE_F32, 1);
    ggml_set_name(S.loss_seed, "loss seed");
    // state lives where the adapter lives (GPU when offloaded)
    ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(S.params[0].t->buffer);
    S.buf_acc = ggml_backend_alloc_ctx_tensors_from_buft(ctx_acc, buft);
    S.buf_state = ggml_backend_alloc_ctx_tensors_from_buft(S.ctx_state, buft);
    if (!S.buf_acc || !S.buf_state) throw fatal("oom", "cannot allocate the optimizer state");
    ggml_backend_buffer_clear(S.buf_acc, 0);
    ggml_backend_buffer_clear(S.buf_state, 0);
    // ctx_acc's metadata must stay alive: keep it with the state context
    static std::vector<ggml_context *> keep;
    keep.push_back(ctx_acc);
}

// ----------------------------------------------------------------------------------------
// frozen weights: compute type, and gradients through them as matrix products
// ----------------------------------------------------------------------------------------
//
// ggml differentiates y = W·x (ggml_mul_mat(W, x)) with respect to x as
// ggml_out_prod(W, transpose(dy)). On the CPU that op is a loop of axpys that streams W from
// memory once per 16 tokens: measured on the 0.5B shape it took half of a training step, at
// about a third of the speed of the forward products. Since W is frozen, we keep a transposed
// copy Wᵀ (once per session) and turn each such node into ggml_mul_mat(Wᵀ, dy): the same
// numbers through the fast GEMM path. Costs one copy of the frozen weights in memory; only
// for weights in host memory (CUDA's OUT_PROD is already a cuBLAS GEMM). --out-prod-backward
// keeps upstream's op.
//
// --compute-type bf16 (the default on CPUs with AVX512-BF16) also stores the frozen F32
// matrices as bfloat16 for training, as mixed-precision LoRA training does (the adapter and its
// gradients stay F32, products accumulate in F32): ggml's GEMM then runs on the CPU's BF16 dot
// product instructions, twice the FLOPs per instruction of F32 FMA. Evaluation always uses the
// weights as stored.

static bool is_frozen_host_weight(const Session & S, const ggml_tensor * t) {
    return t && t->op == GGML_OP_NONE && (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_BF16 || ggml_is_quantized(t->type)) &&
           t->buffer && ggml_backend_buffer_is_host(t->buffer) && ggml_backend_buffer_get_usage(t->buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS &&
           !S.param_index.count(t) && ggml_is_contiguous(t) && t->ne[2] == 1 && t->ne[3] == 1;
}

// runs fn(i0, i1) over [0, n) split across the training threads
template <typename F>
static void parallel_rows(int nth, int64_t n, F fn) {
    nth = std::max(1, nth);
    std::vector<std::thread> th;
    for (int t = 0; t < nth; ++t) th.emplace_back([=] { fn(n * t / nth, n * (t + 1) / nth); });
    for (auto & x : th) x.join();
}

// Drops the whole pages inside [p, p + n) from memory (the weights there are no longer read;
// pages of a mapped file come back from the file if they ever are).
static void release_pages(const void * p, size_t n) {
    const uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t) p + page - 1) / page * page;
    const uintptr_t b = ((uintptr_t) p + n) / page * page;
    if (b > a) madvise((void *) a, b - a, MADV_DONTNEED);
}

// Converts weights (F32, F16, BF16 or quantized) to `type` (F32 or BF16) in place of the
// model's tensors (type, strides, data, buffer), so every graph built or run afterwards
// multiplies in that type: BF16 for the BF16 compute types, and dequantized quantized weights
// (QLoRA-style: the frozen weights are the quantized file's values, exactly; only their
// storage changes). The old pages of the mapped file are released from memory.
static void convert_weights(Session & S, const std::vector<ggml_tensor *> & ws, ggml_type type) {
    ggml_context * c = ggml_init(ggml_init_params{(ws.size() + 1) * ggml_tensor_overhead(), nullptr, true});
    std::vector<ggml_tensor *> tmp;
    for (ggml_tensor * w : ws) tmp.push_back(ggml_new_tensor_2d(c, type, w->ne[0], w->ne[1]));
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c, ggml_backend_cpu_buffer_type());
    if (!buf) throw fatal("oom", fmt("cannot allocate the %s weights (try --compute-type %s)", ggml_type_name(type), type == GGML_TYPE_BF16 ? "f32" : "bf16"));
    ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    S.transposed_bufs.push_back({c, buf});
    for (size_t k = 0; k < ws.size(); ++k) {
        ggml_tensor * w = ws[k];
        const ggml_type from = w->type;
        const char * src = (const char *) w->data;
        char * dst = (char *) tmp[k]->data;
        const int64_t n_in = w->ne[0];
        const size_t row_in = ggml_row_size(from, n_in), row_out = ggml_row_size(type, n_in);
        const auto to_float = ggml_get_type_traits(from)->to_float;
        if (from != GGML_TYPE_F32 && !to_float) throw fatal("unsupported_model", std::string("cannot dequantize ") + w->name + " (" + ggml_type_name(from) + ")");
        parallel_rows(S.opt.threads, w->ne[1], [=](int64_t r0, int64_t r1) {
            std::vector<float> row(from == GGML_TYPE_F32 ? 0 : n_in);
            for (int64_t r = r0; r < r1; ++r) {
                const float * f = (const float *) (src + r * row_in);
                if (from != GGML_TYPE_F32) { to_float(src + r * row_in, row.data(), n_in); f = row.data(); }
                if (type == GGML_TYPE_BF16) ggml_fp32_to_bf16_row_ref(f, (ggml_bf16_t *) (dst + r * row_out), n_in);
                else memcpy(dst + r * row_out, f, n_in * sizeof(float));
            }
        });
        if (S.mmapped) release_pages(src, ggml_nbytes(w));  // the old bytes are no longer read
        w->type = type;
        w->nb[0] = ggml_type_size(type);
        w->nb[1] = w->nb[0] * w->ne[0];
        w->nb[2] = w->nb[1] * w->ne[1];
        w->nb[3] = w->nb[2] * w->ne[2];
        w->data = tmp[k]->data;
        w->buffer = buf;
    }
}

// dst = srcᵀ for 2-D tensors of T-sized elements; blocked so both sides stay in cache
template <typename T>
static void transpose_rows(int nth, const ggml_tensor * src_t, ggml_tensor * dst_t) {
    const T * src = (const T *) src_t->data;
    T * dst = (T *) dst_t->data;
    const int64_t n_in = src_t->ne[0], n_out = src_t->ne[1];
    const int64_t B = 64;
    parallel_rows(nth, (n_out + B - 1) / B, [=](int64_t b0, int64_t b1) {
        for (int64_t o0 = b0 * B; o0 < std::min(n_out, b1 * B); o0 += B)
            for (int64_t i0 = 0; i0 < n_in; i0 += B)
                for (int64_t o = o0; o < std::min(o0 + B, n_out); ++o)
                    for (int64_t i = i0; i < std::min(i0 + B, n_in); ++i) dst[o + i * n_out] = src[i + o * n_in];
    });
}

// Makes Wᵀ (same type as W) for the given weights.
static void make_transposed(Session & S, const std::vector<ggml_tensor *> & ws) {
    ggml_context * c = ggml_init(ggml_init_params{(ws.size() + 1) * ggml_tensor_overhead(), nullptr, true});
    std::vector<ggml_tensor *> out;
    for (ggml_tensor * w : ws) {
        ggml_tensor * t = ggml_new_tensor_2d(c, w->type, w->ne[1], w->ne[0]);
        ggml_format_name(t, "%s (transposed)", w->name);
        out.push_back(t);
    }
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c, ggml_backend_cpu_buffer_type());
    if (!buf) throw fatal("oom", "cannot allocate the transposed weights (try --out-prod-backward, which needs no copy)");
    S.transposed_bufs.push_back({c, buf});
    for (size_t k = 0; k < ws.size(); ++k) {
        if (ggml_type_size(ws[k]->type) == 4) transpose_rows<uint32_t>(S.opt.threads, ws[k], out[k]);
        else transpose_rows<uint16_t>(S.opt.threads, ws[k], out[k]);
        S.transposed[ws[k]] = out[k];
    }
}

// ----------------------------------------------------------------------------------------
// AMX: products with the frozen matrices on the CPU's tile unit (BF16 in, F32 accumulate)
// ----------------------------------------------------------------------------------------
//
// On CPUs with AMX-BF16 (Intel Sapphire Rapids and later) one core multiplies 16x32 by 32x16
// BF16 tiles into F32 per instruction: measured on this project's 2-core dev VM, 2.5 TFLOP/s
// per core against 0.08 for AVX512-BF16 dot products. ggml's AMX backend only takes quantized
// weights, so the trainer carries its own kernel: every product with a frozen matrix W (the
// forward W·x and the input gradient Wᵀ·dy) becomes a GGML_OP_CUSTOM node that runs it from W
// (and Wᵀ) packed once per run in the tile unit's VNNI layout. The activations are rounded to
// BF16 per product, like the bf16 compute type; everything else is untouched.

#if defined(__x86_64__)
static bool amx_bf16_available() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
    if (!tile || !bf16 || !__builtin_cpu_supports("avx512bf16")) return false;
    // the kernel hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static inline uint16_t bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t) ((u >> 16) | 64);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t) (u >> 16);
}

// at(n, k) gives M[n][k] as F32
template <typename At>
static void amx_pack(AmxMatrix & m, int64_t N, int64_t K, int nth, At at) {
    m.N = N;
    m.K = K;
    // not a std::vector: its zero fill would touch every page once more; huge pages cut the
    // page faults of a first touch of gigabytes by 512
    m.bytes = (size_t) N * K * sizeof(uint16_t);
    void * p = mmap(nullptr, m.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw fatal("oom", "cannot allocate the packed weights (try --compute-type bf16)");
    madvise(p, m.bytes, MADV_HUGEPAGE);
    m.tiles = (uint16_t *) p;
    uint16_t * out = m.tiles;
    const int64_t KB = K / 32;
    parallel_rows(nth, N / 16, [=](int64_t nb0, int64_t nb1) {
        for (int64_t nb = nb0; nb < nb1; ++nb)
            for (int64_t kb = 0; kb < KB; ++kb) {
                uint16_t * t = out + (nb * KB + kb) * 512;
                for (int r = 0; r < 16; ++r)
                    for (int j = 0; j < 16; ++j)
                        for (int p = 0; p < 2; ++p) t[r * 32 + 2 * j + p] = bf16_round(at(nb * 16 + j, kb * 32 + 2 * r + p));
            }
    });
}

// dst [N, T] = M [N][K] · x [K, T] (x rows: K contiguous F32 values, any row stride)
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl")))
static void amx_gemm(ggml_tensor * dst, int ith, int nth, void * ud) {
    const auto & op = *(const AmxOp *) ud;
    const AmxMatrix & m = *op.m;
    const ggml_tensor * x = dst->src[1];
    const int64_t K = m.K, N = m.N, T = x->ne[1], Tp = (T + 31) / 32 * 32, KB = K / 32;
    uint16_t * xb = op.shared->x.data();

    // 1. activations to BF16, rows split over the threads, padding rows zero
    for (int64_t t = Tp * ith / nth; t < Tp * (ith + 1) / nth; ++t) {
        uint16_t * row = xb + t * K;
        if (t >= T) { memset(row, 0, K * 2); continue; }
        const float * xr = (const float *) ((const char *) x->data + t * x->nb[1]);
        for (int64_t k = 0; k < K; k += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16), _mm512_loadu_ps(xr + k));
            _mm512_storeu_si512((void *) (row + k), (__m512i) v);
        }
    }
    op.shared->barrier.wait(nth);

    // 2. 32 outputs x 32 tokens at a time: C tiles 0-3, activations 4-5, matrix 6-7
    const TileConfig cfg;
    _tile_loadconfig(&cfg);
    float * y = (float *) dst->data;
    const int64_t ld = dst->nb[1] / sizeof(float);
    alignas(64) float tail[32 * 32];
    const int64_t NB2 = N / 32;
    for (int64_t nb2 = NB2 * ith / nth; nb2 < NB2 * (ith + 1) / nth; ++nb2) {
        const uint16_t * w0 = m.tiles + (2 * nb2) * KB * 512;
        const uint16_t * w1 = w0 + KB * 512;
        for (int64_t t0 = 0; t0 < Tp; t0 += 32) {
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            const uint16_t * a0 = xb + t0 * K;
            const uint16_t * a1 = a0 + 16 * K;
            for (int64_t kb = 0; kb < KB; ++kb) {
                _tile_loadd(4, a0 + kb * 32, K * 2);
                _tile_loadd(5, a1 + kb * 32, K * 2);
                _tile_loadd(6, w0 + kb * 512, 64);
                _tile_loadd(7, w1 + kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            if (t0 + 32 <= T) {
                float * c = y + t0 * ld + nb2 * 32;
                _tile_stored(0, c, ld * 4);
                _tile_stored(1, c + 16, ld * 4);
                _tile_stored(2, c + 16 * ld, ld * 4);
                _tile_stored(3, c + 16 * ld + 16, ld * 4);
            } else {
                _tile_stored(0, tail, 128);
                _tile_stored(1, tail + 16, 128);
                _tile_stored(2, tail + 16 * 32, 128);
                _tile_stored(3, tail + 16 * 32 + 16, 128);
                for (int64_t t = t0; t < T; ++t) memcpy(y + t * ld + nb2 * 32, tail + (t - t0) * 32, 32 * sizeof(float));
            }
        }
    }
    _tile_release();
}
#else
static bool amx_bf16_available() { return false; }
#endif

// Once per session, at the first graph: the frozen host weights that are matrices of products.
static void prepare_weights(Session & S, ggml_cgraph * gf, bool backward) {
    // eval sessions use the weights as stored (quantized products, as the bot serves them)
    if (S.weights_prepared || !S.trainable) return;
    std::vector<ggml_tensor *> ws, quantized;
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        ggml_tensor * n = ggml_graph_node(gf, i);
        if (n->op == GGML_OP_MUL_MAT && is_frozen_host_weight(S, n->src[0]) && std::find(ws.begin(), ws.end(), n->src[0]) == ws.end())
            ws.push_back(n->src[0]);
    }
    // quantized weights first, at the first graph (a DPO reference pass included), so that the
    // reference and the policy see the same weights: to BF16 for the BF16 path, else to F32
    // (AMX packs from F32)
    for (ggml_tensor * w : ws) if (ggml_is_quantized(w->type)) quantized.push_back(w);
    if (!quantized.empty()) convert_weights(S, quantized, S.bf16 ? GGML_TYPE_BF16 : GGML_TYPE_F32);
    // forward-only graphs of an f32 session (DPO reference scores) need nothing more
    if (!backward && !S.bf16 && !S.amx) return;
#if defined(__x86_64__)
    if (S.amx) {
        // W and Wᵀ packed for the tile unit (dimensions multiples of 32); others take the F32 path
        std::vector<ggml_tensor *> rest;
        for (ggml_tensor * w : ws) {
            if (w->type != GGML_TYPE_F32 || w->ne[0] % 32 || w->ne[1] % 32) { rest.push_back(w); continue; }
            const float * src = (const float *) w->data;
            const int64_t n_in = w->ne[0], n_out = w->ne[1];
            amx_pack(S.amx_fwd[w], n_out, n_in, S.opt.threads, [=](int64_t n, int64_t k) { return src[n * n_in + k]; });
            amx_pack(S.amx_bwd[w], n_in, n_out, S.opt.threads, [=](int64_t n, int64_t k) { return src[k * n_in + n]; });
            // the F32 bytes now only back products that were not rewritten (none, normally): from a
            // mapped file they can leave memory, and come back from the file if ever read again
            if (S.mmapped) release_pages(src, ggml_nbytes(w));
        }
        if (!rest.empty() && !S.opt.out_prod_backward) make_transposed(S, rest);
        S.weights_prepared = true;
        return;
    }
#endif
    if (S.bf16) {
        std::vector<ggml_tensor *> f32;
        for (ggml_tensor * w : ws) if (w->type == GGML_TYPE_F32) f32.push_back(w);
        if (!f32.empty()) convert_weights(S, f32, GGML_TYPE_BF16);
    }
    if (backward && !S.opt.out_prod_backward && !ws.empty()) make_transposed(S, ws);
    // forward-only graphs (DPO reference scores) come first: transpose at the first backward one
    S.weights_prepared = backward || S.opt.out_prod_backward;
}

// Turns the products with packed frozen matrices into AMX nodes, in place: MUL_MAT(W, x) and
// the gradient OUT_PROD(W, transpose(dy)). Returns how many.
static int amx_rewrite(Session & S, ggml_cgraph * g) {
#if defined(__x86_64__)
    S.amx_ops.clear();  // the previous graph has been computed
    size_t scratch = 0;
    int n = 0;
    for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
        ggml_tensor * node = ggml_graph_node(g, i);
        const AmxMatrix * m = nullptr;
        ggml_tensor * x = nullptr;
        if (node->op == GGML_OP_MUL_MAT) {
            auto it = S.amx_fwd.find(node->src[0]);
            if (it != S.amx_fwd.end()) { m = &it->second; x = node->src[1]; }
        } else if (node->op == GGML_OP_OUT_PROD && node->src[1]->op == GGML_OP_TRANSPOSE) {
            auto it = S.amx_bwd.find(node->src[0]);
            if (it != S.amx_bwd.end()) { m = &it->second; x = node->src[1]->src[0]; }
        }
        if (!m || x->type != GGML_TYPE_F32 || x->nb[0] != sizeof(float) || x->ne[0] != m->K || x->ne[2] != 1 || x->ne[3] != 1 ||
            node->ne[0] != m->N || node->ne[1] != x->ne[1] || node->ne[2] != 1 || node->ne[3] != 1 || !ggml_is_contiguous(node))
            continue;
        S.amx_ops.push_back(AmxOp{m, &S.amx_shared});
        // what ggml_custom_4d would build (struct ggml_custom_op_params of ggml-impl.h), in place
        struct { ggml_custom_op_t fun; int n_tasks; void * userdata; } params = {amx_gemm, GGML_N_TASKS_MAX, &S.amx_ops.back()};
        static_assert(sizeof(params) <= sizeof(node->op_params), "op params");
        memset(node->op_params, 0, sizeof(node->op_params));
        memcpy(node->op_params, &params, sizeof(params));
        node->op = GGML_OP_CUSTOM;
        node->src[1] = x;
        scratch = std::max(scratch, (size_t) ((x->ne[1] + 31) / 32 * 32) * (size_t) m->K);
        ++n;
    }
    if (S.amx_shared.x.size() < scratch) S.amx_shared.x.resize(scratch);
    return n;
#else
    (void) S; (void) g;
    return 0;
#endif
}

// OUT_PROD(a, b) is dst[i, j] = Σ_k a[i, k]·b[j, k]; as a product with the contracted index
// first, that is MUL_MAT(aᵀ, bᵀ). Gradients bring OUT_PROD in three shapes, all slow on the CPU
// (axpys of ne0 elements: for a LoRA B gradient ne0 is the rank, 16):
//   frozen W, transpose(dy)   -> MUL_MAT(Wᵀ, dy)        Wᵀ made once (make_transposed)
//   x, transpose(dy)          -> MUL_MAT(cont(xᵀ), dy)  adapter A/B, attention: small copies
//   x, y                      -> MUL_MAT(cont(xᵀ), cont(yᵀ))
// Returns a new graph with the rewritten nodes and the copies they need, in order; `rewritten`
// counts them.
static bool can_mul_mat(const ggml_tensor * a, const ggml_tensor * b) {
    return a->ne[0] == b->ne[0] && b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0;
}

static ggml_cgraph * rewrite_out_prods(Session & S, ggml_context * c, ggml_cgraph * gb, int & rewritten) {
    rewritten = 0;
    ggml_cgraph * g2 = ggml_new_graph_custom(c, ggml_graph_size(gb) + 4096, false);
    auto transposed_cont = [&](ggml_tensor * t) -> ggml_tensor * {
        if (t->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(t->src[0])) return t->src[0];
        return ggml_cont(c, ggml_transpose(c, t));
    };
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        if (node->op == GGML_OP_OUT_PROD && node->type == GGML_TYPE_F32 && node->src[0]->type == GGML_TYPE_F32 &&
            node->src[1]->type == GGML_TYPE_F32) {
            ggml_tensor * a = node->src[0];
            auto it = S.transposed.find(a);
            ggml_tensor * at = it != S.transposed.end() ? it->second : transposed_cont(a);
            ggml_tensor * bt = transposed_cont(node->src[1]);
            if (can_mul_mat(at, bt) && at->ne[1] == node->ne[0] && bt->ne[1] == node->ne[1] && bt->ne[2] == node->ne[2] &&
                bt->ne[3] == node->ne[3]) {
                node->op = GGML_OP_MUL_MAT;
                node->src[0] = at;
                node->src[1] = bt;
                ++rewritten;
            }
        } else if (node->op == GGML_OP_OUT_PROD) {
            // a frozen weight converted to bf16: the product with its bf16 transpose
            auto it = S.transposed.find(node->src[0]);
            ggml_tensor * tr = node->src[1];
            if (it != S.transposed.end() && tr->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(tr->src[0]) && can_mul_mat(it->second, tr->src[0])) {
                node->op = GGML_OP_MUL_MAT;
                node->src[0] = it->second;
                node->src[1] = tr->src[0];
                ++rewritten;
            }
        }
        ggml_build_forward_expand(g2, node);
    }
    return g2;
}

// ----------------------------------------------------------------------------------------
// one graph evaluation: forward (+ backward, + optimizer step)
// ----------------------------------------------------------------------------------------

struct AdamW {
    float lr, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.0f;
};

struct EvalJob {
    Session * S;
    const Seq * seq;
    bool backward = false;
    const AdamW * step = nullptr;  // non-null: apply the optimizer after the backward pass
    // built tensors
    ggml_context * uctx = nullptr;
    ggml_tensor * idx = nullptr;
    ggml_tensor * w = nullptr;
    ggml_tensor * nll = nullptr;
    ggml_tensor * loss = nullptr;
    ggml_tensor * adamw_params = nullptr;
    std::vector<int32_t> out_rows;  // row j of the logits -> index into seq->rows (or -1: not weighted)
    // fused path: every output row has the same weight w, so the loss is w*k*mean cross entropy
    // (ggml_cross_entropy_loss: one pass forward and backward instead of ~15 over V x k)
    bool fused = false;
    float fused_w = 0.0f;
    ggml_tensor * labels = nullptr;
    // results
    std::vector<float> nll_rows;  // per seq row
    float loss_value = 0.0f;
    std::vector<std::vector<float>> grads;  // when capture_grads
    bool capture_grads = false;
};

static ggml_cgraph * job_build(void * ud, ggml_cgraph * gf, ggml_tensor * logits) {
    auto & J = *(EvalJob *) ud;
    auto & S = *J.S;
    const int64_t V = logits->ne[0];
    const int64_t k = logits->ne[1];
    const size_t gsize = ggml_graph_size(gf);
    // room for the loss, the backward graph, and the rewritten graph with its copies (rewrite_out_prods)
    ggml_init_params ip = {(gsize * 2 + 8192) * ggml_tensor_overhead() + ggml_graph_overhead_custom(gsize, true) +
                               ggml_graph_overhead_custom(gsize + 4096, false) + (1 << 16), nullptr, true};
    J.uctx = ggml_init(ip);
    ggml_context * c = J.uctx;

    ggml_tensor * x = logits;
    if (!ggml_is_contiguous(x)) x = ggml_cont(c, x);

    if (J.fused) {
        J.labels = ggml_new_tensor_2d(c, GGML_TYPE_F32, V, k);
        ggml_set_name(J.labels, "steer labels");
        ggml_set_input(J.labels);
        ggml_tensor * ce = ggml_cross_entropy_loss(c, x, J.labels);  // mean over the k rows
        J.loss = ggml_scale(c, ce, J.fused_w * (float) k);
        ggml_set_name(J.loss, "steer loss");
        ggml_set_output(J.loss);
        J.nll = nullptr;
    } else {
    J.idx = ggml_new_tensor_1d(c, GGML_TYPE_I32, k);
    ggml_set_name(J.idx, "steer target index");
    ggml_set_input(J.idx);
    J.w = ggml_new_tensor_2d(c, GGML_TYPE_F32, 1, k);
    ggml_set_name(J.w, "steer weights");
    ggml_set_input(J.w);

    // per-row shift m = row mean ([1, k]); d(loss)/dm is 0 analytically. (ggml_mean's backward
    // assumes a scalar result, so the mean is built from sum_rows and scale.)
    ggml_tensor * m = ggml_scale(c, ggml_sum_rows(c, x), 1.0f / (float) V);
    // explicit repeat: the backward pass of a broadcasting sub does not reduce the gradient
    ggml_tensor * d = ggml_sub(c, x, ggml_repeat(c, m, x));  // [V, k]
    ggml_tensor * e = ggml_exp(c, d);
    ggml_tensor * s = ggml_sum_rows(c, e);      // [1, k]
    ggml_tensor * lse = ggml_log(c, s);
    ggml_tensor * t = ggml_get_rows(c, ggml_reshape_2d(c, d, 1, V * k), J.idx);  // [1, k]: d[y]
    J.nll = ggml_sub(c, lse, t);                // [1, k]
    ggml_set_name(J.nll, "steer nll");
    ggml_set_output(J.nll);
    J.loss = ggml_sum(c, ggml_mul(c, J.nll, J.w));
    ggml_set_name(J.loss, "steer loss");
    ggml_set_output(J.loss);
    }

    ggml_cgraph * gb = ggml_new_graph_custom(c, gsize, J.backward);
    ggml_graph_cpy(gf, gb);  // keeps the KV-cache writes, which are not ancestors of the logits
    ggml_build_forward_expand(gb, J.loss);
    prepare_weights(S, gf, J.backward);
    if (!J.backward) {
        if (S.amx) amx_rewrite(S, gb);
        return gb;
    }

    ggml_set_loss(J.loss);
    const int n_nodes = ggml_graph_n_nodes(gb);
    std::vector<ggml_tensor *> accs(n_nodes, nullptr);
    int n_found = 0;
    for (int i = 0; i < n_nodes; ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        auto it = S.param_index.find(node);
        if (it != S.param_index.end()) { accs[i] = S.params[it->second].acc; ++n_found; }
        else if (node == J.loss) accs[i] = S.loss_seed;
    }
    if (n_found != (int) S.params.size()) {
        fprintf(stderr, "steer-train: %d of %zu adapter tensors are in the graph\n", n_found, S.params.size());
        return nullptr;
    }
    ggml_build_backward_expand(c, gb, accs.data());

    if (J.step) {
        J.adamw_params = ggml_new_tensor_1d(c, GGML_TYPE_F32, 7);
        ggml_set_name(J.adamw_params, "adamw params");
        ggml_set_input(J.adamw_params);
        for (auto & p : S.params) {
            ggml_tensor * g = ggml_graph_get_grad(gb, p.t);
            if (!g) continue;  // no gradient reaches it (e.g. attn_k/attn_v through the KV cache)
            ggml_build_forward_expand(gb, ggml_opt_step_adamw(c, p.t, g, p.m, p.v, J.adamw_params));
        }
    }

    int n_rewritten = 0, n_amx = 0;
    if (S.amx) n_amx = amx_rewrite(S, gb);
    if (!S.opt.out_prod_backward && !S.on_gpu) gb = rewrite_out_prods(S, c, gb, n_rewritten);
    if (!S.backward_reported) {
        S.backward_reported = true;
        size_t bytes = 0;
        for (auto & [w, t] : S.transposed) bytes += ggml_nbytes(t);
        for (auto & [w, m] : S.amx_bwd) bytes += m.bytes;
        int n_left = 0;
        for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) n_left += ggml_graph_node(gb, i)->op == GGML_OP_OUT_PROD;
        emit(fmt("{\"type\":\"backward\",\"matmuls\":%d,\"amxProducts\":%d,\"outProds\":%d,\"transposedBytes\":%zu,\"computeType\":\"%s\"}",
                 n_rewritten, n_amx, n_left, bytes, S.amx ? "amx" : S.bf16 ? "bf16" : "f32"));
    }
    return gb;
}

static bool job_inputs(void * ud) {
    auto & J = *(EvalJob *) ud;
    auto & S = *J.S;
    const int64_t k = (int64_t) J.out_rows.size();
    const int64_t V = S.n_vocab;
    if (J.fused) {
        ggml_backend_tensor_memset(J.labels, 0, 0, ggml_nbytes(J.labels));
        const float one = 1.0f;
        for (int64_t j = 0; j < k; ++j) {
            const llama_token target = J.seq->rows[J.out_rows[j]].target;
            ggml_backend_tensor_set(J.labels, &one, (size_t) (j * V + target) * sizeof(float), sizeof(float));
        }
    } else {
    std::vector<int32_t> idx(k);
    std::vector<float> w(k);
    for (int64_t j = 0; j < k; ++j) {
        int32_t r = J.out_rows[j];
        llama_token target = r >= 0 ? J.seq->rows[r].target : 0;
        idx[j] = (int32_t) (j * V + target);
        w[j] = r >= 0 ? J.seq->rows[r].weight : 0.0f;
    }
    ggml_backend_tensor_set(J.idx, idx.data(), 0, ggml_nbytes(J.idx));
    ggml_backend_tensor_set(J.w, w.data(), 0, ggml_nbytes(J.w));
    }
    if (J.backward) {
        const float one = 1.0f;
        ggml_backend_tensor_set(S.loss_seed, &one, 0, sizeof(float));
    }
    if (J.adamw_params) {
        const int64_t iter = S.opt_iter + 1;
        const AdamW & a = *J.step;
        float p[7] = {a.lr, a.beta1, a.beta2, a.eps, a.wd,
                      1.0f / (1.0f - powf(a.beta1, (float) iter)), 1.0f / (1.0f - powf(a.beta2, (float) iter))};
        ggml_backend_tensor_set(J.adamw_params, p, 0, sizeof(p));
    }
    return true;
}

static bool job_outputs(void * ud) {
    auto & J = *(EvalJob *) ud;
    auto & S = *J.S;
    ggml_backend_tensor_get(J.loss, &J.loss_value, 0, sizeof(float));
    J.nll_rows.assign(J.seq->rows.size(), NAN);
    if (J.fused) {
        // only the sum is known: spread the mean over the rows (used for reporting only)
        const float mean = J.loss_value / (J.fused_w * (float) J.out_rows.size());
        for (int32_t r : J.out_rows) J.nll_rows[r] = mean;
    } else {
        const int64_t k = J.nll->ne[1];
        std::vector<float> nll(k);
        ggml_backend_tensor_get(J.nll, nll.data(), 0, ggml_nbytes(J.nll));
        for (int64_t j = 0; j < k; ++j) if (J.out_rows[j] >= 0) J.nll_rows[J.out_rows[j]] = nll[j];
    }
    if (J.capture_grads) {
        J.grads.resize(S.params.size());
        for (size_t i = 0; i < S.params.size(); ++i) {
            J.grads[i].resize(ggml_nelements(S.params[i].acc));
            ggml_backend_tensor_get(S.params[i].acc, J.grads[i].data(), 0, ggml_nbytes(S.params[i].acc));
        }
    }
    return true;
}

// Evaluates one sequence; with backward, adds its gradients to the accumulators; with step,
// then applies AdamW and clears the accumulators.
static void run_seq(Session & S, EvalJob & J) {
    const Seq & seq = *J.seq;
    std::vector<int8_t> outputs(seq.tokens.size(), 0);
    for (auto & r : seq.rows) outputs[r.pos] = 1;
    if (S.opt.all_outputs) std::fill(outputs.begin(), outputs.end(), 1);
    J.out_rows.clear();
    std::vector<int32_t> row_of_pos(seq.tokens.size(), -1);
    for (size_t r = 0; r < seq.rows.size(); ++r) row_of_pos[seq.rows[r].pos] = (int32_t) r;
    for (size_t p = 0; p < seq.tokens.size(); ++p) if (outputs[p]) J.out_rows.push_back(row_of_pos[p]);
    if (J.out_rows.empty()) throw fatal("internal", "a sequence without weighted positions");
    J.fused = false;
    if (J.backward && !S.opt.generic_loss) {
        bool uniform = true;
        for (int32_t r : J.out_rows) uniform = uniform && r >= 0 && seq.rows[r].weight == seq.rows[J.out_rows[0]].weight;
        if (uniform && seq.rows[J.out_rows[0]].weight != 0.0f) {
            J.fused = true;
            J.fused_w = seq.rows[J.out_rows[0]].weight;
        }
    }

    llama_steer_callbacks cb = {job_build, job_inputs, job_outputs, &J};
    int32_t rc = llama_steer_eval(S.ctx, seq.tokens.data(), outputs.data(), (int32_t) seq.tokens.size(), &cb);
    if (J.uctx) { ggml_free(J.uctx); J.uctx = nullptr; }
    if (rc != 0) throw fatal("internal", fmt("graph evaluation failed (%d)", rc));
    if (J.step) {
        S.opt_iter++;
        ggml_backend_buffer_clear(S.buf_acc, 0);
    }
}

// forward only: per-row nll of a sequence
static std::vector<float> forward_nll(Session & S, const Seq & seq) {
    EvalJob J;
    J.S = &S;
    J.seq = &seq;
    run_seq(S, J);
    return J.nll_rows;
}

// ----------------------------------------------------------------------------------------
// modes
// ----------------------------------------------------------------------------------------

static std::vector<HostLora> fresh_loras(const BaseInfo & base, const Options & o, std::mt19937 & rng) {
    std::vector<HostLora> out;
    std::normal_distribution<float> nb(0.0f, o.init_b_std > 0 ? o.init_b_std : 1.0f);
    for (auto & t : base.targets) {
        HostLora l;
        l.name = t.name;
        l.n_in = t.n_in;
        l.n_out = t.n_out;
        l.rank = o.rank;
        // A ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (kaiming-uniform with a = sqrt(5), as PEFT); B = 0
        std::uniform_real_distribution<float> ua(-1.0f / sqrtf((float) t.n_in), 1.0f / sqrtf((float) t.n_in));
        l.a.resize(t.n_in * o.rank);
        for (auto & v : l.a) v = ua(rng);
        l.b.assign(o.rank * t.n_out, 0.0f);
        if (o.init_b_std > 0) for (auto & v : l.b) v = nb(rng);
        out.push_back(std::move(l));
    }
    return out;
}

static std::vector<HostLora> read_loras(Session & S, const BaseInfo & base) {
    std::map<std::string, std::pair<ggml_tensor *, ggml_tensor *>> ab;
    llama_steer_adapter_tensors(S.adapter, [](void * ud, const char * name, ggml_tensor * a, ggml_tensor * b) {
        (*(std::map<std::string, std::pair<ggml_tensor *, ggml_tensor *>> *) ud)[name] = {a, b};
    }, &ab);
    std::vector<HostLora> out;
    for (auto & [name, t] : ab) {
        HostLora l;
        l.name = name;
        l.n_in = t.first->ne[0];
        l.rank = t.first->ne[1];
        l.n_out = t.second->ne[1];
        l.a.resize(ggml_nelements(t.first));
        l.b.resize(ggml_nelements(t.second));
        ggml_backend_tensor_get(t.first, l.a.data(), 0, ggml_nbytes(t.first));
        ggml_backend_tensor_get(t.second, l.b.data(), 0, ggml_nbytes(t.second));
        for (float v : l.a) if (!std::isfinite(v)) throw fatal("diverged", "training diverged: " + name + ".lora_a has non-finite values");
        for (float v : l.b) if (!std::isfinite(v)) throw fatal("diverged", "training diverged: " + name + ".lora_b has non-finite values");
        out.push_back(std::move(l));
    }
    (void) base;
    return out;
}

static llama_token end_token(const llama_vocab * vocab) {
    llama_token t = llama_vocab_eot(vocab);
    if (t == LLAMA_TOKEN_NULL) t = llama_vocab_eos(vocab);
    return t;
}

static int mode_eval(Options & o) {
    BaseInfo base;  // eval may run on any model node-llama-cpp runs, quantized included
    Session S;
    S.opt = o;
    load_backends(o);
    // vocab size for validation comes from the loaded model
    std::vector<Pair> pairs;
    {
        // load once to learn the vocab, then size the context by the data
        llama_model_params mp = llama_model_default_params();
        mp.vocab_only = true;
        llama_model * vm = llama_model_load_from_file(o.model.c_str(), mp);
        if (!vm) throw fatal("bad_model", "cannot load the base model " + o.model);
        pairs = load_data(o.data, llama_vocab_n_tokens(llama_model_get_vocab(vm)));
        llama_model_free(vm);
    }
    open_session(S, base, nullptr, max_seq_len(pairs), false);
    const llama_token end = end_token(S.vocab);
    auto t0 = std::chrono::steady_clock::now();
    int idx = 0;
    for (auto & p : pairs) {
        std::string line = fmt("{\"type\":\"eval\",\"index\":%d,\"line\":%d", idx++, p.line);
        if (p.raw) {
            Seq s = raw_seq(p, 1.0f);
            auto nll = forward_nll(S, s);
            double l = 0, wsum = 0;
            for (size_t i = 0; i < nll.size(); ++i) { l += s.rows[i].weight * nll[i]; wsum += fabs(s.rows[i].weight); }
            line += ",\"loss\":" + json_num(l) + ",\"weight\":" + json_num(wsum);
        } else {
            Seq c = span_seq(p.prompt, p.chosen, 1.0f, end);
            auto nc = forward_nll(S, c);
            double sc = 0;
            for (size_t i = 0; i + 1 < nc.size(); ++i) sc -= nc[i];
            line += ",\"chosenLogprob\":" + json_num(sc) + ",\"chosenTokens\":" + std::to_string(p.chosen.size());
            line += ",\"chosenMeanLogprob\":" + json_num(sc / p.chosen.size());
            line += ",\"endLogprob\":" + json_num(-nc.back());
            if (!p.rejected.empty()) {
                Seq r = span_seq(p.prompt, p.rejected, 1.0f);
                auto nr = forward_nll(S, r);
                double sr = 0;
                for (float v : nr) sr -= v;
                line += ",\"rejectedLogprob\":" + json_num(sr) + ",\"rejectedTokens\":" + std::to_string(p.rejected.size());
                line += ",\"rejectedMeanLogprob\":" + json_num(sr / p.rejected.size());
            }
        }
        emit(line + "}");
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    emit(fmt("{\"type\":\"done\",\"pairs\":%zu,\"seconds\":%s}", pairs.size(), json_num(secs).c_str()));
    return 0;
}

static std::vector<Pair> load_pairs_for(const Options & o) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * vm = llama_model_load_from_file(o.model.c_str(), mp);
    if (!vm) throw fatal("bad_model", "cannot load the base model " + o.model);
    auto pairs = load_data(o.data, llama_vocab_n_tokens(llama_model_get_vocab(vm)));
    llama_model_free(vm);
    return pairs;
}

// Sequences of one example for the SFT part (weights already scaled).
static Seq sft_seq(const Pair & p, float w) {
    return p.raw ? raw_seq(p, w) : span_seq(p.prompt, p.chosen, w);
}

static int mode_grad_check(Options & o) {
    BaseInfo base = inspect_base(o.model, split(o.targets, ','));
    load_backends(o);
    std::vector<Pair> pairs = load_pairs_for(o);
    std::mt19937 rng(o.seed);
    if (o.init_b_std <= 0) o.init_b_std = 0.05f;
    auto loras = fresh_loras(base, o, rng);
    Session S;
    S.opt = o;
    open_session(S, base, &loras, max_seq_len(pairs), true);

    // the examples' total loss, normalised by the total weight (as in training)
    std::vector<Seq> seqs;
    double wsum = 0;
    for (auto & p : pairs) {
        Seq s = sft_seq(p, 1.0f);
        for (auto & r : s.rows) wsum += fabs(r.weight);
        seqs.push_back(std::move(s));
    }
    for (auto & s : seqs) for (auto & r : s.rows) r.weight /= (float) wsum;

    // analytic, twice through the training path (accumulate over all examples, then a
    // negligible optimizer step which must clear the accumulators): both rounds must agree
    AdamW tiny;
    tiny.lr = 1e-30f;
    std::vector<std::vector<float>> analytic[2];
    double loss0 = 0;
    for (int round = 0; round < 2; ++round) {
        double loss = 0;
        for (size_t i = 0; i < seqs.size(); ++i) {
            EvalJob J;
            J.S = &S;
            J.seq = &seqs[i];
            J.backward = true;
            bool last = i + 1 == seqs.size();
            J.step = last ? &tiny : nullptr;
            J.capture_grads = last;
            run_seq(S, J);
            loss += J.loss_value;
            if (last) analytic[round] = J.grads;
        }
        if (round == 0) loss0 = loss;
    }
    auto total_loss = [&]() {
        double l = 0;
        for (auto & s : seqs) {
            auto nll = forward_nll(S, s);
            for (size_t i = 0; i < nll.size(); ++i) l += (double) s.rows[i].weight * nll[i];
        }
        return l;
    };
    emit(fmt("{\"type\":\"start\",\"mode\":\"grad-check\",\"loss\":%s,\"params\":%zu}", json_num(loss0).c_str(), S.params.size()));
    for (size_t pi = 0; pi < S.params.size(); ++pi) {
        Param & P = S.params[pi];
        const auto & g = analytic[0][pi];
        const auto & g2 = analytic[1][pi];
        double gmax = 0, rdiff = 0, norm = 0;
        size_t imax = 0;
        for (size_t j = 0; j < g.size(); ++j) {
            norm += (double) g[j] * g[j];
            if (fabs(g[j]) > gmax) { gmax = fabs(g[j]); imax = j; }
            rdiff = std::max(rdiff, (double) fabs(g[j] - g2[j]));
        }
        // numeric check on the entry with the largest gradient (or entry 0 when all are zero)
        std::vector<float> data(ggml_nelements(P.t));
        ggml_backend_tensor_get(P.t, data.data(), 0, ggml_nbytes(P.t));
        const float orig = data[imax];
        auto at = [&](float v) {
            ggml_backend_tensor_set(P.t, &v, imax * sizeof(float), sizeof(float));
            return total_loss();
        };
        double lp = at(orig + o.eps);
        double lm = at(orig - o.eps);
        ggml_backend_tensor_set(P.t, &orig, imax * sizeof(float), sizeof(float));
        double numeric = (lp - lm) / (2.0 * o.eps);
        emit(fmt("{\"type\":\"grad\",\"name\":%s,\"index\":%zu,\"analytic\":%s,\"analyticRepeat\":%s,\"numeric\":%s,\"maxAbsGrad\":%s,\"maxRepeatDiff\":%s,\"norm\":%s}",
                 json_str(P.name).c_str(), imax, json_num(g[imax]).c_str(), json_num(g2[imax]).c_str(), json_num(numeric).c_str(),
                 json_num(gmax).c_str(), json_num(rdiff).c_str(), json_num(sqrt(norm)).c_str()));
    }
    emit("{\"type\":\"done\"}");
    return 0;
}

static float lr_at(const Options & o, int64_t step, int64_t total) {
    const int64_t warm = o.warmup >= 1 ? (int64_t) o.warmup : (int64_t) std::ceil(o.warmup * total);
    if (step <= warm && warm > 0) return o.lr * (float) step / (float) warm;
    if (o.schedule == "constant" || total <= warm) return o.lr;
    const double p = (double) (step - warm) / (double) std::max<int64_t>(1, total - warm);
    if (o.schedule == "linear") return (float) (o.lr * std::max(0.0, 1.0 - p)) + 1e-12f;
    return (float) (o.lr * 0.5 * (1.0 + cos(M_PI * std::min(1.0, p)))) + 1e-12f;
}

static int mode_train(Options & o) {
    BaseInfo base = inspect_base(o.model, split(o.targets, ','));
    load_backends(o);
    std::vector<Pair> pairs = load_pairs_for(o);
    const bool use_sft = o.objective != "dpo";
    const bool use_dpo = o.objective != "sft";
    if (use_dpo) {
        size_t with_rejected = 0;
        for (auto & p : pairs) with_rejected += !p.raw && !p.rejected.empty();
        if (with_rejected == 0) throw fatal("bad_data", "objective " + o.objective + " needs pairs with a non-empty rejected span");
    }
    std::mt19937 rng(o.seed);
    std::vector<HostLora> loras;
    Session S;
    S.opt = o;
    if (o.adapter.empty()) {
        loras = fresh_loras(base, o, rng);
        open_session(S, base, &loras, max_seq_len(pairs), true);
    } else {
        open_session(S, base, nullptr, max_seq_len(pairs), true);  // continue training an adapter
    }

    // reference log-probs (adapter scale 0 = the base model) of both spans, once
    std::vector<double> ref_c(pairs.size(), 0), ref_r(pairs.size(), 0);
    if (use_dpo) {
        S.set_adapter_scale(0.0f);
        for (size_t i = 0; i < pairs.size(); ++i) {
            auto & p = pairs[i];
            if (p.raw || p.rejected.empty()) continue;
            for (float v : forward_nll(S, span_seq(p.prompt, p.chosen, 1.0f))) ref_c[i] -= v;
            for (float v : forward_nll(S, span_seq(p.prompt, p.rejected, 1.0f))) ref_r[i] -= v;
        }
        S.set_adapter_scale(1.0f);
    }

    const int64_t steps_per_epoch = ((int64_t) pairs.size() + o.grad_accum - 1) / o.grad_accum;
    int64_t total_steps = steps_per_epoch * o.epochs;
    if (o.max_steps > 0) total_steps = std::min<int64_t>(total_steps, o.max_steps);
    emit(fmt("{\"type\":\"start\",\"objective\":%s,\"pairs\":%zu,\"steps\":%lld,\"stepsPerEpoch\":%lld,\"epochs\":%d,\"params\":%zu,\"trainableParameters\":%lld,\"targets\":%zu,\"threads\":%d,\"gpu\":%s}",
             json_str(o.objective).c_str(), pairs.size(), (long long) total_steps, (long long) steps_per_epoch, o.epochs,
             S.params.size(), (long long) [&] { int64_t n = 0; for (auto & p : S.params) n += ggml_nelements(p.t); return n; }(),
             base.targets.size(), o.threads, has_gpu() ? "true" : "false"));

    auto t_start = std::chrono::steady_clock::now();
    int64_t step = 0;
    double tokens_done = 0;
    std::vector<size_t> order(pairs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    bool stop = false;
    for (int epoch = 1; epoch <= o.epochs && !stop; ++epoch) {
        std::shuffle(order.begin(), order.end(), rng);
        double epoch_loss = 0, epoch_dpo = 0;
        int64_t epoch_steps = 0;
        for (size_t g0 = 0; g0 < order.size() && !stop; g0 += o.grad_accum) {
            const size_t g1 = std::min(order.size(), g0 + o.grad_accum);
            ++step;
            AdamW adam;
            adam.lr = lr_at(o, step, total_steps);
            adam.wd = o.weight_decay;
            // the sequences of this optimizer step, with normalised weights
            std::vector<Seq> seqs;
            double n_tok = 0, n_dpo = 0;
            for (size_t gi = g0; gi < g1; ++gi) {
                auto & p = pairs[order[gi]];
                if (use_sft) n_tok += p.raw ? [&] { double s = 0; for (size_t i = 1; i < p.weights.size(); ++i) s += fabs(p.weights[i]); return s; }() : (double) p.chosen.size();
                if (use_dpo && !p.raw && !p.rejected.empty()) n_dpo += 1;
            }
            double dpo_loss = 0;
            for (size_t gi = g0; gi < g1; ++gi) {
                const size_t pi = order[gi];
                auto & p = pairs[pi];
                float w_sft = use_sft && n_tok > 0 ? (float) (o.sft_weight / n_tok) : 0.0f;
                if (use_dpo && !p.raw && !p.rejected.empty()) {
                    // Δ with the current adapter (recomputed every step: one extra forward pass per sequence)
                    Seq c = span_seq(p.prompt, p.chosen, 1.0f);
                    Seq r = span_seq(p.prompt, p.rejected, 1.0f);
                    double lc = 0, lr = 0;
                    for (float v : forward_nll(S, c)) lc -= v;
                    for (float v : forward_nll(S, r)) lr -= v;
                    const double delta = (lc - ref_c[pi]) - (lr - ref_r[pi]);
                    const double sig = 1.0 / (1.0 + exp(o.beta * delta));  // σ(−βΔ)
                    dpo_loss += -log(std::max(1e-30, 1.0 - sig));           // −log σ(βΔ)
                    const float w_dpo = (float) (o.beta * sig / n_dpo);
                    for (auto & row : c.rows) row.weight = w_sft + w_dpo;
                    for (auto & row : r.rows) row.weight = -w_dpo;
                    seqs.push_back(std::move(c));
                    seqs.push_back(std::move(r));
                } else if (w_sft > 0) {
                    seqs.push_back(sft_seq(p, w_sft));
                }
            }
            double step_loss = 0, step_sft_nll = 0;
            for (size_t si = 0; si < seqs.size(); ++si) {
                EvalJob J;
                J.S = &S;
                J.seq = &seqs[si];
                J.backward = true;
                J.step = si + 1 == seqs.size() ? &adam : nullptr;
                run_seq(S, J);
                step_loss += J.loss_value;
                for (size_t ri = 0; ri < J.nll_rows.size(); ++ri) if (seqs[si].rows[ri].weight > 0 && use_sft) step_sft_nll += J.nll_rows[ri];
                tokens_done += seqs[si].tokens.size();
            }
            if (!std::isfinite(step_loss)) throw fatal("diverged", fmt("the loss is not finite at step %lld (try a lower --lr)", (long long) step));
            const double reported = use_sft ? step_sft_nll / std::max(1.0, n_tok) : dpo_loss / std::max(1.0, n_dpo);
            epoch_loss += reported;
            epoch_dpo += n_dpo > 0 ? dpo_loss / n_dpo : 0;
            ++epoch_steps;
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
            const double eta = secs / step * (total_steps - step);
            std::string line = fmt("{\"type\":\"progress\",\"step\":%lld,\"steps\":%lld,\"epoch\":%d,\"loss\":%s,\"lr\":%s,\"tokensPerSecond\":%s,\"etaSeconds\":%s",
                                   (long long) step, (long long) total_steps, epoch, json_num(reported).c_str(), json_num(adam.lr).c_str(),
                                   json_num(tokens_done / std::max(1e-9, secs)).c_str(), json_num(eta).c_str());
            if (use_dpo) line += ",\"dpoLoss\":" + json_num(n_dpo > 0 ? dpo_loss / n_dpo : NAN);
            if (use_sft && use_dpo) line += ",\"sftNll\":" + json_num(step_sft_nll / std::max(1.0, n_tok));
            emit(line + "}");
            if (o.max_steps > 0 && step >= o.max_steps) stop = true;
        }
        emit(fmt("{\"type\":\"epoch\",\"epoch\":%d,\"loss\":%s%s}", epoch, json_num(epoch_loss / std::max<int64_t>(1, epoch_steps)).c_str(),
                 use_dpo ? (",\"dpoLoss\":" + json_num(epoch_dpo / std::max<int64_t>(1, epoch_steps))).c_str() : ""));
    }

    auto trained = read_loras(S, base);
    write_adapter(o.out, base.arch, o.alpha, trained,
                  {{"steerbot.objective", o.objective}, {"steerbot.targets", o.targets}, {"steerbot.base", o.model}});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    emit(fmt("{\"type\":\"done\",\"out\":%s,\"steps\":%lld,\"seconds\":%s,\"tokensPerSecond\":%s}", json_str(o.out).c_str(), (long long) step,
             json_num(secs).c_str(), json_num(tokens_done / std::max(1e-9, secs)).c_str()));
    return 0;
}

// ----------------------------------------------------------------------------------------
// peak: what this CPU's vector units deliver (for the benchmark's "fraction of peak")
// ----------------------------------------------------------------------------------------
//
// Nominal peaks (cores × clock × FLOPs/cycle) overstate what shared or virtual cores deliver
// (fewer FMA ports, lower clocks under AVX-512): measure independent FMA chains instead.

#if defined(__x86_64__)
// something of the accumulators to return, so the loops are not optimized away
// (not _mm512_reduce_add_ps: GCC 12's header warns about it)
__attribute__((target("avx512f"))) static double sink_lanes(const __m512 (&acc)[12]) {
    alignas(64) float b[16];
    float s = 0;
    for (int i = 0; i < 12; ++i) { _mm512_store_ps(b, acc[i]); s += b[0]; }
    return s;
}

__attribute__((target("avx512f"))) static double fma_f32_avx512(int64_t iters) {
    __m512 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps((float) i);
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    return sink_lanes(acc);
}

__attribute__((target("avx2,fma"))) static double fma_f32_avx2(int64_t iters) {
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps((float) i);
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float b[8], s = 0;
    for (int i = 0; i < 12; ++i) { _mm256_storeu_ps(b, acc[i]); s += b[0]; }
    return s;
}

__attribute__((target("avx512f,avx512bf16"))) static double dp_bf16_avx512(int64_t iters) {
    __m512 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps((float) i);
    const __m512bh x = (__m512bh) _mm512_set1_epi16(0x3f80), y = (__m512bh) _mm512_set1_epi16(0x3380);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    return sink_lanes(acc);
}

__attribute__((target("amx-tile,amx-bf16"))) static double tiles_bf16_amx(int64_t iters) {
    const TileConfig cfg;
    _tile_loadconfig(&cfg);
    alignas(64) static thread_local uint16_t a[16 * 32], b[16 * 32];
    alignas(64) static thread_local float c[16 * 16];
    for (int i = 0; i < 16 * 32; ++i) { a[i] = 0x3f80; b[i] = 0x3380; }
    _tile_loadd(4, a, 64);
    _tile_loadd(5, b, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (int64_t n = 0; n < iters / 8; ++n) {
        _tile_dpbf16ps(0, 4, 5); _tile_dpbf16ps(1, 4, 5); _tile_dpbf16ps(2, 4, 5); _tile_dpbf16ps(3, 4, 5);
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0];
}
#endif

// GFLOP/s of `kernel` (flops_per_iter per inner iteration) on n threads at once
static double measure_peak(int threads, double (*kernel)(int64_t), double flops_per_iter) {
    const int64_t iters = 20'000'000;
    std::vector<std::thread> th;
    std::vector<double> sink(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) th.emplace_back([&, t] { sink[t] = kernel(iters); });
    for (auto & x : th) x.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return threads * (double) iters * flops_per_iter / secs / 1e9;
}

static int mode_peak(const Options & o) {
    double f32 = 0, bf16 = 0, amx = 0;
    std::string isa = "none";
#if defined(__x86_64__)
    for (int rep = 0; rep < 3; ++rep) {  // best of three: the first wakes the clocks up
        if (__builtin_cpu_supports("avx512f")) { f32 = std::max(f32, measure_peak(o.threads, fma_f32_avx512, 12 * 32)); isa = "avx512"; }
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { f32 = std::max(f32, measure_peak(o.threads, fma_f32_avx2, 12 * 16)); isa = "avx2"; }
        if (__builtin_cpu_supports("avx512bf16")) bf16 = std::max(bf16, measure_peak(o.threads, dp_bf16_avx512, 12 * 64));
        // 4 tile products of 16x32 by 32x16 per iteration of iters/8
        if (amx_bf16_available()) amx = std::max(amx, measure_peak(o.threads, tiles_bf16_amx, 4.0 * 16 * 16 * 32 * 2 / 8));
    }
#endif
    emit(fmt("{\"type\":\"peak\",\"threads\":%d,\"isa\":\"%s\",\"f32GflopsPerSecond\":%s,\"bf16GflopsPerSecond\":%s,\"amxBf16GflopsPerSecond\":%s}",
             o.threads, isa.c_str(), f32 > 0 ? json_num(f32).c_str() : "null", bf16 > 0 ? json_num(bf16).c_str() : "null",
             amx > 0 ? json_num(amx).c_str() : "null"));
    return 0;
}

int main(int argc, char ** argv) {
    try {
        Options o = parse_args(argc, argv);
        llama_log_set(log_cb, nullptr);
        llama_backend_init();
        int rc = 0;
        if (o.mode == "train") rc = mode_train(o);
        else if (o.mode == "eval") rc = mode_eval(o);
        else if (o.mode == "peak") rc = mode_peak(o);
        else rc = mode_grad_check(o);
        llama_backend_free();
        return rc;
    } catch (const fatal & e) {
        emit(fmt("{\"type\":\"error\",\"code\":%s,\"message\":%s}", json_str(e.code).c_str(), json_str(e.what()).c_str()));
        return 2;
    } catch (const std::exception & e) {
        emit(fmt("{\"type\":\"error\",\"code\":\"internal\",\"message\":%s}", json_str(e.what()).c_str()));
        return 3;
    }
}
