#pragma once
// Value checks for the plain-main CUDA test programs (tests/cuda/*.cu, no Catch2): each failed
// check prints one FAIL line (at most 5 per array) and counts into cuda_checks::failures, which
// the program's main turns into its exit status.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>

namespace cuda_checks {

inline int failures = 0;

/// |got − want| ≤ rel·max(1, |want|) elementwise (NaN fails).
template <class A, class B>
void expect_all_close(const std::vector<A>& got, const std::vector<B>& want, double rel, const std::string& what) {
    if (got.size() != want.size()) {
        std::printf("FAIL %s: sizes %zu vs %zu\n", what.c_str(), got.size(), want.size());
        ++failures;
        return;
    }
    int reported = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
        const double tol = rel * std::max(1.0, std::fabs(w));
        if (!(std::fabs(g - w) <= tol)) {
            if (reported++ < 5) std::printf("FAIL %s[%zu]: got %.17g want %.17g\n", what.c_str(), i, g, w);
            ++failures;
        }
    }
}

inline void expect_close(double got, double want, double rel, const std::string& what) {
    expect_all_close(std::vector<double>{got}, std::vector<double>{want}, rel, what);
}

inline void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::printf("FAIL %s\n", what.c_str());
        ++failures;
    }
}

/// call() must throw a diffbio::Error whose message contains needle.
template <class Call>
void expect_throw(Call&& call, const std::string& needle, const std::string& what) {
    try {
        call();
        std::printf("FAIL %s: no exception\n", what.c_str());
        ++failures;
    } catch (const diffbio::Error& e) {
        if (std::string(e.what()).find(needle) == std::string::npos) {
            std::printf("FAIL %s: message '%s' lacks '%s'\n", what.c_str(), e.what(), needle.c_str());
            ++failures;
        }
    }
}

} // namespace cuda_checks
