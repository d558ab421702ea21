#pragma once
// Standard single-cell preprocessing before clustering: library-size normalisation, log1p and
// highly-variable gene (HVG) selection. DiffBio has no such operators (its single-cell pipeline,
// spec §5.11, feeds raw counts to a VAE normaliser); these are the scanpy-style steps that
// produce the PCA input of SoftKMeans. n_top defaults to 2000, DiffBio's n_genes.
//
// normalize_total(x, n, G, target)   y_ig = target · x_ig / s_i,  s_i = Σ_g x_ig (cells × genes,
//                                    row-major). Differentiable in x:
//                                    x̄_ij = target/s_i · (ȳ_ij − Σ_g ȳ_ig x_ig / s_i).
//                                    A cell with s_i = 0 (all zeros) stays 0, with zero gradient.
//                                    target ≤ 0 means the median of the non-zero totals (scanpy's
//                                    default), taken as a constant (not differentiated).
// log1p_transform(x)                 y = log(1 + x), ∂y/∂x = 1/(1 + x); needs x > −1.
// For Var each is ONE fused node; float/double run plain loops (CpuParallel: rows over threads);
// Dual evaluates the formulas directly. The CountMatrix overloads do the same on sparse counts
// (zeros stay zeros, so sparsity is kept) and are not differentiated.
//
// highly_variable_genes: the dispersion-based "Seurat" flavour (scanpy's flavor="seurat"), on
// log-normalised data X (e.g. log1p of normalize_total):
//   1. per gene g on expm1(X): mean μ_g and variance σ²_g (divisor n − 1);
//   2. dispersion δ_g = log(σ²_g / μ_g) and mean m_g = log1p(μ_g); genes with μ_g = 0 or σ²_g = 0
//      have no dispersion (never selected);
//   3. genes are put into `n_bins` equal-width bins of m over [min m, max m] (every gene counts
//      for the range, the top edge belongs to the last bin); within a bin, over the genes with a
//      dispersion, the normalised dispersion is z_g = (δ_g − mean)/sd (sd with divisor count − 1);
//      a bin with a single such gene gives it z = 1 (scanpy's convention), a bin whose sd is 0
//      gives z = 0;
//   4. the n_top genes with the largest z (ties: the lower gene index) are selected.
// Differences from scanpy: the bin edges are computed directly (pandas.cut widens the lowest
// edge by 0.1% of the range, which only matters for a value exactly on an inner edge), and the
// selection takes exactly n_top genes (scanpy keeps every gene tied with the cut-off).
// Seurat v3 (a LOESS of variance on mean of raw counts) is not implemented.
//
// Errors: ShapeError for sizes that disagree; InvalidArgument for negative, NaN or infinite
// counts, log1p of values ≤ −1, fewer than 2 cells for HVG, n_top = 0 or n_bins = 0. When fewer
// than n_top genes have a dispersion, all of them are selected.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

namespace norm_detail {

template <class P, class Body>
void for_rows(const P& policy, std::size_t n, Body&& body) {
    [[maybe_unused]] const int threads = exec::thread_count(policy);
    if constexpr (std::is_same_v<P, exec::CpuParallel>) {
        const auto nn = static_cast<std::ptrdiff_t>(n);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t i = 0; i < nn; ++i) body(static_cast<std::size_t>(i));
    } else {
        for (std::size_t i = 0; i < n; ++i) body(i);
    }
}

inline double median_of_positive(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double t) { return !(t > 0.0); }), v.end());
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

template <class S>
void check_counts(std::span<const S> x, const char* where) {
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double v = primal(x[i]);
        if (!(v >= 0.0) || !std::isfinite(v)) {
            throw InvalidArgument(std::string(where) + ": entry " + std::to_string(i) + " must be finite and >= 0, got " +
                                  diffbio::detail::format_value(v));
        }
    }
}

} // namespace norm_detail

/// The target sum normalize_total uses: `target` when > 0, else the median of the non-zero
/// per-cell totals of x [n × G] (0 when every cell is empty).
template <class S>
double normalize_target(std::span<const S> x, std::size_t n, std::size_t G, double target) {
    if (target > 0.0) return target;
    std::vector<double> tot(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) tot[i] += primal(x[i * G + g]);
    }
    return norm_detail::median_of_positive(std::move(tot));
}

