#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/ari.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

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

/// n points around K centres spaced `gap` apart on every axis (truth: point i belongs to i % K).
std::vector<double> blobs(std::size_t n, std::size_t F, std::size_t K, double gap, std::uint64_t seed, std::vector<int>* truth = nullptr) {
    Lcg rng{seed};
    std::vector<double> x(n * F);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = i % K;
        for (std::size_t f = 0; f < F; ++f) x[i * F + f] = gap * static_cast<double>(c) * (f % 2 == 0 ? 1.0 : -0.5) + rng.next() * 2.0 - 1.0;
        if (truth != nullptr) truth->push_back(static_cast<int>(c));
    }
    return x;
}

} // namespace

TEST_CASE("soft_assign: hand-computed assignments and labels", "[ops][soft-kmeans]") {
    // x = (0,0), (3,0); μ = (1,0), (4,0): D = [[1, 16], [4, 1]]
    const std::vector<double> x{0, 0, 3, 0}, mu{1, 0, 4, 0};
    std::vector<int> labels;
    const auto r = ops::soft_assign(std::span<const double>(x), 2, std::span<const double>(mu), 2, 2.0, &labels);
    REQUIRE(r.size() == 4);
    CHECK(r[0] == Approx(1.0 / (1.0 + std::exp(-15.0 / 2.0))).epsilon(1e-14));
    CHECK(r[1] == Approx(std::exp(-15.0 / 2.0) / (1.0 + std::exp(-15.0 / 2.0))).epsilon(1e-14));
    CHECK(r[2] == Approx(std::exp(-3.0 / 2.0) / (1.0 + std::exp(-3.0 / 2.0))).epsilon(1e-14));
    CHECK(r[3] == Approx(1.0 / (1.0 + std::exp(-3.0 / 2.0))).epsilon(1e-14));
    CHECK(labels == std::vector<int>{0, 1});
    // float gives the same to float accuracy
    const std::vector<float> xf(x.begin(), x.end()), muf(mu.begin(), mu.end());
    const auto rf = ops::soft_assign(std::span<const float>(xf), 2, std::span<const float>(muf), 2, 2.0f);
    for (std::size_t k = 0; k < 4; ++k) CHECK(rf[k] == Approx(r[k]).epsilon(1e-6));
}

TEST_CASE("soft_assign: exponentials across the range, subnormal and underflowing entries included", "[ops][soft-kmeans][numerics]") {
    // one point at 0, 1-D centroids ±√d_j in adjacent pairs: their mean, the kernels' frame, is
    // exactly 0 (each pair sums to 0), so the scores are E_k = fl(μ_k²) and m = 0, and
    // r_k = e^{−E_k/τ} / Σ_j e^{−E_j/τ} with τ = 1, computed here with std::exp
    const auto plus_minus = [](const auto& v) {
        std::vector<std::decay_t<decltype(v[0])>> out;
        for (const auto e : v) {
            out.push_back(e);
            out.push_back(-e);
        }
        return out;
    };
    const std::vector<double> d{0.0, 0.5, 3.0, 20.0, 300.0, 700.0, 720.0, 745.0, 800.0, 1e5};
    std::vector<double> root;
    for (const double v : d) root.push_back(std::sqrt(v));
    const std::vector<double> mu = plus_minus(root);
    const std::vector<double> x{0.0};
    const auto r = ops::soft_assign(std::span<const double>(x), 1, std::span<const double>(mu), mu.size(), 1.0);
    double s = 0.0;
    for (const double m : mu) s += std::exp(-(m * m));
    for (std::size_t k = 0; k < mu.size(); ++k) {
        CHECK(r[k] == Approx(std::exp(-(mu[k] * mu[k])) / s).epsilon(1e-15).margin(std::numeric_limits<double>::min()));
    }
    CHECK(r[2 * 6] > 0.0);  // e^-720: subnormal, not flushed
    CHECK(r[2 * 8] == 0.0); // e^-800 underflows
    // float: normal down to e^-87, subnormal below, 0 below e^-104
    const std::vector<float> df{0.0f, 0.25f, 7.0f, 60.0f, 86.0f, 90.0f, 100.0f, 110.0f};
    std::vector<float> rootf;
    for (const float v : df) rootf.push_back(std::sqrt(v));
    const std::vector<float> muf = plus_minus(rootf);
    const std::vector<float> xf{0.0f};
    const auto rf = ops::soft_assign(std::span<const float>(xf), 1, std::span<const float>(muf), muf.size(), 1.0f);
    float sf = 0.0f;
    for (const float m : muf) sf += std::exp(-(m * m));
    for (std::size_t k = 0; k < 2 * 5; ++k) CHECK(rf[k] == Approx(std::exp(-(muf[k] * muf[k])) / sf).epsilon(4e-7).margin(0.0));
    CHECK(rf[2 * 5] > 0.0f);
    CHECK(rf[2 * 7] == 0.0f);
    // many entries (the vectorised loop's body, not only its remainder) against std::exp
    const std::size_t half = 100;
    std::vector<double> rs_root(half);
    for (std::size_t k = 0; k < half; ++k) rs_root[k] = std::sqrt(0.37 * static_cast<double>(k) * static_cast<double>(k % 7 + 1));
    const std::vector<double> mus = plus_minus(rs_root);
    const std::size_t K = mus.size();
    // (the operator scales by 1/τ: the reference uses the same arguments, else their rounding,
    // amplified by |t| up to ~1e3, would dominate; subnormal results to within DBL_MIN)
    const double inv_tau = 1.0 / 3.0;
    const auto rs = ops::soft_assign(std::span<const double>(x), 1, std::span<const double>(mus), K, 3.0);
    double ss = 0.0;
    for (const double m : mus) ss += std::exp(-(m * m) * inv_tau);
    for (std::size_t k = 0; k < K; ++k) {
        CHECK(rs[k] == Approx(std::exp(-(mus[k] * mus[k]) * inv_tau) / ss).epsilon(1e-15).margin(std::numeric_limits<double>::min()));
    }
}

