// steer-train: steerbot's LoRA trainer on llama.cpp graphs. main() parses the command line and
// dispatches to a mode; a failure becomes one error line and an exit code.
//
// Modes (first argument):
//   train       train a LoRA adapter (masked SFT, localized DPO, or both) and write its GGUF
//   eval        per pair: log-probs of the chosen and rejected spans given the prompt
//   grad-check  analytic vs finite-difference gradients of the weighted loss on LoRA entries
//   peak        measured F32 FMA / BF16 dot-product / AMX-BF16 tile GFLOP/s of this CPU
//
// Data: data.h. Loss: loss.h. Only the adapter's lora_a/lora_b tensors are trainable;
// gradients are accumulated in our own buffers and cleared after every optimizer step (AdamW,
// ggml_opt_step_adamw).
//
// stdout: JSON lines ({"type":"start"|"backward"|"progress"|"epoch"|"done"|"eval"|"grad"|"peak"|"error",...}).
// stderr: llama.cpp logs (only warnings and errors unless --verbose).
// Exit: 0, 2 on a reported failure (fatal: {"type":"error","code":...}), 3 on any other exception.
#include "common.h"
#include "modes.h"
#include "options.h"

#include "llama.h"

#include <cstdlib>
#include <exception>

#if defined(__linux__)
#include <csignal>
#include <sys/prctl.h>
#include <unistd.h>
#endif

// A trainer outlives a bot killed with SIGKILL (an OOM kill, a `kill -9`, a crashed
// container) unless the kernel ends it: its next write to the dead parent's pipe would, but the
// silent phases (loading and converting the model, a long optimizer step, an evaluation) can
// last minutes and hold every core. So it asks for SIGTERM when its parent dies, and checks
// once that the parent which spawned it (STEER_TRAIN_PARENT_PID, set by the bot) is still
// there: it may have died between fork and this line.
static void exit_with_parent() {
#if defined(__linux__)
    const char * want = std::getenv("STEER_TRAIN_PARENT_PID");
    if (!want) return;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != (pid_t) std::atol(want)) raise(SIGTERM);
#endif
}

int main(int argc, char ** argv) {
    using namespace steer;
    exit_with_parent();
    try {
        Options o = parse_args(argc, argv);
        llama_log_set(log_cb, nullptr);
        llama_backend_init();
        int rc = 0;
        if (o.mode == "train") rc = mode_train(o);
        else if (o.mode == "eval") rc = mode_eval(o);
        else if (o.mode == "peak") rc = mode_peak(o);
        else rc = mode_grad_check(o);
        llama_backend_free();
        return rc;
    } catch (const fatal & e) {
        emit(fmt("{\"type\":\"error\",\"code\":%s,\"message\":%s}", json_str(e.code).c_str(), json_str(e.what()).c_str()));
        return 2;
    } catch (const std::exception & e) {
        emit(fmt("{\"type\":\"error\",\"code\":\"internal\",\"message\":%s}", json_str(e.what()).c_str()));
        return 3;
    }
}
