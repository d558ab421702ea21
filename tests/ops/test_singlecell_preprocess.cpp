#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Eigenvalues>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/simulate_counts.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/ari.hpp>
#include <diffbio/ops/singlecell/normalize.hpp>
#include <diffbio/ops/singlecell/pca.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

#include "expect_ad.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;

namespace {

struct Lcg {
    std::uint64_t s;
    double next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(s >> 11) * 0x1.0p-53;
    }
};

/// log1p of the counts, cells × genes.
std::vector<double> log1p_of(const std::vector<double>& counts) {
    std::vector<double> out;
    for (const double c : counts) out.push_back(std::log1p(c));
    return out;
}

/// Rank-r signal (decaying strengths) plus small noise, n × G.
std::vector<double> low_rank(std::size_t n, std::size_t G, std::size_t r, std::uint64_t seed) {
    Lcg rng{seed};
    std::vector<double> u(n * r), v(r * G), x(n * G);
    for (double& a : u) a = rng.next() - 0.5;
    for (double& a : v) a = rng.next() - 0.5;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) {
            double s = 0.0;
            for (std::size_t j = 0; j < r; ++j) s += u[i * r + j] * v[j * G + g] * 10.0 / static_cast<double>(j + 1);
            x[i * G + g] = s + 0.01 * (rng.next() - 0.5) + 3.0;
        }
    }
    return x;
}

} // namespace

TEST_CASE("normalize_total: hand-computed values, the median target and sparse input", "[ops][singlecell][normalize]") {
    const std::vector<double> x{1, 3, 0, 0, 2, 2};
    const auto y = ops::normalize_total(std::span<const double>(x), 3, 2, 10.0);
    CHECK(y == std::vector<double>{2.5, 7.5, 0, 0, 5, 5});
    // target ≤ 0: median of the non-zero totals {4, 4, 8} = 4
    const std::vector<double> x2{1, 3, 0, 0, 2, 2, 6, 2};
    CHECK(ops::normalize_target(std::span<const double>(x2), 4, 2, 0.0) == 4.0);
    CHECK(ops::normalize_total(std::span<const double>(x2), 4, 2, 0.0) == std::vector<double>{1, 3, 0, 0, 2, 2, 3, 1});
    // CountMatrix: the same numbers, zeros stay unstored
    const std::vector<float> xf{1, 3, 0, 0, 2, 2, 6, 2};
    const CountMatrix m = CountMatrix::from_dense(4, 2, xf);
    const CountMatrix nm = ops::normalize_total(m, 0.0);
    CHECK(nm.nnz() == m.nnz());
    CHECK(nm.to_dense() == std::vector<float>{1, 3, 0, 0, 2, 2, 3, 1});
    const CountMatrix lm = ops::log1p_transform(ops::normalize_total(m, 10.0));
    const auto ld = ops::log1p_transform(std::span<const double>(ops::normalize_total(std::span<const double>(x2), 4, 2, 10.0)));
    const auto lmd = lm.to_dense();
    for (std::size_t j = 0; j < ld.size(); ++j) CHECK(lmd[j] == Approx(ld[j]).epsilon(1e-6));
    // float and CpuParallel
    const std::vector<float> yf = ops::normalize_total(exec::CpuParallel{2}, std::span<const float>(xf), 4, 2, 10.0);
    CHECK(yf[0] == 2.5f);
    CHECK(yf[7] == 2.5f);
}

