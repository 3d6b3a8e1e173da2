// steer-train: the loss graphs and their evaluation (see loss.h).
#include "loss.h"

#include "gelu-backward.h"

#include "common.h"
#include "frozen-weights.h"
#include "small-products.h"
#include "llama-steer.h"

#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace steer {

static ggml_cgraph * job_build(void * ud, ggml_cgraph * gf, ggml_tensor * logits) {
    auto & J = *(EvalJob *) ud;
    auto & S = *J.S;
    const int64_t V = logits->ne[0];
    const int64_t k = logits->ne[1];
    const size_t gsize = ggml_graph_size(gf);
    // room for the loss, the backward graph, and the rewritten graph with its copies (rewrite_out_prods)
    // (and restore_gelu's graph, for a GELU model)
    ggml_init_params ip = {(gsize * 2 + 8192) * ggml_tensor_overhead() + ggml_graph_overhead_custom(gsize, true) +
                               2 * ggml_graph_overhead_custom(gsize + 4096, false) + (1 << 16), nullptr, true};
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
    ggml_tensor * t;  // [1, k]: d[y], or for soft targets sum_v q_v d_v + rest * log(tail mass)
    if (J.soft) {
        // binned cross-entropy: -sum_top q_v log p_v - rest log p_tail, p_tail = sum_tail e / s
        J.q = ggml_new_tensor_2d(c, GGML_TYPE_F32, V, k);
        ggml_set_name(J.q, "steer soft targets");
        ggml_set_input(J.q);
        J.tail = ggml_new_tensor_2d(c, GGML_TYPE_F32, V, k);
        ggml_set_name(J.tail, "steer soft tail");
        ggml_set_input(J.tail);
        J.rest = ggml_new_tensor_2d(c, GGML_TYPE_F32, 1, k);
        ggml_set_name(J.rest, "steer soft rest");
        ggml_set_input(J.rest);
        ggml_tensor * tail_lse = ggml_log(c, ggml_sum_rows(c, ggml_mul(c, e, J.tail)));  // [1, k]
        // (sum_top q + rest) = 1, so -sum_top q (d - lse) - rest (tail_lse - lse) = lse - t
        t = ggml_add(c, ggml_sum_rows(c, ggml_mul(c, d, J.q)), ggml_mul(c, J.rest, tail_lse));
    } else {
        J.idx = ggml_new_tensor_1d(c, GGML_TYPE_I32, k);
        ggml_set_name(J.idx, "steer target index");
        ggml_set_input(J.idx);
        t = ggml_get_rows(c, ggml_reshape_2d(c, d, 1, V * k), J.idx);
    }
    J.nll = ggml_sub(c, lse, t);                // [1, k]
    ggml_set_name(J.nll, "steer nll");
    ggml_set_output(J.nll);
    J.loss = ggml_sum(c, ggml_mul(c, J.nll, J.w));
    ggml_set_name(J.loss, "steer loss");
    ggml_set_output(J.loss);
    }

    if (J.capture_logits) {
        J.logits = x;
        ggml_set_output(x);
    }

    ggml_cgraph * gb = ggml_new_graph_custom(c, gsize, J.backward);
    ggml_graph_cpy(gf, gb);  // keeps the KV-cache writes, which are not ancestors of the logits
    ggml_build_forward_expand(gb, J.loss);
    prepare_weights(S, gf, J.backward);
    if (!J.backward) {
        if (S.trainable) gb = exact_gelu(c, gb);
        if (S.amx) amx_rewrite(S, gb);
        small_products_rewrite(S, gb);
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
    // ggml aborts the process on an op it has no backward pass for: GELU layers (Gemma's GEGLU)
    // get theirs through a relabelling (gelu-backward.h); any other such gated FFN is refused
    // with a clear error instead
    const GeluRelabelling gelu = relabel_gelu(gb, J.unsupported);
    if (!J.unsupported.empty()) return nullptr;
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

    gb = restore_gelu(c, gb, gelu);

    int n_rewritten = 0, n_amx = 0;
    if (S.amx) n_amx = amx_rewrite(S, gb);
    const int n_small = small_products_rewrite(S, gb);
    if (!S.opt.out_prod_backward && !S.on_gpu) gb = rewrite_out_prods(S, c, gb, n_rewritten);
    if (!S.backward_reported) {
        S.backward_reported = true;
        size_t bytes = 0;
        for (auto & [w, t] : S.transposed) bytes += ggml_nbytes(t);
        for (auto & [w, m] : S.amx_bwd) bytes += m.bytes;
        int n_left = 0;
        for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) n_left += ggml_graph_node(gb, i)->op == GGML_OP_OUT_PROD;
        emit(fmt("{\"type\":\"backward\",\"matmuls\":%d,\"amxProducts\":%d,\"smallProducts\":%d,\"outProds\":%d,\"transposedBytes\":%zu,\"computeType\":\"%s\"}",
                 n_rewritten, n_amx, n_small, n_left, bytes, S.amx ? "amx" : S.bf16 ? "bf16" : "f32"));
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
    std::vector<float> q(J.soft ? (size_t) (V * k) : 0, 0.0f), tail(q.size(), 1.0f), rest(J.soft ? k : 0, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
        int32_t r = J.out_rows[j];
        llama_token target = r >= 0 ? J.seq->rows[r].target : 0;
        idx[j] = (int32_t) (j * V + target);
        w[j] = r >= 0 ? J.seq->rows[r].weight : 0.0f;
        if (!J.soft) continue;
        const SoftTarget * st = r >= 0 && r < (int32_t) J.seq->soft.size() ? J.seq->soft[r] : nullptr;
        if (!st) q[(size_t) (j * V + target)] = 1.0f;
        else {
            // the tail bin is every token but the top ones (a hard row: R = 0, tail all ones keeps its log finite)
            for (size_t i = 0; i < st->ids.size(); ++i) {
                q[(size_t) (j * V + st->ids[i])] = st->probs[i];
                tail[(size_t) (j * V + st->ids[i])] = 0.0f;
            }
            rest[j] = st->rest;
        }
    }
    if (J.soft) {
        ggml_backend_tensor_set(J.q, q.data(), 0, ggml_nbytes(J.q));
        ggml_backend_tensor_set(J.tail, tail.data(), 0, ggml_nbytes(J.tail));
        ggml_backend_tensor_set(J.rest, rest.data(), 0, ggml_nbytes(J.rest));
    }
    else ggml_backend_tensor_set(J.idx, idx.data(), 0, ggml_nbytes(J.idx));
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
    if (J.capture_logits) {
        J.logits_out.resize((size_t) ggml_nelements(J.logits));
        ggml_backend_tensor_get(J.logits, J.logits_out.data(), 0, ggml_nbytes(J.logits));
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

void run_seq(Session & S, EvalJob & J) {
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
    J.soft = false;
    for (int32_t r : J.out_rows) J.soft = J.soft || (r >= 0 && r < (int32_t) seq.soft.size() && seq.soft[r]);
    if (J.backward && !S.opt.generic_loss && !J.soft) {
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
    if (!J.unsupported.empty())
        throw fatal("unsupported_model", "this model's feed-forward layers use " + J.unsupported +
                                             ", which ggml cannot train through yet (SWIGLU and split GEGLU have a backward pass): LoRA training needs a SwiGLU or GELU model (Llama, Qwen, SmolLM, Mistral, Phi-3, Gemma 3 ...)");
    if (rc != 0) throw fatal("internal", fmt("graph evaluation failed (%d)", rc));
    if (J.step) {
        S.opt_iter++;
        ggml_backend_buffer_clear(S.buf_acc, 0);
    }
}

std::vector<float> forward_nll(Session & S, const Seq & seq) {
    EvalJob J;
    J.S = &S;
    J.seq = &seq;
    run_seq(S, J);
    return J.nll_rows;
}

}  // namespace steer
