#pragma once
// Shared set-up of the smooth Smith-Waterman kernel tests (test_sw_simd.cpp, test_sw_wavefront.cpp):
// random sequences, batches, substitution matrices and profiles, the models, and the scalar double
// kernels' gradients as the reference.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <diffbio/ops/alignment/sw_kernel.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>

namespace diffbio::test {

/// "linear|affine|compat local|global hard|soft".
inline std::string model_name(const ops::detail::SwModel& md) {
    using ops::detail::SwKind;
    const char* k = md.kind == SwKind::Linear ? "linear" : (md.kind == SwKind::Affine ? "affine" : "compat");
    return std::string(k) + (md.local ? " local" : " global") + (md.hard ? " hard" : " soft");
}

/// Every linear and affine model (local/global, soft/hard), then, with compat, compat local soft/hard.
inline std::vector<ops::detail::SwModel> sw_models(bool with_compat) {
    using ops::detail::SwKind;
    std::vector<ops::detail::SwModel> out;
    for (SwKind kind : {SwKind::Linear, SwKind::Affine, SwKind::Compat}) {
        if (kind == SwKind::Compat && !with_compat) continue;
        for (bool local : {true, false}) {
            if (kind == SwKind::Compat && !local) continue;
            for (bool hard : {false, true}) out.push_back({kind, local, hard});
        }
    }
    return out;
}

/// len uniform random codes over A letters.
inline std::vector<std::uint8_t> random_codes(std::mt19937& rng, std::size_t len, std::size_t A) {
    std::uniform_int_distribution<int> code(0, static_cast<int>(A) - 1);
    std::vector<std::uint8_t> v(len);
    for (auto& c : v) c = static_cast<std::uint8_t>(code(rng));
    return v;
}

/// An A × A substitution matrix: diagonal about 5, off-diagonal in [−4, 4); rounded when integer.
template <class F>
std::vector<F> random_matrix(std::mt19937& rng, std::size_t A, bool integer) {
    std::uniform_real_distribution<double> u(-4.0, 4.0);
    std::vector<F> S(A * A);
    for (std::size_t a = 0; a < A; ++a) {
        for (std::size_t b = 0; b < A; ++b) {
            const double v = a == b ? 5.0 + u(rng) / 4 : u(rng);
            S[a * A + b] = static_cast<F>(integer ? std::round(v) : v);
        }
    }
    return S;
}

/// A soft profile [len × A]: random positive rows that sum to 1.
inline std::vector<double> random_profile(std::mt19937& rng, std::size_t len, std::size_t A) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<double> v(len * A);
    for (std::size_t i = 0; i < len; ++i) {
        double z = 0.0;
        for (std::size_t a = 0; a < A; ++a) z += (v[i * A + a] = u(rng));
        for (std::size_t a = 0; a < A; ++a) v[i * A + a] /= z;
    }
    return v;
}

/// Pairs of code sequences, and the kernels' view of them.
struct CodeBatch {
    std::vector<std::vector<std::uint8_t>> q, t;
    std::vector<ops::detail::SwSeqPair<std::uint8_t>> pairs() const {
        std::vector<ops::detail::SwSeqPair<std::uint8_t>> out;
        for (std::size_t k = 0; k < q.size(); ++k) out.push_back({q[k].data(), q[k].size(), t[k].data(), t[k].size()});
        return out;
    }
};

/// The scalar double kernels on one pair of codes: returns its score F and, unless fbar = 0, adds
/// fbar·∂F/∂(S, open, extend, τ) into acc (acc.Sbar sized A·A): the reference of the fast kernels.
inline double scalar_pair_grads_add(const ops::detail::SwModel& md, const ops::detail::SwScalars<double>& p,
                                    const std::vector<double>& S, std::size_t A,
                                    const ops::detail::SwSeqPair<std::uint8_t>& pr, double fbar,
                                    ops::detail::SwBatchGrads& acc) {
    std::vector<double> table(md.states() * (pr.m + 1) * (pr.n + 1), 0.0), scratch;
    const ops::detail::SwCodeCell<double> cell{S.data(), A, pr.q, pr.t};
    const double score = ops::detail::sw_forward<double>(md, p, pr.m, pr.n, cell, table.data(), scratch);
    if (fbar == 0.0) return score;
    double* Sb = acc.Sbar.data();
    ops::detail::sw_backward(md, p, pr.m, pr.n, cell, table.data(), score, fbar,
                             [&](std::size_t i, std::size_t j, double v) { Sb[pr.q[i] * A + pr.t[j]] += v; }, acc.g,
                             scratch);
    return score;
}

} // namespace diffbio::test
