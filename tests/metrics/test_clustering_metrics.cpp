// Clustering metrics on hand-computed cases: ARI and NMI on small contingency tables, hard and
// soft silhouette on a handful of points, soft ARI, LISI on perfectly separated and evenly mixed
// batches; gradients of the soft metrics (Dual vs Var vs finite differences).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/ari.hpp>
#include <diffbio/metrics/contingency.hpp>
#include <diffbio/metrics/lisi.hpp>
#include <diffbio/metrics/nmi.hpp>
#include <diffbio/metrics/silhouette.hpp>

#include "expect_ad.hpp"

namespace m = diffbio::metrics;

namespace {

std::vector<double> one_hot(const std::vector<int>& labels, std::size_t k) {
    std::vector<double> p(labels.size() * k, 0.0);
    for (std::size_t u = 0; u < labels.size(); ++u) p[u * k + static_cast<std::size_t>(labels[u])] = 1.0;
    return p;
}

/// Row-wise softmax of logits (n × k) in any scalar.
template <class T>
std::vector<T> softmax_rows(std::span<const T> z, std::size_t k) {
    using std::exp;
    std::vector<T> p(z.begin(), z.end());
    for (std::size_t u = 0; u < z.size() / k; ++u) {
        T s = diffbio::passive<T>(0.0);
        for (std::size_t c = 0; c < k; ++c) {
            p[u * k + c] = exp(z[u * k + c]);
            s += p[u * k + c];
        }
        for (std::size_t c = 0; c < k; ++c) p[u * k + c] = p[u * k + c] / s;
    }
    return p;
}

/// Deterministic pseudo-random doubles in [0, 1).
struct Lcg {
    std::uint64_t s;
    double next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(s >> 11) * 0x1.0p-53;
    }
};

} // namespace

TEST_CASE("contingency table of two labelings", "[metrics]") {
    const std::vector<int> a = {5, 5, -1, -1, 5};
    const std::vector<long> b = {0, 1, 1, 1, 0};
    const m::Contingency t = m::contingency(a, b);
    CHECK(t.n == 5);
    CHECK(t.rows == std::vector<std::uint64_t>{2, 3}); // -1 -> 0, 5 -> 1
    CHECK(t.cols == std::vector<std::uint64_t>{2, 3});
    REQUIRE(t.cells.size() == 3);
    CHECK(t.cells[0].row == 0);
    CHECK(t.cells[0].col == 1);
    CHECK(t.cells[0].count == 2);
    CHECK(t.cells[1].count == 2); // (5, 0)
    CHECK(t.cells[2].count == 1); // (5, 1)
    CHECK_THROWS_AS(m::contingency(a, std::vector<int>{1, 2}), diffbio::ShapeError);
}

TEST_CASE("adjusted Rand index: hand-computed tables", "[metrics][ari]") {
    // I = Σ C(n_ij,2), A = Σ C(a_i,2), B = Σ C(b_j,2), N = C(n,2); ARI = (I − AB/N)/((A+B)/2 − AB/N)
    // [0,0,1,1] vs [0,0,1,2]: I = 1, A = 2, B = 1, N = 6 -> (1 − 1/3)/(3/2 − 1/3) = 4/7
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 0, 1, 1}, std::vector<int>{0, 0, 1, 2}) == Approx(4.0 / 7.0).epsilon(1e-15));
    // [0,0,1,1] vs [0,1,0,1]: I = 0, A = B = 2 -> (0 − 2/3)/(2 − 2/3) = −1/2
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 0, 1, 1}, std::vector<int>{0, 1, 0, 1}) == Approx(-0.5).epsilon(1e-15));
    // [0,0,0,1,1,1] vs [0,0,1,1,2,2]: I = 2, A = 6, B = 3, N = 15 -> (2 − 1.2)/(4.5 − 1.2) = 8/33
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 0, 0, 1, 1, 1}, std::vector<int>{0, 0, 1, 1, 2, 2}) ==
          Approx(8.0 / 33.0).epsilon(1e-15));
    // Renaming clusters changes nothing.
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 0, 1, 1, 2}, std::vector<int>{7, 7, -3, -3, 9}) == 1.0);
    // One cluster vs all singletons: I = 0, A = 6, B = 0 -> 0.
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 0, 0, 0}, std::vector<int>{0, 1, 2, 3}) == 0.0);
    // Degenerate: both trivial in the same way, or one sample -> 1.
    CHECK(m::adjusted_rand_index(std::vector<int>{1, 1, 1}, std::vector<int>{4, 4, 4}) == 1.0);
    CHECK(m::adjusted_rand_index(std::vector<int>{0, 1, 2}, std::vector<int>{2, 1, 0}) == 1.0);
    CHECK(m::adjusted_rand_index(std::vector<int>{3}, std::vector<int>{1}) == 1.0);
    CHECK_THROWS_WITH(m::adjusted_rand_index(std::vector<int>{0, 1}, std::vector<int>{0}),
                      Catch::Contains("adjusted_rand_index: the two labelings have 2 and 1 samples"));
}

