#pragma once
// Principal component analysis of a cells × features matrix (Eigen), and the differentiable
// projection onto fixed loadings.
//
// pca_fit(x, n, G, cfg): centre the columns (x̄ = column means), then the top-k right singular
// vectors of X_c = X − 1x̄ᵀ are the loadings W [G × k] (stored as `components`, k × G, one row per
// component, as scikit-learn's components_), singular values s_1 ≥ ... ≥ s_k, explained
// variance s²/(n − 1), scores X_c W [n × k].
//   Exact       Eigen::BDCSVD of X_c (thin U and V): O(n·G·min(n, G)).
//   Randomized  Halko, Martinsson & Tropp (2011), Algorithm 4.4: a Gaussian test matrix Ω
//               [G × (k + p)] (p = oversampling), Y = X_c Ω, `power_iterations` rounds of
//               Q ← qr(X_c qr(X_cᵀ Q)) (re-orthonormalised each half step), B = Qᵀ X_c, SVD of the
//               small B. O(n·G·(k + p)·(2q + 2)). Ω comes from splitmix64 of `seed` with a
//               Box–Muller transform: the result depends only on the seed and the data.
//   Auto        Randomized when n·G > 500 · 500 and k < 0.8·min(n, G) (scikit-learn's rule),
//               else Exact.
// Signs: each component is flipped so that its loading of largest magnitude is positive (ties:
// the first), so the two solvers and repeated runs agree. (scikit-learn flips by U instead;
// DiffBio's PCA inside the Scrublet-style doublet scorer, spec §5.2, centres and takes the SVD
// as here but leaves the signs to the SVD routine, so they are arbitrary there.)
//
// pca_transform(pca, x, n): scores (x − x̄) W [n × k] for new data, generic in the scalar of x
// (loadings and mean are constants): Var records ONE node whose backward is x̄ = ȳ Wᵀ (a GEMM).
//
// Errors: InvalidArgument for k = 0, k > min(n, G), NaN/infinite data, n < 2; ShapeError for
// sizes that disagree.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <Eigen/QR>
#include <Eigen/SVD>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

enum class PcaSolver { Auto, Exact, Randomized };

struct PcaConfig {
    std::size_t n_components = 50;
    PcaSolver solver = PcaSolver::Auto;
    std::size_t oversampling = 10;     ///< randomized: p extra test vectors
    std::size_t power_iterations = 4;  ///< randomized: q
    std::uint64_t seed = 0;            ///< randomized: Ω
    void validate() const {
        if (n_components == 0) throw InvalidArgument("PcaConfig: 'n_components' must be >= 1");
    }
};

struct Pca {
    std::size_t n_features = 0;
    std::size_t n_components = 0;
    PcaSolver solver = PcaSolver::Exact;   ///< the solver used (never Auto)
    std::vector<double> mean;              ///< [G]
    std::vector<double> components;        ///< [k × G], row j = loading vector of component j
    std::vector<double> singular_values;   ///< [k], decreasing
    std::vector<double> explained_variance;       ///< s²/(n − 1)
    std::vector<double> explained_variance_ratio; ///< over the total variance of X
    std::vector<double> scores;            ///< [n × k] of the fitted data
};

