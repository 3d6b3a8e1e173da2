// steer-train: the GGUF side of the adapter: which base weights a LoRA targets (read from the
// base model's GGUF before loading it: clear errors for weights that cannot be dequantized), fresh A/B values,
// and writing the adapter file node-llama-cpp loads (general.type=adapter, *.lora_a/*.lora_b).
#pragma once

#include "llama.h"

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace steer {

struct Options;

struct TargetTensor {
    std::string name;  // base weight name, e.g. blk.0.attn_q.weight
    int64_t n_in, n_out;
};

struct BaseInfo {
    std::string arch;
    std::vector<TargetTensor> targets;
};

// the architecture and the target matrices (short names q,k,v,o,gate,up,down) of a base GGUF
BaseInfo inspect_base(const std::string & path, const std::vector<std::string> & short_targets);

struct HostLora {
    std::string name;           // base weight name
    int64_t n_in, n_out, rank;
    std::vector<float> a, b;    // a: [n_in, rank] (ne order), b: [rank, n_out]
};

void write_adapter(const std::string & path, const std::string & arch, float alpha, const std::vector<HostLora> & loras,
                   const std::vector<std::pair<std::string, std::string>> & extra_kv);

// A ~ U(±1/√n_in), B = 0 (or N(0, --init-b-std) for grad-check) for every target
std::vector<HostLora> fresh_loras(const BaseInfo & base, const Options & o, std::mt19937 & rng);
// a loaded adapter's A/B back in host memory; throws fatal("diverged") on non-finite values
std::vector<HostLora> read_loras(llama_adapter_lora * adapter);

}  // namespace steer