TEST_CASE("normalized mutual information: hand-computed tables", "[metrics][nmi]") {
    // [0,0,1,1] vs [0,0,1,2]: MI = log 2, H(a) = log 2, H(b) = 1.5 log 2.
    const std::vector<int> a = {0, 0, 1, 1}, b = {0, 0, 1, 2};
    CHECK(m::mutual_information(m::contingency(a, b)) == Approx(std::log(2.0)).epsilon(1e-15));
    CHECK(m::normalized_mutual_information(a, b) == Approx(0.8).epsilon(1e-14));
    CHECK(m::normalized_mutual_information(a, b, m::NmiAverage::Geometric) == Approx(1.0 / std::sqrt(1.5)).epsilon(1e-14));
    CHECK(m::normalized_mutual_information(a, b, m::NmiAverage::Min) == Approx(1.0).epsilon(1e-14));
    CHECK(m::normalized_mutual_information(a, b, m::NmiAverage::Max) == Approx(2.0 / 3.0).epsilon(1e-14));
    // Independent labelings: MI = 0.
    CHECK(m::normalized_mutual_information(a, std::vector<int>{0, 1, 0, 1}) == 0.0);
    // Identical up to renaming -> 1; both single-cluster -> 1 (scikit-learn's convention);
    // one single-cluster, the other not -> 0.
    CHECK(m::normalized_mutual_information(std::vector<int>{0, 0, 1, 2}, std::vector<int>{5, 5, 3, 1}) ==
          Approx(1.0).epsilon(1e-15));
    CHECK(m::normalized_mutual_information(std::vector<int>{2, 2, 2}, std::vector<int>{0, 0, 0}) == 1.0);
    CHECK(m::normalized_mutual_information(std::vector<int>{2, 2, 2}, std::vector<int>{0, 1, 0}) == 0.0);
}

TEST_CASE("silhouette: hand-computed 1-D cases, singleton convention, policies", "[metrics][silhouette]") {
    // Points 0, 2 (cluster A) and 6, 10 (cluster B):
    //   s = (8−2)/8, (6−2)/6, (5−4)/5, (9−4)/9 = 3/4, 2/3, 1/5, 5/9; mean 391/720.
    const std::vector<double> x = {0.0, 2.0, 6.0, 10.0};
    const std::vector<int> l = {0, 0, 1, 1};
    const auto s = m::silhouette_samples(std::span<const double>(x), 1, l);
    REQUIRE(s.size() == 4);
    CHECK(s[0] == Approx(0.75).epsilon(1e-15));
    CHECK(s[1] == Approx(2.0 / 3.0).epsilon(1e-15));
    CHECK(s[2] == Approx(0.2).epsilon(1e-15));
    CHECK(s[3] == Approx(5.0 / 9.0).epsilon(1e-15));
    CHECK(m::silhouette_score(std::span<const double>(x), 1, l) == Approx(391.0 / 720.0).epsilon(1e-15));

    // A fifth point alone in cluster C at 30: its s is 0, the others keep theirs (C is farther).
    const std::vector<double> x5 = {0.0, 2.0, 6.0, 10.0, 30.0};
    const std::vector<int> l5 = {0, 0, 1, 1, 2};
    CHECK(m::silhouette_samples(std::span<const double>(x5), 1, l5)[4] == 0.0);
    CHECK(m::silhouette_score(std::span<const double>(x5), 1, l5) == Approx(391.0 / 900.0).epsilon(1e-15));
    CHECK(m::silhouette_score(diffbio::exec::CpuParallel{2}, std::span<const double>(x5), 1, l5) ==
          m::silhouette_score(std::span<const double>(x5), 1, l5));

    // 2-D: a square's corners (0,0),(0,1) vs (3,0),(3,1): a = 1, b = (3 + √10)/2 for each point.
    const std::vector<double> sq = {0, 0, 0, 1, 3, 0, 3, 1};
    const double b = (3.0 + std::sqrt(10.0)) / 2.0;
    CHECK(m::silhouette_score(std::span<const double>(sq), 2, std::vector<int>{1, 1, 2, 2}) ==
          Approx((b - 1.0) / b).epsilon(1e-15));

    CHECK_THROWS_WITH(m::silhouette_score(std::span<const double>(x), 1, std::vector<int>{0, 0, 0, 0}),
                      Catch::Contains("number of distinct labels is 1"));
    CHECK_THROWS_WITH(m::silhouette_score(std::span<const double>(x), 1, std::vector<int>{0, 1, 2, 3}),
                      Catch::Contains("between 2 and n - 1 = 3"));
    CHECK_THROWS_AS(m::silhouette_score(std::span<const double>(x), 3, l), diffbio::ShapeError);
    CHECK_THROWS_AS(m::silhouette_score(std::span<const double>(x), 1, std::vector<int>{0, 1}), diffbio::ShapeError);
}

