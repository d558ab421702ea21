#pragma once
// Silhouette (Rousseeuw 1987) of a clustering of points in R^d, Euclidean distance; hard labels
// and soft assignments.
//
// Hard. For sample i in cluster c_i:
//     a_i = mean distance to the other members of c_i,
//     b_i = min over clusters k ≠ c_i of the mean distance to the members of k,
//     s_i = (b_i − a_i) / max(a_i, b_i), and s_i = 0 when c_i has no other member
// (scikit-learn's silhouette_samples conventions); the score is the mean of s_i. Needs
// 2 ≤ #clusters ≤ n − 1. O(n²·d) time, O(n + K) memory per thread; CpuParallel splits samples.
//
// Soft. For assignments P (n × K, rows probability vectors, e.g. a softmax; not enforced), the
// expected distance from i to cluster k is
//     d_ik = Σ_{j≠i} P_jk D_ij / Σ_{j≠i} P_jk,
// and i, as a member of k, has a_ik = d_ik, b_ik = min_{l≠k} d_il, s_ik as above (0 when no other
// sample carries mass of k, clusters without mass left out of the min). The soft silhouette is
//     S = (1/n) Σ_i Σ_k P_ik s_ik.
// With one-hot rows it equals the hard silhouette. Generic in the scalar of the points (TX) and
// of the assignments (TP): double, float, ad::Dual, ad::Var. The min and max are hard selections
// (by value), so the gradient is exact wherever no two candidates tie; a distance between two
// coinciding points is treated as a constant 0 (its derivative is undefined there).
// O(n²·(d + K)) time, O(n + K) memory; on a tape O(n²·(d + K)) records (glue for small n).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/contingency.hpp>

namespace diffbio::metrics {

namespace detail {

inline std::size_t check_points(std::size_t size, std::size_t dim, const char* where) {
    if (dim == 0 || size % dim != 0) {
        throw ShapeError(std::string(where) + ": " + std::to_string(size) + " coordinates are not a whole number of " +
                         std::to_string(dim) + "-dimensional points");
    }
    return size / dim;
}

template <class T>
void check_finite_all(std::span<const T> v, const char* where, const char* what, bool nonnegative) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double x = primal(v[i]);
        if (!std::isfinite(x) || (nonnegative && x < 0.0)) {
            throw InvalidArgument(std::string(where) + ": " + what + "[" + std::to_string(i) + "] must be finite" +
                                  (nonnegative ? " and >= 0" : "") + ", got " + std::to_string(x));
        }
    }
}

} // namespace detail

/// Per-sample silhouette values s_i (see the header comment).
/// Errors: ShapeError when x is not n·dim values or labels are not n; InvalidArgument for a
/// non-finite coordinate or fewer than 2 or more than n − 1 distinct labels.
template <exec::HostPolicy Policy, LabelRange L>
std::vector<double> silhouette_samples(Policy policy, std::span<const double> x, std::size_t dim, const L& labels) {
    constexpr const char* where = "silhouette_samples";
    const std::size_t n = detail::check_points(x.size(), dim, where);
    if (static_cast<std::size_t>(std::ranges::size(labels)) != n) {
        throw ShapeError(std::string(where) + ": " + std::to_string(n) + " points but " +
                         std::to_string(std::ranges::size(labels)) + " labels");
    }
    detail::check_finite_all(x, where, "x", false);
    const LabelCodes codes = encode_labels(labels);
    const std::size_t k = codes.n_labels;
    if (k < 2 || k > n - 1) {
        throw InvalidArgument(std::string(where) + ": the number of distinct labels is " + std::to_string(k) +
                              ", it must be between 2 and n - 1 = " + std::to_string(n - 1));
    }
    std::vector<std::size_t> size(k, 0);
    for (auto c : codes.code) ++size[c];
    std::vector<double> s(n, 0.0);
    const auto body = [&](std::size_t lo, std::size_t hi) {
        std::vector<double> sum(k);
        for (std::size_t i = lo; i < hi; ++i) {
            std::fill(sum.begin(), sum.end(), 0.0);
            for (std::size_t j = 0; j < n; ++j) {
                if (j == i) continue;
                double d2 = 0.0;
                for (std::size_t t = 0; t < dim; ++t) {
                    const double diff = x[i * dim + t] - x[j * dim + t];
                    d2 += diff * diff;
                }
                sum[codes.code[j]] += std::sqrt(d2);
            }
            const std::size_t own = codes.code[i];
            if (size[own] <= 1) continue;
            const double a = sum[own] / static_cast<double>(size[own] - 1);
            double b = std::numeric_limits<double>::infinity();
            for (std::size_t c = 0; c < k; ++c) {
                if (c != own) b = std::min(b, sum[c] / static_cast<double>(size[c]));
            }
            const double m = std::max(a, b);
            s[i] = m > 0.0 ? (b - a) / m : 0.0;
        }
    };
    exec::for_each_range(policy, n, body);
    return s;
}

