// steer-train: the products with the frozen base weights. Their compute type (F32, BF16, or
// the AMX tile unit: x86-kernels.cpp), the copies made of them once per run (Wᵀ, BF16, packed
// tiles), and the graph rewrites that use those: gradients through them as matrix products
// instead of ggml's slow OUT_PROD, products as AMX nodes. Only for weights in host memory.
#pragma once

#include "session.h"

#include "ggml.h"

namespace steer {

// Once per session, at the first graph: the frozen host weights that are matrices of products
// get their copies for the session's compute type (and, with backward, Wᵀ).
void prepare_weights(Session & S, ggml_cgraph * gf, bool backward);

// Turns the products with packed frozen matrices into AMX nodes, in place: MUL_MAT(W, x) and
// the gradient OUT_PROD(W, transpose(dy)). Returns how many.
int amx_rewrite(Session & S, ggml_cgraph * g);

// Returns a new graph with the OUT_PROD nodes of gb rewritten as MUL_MAT and the copies they
// need, in order; `rewritten` counts them.
ggml_cgraph * rewrite_out_prods(Session & S, ggml_context * c, ggml_cgraph * gb, int & rewritten);

}  // namespace steer
