// steer-train eval: per pair, the log-probs of the chosen span (with its mean per token and
// log P(end of turn) after it) and of the rejected span given the prompt; per raw sequence its
// weighted loss. Runs on any model node-llama-cpp runs, quantized included.
#include "common.h"
#include "data.h"
#include "loss.h"
#include "modes.h"
#include "session.h"

#include <chrono>
#include <cmath>

namespace steer {

static llama_token end_token(const llama_vocab * vocab) {
    llama_token t = llama_vocab_eot(vocab);
    if (t == LLAMA_TOKEN_NULL) t = llama_vocab_eos(vocab);
    return t;
}

int mode_eval(Options & o) {
    BaseInfo base;  // eval may run on any model node-llama-cpp runs, quantized included
    Session S;
    S.opt = o;
    load_backends(o);
    // the vocab (read alone first) checks the data, the data sizes the context
    std::vector<Pair> pairs = load_pairs(o);
    open_session(S, base, nullptr, max_seq_len(pairs), false);
    const llama_token end = end_token(S.vocab);
    auto t0 = std::chrono::steady_clock::now();
    int idx = 0;
    for (auto & p : pairs) {
        std::string line = fmt("{\"type\":\"eval\",\"index\":%d,\"line\":%d", idx++, p.line);
        if (p.raw) {
            Seq s = raw_seq(p, 1.0f);
            auto nll = forward_nll(S, s);
            double l = 0, wsum = 0;
            for (size_t i = 0; i < nll.size(); ++i) { l += s.rows[i].weight * nll[i]; wsum += fabs(s.rows[i].weight); }
            line += ",\"loss\":" + json_num(l) + ",\"weight\":" + json_num(wsum);
        } else {
            Seq c = span_seq(p.prompt, p.chosen, 1.0f, end);
            auto nc = forward_nll(S, c);
            double sc = 0;
            for (size_t i = 0; i + 1 < nc.size(); ++i) sc -= nc[i];
            line += ",\"chosenLogprob\":" + json_num(sc) + ",\"chosenTokens\":" + std::to_string(p.chosen.size());
            line += ",\"chosenMeanLogprob\":" + json_num(sc / p.chosen.size());
            line += ",\"endLogprob\":" + json_num(-nc.back());
            if (!p.rejected.empty()) {
                Seq r = span_seq(p.prompt, p.rejected, 1.0f);
                auto nr = forward_nll(S, r);
                double sr = 0;
                for (float v : nr) sr -= v;
                line += ",\"rejectedLogprob\":" + json_num(sr) + ",\"rejectedTokens\":" + std::to_string(p.rejected.size());
                line += ",\"rejectedMeanLogprob\":" + json_num(sr / p.rejected.size());
            }
        }
        emit(line + "}");
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    emit(fmt("{\"type\":\"done\",\"pairs\":%zu,\"seconds\":%s}", pairs.size(), json_num(secs).c_str()));
    return 0;
}

}  // namespace steer
