#pragma once
// Local inverse Simpson's index (LISI; Korsunsky et al. 2019, the Harmony paper): how many
// different labels a cell's neighbourhood holds. With batch labels it is iLISI (batch mixing:
// 1 = a cell sees only its own batch, B = its neighbourhood is an even mix of all B batches);
// with cell-type labels it is cLISI (1 = pure neighbourhoods).
//
// For cell i: its k nearest other cells j (Euclidean distance d_ij, exact search), Gaussian-like
// weights w_j ∝ exp(−β_i·d_ij) over them, with β_i found by bisection so that the perplexity
// exp(H(w)) equals `perplexity` (as t-SNE calibrates its kernels; when k ≤ perplexity the target
// is out of reach and the weights become uniform), the label shares p_b = Σ_{j: label b} w_j,
// and LISI_i = 1 / Σ_b p_b². The cell itself is not among its neighbours. These are the
// definitions of the lisi R package (distances, not squared distances, in the exponent; k =
// 3·perplexity by default).
//
// Complexity: O(n²·d + n·k·(log k + iterations)) time (exact neighbours by brute force),
// O(n + k) memory per thread; CpuParallel splits the cells.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/contingency.hpp>

namespace diffbio::metrics {

struct LisiOptions {
    double perplexity = 30.0;
    /// Neighbours per cell; 0 means 3·perplexity. Capped at n − 1.
    std::size_t n_neighbors = 0;
    /// |H(w) − log(perplexity)| at which the bisection stops, and its iteration cap.
    double tolerance = 1e-10;
    int max_iterations = 200;
};

struct LisiResult {
    std::vector<double> per_cell; ///< LISI_i, in [1, n_labels]
    std::size_t n_labels = 0;     ///< distinct labels
    double mean = 0.0;
    double median = 0.0;
    /// (median − 1) / (n_labels − 1): 0 = no mixing, 1 = perfect mixing (scib's scaling of iLISI);
    /// 0 when there is a single label.
    double scaled_median = 0.0;
};

namespace detail {

/// Weights w_j ∝ exp(−β·d_j) over the distances `d` with perplexity exp(H(w)) = perplexity
/// (bisection on β ≥ 0, β = 0 giving uniform weights); written to `w`, summing to 1.
inline void perplexity_weights(std::span<const double> d, double perplexity, std::span<double> w, double tolerance = 1e-10,
                               int max_iterations = 200) {
    const std::size_t k = d.size();
    if (k == 0) return;
    const double dmin = *std::min_element(d.begin(), d.end());
    const double target = std::log(perplexity);
    auto entropy_at = [&](double beta) {
        double z = 0.0, zd = 0.0;
        for (std::size_t j = 0; j < k; ++j) {
            const double e = std::exp(-beta * (d[j] - dmin));
            w[j] = e;
            z += e;
            zd += (d[j] - dmin) * e;
        }
        for (std::size_t j = 0; j < k; ++j) w[j] /= z;
        return std::log(z) + beta * zd / z; // H of the normalised weights (shift-invariant)
    };
    double lo = 0.0, hi = std::numeric_limits<double>::infinity(), beta = 1.0;
    double h = entropy_at(beta);
    for (int it = 0; it < max_iterations && std::fabs(h - target) > tolerance; ++it) {
        if (h > target) { // too flat: sharpen
            lo = beta;
            beta = std::isinf(hi) ? beta * 2.0 : 0.5 * (lo + hi);
        } else {
            hi = beta;
            beta = 0.5 * (lo + hi);
        }
        h = entropy_at(beta);
    }
}

} // namespace detail

/// LISI of every cell of x (n × dim, row-major) for the given labels (batches for iLISI).
/// Errors: ShapeError when x is not n·dim values or there are not n labels, or n < 2;
/// InvalidArgument for a non-finite coordinate or a perplexity that is not finite and > 0.
template <exec::HostPolicy Policy, LabelRange L>
LisiResult lisi(Policy policy, std::span<const double> x, std::size_t dim, const L& labels, const LisiOptions& opt = {}) {
    constexpr const char* where = "lisi";
    if (dim == 0 || x.size() % dim != 0) {
        throw ShapeError(std::string(where) + ": " + std::to_string(x.size()) +
                         " coordinates are not a whole number of " + std::to_string(dim) + "-dimensional points");
    }
    const std::size_t n = x.size() / dim;
    if (static_cast<std::size_t>(std::ranges::size(labels)) != n) {
        throw ShapeError(std::string(where) + ": " + std::to_string(n) + " points but " +
                         std::to_string(std::ranges::size(labels)) + " labels");
    }
    if (n < 2) throw ShapeError(std::string(where) + ": needs at least 2 cells, got " + std::to_string(n));
    if (!(opt.perplexity > 0.0) || !std::isfinite(opt.perplexity)) {
        throw InvalidArgument(std::string(where) + ": perplexity must be finite and > 0, got " +
                              std::to_string(opt.perplexity));
    }
    check_all_finite(x, where, "x");
    const LabelCodes codes = encode_labels(labels);
    std::size_t k = opt.n_neighbors > 0 ? opt.n_neighbors : static_cast<std::size_t>(std::floor(3.0 * opt.perplexity));
    k = std::clamp<std::size_t>(k, 1, n - 1);

    LisiResult r;
    r.n_labels = codes.n_labels;
    r.per_cell.assign(n, 1.0);
    const auto body = [&](std::size_t lo, std::size_t hi) {
        std::vector<std::pair<double, std::size_t>> cand(n - 1);
        std::vector<double> d(k), w(k), share(codes.n_labels);
        for (std::size_t i = lo; i < hi; ++i) {
            std::size_t m = 0;
            for (std::size_t j = 0; j < n; ++j) {
                if (j == i) continue;
                double d2 = 0.0;
                for (std::size_t t = 0; t < dim; ++t) {
                    const double diff = x[i * dim + t] - x[j * dim + t];
                    d2 += diff * diff;
                }
                cand[m++] = {d2, j};
            }
            // The k nearest; ties at the k-th distance broken by index (deterministic).
            std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k - 1), cand.end());
            std::sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k));
            for (std::size_t j = 0; j < k; ++j) d[j] = std::sqrt(cand[j].first);
            detail::perplexity_weights(d, opt.perplexity, w, opt.tolerance, opt.max_iterations);
            std::fill(share.begin(), share.end(), 0.0);
            for (std::size_t j = 0; j < k; ++j) share[codes.code[cand[j].second]] += w[j];
            double simpson = 0.0;
            for (double s : share) simpson += s * s;
            r.per_cell[i] = 1.0 / simpson;
        }
    };
    exec::for_each_range(policy, n, body);
    double total = 0.0;
    for (double v : r.per_cell) total += v;
    r.mean = total / static_cast<double>(n);
    std::vector<double> sorted = r.per_cell;
    std::sort(sorted.begin(), sorted.end());
    r.median = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    r.scaled_median = r.n_labels > 1 ? (r.median - 1.0) / static_cast<double>(r.n_labels - 1) : 0.0;
    return r;
}

template <LabelRange L>
LisiResult lisi(std::span<const double> x, std::size_t dim, const L& labels, const LisiOptions& opt = {}) {
    return lisi(exec::Cpu{}, x, dim, labels, opt);
}

} // namespace diffbio::metrics
