#pragma once
// Adjusted Rand index (Hubert & Arabie 1985), hard and soft.
//
// Hard. With the contingency table n_ij of two labelings of n samples, row sums a_i, column sums
// b_j, and pair counts
//     I = Σ_ij C(n_ij, 2),  A = Σ_i C(a_i, 2),  B = Σ_j C(b_j, 2),  N = C(n, 2),
//     ARI = (I − A·B/N) / (½(A + B) − A·B/N).
// 1 for identical partitions (up to renaming), about 0 for independent ones, can be negative.
// When the denominator is 0 (both labelings put everything in one cluster, or both put every
// sample alone) the partitions are identical and ARI = 1; also for n ≤ 1 (scikit-learn's
// conventions). Pair counts are exact 64-bit integers; O(n log n).
//
// Soft. For soft assignments P (n × K) and Q (n × L), rows being probability vectors (e.g.
// softmax outputs; not enforced), the probability that samples u ≠ v share a cluster is
// S^P_uv = Σ_k P_uk P_vk (independent draws), and the pair counts become
//     I = Σ_{u<v} S^P_uv S^Q_uv = ½(Σ_kl M_kl² − Σ_u ‖P_u‖²‖Q_u‖²),   M = PᵀQ,
//     A = Σ_{u<v} S^P_uv = ½(Σ_k m_k² − Σ_u ‖P_u‖²),   m_k = Σ_u P_uk,   B likewise for Q,
// in the same ARI formula. One-hot rows give exactly the hard ARI. Generic in the scalar
// (double, float, ad::Dual, ad::Var): a smooth training objective whose gradient is that of
// this closed form. O(n·K·L) time, O(K·L) memory; on a tape O(n·K·L) records.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/metrics/contingency.hpp>

namespace diffbio::metrics {

namespace detail {
inline std::uint64_t pairs(std::uint64_t x) { return x < 2 ? 0 : x * (x - 1) / 2; }
} // namespace detail

/// ARI of a precomputed contingency table.
inline double adjusted_rand_index(const Contingency& t) {
    if (t.n <= 1) return 1.0;
    std::uint64_t index = 0, a = 0, b = 0;
    for (const auto& c : t.cells) index += detail::pairs(c.count);
    for (auto r : t.rows) a += detail::pairs(r);
    for (auto c : t.cols) b += detail::pairs(c);
    const double n_pairs = static_cast<double>(detail::pairs(t.n));
    const double expected = static_cast<double>(a) * static_cast<double>(b) / n_pairs;
    const double max_index = 0.5 * (static_cast<double>(a) + static_cast<double>(b));
    const double denom = max_index - expected;
    if (denom == 0.0) return 1.0;
    return (static_cast<double>(index) - expected) / denom;
}

/// ARI of two labelings (any integer labels). Errors: ShapeError for different lengths.
template <LabelRange A, LabelRange B>
double adjusted_rand_index(const A& truth, const B& predicted) {
    return adjusted_rand_index(contingency(truth, predicted, "adjusted_rand_index"));
}

/// Soft ARI of assignments p (n × k, row-major) and q (n × l, row-major); see the header
/// comment. Returns the promoted scalar of TP and TQ.
/// Errors: ShapeError when p.size() != n·k or q.size() != n·l (n taken from p), k or l is 0;
/// InvalidArgument for a negative or non-finite entry.
template <class TP, class TQ>
promote_t<TP, TQ> soft_adjusted_rand_index(std::span<const TP> p, std::size_t k, std::span<const TQ> q, std::size_t l) {
    using T = promote_t<TP, TQ>;
    if (k == 0 || l == 0 || p.size() % k != 0 || q.size() % l != 0 || p.size() / k != q.size() / l) {
        throw ShapeError("soft_adjusted_rand_index: p has " + std::to_string(p.size()) + " entries for k = " +
                         std::to_string(k) + " clusters, q " + std::to_string(q.size()) + " for l = " +
                         std::to_string(l) + ": they must describe the same n samples");
    }
    const std::size_t n = p.size() / k;
    auto check = [](double v, const char* which, std::size_t idx) {
        if (!(v >= 0.0) || !std::isfinite(v)) {
            throw InvalidArgument(std::string("soft_adjusted_rand_index: ") + which + "[" + std::to_string(idx) +
                                  "] must be finite and >= 0, got " + std::to_string(v));
        }
    };
    for (std::size_t i = 0; i < p.size(); ++i) check(primal(p[i]), "p", i);
    for (std::size_t i = 0; i < q.size(); ++i) check(primal(q[i]), "q", i);
    if (n <= 1) return passive<T>(1.0);

    std::vector<T> m(k * l, passive<T>(0.0));
    std::vector<TP> mp(k, passive<TP>(0.0));
    std::vector<TQ> mq(l, passive<TQ>(0.0));
    T s_pq = passive<T>(0.0);
    TP s_p = passive<TP>(0.0);
    TQ s_q = passive<TQ>(0.0);
    for (std::size_t u = 0; u < n; ++u) {
        TP np = passive<TP>(0.0);
        TQ nq = passive<TQ>(0.0);
        for (std::size_t a = 0; a < k; ++a) {
            const TP& pa = p[u * k + a];
            mp[a] += pa;
            np += pa * pa;
            for (std::size_t b = 0; b < l; ++b) m[a * l + b] += pa * q[u * l + b];
        }
        for (std::size_t b = 0; b < l; ++b) {
            mq[b] += q[u * l + b];
            nq += q[u * l + b] * q[u * l + b];
        }
        s_p += np;
        s_q += nq;
        s_pq += np * nq;
    }
    T sum_m2 = passive<T>(0.0);
    for (const T& v : m) sum_m2 += v * v;
    TP sum_a2 = passive<TP>(0.0);
    for (const TP& v : mp) sum_a2 += v * v;
    TQ sum_b2 = passive<TQ>(0.0);
    for (const TQ& v : mq) sum_b2 += v * v;
    const T index = 0.5 * (sum_m2 - s_pq);
    const TP a_pairs = 0.5 * (sum_a2 - s_p);
    const TQ b_pairs = 0.5 * (sum_b2 - s_q);
    const double n_pairs = 0.5 * static_cast<double>(n) * static_cast<double>(n - 1);
    const T expected = a_pairs * b_pairs / n_pairs;
    const T denom = 0.5 * (a_pairs + b_pairs) - expected;
    if (primal(denom) == 0.0) return passive<T>(1.0);
    return (index - expected) / denom;
}

} // namespace diffbio::metrics
