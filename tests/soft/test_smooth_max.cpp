#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/soft/smooth_max.hpp>

#include "expect_ad.hpp"

using diffbio::ad::Dual;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace soft = diffbio::soft;

TEST_CASE("smooth_max: hand values and bounds", "[soft][smooth-max]") {
    const std::vector<double> v{1.0, 2.0, 3.0};
    const double expected = 0.5 * std::log(std::exp(2.0) + std::exp(4.0) + std::exp(6.0));
    CHECK(soft::smooth_max(v, 0.5) == Approx(expected).epsilon(1e-15));
    for (double tau : {1e-4, 0.1, 1.0, 10.0}) {
        const double m = soft::smooth_max(v, tau);
        CHECK(m >= 3.0);
        CHECK(m <= 3.0 + tau * std::log(3.0) + 1e-12);
        const double n = soft::smooth_min(v, tau);
        CHECK(n <= 1.0);
        CHECK(n >= 1.0 - tau * std::log(3.0) - 1e-12);
    }
    CHECK(std::fabs(soft::smooth_max(v, 1e-4) - 3.0) < 1e-3);
    CHECK(soft::smooth_max(1.0, 2.0, 1.0) == Approx(std::log(std::exp(1.0) + std::exp(2.0))).epsilon(1e-15));
    CHECK(soft::smooth_min(1.0, 2.0, 1.0) == Approx(-std::log(std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-15));
}

TEST_CASE("smooth_max recovers max and min as tau -> 0", "[soft][smooth-max][limit]") {
    const std::vector<double> v{-4.0, 7.25, 7.0, 1.0};
    CHECK(soft::smooth_max(v, 1e-6) == 7.25);
    CHECK(soft::smooth_min(v, 1e-6) == -4.0);
    CHECK(soft::smooth_max(-3.0, 5.0, 1e-8) == 5.0);
}

TEST_CASE("smooth_max and smooth_min pass expect_ad (Var: fused node)", "[soft][smooth-max][ad]") {
    expect_ad([](auto v) { return soft::smooth_max(v.first(4), v[4]); }, {0.5, -1.0, 2.0, 1.9, 0.7});
    expect_ad([](auto v) { return soft::smooth_max(v.first(3), v[3]); }, {1.0, 1.0, 1.0, 2.0}); // ties
    expect_ad([](auto v) { return soft::smooth_min(v.first(4), v[4]); }, {0.5, -1.0, 2.0, 1.9, 0.3});
    expect_ad([](auto v) { return soft::smooth_max(v[0], v[1], v[2]); }, {0.2, 0.9, 0.5});
    expect_ad([](auto v) { return soft::smooth_max(v[0], v[1], v[2]); }, {0.9, 0.9, 0.5}); // a tie
    expect_ad([](auto v) { return soft::smooth_min(v[0], v[1], v[2]); }, {0.2, 0.9, 0.5});
}

TEST_CASE("smooth_max with data and a Var temperature records one node", "[soft][smooth-max][node]") {
    const std::vector<double> x{0.3, 1.1, -0.4};
    Tape tape;
    ScopedTape scope(tape);
    const Var tau = tape.variable(0.8);
    const Var y = soft::smooth_max(x, tau);
    CHECK(tape.num_nodes() == 1);
    tape.backward(y);
    // ∂/∂τ = (y − Σ p_i x_i)/τ
    double z = 0, px = 0;
    for (double v : x) z += std::exp(v / 0.8);
    for (double v : x) px += std::exp(v / 0.8) / z * v;
    CHECK(tape.adjoint(tau) == Approx((y.value() - px) / 0.8).epsilon(1e-13));
}

TEST_CASE("smooth_max: no NaN or Inf at extreme temperatures and inputs", "[soft][smooth-max][numerics]") {
    for (double tau : {1e-4, 1.0, 1e4}) {
        const std::vector<double> v{-1e6, 1e6, 1e6 - 1e-3, 0.0};
        const auto r = diffbio::ad::value_and_grad([tau](auto x) { return soft::smooth_max(x, tau); }, v);
        CHECK(std::isfinite(r.value));
        for (double g : r.grad) CHECK(std::isfinite(g));
        const auto rf = diffbio::ad::value_and_grad([tau](auto x) { return soft::smooth_min(x, tau); }, v,
                                                    diffbio::ad::Forward{});
        CHECK(std::isfinite(rf.value));
        for (double g : rf.grad) CHECK(std::isfinite(g));
        const std::vector<float> vf{-1e4f, 1e4f, 0.0f};
        CHECK(std::isfinite(soft::smooth_max(vf, static_cast<float>(tau))));
        CHECK(std::isfinite(soft::smooth_max(1e6, -1e6, tau)));
    }
}

TEST_CASE("smooth_max at the ends of float's range: two arguments exact, a result beyond it refused",
          "[soft][smooth-max][numerics][errors]") {
    using Catch::Matchers::Contains;
    using Catch::Matchers::StartsWith;
    // Two arguments at τ = 1e-37 in float: a/τ = 1e39 is past float's range (it was NaN); the gap
    // form max + τ·log(1 + e^{−|a−b|/τ}) gives the max exactly, and its derivative goes to the max.
    CHECK(soft::smooth_max(100.0f, 2.0f, 1e-37f) == 100.0f);
    CHECK(soft::smooth_min(100.0f, 2.0f, 1e-37f) == 2.0f);
    CHECK(soft::smooth_max(-3.0f, -3.0f, 1e-37f) == -3.0f); // + τ·log 2, below -3's last bit
    const Dual<float> a(100.0f, 1.0f), b(2.0f, 0.0f), tau(1e-37f, 0.0f);
    const Dual<float> d = soft::smooth_max(a, b, tau);
    CHECK(d.value == 100.0f);
    CHECK(d.tangent == 1.0f);
    CHECK(soft::smooth_min(a, b, tau).tangent == 0.0f);

    // 1,000 equal entries: 1 + τ·log 1000, which passes float's largest value 3.4e38 from τ ≈ 4.9e37
    const std::vector<float> xf(1000, 1.0f);
    CHECK(soft::smooth_max(xf, 1e37f) == Approx(1e37 * std::log(1000.0)).epsilon(1e-6));
    CHECK_THROWS_WITH(soft::smooth_max(xf, 1e38f),
                      StartsWith("smooth_max: the result is not finite (inf)") && Contains("exceeds the range of float") &&
                          Contains("compute in double"));
    CHECK_THROWS_WITH(soft::smooth_min(xf, 1e38f), StartsWith("smooth_min:") && Contains("range of float"));
    CHECK_THROWS_WITH(soft::smooth_max(3e38f, 3e38f, 1e38f), StartsWith("smooth_max:") && Contains("range of float"));
    const std::vector<double> xd(1000, 1.0);
    CHECK(soft::smooth_max(xd, 1e38) == Approx(1.0 + 1e38 * std::log(1000.0)).epsilon(1e-14));
    {
        Tape tape;
        ScopedTape scope(tape);
        std::vector<Var> xv;
        for (int i = 0; i < 1000; ++i) xv.emplace_back(1.0);
        const std::size_t nodes = tape.num_nodes();
        CHECK_THROWS_WITH(soft::smooth_max(xv, 1e308), Contains("exceeds the range of double"));
        CHECK(tape.num_nodes() == nodes); // refused before the node is recorded
    }
}

TEST_CASE("smooth_max rejects an empty input and a bad temperature", "[soft][smooth-max][errors]") {
    const std::vector<double> empty;
    CHECK_THROWS_AS(soft::smooth_max(empty, 1.0), diffbio::InvalidArgument);
    const std::vector<double> v{1.0};
    CHECK_THROWS_AS(soft::smooth_max(v, 0.0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::smooth_min(v, -2.0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::smooth_max(1.0, 2.0, std::nan("")), diffbio::InvalidArgument);
}