TEST_CASE("soft_assign and hard labels: an offset the data share costs no digits", "[ops][soft-kmeans][numerics]") {
    // Points and centroids 1 apart around a common offset. The expansion ‖μ‖² − 2 x·μ lost every
    // digit of the distances to the offset: float at 1e4 saw the two nearest centroids as a tie
    // (0.5), at 1e5 the farther one won (p = 0 for 0.98). The reference: exact distances of the
    // same inputs in double, then the softmax.
    const std::size_t n = 40, F = 3, K = 4;
    const double tau = 0.5;
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> u(-1.5, 1.5);
    std::vector<double> xs(n * F), ms(K * F);
    for (double& v : xs) v = u(rng);
    for (double& v : ms) v = u(rng);
    const auto reference = [&](const auto& x, const auto& mu) {
        std::vector<double> p(n * K), d(K);
        std::vector<int> labels(n);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                d[k] = 0.0;
                for (std::size_t f = 0; f < F; ++f) {
                    const double t = static_cast<double>(x[i * F + f]) - static_cast<double>(mu[k * F + f]);
                    d[k] += t * t;
                }
            }
            std::size_t best = 0;
            for (std::size_t k = 1; k < K; ++k) best = d[k] < d[best] ? k : best;
            labels[i] = static_cast<int>(best);
            double z = 0.0;
            for (std::size_t k = 0; k < K; ++k) z += std::exp(-(d[k] - d[best]) / tau);
            for (std::size_t k = 0; k < K; ++k) p[i * K + k] = std::exp(-(d[k] - d[best]) / tau) / z;
        }
        return std::pair{p, labels};
    };
    for (const double offset : {0.0, 1e3, 1e4, 1e5}) {
        INFO("float, offset " << offset);
        std::vector<float> x(n * F), mu(K * F);
        for (std::size_t j = 0; j < x.size(); ++j) x[j] = static_cast<float>(offset + xs[j]);
        for (std::size_t j = 0; j < mu.size(); ++j) mu[j] = static_cast<float>(offset + ms[j]);
        const auto [p_ref, l_ref] = reference(x, mu);
        std::vector<int> labels;
        const auto p = ops::soft_assign(std::span<const float>(x), n, std::span<const float>(mu), K, static_cast<float>(tau), &labels);
        for (std::size_t j = 0; j < p.size(); ++j) CHECK(static_cast<double>(p[j]) == Approx(p_ref[j]).margin(2e-5));
        CHECK(labels == l_ref);
    }
    for (const double offset : {0.0, 1e6, 1e9}) {
        INFO("double, offset " << offset);
        std::vector<double> x(n * F), mu(K * F);
        for (std::size_t j = 0; j < x.size(); ++j) x[j] = offset + xs[j];
        for (std::size_t j = 0; j < mu.size(); ++j) mu[j] = offset + ms[j];
        const auto [p_ref, l_ref] = reference(x, mu);
        std::vector<int> labels;
        const auto p = ops::soft_assign(std::span<const double>(x), n, std::span<const double>(mu), K, tau, &labels);
        for (std::size_t j = 0; j < p.size(); ++j) CHECK(p[j] == Approx(p_ref[j]).margin(1e-9));
        CHECK(labels == l_ref);
        CHECK(ops::hard_assign(x, n, mu, K) == l_ref);
    }
}