TEST_CASE("soft silhouette: one-hot equals hard, a hand-computed soft case", "[metrics][silhouette]") {
    const std::vector<double> x5 = {0.0, 2.0, 6.0, 10.0, 30.0};
    const std::vector<int> l5 = {0, 0, 1, 1, 2};
    const auto p = one_hot(l5, 3);
    CHECK(m::soft_silhouette(std::span<const double>(x5), 1, std::span<const double>(p), 3) ==
          Approx(391.0 / 900.0).epsilon(1e-15));

    // Points 0, 1, 3; P = (1,0), (½,½), (0,1): d_0 = (1, 7/3), d_1 = (1, 2), d_2 = (8/3, 2), so
    // s = 4/7 for point 0, ½·½ + ½·(−½) = 0 for point 1, 1/4 for point 2; S = (4/7 + 1/4)/3 = 23/84.
    const std::vector<double> x3 = {0.0, 1.0, 3.0};
    const std::vector<double> p3 = {1.0, 0.0, 0.5, 0.5, 0.0, 1.0};
    CHECK(m::soft_silhouette(std::span<const double>(x3), 1, std::span<const double>(p3), 2) ==
          Approx(23.0 / 84.0).epsilon(1e-15));

    // The same points, P_1 = (¾, ¼): d_0 = (1, 13/5), d_1 = (1, 2), d_2 = (18/7, 2), so s = 8/13 for
    // point 0, ¾·½ + ¼·(−½) = ¼ for point 1 (each membership weighted by its P), 2/9 for point 2;
    // S = (8/13 + 1/4 + 2/9)/3 = 509/1404.
    const std::vector<double> p3b = {1.0, 0.0, 0.75, 0.25, 0.0, 1.0};
    CHECK(m::soft_silhouette(std::span<const double>(x3), 1, std::span<const double>(p3b), 2) ==
          Approx(509.0 / 1404.0).epsilon(1e-15));

    const std::vector<double> bad = {1.0, 0.0, -0.5, 1.5, 0.0, 1.0};
    CHECK_THROWS_WITH(m::soft_silhouette(std::span<const double>(x3), 1, std::span<const double>(bad), 2),
                      Catch::Contains("p[2] must be finite and >= 0"));
    CHECK_THROWS_AS(m::soft_silhouette(std::span<const double>(x3), 1, std::span<const double>(p3), 3),
                    diffbio::ShapeError);
}

