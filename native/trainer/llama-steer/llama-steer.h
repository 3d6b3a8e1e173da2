// steerbot extension of llama.cpp, compiled into libllama by native/trainer/CMakeLists.txt
// (its hooks into upstream files: native/trainer/patches/llama-steer.diff).
// Lets a trainer drive one llama graph by hand: build a loss of its own on the logits,
// add the backward pass and optimizer nodes, and compute it with the context's scheduler.
#pragma once

#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Multiplies the graph node budget of contexts created afterwards (a backward graph needs
// about 3x the nodes of its forward graph; upstream budgets the forward graph only).
// The environment variable LLAMA_GRAPH_NODES_SCALE sets the same (used by llama-finetune).
LLAMA_API void llama_steer_set_graph_scale(uint32_t scale);

// Training graphs attend to the current ubatch's K/V directly (not read back from the KV
// cache), so that gradients reach the K/V projections and flow through them to earlier layers.
// Only for contexts used with llama_steer_eval. Default false.
LLAMA_API void llama_steer_set_direct_kv(bool enabled);
LLAMA_API bool llama_steer_direct_kv(void);

struct llama_steer_callbacks {
    // gets the forward graph and its logits (one row per output position, in batch order);
    // returns the graph to compute (gf itself, or a bigger graph containing it)
    struct ggml_cgraph * (*build)(void * ud, struct ggml_cgraph * gf, struct ggml_tensor * logits);
    // called after the graph is allocated and the model inputs are set
    bool (*set_inputs)(void * ud);
    // called after the graph was computed, while its tensors are still allocated
    bool (*read_outputs)(void * ud);
    void * ud;
};

// Evaluates one sequence (n_tokens <= n_ubatch) from position 0 on an emptied memory.
// outputs[i] != 0 marks the positions whose logits are rows of `logits`.
// Returns 0 on success.
LLAMA_API int32_t llama_steer_eval(
        struct llama_context * ctx,
        const llama_token * tokens,
        const int8_t * outputs,
        int32_t n_tokens,
        const struct llama_steer_callbacks * cb);

typedef void (*llama_steer_lora_fn)(void * ud, const char * name, struct ggml_tensor * a, struct ggml_tensor * b);

// Calls fn for every (base weight name, lora_a, lora_b) of a loaded adapter.
LLAMA_API void llama_steer_adapter_tensors(struct llama_adapter_lora * adapter, llama_steer_lora_fn fn, void * ud);

#ifdef __cplusplus
}
#endif