TEST_CASE("soft k-means: squared distances beyond the scalar's range are refused, not NaN", "[ops][soft-kmeans][numerics][errors]") {
    // Two points on two centroids 1e20 apart: their squared distance, 1e40, is past float's 3.4e38
    // (float gave NaN and both labels 0); double holds it. Lloyd's double pass at 1e160 likewise.
    const std::vector<float> xf{0.0f, 1e20f}, muf{0.0f, 1e20f};
    CHECK_THROWS_WITH(ops::soft_assign(std::span<const float>(xf), 2, std::span<const float>(muf), 2, 1.0f),
                      Contains("soft k-means: the squared distances") && Contains("range of float") &&
                          Contains("compute in double"));
    const std::vector<double> xd{0.0, 1e20}, mud{0.0, 1e20};
    std::vector<int> labels;
    const auto p = ops::soft_assign(std::span<const double>(xd), 2, std::span<const double>(mud), 2, 1.0, &labels);
    CHECK(p == std::vector<double>{1.0, 0.0, 0.0, 1.0});
    CHECK(labels == std::vector<int>{0, 1});
    const std::vector<double> xh{0.0, 1e160}, muh{0.0, 1e160};
    CHECK_THROWS_WITH(ops::hard_assign(xh, 2, muh, 2), Contains("k-means (Lloyd)") && Contains("range of double"));
    // as far from the origin, but close together: the centred frame keeps them representable
    const std::vector<float> xo{1e30f, 1e30f}, muo{1e30f};
    const auto po = ops::soft_assign(std::span<const float>(xo), 2, std::span<const float>(muo), 1, 1.0f);
    CHECK(po == std::vector<float>{1.0f, 1.0f});
    // the same check on its own (the CUDA host entry points run it before the device does anything)
    CHECK_THROWS_WITH(ops::kmeans_detail::check_distance_range(xf.data(), 2, 1, muf.data(), 2, "where"),
                      Contains("where: the squared distances between the points (from point 0)") && Contains("range of float"));
    CHECK_NOTHROW(ops::kmeans_detail::check_distance_range(xo.data(), 2, 1, muo.data(), 1, "where"));
    CHECK_NOTHROW(ops::kmeans_detail::check_distance_range(xd.data(), 2, 1, mud.data(), 2, "where"));
    CHECK_THROWS_WITH(ops::kmeans_detail::check_distance_range(xh.data(), 2, 1, muh.data(), 2, "where"), Contains("range of double"));
}

TEST_CASE("soft_assign_into writes soft_assign's values into the caller's buffer", "[ops][soft-kmeans]") {
    const std::size_t n = 700, F = 6, K = 9;
    const auto x = blobs(n, F, K, 2.0, 31);
    const auto mu = ops::kmeans_plusplus(x, n, F, K, 3);
    std::vector<int> la, lb;
    const auto r = ops::soft_assign(exec::CpuParallel{2}, std::span<const double>(x), n, std::span<const double>(mu), K, 1.7, &la);
    std::vector<double> out(n * K, -1.0);
    ops::soft_assign_into(exec::Cpu{}, std::span<const double>(x), n, std::span<const double>(mu), K, 1.7, std::span<double>(out), &lb);
    CHECK(out == r);
    CHECK(la == lb);
    const std::vector<float> xf(x.begin(), x.end()), mf(mu.begin(), mu.end());
    const auto rf = ops::soft_assign(std::span<const float>(xf), n, std::span<const float>(mf), K, 1.7f);
    std::vector<float> outf(n * K);
    ops::soft_assign_into(exec::Cpu{}, std::span<const float>(xf), n, std::span<const float>(mf), K, 1.7f, std::span<float>(outf));
    CHECK(outf == rf);
    std::vector<double> small(n * K - 1);
    CHECK_THROWS_AS(ops::soft_assign_into(exec::Cpu{}, std::span<const double>(x), n, std::span<const double>(mu), K, 1.7, std::span<double>(small)),
                    ShapeError);
    CHECK_THROWS_WITH(ops::soft_assign_into(exec::Cpu{}, std::span<const double>(x), n, std::span<const double>(mu), K, 0.0, std::span<double>(out)),
                      Contains("tau"));
}