template <LabelRange L>
std::vector<double> silhouette_samples(std::span<const double> x, std::size_t dim, const L& labels) {
    return silhouette_samples(exec::Cpu{}, x, dim, labels);
}

/// Mean silhouette over all samples (scikit-learn's silhouette_score, Euclidean). Errors: as
/// silhouette_samples.
template <exec::HostPolicy Policy, LabelRange L>
double silhouette_score(Policy policy, std::span<const double> x, std::size_t dim, const L& labels) {
    const std::vector<double> s = silhouette_samples(policy, x, dim, labels);
    double total = 0.0;
    for (double v : s) total += v;
    return total / static_cast<double>(s.size());
}

template <LabelRange L>
double silhouette_score(std::span<const double> x, std::size_t dim, const L& labels) {
    return silhouette_score(exec::Cpu{}, x, dim, labels);
}

/// Soft silhouette of points x (n × dim, row-major) under assignments p (n × k, row-major); see
/// the header comment. Errors: ShapeError when the sizes disagree or n < 2; InvalidArgument for
/// a non-finite coordinate or a negative or non-finite assignment.
template <class TX, class TP>
promote_t<TX, TP> soft_silhouette(std::span<const TX> x, std::size_t dim, std::span<const TP> p, std::size_t k) {
    using T = promote_t<TX, TP>;
    constexpr const char* where = "soft_silhouette";
    const std::size_t n = detail::check_points(x.size(), dim, where);
    if (k == 0 || p.size() != n * k) {
        throw ShapeError(std::string(where) + ": p has " + std::to_string(p.size()) + " entries, expected n·k = " +
                         std::to_string(n) + "·" + std::to_string(k));
    }
    if (n < 2) throw ShapeError(std::string(where) + ": needs at least 2 points, got " + std::to_string(n));
    detail::check_finite_all(x, where, "x", false);
    detail::check_finite_all(p, where, "p", true);

    std::vector<TX> dist(n, passive<TX>(0.0));
    std::vector<T> d(k, passive<T>(0.0));
    std::vector<char> has(k, 0);
    T total = passive<T>(0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            if (j == i) continue;
            TX d2 = passive<TX>(0.0);
            for (std::size_t t = 0; t < dim; ++t) {
                const TX diff = x[i * dim + t] - x[j * dim + t];
                d2 += diff * diff;
            }
            using std::sqrt;
            dist[j] = primal(d2) > 0.0 ? TX(sqrt(d2)) : passive<TX>(0.0);
        }
        for (std::size_t c = 0; c < k; ++c) {
            T s = passive<T>(0.0);
            TP w = passive<TP>(0.0);
            for (std::size_t j = 0; j < n; ++j) {
                if (j == i) continue;
                s += p[j * k + c] * dist[j];
                w += p[j * k + c];
            }
            has[c] = primal(w) > 0.0;
            d[c] = has[c] ? T(s / w) : passive<T>(0.0);
        }
        for (std::size_t c = 0; c < k; ++c) {
            if (!has[c] || primal(p[i * k + c]) == 0.0) continue;
            std::size_t best = k;
            for (std::size_t o = 0; o < k; ++o) {
                if (o == c || !has[o]) continue;
                if (best == k || primal(d[o]) < primal(d[best])) best = o;
            }
            if (best == k) continue;
            const T& a = d[c];
            const T& b = d[best];
            const T& m = primal(a) >= primal(b) ? a : b;
            if (primal(m) <= 0.0) continue;
            total += p[i * k + c] * ((b - a) / m);
        }
    }
    return total / static_cast<double>(n);
}

} // namespace diffbio::metrics
