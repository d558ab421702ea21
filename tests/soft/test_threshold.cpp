#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/threshold.hpp>

#include "expect_ad.hpp"

using Catch::Matchers::Contains;
using diffbio::ad::Dual;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace soft = diffbio::soft;
namespace exec = diffbio::exec;

TEST_CASE("soft_threshold: hand values", "[soft][threshold]") {
    CHECK(soft::soft_threshold(25.0, 20.0, 5.0) == Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-15));
    CHECK(soft::soft_threshold(20.0, 20.0, 0.1) == 0.5);
    CHECK(soft::soft_greater(10.0, 0.0, 0.1) > 0.99);
    CHECK(soft::soft_greater(0.0, 10.0, 0.1) < 0.01);
    CHECK(soft::soft_less(3.0, 4.0, 1.0) == Approx(diffbio::sigmoid(1.0)).epsilon(1e-15));
    CHECK(soft::soft_less(3.0, 4.0, 1.0) + soft::soft_greater(3.0, 4.0, 1.0) == Approx(1.0).epsilon(1e-15));
}

TEST_CASE("soft_threshold, soft_greater, soft_less pass expect_ad in x, t and tau", "[soft][threshold][ad]") {
    for (const std::vector<double>& p : {std::vector<double>{25.0, 20.0, 5.0}, {3.0, 4.5, 0.7}, {-1.0, 2.0, 30.0}}) {
        expect_ad([](auto v) { return soft::soft_threshold(v[0], v[1], v[2]); }, p);
        expect_ad([](auto v) { return soft::soft_greater(v[0], v[1], v[2]); }, p);
        expect_ad([](auto v) { return soft::soft_less(v[0], v[1], v[2]); }, p);
    }
}

TEST_CASE("soft_threshold rejects tau <= 0 and NaN in every mode", "[soft][threshold][errors]") {
    CHECK_THROWS_WITH(soft::soft_threshold(1.0, 0.0, 0.0), Contains("soft_threshold") && Contains("'tau'"));
    CHECK_THROWS_AS(soft::soft_threshold(1.0, 0.0, -1.0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::soft_greater(1.0, 0.0, std::nan("")), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::soft_less(1.0f, 0.0f, 0.0f), diffbio::InvalidArgument);
    // expect_ad checks that double, Dual and Var throw the same type.
    expect_ad([](auto v) { return soft::soft_threshold(v[0], v[1], v[2]); }, {1.0, 0.0, -0.5});
}

TEST_CASE("soft_threshold: no NaN or Inf at extreme temperatures and inputs", "[soft][threshold][numerics]") {
    for (double tau : {1e-4, 1e-2, 1.0, 1e2, 1e4}) {
        for (double x : {-1e6, -1.0, 0.0, 1e-3, 1e6}) {
            const Dual<double> r = soft::soft_threshold(Dual<double>(x, 1.0), 0.0, tau);
            CHECK(std::isfinite(r.value));
            CHECK(std::isfinite(r.tangent));
            const Dual<double> rt = soft::soft_threshold(x, 0.0, Dual<double>(tau, 1.0));
            CHECK(std::isfinite(rt.tangent));
            Tape tape;
            ScopedTape scope(tape);
            const Var xv = tape.variable(x), tv = tape.variable(0.0), sv = tape.variable(tau);
            const Var y = soft::soft_threshold(xv, tv, sv);
            tape.backward(y);
            CHECK(std::isfinite(tape.adjoint(xv)));
            CHECK(std::isfinite(tape.adjoint(tv)));
            CHECK(std::isfinite(tape.adjoint(sv)));
        }
        for (float x : {-1e4f, 0.0f, 1e4f}) {
            const Dual<float> r = soft::soft_threshold(Dual<float>(x, 1.0f), 0.0f, static_cast<float>(tau));
            CHECK(std::isfinite(r.value));
            CHECK(std::isfinite(r.tangent));
        }
    }
}

TEST_CASE("soft_threshold recovers the hard step as tau -> 0", "[soft][threshold][limit]") {
    const std::vector<double> q{2, 10, 19.9, 20.1, 30, 41};
    for (double x : q) {
        CHECK(soft::soft_threshold(x, 20.0, 1e-6) == (x > 20.0 ? 1.0 : 0.0));
        CHECK(soft::soft_threshold(static_cast<float>(x), 20.0f, 1e-5f) == (x > 20.0 ? 1.0f : 0.0f));
    }
    // The soft count of qualities above 20 becomes the integer count.
    CHECK(soft::sum_sigmoid_threshold(std::span<const double>(q), 20.0, 1e-6) == 3.0);
}

TEST_CASE("array soft_threshold: Cpu, CpuParallel and the scalar form agree", "[soft][threshold][exec]") {
    std::vector<double> x(1000);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i)) * 30.0;
    const auto a = soft::soft_threshold(exec::Cpu{}, std::span<const double>(x), 2.0, 3.0);
    const auto b = soft::soft_threshold(exec::CpuParallel{4}, std::span<const double>(x), 2.0, 3.0);
    for (std::size_t i = 0; i < x.size(); ++i) {
        CHECK(a[i] == soft::soft_threshold(x[i], 2.0, 3.0));
        CHECK(b[i] == a[i]);
    }
    std::vector<double> wrong(3);
    CHECK_THROWS_AS(soft::soft_threshold(exec::Cpu{}, std::span<const double>(x), 2.0, 3.0, std::span<double>(wrong)),
                    diffbio::ShapeError);
}