TEST_CASE("soft silhouette: gradients w.r.t. points and logits (Dual, Var, finite differences)", "[metrics][silhouette][ad]") {
    constexpr std::size_t n = 6, d = 2, k = 3;
    Lcg rng{7};
    std::vector<double> in;
    for (std::size_t i = 0; i < n * d; ++i) in.push_back(4.0 * rng.next() + (i / d >= 3 ? 3.0 : 0.0));
    for (std::size_t i = 0; i < n * k; ++i) in.push_back(2.0 * rng.next() - 1.0);
    diffbio::test::expect_ad(
        [&](auto v) {
            using T = typename decltype(v)::value_type;
            const auto p = softmax_rows<T>(v.subspan(n * d), k);
            return m::soft_silhouette(v.subspan(0, n * d), d, std::span<const T>(p), k);
        },
        in);
}

TEST_CASE("soft ARI: one-hot equals hard ARI, a hand-computed soft case", "[metrics][ari]") {
    Lcg rng{11};
    for (int rep = 0; rep < 5; ++rep) {
        std::vector<int> a(40), b(40);
        for (auto& v : a) v = static_cast<int>(rng.next() * 4);
        for (auto& v : b) v = static_cast<int>(rng.next() * 3);
        const auto pa = one_hot(a, 4), pb = one_hot(b, 3);
        CHECK(m::soft_adjusted_rand_index(std::span<const double>(pa), 4, std::span<const double>(pb), 3) ==
              Approx(m::adjusted_rand_index(a, b)).epsilon(1e-12).margin(1e-14));
    }
    // P = (1,0), (1,0), (½,½); Q = (1,0), (1,0), (0,1): co-membership S^P = 1, ½, ½ and S^Q = 1, 0, 0
    // for the pairs (0,1), (0,2), (1,2): I = 1, A = 2, B = 1, N = 3 -> (1 − 2/3)/(3/2 − 2/3) = 2/5.
    const std::vector<double> p = {1, 0, 1, 0, 0.5, 0.5}, q = {1, 0, 1, 0, 0, 1};
    CHECK(m::soft_adjusted_rand_index(std::span<const double>(p), 2, std::span<const double>(q), 2) ==
          Approx(0.4).epsilon(1e-15));
    CHECK_THROWS_AS(m::soft_adjusted_rand_index(std::span<const double>(p), 2, std::span<const double>(q), 3),
                    diffbio::ShapeError);
}

TEST_CASE("soft ARI: gradients w.r.t. both sets of logits", "[metrics][ari][ad]") {
    constexpr std::size_t n = 7, k = 3, l = 2;
    Lcg rng{3};
    std::vector<double> in;
    for (std::size_t i = 0; i < n * (k + l); ++i) in.push_back(3.0 * rng.next() - 1.5);
    diffbio::test::expect_ad(
        [&](auto v) {
            using T = typename decltype(v)::value_type;
            const auto p = softmax_rows<T>(v.subspan(0, n * k), k);
            const auto q = softmax_rows<T>(v.subspan(n * k), l);
            return m::soft_adjusted_rand_index(std::span<const T>(p), k, std::span<const T>(q), l);
        },
        in);
}

TEST_CASE("LISI: perplexity calibration", "[metrics][lisi]") {
    // Two neighbours at distances 0 and 1: w = (1, e^{−β})/(1 + e^{−β}); the calibrated weights
    // must have perplexity exp(H) = 1.5.
    const std::vector<double> dist = {0.0, 1.0};
    std::vector<double> w(2);
    m::detail::perplexity_weights(dist, 1.5, w);
    const double h = -(w[0] * std::log(w[0]) + w[1] * std::log(w[1]));
    CHECK(std::exp(h) == Approx(1.5).epsilon(1e-9));
    CHECK(w[0] + w[1] == Approx(1.0).epsilon(1e-15));
    CHECK(w[1] / w[0] < 1.0);
    // Perplexity above the number of neighbours: uniform weights.
    const std::vector<double> d3 = {0.5, 1.0, 4.0};
    std::vector<double> w3(3);
    m::detail::perplexity_weights(d3, 30.0, w3);
    for (double v : w3) CHECK(v == Approx(1.0 / 3.0).epsilon(1e-12));
}

