// steer-train: CPU feature checks, the AMX tile kernel and its packing, and the peak
// throughput loops (see x86-kernels.h).
//
// On CPUs with AMX-BF16 (Intel Sapphire Rapids and later) one core multiplies 16x32 by 32x16
// BF16 tiles into F32 per instruction: measured on this project's 2-core dev VM, 2.5 TFLOP/s
// per core against 0.08 for AVX512-BF16 dot products. ggml's AMX backend only takes quantized
// weights, so the trainer carries its own kernel: every product with a frozen matrix W (the
// forward W·x and the input gradient Wᵀ·dy) becomes a GGML_OP_CUSTOM node (frozen-weights.cpp)
// that runs it from W (and Wᵀ) packed once per run in the tile unit's VNNI layout. The
// activations are rounded to BF16 per product, like the bf16 compute type; everything else is
// untouched.
#include "x86-kernels.h"

#include "common.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#endif

namespace steer {

#if defined(__x86_64__)
bool cpu_has_avx512_bf16() { return __builtin_cpu_supports("avx512bf16"); }
bool cpu_has_avx512f() { return __builtin_cpu_supports("avx512f"); }
bool cpu_has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
bool cpu_has_avx512_bf16() { return false; }
bool cpu_has_avx512f() { return false; }
bool cpu_has_avx2_fma() { return false; }
#endif

AmxMatrix::~AmxMatrix() { if (tiles) munmap(tiles, bytes); }

void SpinBarrier::wait(int n) {
    const int g = gen.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
        count.store(0, std::memory_order_relaxed);
        gen.fetch_add(1, std::memory_order_release);
    } else {
        // spin briefly (the others are a few microseconds behind), then yield: with more
        // threads than cores (the bot generating beside a training run) a spinning waiter
        // would burn the time slice of the thread it waits for
        for (int spins = 0; gen.load(std::memory_order_acquire) == g; ++spins) {
            if (spins < 2000) {
#if defined(__x86_64__)
                _mm_pause();
#endif
            } else {
                std::this_thread::yield();
            }
        }
    }
}

#if defined(__x86_64__)
// The tile unit's configuration: tiles 0-7 all 16 rows of 64 bytes (16 F32 or 32 BF16 values),
// the only shape the trainer uses.
struct TileConfig {
    uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

bool amx_bf16_available() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
    if (!tile || !bf16 || !__builtin_cpu_supports("avx512bf16")) return false;
    // the kernel hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static inline uint16_t bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t) ((u >> 16) | 64);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t) (u >> 16);
}