TEST_CASE("soft_assign_into on the tape: handles in the caller's buffer, the node's values and gradients", "[ops][soft-kmeans][ad]") {
    const std::size_t n = 300, F = 4, K = 6;
    const auto x = blobs(n, F, K, 2.5, 41);
    const auto mu = ops::kmeans_plusplus(x, n, F, K, 8);
    std::vector<double> w(n * K);
    for (std::size_t j = 0; j < w.size(); ++j) w[j] = std::sin(0.37 * static_cast<double>(j));
    // loss(μ, τ) = Σ w_ik r_ik, its value and gradient; into = soft_assign_into with a kept buffer
    std::vector<ad::Var> kept(n * K);
    auto run = [&](const std::vector<double>& m, double tau, bool into, std::vector<double>* gm, double* gt, std::vector<int>* labels) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto mv = tape.variables(m);
        const ad::Var t = tape.variable(tau);
        std::vector<ad::Var> fresh;
        if (into) {
            ops::soft_assign_into(exec::Cpu{}, std::span<const double>(x), n, std::span<const ad::Var>(mv), K, t, std::span<ad::Var>(kept), labels);
        } else {
            fresh = ops::soft_assign(exec::Cpu{}, std::span<const double>(x), n, std::span<const ad::Var>(mv), K, t, labels);
        }
        const std::vector<ad::Var>& r = into ? kept : fresh;
        const ad::Var loss = tape.push_nary(0.0, r, w);
        double value = 0.0;
        for (std::size_t j = 0; j < r.size(); ++j) value += w[j] * tape.value(r[j]);
        if (gm != nullptr) {
            tape.backward(loss);
            gm->assign(m.size(), 0.0);
            tape.adjoints(mv, *gm);
            *gt = tape.adjoint(t);
        }
        return value;
    };
    // τ = 0.4: within a blob the assignments are soft, across blobs many underflow to exactly 0
    const double tau = 0.4;
    std::vector<double> gm_a, gm_b;
    double gt_a = 0, gt_b = 0;
    std::vector<int> la, lb;
    const double va = run(mu, tau, false, &gm_a, &gt_a, &la);
    const double vb = run(mu, tau, true, &gm_b, &gt_b, &lb);
    CHECK(va == vb);
    CHECK(la == lb);
    CHECK(gm_a == gm_b);
    CHECK(gt_a == gt_b);
    {
        const auto rd = ops::soft_assign(std::span<const double>(x), n, std::span<const double>(mu), K, tau);
        std::size_t zeros = 0;
        for (const double v : rd) zeros += v == 0.0 ? 1 : 0;
        CHECK(zeros > 0); // the τ adjoint's p·log p terms meet p = 0
    }
    // central differences (h = 1e-6 relative), τ and a few centroid coordinates
    const double h = 1e-6 * tau;
    const double fd_t = (run(mu, tau + h, false, nullptr, nullptr, nullptr) - run(mu, tau - h, false, nullptr, nullptr, nullptr)) / (2 * h);
    CHECK(gt_a == Approx(fd_t).epsilon(1e-6));
    for (const std::size_t j : {std::size_t{0}, std::size_t{5}, std::size_t{13}, std::size_t{23}}) {
        auto mp = mu, mm = mu;
        mp[j] += 1e-6;
        mm[j] -= 1e-6;
        const double fd = (run(mp, tau, false, nullptr, nullptr, nullptr) - run(mm, tau, false, nullptr, nullptr, nullptr)) / 2e-6;
        CHECK(gm_a[j] == Approx(fd).epsilon(1e-6).margin(1e-8));
    }
    std::vector<ad::Var> small(n * K - 1);
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto mv = tape.variables(mu);
    CHECK_THROWS_AS(ops::soft_assign_into(exec::Cpu{}, std::span<const double>(x), n, std::span<const ad::Var>(mv), K, 1.0, std::span<ad::Var>(small)),
                    ShapeError);
}

TEST_CASE("soft_assign is stable for tau in [1e-4, 1e4] and far points", "[ops][soft-kmeans][numerics]") {
    const std::vector<double> x{0, 0, 1e3, -1e3, 5, 5, 0.5, 0.5}, mu{1, 1, -1e3, 1e3, 5, 5.001};
    for (const double tau : {1e-4, 1e-2, 1.0, 1e2, 1e4}) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto xv = tape.variables(x);
        const auto mv = tape.variables(mu);
        const ad::Var t = tape.variable(tau);
        const auto r = ops::soft_assign(std::span<const ad::Var>(xv), 4, std::span<const ad::Var>(mv), 3, t);
        ad::Var loss = 0.0;
        for (std::size_t i = 0; i < 4; ++i) {
            double row = 0.0;
            for (std::size_t k = 0; k < 3; ++k) {
                const double v = tape.value(r[i * 3 + k]);
                CHECK(std::isfinite(v));
                CHECK(v >= 0.0);
                row += v;
                loss = loss + r[i * 3 + k] * static_cast<double>(k + 1) * static_cast<double>(i + 1);
            }
            CHECK(row == Approx(1.0).epsilon(1e-14));
        }
        tape.backward(loss);
        std::vector<double> gx(x.size()), gm(mu.size());
        tape.adjoints(xv, gx);
        tape.adjoints(mv, gm);
        for (const double g : gx) CHECK(std::isfinite(g));
        for (const double g : gm) CHECK(std::isfinite(g));
        CHECK(std::isfinite(tape.adjoint(t)));
        // plain float too
        const std::vector<float> xf(x.begin(), x.end()), mf(mu.begin(), mu.end());
        const auto rf = ops::soft_assign(std::span<const float>(xf), 4, std::span<const float>(mf), 3, static_cast<float>(tau));
        for (const float v : rf) CHECK(std::isfinite(v));
    }
}

