// simulate_counts: determinism (seed, threads), the count distributions (Poisson and negative
// binomial moments), the gamma sampler, cluster and batch profiles, log-normal library sizes,
// doublets, the ambient profile, and config validation.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/simulate_counts.hpp>

using diffbio::CountSimulationConfig;
using diffbio::simulate_counts;

namespace {

bool same(const diffbio::CountMatrix& a, const diffbio::CountMatrix& b) {
    return a.n_cells() == b.n_cells() && a.n_genes() == b.n_genes() &&
           std::equal(a.indptr().begin(), a.indptr().end(), b.indptr().begin(), b.indptr().end()) &&
           std::equal(a.indices().begin(), a.indices().end(), b.indices().begin(), b.indices().end()) &&
           std::equal(a.values().begin(), a.values().end(), b.values().begin(), b.values().end());
}

} // namespace

TEST_CASE("simulate_counts: shapes, names, truth vectors, determinism", "[simulate]") {
    CountSimulationConfig cfg{.n_cells = 300, .n_genes = 200, .n_clusters = 4, .n_batches = 3, .doublet_rate = 0.1,
                              .ambient_fraction = 0.05, .seed = 42};
    const auto s = simulate_counts(cfg);
    REQUIRE(s.counts.n_cells() == 300);
    REQUIRE(s.counts.n_genes() == 200);
    CHECK_NOTHROW(s.counts.validate());
    CHECK(s.counts.nnz() > 0);
    CHECK(s.counts.barcodes.front() == "cell1");
    CHECK(s.counts.gene_ids.back() == "gene200");
    CHECK(s.cluster.size() == 300);
    CHECK(s.profiles.size() == 4 * 3 * 200);
    double asum = 0.0;
    for (double v : s.ambient_profile) asum += v;
    CHECK(asum == Approx(1.0).epsilon(1e-12));
    std::vector<int> seen_c(4, 0), seen_b(3, 0);
    for (std::size_t i = 0; i < 300; ++i) {
        REQUIRE(s.cluster[i] >= 0);
        REQUIRE(s.cluster[i] < 4);
        ++seen_c[static_cast<std::size_t>(s.cluster[i])];
        ++seen_b[static_cast<std::size_t>(s.batch[i])];
        CHECK((s.doublet[i] == 1) == (s.second_cluster[i] >= 0));
    }
    for (int v : seen_c) CHECK(v > 30);
    for (int v : seen_b) CHECK(v > 50);

    const auto again = simulate_counts(cfg);
    CHECK(same(s.counts, again.counts));
    CHECK(s.cluster == again.cluster);
    cfg.threads = 2;
    const auto parallel = simulate_counts(cfg);
    CHECK(same(s.counts, parallel.counts));
    CHECK(s.doublet == parallel.doublet);
    cfg.seed = 43;
    CHECK_FALSE(same(s.counts, simulate_counts(cfg).counts));
}

TEST_CASE("simulate_counts: Poisson and negative-binomial moments", "[simulate]") {
    // One cluster, one batch, fixed library: every cell has the same mean μ_g = L·π_g.
    CountSimulationConfig cfg{.n_cells = 4000, .n_genes = 50, .n_clusters = 1, .n_batches = 1, .library_size = 2000.0,
                              .library_log_sd = 0.0, .dispersion = 0.0, .seed = 7};
    for (double phi : {0.0, 0.2}) {
        cfg.dispersion = phi;
        const auto s = simulate_counts(cfg);
        const auto dense = s.counts.to_dense();
        const double n = static_cast<double>(cfg.n_cells);
        std::size_t checked = 0;
        for (std::size_t g = 0; g < cfg.n_genes; ++g) {
            const double mu = 2000.0 * s.profiles[g];
            if (mu < 5.0) continue; // moments of rare genes are too noisy for a tight check
            double m1 = 0.0, m2 = 0.0;
            for (std::size_t i = 0; i < cfg.n_cells; ++i) m1 += dense[i * cfg.n_genes + g];
            m1 /= n;
            for (std::size_t i = 0; i < cfg.n_cells; ++i) {
                const double d = dense[i * cfg.n_genes + g] - m1;
                m2 += d * d;
            }
            m2 /= n - 1.0;
            const double var = mu + phi * mu * mu;
            INFO("phi " << phi << ", gene " << g << ": mu " << mu << ", mean " << m1 << ", variance " << m2 << " vs "
                        << var);
            CHECK(std::fabs(m1 - mu) < 5.0 * std::sqrt(var / n)); // 5 standard errors
            // Var of the sample variance ≈ (μ4 − σ⁴)/n; bounded generously by 6σ⁴/n for these
            // mildly over-dispersed counts: allow 5 such standard errors.
            CHECK(std::fabs(m2 - var) < 5.0 * var * std::sqrt(6.0 / n));
            ++checked;
        }
        CHECK(checked >= 5);
    }
}