TEST_CASE("normalize_total and log1p gradients in every AD mode", "[ops][singlecell][normalize][ad]") {
    const std::vector<double> x{1.0, 3.0, 0.5, 2.0, 0.05, 4.0, 0.25, 1.5, 2.5};
    test::expect_ad([](auto s) { return ops::normalize_total(s, 3, 3, 10.0); }, x);
    test::expect_ad([](auto s) { return ops::normalize_total(exec::CpuParallel{2}, s, 3, 3, 7.0); }, x);
    test::expect_ad([](auto s) { return ops::log1p_transform(s); }, x);
    test::expect_ad(
        [](auto s) {
            const auto y = ops::normalize_total(s, 3, 3, 10.0);
            return ops::log1p_transform(std::span(y));
        },
        x);
    // an all-zero cell stays zero, with zero gradient (finite differences agree: x ≥ 0 there)
    const std::vector<double> z{1.0, 2.0, 0.0, 0.0};
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto zv = tape.variables(z);
    const auto y = ops::normalize_total(std::span<const ad::Var>(zv), 2, 2, 3.0);
    CHECK(tape.value(y[0]) == 1.0);
    CHECK(tape.value(y[1]) == 2.0);
    CHECK(tape.value(y[2]) == 0.0);
    tape.backward(y[3]);
    std::vector<double> g(4);
    tape.adjoints(zv, g);
    CHECK(g == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("HVG (Seurat dispersion flavour): hand-computed dispersions in one bin", "[ops][singlecell][hvg]") {
    // counts of 5 genes in 3 cells (expm1 of the log data); per gene μ, σ² (n − 1):
    //   A {0,2,4}: μ 2, σ² 4  -> δ = log 2      B {1,1,4}: μ 2, σ² 3  -> δ = log 1.5
    //   C {3,3,3}: σ² 0       -> no dispersion D {0,0,6}: μ 2, σ² 12 -> δ = log 6
    //   E {1,2,3}: μ 2, σ² 1  -> δ = log 0.5
    const std::vector<double> counts{0, 1, 3, 0, 1, 2, 1, 3, 0, 2, 4, 4, 3, 6, 3};
    const auto logx = log1p_of(counts);
    const auto r = ops::highly_variable_genes(logx, 3, 5, {.n_top = 2, .n_bins = 1});
    CHECK(r.means[0] == Approx(2.0).epsilon(1e-14));
    CHECK(r.variances[3] == Approx(12.0).epsilon(1e-14));
    CHECK(r.dispersions[0] == Approx(std::log(2.0)).epsilon(1e-13));
    CHECK(r.dispersions[1] == Approx(std::log(1.5)).epsilon(1e-13));
    CHECK(std::isnan(r.dispersions[2]));
    CHECK(r.dispersions[3] == Approx(std::log(6.0)).epsilon(1e-13));
    CHECK(r.dispersions[4] == Approx(std::log(0.5)).epsilon(1e-13));
    const double d[4] = {std::log(2.0), std::log(1.5), std::log(6.0), std::log(0.5)};
    const double mean = std::log(2.0 * 1.5 * 6.0 * 0.5) / 4.0;
    double ss = 0.0;
    for (const double v : d) ss += (v - mean) * (v - mean);
    const double sd = std::sqrt(ss / 3.0);
    CHECK(r.dispersions_norm[0] == Approx((d[0] - mean) / sd).epsilon(1e-12));
    CHECK(r.dispersions_norm[3] == Approx((d[2] - mean) / sd).epsilon(1e-12));
    CHECK(r.dispersions_norm[4] == Approx((d[3] - mean) / sd).epsilon(1e-12));
    CHECK(r.selected == std::vector<std::size_t>{0, 3}); // D (log 6) then A (log 2)
    CHECK(r.highly_variable == std::vector<std::uint8_t>{1, 0, 0, 1, 0});
    // the sparse path (float storage) gives what the dense path gives on the same float values
    const std::vector<float> lf(logx.begin(), logx.end());
    const std::vector<double> lfd(lf.begin(), lf.end());
    const auto rd = ops::highly_variable_genes(lfd, 3, 5, {.n_top = 2, .n_bins = 1});
    const auto rs = ops::highly_variable_genes(CountMatrix::from_dense(3, 5, lf), {.n_top = 2, .n_bins = 1});
    CHECK(rs.selected == rd.selected);
    CHECK(rs.selected == r.selected);
    for (std::size_t g = 0; g < 5; ++g) {
        CHECK(rs.means[g] == Approx(rd.means[g]).epsilon(1e-13));
        CHECK(rs.variances[g] == Approx(rd.variances[g]).epsilon(1e-9).margin(1e-12));
        if (g != 2) CHECK(rs.dispersions[g] == Approx(rd.dispersions[g]).epsilon(1e-12));
    }
}

TEST_CASE("HVG: bins by log1p(mean); a lone gene in a bin gets z = 1", "[ops][singlecell][hvg]") {
    // genes A, B, D, E (μ 2) plus F {10,20,30} (μ 20, σ² 100, δ = log 5) and C {3,3,3} (μ 3,
    // no dispersion). Two bins of log1p(μ) over [log 3, log 21]: F alone in the upper one.
    const std::vector<double> counts{0, 1, 3, 0, 1, 10, 2, 1, 3, 0, 2, 20, 4, 4, 3, 6, 3, 30};
    const auto r = ops::highly_variable_genes(log1p_of(counts), 3, 6, {.n_top = 3, .n_bins = 2});
    CHECK(r.bin == std::vector<std::size_t>{0, 0, 0, 0, 0, 1});
    CHECK(r.dispersions[5] == Approx(std::log(5.0)).epsilon(1e-13));
    CHECK(r.dispersions_norm[5] == 1.0);
    // bin 0 as in the one-bin case: z(D) ≈ 1.22 > z(F) = 1 > z(A) ≈ 0.14
    CHECK(r.selected == std::vector<std::size_t>{0, 3, 5});
    // n_top larger than the genes with a dispersion: all 5 of them
    CHECK(ops::highly_variable_genes(log1p_of(counts), 3, 6, {.n_top = 100, .n_bins = 2}).selected.size() == 5);
}

TEST_CASE("PCA exact: a hand-computed case", "[ops][singlecell][pca]") {
    // points (−1,0), (1,0), (0,−0.5), (0,0.5) (+ offset 2): XcᵀXc = diag(2, 0.5)
    const std::vector<double> x{1, 2, 3, 2, 2, 1.5, 2, 2.5};
    const auto p = ops::pca_fit(x, 4, 2, {.n_components = 2});
    CHECK(p.solver == ops::PcaSolver::Exact);
    CHECK(p.mean == std::vector<double>{2, 2});
    CHECK(p.singular_values[0] == Approx(std::sqrt(2.0)).epsilon(1e-14));
    CHECK(p.singular_values[1] == Approx(std::sqrt(0.5)).epsilon(1e-14));
    CHECK(p.explained_variance[0] == Approx(2.0 / 3.0).epsilon(1e-14));
    CHECK(p.explained_variance_ratio[1] == Approx(0.2).epsilon(1e-14));
    CHECK(p.components[0] == Approx(1.0).epsilon(1e-14));
    CHECK(p.components[1] == Approx(0.0).margin(1e-15));
    CHECK(p.components[3] == Approx(1.0).epsilon(1e-14));
    const std::vector<double> scores{-1, 0, 1, 0, 0, -0.5, 0, 0.5};
    for (std::size_t j = 0; j < 8; ++j) CHECK(p.scores[j] == Approx(scores[j]).margin(1e-14));
    // pca_transform of the fitted data gives the scores
    const auto t = ops::pca_transform(p, std::span<const double>(x), 4);
    for (std::size_t j = 0; j < 8; ++j) CHECK(t[j] == Approx(scores[j]).margin(1e-14));
}

TEST_CASE("PCA signs: each component's entry of largest magnitude is positive", "[ops][singlecell][pca]") {
    // Data along (−0.8, 0.6) and its mirror images: whatever signs the SVD returns, the first
    // component is (0.8, −0.6) once fixed (its largest entry, feature 0, made positive).
    for (const double sx : {1.0, -1.0}) {
        for (const double sy : {1.0, -1.0}) {
            std::vector<double> x;
            for (const double t : {-2.0, -1.0, 0.5, 1.0, 1.5}) {
                const double off = 0.01 * t * t; // a little spread off the line
                x.push_back(sx * (-0.8 * t + 0.6 * off));
                x.push_back(sy * (0.6 * t + 0.8 * off));
            }
            for (const auto solver : {ops::PcaSolver::Exact, ops::PcaSolver::Randomized}) {
                const auto p = ops::pca_fit(x, 5, 2, {.n_components = 2, .solver = solver});
                INFO("signs " << sx << ", " << sy);
                CHECK(p.components[0] == Approx(0.8).epsilon(1e-2));
                CHECK(p.components[1] == Approx(-0.6 * sx * sy).epsilon(1e-2));
                for (std::size_t j = 0; j < 2; ++j) {
                    const double a = p.components[j * 2], b = p.components[j * 2 + 1];
                    CHECK((std::fabs(a) >= std::fabs(b) ? a : b) > 0.0);
                }
            }
        }
    }
}

TEST_CASE("PCA exact equals the eigen-decomposition of the covariance", "[ops][singlecell][pca]") {
    const std::size_t n = 60, G = 12, k = 5;
    Lcg rng{5};
    std::vector<double> x(n * G);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) x[i * G + g] = (rng.next() - 0.5) * static_cast<double>(g + 1);
    }
    const auto p = ops::pca_fit(x, n, G, {.n_components = k, .solver = ops::PcaSolver::Exact});
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> X(x.data(), n, G);
    const Eigen::MatrixXd Xc = X.rowwise() - X.colwise().mean();
    const Eigen::MatrixXd C = Xc.transpose() * Xc / static_cast<double>(n - 1);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);
    for (std::size_t j = 0; j < k; ++j) {
        const auto col = static_cast<Eigen::Index>(G - 1 - j); // eigenvalues increase
        CHECK(p.explained_variance[j] == Approx(es.eigenvalues()(col)).epsilon(1e-12));
        double dot = 0.0;
        for (std::size_t g = 0; g < G; ++g) dot += p.components[j * G + g] * es.eigenvectors()(static_cast<Eigen::Index>(g), col);
        CHECK(std::fabs(dot) == Approx(1.0).epsilon(1e-10));
    }
}

