// steer-train: reading the JSONL data (nlohmann/json from llama.cpp's vendor/ tree) and the
// sequences and loss rows made from it (see data.h).
#include "data.h"

#include "common.h"
#include "options.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace steer {

using json = nlohmann::json;

// the array of numbers at `key` of one line's object; returns false when the key is absent
static bool json_array(const json & obj, const char * key, std::vector<double> & out, int line) {
    const auto it = obj.find(key);
    if (it == obj.end()) return false;
    if (!it->is_array()) throw fatal("bad_data", fmt("line %d: %s is not an array", line, key));
    out.clear();
    for (const json & v : *it) {
        if (!v.is_number()) throw fatal("bad_data", fmt("line %d: non-number in %s", line, key));
        out.push_back(v.get<double>());
    }
    return true;
}

std::vector<Pair> load_data(const std::string & path, int n_vocab, std::vector<Anchor> * anchors) {
    std::ifstream f(path);
    if (!f) throw fatal("bad_data", "cannot open data file " + path);
    std::vector<Pair> pairs;
    std::string line;
    int ln = 0;
    std::vector<double> tmp;
    auto to_tokens = [&](std::vector<llama_token> & dst, const char * key) {
        dst.clear();
        for (double v : tmp) {
            if (v < 0 || v >= n_vocab || v != std::floor(v)) throw fatal("bad_data", fmt("line %d: token %g in %s is outside the vocab (%d)", ln, v, key, n_vocab));
            dst.push_back((llama_token) v);
        }
    };
    while (std::getline(f, line)) {
        ++ln;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const json obj = json::parse(line, nullptr, /*allow_exceptions*/ false);
        if (obj.is_discarded()) throw fatal("bad_data", fmt("line %d: not valid JSON", ln));
        if (!obj.is_object()) throw fatal("bad_data", fmt("line %d: not a JSON object", ln));
        if (json_array(obj, "anchor", tmp, ln)) {
            if (!anchors) throw fatal("bad_data", fmt("line %d: anchors are for training only", ln));
            Anchor a;
            a.line = ln;
            to_tokens(a.tokens, "anchor");
            const auto from = obj.find("from");
            if (from == obj.end() || !from->is_number_integer()) throw fatal("bad_data", fmt("line %d: an anchor needs \"from\", the index of its first reply token", ln));
            a.from = from->get<int32_t>();
            if (a.from < 1 || (size_t) a.from >= a.tokens.size()) throw fatal("bad_data", fmt("line %d: anchor \"from\" %d is outside its %zu tokens (the reply needs a token before it)", ln, a.from, a.tokens.size()));
            anchors->push_back(std::move(a));
            continue;
        }
        Pair p;
        p.line = ln;
        if (json_array(obj, "tokens", tmp, ln)) {
            p.raw = true;
            to_tokens(p.tokens, "tokens");
            if (!json_array(obj, "weights", tmp, ln) || tmp.size() != p.tokens.size()) throw fatal("bad_data", fmt("line %d: weights must match tokens", ln));
            for (double v : tmp) p.weights.push_back((float) v);
            if (p.tokens.size() < 2) throw fatal("bad_data", fmt("line %d: a sequence needs at least 2 tokens", ln));
        } else {
            if (!json_array(obj, "prompt", tmp, ln)) throw fatal("bad_data", fmt("line %d: no prompt", ln));
            to_tokens(p.prompt, "prompt");
            if (!json_array(obj, "chosen", tmp, ln)) throw fatal("bad_data", fmt("line %d: no chosen", ln));
            to_tokens(p.chosen, "chosen");
            if (json_array(obj, "rejected", tmp, ln)) to_tokens(p.rejected, "rejected");
            if (json_array(obj, "after", tmp, ln)) to_tokens(p.after, "after");
            if (p.prompt.empty()) throw fatal("bad_data", fmt("line %d: empty prompt", ln));
            if (p.chosen.empty()) throw fatal("bad_data", fmt("line %d: empty chosen span", ln));
        }
        pairs.push_back(std::move(p));
    }
    if (pairs.empty()) throw fatal("empty_data", "the data file has no examples: " + path);
    return pairs;
}

Seq span_seq(const std::vector<llama_token> & prompt, const std::vector<llama_token> & span, float w, llama_token end_token) {
    Seq s;
    s.tokens = prompt;
    s.tokens.insert(s.tokens.end(), span.begin(), span.end());
    for (size_t i = 0; i < span.size(); ++i) s.rows.push_back({(int32_t) (prompt.size() + i - 1), span[i], w});
    if (end_token != LLAMA_TOKEN_NULL) s.rows.push_back({(int32_t) (s.tokens.size() - 1), end_token, 0.0f});
    return s;
}

Seq raw_seq(const Pair & p, float scale) {
    Seq s;
    s.tokens = p.tokens;
    for (size_t i = 1; i < p.tokens.size(); ++i)
        if (p.weights[i] != 0.0f) s.rows.push_back({(int32_t) (i - 1), p.tokens[i], p.weights[i] * scale});
    return s;
}

std::vector<Pair> load_pairs(const Options & o, std::vector<Anchor> * anchors) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * vm = llama_model_load_from_file(o.model.c_str(), mp);
    if (!vm) throw fatal("bad_model", "cannot load the base model " + o.model);
    auto pairs = load_data(o.data, llama_vocab_n_tokens(llama_model_get_vocab(vm)), anchors);
    llama_model_free(vm);
    return pairs;
}

Seq sft_seq(const Pair & p, float w) {
    return p.raw ? raw_seq(p, w) : span_seq(p.prompt, p.chosen, w);
}

size_t max_seq_len(const std::vector<Pair> & pairs, const std::vector<Anchor> & anchors) {
    size_t n = 0;
    for (auto & a : anchors) n = std::max(n, a.tokens.size());
    for (auto & p : pairs) {
        if (p.raw) n = std::max(n, p.tokens.size());
        else n = std::max(n, p.prompt.size() + std::max(p.chosen.size() + p.after.size(), p.rejected.size()));
    }
    return n;
}

}  // namespace steer
