// steer-train: the training data (JSONL, token ids written by the TypeScript wrapper) and the
// sequences evaluated from it.
//   {"prompt":[ids],"chosen":[ids],"rejected":[ids]}        a steer (rejected may be empty; optional
//                                                            "after":[ids], what the reply went on
//                                                            with after the chosen span)
//   {"tokens":[ids],"weights":[w]}                           a raw weighted sequence (grad-check, tests)
//   {"anchor":[ids],"from":k}                                a reply nobody steered (train only): the
//                                                            retention term holds the base model's
//                                                            distribution on its tokens from k on
#pragma once

#include "llama.h"

#include <cstdint>

#include <string>
#include <vector>

namespace steer {

struct Options;

struct Pair {
    std::vector<llama_token> prompt, chosen, rejected;
    // the reply's continuation after the chosen span (the model's own words once it resumed):
    // the retention term holds the base there, so the adapter learns the span and not to
    // start it over
    std::vector<llama_token> after;
    // raw weighted sequence (when `tokens` is given)
    std::vector<llama_token> tokens;
    std::vector<float> weights;
    bool raw = false;
    int line = 0;
};

// A replay anchor: a whole rendered turn (context + a reply the people let stand) whose reply
// positions the retention term holds at the base model's distribution. The steers' own prompts
// are one kind of text; what the model must keep doing everywhere else is best shown by what it
// already does there unobjected.
struct Anchor {
    std::vector<llama_token> tokens;
    int32_t from = 0;  // the first reply token
    int line = 0;
};

// parses the data file, checking every token against the vocab size; anchor lines go to
// `anchors` (an error where the mode takes none: nullptr)
std::vector<Pair> load_data(const std::string & path, int n_vocab, std::vector<Anchor> * anchors = nullptr);
// load_data with the vocab size of the model file (read vocab-only)
std::vector<Pair> load_pairs(const Options & o, std::vector<Anchor> * anchors = nullptr);

// one sequence to evaluate: tokens, and rows (positions whose next-token loss counts)
struct Row {
    int32_t pos;        // the logits at this position predict `target`
    llama_token target;
    float weight;
};
// a target distribution instead of one token (retention rows), binned: the most likely tokens
// with their probabilities, and one bin for all the others with the rest of the mass. The loss
// is the cross-entropy over those bins, so the model keeps the base's top tokens and its total
// tail mass but the tail's shape is left alone (renormalising the top tokens would teach it to
// sharpen every distribution; spreading the rest evenly, to flatten the tail).
struct SoftTarget {
    std::vector<llama_token> ids;
    std::vector<float> probs;
    float rest = 0.0f;         // 1 - sum(probs): the target mass of all other tokens together
    float entropy = 0.0f;      // over the bins: cross-entropy to it minus this is the binned KL
    // where the row is, for the progress report: a steer's prompt, a replay anchor's reply, or
    // the continuation after a chosen span
    enum Kind : uint8_t { PROMPT, ANCHOR, CONTINUATION } kind = PROMPT;
};
struct Seq {
    std::vector<llama_token> tokens;
    std::vector<Row> rows;  // ascending pos, unique
    // per row: nullptr = the one-hot `target`, else the distribution to match (cross-entropy to it)
    std::vector<const SoftTarget *> soft;
};

// prompt + span; one row for every span token (+ optionally the end token after the span)
Seq span_seq(const std::vector<llama_token> & prompt, const std::vector<llama_token> & span, float w, llama_token end_token = LLAMA_TOKEN_NULL);
// a raw sequence's weighted positions, weights times scale
Seq raw_seq(const Pair & p, float scale);
// the sequence of one example for the SFT part (weights already scaled)
Seq sft_seq(const Pair & p, float w);

// the longest sequence any example makes (sizes the context)
size_t max_seq_len(const std::vector<Pair> & pairs, const std::vector<Anchor> & anchors = {});

}  // namespace steer
