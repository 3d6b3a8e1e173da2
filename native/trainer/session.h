// steer-train: the session: ggml backends, the base model, the adapter (a file, or fresh A/B),
// the llama context, the trainable tensors with their gradient accumulators and AdamW moments,
// and the per-run state of the frozen-weight products (frozen-weights.cpp).
#pragma once

#include "adapter-gguf.h"
#include "options.h"
#include "x86-kernels.h"

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace steer {

struct Param {
    std::string name;   // tensor name (…lora_a / …lora_b)
    ggml_tensor * t;    // the adapter's tensor (trainable)
    ggml_tensor * acc;  // gradient accumulator
    ggml_tensor * m;    // AdamW moments
    ggml_tensor * v;
};

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
    // transposed copies of the frozen weights (see make_transposed): gradients through them
    // become ordinary matrix products instead of ggml's OUT_PROD
    std::map<const ggml_tensor *, ggml_tensor *> transposed;
    std::vector<std::pair<ggml_context *, ggml_backend_buffer_t>> transposed_bufs;
    bool backward_reported = false;
    bool bf16 = false;               // frozen F32 matrices multiplied as BF16 (see convert_weights)
    bool weights_prepared = false;
    bool on_gpu = false;             // layers offloaded: leave the backward graph as ggml builds it
    bool amx = false;                // frozen products on the AMX tile unit (see amx_gemm)
    bool mmapped = false;            // the model's weights are a mapping of its file
    bool trainable = false;          // a train / grad-check session (quantized weights get dequantized)
    std::map<const ggml_tensor *, AmxMatrix> amx_fwd;  // W packed, by weight
    std::map<const ggml_tensor *, AmxMatrix> amx_bwd;  // Wᵀ packed, by weight
    AmxShared amx_shared;
    std::deque<AmxOp> amx_ops;       // userdata of the current graph's AMX nodes

    ~Session();
    void set_adapter_scale(float scale);
};

// loads the ggml backends once (from --backend-dir, else ggml's default search)
void load_backends(const Options & o);
bool has_gpu();

// Loads the model, the adapter (file, or fresh A random / B zero), and a context for n_ctx tokens.
void open_session(Session & S, const BaseInfo & base, const std::vector<HostLora> * fresh, size_t n_ctx_needed, bool trainable);

}  // namespace steer