// at(n, k) gives M[n][k] as F32
template <typename At>
static void amx_pack(AmxMatrix & m, int64_t N, int64_t K, int nth, At at) {
    m.N = N;
    m.K = K;
    // not a std::vector: its zero fill would touch every page once more; huge pages cut the
    // page faults of a first touch of gigabytes by 512
    m.bytes = (size_t) N * K * sizeof(uint16_t);
    void * p = mmap(nullptr, m.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw fatal("oom", "cannot allocate the packed weights (try --compute-type bf16)");
    madvise(p, m.bytes, MADV_HUGEPAGE);
    m.tiles = (uint16_t *) p;
    uint16_t * out = m.tiles;
    const int64_t KB = K / 32;
    parallel_rows(nth, N / 16, [=](int64_t nb0, int64_t nb1) {
        for (int64_t nb = nb0; nb < nb1; ++nb)
            for (int64_t kb = 0; kb < KB; ++kb) {
                uint16_t * t = out + (nb * KB + kb) * 512;
                for (int r = 0; r < 16; ++r)
                    for (int j = 0; j < 16; ++j)
                        for (int p = 0; p < 2; ++p) t[r * 32 + 2 * j + p] = bf16_round(at(nb * 16 + j, kb * 32 + 2 * r + p));
            }
    });
}

// dst [N, T] = M [N][K] · x [K, T] (x rows: K contiguous F32 values, any row stride)
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl")))
void amx_gemm(ggml_tensor * dst, int ith, int nth, void * ud) {
    const auto & op = *(const AmxOp *) ud;
    const AmxMatrix & m = *op.m;
    const ggml_tensor * x = dst->src[1];
    const int64_t K = m.K, N = m.N, T = x->ne[1], Tp = (T + 31) / 32 * 32, KB = K / 32;
    uint16_t * xb = op.shared->x.data();

    // 1. activations to BF16, rows split over the threads, padding rows zero
    for (int64_t t = Tp * ith / nth; t < Tp * (ith + 1) / nth; ++t) {
        uint16_t * row = xb + t * K;
        if (t >= T) { memset(row, 0, K * 2); continue; }
        const float * xr = (const float *) ((const char *) x->data + t * x->nb[1]);
        for (int64_t k = 0; k < K; k += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16), _mm512_loadu_ps(xr + k));
            _mm512_storeu_si512((void *) (row + k), (__m512i) v);
        }
    }
    op.shared->barrier.wait(nth);

    // 2. 32 outputs x 32 tokens at a time: C tiles 0-3, activations 4-5, matrix 6-7
    const TileConfig cfg;
    _tile_loadconfig(&cfg);
    float * y = (float *) dst->data;
    const int64_t ld = dst->nb[1] / sizeof(float);
    alignas(64) float tail[32 * 32];
    const int64_t NB2 = N / 32;
    for (int64_t nb2 = NB2 * ith / nth; nb2 < NB2 * (ith + 1) / nth; ++nb2) {
        const uint16_t * w0 = m.tiles + (2 * nb2) * KB * 512;
        const uint16_t * w1 = w0 + KB * 512;
        for (int64_t t0 = 0; t0 < Tp; t0 += 32) {
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            const uint16_t * a0 = xb + t0 * K;
            const uint16_t * a1 = a0 + 16 * K;
            for (int64_t kb = 0; kb < KB; ++kb) {
                _tile_loadd(4, a0 + kb * 32, K * 2);
                _tile_loadd(5, a1 + kb * 32, K * 2);
                _tile_loadd(6, w0 + kb * 512, 64);
                _tile_loadd(7, w1 + kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            if (t0 + 32 <= T) {
                float * c = y + t0 * ld + nb2 * 32;
                _tile_stored(0, c, ld * 4);
                _tile_stored(1, c + 16, ld * 4);
                _tile_stored(2, c + 16 * ld, ld * 4);
                _tile_stored(3, c + 16 * ld + 16, ld * 4);
            } else {
                _tile_stored(0, tail, 128);
                _tile_stored(1, tail + 16, 128);
                _tile_stored(2, tail + 16 * 32, 128);
                _tile_stored(3, tail + 16 * 32 + 16, 128);
                for (int64_t t = t0; t < T; ++t) memcpy(y + t * ld + nb2 * 32, tail + (t - t0) * 32, 32 * sizeof(float));
            }
        }
    }
    _tile_release();
}

void amx_pack_weight(AmxMatrix & fwd, AmxMatrix & bwd, const float * src, int64_t n_in, int64_t n_out, int nth) {
    amx_pack(fwd, n_out, n_in, nth, [=](int64_t n, int64_t k) { return src[n * n_in + k]; });
    amx_pack(bwd, n_in, n_out, nth, [=](int64_t n, int64_t k) { return src[k * n_in + n]; });
}

// ---- peak -------------------------------------------------------------------------------

// something of the accumulators to return, so the loops are not optimized away
// (not _mm512_reduce_add_ps: GCC 12's header warns about it)
__attribute__((target("avx512f"))) static double sink_lanes(const __m512 (&acc)[12]) {
    alignas(64) float b[16];
    float s = 0;
    for (int i = 0; i < 12; ++i) { _mm512_store_ps(b, acc[i]); s += b[0]; }
    return s;
}

__attribute__((target("avx512f"))) double fma_f32_avx512(int64_t iters) {
    __m512 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps((float) i);
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    return sink_lanes(acc);
}

__attribute__((target("avx2,fma"))) double fma_f32_avx2(int64_t iters) {
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps((float) i);
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float b[8], s = 0;
    for (int i = 0; i < 12; ++i) { _mm256_storeu_ps(b, acc[i]); s += b[0]; }
    return s;
}

__attribute__((target("avx512f,avx512bf16"))) double dp_bf16_avx512(int64_t iters) {
    __m512 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps((float) i);
    const __m512bh x = (__m512bh) _mm512_set1_epi16(0x3f80), y = (__m512bh) _mm512_set1_epi16(0x3380);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    return sink_lanes(acc);
}

__attribute__((target("amx-tile,amx-bf16"))) double tiles_bf16_amx(int64_t iters) {
    const TileConfig cfg;
    _tile_loadconfig(&cfg);
    alignas(64) static thread_local uint16_t a[16 * 32], b[16 * 32];
    alignas(64) static thread_local float c[16 * 16];
    for (int i = 0; i < 16 * 32; ++i) { a[i] = 0x3f80; b[i] = 0x3380; }
    _tile_loadd(4, a, 64);
    _tile_loadd(5, b, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (int64_t n = 0; n < iters / 8; ++n) {
        _tile_dpbf16ps(0, 4, 5); _tile_dpbf16ps(1, 4, 5); _tile_dpbf16ps(2, 4, 5); _tile_dpbf16ps(3, 4, 5);
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0];
}
#else
bool amx_bf16_available() { return false; }
#endif

#if defined(__x86_64__)
// dst[i, j] = Σ_k A(i, k)·B(k, j), every operand by element strides, dst contiguous in i.
// Output tiles of one vector of i (16 lanes with AVX-512, 8 with AVX2) × NJ j (NJ accumulators:
// 16, or 12 of AVX2's 16 registers), split among the threads in i-major order; per k one vector
// of A and NJ broadcasts of B. A block whose i are not contiguous is first packed [K][lanes]
// (once per block and thread). The loops over j are unrolled completely, so that the
// accumulators live in registers.
namespace {
struct SmallGemm {
    const float * a; int64_t a_i, a_k;
    const float * b; int64_t b_k, b_j;
    float * d; int64_t d_j;
    int64_t I, J, K;
};

// the A block of tile row ib: its own memory when its lanes are contiguous, else packed
inline const float * a_block(const SmallGemm & g, int64_t ib, int lanes, int64_t ni, std::vector<float> & pack, int64_t & packed, int64_t & ap_k) {
    const int64_t i0 = ib * lanes;
    if (g.a_i == 1) { ap_k = g.a_k; return g.a + i0; }
    if (packed != ib) {
        pack.assign((size_t) g.K * lanes, 0.0f);
        for (int64_t k = 0; k < g.K; ++k)
            for (int64_t l = 0; l < ni; ++l) pack[k * lanes + l] = g.a[(i0 + l) * g.a_i + k * g.a_k];
        packed = ib;
    }
    ap_k = lanes;
    return pack.data();
}

__attribute__((target("avx512f")))
void small_gemm_avx512(const SmallGemm & g, int ith, int nth) {
    constexpr int L = 16, NJ = 16;
    const int64_t nib = (g.I + L - 1) / L, njb = (g.J + NJ - 1) / NJ, ntiles = nib * njb;
    const int64_t t0 = ntiles * ith / nth, t1 = ntiles * (ith + 1) / nth;
    thread_local std::vector<float> pack;
    int64_t packed = -1;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t ib = t / njb, jb = t % njb;
        const int64_t i0 = ib * L, ni = std::min<int64_t>(L, g.I - i0);
        const __mmask16 mask = (__mmask16) ((1u << ni) - 1);
        int64_t ap_k;
        const float * ap = a_block(g, ib, L, ni, pack, packed, ap_k);
        const int64_t j0 = jb * NJ, nj = std::min<int64_t>(NJ, g.J - j0), bj = g.b_j;
        __m512 acc[NJ];
#pragma GCC unroll 16
        for (int jj = 0; jj < NJ; ++jj) acc[jj] = _mm512_setzero_ps();
        if (nj == NJ) {
            for (int64_t k = 0; k < g.K; ++k) {
                const __m512 av = _mm512_maskz_loadu_ps(mask, ap + k * ap_k);
                const float * bk = g.b + k * g.b_k + j0 * bj;
#pragma GCC unroll 16
                for (int jj = 0; jj < NJ; ++jj) acc[jj] = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[jj * bj]), acc[jj]);
            }
        } else {
            for (int64_t k = 0; k < g.K; ++k) {
                const __m512 av = _mm512_maskz_loadu_ps(mask, ap + k * ap_k);
                const float * bk = g.b + k * g.b_k + j0 * bj;
                for (int jj = 0; jj < nj; ++jj) acc[jj] = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[jj * bj]), acc[jj]);
            }
        }
