// steer-train: parsing and checking the command line (see options.h).
#include "options.h"

#include "x86-kernels.h"

#include "common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace steer {

void usage() {
    fprintf(stderr,
        "usage: steer-train train --model BASE.gguf --data DATA.jsonl --out ADAPTER.gguf [options]\n"
        "       steer-train eval --model BASE.gguf --data DATA.jsonl [--adapter ADAPTER.gguf]\n"
        "       steer-train grad-check --model BASE.gguf --data DATA.jsonl [--targets ...] [--init-b-std S]\n"
        "       steer-train peak --threads N   (measured F32 FMA / BF16 dot-product / AMX-BF16 tile GFLOP/s)\n"
        "options: --objective sft|dpo|sft+dpo --rank R --alpha A --targets q,k,v,o,gate,up,down\n"
        "         --epochs N --lr X --schedule cosine|linear|constant --warmup F --weight-decay W\n"
        "         --beta B --sft-weight W --learned-at P --kl-weight K --kl-rows N --kl-top N\n"
        "         --grad-accum N --seed N --threads N --gpu-layers N\n"
        "         --max-steps N --all-outputs --cached-kv --generic-loss --out-prod-backward\n"
        "         --compute-type auto|f32|bf16|amx --small-products auto|avx512|avx2|off --eps E --check-layers L,L --backend-dir DIR --verbose --profile\n");
}

Options parse_args(int argc, char ** argv) {
    Options o;
    if (argc < 2) { usage(); throw fatal("usage", "missing mode"); }
    o.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw fatal("usage", "missing value for " + a);
            return argv[++i];
        };
        if (a == "--model") o.model = next();
        else if (a == "--data") o.data = next();
        else if (a == "--out") o.out = next();
        else if (a == "--adapter") o.adapter = next();
        else if (a == "--backend-dir") o.backend_dir = next();
        else if (a == "--objective") o.objective = next();
        else if (a == "--targets") o.targets = next();
        else if (a == "--schedule") o.schedule = next();
        else if (a == "--rank") o.rank = std::stoi(next());
        else if (a == "--alpha") o.alpha = std::stof(next());
        else if (a == "--epochs") o.epochs = std::stoi(next());
        else if (a == "--lr") o.lr = std::stof(next());
        else if (a == "--warmup") o.warmup = std::stof(next());
        else if (a == "--weight-decay") o.weight_decay = std::stof(next());
        else if (a == "--beta") o.beta = std::stof(next());
        else if (a == "--sft-weight") o.sft_weight = std::stof(next());
        else if (a == "--learned-at") o.learned_at = std::stof(next());
        else if (a == "--kl-weight") o.kl_weight = std::stof(next());
        else if (a == "--kl-rows") o.kl_rows = std::stoi(next());
        else if (a == "--kl-top") o.kl_top = std::stoi(next());
        else if (a == "--grad-accum") o.grad_accum = std::stoi(next());
        else if (a == "--seed") o.seed = std::stoi(next());
        else if (a == "--threads") o.threads = std::stoi(next());
        else if (a == "--gpu-layers") o.gpu_layers = std::stoi(next());
        else if (a == "--max-steps") o.max_steps = std::stoi(next());
        else if (a == "--eps") o.eps = std::stof(next());
        else if (a == "--check-layers") o.check_layers = next();
        else if (a == "--init-b-std") o.init_b_std = std::stof(next());
        else if (a == "--all-outputs") o.all_outputs = true;
        else if (a == "--cached-kv") o.cached_kv = true;
        else if (a == "--generic-loss") o.generic_loss = true;
        else if (a == "--out-prod-backward") o.out_prod_backward = true;
        else if (a == "--compute-type") o.compute_type = next();
        else if (a == "--small-products") o.small_products = next();
        else if (a == "--verbose") g_verbose = true;
        else if (a == "--profile") o.profile = true;
        else if (a == "--help" || a == "-h") { usage(); exit(0); }
        else throw fatal("usage", "unknown option " + a);
    }
    if (o.mode != "train" && o.mode != "eval" && o.mode != "grad-check" && o.mode != "peak") throw fatal("usage", "unknown mode " + o.mode);
    if (o.mode != "peak" && o.model.empty()) throw fatal("usage", "--model is required");
    if (o.mode != "peak" && o.data.empty()) throw fatal("usage", "--data is required");
    if (o.mode == "train" && o.out.empty()) throw fatal("usage", "--out is required");
    if (o.objective != "sft" && o.objective != "dpo" && o.objective != "sft+dpo") throw fatal("usage", "--objective must be sft, dpo or sft+dpo");
    if (o.compute_type != "auto" && o.compute_type != "f32" && o.compute_type != "bf16" && o.compute_type != "amx")
        throw fatal("usage", "--compute-type must be auto, f32, bf16 or amx");
    if (o.small_products != "auto" && o.small_products != "avx512" && o.small_products != "avx2" && o.small_products != "off")
        throw fatal("usage", "--small-products must be auto, avx512, avx2 or off");
    if (o.small_products == "avx512" && !cpu_has_avx512f()) throw fatal("usage", "--small-products avx512 needs a CPU with AVX-512F");
    if (o.small_products == "avx2" && !cpu_has_avx2_fma()) throw fatal("usage", "--small-products avx2 needs a CPU with AVX2 and FMA");
    if (o.schedule != "cosine" && o.schedule != "linear" && o.schedule != "constant") throw fatal("usage", "--schedule must be cosine, linear or constant");
    if (o.rank < 1 || o.epochs < 1 || o.grad_accum < 1 || !(o.lr > 0)) throw fatal("usage", "rank, epochs, grad-accum and lr must be positive");
    if (!(o.learned_at > 0 && o.learned_at <= 1)) throw fatal("usage", "--learned-at must be in (0, 1]");
    if (!(o.kl_weight >= 0) || o.kl_rows < 1 || o.kl_top < 1) throw fatal("usage", "--kl-weight must be >= 0, --kl-rows and --kl-top positive");
    if (o.threads <= 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
    return o;
}

}  // namespace steer
