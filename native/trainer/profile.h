// steer-train --profile: wall time per kind of graph node, for work on the trainer's speed.
//
// With the flag the scheduler runs every node on its own (the eval callback asks for each), so
// the time between "about to run" and "done" is that node's; nodes are grouped by op, the
// weight's name without its layer number, and the operands' shapes. The separate dispatches
// cost time of their own, so the totals are for comparing nodes, not for quoting tokens/s.
#pragma once

struct ggml_tensor;

namespace steer {

// the llama.cpp eval callback (ggml_backend_sched_eval_callback)
bool profile_eval_cb(ggml_tensor * t, bool ask, void * ud);

// the groups that took the most time, as a table on stderr; clears the totals
void profile_report(int top);

}  // namespace steer
