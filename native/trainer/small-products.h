// steer-train: the adapter's own products (rank-sized: one side of 16 for rank 16) as nodes of
// x86-kernels.cpp's small-product kernel, which ggml's GEMM runs badly: see small-products.cpp.
#pragma once

#include "session.h"

#include "ggml.h"

namespace steer {

// Turns the F32 products with a small side (≤ 64: the adapter's rank), forward and gradient,
// into x86-kernels.cpp's small-product nodes, in place, on CPUs with AVX-512 or AVX2 (ggml's
// GEMM runs them as rank-length dot products, and as MUL_MATs their gradients need transposed
// copies of the activations). Not with --out-prod-backward or --small-products off (upstream's
// ops, for comparison). Returns how many.
int small_products_rewrite(Session & S, ggml_cgraph * g);

}  // namespace steer