TEST_CASE("PCA randomized (seeded) agrees with the exact decomposition", "[ops][singlecell][pca]") {
    const std::size_t n = 600, G = 520, k = 6;
    const auto x = low_rank(n, G, 8, 17);
    const auto ex = ops::pca_fit(x, n, G, {.n_components = k, .solver = ops::PcaSolver::Exact});
    const auto rz = ops::pca_fit(x, n, G, {.n_components = k, .seed = 3}); // Auto: large -> randomized
    CHECK(rz.solver == ops::PcaSolver::Randomized);
    for (std::size_t j = 0; j < k; ++j) {
        CHECK(rz.singular_values[j] == Approx(ex.singular_values[j]).epsilon(1e-10));
        for (std::size_t g = 0; g < G; ++g) REQUIRE(rz.components[j * G + g] == Approx(ex.components[j * G + g]).margin(1e-8));
    }
    for (std::size_t j = 0; j < n * k; ++j) REQUIRE(rz.scores[j] == Approx(ex.scores[j]).margin(1e-7));
    // the seed fixes the result; another seed gives the same subspace
    const auto again = ops::pca_fit(x, n, G, {.n_components = k, .seed = 3});
    CHECK(again.components == rz.components);
    const auto other = ops::pca_fit(x, n, G, {.n_components = k, .seed = 4});
    CHECK(other.components != rz.components);
    for (std::size_t j = 0; j < k; ++j) CHECK(other.singular_values[j] == Approx(ex.singular_values[j]).epsilon(1e-10));
}

