// steer-train: base model inspection, fresh and trained LoRA tensors, the adapter GGUF writer
// (see adapter-gguf.h).
#include "adapter-gguf.h"

#include "common.h"
#include "llama-steer.h"
#include "options.h"

#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace steer {

static const std::map<std::string, std::string> TARGET_NAMES = {
    {"q", "attn_q"}, {"k", "attn_k"}, {"v", "attn_v"}, {"o", "attn_output"},
    {"gate", "ffn_gate"}, {"up", "ffn_up"}, {"down", "ffn_down"},
};

BaseInfo inspect_base(const std::string & path, const std::vector<std::string> & short_targets) {
    ggml_context * meta = nullptr;
    gguf_init_params gp = {/*no_alloc*/ true, &meta};
    gguf_context * g = gguf_init_from_file(path.c_str(), gp);
    if (!g) throw fatal("bad_model", "cannot read the base model GGUF " + path);
    BaseInfo info;
    int64_t ak = gguf_find_key(g, "general.architecture");
    if (ak < 0) { gguf_free(g); ggml_free(meta); throw fatal("bad_model", "the base model has no general.architecture"); }
    info.arch = gguf_get_val_str(g, ak);
    std::set<std::string> wanted;
    for (auto & t : short_targets) {
        auto it = TARGET_NAMES.find(t);
        if (it == TARGET_NAMES.end()) { gguf_free(g); ggml_free(meta); throw fatal("usage", "unknown target " + t + " (use q,k,v,o,gate,up,down)"); }
        wanted.insert(it->second);
    }
    std::string unusable;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
        const char * name = gguf_get_tensor_name(g, i);
        ggml_tensor * t = ggml_get_tensor(meta, name);
        std::string n(name);
        // every frozen weight is multiplied as F32 or BF16 in training: quantized ones are
        // dequantized once at load (see convert_weights), which needs a to_float kernel
        if (t->type != GGML_TYPE_F32 && !ggml_get_type_traits(t->type)->to_float && unusable.empty()) unusable = n + " is " + ggml_type_name(t->type);
        // blk.N.<kind>.weight
        if (n.rfind("blk.", 0) != 0 || n.size() < 7 || n.compare(n.size() - 7, 7, ".weight") != 0) continue;
        size_t d1 = n.find('.', 4);
        std::string kind = n.substr(d1 + 1, n.size() - 7 - d1 - 1);
        if (wanted.count(kind) && ggml_n_dims(t) == 2) info.targets.push_back({n, t->ne[0], t->ne[1]});
    }
    gguf_free(g);
    ggml_free(meta);
    if (!unusable.empty())
        throw fatal("unsupported_model", "the base model has weights ggml cannot dequantize (" + unusable + "): use an F32, F16, BF16 or quantized GGUF of a type llama.cpp runs");
    if (info.targets.empty()) throw fatal("bad_model", "the base model has none of the target projections " + fmt("(%zu asked)", short_targets.size()));
    std::sort(info.targets.begin(), info.targets.end(), [](const TargetTensor & a, const TargetTensor & b) { return a.name < b.name; });
    return info;
}

void write_adapter(const std::string & path, const std::string & arch, float alpha, const std::vector<HostLora> & loras,
                   const std::vector<std::pair<std::string, std::string>> & extra_kv) {
    size_t bytes = 0;
    for (auto & l : loras) bytes += (l.a.size() + l.b.size()) * sizeof(float);
    ggml_init_params ip = {bytes + (loras.size() * 2 + 8) * ggml_tensor_overhead(), nullptr, false};
    ggml_context * ctx = ggml_init(ip);
    gguf_context * g = gguf_init_empty();
    gguf_set_val_str(g, "general.architecture", arch.c_str());
    gguf_set_val_str(g, "general.type", "adapter");
    gguf_set_val_str(g, "general.name", "steerbot adapter");
    gguf_set_val_str(g, "adapter.type", "lora");
    gguf_set_val_f32(g, "adapter.lora.alpha", alpha);
    for (auto & kv : extra_kv) gguf_set_val_str(g, kv.first.c_str(), kv.second.c_str());
    for (auto & l : loras) {
        ggml_tensor * a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, l.n_in, l.rank);
        ggml_tensor * b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, l.rank, l.n_out);
        ggml_set_name(a, (l.name + ".lora_a").c_str());
        ggml_set_name(b, (l.name + ".lora_b").c_str());
        memcpy(a->data, l.a.data(), ggml_nbytes(a));
        memcpy(b->data, l.b.data(), ggml_nbytes(b));
        gguf_add_tensor(g, a);
        gguf_add_tensor(g, b);
    }
    const std::string tmp = path + ".tmp";
    bool ok = gguf_write_to_file(g, tmp.c_str(), false);
    gguf_free(g);
    ggml_free(ctx);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) throw fatal("io", "cannot write the adapter to " + path);
}

std::vector<HostLora> fresh_loras(const BaseInfo & base, const Options & o, std::mt19937 & rng) {
    std::vector<HostLora> out;
    std::normal_distribution<float> nb(0.0f, o.init_b_std > 0 ? o.init_b_std : 1.0f);
    for (auto & t : base.targets) {
        HostLora l;
        l.name = t.name;
        l.n_in = t.n_in;
        l.n_out = t.n_out;
        l.rank = o.rank;
        // A ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (kaiming-uniform with a = sqrt(5), as PEFT); B = 0
        std::uniform_real_distribution<float> ua(-1.0f / sqrtf((float) t.n_in), 1.0f / sqrtf((float) t.n_in));
        l.a.resize(t.n_in * o.rank);
        for (auto & v : l.a) v = ua(rng);
        l.b.assign(o.rank * t.n_out, 0.0f);
        if (o.init_b_std > 0) for (auto & v : l.b) v = nb(rng);
        out.push_back(std::move(l));
    }
    return out;
}

std::vector<HostLora> read_loras(llama_adapter_lora * adapter) {
    std::map<std::string, std::pair<ggml_tensor *, ggml_tensor *>> ab;
    llama_steer_adapter_tensors(adapter, [](void * ud, const char * name, ggml_tensor * a, ggml_tensor * b) {
        (*(std::map<std::string, std::pair<ggml_tensor *, ggml_tensor *>> *) ud)[name] = {a, b};
    }, &ab);
    std::vector<HostLora> out;
    for (auto & [name, t] : ab) {
        HostLora l;
        l.name = name;
        l.n_in = t.first->ne[0];
        l.rank = t.first->ne[1];
        l.n_out = t.second->ne[1];
        l.a.resize(ggml_nelements(t.first));
        l.b.resize(ggml_nelements(t.second));
        ggml_backend_tensor_get(t.first, l.a.data(), 0, ggml_nbytes(t.first));
        ggml_backend_tensor_get(t.second, l.b.data(), 0, ggml_nbytes(t.second));
        for (float v : l.a) if (!std::isfinite(v)) throw fatal("diverged", "training diverged: " + name + ".lora_a has non-finite values");
        for (float v : l.b) if (!std::isfinite(v)) throw fatal("diverged", "training diverged: " + name + ".lora_b has non-finite values");
        out.push_back(std::move(l));
    }
    return out;
}

}  // namespace steer