/// Library-size normalisation of x [n × G] (cells × genes, row-major) to `target` counts per cell
/// (target ≤ 0: the median total). See the header comment.
template <exec::HostPolicy P, class S>
std::vector<S> normalize_total(const P& policy, std::span<const S> x, std::size_t n, std::size_t G, double target = 1e4) {
    constexpr const char* where = "normalize_total";
    if (G == 0) throw InvalidArgument(std::string(where) + ": the number of genes must be >= 1");
    check_size(x.size(), n * G, where, "counts");
    if (!std::isfinite(target)) throw InvalidArgument(std::string(where) + ": 'target' must be finite");
    norm_detail::check_counts(x, where);
    const double t = normalize_target(x, n, G, target);
    if constexpr (std::is_floating_point_v<S>) {
        std::vector<S> y(x.size(), S(0));
        norm_detail::for_rows(policy, n, [&](std::size_t i) {
            double s = 0.0;
            for (std::size_t g = 0; g < G; ++g) s += static_cast<double>(x[i * G + g]);
            if (!(s > 0.0)) return;
            const double f = t / s;
            for (std::size_t g = 0; g < G; ++g) y[i * G + g] = static_cast<S>(static_cast<double>(x[i * G + g]) * f);
        });
        return y;
    } else if constexpr (std::is_same_v<S, ad::Var>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<double> sums = tape.allocate<double>(n);
        auto y = tape.record_node_uninitialised({x}, n * G, [=](const ad::NodeGrad& gr) {
            const auto xv = gr.in_value(0);
            const auto yb = gr.out_adjoint();
            const auto xb = gr.in_adjoint(0);
            norm_detail::for_rows(policy, n, [&](std::size_t i) {
                const double s = sums[i];
                if (!(s > 0.0)) return;
                double dot = 0.0;
                for (std::size_t g = 0; g < G; ++g) dot += yb[i * G + g] * xv[i * G + g];
                dot /= s;
                const double f = t / s;
                for (std::size_t g = 0; g < G; ++g) xb[i * G + g] += f * (yb[i * G + g] - dot);
            });
        });
        const auto xv = soft::detail::forward_values(tape, x, {});
        auto yv = tape.values_of(y);
        norm_detail::for_rows(policy, n, [&](std::size_t i) {
            double s = 0.0;
            for (std::size_t g = 0; g < G; ++g) s += xv[i * G + g];
            sums[i] = s;
            const double f = s > 0.0 ? t / s : 0.0;
            for (std::size_t g = 0; g < G; ++g) yv[i * G + g] = xv[i * G + g] * f;
        });
        return {y.begin(), y.end()};
    } else {
        std::vector<S> y(x.size(), passive<S>(0.0));
        for (std::size_t i = 0; i < n; ++i) {
            S s = passive<S>(0.0);
            for (std::size_t g = 0; g < G; ++g) s = s + x[i * G + g];
            if (!(primal(s) > 0.0)) continue;
            for (std::size_t g = 0; g < G; ++g) y[i * G + g] = x[i * G + g] * t / s;
        }
        return y;
    }
}

template <class S>
std::vector<S> normalize_total(std::span<const S> x, std::size_t n, std::size_t G, double target = 1e4) {
    return normalize_total(exec::Cpu{}, x, n, G, target);
}

/// y = log(1 + x) elementwise (x > −1).
template <exec::HostPolicy P, class S>
std::vector<S> log1p_transform(const P& policy, std::span<const S> x) {
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double v = primal(x[i]);
        if (!(v > -1.0) || !std::isfinite(v)) {
            throw InvalidArgument("log1p_transform: entry " + std::to_string(i) + " must be finite and > -1, got " +
                                  diffbio::detail::format_value(v));
        }
    }
    if constexpr (std::is_floating_point_v<S>) {
        std::vector<S> y(x.size());
        norm_detail::for_rows(policy, x.size(), [&](std::size_t i) { y[i] = std::log1p(x[i]); });
        return y;
    } else if constexpr (std::is_same_v<S, ad::Var>) {
        ad::Tape& tape = ad::Tape::active();
        if (x.empty()) return {};
        auto y = tape.record_node_uninitialised({x}, x.size(), [=](const ad::NodeGrad& g) {
            const auto xv = g.in_value(0);
            const auto yb = g.out_adjoint();
            const auto xb = g.in_adjoint(0);
            norm_detail::for_rows(policy, xv.size(), [&](std::size_t i) { xb[i] += yb[i] / (1.0 + xv[i]); });
        });
        const auto xv = soft::detail::forward_values(tape, x, {});
        auto yv = tape.values_of(y);
        norm_detail::for_rows(policy, x.size(), [&](std::size_t i) { yv[i] = std::log1p(xv[i]); });
        return {y.begin(), y.end()};
    } else {
        using std::log1p;
        std::vector<S> y;
        y.reserve(x.size());
        for (const S& v : x) y.push_back(log1p(v));
        return y;
    }
}

