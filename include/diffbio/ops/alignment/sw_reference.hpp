#pragma once
// The naive smooth Smith-Waterman / Needleman-Wunsch recursion for any scalar (double, float,
// Dual, Var): full (m+1)×(n+1) tables of R, each cell written exactly as the recursion in
// smith_waterman.hpp reads, every soft max τ·logsumexp(c/τ) over the finite candidates
// (core/math.hpp's max-shifted logsumexp). It is the reference the fused kernels are tested
// against, and what forward mode (Dual) runs. O(m·n) time and memory; for Var it records
// O(m·n) elementary tape entries, so use it for checking, not training.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/ops/alignment/sw_kernel.hpp>

namespace diffbio::ops {

/// The tables of the reference recursion, (m+1)×(n+1) row-major (cell (i, j) at i·(n+1) + j), −∞
/// where no path reaches. Which are filled depends on the model:
///   linear  H = P (any state), M (alignments ending with the pair (i, j))
///   affine  M, X (ending with query letter i against a gap), Y (target letter j against a gap)
///   compat  H (DiffBio's matrix, border zeros included)
template <class R>
struct SwTables {
    std::size_t rows = 0;
    std::size_t cols = 0;
    R score{};
    std::vector<R> H, M, X, Y;
    R at(const std::vector<R>& t, std::size_t i, std::size_t j) const { return t[i * cols + j]; }
};

namespace detail {

/// Soft max of the candidates whose value is finite; −∞ when there is none. Hard: the first max.
template <class R>
R ref_smax(const std::vector<R>& cands, const R& tau, bool hard) {
    constexpr double ninf = -std::numeric_limits<double>::infinity();
    std::vector<R> finite;
    std::size_t best = 0;
    for (const R& c : cands) {
        if (primal(c) == ninf) continue;
        if (!finite.empty() && primal(c) > primal(finite[best])) best = finite.size();
        finite.push_back(c);
    }
    if (finite.empty()) return passive<R>(ninf);
    if (hard) return finite[best];
    for (R& c : finite) c = c / tau;
    return tau * logsumexp<R>(std::span<const R>(finite));
}

/// u − pen, or −∞ (without arithmetic on −∞) when u is −∞.
template <class R>
R ref_minus(const R& u, const R& pen) {
    if (primal(u) == -std::numeric_limits<double>::infinity()) return u;
    return u - pen;
}

} // namespace detail

/// The reference recursion for one pair. s: cell scores [m × n] (s_ij = x_iᵀ S y_j), open/extend:
/// gap penalties (subtracted), tau: temperature (unused when model.hard).
template <class R>
SwTables<R> sw_reference(const detail::SwModel& model, const R& open, const R& extend, const R& tau, std::size_t m,
                         std::size_t n, const std::vector<R>& s) {
    using detail::ref_minus;
    using detail::ref_smax;
    using detail::SwKind;
    const R ninf = passive<R>(-std::numeric_limits<double>::infinity());
    const R zero = passive<R>(0.0);
    const bool hard = model.hard, local = model.local;
    SwTables<R> t;
    t.rows = m + 1;
    t.cols = n + 1;
    const std::size_t w = n + 1;
    auto S = [&](std::size_t i, std::size_t j) { return s[(i - 1) * n + (j - 1)]; }; // 1-based cell
    auto id = [&](std::size_t i, std::size_t j) { return i * w + j; };

    if (model.kind == SwKind::Compat) {
        // H_ij = smax(0, H_{i−1,j−1} + s_ij, H_{i−1,j} − g, H_{i,j−1} − g), borders 0, g = open + extend;
        // score = smax(0, max H), the max's gradient split equally among ties.
        const R g = open + extend;
        t.H.assign(t.rows * t.cols, zero);
        for (std::size_t i = 1; i <= m; ++i) {
            for (std::size_t j = 1; j <= n; ++j) {
                t.H[id(i, j)] = ref_smax<R>({zero, t.H[id(i - 1, j - 1)] + S(i, j), t.H[id(i - 1, j)] - g,
                                             t.H[id(i, j - 1)] - g},
                                            tau, hard);
            }
        }
        double mx = 0.0;
        for (std::size_t i = 1; i <= m; ++i) {
            for (std::size_t j = 1; j <= n; ++j) mx = std::max(mx, primal(t.H[id(i, j)]));
        }
        R tied = zero;
        std::size_t count = 0;
        for (std::size_t i = 1; i <= m; ++i) {
            for (std::size_t j = 1; j <= n; ++j) {
                if (primal(t.H[id(i, j)]) == mx) tied = tied + t.H[id(i, j)], ++count;
            }
        }
        const R hmax = count > 0 ? R(tied / static_cast<double>(count)) : zero;
        t.score = ref_smax<R>({zero, hmax}, tau, hard);
        return t;
    }

    if (model.kind == SwKind::Linear) {
        // M_ij = s_ij + [local: smax(0, P_{i−1,j−1})] [global: P_{i−1,j−1}]
        // P_ij = smax(M_ij, P_{i−1,j} − e, P_{i,j−1} − e);  P_00 = (local ? −∞ : 0)
        t.H.assign(t.rows * t.cols, ninf);
        t.M.assign(t.rows * t.cols, ninf);
        t.H[0] = local ? ninf : zero;
        std::vector<R> ends{zero}; // local: the empty alignment and every M_ij
        for (std::size_t i = 0; i <= m; ++i) {
            for (std::size_t j = 0; j <= n; ++j) {
                if (i == 0 && j == 0) continue;
                std::vector<R> c;
                if (i > 0 && j > 0) {
                    const R prev = t.H[id(i - 1, j - 1)];
                    t.M[id(i, j)] = local ? R(S(i, j) + ref_smax<R>({zero, prev}, tau, hard)) : R(S(i, j) + prev);
                    c.push_back(t.M[id(i, j)]);
                    ends.push_back(t.M[id(i, j)]);
                }
                if (i > 0) c.push_back(ref_minus(t.H[id(i - 1, j)], extend));
                if (j > 0) c.push_back(ref_minus(t.H[id(i, j - 1)], extend));
                t.H[id(i, j)] = ref_smax<R>(c, tau, hard);
            }
        }
        t.score = local ? ref_smax<R>(ends, tau, hard) : t.H[id(m, n)];
        return t;
    }

    // Affine (Gotoh), transitions between all states:
    //   M_ij = s_ij + smax([local: 0], M_{i−1,j−1}, X_{i−1,j−1}, Y_{i−1,j−1})
    //   X_ij = smax(M_{i−1,j} − o, X_{i−1,j} − e, Y_{i−1,j} − o)
    //   Y_ij = smax(M_{i,j−1} − o, Y_{i,j−1} − e, X_{i,j−1} − o)
    //   M_00 = (local ? −∞ : 0), X_00 = Y_00 = −∞
    t.M.assign(t.rows * t.cols, ninf);
    t.X.assign(t.rows * t.cols, ninf);
    t.Y.assign(t.rows * t.cols, ninf);
    t.M[0] = local ? ninf : zero;
    std::vector<R> ends{zero};
    for (std::size_t i = 0; i <= m; ++i) {
        for (std::size_t j = 0; j <= n; ++j) {
            if (i == 0 && j == 0) continue;
            if (i > 0 && j > 0) {
                std::vector<R> c; // candidate order = the kernels' tie order: restart, M, X, Y
                if (local) c.push_back(zero);
                c.insert(c.end(), {t.M[id(i - 1, j - 1)], t.X[id(i - 1, j - 1)], t.Y[id(i - 1, j - 1)]});
                const R best = ref_smax<R>(c, tau, hard);
                if (primal(best) != -std::numeric_limits<double>::infinity()) t.M[id(i, j)] = S(i, j) + best;
                ends.push_back(t.M[id(i, j)]);
            }
            if (i > 0) {
                t.X[id(i, j)] = ref_smax<R>({ref_minus(t.M[id(i - 1, j)], open), ref_minus(t.X[id(i - 1, j)], extend),
                                             ref_minus(t.Y[id(i - 1, j)], open)},
                                            tau, hard);
            }
            if (j > 0) {
                t.Y[id(i, j)] = ref_smax<R>({ref_minus(t.M[id(i, j - 1)], open), ref_minus(t.Y[id(i, j - 1)], extend),
                                             ref_minus(t.X[id(i, j - 1)], open)},
                                            tau, hard);
            }
        }
    }
    if (local) {
        t.score = ref_smax<R>(ends, tau, hard);
    } else {
        t.score = ref_smax<R>({t.M[id(m, n)], t.X[id(m, n)], t.Y[id(m, n)]}, tau, hard);
        if (m == 0 && n == 0) t.score = zero;
    }
    return t;
}

} // namespace diffbio::ops
