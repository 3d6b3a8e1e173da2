// steer-train: the command line (mode and options), its usage text and its checks.
#pragma once

#include <string>

#ifndef STEER_GGML_LIB_DIR
#define STEER_GGML_LIB_DIR ""
#endif

namespace steer {

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
    // SFT on a span stops while the adapter already writes it with at least this geometric-mean
    // token probability (1: never stops)
    float learned_at = 1.0f;
    // retention: KL(base || adapter) on positions inside each steer's prompt (its context and the
    // accepted prefix, text the steer says nothing against), against the base's top-k distribution
    float kl_weight = 0.0f;   // 0: off
    int kl_rows = 32;         // prompt positions per steer (a fixed random subset)
    int kl_top = 128;         // base probabilities kept per position (renormalised)
    int grad_accum = 4;     // pairs per optimizer step
    int seed = 42;
    int threads = 0;
    int gpu_layers = -1;    // -1: all when a GPU backend is present
    bool all_outputs = false;        // output logits for every position (tests: weight 0 rows then go through the loss)
    bool cached_kv = false;          // read K/V back from the cache as upstream does (no gradient through K/V)
    bool generic_loss = false;       // never use the fused cross-entropy path
    bool out_prod_backward = false;  // keep ggml's OUT_PROD for gradients through frozen weights (slow on CPU; less memory)
    // the kernel for the adapter's rank-sized products (x86-kernels.h): auto = the widest the CPU
    // has; off = ggml's GEMM (as --out-prod-backward also does)
    std::string small_products = "auto";
    bool profile = false;            // time every graph node (profile.h); slower
    std::string compute_type = "auto";  // auto|f32|bf16|amx: type of the frozen matrices' products while training
    // grad-check
    float eps = 1e-2f;
    std::string check_layers;  // grad-check: only these layers' adapters (comma list; "" = all)
    float init_b_std = 0.0f;  // grad-check: random B so A gets gradients too
    int max_steps = 0;
};

void usage();

// throws fatal("usage", ...) on a bad command line; --help prints the usage and exits 0
Options parse_args(int argc, char ** argv);

}  // namespace steer