template <class S>
std::vector<S> log1p_transform(std::span<const S> x) {
    return log1p_transform(exec::Cpu{}, x);
}

/// normalize_total on sparse counts (not differentiated): each stored value scaled by
/// target/s_c; names are kept.
inline CountMatrix normalize_total(const CountMatrix& m, double target = 1e4) {
    if (!std::isfinite(target)) throw InvalidArgument("normalize_total: 'target' must be finite");
    CountMatrix out = m;
    const auto tot = m.cell_totals();
    const double t = target > 0.0 ? target : norm_detail::median_of_positive(tot);
    const auto indptr = out.indptr();
    auto vals = out.values();
    for (std::size_t c = 0; c < out.n_cells(); ++c) {
        const double f = tot[c] > 0.0 ? t / tot[c] : 0.0;
        for (std::size_t k = indptr[c]; k < indptr[c + 1]; ++k) vals[k] = static_cast<float>(static_cast<double>(vals[k]) * f);
    }
    return out;
}

/// log1p of every stored value of sparse counts (zeros stay zeros).
inline CountMatrix log1p_transform(const CountMatrix& m) {
    CountMatrix out = m;
    for (float& v : out.values()) v = static_cast<float>(std::log1p(static_cast<double>(v)));
    return out;
}

/// The dense cells × |genes| matrix (double, row-major) of the chosen gene columns of m.
inline std::vector<double> dense_columns(const CountMatrix& m, std::span<const std::size_t> genes) {
    std::vector<std::ptrdiff_t> col(m.n_genes(), -1);
    for (std::size_t j = 0; j < genes.size(); ++j) {
        if (genes[j] >= m.n_genes()) {
            throw InvalidArgument("dense_columns: gene " + std::to_string(genes[j]) + " is outside the " + std::to_string(m.n_genes()) +
                                  " genes");
        }
        col[genes[j]] = static_cast<std::ptrdiff_t>(j);
    }
    const std::size_t J = genes.size();
    std::vector<double> out(m.n_cells() * J, 0.0);
    const auto indptr = m.indptr();
    const auto idx = m.indices();
    const auto vals = m.values();
    for (std::size_t c = 0; c < m.n_cells(); ++c) {
        for (std::size_t k = indptr[c]; k < indptr[c + 1]; ++k) {
            const std::ptrdiff_t j = col[idx[k]];
            if (j >= 0) out[c * J + static_cast<std::size_t>(j)] = static_cast<double>(vals[k]);
        }
    }
    return out;
}

struct HvgConfig {
    std::size_t n_top = 2000; ///< genes to select
    std::size_t n_bins = 20;  ///< equal-width bins of log1p(mean)
    void validate() const {
        if (n_top == 0) throw InvalidArgument("HvgConfig: 'n_top' must be >= 1");
        if (n_bins == 0) throw InvalidArgument("HvgConfig: 'n_bins' must be >= 1");
    }
};

struct HvgResult {
    std::vector<double> means;            ///< μ_g of expm1(X)
    std::vector<double> variances;        ///< σ²_g of expm1(X), divisor n − 1
    std::vector<double> dispersions;      ///< log(σ²/μ); NaN when undefined
    std::vector<double> dispersions_norm; ///< z_g; NaN when undefined
    std::vector<std::size_t> bin;         ///< bin of gene g
    std::vector<std::uint8_t> highly_variable; ///< 1 for selected genes
    std::vector<std::size_t> selected;    ///< the selected genes, increasing
};

