// steerbot extension of llama.cpp: see llama-steer.h. Compiled into libllama, with its private
// headers (src/): llama_context's members through the `friend struct llama_steer_access` the patch adds.
#include "llama-steer.h"

#include "llama-adapter.h"
#include "llama-batch.h"
#include "llama-context.h"
#include "llama-impl.h"
#include "llama-memory.h"
#include "llama-model.h"

#include <atomic>
#include <cstdlib>

static std::atomic<uint32_t> g_graph_scale{0};

uint32_t llama_steer_graph_scale() {
    uint32_t s = g_graph_scale.load();
    if (s == 0) {
        const char * env = getenv("LLAMA_GRAPH_NODES_SCALE");
        s = env ? (uint32_t) std::max(1, atoi(env)) : 1;
        g_graph_scale.store(s);
    }
    return s;
}

void llama_steer_set_graph_scale(uint32_t scale) {
    g_graph_scale.store(scale < 1 ? 1 : scale);
}

static std::atomic<bool> g_direct_kv{false};

void llama_steer_set_direct_kv(bool enabled) {
    g_direct_kv.store(enabled);
}

bool llama_steer_direct_kv() {
    return g_direct_kv.load();
}

struct llama_steer_access {
    static int32_t eval(llama_context & lctx, const llama_token * tokens, const int8_t * outputs, int32_t n_tokens,
                        const llama_steer_callbacks & cb) {
        if (n_tokens <= 0 || (uint32_t) n_tokens > lctx.cparams.n_ubatch) {
            LLAMA_LOG_ERROR("%s: n_tokens = %d must be in [1, n_ubatch = %u]\n", __func__, n_tokens, lctx.cparams.n_ubatch);
            return -1;
        }
        lctx.sched_reserve();
        lctx.memory->clear(true);

        llama_batch batch = llama_batch_init(n_tokens, 0, 1);
        batch.n_tokens = n_tokens;
        for (int32_t i = 0; i < n_tokens; ++i) {
            batch.token[i]     = tokens[i];
            batch.pos[i]       = i;
            batch.n_seq_id[i]  = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i]    = outputs[i] != 0;
        }

        int32_t ret = 0;
        do {
            if (!lctx.balloc->init(batch, lctx.model.vocab, lctx.memory.get(), lctx.model.hparams.n_embd_inp(),
                                   lctx.cparams.kv_unified ? LLAMA_MAX_SEQ : lctx.cparams.n_seq_max, false)) {
                LLAMA_LOG_ERROR("%s: failed to initialize batch\n", __func__);
                ret = -2; break;
            }
            const uint32_t n_outputs_all = lctx.balloc->get_n_outputs();
            lctx.n_queued_tokens += n_tokens;
            lctx.embd_seq.clear();

            auto mctx = lctx.memory->init_batch(*lctx.balloc, lctx.cparams.n_ubatch, false);
            if (!mctx || mctx->get_status() != LLAMA_MEMORY_STATUS_SUCCESS) {
                LLAMA_LOG_ERROR("%s: could not initialize the memory for the batch\n", __func__);
                ret = -3; break;
            }
            if (lctx.output_reserve(n_outputs_all) < n_outputs_all) {
                LLAMA_LOG_ERROR("%s: could not reserve %u outputs\n", __func__, n_outputs_all);
                ret = -4; break;
            }
            const auto & ubatch = mctx->get_ubatch();
            if ((int32_t) ubatch.n_tokens != n_tokens) {
                LLAMA_LOG_ERROR("%s: the batch was split into ubatches\n", __func__);
                ret = -5; break;
            }
            lctx.n_outputs = n_outputs_all;
            if (!mctx->apply()) {
                LLAMA_LOG_ERROR("%s: failed to apply the memory context\n", __func__);
                ret = -6; break;
            }

            auto * res = lctx.gf_res_prev.get();
            const auto gparams = lctx.graph_params(res, ubatch, mctx.get(), LLM_GRAPH_TYPE_DEFAULT);
            res->reset();
            ggml_backend_sched_reset(lctx.sched.get());
            ggml_backend_sched_set_eval_callback(lctx.sched.get(), lctx.cparams.cb_eval, lctx.cparams.cb_eval_user_data);

            ggml_cgraph * gf = lctx.model.build_graph(gparams);
            if (!gf || !res->get_logits()) {
                LLAMA_LOG_ERROR("%s: failed to build the graph\n", __func__);
                ret = -7; break;
            }
            ggml_cgraph * graph = cb.build(cb.ud, gf, res->get_logits());
            if (!graph) { ret = -8; break; }

            if (!ggml_backend_sched_alloc_graph(lctx.sched.get(), graph)) {
                LLAMA_LOG_ERROR("%s: failed to allocate the graph\n", __func__);
                ret = -9; break;
            }
            res->set_inputs(&ubatch);
            if (cb.set_inputs && !cb.set_inputs(cb.ud)) { ret = -10; break; }

            const ggml_status status = lctx.graph_compute(graph, n_tokens > 1);
            ggml_backend_sched_synchronize(lctx.sched.get());
            if (status != GGML_STATUS_SUCCESS) {
                LLAMA_LOG_ERROR("%s: failed to compute the graph: %d\n", __func__, (int) status);
                ret = -11; break;
            }
            if (cb.read_outputs && !cb.read_outputs(cb.ud)) { ret = -12; break; }
        } while (false);

        // the graph result no longer matches what the scheduler holds: never reuse it
        lctx.gf_res_prev->reset();
        ggml_backend_sched_reset(lctx.sched.get());
        lctx.memory->clear(true);
        llama_batch_free(batch);
        return ret;
    }
};

int32_t llama_steer_eval(llama_context * ctx, const llama_token * tokens, const int8_t * outputs, int32_t n_tokens,
                         const llama_steer_callbacks * cb) {
    return llama_steer_access::eval(*ctx, tokens, outputs, n_tokens, *cb);
}

void llama_steer_adapter_tensors(llama_adapter_lora * adapter, llama_steer_lora_fn fn, void * ud) {
    for (auto & it : adapter->ab_map) {
        fn(ud, it.first.c_str(), it.second.a, it.second.b);
    }
}
