// steer-train train: masked SFT and localized DPO (or both) on a LoRA adapter (fresh, or
// --adapter to continue one), warmup + cosine/linear/constant schedule, --grad-accum examples
// per AdamW step; progress as JSON lines, the adapter GGUF at the end.
//   SFT: weight 1/N_tokens(step) on the chosen tokens, 0 elsewhere, no EOS appended.
//   DPO: per pair w = β·σ(−βΔ)/N_pairs(step) on the chosen tokens, −w on the rejected ones, with
//   Δ = (logp_θ(c) − logp_ref(c)) − (logp_θ(r) − logp_ref(r)) recomputed every step; the
//   reference is the base model (adapter scale 0), computed once.
//   Retention (--kl-weight λ > 0): on a fixed random subset of each steer's prompt positions (its
//   context and accepted prefix: text the steer does not object to), cross-entropy to the base
//   model's distribution there (its top --kl-top tokens and one bin for the rest; computed once)
//   with weight
//   λ/N_rows(step), added to the sequence of the chosen span: KL(base || adapter) up to the
//   base's entropy, so the adapter moves the distribution where the steer asks and holds it
//   elsewhere. Replay anchors (data lines {"anchor":[ids],"from":k}: replies nobody steered)
//   get the same rows on their reply positions, in turn, ceil(anchors / steps) per optimizer
//   step (at least one; every anchor is used in a run however few its steps), each as a
//   sequence of its own: the base is held on the model's ordinary answers too, not only on the
//   steers' prompts. A steer's "after" tokens (what the reply went on with once resumed) get
//   them too, appended to the chosen span's sequence: the adapter learns the span, and the base
//   decides what follows it (not the span again).
//   --learned-at P < 1: a pair whose chosen span the adapter already writes with geometric-mean
//   token probability >= P (measured in the forward pass DPO makes anyway; one extra forward
//   pass for SFT alone) is held back in that step: only its retention rows train. Why: a
//   one-token steer is learned in a few steps, and pushing it further (SFT towards 1, DPO
//   without bound) moves the same token up everywhere else too.
#include "adapter-gguf.h"
#include "common.h"
#include "data.h"
#include "loss.h"
#include "modes.h"
#include "profile.h"
#include "session.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <random>