namespace norm_detail {

/// From per-gene means and Σ_i (e_ig − μ_g)² of expm1(X).
inline HvgResult hvg_from_moments(const std::vector<double>& mean, const std::vector<double>& ss, std::size_t n, const HvgConfig& cfg) {
    const std::size_t G = mean.size();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    HvgResult r;
    r.means.resize(G);
    r.variances.resize(G);
    r.dispersions.assign(G, nan);
    r.dispersions_norm.assign(G, nan);
    r.bin.assign(G, 0);
    r.highly_variable.assign(G, 0);
    std::vector<double> logmean(G);
    const auto nd = static_cast<double>(n);
    for (std::size_t g = 0; g < G; ++g) {
        const double mu = mean[g];
        const double var = ss[g] / (nd - 1.0);
        r.means[g] = mu;
        r.variances[g] = var;
        logmean[g] = std::log1p(mu);
        if (mu > 0.0 && var > 0.0) r.dispersions[g] = std::log(var / mu);
    }
    if (G == 0) return r;
    const double lo = *std::min_element(logmean.begin(), logmean.end());
    const double hi = *std::max_element(logmean.begin(), logmean.end());
    const double width = (hi - lo) / static_cast<double>(cfg.n_bins);
    for (std::size_t g = 0; g < G; ++g) {
        std::size_t b = 0;
        if (width > 0.0) b = std::min(cfg.n_bins - 1, static_cast<std::size_t>(std::floor((logmean[g] - lo) / width)));
        r.bin[g] = b;
    }
    std::vector<double> bsum(cfg.n_bins, 0.0), bsum2(cfg.n_bins, 0.0), bcount(cfg.n_bins, 0.0);
    for (std::size_t g = 0; g < G; ++g) {
        if (std::isnan(r.dispersions[g])) continue;
        bsum[r.bin[g]] += r.dispersions[g];
        bcount[r.bin[g]] += 1.0;
    }
    for (std::size_t g = 0; g < G; ++g) {
        if (std::isnan(r.dispersions[g])) continue;
        const double m = bsum[r.bin[g]] / bcount[r.bin[g]];
        bsum2[r.bin[g]] += (r.dispersions[g] - m) * (r.dispersions[g] - m);
    }
    std::vector<std::size_t> order;
    for (std::size_t g = 0; g < G; ++g) {
        if (std::isnan(r.dispersions[g])) continue;
        const std::size_t b = r.bin[g];
        if (bcount[b] == 1.0) {
            r.dispersions_norm[g] = 1.0;
        } else {
            const double m = bsum[b] / bcount[b];
            const double sd = std::sqrt(bsum2[b] / (bcount[b] - 1.0));
            r.dispersions_norm[g] = sd > 0.0 ? (r.dispersions[g] - m) / sd : 0.0;
        }
        order.push_back(g);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return r.dispersions_norm[a] > r.dispersions_norm[b]; });
    const std::size_t take = std::min(cfg.n_top, order.size());
    for (std::size_t j = 0; j < take; ++j) r.highly_variable[order[j]] = 1;
    for (std::size_t g = 0; g < G; ++g) {
        if (r.highly_variable[g]) r.selected.push_back(g);
    }
    return r;
}

} // namespace norm_detail

/// HVG selection ("Seurat" dispersion flavour, see the header comment) on log-normalised data
/// X [n × G] (dense, row-major). Selects min(n_top, genes with a dispersion) genes.
inline HvgResult highly_variable_genes(std::span<const double> logx, std::size_t n, std::size_t G, const HvgConfig& cfg = {}) {
    cfg.validate();
    check_size(logx.size(), n * G, "highly_variable_genes", "data");
    if (n < 2) throw InvalidArgument("highly_variable_genes: needs at least 2 cells, got " + std::to_string(n));
    std::vector<double> mean(G, 0.0), ss(G, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) {
            const double v = logx[i * G + g];
            if (!std::isfinite(v)) {
                throw InvalidArgument("highly_variable_genes: entry (" + std::to_string(i) + ", " + std::to_string(g) + ") is not finite");
            }
            mean[g] += std::expm1(v);
        }
    }
    for (double& m : mean) m /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) {
            const double d = std::expm1(logx[i * G + g]) - mean[g];
            ss[g] += d * d;
        }
    }
    return norm_detail::hvg_from_moments(mean, ss, n, cfg);
}

/// As above on sparse log-normalised data (e.g. log1p_transform(normalize_total(counts))).
inline HvgResult highly_variable_genes(const CountMatrix& logx, const HvgConfig& cfg = {}) {
    cfg.validate();
    const std::size_t G = logx.n_genes(), n = logx.n_cells();
    if (n < 2) throw InvalidArgument("highly_variable_genes: needs at least 2 cells, got " + std::to_string(n));
    std::vector<double> mean(G, 0.0), ss(G, 0.0), stored(G, 0.0);
    const auto idx = logx.indices();
    const auto vals = logx.values();
    for (std::size_t k = 0; k < vals.size(); ++k) mean[idx[k]] += std::expm1(static_cast<double>(vals[k]));
    for (double& m : mean) m /= static_cast<double>(n);
    for (std::size_t k = 0; k < vals.size(); ++k) {
        const double d = std::expm1(static_cast<double>(vals[k])) - mean[idx[k]];
        ss[idx[k]] += d * d;
        stored[idx[k]] += 1.0;
    }
    // the implicit zeros: (0 − μ)² each
    for (std::size_t g = 0; g < G; ++g) ss[g] += (static_cast<double>(n) - stored[g]) * mean[g] * mean[g];
    return norm_detail::hvg_from_moments(mean, ss, n, cfg);
}

} // namespace diffbio::ops