TEST_CASE("simulate_counts: doublets and ambient contamination", "[simulate]") {
    CountSimulationConfig cfg{.n_cells = 3000, .n_genes = 100, .n_clusters = 3, .library_size = 1000.0,
                              .library_log_sd = 0.0, .doublet_rate = 0.2, .ambient_fraction = 0.3,
                              .dispersion = 0.0, .seed = 11};
    const auto s = simulate_counts(cfg);
    std::size_t doublets = 0;
    double tot_single = 0.0, tot_double = 0.0;
    const auto totals = s.counts.cell_totals();
    for (std::size_t i = 0; i < cfg.n_cells; ++i) {
        if (s.doublet[i]) {
            ++doublets;
            tot_double += totals[i];
            CHECK(s.library_size[i] == Approx(2000.0).epsilon(1e-12));
        } else {
            tot_single += totals[i];
            CHECK(s.library_size[i] == Approx(1000.0).epsilon(1e-12));
        }
    }
    // Doublet share: binomial(3000, 0.2), standard error 0.0073.
    CHECK(std::fabs(static_cast<double>(doublets) / 3000.0 - 0.2) < 5.0 * 0.0073);
    // Mean totals: Poisson with mean L (singlets) or 2L (doublets).
    const double mean_single = tot_single / static_cast<double>(cfg.n_cells - doublets);
    const double mean_double = tot_double / static_cast<double>(doublets);
    CHECK(std::fabs(mean_single - 1000.0) < 5.0 * std::sqrt(1000.0 / static_cast<double>(cfg.n_cells - doublets)));
    CHECK(std::fabs(mean_double - 2000.0) < 5.0 * std::sqrt(2000.0 / static_cast<double>(doublets)));

    // Per cluster and gene, the summed counts of singlets match Σ μ = N_k·L·((1−ρ)π_kg + ρ a_g).
    const auto dense = s.counts.to_dense();
    std::size_t checked = 0;
    for (std::size_t k = 0; k < 3; ++k) {
        double n_k = 0.0;
        for (std::size_t i = 0; i < cfg.n_cells; ++i) n_k += (!s.doublet[i] && s.cluster[i] == static_cast<int>(k));
        for (std::size_t g = 0; g < cfg.n_genes; ++g) {
            const double mu = 1000.0 * (0.7 * s.profiles[k * cfg.n_genes + g] + 0.3 * s.ambient_profile[g]);
            const double expected = n_k * mu;
            if (expected < 50.0) continue;
            double sum = 0.0;
            for (std::size_t i = 0; i < cfg.n_cells; ++i) {
                if (!s.doublet[i] && s.cluster[i] == static_cast<int>(k)) sum += dense[i * cfg.n_genes + g];
            }
            INFO("cluster " << k << ", gene " << g);
            CHECK(std::fabs(sum - expected) < 5.0 * std::sqrt(expected));
            ++checked;
        }
    }
    CHECK(checked > 20);
}