namespace pca_detail {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMat = Eigen::MatrixXd;

inline ColMat orthonormal_basis(const ColMat& Y) {
    Eigen::HouseholderQR<ColMat> qr(Y);
    return qr.householderQ() * ColMat::Identity(Y.rows(), Y.cols());
}

inline ColMat gaussian(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    std::uint64_t state = seed;
    auto next = [&state] {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    };
    auto uniform = [&] { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }; // (0, 1)
    ColMat out(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    const Eigen::Index total = out.size();
    for (Eigen::Index j = 0; j < total; j += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        const double a = 2.0 * 3.14159265358979323846 * uniform();
        out.data()[j] = r * std::cos(a);
        if (j + 1 < total) out.data()[j + 1] = r * std::sin(a);
    }
    return out;
}

} // namespace pca_detail

/// PCA of x [n × G] (row-major); see the header comment.
inline Pca pca_fit(std::span<const double> x, std::size_t n, std::size_t G, const PcaConfig& cfg = {}) {
    constexpr const char* where = "pca_fit";
    cfg.validate();
    check_size(x.size(), n * G, where, "data");
    if (n < 2) throw InvalidArgument(std::string(where) + ": needs at least 2 rows, got " + std::to_string(n));
    if (G == 0) throw InvalidArgument(std::string(where) + ": the number of features must be >= 1");
    const std::size_t k = cfg.n_components;
    if (k > std::min(n, G)) {
        throw InvalidArgument(std::string(where) + ": n_components = " + std::to_string(k) + " exceeds min(n, G) = " +
                              std::to_string(std::min(n, G)));
    }
    check_all_finite(x, where, "data");
    const auto N = static_cast<Eigen::Index>(n), GG = static_cast<Eigen::Index>(G), K = static_cast<Eigen::Index>(k);
    const Eigen::Map<const pca_detail::Mat> X(x.data(), N, GG);
    Pca out;
    out.n_features = G;
    out.n_components = k;
    const Eigen::RowVectorXd mean = X.colwise().mean();
    out.mean.assign(mean.data(), mean.data() + G);
    const pca_detail::ColMat Xc = X.rowwise() - mean;
    const double total_var = Xc.squaredNorm() / static_cast<double>(n - 1);

    PcaSolver solver = cfg.solver;
    if (solver == PcaSolver::Auto) {
        const bool large = static_cast<double>(n) * static_cast<double>(G) > 500.0 * 500.0;
        solver = large && static_cast<double>(k) < 0.8 * static_cast<double>(std::min(n, G)) ? PcaSolver::Randomized : PcaSolver::Exact;
    }
    out.solver = solver;
    pca_detail::ColMat V;   // [G × k]
    Eigen::VectorXd s;      // [k]
    if (solver == PcaSolver::Exact) {
        Eigen::BDCSVD<pca_detail::ColMat> svd(Xc, Eigen::ComputeThinV);
        V = svd.matrixV().leftCols(K);
        s = svd.singularValues().head(K);
    } else {
        const std::size_t l = std::min(k + cfg.oversampling, std::min(n, G));
        const pca_detail::ColMat Omega = pca_detail::gaussian(G, l, cfg.seed);
        pca_detail::ColMat Q = pca_detail::orthonormal_basis(Xc * Omega);
        for (std::size_t it = 0; it < cfg.power_iterations; ++it) {
            const pca_detail::ColMat Z = pca_detail::orthonormal_basis(Xc.transpose() * Q);
            Q = pca_detail::orthonormal_basis(Xc * Z);
        }
        const pca_detail::ColMat B = Q.transpose() * Xc; // [l × G]
        Eigen::BDCSVD<pca_detail::ColMat> svd(B, Eigen::ComputeThinV);
        V = svd.matrixV().leftCols(K);
        s = svd.singularValues().head(K);
    }
    for (Eigen::Index j = 0; j < K; ++j) {
        Eigen::Index arg = 0;
        for (Eigen::Index g = 1; g < GG; ++g) {
            if (std::fabs(V(g, j)) > std::fabs(V(arg, j))) arg = g;
        }
        if (V(arg, j) < 0.0) V.col(j) *= -1.0;
    }
    out.components.resize(k * G);
    for (Eigen::Index j = 0; j < K; ++j) {
        for (Eigen::Index g = 0; g < GG; ++g) out.components[static_cast<std::size_t>(j * GG + g)] = V(g, j);
    }
    out.singular_values.assign(s.data(), s.data() + k);
    for (std::size_t j = 0; j < k; ++j) {
        const double ev = s[static_cast<Eigen::Index>(j)] * s[static_cast<Eigen::Index>(j)] / static_cast<double>(n - 1);
        out.explained_variance.push_back(ev);
        out.explained_variance_ratio.push_back(total_var > 0.0 ? ev / total_var : 0.0);
    }
    const pca_detail::Mat scores = Xc * V;
    out.scores.assign(scores.data(), scores.data() + n * k);
    return out;
}

/// Scores (x − x̄) W [n × k] of x [n × G] with the fitted mean and loadings (constants).
template <exec::HostPolicy P, class S>
std::vector<S> pca_transform(const P& policy, const Pca& pca, std::span<const S> x, std::size_t n) {
    constexpr const char* where = "pca_transform";
    const std::size_t G = pca.n_features, k = pca.n_components;
    if (k == 0) throw InvalidArgument(std::string(where) + ": the Pca has no components (not fitted)");
    check_size(x.size(), n * G, where, "data");
    check_size(pca.components.size(), k * G, where, "components");
    check_size(pca.mean.size(), G, where, "mean");
    check_all_finite(x, where, "data");
    const auto N = static_cast<Eigen::Index>(n), GG = static_cast<Eigen::Index>(G), K = static_cast<Eigen::Index>(k);
    const Eigen::Map<const pca_detail::Mat> W(pca.components.data(), K, GG); // [k × G]
    const Eigen::Map<const Eigen::RowVectorXd> mean(pca.mean.data(), GG);
    [[maybe_unused]] const int threads = exec::thread_count(policy);
    auto project = [&](const double* xv, double* yv) {
        constexpr std::size_t rows_per = 1024;
        const auto nb = static_cast<std::ptrdiff_t>((n + rows_per - 1) / rows_per);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        for (std::ptrdiff_t b = 0; b < nb; ++b) {
            const auto i0 = static_cast<Eigen::Index>(static_cast<std::size_t>(b) * rows_per);
            const auto r = std::min(static_cast<Eigen::Index>(rows_per), N - i0);
            const Eigen::Map<const pca_detail::Mat> X(xv + i0 * GG, r, GG);
            Eigen::Map<pca_detail::Mat> Y(yv + i0 * K, r, K);
            Y.noalias() = (X.rowwise() - mean) * W.transpose();
        }
    };
    if constexpr (std::is_floating_point_v<S>) {
        std::vector<double> xd(x.begin(), x.end()), y(n * k);
        project(xd.data(), y.data());
        return std::vector<S>(y.begin(), y.end());
    } else if constexpr (std::is_same_v<S, ad::Var>) {
        ad::Tape& tape = ad::Tape::active();
        std::vector<double> wcopy(pca.components); // the backward may outlive pca
        const std::span<double> wsaved = tape.allocate<double>(k * G);
        std::copy(wcopy.begin(), wcopy.end(), wsaved.begin());
        auto y = tape.record_node_uninitialised({x}, n * k, [=](const ad::NodeGrad& g) {
            const Eigen::Map<const pca_detail::Mat> Wb(wsaved.data(), K, GG);
            const Eigen::Map<const pca_detail::Mat> Yb(g.out_adjoint().data(), N, K);
            Eigen::Map<pca_detail::Mat> Xb(g.in_adjoint(0).data(), N, GG);
            Xb.noalias() += Yb * Wb;
        });
        const auto xv = soft::detail::forward_values(tape, x, {});
        project(xv.data(), tape.values_of(y).data());
        return {y.begin(), y.end()};
    } else {
        std::vector<S> y(n * k, passive<S>(0.0));
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < k; ++j) {
                S acc = passive<S>(0.0);
                for (std::size_t g = 0; g < G; ++g) acc = acc + (x[i * G + g] - pca.mean[g]) * pca.components[j * G + g];
                y[i * k + j] = acc;
            }
        }
        return y;
    }
}

template <class S>
std::vector<S> pca_transform(const Pca& pca, std::span<const S> x, std::size_t n) {
    return pca_transform(exec::Cpu{}, pca, x, n);
}

} // namespace diffbio::ops