TEST_CASE("soft_assign gradients w.r.t. points, centroids and tau in every AD mode", "[ops][soft-kmeans][ad]") {
    // v = [x (3 × 2), μ (2 × 2), τ]
    const std::vector<double> v{0.1, -0.4, 1.2, 0.3, -0.5, 0.9, 0.0, 0.2, 0.8, -0.1, 0.7};
    auto f = [](auto s) {
        return ops::soft_assign(s.subspan(0, 6), 3, s.subspan(6, 4), 2, s[10]);
    };
    test::expect_ad(f, v);
    // CpuParallel computes the same function
    auto fp = [](auto s) {
        return ops::soft_assign(exec::CpuParallel{2}, s.subspan(0, 6), 3, s.subspan(6, 4), 2, s[10]);
    };
    test::expect_ad(fp, v);
    // constant points (double) with differentiable centroids and τ
    const std::vector<double> x{0.1, -0.4, 1.2, 0.3, -0.5, 0.9};
    auto g = [&x](auto s) {
        using T = typename decltype(s)::value_type;
        if constexpr (std::is_same_v<T, float>) { // float in, float out
            const std::vector<float> xf(x.begin(), x.end());
            return ops::soft_assign(std::span<const float>(xf), 3, s.subspan(0, 4), 2, s[4]);
        } else {
            return ops::soft_assign(std::span<const double>(x), 3, s.subspan(0, 4), 2, s[4]);
        }
    };
    test::expect_ad(g, std::vector<double>{0.0, 0.2, 0.8, -0.1, 0.7});
    // constant τ, differentiable points only
    const std::vector<double> mu{0.0, 0.2, 0.8, -0.1};
    auto h = [&mu](auto s) {
        using T = typename decltype(s)::value_type;
        if constexpr (std::is_same_v<T, float>) {
            const std::vector<float> mf(mu.begin(), mu.end());
            return ops::soft_assign(s, 3, std::span<const float>(mf), 2, 0.3f);
        } else {
            return ops::soft_assign(s, 3, std::span<const double>(mu), 2, 0.3);
        }
    };
    test::expect_ad(h, x);
}

TEST_CASE("SoftKMeans centroid gradients: Var node, Dual and finite differences agree", "[ops][soft-kmeans][ad]") {
    const std::size_t n = 40, F = 3, K = 4;
    const auto x = blobs(n, F, K, 2.0, 11);
    ops::SoftKMeans km({.n_clusters = K, .n_features = F, .temperature = 1.5, .seed = 5});
    km.init_kmeanspp(x, n);
    for (double& c : km.centroids().values()) c += 0.1; // off the data points
    auto loss = [&](auto& bind) {
        const auto r = km.apply(bind, std::span<const double>(x), n);
        using R = std::decay_t<decltype(r.assignments[0])>;
        R s = passive<R>(0.0);
        for (std::size_t j = 0; j < r.assignments.size(); ++j) s = s + r.assignments[j] * std::sin(0.3 * static_cast<double>(j));
        return s;
    };
    test::expect_parameter_gradients(km.parameters(), loss, {.samples = 12});
}

TEST_CASE("soft_assign: Cpu and CpuParallel agree on values and gradients over many row blocks", "[ops][soft-kmeans][exec]") {
    const std::size_t n = 2100, F = 7, K = 5;
    const auto x = blobs(n, F, K, 3.0, 21);
    const auto mu = ops::kmeans_plusplus(x, n, F, K, 9);
    auto run = [&](auto policy, std::vector<double>& gx, std::vector<double>& gm, double& gt) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto xv = tape.variables(x);
        const auto mv = tape.variables(mu);
        const ad::Var t = tape.variable(4.0);
        std::vector<int> labels;
        const auto r = ops::soft_assign(policy, std::span<const ad::Var>(xv), n, std::span<const ad::Var>(mv), K, t, &labels);
        std::vector<double> vals;
        ad::Var loss = 0.0;
        std::vector<double> w(r.size());
        for (std::size_t j = 0; j < r.size(); ++j) w[j] = std::cos(0.01 * static_cast<double>(j));
        loss = 0.0;
        for (std::size_t j = 0; j < r.size(); ++j) {
            vals.push_back(tape.value(r[j]));
        }
        // one n-ary sum instead of n·K binary records
        std::vector<ad::Var> rv(r.begin(), r.end());
        loss = tape.push_nary(0.0, rv, w);
        tape.backward(loss);
        gx.assign(x.size(), 0.0);
        gm.assign(mu.size(), 0.0);
        tape.adjoints(xv, gx);
        tape.adjoints(mv, gm);
        gt = tape.adjoint(t);
        return std::make_pair(vals, labels);
    };
    std::vector<double> gx1, gm1, gx2, gm2;
    double gt1 = 0, gt2 = 0;
    const auto a = run(exec::Cpu{}, gx1, gm1, gt1);
    const auto b = run(exec::CpuParallel{2}, gx2, gm2, gt2);
    CHECK(a.second == b.second);
    for (std::size_t j = 0; j < a.first.size(); ++j) REQUIRE(a.first[j] == b.first[j]); // same blocks, same arithmetic
    for (std::size_t j = 0; j < gx1.size(); ++j) REQUIRE(gx1[j] == gx2[j]);
    for (std::size_t j = 0; j < gm1.size(); ++j) CHECK(gm1[j] == Approx(gm2[j]).epsilon(1e-12).margin(1e-12));
    CHECK(gt1 == Approx(gt2).epsilon(1e-12));
    // the double kernel (no tape) gives the values of the Var forward
    const auto rd = ops::soft_assign(exec::CpuParallel{2}, std::span<const double>(x), n, std::span<const double>(mu), K, 4.0);
    for (std::size_t j = 0; j < rd.size(); ++j) REQUIRE(rd[j] == a.first[j]);
}

