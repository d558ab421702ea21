#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/ad/drivers.hpp>

using namespace diffbio::ad;

TEST_CASE("derivative: forward and reverse agree with the hand derivative", "[ad][drivers]") {
    auto f = [](auto x) { return x * exp(-x * x); }; // f' = (1 − 2x²) e^{−x²}
    const double x = 0.8;
    const double expected = (1 - 2 * x * x) * std::exp(-x * x);
    CHECK(derivative(f, x) == Approx(expected).epsilon(1e-15));
    CHECK(derivative(f, x, Reverse{}) == Approx(expected).epsilon(1e-15));
}

TEST_CASE("gradient and value_and_grad in both modes", "[ad][drivers]") {
    // Rosenbrock: f = (1 − a)² + 100(b − a²)²
    auto f = [](auto v) { return (1.0 - v[0]) * (1.0 - v[0]) + 100.0 * (v[1] - v[0] * v[0]) * (v[1] - v[0] * v[0]); };
    const std::vector<double> x{-1.2, 1.0};
    const double a = x[0], b = x[1];
    const std::vector<double> expected{-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)};
    const auto r = value_and_grad(f, x);
    const auto fw = value_and_grad(f, x, Forward{});
    CHECK(r.value == Approx(24.2));
    CHECK(fw.value == Approx(24.2));
    for (int i = 0; i < 2; ++i) {
        CHECK(r.grad[i] == Approx(expected[i]).epsilon(1e-14));
        CHECK(fw.grad[i] == Approx(expected[i]).epsilon(1e-14));
    }
    CHECK(gradient(f, x) == r.grad);
    CHECK(gradient(f, x, Forward{}) == fw.grad);
}

TEST_CASE("jacobian in both modes", "[ad][drivers]") {
    auto f = [](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        return std::vector<T>{v[0] * v[1], exp(v[0]) + v[2], v[2] / v[1]};
    };
    const std::vector<double> x{0.5, 2.0, -1.0};
    const auto jr = jacobian(f, x);
    const auto jf = jacobian(f, x, Forward{});
    const double expected[3][3] = {{2.0, 0.5, 0.0}, {std::exp(0.5), 0.0, 1.0}, {0.0, 0.25, 0.5}};
    REQUIRE(jr.rows == 3);
    REQUIRE(jr.cols == 3);
    REQUIRE(jf.rows == 3);
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
            CHECK(jr(i, j) == Approx(expected[i][j]).margin(1e-15));
            CHECK(jf(i, j) == Approx(expected[i][j]).margin(1e-15));
        }
    }
}

TEST_CASE("reverse drivers leave no active tape behind", "[ad][drivers]") {
    const std::vector<double> x{1.0};
    gradient([](auto v) { return v[0] * v[0]; }, x);
    CHECK(Tape::active_or_null() == nullptr);
}
