// steer-train peak: what this CPU's vector units deliver (for the benchmark's "fraction of
// peak"): F32 FMA, BF16 dot-product and AMX-BF16 tile GFLOP/s on --threads cores at once.
//
// Nominal peaks (cores × clock × FLOPs/cycle) overstate what shared or virtual cores deliver
// (fewer FMA ports, lower clocks under AVX-512): measure independent FMA chains instead
// (the loops: x86-kernels.cpp).
#include "common.h"
#include "modes.h"
#include "x86-kernels.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace steer {

// GFLOP/s of `kernel` (flops_per_iter per inner iteration) on n threads at once
static double measure_peak(int threads, double (*kernel)(int64_t), double flops_per_iter) {
    const int64_t iters = 20'000'000;
    std::vector<std::thread> th;
    std::vector<double> sink(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) th.emplace_back([&, t] { sink[t] = kernel(iters); });
    for (auto & x : th) x.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return threads * (double) iters * flops_per_iter / secs / 1e9;
}

int mode_peak(const Options & o) {
    double f32 = 0, bf16 = 0, amx = 0;
    std::string isa = "none";
#if defined(__x86_64__)
    for (int rep = 0; rep < 3; ++rep) {  // best of three: the first wakes the clocks up
        if (cpu_has_avx512f()) { f32 = std::max(f32, measure_peak(o.threads, fma_f32_avx512, 12 * 32)); isa = "avx512"; }
        else if (cpu_has_avx2_fma()) { f32 = std::max(f32, measure_peak(o.threads, fma_f32_avx2, 12 * 16)); isa = "avx2"; }
        if (cpu_has_avx512_bf16()) bf16 = std::max(bf16, measure_peak(o.threads, dp_bf16_avx512, 12 * 64));
        // 4 tile products of 16x32 by 32x16 per iteration of iters/8
        if (amx_bf16_available()) amx = std::max(amx, measure_peak(o.threads, tiles_bf16_amx, 4.0 * 16 * 16 * 32 * 2 / 8));
    }
#endif
    emit(fmt("{\"type\":\"peak\",\"threads\":%d,\"isa\":\"%s\",\"f32GflopsPerSecond\":%s,\"bf16GflopsPerSecond\":%s,\"amxBf16GflopsPerSecond\":%s}",
             o.threads, isa.c_str(), f32 > 0 ? json_num(f32).c_str() : "null", bf16 > 0 ? json_num(bf16).c_str() : "null",
             amx > 0 ? json_num(amx).c_str() : "null"));
    return 0;
}

}  // namespace steer
