#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <vector>

#include <diffbio/soft/softmax.hpp>

#include "expect_ad.hpp"

using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace soft = diffbio::soft;

TEST_CASE("softmax: hand values, simplex, argmax", "[soft][softmax]") {
    const std::vector<double> v{1.0, 2.0, 3.0, 4.0};
    const auto p = soft::softmax(v, 0.1);
    CHECK(std::accumulate(p.begin(), p.end(), 0.0) == Approx(1.0).epsilon(1e-15));
    CHECK(std::max_element(p.begin(), p.end()) - p.begin() == 3);
    const auto q = soft::softmax(v, 2.0);
    const double z = std::exp(0.5) + std::exp(1.0) + std::exp(1.5) + std::exp(2.0);
    CHECK(q[0] == Approx(std::exp(0.5) / z).epsilon(1e-15));
    CHECK(q[3] == Approx(std::exp(2.0) / z).epsilon(1e-15));
}

TEST_CASE("softmax and soft_argmax recover the hard argmax as tau -> 0", "[soft][softmax][limit]") {
    const std::vector<double> v{0.3, 5.0, 4.999, -2.0};
    const auto p = soft::softmax(v, 1e-6);
    CHECK(p == std::vector<double>{0.0, 1.0, 0.0, 0.0});
    const auto a = soft::soft_argmax(v, 1e-6);
    CHECK(a.index == 1.0);
    // Ties split evenly, like the limit.
    const std::vector<double> tie{2.0, 7.0, 7.0};
    const auto t = soft::soft_argmax(tie, 1e-8);
    CHECK(t.probabilities[1] == 0.5);
    CHECK(t.index == 1.5);
}

TEST_CASE("softmax and soft_argmax pass expect_ad (Var: fused node)", "[soft][softmax][ad]") {
    const std::vector<double> p{0.5, -1.0, 2.0, 1.9, 0.7};
    expect_ad([](auto v) { return soft::softmax(v.first(4), v[4]); }, p);
    expect_ad([](auto v) { return soft::soft_argmax(v.first(4), v[4]).index; }, p);
    expect_ad([](auto v) { return soft::soft_argmax(v.first(4), v[4]).probabilities; }, p);
}

TEST_CASE("softmax of Var records one node", "[soft][softmax][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> xs{1.0, 0.0, -1.0};
    const auto x = tape.variables(xs);
    const auto p = soft::softmax(x, 1.0);
    CHECK(tape.num_nodes() == 1);
    CHECK(tape.num_operands() == 0);
    tape.backward(p[0]);
    // ∂p0/∂x0 = p0(1 − p0)
    CHECK(tape.adjoint(x[0]) == Approx(p[0].value() * (1 - p[0].value())).epsilon(1e-14));
}

TEST_CASE("softmax: finite at extreme temperatures and inputs; errors", "[soft][softmax][numerics]") {
    for (double tau : {1e-4, 1.0, 1e4}) {
        const std::vector<double> v{-1e6, 1e6, 1e6 - 0.5};
        const auto J = diffbio::ad::jacobian([tau](auto x) { return soft::softmax(x, tau); }, v);
        for (double g : J.data) CHECK(std::isfinite(g));
        const std::vector<float> vf{-1e4f, 1e4f};
        for (float x : soft::softmax(vf, static_cast<float>(tau))) CHECK(std::isfinite(x));
    }
    const std::vector<double> empty;
    CHECK_THROWS_AS(soft::softmax(empty, 1.0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::soft_argmax(std::vector<double>{1.0}, 0.0), diffbio::InvalidArgument);
}
