// The two CPU-backend entry points llama-export-lora calls directly (ggml_backend_cpu_init,
// ggml_backend_cpu_set_n_threads), for node-llama-cpp's prebuilt ggml.
//
// Why: that ggml is built with dynamically loaded backends (GGML_BACKEND_DL): libggml exports no
// CPU functions, and the CPU backend comes as one libggml-cpu-<variant>.so per instruction set,
// picked at run time by ggml_backend_load_all. Linking one variant would pin its instruction set
// (and its path, the files have no soname); these shims instead reach the CPU device through the
// backend registry, so the merge runs on the same best-fit variant the engine loads.
#include "ggml-backend.h"

#include <cstdio>
#include <cstdlib>

static ggml_backend_dev_t cpu_device() {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev) {
        ggml_backend_load_all_from_path(STEER_GGML_LIB_DIR);
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    }
    if (!dev) {
        std::fprintf(stderr, "no CPU backend found in %s\n", STEER_GGML_LIB_DIR);
        std::exit(1);
    }
    return dev;
}

extern "C" ggml_backend_t ggml_backend_cpu_init(void) {
    return ggml_backend_dev_init(cpu_device(), nullptr);
}

extern "C" void ggml_backend_cpu_set_n_threads(ggml_backend_t backend, int n_threads) {
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu_device());
    auto set = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    if (set) set(backend, n_threads);
}