TEST_CASE("pca_transform gradients (fixed loadings) in every AD mode", "[ops][singlecell][pca][ad]") {
    const std::size_t n = 10, G = 4;
    Lcg rng{9};
    std::vector<double> fit_x(n * G);
    for (double& v : fit_x) v = rng.next();
    const auto p = ops::pca_fit(fit_x, n, G, {.n_components = 2});
    const std::vector<double> x{0.3, 0.1, 0.9, 0.4, 0.5, 0.7, 0.2, 0.8};
    test::expect_ad([&p](auto s) { return ops::pca_transform(p, s, 2); }, x);
    test::expect_ad([&p](auto s) { return ops::pca_transform(exec::CpuParallel{2}, p, s, 2); }, x);
}

TEST_CASE("simulated counts -> normalise -> log1p -> HVG -> PCA -> k-means finds the clusters", "[ops][singlecell][pipeline]") {
    CountSimulationConfig sc;
    sc.n_cells = 600;
    sc.n_genes = 800;
    sc.n_clusters = 4;
    sc.de_prob = 0.15;
    sc.seed = 12;
    const auto sim = simulate_counts(sc);
    const CountMatrix logn = ops::log1p_transform(ops::normalize_total(sim.counts, 1e4));
    const auto hvg = ops::highly_variable_genes(logn, {.n_top = 200});
    REQUIRE(hvg.selected.size() == 200);
    const auto dense = ops::dense_columns(logn, hvg.selected);
    const auto pca = ops::pca_fit(dense, sc.n_cells, 200, {.n_components = 10});
    CHECK(pca.explained_variance_ratio[0] > pca.explained_variance_ratio[9]);
    ops::SoftKMeans km({.n_clusters = 4, .n_features = 10, .seed = 1});
    km.fit(pca.scores, sc.n_cells);
    CHECK(metrics::adjusted_rand_index(sim.cluster, km.labels()) > 0.95);
}

