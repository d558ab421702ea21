// simulate_counts: determinism (seed, threads), the count distributions (Poisson and negative
// binomial moments), doublets, the ambient profile, and config validation.

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

TEST_CASE("simulate_counts: bad configs name the field", "[simulate]") {
    CHECK_THROWS_WITH(simulate_counts({.n_cells = 0}), Catch::Contains("'n_cells' must be > 0"));
    CHECK_THROWS_WITH(simulate_counts({.doublet_rate = 1.5}), Catch::Contains("'doublet_rate' must be in [0, 1]"));
    CHECK_THROWS_WITH(simulate_counts({.dispersion = -1.0}), Catch::Contains("'dispersion'"));
    CHECK_THROWS_WITH(simulate_counts({.n_clusters = 2, .cluster_weights = {1.0}}),
                      Catch::Contains("'cluster_weights' has 1 entries, expected n_clusters = 2"));
    CHECK_THROWS_AS(simulate_counts({.library_size = std::nan("")}), diffbio::InvalidArgument);
}
