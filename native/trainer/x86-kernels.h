// steer-train: the CPU-specific code. CPU feature checks; the AMX tile kernel that runs the
// products with frozen matrices (BF16 in, F32 accumulate) from matrices packed in the tile
// layout; the throughput loops of `peak`. Every intrinsic lives in x86-kernels.cpp; on other
// CPUs the checks answer false and the kernels are not compiled.
#pragma once

#include "ggml.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace steer {

bool cpu_has_avx512_bf16();
bool cpu_has_avx512f();
bool cpu_has_avx2_fma();
// AMX-BF16 is there and the kernel grants the tile state (arch_prctl ARCH_REQ_XCOMP_PERM)
bool amx_bf16_available();

// A matrix M [N rows][K] (N, K multiples of 32) in tile order: tile (nb, kb) holds rows
// nb*16..+15 and columns kb*32..+31 as 16 rows of column pairs: row r, slot 2j+p =
// M[nb*16 + j][kb*32 + 2r + p] (the "B" operand layout of tdpbf16ps).
struct AmxMatrix {
    int64_t K = 0, N = 0;
    uint16_t * tiles = nullptr;  // N*K values, in anonymous memory of our own (huge pages where allowed)
    size_t bytes = 0;
    AmxMatrix() = default;
    AmxMatrix(const AmxMatrix &) = delete;
    AmxMatrix & operator=(const AmxMatrix &) = delete;
    ~AmxMatrix();
};

// the kernel's threads meet here between converting the activations and multiplying
struct SpinBarrier {
    std::atomic<int> count{0}, gen{0};
    void wait(int n);
};

struct AmxShared {
    std::vector<uint16_t> x;  // activations in BF16, [T rounded up to 32][K]
    SpinBarrier barrier;
};

// the userdata of one AMX node
struct AmxOp {
    const AmxMatrix * m;
    AmxShared * shared;
};

#if defined(__x86_64__)
// Packs a frozen F32 weight W (ggml's [n_in, n_out]: n_out rows of n_in values, both multiples
// of 32) for the tile unit: `fwd` = W, for W·x; `bwd` = Wᵀ, for the input gradient Wᵀ·dy.
void amx_pack_weight(AmxMatrix & fwd, AmxMatrix & bwd, const float * w, int64_t n_in, int64_t n_out, int nth);

// GGML_OP_CUSTOM kernel (userdata: an AmxOp): dst [N, T] = M [N][K] · x [K, T], x = dst->src[1]
// (rows of K contiguous F32 values, any row stride)
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl")))
void amx_gemm(ggml_tensor * dst, int ith, int nth, void * ud);

// GGML_OP_CUSTOM kernels (no userdata) for F32 products with a small side: the adapter's
// (rank-sized) products and their gradients, which ggml's GEMM runs as dot products of rank
// length (one horizontal sum per output) and which, as MUL_MATs, need transposed copies of
// [n, T] activations. Both sources are read through their strides (transposed views too);
// the output is contiguous. 2-D only. One variant per instruction set (AVX-512F, AVX2+FMA).
//   small_mul_mat_*:  dst[i, j] = Σ_k src0[k, i]·src1[k, j]   (MUL_MAT's semantics)
//   small_out_prod_*: dst[i, j] = Σ_k src0[i, k]·src1[j, k]   (OUT_PROD's semantics)
void small_mul_mat_avx512(ggml_tensor * dst, int ith, int nth, void * ud);
void small_out_prod_avx512(ggml_tensor * dst, int ith, int nth, void * ud);
void small_mul_mat_avx2(ggml_tensor * dst, int ith, int nth, void * ud);
void small_out_prod_avx2(ggml_tensor * dst, int ith, int nth, void * ud);

// peak: `iters` iterations of independent chains on one thread (FLOPs per iteration: mode-peak.cpp)
__attribute__((target("avx512f"))) double fma_f32_avx512(int64_t iters);
__attribute__((target("avx2,fma"))) double fma_f32_avx2(int64_t iters);
__attribute__((target("avx512f,avx512bf16"))) double dp_bf16_avx512(int64_t iters);
__attribute__((target("amx-tile,amx-bf16"))) double tiles_bf16_amx(int64_t iters);
#endif

}  // namespace steer