TEST_CASE("preprocessing bad input raises clear exceptions", "[ops][singlecell][errors]") {
    const std::vector<double> x{1, 2, 3, 4};
    CHECK_THROWS_AS(ops::normalize_total(std::span<const double>(x), 3, 2), ShapeError);
    const std::vector<double> neg{1, -2, 3, 4};
    CHECK_THROWS_WITH(ops::normalize_total(std::span<const double>(neg), 2, 2), Contains("entry 1 must be finite and >= 0"));
    const std::vector<double> nanv{1, std::nan(""), 3, 4};
    CHECK_THROWS_AS(ops::normalize_total(std::span<const double>(nanv), 2, 2), InvalidArgument);
    const std::vector<double> low{0.5, -1.0};
    CHECK_THROWS_WITH(ops::log1p_transform(std::span<const double>(low)), Contains("entry 1 must be finite and > -1"));
    const std::vector<double> first_bad{std::numeric_limits<double>::infinity(), 0.5};
    CHECK_THROWS_WITH(ops::log1p_transform(std::span<const double>(first_bad)), Contains("entry 0 must be finite"));
    CHECK_THROWS_WITH(ops::highly_variable_genes(x, 2, 2, {.n_top = 0}), Contains("n_top"));
    CHECK_THROWS_WITH(ops::highly_variable_genes(x, 1, 4), Contains("at least 2 cells"));
    CHECK_THROWS_AS(ops::highly_variable_genes(x, 3, 2), ShapeError);
    CHECK_THROWS_WITH(ops::pca_fit(x, 2, 2, {.n_components = 3}), Contains("exceeds min(n, G)"));
    const std::vector<double> x32{1, 2, 3, 5, 4, 1}; // 3 rows, 2 features: at most 2 components
    CHECK_THROWS_WITH(ops::pca_fit(x32, 3, 2, {.n_components = 3}), Contains("n_components = 3 exceeds min(n, G) = 2"));
    CHECK(ops::pca_fit(x32, 3, 2, {.n_components = 2}).components.size() == 4);
    CHECK_THROWS_WITH(ops::pca_fit(nanv, 2, 2, {.n_components = 1}), Contains("entry 1 is not finite"));
    CHECK_THROWS_AS(ops::pca_fit(x, 3, 2, {.n_components = 1}), ShapeError);
    const auto p = ops::pca_fit(x, 2, 2, {.n_components = 1});
    CHECK_THROWS_AS(ops::pca_transform(p, std::span<const double>(x), 3), ShapeError);
    const std::vector<std::size_t> genes{5};
    CHECK_THROWS_WITH(ops::dense_columns(CountMatrix(2, 2), genes), Contains("outside the 2 genes"));
}