TEST_CASE("tau -> 0: the soft assignment and centroid update are Lloyd's step", "[ops][soft-kmeans][limit]") {
    const std::size_t n = 300, F = 4, K = 5;
    const auto x = blobs(n, F, K, 1.5, 3);
    const auto mu = ops::kmeans_plusplus(x, n, F, K, 1);
    const auto hard = ops::hard_assign(x, n, mu, K);
    // the gap between the two nearest centroids of every point is far above τ·745 (e^-745 = 0)
    const auto r = ops::soft_assign(std::span<const double>(x), n, std::span<const double>(mu), K, 1e-6);
    std::vector<double> onehot(n * K, 0.0);
    for (std::size_t i = 0; i < n; ++i) onehot[i * K + static_cast<std::size_t>(hard[i])] = 1.0;
    std::size_t exact = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double d[8];
        for (std::size_t k = 0; k < K; ++k) {
            d[k] = 0.0;
            for (std::size_t f = 0; f < F; ++f) d[k] += (x[i * F + f] - mu[k * F + f]) * (x[i * F + f] - mu[k * F + f]);
        }
        double best = 1e300, second = 1e300;
        for (std::size_t k = 0; k < K; ++k) {
            if (d[k] < best) {
                second = best;
                best = d[k];
            } else if (d[k] < second) {
                second = d[k];
            }
        }
        if (second - best < 1e-3) continue; // none expected, but do not depend on it
        ++exact;
        for (std::size_t k = 0; k < K; ++k) REQUIRE(r[i * K + k] == onehot[i * K + k]);
    }
    CHECK(exact == n);
    // Lloyd's mean of the points labelled k, computed here by hand
    std::vector<double> mean(K * F, 0.0), count(K, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        count[static_cast<std::size_t>(hard[i])] += 1.0;
        for (std::size_t f = 0; f < F; ++f) mean[static_cast<std::size_t>(hard[i]) * F + f] += x[i * F + f];
    }
    const auto upd = ops::soft_centroid_update(x, n, r, K, mu);
    for (std::size_t k = 0; k < K; ++k) {
        REQUIRE(count[k] > 0.0);
        for (std::size_t f = 0; f < F; ++f) CHECK(upd[k * F + f] == Approx(mean[k * F + f] / count[k]).epsilon(1e-13));
    }
    // one Lloyd iteration moves the centroids to the same means
    const auto one = ops::lloyd(x, n, mu, K, {.max_iter = 1});
    for (std::size_t j = 0; j < upd.size(); ++j) CHECK(one.centroids[j] == Approx(upd[j]).epsilon(1e-13));
}

TEST_CASE("hard labels break exact ties by the lowest index; soft ones split them", "[ops][soft-kmeans][limit]") {
    // x = (0,0): μ0 = (0,2) is farther; μ1 = (1,0), μ2 = (-1,0), μ3 = (0,1) all at distance 1
    const std::vector<double> x{0, 0}, mu{0, 2, 1, 0, -1, 0, 0, 1};
    CHECK(ops::hard_assign(x, 1, mu, 4) == std::vector<int>{1});
    const std::vector<double> mu2{1, 0, -1, 0};
    CHECK(ops::hard_assign(x, 1, mu2, 2) == std::vector<int>{0});
    // the element-wise path of the AD scalars (Dual) breaks them the same way
    using D = ad::Dual<double>;
    const std::vector<D> xd{D(0.0, 1.0), D(0.0, 0.0)};
    std::vector<int> dual_labels;
    ops::soft_assign(std::span<const D>(xd), 1, std::span<const double>(mu), 4, 1e-4, &dual_labels);
    CHECK(dual_labels == std::vector<int>{1});
    const auto r = ops::soft_assign(std::span<const double>(x), 1, std::span<const double>(mu), 4, 1e-4);
    CHECK(r[0] == 0.0);
    CHECK(r[1] == Approx(1.0 / 3.0).epsilon(1e-15));
    CHECK(r[2] == Approx(1.0 / 3.0).epsilon(1e-15));
    CHECK(r[3] == Approx(1.0 / 3.0).epsilon(1e-15));
}