namespace steer {

static float lr_at(const Options & o, int64_t step, int64_t total) {
    const int64_t warm = o.warmup >= 1 ? (int64_t) o.warmup : (int64_t) std::ceil(o.warmup * total);
    if (step <= warm && warm > 0) return o.lr * (float) step / (float) warm;
    if (o.schedule == "constant" || total <= warm) return o.lr;
    const double p = (double) (step - warm) / (double) std::max<int64_t>(1, total - warm);
    if (o.schedule == "linear") return (float) (o.lr * std::max(0.0, 1.0 - p)) + 1e-12f;
    return (float) (o.lr * 0.5 * (1.0 + cos(M_PI * std::min(1.0, p)))) + 1e-12f;
}

int mode_train(Options & o) {
    BaseInfo base = inspect_base(o.model, split(o.targets, ','));
    load_backends(o);
    std::vector<Anchor> anchors;
    std::vector<Pair> pairs = load_pairs(o, &anchors);
    if (o.kl_weight <= 0) anchors.clear();  // they only carry retention rows
    const bool use_sft = o.objective != "dpo";
    const bool use_dpo = o.objective != "sft";
    if (use_dpo) {
        size_t with_rejected = 0;
        for (auto & p : pairs) with_rejected += !p.raw && !p.rejected.empty();
        if (with_rejected == 0) throw fatal("bad_data", "objective " + o.objective + " needs pairs with a non-empty rejected span");
    }
    std::mt19937 rng(o.seed);
    std::vector<HostLora> loras;
    Session S;
    S.opt = o;
    if (o.adapter.empty()) {
        loras = fresh_loras(base, o, rng);
        open_session(S, base, &loras, max_seq_len(pairs, anchors), true);
    } else {
        open_session(S, base, nullptr, max_seq_len(pairs, anchors), true);  // continue training an adapter
    }

    // reference log-probs (adapter scale 0 = the base model) of both spans, once
    std::vector<double> ref_c(pairs.size(), 0), ref_r(pairs.size(), 0);
    if (use_dpo) {
        S.set_adapter_scale(0.0f);
        for (size_t i = 0; i < pairs.size(); ++i) {
            auto & p = pairs[i];
            if (p.raw || p.rejected.empty()) continue;
            for (float v : forward_nll(S, span_seq(p.prompt, p.chosen, 1.0f))) ref_c[i] -= v;
            for (float v : forward_nll(S, span_seq(p.prompt, p.rejected, 1.0f))) ref_r[i] -= v;
        }
        S.set_adapter_scale(1.0f);
    }

    // retention targets: positions of a sequence and the base's distribution there
    struct Retention {
        std::vector<int32_t> pos;
        std::vector<SoftTarget> targets;
    };
    // the base's binned distribution at up to kl_rows random positions of [lo, hi) of `tokens`
    // (position j predicts token j + 1); the adapter must be at scale 0
    auto base_targets = [&](const std::vector<llama_token> & tokens, int32_t lo, int32_t hi, SoftTarget::Kind kind) {
        Retention R;
        std::vector<int32_t> cand;
        for (int32_t j = lo; j < hi; ++j) cand.push_back(j);
        std::shuffle(cand.begin(), cand.end(), rng);
        cand.resize(std::min(cand.size(), (size_t) o.kl_rows));
        std::sort(cand.begin(), cand.end());
        if (cand.empty()) return R;
        Seq s;
        s.tokens = tokens;
        for (int32_t pos : cand) s.rows.push_back({pos, tokens[pos + 1], 0.0f});
        EvalJob J;
        J.S = &S;
        J.seq = &s;
        J.capture_logits = true;
        run_seq(S, J);
        const size_t V = (size_t) S.n_vocab;
        R.pos = cand;
        std::vector<int32_t> ids(V);
        for (size_t j = 0; j < cand.size(); ++j) {
            const float * x = J.logits_out.data() + j * V;
            const float mx = *std::max_element(x, x + V);
            double z = 0;
            for (size_t v = 0; v < V; ++v) z += exp((double) x[v] - mx);
            const size_t K = std::min(V, (size_t) o.kl_top);
            for (size_t v = 0; v < V; ++v) ids[v] = (int32_t) v;
            std::nth_element(ids.begin(), ids.begin() + (K - 1), ids.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
            SoftTarget t;
            double kept = 0, h = 0;
            for (size_t r = 0; r < K; ++r) {
                const double pr = exp((double) x[ids[r]] - mx) / z;
                kept += pr;
                t.ids.push_back(ids[r]);
                t.probs.push_back((float) pr);
                if (pr > 0) h -= pr * log(pr);
            }
            const double rest = std::max(0.0, 1.0 - kept);
            if (rest > 0) h -= rest * log(rest);
            t.rest = (float) rest;
            t.entropy = (float) h;
            t.kind = kind;
            R.targets.push_back(std::move(t));
        }
        return R;
    };
    std::vector<Retention> kl(pairs.size()), kl_after(pairs.size()), kl_anchor(anchors.size());
    if (o.kl_weight > 0) {
        S.set_adapter_scale(0.0f);
        for (size_t i = 0; i < pairs.size(); ++i) {
            auto & p = pairs[i];
            if (p.raw) continue;
            // positions 0 .. P-2 predict prompt tokens 1 .. P-1 (P-1 predicts the span: not held)
            if (p.prompt.size() >= 2) kl[i] = base_targets(p.prompt, 0, (int32_t) p.prompt.size() - 1, SoftTarget::PROMPT);
            // after the span: positions P+C-1 .. P+C+A-2 predict the continuation (the first one
            // whether and how the reply goes on once the span is written)
            if (!p.after.empty()) {
                std::vector<llama_token> t = p.prompt;
                t.insert(t.end(), p.chosen.begin(), p.chosen.end());
                const int32_t lo = (int32_t) t.size() - 1;
                t.insert(t.end(), p.after.begin(), p.after.end());
                kl_after[i] = base_targets(t, lo, (int32_t) t.size() - 1, SoftTarget::CONTINUATION);
            }
        }
        // an anchor's reply: positions from-1 .. T-2 predict its tokens from .. T-1
        for (size_t i = 0; i < anchors.size(); ++i) kl_anchor[i] = base_targets(anchors[i].tokens, anchors[i].from - 1, (int32_t) anchors[i].tokens.size() - 1, SoftTarget::ANCHOR);
        S.set_adapter_scale(1.0f);
    }
    std::vector<size_t> anchor_order(anchors.size());
    for (size_t i = 0; i < anchor_order.size(); ++i) anchor_order[i] = i;
    std::shuffle(anchor_order.begin(), anchor_order.end(), rng);
    size_t next_anchor = 0;
    std::vector<char> anchor_used(anchors.size(), 0);
    // appends R's rows (weight w, each with its target distribution) for a sequence of `tokens`
    auto push_rows = [](const Retention & R, const std::vector<llama_token> & tokens, float w, std::vector<Row> & rows, std::vector<const SoftTarget *> & soft) {
        for (size_t j = 0; j < R.pos.size(); ++j) {
            rows.push_back({R.pos[j], tokens[R.pos[j] + 1], w});
            soft.push_back(&R.targets[j]);
        }
    };
    // adds pair pi's retention rows to the sequence of its chosen span: the prompt's before the
    // span's rows, the continuation's after them (its tokens appended to the sequence)
    auto add_retention = [&](Seq & s, size_t pi, float w) {
        const auto & R = kl[pi];
        const auto & A = kl_after[pi];
        if ((R.pos.empty() && A.pos.empty()) || w <= 0) return;
        std::vector<Row> rows;
        std::vector<const SoftTarget *> soft;
        push_rows(R, pairs[pi].prompt, w, rows, soft);
        soft.resize(rows.size() + s.rows.size(), nullptr);
        rows.insert(rows.end(), s.rows.begin(), s.rows.end());
        if (!A.pos.empty()) {
            s.tokens.insert(s.tokens.end(), pairs[pi].after.begin(), pairs[pi].after.end());
            push_rows(A, s.tokens, w, rows, soft);
        }
        s.rows = std::move(rows);
        s.soft = std::move(soft);
    };

    // whether the adapter already writes a span of n tokens with log-prob logp well enough (--learned-at)
    const double learned_nll = -std::log((double) o.learned_at);
    auto learned = [&](double logp, size_t n) { return o.learned_at < 1.0f && n > 0 && -logp / (double) n <= learned_nll; };

    const int64_t steps_per_epoch = ((int64_t) pairs.size() + o.grad_accum - 1) / o.grad_accum;
    int64_t total_steps = steps_per_epoch * o.epochs;
    if (o.max_steps > 0) total_steps = std::min<int64_t>(total_steps, o.max_steps);
    // replay anchors per step: enough that a run uses every anchor at least once (a few short
    // steers make few steps, and one anchor a step would hold the base on a handful of replies)
    const size_t anchors_per_step = anchors.empty() ? 0 : std::max<size_t>(1, (anchors.size() + (size_t) total_steps - 1) / (size_t) std::max<int64_t>(1, total_steps));
    emit(fmt("{\"type\":\"start\",\"objective\":%s,\"pairs\":%zu,\"anchors\":%zu,\"steps\":%lld,\"stepsPerEpoch\":%lld,\"epochs\":%d,\"params\":%zu,\"trainableParameters\":%lld,\"targets\":%zu,\"threads\":%d,\"gpu\":%s}",
             json_str(o.objective).c_str(), pairs.size(), anchors.size(), (long long) total_steps, (long long) steps_per_epoch, o.epochs,
             S.params.size(), (long long) [&] { int64_t n = 0; for (auto & p : S.params) n += ggml_nelements(p.t); return n; }(),
             base.targets.size(), o.threads, has_gpu() ? "true" : "false"));

    auto t_start = std::chrono::steady_clock::now();
    int64_t step = 0;
    double tokens_done = 0;
    std::vector<size_t> order(pairs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    bool stop = false;
    for (int epoch = 1; epoch <= o.epochs && !stop; ++epoch) {
        std::shuffle(order.begin(), order.end(), rng);
        double epoch_loss = 0, epoch_dpo = 0;
        int64_t epoch_steps = 0;
        for (size_t g0 = 0; g0 < order.size() && !stop; g0 += o.grad_accum) {
            const size_t g1 = std::min(order.size(), g0 + o.grad_accum);
            ++step;
            AdamW adam;
            adam.lr = lr_at(o, step, total_steps);
            adam.wd = o.weight_decay;
            // the sequences of this optimizer step, with normalised weights
            std::vector<Seq> seqs;
            double n_tok = 0, n_dpo = 0, n_kl = 0;
            for (size_t gi = g0; gi < g1; ++gi) {
                auto & p = pairs[order[gi]];
                if (use_sft) n_tok += p.raw ? [&] { double s = 0; for (size_t i = 1; i < p.weights.size(); ++i) s += fabs(p.weights[i]); return s; }() : (double) p.chosen.size();
                if (use_dpo && !p.raw && !p.rejected.empty()) n_dpo += 1;
                if (use_sft || (use_dpo && !p.raw && !p.rejected.empty())) n_kl += (double) (kl[order[gi]].pos.size() + kl_after[order[gi]].pos.size());
            }
            // this step's replay anchors, in turn
            std::vector<size_t> step_anchors;
            for (size_t k = 0; k < anchors_per_step; ++k) {
                const size_t ai = anchor_order[next_anchor++ % anchor_order.size()];
                step_anchors.push_back(ai);
                n_kl += (double) kl_anchor[ai].pos.size();
            }
            const float w_kl = n_kl > 0 ? (float) (o.kl_weight / n_kl) : 0.0f;
            double dpo_loss = 0;
            int held = 0;             // learned pairs this step holds back (--learned-at)
            double held_sft_nll = 0;  // their chosen spans' NLL (in no row)
            for (size_t gi = g0; gi < g1; ++gi) {
                const size_t pi = order[gi];
                auto & p = pairs[pi];
                float w_sft = use_sft && n_tok > 0 ? (float) (o.sft_weight / n_tok) : 0.0f;
                // a learned pair: its retention rows alone train (none: nothing of it this step)
                auto hold = [&](double lc) {
                    ++held;
                    if (use_sft) held_sft_nll -= lc;
                    Seq s = span_seq(p.prompt, p.chosen, 0.0f);
                    s.rows.clear();
                    add_retention(s, pi, w_kl);
                    if (!s.rows.empty()) seqs.push_back(std::move(s));
                };
                if (use_dpo && !p.raw && !p.rejected.empty()) {
                    // Δ with the current adapter (recomputed every step: one extra forward pass per sequence)
                    Seq c = span_seq(p.prompt, p.chosen, 1.0f);
                    Seq r = span_seq(p.prompt, p.rejected, 1.0f);
                    double lc = 0, lr = 0;
                    for (float v : forward_nll(S, c)) lc -= v;
                    for (float v : forward_nll(S, r)) lr -= v;
                    const double delta = (lc - ref_c[pi]) - (lr - ref_r[pi]);
                    const double sig = 1.0 / (1.0 + exp(o.beta * delta));  // σ(−βΔ)
                    dpo_loss += -log(std::max(1e-30, 1.0 - sig));           // −log σ(βΔ)
                    if (learned(lc, p.chosen.size())) {
                        hold(lc);
                        continue;
                    }
                    const float w_dpo = (float) (o.beta * sig / n_dpo);
                    for (auto & row : c.rows) row.weight = w_sft + w_dpo;
                    for (auto & row : r.rows) row.weight = -w_dpo;
                    add_retention(c, pi, w_kl);
                    seqs.push_back(std::move(c));
                    seqs.push_back(std::move(r));
                } else if (w_sft > 0) {
                    double lc = 0;
                    if (!p.raw && o.learned_at < 1.0f) {
                        for (float v : forward_nll(S, span_seq(p.prompt, p.chosen, 1.0f))) lc -= v;
                        if (learned(lc, p.chosen.size())) {
                            hold(lc);
                            continue;
                        }
                    }
                    seqs.push_back(sft_seq(p, w_sft));
                    add_retention(seqs.back(), pi, w_kl);
                }
            }
            for (size_t ai : step_anchors) {
                if (kl_anchor[ai].pos.empty() || w_kl <= 0) continue;
                Seq a;
                a.tokens = anchors[ai].tokens;
                push_rows(kl_anchor[ai], a.tokens, w_kl, a.rows, a.soft);
                seqs.push_back(std::move(a));
                anchor_used[ai] = 1;
            }
            double step_loss = 0, step_sft_nll = held_sft_nll, step_kl = 0;
            double kind_kl[3] = {0, 0, 0};
            size_t kind_rows[3] = {0, 0, 0};
            for (size_t si = 0; si < seqs.size(); ++si) {
                EvalJob J;
                J.S = &S;
                J.seq = &seqs[si];
                J.backward = true;
                J.step = si + 1 == seqs.size() ? &adam : nullptr;
                run_seq(S, J);
                step_loss += J.loss_value;
                for (size_t ri = 0; ri < J.nll_rows.size(); ++ri) {
                    const SoftTarget * st = ri < seqs[si].soft.size() ? seqs[si].soft[ri] : nullptr;
                    if (st) {
                        step_kl += J.nll_rows[ri] - st->entropy;
                        kind_kl[st->kind] += J.nll_rows[ri] - st->entropy;
                        kind_rows[st->kind]++;
                    } else if (!std::signbit(seqs[si].rows[ri].weight) && use_sft) {  // a chosen token (rejected ones weigh -w_dpo, possibly -0), held ones included
                        step_sft_nll += J.nll_rows[ri];
                    }
                }
                tokens_done += seqs[si].tokens.size();
            }
            if (!std::isfinite(step_loss)) throw fatal("diverged", fmt("the loss is not finite at step %lld (try a lower --lr)", (long long) step));
            const double reported = use_sft ? step_sft_nll / std::max(1.0, n_tok) : dpo_loss / std::max(1.0, n_dpo);
            epoch_loss += reported;
            epoch_dpo += n_dpo > 0 ? dpo_loss / n_dpo : 0;
            ++epoch_steps;
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
            const double eta = secs / step * (total_steps - step);
            std::string line = fmt("{\"type\":\"progress\",\"step\":%lld,\"steps\":%lld,\"epoch\":%d,\"loss\":%s,\"lr\":%s,\"tokensPerSecond\":%s,\"etaSeconds\":%s",
                                   (long long) step, (long long) total_steps, epoch, json_num(reported).c_str(), json_num(adam.lr).c_str(),
                                   json_num(tokens_done / std::max(1e-9, secs)).c_str(), json_num(eta).c_str());
            if (use_dpo) line += ",\"dpoLoss\":" + json_num(n_dpo > 0 ? dpo_loss / n_dpo : NAN);
            if (use_sft && use_dpo) line += ",\"sftNll\":" + json_num(step_sft_nll / std::max(1.0, n_tok));
            if (o.learned_at < 1.0f) line += fmt(",\"held\":%d", held);
            if (n_kl > 0) line += ",\"kl\":" + json_num(step_kl / n_kl);
            if (kind_rows[SoftTarget::ANCHOR]) line += ",\"anchorKl\":" + json_num(kind_kl[SoftTarget::ANCHOR] / (double) kind_rows[SoftTarget::ANCHOR]);
            if (kind_rows[SoftTarget::CONTINUATION]) line += ",\"continuationKl\":" + json_num(kind_kl[SoftTarget::CONTINUATION] / (double) kind_rows[SoftTarget::CONTINUATION]);
            emit(line + "}");
            if (o.max_steps > 0 && step >= o.max_steps) stop = true;
        }
        emit(fmt("{\"type\":\"epoch\",\"epoch\":%d,\"loss\":%s%s}", epoch, json_num(epoch_loss / std::max<int64_t>(1, epoch_steps)).c_str(),
                 use_dpo ? (",\"dpoLoss\":" + json_num(epoch_dpo / std::max<int64_t>(1, epoch_steps))).c_str() : ""));
    }

    auto trained = read_loras(S.adapter);
    write_adapter(o.out, base.arch, o.alpha, trained,
                  {{"steerbot.objective", o.objective}, {"steerbot.targets", o.targets}, {"steerbot.base", o.model}});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    emit(fmt("{\"type\":\"done\",\"out\":%s,\"steps\":%lld,\"seconds\":%s,\"tokensPerSecond\":%s,\"anchorsUsed\":%lld}", json_str(o.out).c_str(), (long long) step,
             json_num(secs).c_str(), json_num(tokens_done / std::max(1e-9, secs)).c_str(),
             (long long) std::count(anchor_used.begin(), anchor_used.end(), (char) 1)));
    if (o.profile) profile_report(40);
    return 0;
}

}  // namespace steer
