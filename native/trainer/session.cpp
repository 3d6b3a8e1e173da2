// steer-train: opening and closing a session (see session.h).
#include "session.h"

#include "common.h"
#include "llama-steer.h"
#include "profile.h"

#include <algorithm>
#include <cstdio>

#include <unistd.h>

namespace steer {

Session::~Session() {
    for (auto & [c, b] : transposed_bufs) { ggml_backend_buffer_free(b); ggml_free(c); }
    if (ctx) llama_free(ctx);
    if (buf_acc) ggml_backend_buffer_free(buf_acc);
    if (buf_state) ggml_backend_buffer_free(buf_state);
    if (ctx_state) ggml_free(ctx_state);
    if (model) llama_model_free(model);
    if (!tmp_adapter.empty()) remove(tmp_adapter.c_str());
}

void Session::set_adapter_scale(float scale) {
    if (!adapter) return;
    llama_adapter_lora * ad = adapter;
    if (llama_set_adapters_lora(ctx, &ad, 1, &scale) != 0) throw fatal("internal", "cannot set the adapter");
}

void load_backends(const Options & o) {
    static bool done = false;
    if (done) return;
    done = true;
    if (!o.backend_dir.empty()) ggml_backend_load_all_from_path(o.backend_dir.c_str());
    else ggml_backend_load_all();
    if (ggml_backend_reg_count() == 0 || !ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        throw fatal("no_backend", "no ggml CPU backend could be loaded from " + o.backend_dir);
}

bool has_gpu() {
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        auto t = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

void open_session(Session & S, const BaseInfo & base, const std::vector<HostLora> * fresh, size_t n_ctx_needed, bool trainable) {
    const Options & o = S.opt;
    load_backends(o);
    llama_steer_set_graph_scale(trainable ? 4 : 1);
    // attend to the ubatch's own K/V: gradients then reach attn_k/attn_v and flow through them
    // to earlier layers (--cached-kv restores upstream's behaviour, for comparison)
    llama_steer_set_direct_kv(!o.cached_kv);

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o.gpu_layers >= 0 ? o.gpu_layers : (has_gpu() ? 999 : 0);
    S.on_gpu = mp.n_gpu_layers > 0 && has_gpu();
    // mapped, so that pages of weights we no longer read can leave memory (see prepare_weights)
    // training dequantizes quantized weights from their file layout (see convert_weights): no
    // repacking into the CPU's interleaved layouts, whose buffers are not plain host memory
    if (trainable) mp.use_extra_bufts = false;
    S.mmapped = llama_supports_mmap();
    if (S.mmapped) mp.load_mode = LLAMA_LOAD_MODE_MMAP;
    S.model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!S.model) throw fatal("bad_model", "cannot load the base model " + o.model);
    S.vocab = llama_model_get_vocab(S.model);
    S.n_vocab = llama_vocab_n_tokens(S.vocab);

    std::string adapter_path = o.adapter;
    if (fresh) {
        S.tmp_adapter = fmt("%s.init-%d.gguf", o.out.empty() ? "/tmp/steer-train" : o.out.c_str(), (int) getpid());
        write_adapter(S.tmp_adapter, base.arch, o.alpha, *fresh, {});
        adapter_path = S.tmp_adapter;
    }
    if (!adapter_path.empty()) {
        S.adapter = llama_adapter_lora_init(S.model, adapter_path.c_str());
        if (!S.adapter) throw fatal("bad_adapter", "cannot load the adapter " + adapter_path + " on this base model");
    }

    const uint32_t n_ctx = (uint32_t) std::max<size_t>(64, (n_ctx_needed + 63) / 64 * 64);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // FLASH_ATTN_EXT has no backward pass
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    if (o.profile) cp.cb_eval = profile_eval_cb;
    S.ctx = llama_init_from_model(S.model, cp);
    if (!S.ctx) throw fatal("internal", "cannot create a llama context");
    S.set_adapter_scale(1.0f);

    S.trainable = trainable;
    if (!trainable) return;
    // BF16 products need the CPU's BF16 dot product (AVX512-BF16) to be faster than F32;
    // upstream's OUT_PROD has no BF16 kernel; grad-check's finite differences need F32 unless asked
    // AMX: the tile unit, when the CPU has one and the kernel grants it
    const bool auto_fast = o.compute_type == "auto" && o.mode == "train";
    S.amx = !o.out_prod_backward && !S.on_gpu && (o.compute_type == "amx" || auto_fast) && amx_bf16_available();
    if (o.compute_type == "amx" && !S.amx) throw fatal("usage", "--compute-type amx needs a CPU with AMX-BF16 (and no GPU offload)");
    S.bf16 = !S.amx && !o.out_prod_backward &&
             (o.compute_type == "bf16" || (auto_fast && cpu_has_avx512_bf16()));

    // trainable tensors: every lora_a/lora_b of the adapter
    struct Collect { std::vector<std::pair<std::string, ggml_tensor *>> v; } col;
    llama_steer_adapter_tensors(S.adapter, [](void * ud, const char *, ggml_tensor * a, ggml_tensor * b) {
        auto * c = (Collect *) ud;
        c->v.push_back({a->name, a});
        c->v.push_back({b->name, b});
    }, &col);
    std::sort(col.v.begin(), col.v.end());
    ggml_init_params ip = {(col.v.size() * 3 + 4) * ggml_tensor_overhead(), nullptr, true};
    S.ctx_state = ggml_init(ip);
    ggml_context * ctx_acc = ggml_init(ggml_init_params{(col.v.size() + 2) * ggml_tensor_overhead(), nullptr, true});
    for (auto & [name, t] : col.v) {
        if (t->type != GGML_TYPE_F32) throw fatal("bad_adapter", "adapter tensor " + name + " is not F32");
        ggml_set_param(t);
        Param p;
        p.name = name;
        p.t = t;
        p.acc = ggml_dup_tensor(ctx_acc, t);
        p.m = ggml_dup_tensor(S.ctx_state, t);
        p.v = ggml_dup_tensor(S.ctx_state, t);
        ggml_format_name(p.acc, "grad acc %s", name.c_str());
        S.param_index[t] = S.params.size();
        S.params.push_back(p);
    }
    S.loss_seed = ggml_new_tensor_1d(S.ctx_state, GGML_TYPE_F32, 1);
    ggml_set_name(S.loss_seed, "loss seed");
    // state lives where the adapter lives (GPU when offloaded)
    ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(S.params[0].t->buffer);
    S.buf_acc = ggml_backend_alloc_ctx_tensors_from_buft(ctx_acc, buft);
    S.buf_state = ggml_backend_alloc_ctx_tensors_from_buft(S.ctx_state, buft);
    if (!S.buf_acc || !S.buf_state) throw fatal("oom", "cannot allocate the optimizer state");
    ggml_backend_buffer_clear(S.buf_acc, 0);
    ggml_backend_buffer_clear(S.buf_state, 0);
    // ctx_acc's metadata must stay alive: keep it with the state context
    static std::vector<ggml_context *> keep;
    keep.push_back(ctx_acc);
}

}  // namespace steer
