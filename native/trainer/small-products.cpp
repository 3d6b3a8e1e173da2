// steer-train: the small-product rewrite (see small-products.h). A rank-r adapter's products
// have one side of r: B·(Ax) contracts over r, which tinyBLAS runs as one r-long dot product
// and one horizontal sum per output, and their gradients, rewritten as MUL_MATs, would each need
// a transposed copy of an [n, T] activation. The kernel reads the operands through their
// strides instead. Measured on the 0.5B shape (native/trainer/README.md): 17 % of a step before.
#include "small-products.h"

#include "ggml-private.h"
#include "x86-kernels.h"

#include <algorithm>
#include <string>

namespace steer {

static bool is_f32_2d(const ggml_tensor * t) {
    return t->type == GGML_TYPE_F32 && t->ne[2] == 1 && t->ne[3] == 1 && t->nb[0] % sizeof(float) == 0 && t->nb[1] % sizeof(float) == 0;
}

int small_products_rewrite(Session & S, ggml_cgraph * g) {
#if defined(__x86_64__)
    const std::string & isa = S.opt.small_products;
    if (S.on_gpu || S.opt.out_prod_backward || isa == "off") return 0;
    const bool avx512 = (isa == "auto" || isa == "avx512") && cpu_has_avx512f();
    const bool avx2 = !avx512 && (isa == "auto" || isa == "avx2") && cpu_has_avx2_fma();
    if (!avx512 && !avx2) return 0;
    const ggml_custom_op_t mul_mat = avx512 ? small_mul_mat_avx512 : small_mul_mat_avx2;
    const ggml_custom_op_t out_prod = avx512 ? small_out_prod_avx512 : small_out_prod_avx2;
    const int64_t small = 64;
    int n = 0;
    for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
        ggml_tensor * node = ggml_graph_node(g, i);
        if (node->op != GGML_OP_MUL_MAT && node->op != GGML_OP_OUT_PROD) continue;
        ggml_tensor * a = node->src[0];
        ggml_tensor * b = node->src[1];
        if (!is_f32_2d(node) || !ggml_is_contiguous(node) || !is_f32_2d(a) || !is_f32_2d(b)) continue;
        if (node->op == GGML_OP_MUL_MAT) {
            // K is the contracted dimension; a large K is GEMM's strength
            if (a->ne[0] > small) continue;
            make_custom_node(node, b, mul_mat, GGML_N_TASKS_MAX, nullptr);
        } else {
            if (S.transposed.count(a) || std::min({node->ne[0], node->ne[1], a->ne[1]}) > small) continue;
            make_custom_node(node, b, out_prod, GGML_N_TASKS_MAX, nullptr);
        }
        ++n;
    }
    return n;
#else
    (void) S; (void) g;
    return 0;
#endif
}

}  // namespace steer
