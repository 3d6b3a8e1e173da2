// steer-train: compute type of the frozen weights, and gradients through them as matrix
// products (see frozen-weights.h).
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
#include "frozen-weights.h"

#include "common.h"
#include "ggml-private.h"
#include "x86-kernels.h"

#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <algorithm>
#include <set>
#include <cstring>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace steer {

static bool is_frozen_host_weight(const Session & S, const ggml_tensor * t) {
    return t && t->op == GGML_OP_NONE && (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_BF16 || ggml_is_quantized(t->type)) &&
           t->buffer && ggml_backend_buffer_is_host(t->buffer) && ggml_backend_buffer_get_usage(t->buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS &&
           !S.param_index.count(t) && ggml_is_contiguous(t) && t->ne[2] == 1 && t->ne[3] == 1;
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
        retype_weight(w, type, tmp[k]->data, buf);
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

void prepare_weights(Session & S, ggml_cgraph * gf, bool backward) {
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
        // weights some other op reads too: a tied output matrix is also the token embedding
        // (GET_ROWS), whose F32 rows must stay in memory
        std::set<const ggml_tensor *> read_elsewhere;
        for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
            ggml_tensor * n = ggml_graph_node(gf, i);
            if (n->op == GGML_OP_MUL_MAT) continue;
            for (int j = 0; j < GGML_MAX_SRC; ++j)
                if (n->src[j]) read_elsewhere.insert(n->src[j]);
        }
        // W and Wᵀ packed for the tile unit (dimensions multiples of 32); others take the F32 path
        std::vector<ggml_tensor *> rest;
        for (ggml_tensor * w : ws) {
            if (w->type != GGML_TYPE_F32 || w->ne[0] % 32 || w->ne[1] % 32) { rest.push_back(w); continue; }
            const float * src = (const float *) w->data;
            const int64_t n_in = w->ne[0], n_out = w->ne[1];
            amx_pack_weight(S.amx_fwd[w], S.amx_bwd[w], src, n_in, n_out, S.opt.threads);
            // the F32 bytes now only back products that were not rewritten (none, normally), so
            // they can leave memory: pages of the mapped file come back from it if ever read
            // again, but those of a dequantized copy (anonymous memory) would come back as zeros,
            // so a weight another op still reads keeps them
            if (S.mmapped && !read_elsewhere.count(w)) release_pages(src, ggml_nbytes(w));
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

int amx_rewrite(Session & S, ggml_cgraph * g) {
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
        make_custom_node(node, x, amx_gemm, GGML_N_TASKS_MAX, &S.amx_ops.back());
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

ggml_cgraph * rewrite_out_prods(Session & S, ggml_context * c, ggml_cgraph * gb, int & rewritten) {
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
                make_mul_mat_node(node, at, bt);
                ++rewritten;
            }
        } else if (node->op == GGML_OP_OUT_PROD) {
            // a frozen weight converted to bf16: the product with its bf16 transpose
            auto it = S.transposed.find(node->src[0]);
            ggml_tensor * tr = node->src[1];
            if (it != S.transposed.end() && tr->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(tr->src[0]) && can_mul_mat(it->second, tr->src[0])) {
                make_mul_mat_node(node, it->second, tr->src[0]);
                ++rewritten;
            }
        }
        ggml_build_forward_expand(g2, node);
    }
    return g2;
}

}  // namespace steer