#pragma GCC unroll 16
        for (int jj = 0; jj < NJ; ++jj)
            if (jj < nj) _mm512_mask_storeu_ps(g.d + (j0 + jj) * g.d_j + i0, mask, acc[jj]);
    }
}

__attribute__((target("avx2,fma")))
void small_gemm_avx2(const SmallGemm & g, int ith, int nth) {
    constexpr int L = 8, NJ = 12;
    const int64_t nib = (g.I + L - 1) / L, njb = (g.J + NJ - 1) / NJ, ntiles = nib * njb;
    const int64_t t0 = ntiles * ith / nth, t1 = ntiles * (ith + 1) / nth;
    thread_local std::vector<float> pack;
    int64_t packed = -1;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t ib = t / njb, jb = t % njb;
        const int64_t i0 = ib * L, ni = std::min<int64_t>(L, g.I - i0);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int) ni), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        int64_t ap_k;
        const float * ap = a_block(g, ib, L, ni, pack, packed, ap_k);
        const int64_t j0 = jb * NJ, nj = std::min<int64_t>(NJ, g.J - j0), bj = g.b_j;
        __m256 acc[NJ];
#pragma GCC unroll 12
        for (int jj = 0; jj < NJ; ++jj) acc[jj] = _mm256_setzero_ps();
        if (nj == NJ) {
            for (int64_t k = 0; k < g.K; ++k) {
                const __m256 av = _mm256_maskload_ps(ap + k * ap_k, mask);
                const float * bk = g.b + k * g.b_k + j0 * bj;
#pragma GCC unroll 12
                for (int jj = 0; jj < NJ; ++jj) acc[jj] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(bk + jj * bj), acc[jj]);
            }
        } else {
            for (int64_t k = 0; k < g.K; ++k) {
                const __m256 av = _mm256_maskload_ps(ap + k * ap_k, mask);
                const float * bk = g.b + k * g.b_k + j0 * bj;
                for (int jj = 0; jj < nj; ++jj) acc[jj] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(bk + jj * bj), acc[jj]);
            }
        }
