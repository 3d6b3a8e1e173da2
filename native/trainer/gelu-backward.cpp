// steer-train: gradients through GELU feed-forward layers; see gelu-backward.h.
#include "gelu-backward.h"

#include "ggml-private.h"

namespace steer {

static constexpr float C = 0.7978845608028654f;  // sqrt(2/pi), ggml's SQRT_2_OVER_PI
static constexpr float K = 0.044715f;            // ggml's GELU_COEF_A

static bool is_gelu(const ggml_tensor * node) {
    return node->op == GGML_OP_UNARY && ggml_get_unary_op(node) == GGML_UNARY_OP_GELU;
}
static bool is_split_geglu(const ggml_tensor * node) {
    return node->op == GGML_OP_GLU && ggml_get_glu_op(node) == GGML_GLU_OP_GEGLU && node->src[1] != nullptr;
}

// t = tanh(c·(x + k·x³)); gelu(x) = x·(0.5 + 0.5·t)
static ggml_tensor * tanh_u(ggml_context * c, ggml_tensor * x, ggml_tensor * x2) {
    return ggml_tanh(c, ggml_mul(c, x, ggml_scale_bias(c, x2, C * K, C)));
}

// gelu'(x) = 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3k·x²)
static ggml_tensor * gelu_derivative(ggml_context * c, ggml_tensor * x) {
    ggml_tensor * x2 = ggml_sqr(c, x);
    ggml_tensor * t = tanh_u(c, x, x2);
    ggml_tensor * outer = ggml_scale_bias(c, t, 0.5f, 0.5f);
    ggml_tensor * sech2 = ggml_scale_bias(c, ggml_sqr(c, t), -1.0f, 1.0f);
    ggml_tensor * inner = ggml_mul(c, ggml_mul(c, x, sech2), ggml_scale_bias(c, x2, 3.0f * C * K, C));
    return ggml_add(c, outer, ggml_scale(c, inner, 0.5f));
}

// Turns a GELU node (x) into MUL(x, 0.5 + 0.5·t), a split GEGLU node (x, g) into MUL(gelu(x), g).
static void rebuild_gelu(ggml_context * c, ggml_tensor * node, bool gated) {
    ggml_tensor * x = node->src[0];
    ggml_tensor * half = ggml_scale_bias(c, tanh_u(c, x, ggml_sqr(c, x)), 0.5f, 0.5f);
    if (gated) make_mul_node(node, ggml_mul(c, x, half), node->src[1]);
    else make_mul_node(node, x, half);
}

GeluRelabelling relabel_gelu(ggml_cgraph * gb, std::string & unsupported) {
    GeluRelabelling r;
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        r.forward.insert(node);
        if (node->op == GGML_OP_GLU) {
            const ggml_glu_op op = ggml_get_glu_op(node);
            if (op == GGML_GLU_OP_SWIGLU) continue;
            if (!is_split_geglu(node)) {
                unsupported = std::string(ggml_glu_op_name(op)) + (node->src[1] ? "" : " (fused)");
                return r;
            }
            relabel_glu(node, GGML_GLU_OP_SWIGLU);
            r.glu.push_back(node);
            r.inputs.insert(node->src[0]);
        } else if (is_gelu(node)) {
            relabel_unary(node, GGML_UNARY_OP_SILU);
            r.unary.push_back(node);
            r.inputs.insert(node->src[0]);
        }
    }
    return r;
}

ggml_cgraph * restore_gelu(ggml_context * c, ggml_cgraph * gb, const GeluRelabelling & r) {
    if (!r.any()) return gb;
    std::unordered_set<ggml_tensor *> unary(r.unary.begin(), r.unary.end()), glu(r.glu.begin(), r.glu.end());
    ggml_cgraph * g2 = ggml_new_graph_custom(c, ggml_graph_size(gb) + 16 * (int) r.inputs.size() + 64, false);
    for (int i = 0; i < ggml_graph_n_nodes(gb); ++i) {
        ggml_tensor * node = ggml_graph_node(gb, i);
        if (unary.count(node)) rebuild_gelu(c, node, false);
        else if (glu.count(node)) rebuild_gelu(c, node, true);
        else if (!r.forward.count(node)) {
            if (node->op == GGML_OP_SILU_BACK && r.inputs.count(node->src[1])) {
                // silu_back(dy, a) -> dy·gelu'(a)
                make_mul_node(node, node->src[0], gelu_derivative(c, node->src[1]));
            } else if (node->op == GGML_OP_UNARY && ggml_get_unary_op(node) == GGML_UNARY_OP_SILU && r.inputs.count(node->src[0])) {
                // silu(a), the gate's gradient factor -> gelu(a)
                rebuild_gelu(c, node, false);
            }
        }
        ggml_build_forward_expand(g2, node);
    }
    return g2;
}

ggml_cgraph * exact_gelu(ggml_context * c, ggml_cgraph * gf) {
    int n = 0;
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) n += is_gelu(ggml_graph_node(gf, i)) || is_split_geglu(ggml_graph_node(gf, i));
    if (n == 0) return gf;
    ggml_cgraph * g2 = ggml_new_graph_custom(c, ggml_graph_size(gf) + 8 * n + 64, false);
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        ggml_tensor * node = ggml_graph_node(gf, i);
        if (is_gelu(node)) rebuild_gelu(c, node, false);
        else if (is_split_geglu(node)) rebuild_gelu(c, node, true);
        ggml_build_forward_expand(g2, node);
    }
    return g2;
}

}  // namespace steer
