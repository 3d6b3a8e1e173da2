// steer-train, shared by every part: printf-style formatting, the JSON lines on stdout
// (string and number encoding, emit), `fatal` (every reported failure: a code and a message),
// the llama.cpp log filter (--verbose), and small helpers (split, parallel_rows).
#pragma once

#include "ggml.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace steer {

std::string fmt(const char * f, ...);

// a JSON string literal, quotes included
std::string json_str(const std::string & s);
// a JSON number (null when not finite)
std::string json_num(double v);
// one line on stdout, flushed
void emit(const std::string & line);

// a failure reported as {"type":"error","code":...,"message":...}, exit 2
struct fatal : std::runtime_error {
    std::string code;
    fatal(const std::string & code, const std::string & msg) : std::runtime_error(msg), code(code) {}
};

extern bool g_verbose;

// llama.cpp/ggml log callback: warnings and errors to stderr, everything with --verbose
void log_cb(ggml_log_level level, const char * text, void *);

std::vector<std::string> split(const std::string & s, char sep);

// runs fn(i0, i1) over [0, n) split across the training threads
template <typename F>
void parallel_rows(int nth, int64_t n, F fn) {
    nth = std::max(1, nth);
    std::vector<std::thread> th;
    for (int t = 0; t < nth; ++t) th.emplace_back([=] { fn(n * t / nth, n * (t + 1) / nth); });
    for (auto & x : th) x.join();
}

}  // namespace steer
