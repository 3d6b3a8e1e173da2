// steer-train: the node profiler behind --profile (see profile.h).
#include "profile.h"

#include "ggml.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace steer {

namespace {
struct Group { double seconds = 0; long long count = 0; };
std::map<std::string, Group> g_groups;
std::chrono::steady_clock::time_point g_started;

// "blk.12.ffn_up.weight" -> "blk.N.ffn_up.weight": one group for every layer
std::string without_digits(const char * name) {
    std::string s;
    for (const char * p = name; *p; ++p) {
        if (std::isdigit((unsigned char) *p)) {
            if (s.empty() || s.back() != 'N') s += 'N';
        } else s += *p;
    }
    return s;
}

std::string shape(const ggml_tensor * t) {
    std::string s = std::string(ggml_type_name(t->type)) + "[" + std::to_string(t->ne[0]);
    for (int i = 1; i < GGML_MAX_DIMS && (t->ne[i] > 1 || i < 2); ++i) s += "," + std::to_string(t->ne[i]);
    return s + (ggml_is_contiguous(t) ? "]" : "]nc");
}

std::string describe(const ggml_tensor * t) {
    std::string s = ggml_op_desc(t);
    for (int i = 0; i < 2 && t->src[i]; ++i) {
        const ggml_tensor * src = t->src[i];
        s += " " + shape(src);
        if (src->op == GGML_OP_NONE && src->name[0]) s += "(" + without_digits(src->name) + ")";
    }
    return s + " -> " + shape(t);
}
}  // namespace

bool profile_eval_cb(ggml_tensor * t, bool ask, void *) {
    const auto now = std::chrono::steady_clock::now();
    if (ask) { g_started = now; return true; }
    Group & g = g_groups[describe(t)];
    g.seconds += std::chrono::duration<double>(now - g_started).count();
    g.count++;
    return true;
}

void profile_report(int top) {
    std::vector<std::pair<std::string, Group>> v(g_groups.begin(), g_groups.end());
    std::sort(v.begin(), v.end(), [](auto & a, auto & b) { return a.second.seconds > b.second.seconds; });
    double total = 0;
    for (auto & [k, g] : v) total += g.seconds;
    fprintf(stderr, "steer-train profile: %.2f s in %zu kinds of node\n", total, v.size());
    for (int i = 0; i < top && i < (int) v.size(); ++i)
        fprintf(stderr, "%6.2f s %5.1f%% %7lld  %s\n", v[i].second.seconds, 100 * v[i].second.seconds / std::max(1e-9, total),
                v[i].second.count, v[i].first.c_str());
    g_groups.clear();
}

}  // namespace steer