TEST_CASE("lloyd: a hand-computed run, iteration count and inertia", "[ops][soft-kmeans][lloyd]") {
    // 1-D points {0, 1, 10, 11} from centroids {0, 1}:
    //   it 1: labels {0,1,1,1} -> centroids {0, 22/3}
    //   it 2: labels {0,0,1,1} -> centroids {0.5, 10.5}
    //   it 3: labels unchanged -> strict convergence; inertia 4 · 0.25 = 1
    const std::vector<double> x{0, 1, 10, 11}, mu{0, 1};
    const auto r = ops::lloyd(x, 4, mu, 2, {.max_iter = 300, .tol = 0.0});
    CHECK(r.labels == std::vector<int>{0, 0, 1, 1});
    CHECK(r.centroids == std::vector<double>{0.5, 10.5});
    CHECK(r.iterations == 3);
    CHECK(r.strict_convergence);
    CHECK(r.inertia == 1.0);
    CHECK(ops::kmeans_inertia(x, 4, r.centroids, 2, r.labels) == 1.0);
    // max_iter = 1: centroids {0, 22/3}, then the final relabelling gives {0, 0, 1, 1}
    const auto one = ops::lloyd(x, 4, mu, 2, {.max_iter = 1, .tol = 0.0});
    CHECK(one.iterations == 1);
    CHECK_FALSE(one.strict_convergence);
    CHECK(one.labels == std::vector<int>{0, 0, 1, 1});
    CHECK(one.centroids[1] == Approx(22.0 / 3.0).epsilon(1e-15));
    CHECK(one.inertia == Approx(0.0 + 1.0 + (10 - 22.0 / 3.0) * (10 - 22.0 / 3.0) + (11 - 22.0 / 3.0) * (11 - 22.0 / 3.0)).epsilon(1e-14));
}

TEST_CASE("lloyd: the relative tolerance stops at the iteration scikit-learn's rule gives", "[ops][soft-kmeans][lloyd]") {
    // The run above in 2-D, with a constant second feature: the same centroid shifts, Σ‖Δμ‖² =
    // (22/3 − 1)² ≈ 40.1 after iteration 1 and 0.25 + (10.5 − 22/3)² ≈ 10.3 after iteration 2.
    // Mean feature variance (divisor n) = (25.25 + 0)/2 = 12.625, so the absolute tolerance is
    // 12.625·tol: tol 3.0 (37.9) stops after iteration 2, tol 3.5 (44.2) after iteration 1,
    // tol 0.3 (3.8) runs to strict convergence at iteration 3.
    const std::vector<double> x{0, 3, 1, 3, 10, 3, 11, 3}, mu{0, 3, 1, 3};
    const auto two = ops::lloyd(x, 4, mu, 2, {.max_iter = 300, .tol = 3.0});
    CHECK(two.iterations == 2);
    CHECK_FALSE(two.strict_convergence);
    CHECK(two.centroids == std::vector<double>{0.5, 3, 10.5, 3});
    const auto one = ops::lloyd(x, 4, mu, 2, {.max_iter = 300, .tol = 3.5});
    CHECK(one.iterations == 1);
    CHECK(one.centroids[2] == Approx(22.0 / 3.0).epsilon(1e-15));
    const auto three = ops::lloyd(x, 4, mu, 2, {.max_iter = 300, .tol = 0.3});
    CHECK(three.iterations == 3);
    CHECK(three.strict_convergence);
}

TEST_CASE("SoftKMeans::fit starts at tau = the mean squared distance to the nearest centroid", "[ops][soft-kmeans][fit]") {
    // 1-D points {0, 0.5, 10, 10.25} from centroids {0, 10}: nearest squared distances
    // {0, 0.25, 0, 0.0625}, τ0 = 0.078125. With tau_end just above τ0/8 the stages are τ0, τ0/2,
    // τ0/4, τ0/8: four.
    const std::vector<double> x{0, 0.5, 10, 10.25};
    ops::SoftKMeans km({.n_clusters = 2, .n_features = 1});
    const std::vector<double> start{0, 10};
    std::copy(start.begin(), start.end(), km.centroids().values().begin());
    const double tau0 = 0.078125;
    const auto rep = km.fit(x, 4, {.tau_end = tau0 / 8 * 1.01}, /*init=*/false);
    CHECK(rep.stages == 4);
    CHECK(km.labels() == std::vector<int>{0, 0, 1, 1});
    // an explicit tau_start twice as large adds one stage
    std::copy(start.begin(), start.end(), km.centroids().values().begin());
    CHECK(km.fit(x, 4, {.tau_start = 2 * tau0, .tau_end = tau0 / 8 * 1.01}, false).stages == 5);
}

TEST_CASE("kmeans_plusplus: seeded, picks data rows, one per well separated blob", "[ops][soft-kmeans][init]") {
    const std::size_t n = 90, F = 3, K = 3;
    std::vector<int> truth;
    const auto x = blobs(n, F, K, 1000.0, 4, &truth);
    const auto a = ops::kmeans_plusplus(x, n, F, K, 42);
    CHECK(a == ops::kmeans_plusplus(x, n, F, K, 42));
    CHECK(a != ops::kmeans_plusplus(x, n, F, K, 43));
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        const auto mu = ops::kmeans_plusplus(x, n, F, K, seed);
        std::vector<int> blob_of;
        for (std::size_t k = 0; k < K; ++k) {
            bool found = false;
            for (std::size_t i = 0; i < n && !found; ++i) {
                bool same = true;
                for (std::size_t f = 0; f < F; ++f) same = same && x[i * F + f] == mu[k * F + f];
                if (same) {
                    found = true;
                    blob_of.push_back(truth[i]);
                }
            }
            REQUIRE(found); // every centroid is a data point
        }
        std::sort(blob_of.begin(), blob_of.end());
        CHECK(blob_of == std::vector<int>{0, 1, 2});
    }
    // K = n: every point exactly once
    const std::vector<double> pts{0, 1, 5, 9};
    auto all = ops::kmeans_plusplus(pts, 4, 1, 4, 7);
    std::sort(all.begin(), all.end());
    CHECK(all == pts);
}