TEST_CASE("array soft_threshold passes expect_ad (Var: one fused node; Dual: elementwise)", "[soft][threshold][ad]") {
    const std::vector<double> p{18.0, 25.0, 20.5, 31.0, 9.0, /*t*/ 20.0, /*tau*/ 2.5};
    auto f = [](auto v) {
        const auto x = v.first(5);
        return soft::soft_threshold(exec::Cpu{}, x, v[5], v[6]);
    };
    expect_ad(f, p);
    auto fp = [](auto v) { return soft::soft_threshold(exec::CpuParallel{2}, v.first(5), v[5], v[6]); };
    expect_ad(fp, p);
}

TEST_CASE("array soft_threshold with data x and Var parameters records one node", "[soft][threshold][node]") {
    const std::vector<double> q{12.0, 35.0, 20.0, 22.0};
    Tape tape;
    ScopedTape scope(tape);
    const Var t = tape.variable(20.0), tau = tape.variable(4.0);
    const auto w = soft::soft_threshold(exec::Cpu{}, std::span<const double>(q), t, tau);
    CHECK(tape.num_nodes() == 1);
    Var total = 0.0;
    for (std::size_t i = 0; i < w.size(); ++i) total += w[i] * static_cast<double>(i + 1);
    tape.backward(total);
    double gt = 0, gs = 0;
    for (std::size_t i = 0; i < q.size(); ++i) {
        const double s = diffbio::sigmoid((q[i] - 20.0) / 4.0);
        const double g = static_cast<double>(i + 1) * s * (1 - s) / 4.0;
        gt -= g;
        gs -= g * (q[i] - 20.0) / 4.0;
    }
    CHECK(tape.adjoint(t) == Approx(gt).epsilon(1e-14));
    CHECK(tape.adjoint(tau) == Approx(gs).epsilon(1e-14));
    // The explicit backward of the double kernel gives the same numbers.
    const std::vector<double> gy{1, 2, 3, 4};
    std::vector<double> gx(4, 0.0);
    const auto g = soft::soft_threshold_backward(exec::Cpu{}, std::span<const double>(q), 20.0, 4.0,
                                                 std::span<const double>(gy), std::span<double>(gx));
    CHECK(g.t == Approx(gt).epsilon(1e-14));
    CHECK(g.tau == Approx(gs).epsilon(1e-14));
    const double s1 = diffbio::sigmoid(15.0 / 4.0);
    CHECK(gx[1] == Approx(2 * s1 * (1 - s1) / 4.0).epsilon(1e-14));
}

TEST_CASE("fused sum_sigmoid_threshold equals the elementwise-Var result", "[soft][threshold][node]") {
    std::vector<double> xs(257);
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = 2.0 + 39.0 * std::fmod(0.618 * static_cast<double>(i), 1.0);
    // Elementwise tape.
    Tape t1;
    double v1, gx1_17, gt1, gs1;
    {
        ScopedTape scope(t1);
        const auto x = t1.variables(xs);
        const Var t = t1.variable(20.0), tau = t1.variable(1.5);
        Var s = 0.0;
        for (const Var& xi : x) s += diffbio::ad::sigmoid((xi - t) / tau);
        t1.backward(s);
        v1 = s.value();
        gx1_17 = t1.adjoint(x[17]);
        gt1 = t1.adjoint(t);
        gs1 = t1.adjoint(tau);
    }
    // One fused node.
    Tape t2;
    ScopedTape scope(t2);
    const auto x = t2.variables(xs);
    const Var t = t2.variable(20.0), tau = t2.variable(1.5);
    const std::size_t before = t2.num_vars();
    const Var s = soft::sum_sigmoid_threshold(x, t, tau);
    CHECK(t2.num_vars() == before + 1);
    CHECK(t2.num_nodes() == 1);
    CHECK(t2.num_operands() == 0);
    t2.backward(s);
    CHECK(s.value() == Approx(v1).epsilon(1e-14));
    CHECK(t2.adjoint(x[17]) == Approx(gx1_17).epsilon(1e-13));
    CHECK(t2.adjoint(t) == Approx(gt1).epsilon(1e-13));
    CHECK(t2.adjoint(tau) == Approx(gs1).epsilon(1e-13));
    expect_ad([](auto v) { return soft::sum_sigmoid_threshold(v.first(4), v[4], v[5]); }, {18, 22, 30, 5, 20, 3});
}
