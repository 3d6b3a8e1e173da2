// steer-train: the modes main() dispatches to, one file each (mode-*.cpp). Each prints its
// JSON lines and returns the exit code; failures throw fatal.
#pragma once

#include "options.h"

namespace steer {

int mode_train(Options & o);       // train a LoRA adapter and write its GGUF
int mode_eval(Options & o);        // per pair: log-probs of the chosen and rejected spans
int mode_grad_check(Options & o);  // analytic vs finite-difference gradients
int mode_peak(const Options & o);  // measured peak throughput of this CPU

}  // namespace steer
