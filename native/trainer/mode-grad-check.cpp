// steer-train grad-check: analytic vs central-difference gradients of the weighted loss, on the
// largest-gradient entry of every LoRA A/B (B random so that A gets gradients too), the analytic
// ones twice through the training path (a missing reset of the accumulators shows).
// --kl-weight > 0: every other weighted row gets a soft target instead (a random distribution
// over --kl-top random tokens with 0.8 of the mass, the rest spread evenly), the retention
// rows' cross-entropy path.
#include "adapter-gguf.h"
#include "common.h"
#include "data.h"
#include "loss.h"
#include "modes.h"
#include "session.h"

#include "ggml-backend.h"

#include <cmath>
#include <random>

namespace steer {

int mode_grad_check(Options & o) {
    BaseInfo base = inspect_base(o.model, split(o.targets, ','));
    load_backends(o);
    std::vector<Pair> pairs = load_pairs(o);
    std::mt19937 rng(o.seed);
    if (o.init_b_std <= 0) o.init_b_std = 0.05f;
    auto loras = fresh_loras(base, o, rng);
    Session S;
    S.opt = o;
    open_session(S, base, &loras, max_seq_len(pairs), true);

    // the examples' total loss, normalised by the total weight (as in training)
    std::vector<Seq> seqs;
    double wsum = 0;
    for (auto & p : pairs) {
        Seq s = sft_seq(p, 1.0f);
        for (auto & r : s.rows) wsum += fabs(r.weight);
        seqs.push_back(std::move(s));
    }
    for (auto & s : seqs) for (auto & r : s.rows) r.weight /= (float) wsum;
    std::vector<SoftTarget> soft_targets;
    if (o.kl_weight > 0) {
        size_t n = 0;
        for (auto & s : seqs) n += (s.rows.size() + 1) / 2;
        soft_targets.reserve(n);  // pointers into it stay valid
        std::uniform_int_distribution<int> tok(0, S.n_vocab - 1);
        std::uniform_real_distribution<float> u(0.05f, 1.0f);
        for (auto & s : seqs) {
            s.soft.assign(s.rows.size(), nullptr);
            for (size_t r = 0; r < s.rows.size(); r += 2) {
                SoftTarget t;
                float z = 0;
                for (int i = 0; i < std::min(o.kl_top, S.n_vocab); ++i) {
                    t.ids.push_back(tok(rng));
                    t.probs.push_back(u(rng));
                    z += t.probs.back();
                }
                for (auto & pr : t.probs) pr *= 0.8f / z;
                t.rest = 0.2f;  // spread over the other tokens
                soft_targets.push_back(std::move(t));
                s.soft[r] = &soft_targets.back();
            }
        }
    }

    // analytic, twice through the training path (accumulate over all examples, then a
    // negligible optimizer step which must clear the accumulators): both rounds must agree
    AdamW tiny;
    tiny.lr = 1e-30f;
    std::vector<std::vector<float>> analytic[2];
    double loss0 = 0;
    for (int round = 0; round < 2; ++round) {
        double loss = 0;
        for (size_t i = 0; i < seqs.size(); ++i) {
            EvalJob J;
            J.S = &S;
            J.seq = &seqs[i];
            J.backward = true;
            bool last = i + 1 == seqs.size();
            J.step = last ? &tiny : nullptr;
            J.capture_grads = last;
            run_seq(S, J);
            loss += J.loss_value;
            if (last) analytic[round] = J.grads;
        }
        if (round == 0) loss0 = loss;
    }
    auto total_loss = [&]() {
        double l = 0;
        for (auto & s : seqs) {
            auto nll = forward_nll(S, s);
            for (size_t i = 0; i < nll.size(); ++i) l += (double) s.rows[i].weight * nll[i];
        }
        return l;
    };
    emit(fmt("{\"type\":\"start\",\"mode\":\"grad-check\",\"loss\":%s,\"params\":%zu}", json_num(loss0).c_str(), S.params.size()));
    // --check-layers: the finite differences cost two forward passes per tensor, so on a real
    // model (18 layers x 14 tensors) a few layers stand for all
    std::vector<std::string> layers = split(o.check_layers, ',');
    auto checked = [&](const std::string & name) {
        if (layers.empty()) return true;
        for (auto & l : layers)
            if (name.rfind("blk." + l + ".", 0) == 0) return true;
        return false;
    };
    for (size_t pi = 0; pi < S.params.size(); ++pi) {
        Param & P = S.params[pi];
        if (!checked(P.name)) continue;
        const auto & g = analytic[0][pi];
        const auto & g2 = analytic[1][pi];
        double gmax = 0, rdiff = 0, norm = 0;
        size_t imax = 0;
        for (size_t j = 0; j < g.size(); ++j) {
            norm += (double) g[j] * g[j];
            if (fabs(g[j]) > gmax) { gmax = fabs(g[j]); imax = j; }
            rdiff = std::max(rdiff, (double) fabs(g[j] - g2[j]));
        }
        // numeric check on the entry with the largest gradient (or entry 0 when all are zero)
        std::vector<float> data(ggml_nelements(P.t));
        ggml_backend_tensor_get(P.t, data.data(), 0, ggml_nbytes(P.t));
        const float orig = data[imax];
        auto at = [&](float v) {
            ggml_backend_tensor_set(P.t, &v, imax * sizeof(float), sizeof(float));
            return total_loss();
        };
        double lp = at(orig + o.eps);
        double lm = at(orig - o.eps);
        ggml_backend_tensor_set(P.t, &orig, imax * sizeof(float), sizeof(float));
        double numeric = (lp - lm) / (2.0 * o.eps);
        emit(fmt("{\"type\":\"grad\",\"name\":%s,\"index\":%zu,\"analytic\":%s,\"analyticRepeat\":%s,\"numeric\":%s,\"maxAbsGrad\":%s,\"maxRepeatDiff\":%s,\"norm\":%s}",
                 json_str(P.name).c_str(), imax, json_num(g[imax]).c_str(), json_num(g2[imax]).c_str(), json_num(numeric).c_str(),
                 json_num(gmax).c_str(), json_num(rdiff).c_str(), json_num(sqrt(norm)).c_str()));
    }
    emit("{\"type\":\"done\"}");
    return 0;
}

}  // namespace steer
