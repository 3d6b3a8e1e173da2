// steer-train: one graph evaluation of one sequence: the forward graph (llama_steer_eval), the
// weighted loss on its logits, and with backward the gradient into our accumulators and the
// AdamW step.
//
// Loss: sum_i w_i * (logsumexp(x_i) - x_i[y_i]) over the positions with w_i != 0 only
// (the others are not even output by the model graph), with a per-row constant subtracted
// before exp (the row mean: its gradient is analytically zero, so it needs no detaching).
// When every output row has the same weight it is w*k*ggml_cross_entropy_loss (fused).
// Rows with a soft target (retention: the base's top tokens q_v and the mass `rest` of all
// others) use the cross-entropy over those bins, -sum_top q_v log p_v - rest log p_tail: its
// gradient is that of the binned KL(q || p), zero where the model is the base.
#pragma once

#include "data.h"
#include "session.h"

#include "ggml.h"

#include <cstdint>
#include <string>
#include <vector>

namespace steer {

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
    // soft rows present: the targets go in as a dense [V, k] distribution instead of indices
    bool soft = false;
    ggml_tensor * q = nullptr;     // [V, k] top-token probabilities (one-hot for hard rows)
    ggml_tensor * tail = nullptr;  // [V, k] 1 on the tokens of the tail bin
    ggml_tensor * rest = nullptr;  // [1, k] target mass of the tail bin (0 for hard rows)
    // forward only: keep the logits of the output rows ([k][V], row j = out_rows[j])
    bool capture_logits = false;
    ggml_tensor * logits = nullptr;
    std::vector<float> logits_out;
    // results
    std::vector<float> nll_rows;  // per seq row
    float loss_value = 0.0f;
    std::vector<std::vector<float>> grads;  // when capture_grads
    bool capture_grads = false;
    std::string unsupported;  // set by the build callback: an op ggml cannot differentiate
};

// Evaluates one sequence; with backward, adds its gradients to the accumulators; with step,
// then applies AdamW and clears the accumulators.
void run_seq(Session & S, EvalJob & J);

// forward only: per-row nll of a sequence
std::vector<float> forward_nll(Session & S, const Seq & seq);

}  // namespace steer