#pragma GCC unroll 12
        for (int jj = 0; jj < NJ; ++jj)
            if (jj < nj) _mm256_maskstore_ps(g.d + (j0 + jj) * g.d_j + i0, mask, acc[jj]);
    }
}

int64_t stride(const ggml_tensor * t, int dim) { return (int64_t) (t->nb[dim] / sizeof(float)); }

// MUL_MAT: dst[i, j] = Σ_k src0[k, i]·src1[k, j]
SmallGemm mul_mat_operands(ggml_tensor * dst) {
    const ggml_tensor * a = dst->src[0];
    const ggml_tensor * b = dst->src[1];
    return {(const float *) a->data, stride(a, 1), stride(a, 0), (const float *) b->data, stride(b, 0), stride(b, 1),
            (float *) dst->data, stride(dst, 1), dst->ne[0], dst->ne[1], a->ne[0]};
}

// OUT_PROD: dst[i, j] = Σ_k src0[i, k]·src1[j, k]
SmallGemm out_prod_operands(ggml_tensor * dst) {
    const ggml_tensor * a = dst->src[0];
    const ggml_tensor * b = dst->src[1];
    return {(const float *) a->data, stride(a, 0), stride(a, 1), (const float *) b->data, stride(b, 1), stride(b, 0),
            (float *) dst->data, stride(dst, 1), dst->ne[0], dst->ne[1], a->ne[1]};
}
}  // namespace

void small_mul_mat_avx512(ggml_tensor * dst, int ith, int nth, void *) { small_gemm_avx512(mul_mat_operands(dst), ith, nth); }
void small_out_prod_avx512(ggml_tensor * dst, int ith, int nth, void *) { small_gemm_avx512(out_prod_operands(dst), ith, nth); }
void small_mul_mat_avx2(ggml_tensor * dst, int ith, int nth, void *) { small_gemm_avx2(mul_mat_operands(dst), ith, nth); }
void small_out_prod_avx2(ggml_tensor * dst, int ith, int nth, void *) { small_gemm_avx2(out_prod_operands(dst), ith, nth); }
#endif

}  // namespace steer