TEST_CASE("simulate_counts: each cell follows its own cluster and batch profile; log-normal libraries", "[simulate]") {
    CountSimulationConfig cfg{.n_cells = 4000, .n_genes = 60, .n_clusters = 3, .n_batches = 2, .de_prob = 0.3,
                              .library_size = 1000.0, .library_log_sd = 0.5, .dispersion = 0.0, .seed = 5};
    const auto s = simulate_counts(cfg);
    const std::size_t G = cfg.n_genes, B = cfg.n_batches;
    const auto lp = [&](std::size_t k, std::size_t b, std::size_t g) { return std::log(s.profiles[(k * B + b) * G + g]); };
    // Every cluster has DE genes of its own: two clusters differ somewhere by about de_log_fold.
    for (std::size_t k1 = 0; k1 < 3; ++k1) {
        for (std::size_t k2 = k1 + 1; k2 < 3; ++k2) {
            double most = 0.0;
            for (std::size_t g = 0; g < G; ++g) most = std::max(most, std::fabs(lp(k1, 0, g) - lp(k2, 0, g)));
            INFO("clusters " << k1 << ", " << k2);
            CHECK(most > 1.0);
        }
    }
    // A batch multiplies every cluster's profile by the same per-gene factor (up to normalisation):
    // log π_k0g − log π_k1g − (log π_00g − log π_01g) does not depend on g.
    for (std::size_t k = 1; k < 3; ++k) {
        const double c0 = lp(k, 0, 0) - lp(k, 1, 0) - (lp(0, 0, 0) - lp(0, 1, 0));
        for (std::size_t g = 1; g < G; ++g) {
            CHECK(lp(k, 0, g) - lp(k, 1, g) - (lp(0, 0, g) - lp(0, 1, g)) == Approx(c0).margin(1e-9));
        }
    }
    // Per (cluster, batch) and gene the summed counts of the cells there match Σ_i L_i π_kbg
    // (Poisson: variance equal to the mean, 5 standard errors).
    const auto dense = s.counts.to_dense();
    std::size_t checked = 0;
    for (std::size_t k = 0; k < 3; ++k) {
        for (std::size_t b = 0; b < B; ++b) {
            double lib = 0.0;
            std::vector<double> sum(G, 0.0);
            for (std::size_t i = 0; i < cfg.n_cells; ++i) {
                if (s.cluster[i] != static_cast<int>(k) || s.batch[i] != static_cast<int>(b)) continue;
                lib += s.library_size[i];
                for (std::size_t g = 0; g < G; ++g) sum[g] += dense[i * G + g];
            }
            for (std::size_t g = 0; g < G; ++g) {
                const double expected = lib * s.profiles[(k * B + b) * G + g];
                if (expected < 50.0) continue;
                INFO("cluster " << k << ", batch " << b << ", gene " << g);
                CHECK(std::fabs(sum[g] - expected) < 5.0 * std::sqrt(expected));
                ++checked;
            }
        }
    }
    CHECK(checked > 60);
    // log L_i ~ N(log library_size, library_log_sd²): mean and standard deviation within 5 SE.
    double m = 0.0, v = 0.0;
    for (double l : s.library_size) m += std::log(l);
    m /= static_cast<double>(cfg.n_cells);
    for (double l : s.library_size) v += (std::log(l) - m) * (std::log(l) - m);
    const double sd = std::sqrt(v / static_cast<double>(cfg.n_cells - 1));
    const double n = static_cast<double>(cfg.n_cells);
    CHECK(std::fabs(m - std::log(1000.0)) < 5.0 * 0.5 / std::sqrt(n));
    CHECK(std::fabs(sd - 0.5) < 5.0 * 0.5 / std::sqrt(2.0 * n));

    // Without DE genes and batch effects every profile is the same.
    cfg.de_prob = 0.0;
    cfg.batch_log_sd = 0.0;
    const auto flat = simulate_counts(cfg);
    for (std::size_t j = 1; j < 3 * B; ++j) {
        for (std::size_t g = 0; g < G; ++g) CHECK(flat.profiles[j * G + g] == Approx(flat.profiles[g]).epsilon(1e-12));
    }
}

TEST_CASE("simulate_counts: the gamma sampler's mean, variance and third central moment", "[simulate]") {
    // Gamma(k, 1): mean k, variance k, third central moment 2k. Standard errors from the sample
    // moments' asymptotic variances: Var(m̄) = k/n, Var(m2) ≈ (μ4 − μ2²)/n and
    // Var(m3) ≈ (μ6 − μ3² − 6μ2μ4 + 9μ2³)/n, with the central moments of Gamma(k) μ2 = k, μ3 = 2k,
    // μ4 = 3k² + 6k, μ6 = 15k³ + 130k² + 120k.
    diffbio::detail::SimRng rng(2024, 3);
    const int n = 400000;
    for (double k : {0.3, 1.0, 2.5, 30.0}) {
        std::vector<double> x(n);
        for (double& v : x) v = rng.gamma(k);
        double m = 0.0;
        for (double v : x) m += v;
        m /= n;
        double m2 = 0.0, m3 = 0.0;
        for (double v : x) {
            m2 += (v - m) * (v - m);
            m3 += (v - m) * (v - m) * (v - m);
        }
        m2 /= n;
        m3 /= n;
        const double mu4 = 3.0 * k * k + 6.0 * k, mu6 = 15.0 * k * k * k + 130.0 * k * k + 120.0 * k;
        INFO("shape " << k << ": mean " << m << ", variance " << m2 << ", third moment " << m3);
        CHECK(std::fabs(m - k) < 5.0 * std::sqrt(k / n));
        CHECK(std::fabs(m2 - k) < 5.0 * std::sqrt((mu4 - k * k) / n));
        CHECK(std::fabs(m3 - 2.0 * k) < 5.0 * std::sqrt((mu6 - 4.0 * k * k - 6.0 * k * mu4 + 9.0 * k * k * k) / n));
        CHECK(*std::min_element(x.begin(), x.end()) > 0.0);
    }
}

TEST_CASE("simulate_counts: bad configs name the field", "[simulate]") {
    CHECK_THROWS_WITH(simulate_counts({.n_cells = 0}), Catch::Contains("'n_cells' must be > 0"));
    CHECK_THROWS_WITH(simulate_counts({.doublet_rate = 1.5}), Catch::Contains("'doublet_rate' must be in [0, 1]"));
    CHECK_THROWS_WITH(simulate_counts({.dispersion = -1.0}), Catch::Contains("'dispersion'"));
    CHECK_THROWS_WITH(simulate_counts({.n_clusters = 2, .cluster_weights = {1.0}}),
                      Catch::Contains("'cluster_weights' has 1 entries, expected n_clusters = 2"));
    CHECK_THROWS_AS(simulate_counts({.library_size = std::nan("")}), diffbio::InvalidArgument);
}
