// steer-train: gradients through GELU feed-forward layers (Gemma's GEGLU, plain GELU), which
// ggml's backward expansion aborts on: it knows SiLU's and split SwiGLU's only.
//
// So each GELU node is relabelled SiLU (GEGLU: SwiGLU) before the expansion, which then builds
// SiLU's gradient nodes for it: silu_back(dy, a) for the gated input a, silu(a)·dy for the gate
// b. After the expansion those nodes get GELU's gradient, dy·gelu'(a) and gelu(a)·dy, and the
// GELU nodes themselves are rebuilt from forward ops: ggml's CPU GELU reads an fp16 table (its
// input and output rounded to fp16), a staircase whose slope is not gelu'; the same tanh
// formula in f32 (the one ggml approximates) is what the gradient is the gradient of. Forward
// graphs of training sessions use it too, so a DPO reference pass, a finite-difference check and
// the policy all see one function. Serving and evaluation keep ggml's GELU (differences ~1e-3).
#pragma once

#include "ggml.h"

#include <string>
#include <unordered_set>
#include <vector>

namespace steer {

struct GeluRelabelling {
    std::vector<ggml_tensor *> unary;  // GELU nodes now labelled SILU
    std::vector<ggml_tensor *> glu;    // split GEGLU nodes now labelled SWIGLU
    std::unordered_set<ggml_tensor *> inputs;   // their gated inputs (src[0])
    std::unordered_set<ggml_tensor *> forward;  // every node of the graph before the expansion
    bool any() const { return !unary.empty() || !glu.empty(); }
};

// Relabels gb's GELU/GEGLU nodes (see above). Sets `unsupported` to the name of a gated op with
// no backward that this cannot stand in for (REGLU, GEGLU_ERF, a fused GEGLU...).
GeluRelabelling relabel_gelu(ggml_cgraph * gb, std::string & unsupported);

// After ggml_build_backward_expand (and anything that reads gb's gradients): GELU's gradient
// nodes in place of SiLU's and the GELU nodes from forward ops, as a new graph (new nodes before
// their users). Returns gb itself when nothing was relabelled.
ggml_cgraph * restore_gelu(ggml_context * c, ggml_cgraph * gb, const GeluRelabelling & r);

// A training session's forward-only graph: its GELU/GEGLU nodes from forward ops (as above), as
// a new graph; gf itself when it has none.
ggml_cgraph * exact_gelu(ggml_context * c, ggml_cgraph * gf);

}  // namespace steer
