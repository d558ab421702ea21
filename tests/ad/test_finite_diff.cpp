#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/ad/finite_diff.hpp>

using namespace diffbio::ad;

TEST_CASE("central differences reach ~1e-9 on smooth functions", "[ad][finite-diff]") {
    auto f = [](std::span<const double> v) { return std::sin(v[0]) * std::exp(v[1]); };
    const std::vector<double> x{0.7, -0.3};
    const auto g = finite_difference_gradient(f, x);
    CHECK(g[0] == Approx(std::cos(0.7) * std::exp(-0.3)).epsilon(1e-9));
    CHECK(g[1] == Approx(std::sin(0.7) * std::exp(-0.3)).epsilon(1e-9));
}

TEST_CASE("finite-difference Jacobian and a check that it can fail", "[ad][finite-diff]") {
    auto f = [](std::span<const double> v) { return std::vector<double>{v[0] * v[1], v[0] + 2 * v[1]}; };
    const std::vector<double> x{3.0, 4.0};
    const auto J = finite_difference_jacobian(f, x);
    CHECK(J(0, 0) == Approx(4.0));
    CHECK(J(0, 1) == Approx(3.0));
    CHECK(J(1, 0) == Approx(1.0));
    CHECK(J(1, 1) == Approx(2.0));
    // A wrong derivative is detected: d(x²)/dx at 3 is 6, not 5.
    const auto g = finite_difference_gradient([](std::span<const double> v) { return v[0] * v[0]; }, std::vector<double>{3.0});
    CHECK_FALSE(g[0] == Approx(5.0).epsilon(1e-6));
}