TEST_CASE("iLISI: separated batches give 1, an evenly mixed simplex gives the hand value", "[metrics][lisi]") {
    // Two batches of 40 cells, 1000 apart: with 30 neighbours every cell sees its batch only.
    Lcg rng{5};
    std::vector<double> x;
    std::vector<int> batch;
    for (int b = 0; b < 2; ++b) {
        for (int i = 0; i < 40; ++i) {
            x.push_back(1000.0 * b + rng.next());
            x.push_back(rng.next());
            batch.push_back(b);
        }
    }
    const auto sep = m::lisi(std::span<const double>(x), 2, batch, {.perplexity = 10.0, .n_neighbors = 30});
    CHECK(sep.n_labels == 2);
    for (double v : sep.per_cell) CHECK(v == Approx(1.0).epsilon(1e-14)); // Σw = 1 up to rounding
    CHECK(sep.scaled_median == Approx(0.0).margin(1e-14));

    // 6 cells at the corners of a regular simplex (unit vectors of R^6, all pairwise distances √2),
    // batches 0,1,0,1,0,1: each cell's 5 neighbours are equidistant, so the weights are uniform
    // whatever the perplexity: 2 of its own batch, 3 of the other -> LISI = 1/((2/5)² + (3/5)²) = 25/13.
    std::vector<double> e(36, 0.0);
    for (std::size_t i = 0; i < 6; ++i) e[i * 6 + i] = 1.0;
    const std::vector<int> alt = {0, 1, 0, 1, 0, 1};
    for (double perp : {2.0, 30.0}) {
        const auto r = m::lisi(std::span<const double>(e), 6, alt, {.perplexity = perp});
        for (double v : r.per_cell) CHECK(v == Approx(25.0 / 13.0).epsilon(1e-12));
        CHECK(r.median == Approx(25.0 / 13.0).epsilon(1e-12));
        CHECK(r.scaled_median == Approx(12.0 / 13.0).epsilon(1e-12));
    }
    // Three batches on a 9-cell simplex (3 cells each): own 2/8, others 3/8 each -> 64/22.
    std::vector<double> e9(81, 0.0);
    std::vector<int> b3;
    for (std::size_t i = 0; i < 9; ++i) {
        e9[i * 9 + i] = 1.0;
        b3.push_back(static_cast<int>(i % 3));
    }
    const auto r3 = m::lisi(diffbio::exec::CpuParallel{2}, std::span<const double>(e9), 9, b3);
    for (double v : r3.per_cell) CHECK(v == Approx(64.0 / 22.0).epsilon(1e-12));

    // An even number of cells with unequal LISI: the median averages the two middle values.
    // Six cells on a line, 3 neighbours, perplexity above 3 (uniform weights). Cells 7, 20 and 28
    // see three batches among their neighbours (LISI 3); cells 4, 12, 27 see batch shares
    // (2/3, 1/3), LISI 9/5. Sorted: 9/5, 9/5, 9/5, 3, 3, 3 -> median 12/5.
    const std::vector<double> line = {4.0, 7.0, 12.0, 20.0, 27.0, 28.0};
    const std::vector<int> line_batch = {0, 2, 1, 2, 0, 2};
    const auto rl = m::lisi(std::span<const double>(line), 1, line_batch, {.perplexity = 30.0, .n_neighbors = 3});
    const std::vector<double> want = {1.8, 3.0, 1.8, 3.0, 1.8, 3.0};
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(rl.per_cell[i] == Approx(want[i]).epsilon(1e-12));
    CHECK(rl.median == Approx(2.4).epsilon(1e-12));
    CHECK(rl.mean == Approx(2.4).epsilon(1e-12));
    CHECK(rl.scaled_median == Approx(0.7).epsilon(1e-12));

    // Batches drawn from one distribution mix well: mean iLISI near 2.
    std::vector<double> y;
    std::vector<int> yb;
    for (int i = 0; i < 400; ++i) {
        y.push_back(rng.next());
        y.push_back(rng.next());
        yb.push_back(i % 2);
    }
    const auto mixed = m::lisi(std::span<const double>(y), 2, yb);
    CHECK(mixed.mean > 1.8);
    CHECK(mixed.mean <= 2.0);

    CHECK_THROWS_WITH(m::lisi(std::span<const double>(y), 2, yb, {.perplexity = 0.0}),
                      Catch::Contains("perplexity must be finite and > 0"));
    CHECK_THROWS_AS(m::lisi(std::span<const double>(y), 3, yb), diffbio::ShapeError);
}
