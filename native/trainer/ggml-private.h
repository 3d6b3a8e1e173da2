// steer-train: the one place that reaches past ggml's public API. Frozen-weights.cpp rewrites
// graph nodes in place (an OUT_PROD into a MUL_MAT, a product into an AMX custom op) and retypes
// model weights in place (F32 -> BF16); all of it goes through these helpers. The layout they
// rely on, ggml's private `struct ggml_custom_op_params`, comes from ggml-impl.h of the very
// release the prebuilt ggml was built from (copied by src/training/build-trainer.ts), and the
// static_asserts below stop the build when upstream changes what these helpers write.
#pragma once

#include "ggml-backend.h"
#include "ggml.h"
// ggml's own internal header: its static helpers, unused here, are not our warnings
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "ggml-impl.h"
#pragma GCC diagnostic pop

#include <cstring>
#include <type_traits>

namespace steer {

static_assert(GGML_MAX_DIMS == 4, "retype_weight sets the strides of 4 dimensions");
static_assert(GGML_MAX_SRC >= 2, "the rewritten nodes use src[0] and src[1]");
static_assert(std::is_same<decltype(ggml_custom_op_params::fun), ggml_custom_op_t>::value &&
                  std::is_same<decltype(ggml_custom_op_params::n_tasks), int>::value &&
                  std::is_same<decltype(ggml_custom_op_params::userdata), void *>::value,
              "ggml_custom_op_params changed (ggml-impl.h): check what ggml_custom_4d stores in op_params");
static_assert(sizeof(ggml_custom_op_params) <= sizeof(ggml_tensor::op_params), "the custom op's parameters fit in op_params");

// Turns `node` into a GGML_OP_CUSTOM node running fun(node, ith, nth, ud) on n_tasks threads,
// with x as src[1] (src[0] is kept), the parameters stored as ggml_custom_4d stores them.
inline void make_custom_node(ggml_tensor * node, ggml_tensor * x, ggml_custom_op_t fun, int n_tasks, void * ud) {
    const ggml_custom_op_params params = {fun, n_tasks, ud};
    memset(node->op_params, 0, sizeof(node->op_params));
    memcpy(node->op_params, &params, sizeof(params));
    node->op = GGML_OP_CUSTOM;
    node->src[1] = x;
}

// Turns `node` (an OUT_PROD of the same shape; neither op has op_params) into MUL_MAT(a, b).
inline void make_mul_mat_node(ggml_tensor * node, ggml_tensor * a, ggml_tensor * b) {
    node->op = GGML_OP_MUL_MAT;
    node->src[0] = a;
    node->src[1] = b;
}

// Turns `node` into MUL(a, b) (a SILU_BACK of the same shape: gelu-backward.cpp); MUL has no op_params.
inline void make_mul_node(ggml_tensor * node, ggml_tensor * a, ggml_tensor * b) {
    memset(node->op_params, 0, sizeof(node->op_params));
    node->op = GGML_OP_MUL;
    node->src[0] = a;
    node->src[1] = b;
}

// Relabels a UNARY node as another unary op, or a GLU node as another gated op, keeping its
// sources and (for GLU) its `swapped` flag: where ggml_unary_impl and ggml_glu_impl keep the op.
inline void relabel_unary(ggml_tensor * node, ggml_unary_op op) {
    GGML_ASSERT(node->op == GGML_OP_UNARY);
    ggml_set_op_params_i32(node, 0, (int32_t) op);
    GGML_ASSERT(ggml_get_unary_op(node) == op);
}
inline void relabel_glu(ggml_tensor * node, ggml_glu_op op) {
    GGML_ASSERT(node->op == GGML_OP_GLU);
    ggml_set_op_params_i32(node, 0, (int32_t) op);
    GGML_ASSERT(ggml_get_glu_op(node) == op);
}

// Points a contiguous model weight at other data of another type with one element per block
// (F32 -> BF16), in place: every graph built afterwards reads the new data.
inline void retype_weight(ggml_tensor * w, ggml_type type, void * data, ggml_backend_buffer_t buffer) {
    w->type = type;
    w->nb[0] = ggml_type_size(type);
    w->nb[1] = w->nb[0] * w->ne[0];
    w->nb[2] = w->nb[1] * w->ne[1];
    w->nb[3] = w->nb[2] * w->ne[2];
    w->data = data;
    w->buffer = buffer;
}

}  // namespace steer