TEST_CASE("SoftKMeans::fit anneals to the true clusters and a Lloyd fixed point", "[ops][soft-kmeans][fit]") {
    const std::size_t n = 400, F = 5, K = 4;
    std::vector<int> truth;
    const auto x = blobs(n, F, K, 4.0, 8, &truth);
    ops::SoftKMeans km({.n_clusters = K, .n_features = F, .seed = 2});
    const auto rep = km.fit(x, n);
    CHECK(rep.stages >= 10); // τ_0 down to 1e-4 τ_0 with decay 1/2
    CHECK(metrics::adjusted_rand_index(truth, km.labels()) == 1.0);
    const std::span<const double> mu = km.centroids().values();
    CHECK(km.predict(x, n) == km.labels());
    CHECK(km.inertia() == Approx(ops::kmeans_inertia(x, n, mu, K, km.labels())).epsilon(1e-14));
    // the annealed centroids are already converged: Lloyd's finish stops after one iteration
    CHECK(rep.lloyd_iterations == 1);
    // without the finish: the same labels
    ops::SoftKMeans km2({.n_clusters = K, .n_features = F, .seed = 2});
    km2.fit(x, n, {.finish_with_lloyd = false}, true, exec::CpuParallel{2});
    CHECK(km2.labels() == km.labels());
    CHECK(km2.inertia() == Approx(km.inertia()).epsilon(1e-9));
}

TEST_CASE("soft k-means bad input raises clear exceptions", "[ops][soft-kmeans][errors]") {
    const std::vector<double> x{0, 0, 1, 1, 2, 2}, mu{0, 0, 1, 1};
    const std::span<const double> xs(x), ms(mu);
    CHECK_THROWS_WITH(ops::soft_assign(xs, 3, ms, 2, 0.0), Contains("temperature 'tau' must be finite and > 0"));
    CHECK_THROWS_WITH(ops::soft_assign(xs, 3, ms, 2, -1.0), Contains("tau"));
    CHECK_THROWS_AS(ops::soft_assign(xs, 3, ms, 2, std::nan("")), InvalidArgument);
    CHECK_THROWS_WITH(ops::soft_assign(xs, 3, ms, 0, 1.0), Contains("K must be >= 1"));
    CHECK_THROWS_AS(ops::soft_assign(xs, 2, ms, 2, 1.0), ShapeError);
    CHECK_THROWS_WITH(ops::soft_assign(xs, 2, ms, 2, 1.0), Contains("expected n x F"));
    CHECK_THROWS_AS(ops::soft_assign(xs, 3, ms, 3, 1.0), ShapeError);
    std::vector<double> bad = x;
    bad[3] = std::nan("");
    CHECK_THROWS_WITH(ops::soft_assign(std::span<const double>(bad), 3, ms, 2, 1.0), Contains("points entry 3 is not finite"));
    std::vector<double> badmu = mu;
    badmu[0] = INFINITY;
    CHECK_THROWS_WITH(ops::soft_assign(xs, 3, std::span<const double>(badmu), 2, 1.0), Contains("centroids entry 0"));
    CHECK_THROWS_WITH(ops::kmeans_plusplus(x, 3, 2, 4, 0), Contains("need at least K points"));
    CHECK_THROWS_WITH(ops::lloyd(x, 3, std::vector<double>(8, 0.0), 4), Contains("exceeds the number of points"));
    CHECK_THROWS_AS(ops::kmeans_plusplus(bad, 3, 2, 2, 0), InvalidArgument);
    ops::SoftKMeans km({.n_clusters = 4, .n_features = 2});
    CHECK_THROWS_WITH(km.fit(x, 3), Contains("exceeds the number of points"));
    CHECK_THROWS_AS(km.fit(x, 2), ShapeError);
    CHECK_THROWS_WITH(ops::SoftKMeans({.n_clusters = 0}), Contains("n_clusters"));
    CHECK_THROWS_WITH(ops::SoftKMeans({.temperature = 0.0}), Contains("temperature"));
    ops::SoftKMeans km2({.n_clusters = 2, .n_features = 2});
    CHECK_THROWS_WITH(km2.fit(x, 3, {.decay = 1.0}), Contains("decay"));
    ad::Binder<double> bind;
    CHECK_THROWS_AS(km2.apply(bind, xs, 2), ShapeError);
    CHECK_THROWS_WITH(km2.set_centroids(std::vector<double>(3, 0.0)), Contains("centroids"));
}
