#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <diffbio/ad/dual.hpp>

#include "expect_ad.hpp"

using diffbio::ad::Dual;
using diffbio::test::expect_ad;

namespace {
// Derivative of f at x by one Dual pass.
template <class F>
double d1(F f, double x) {
    return f(Dual<double>(x, 1.0)).tangent;
}
} // namespace

TEST_CASE("Dual arithmetic follows the product and quotient rules", "[ad][dual]") {
    const Dual<double> a{3.0, 1.0}, b{2.0, 0.0};
    CHECK((a + b).tangent == 1.0);
    CHECK((a * b).tangent == 2.0);
    CHECK((a / b).tangent == 0.5);
    CHECK((b / a).tangent == Approx(-2.0 / 9.0));
    CHECK((-a).tangent == -1.0);
    CHECK((a - 1.0).value == 2.0);
    CHECK((2.0 * a).tangent == 2.0);
    CHECK((1.0 / a).tangent == Approx(-1.0 / 9.0));
    Dual<double> c = a;
    c *= a;
    CHECK(c.value == 9.0);
    CHECK(c.tangent == 6.0);
    CHECK(a > b);
    CHECK(a == 3.0);
    CHECK(2.0 < a);
}

TEST_CASE("Dual compound assignment, comparisons at ties, isfinite and pow at 0", "[ad][dual]") {
    Dual<double> c{3.0, 1.0};
    c += Dual<double>(2.0, 0.5);
    CHECK(c.value == 5.0);
    CHECK(c.tangent == 1.5);
    c -= Dual<double>(1.0, 2.0);
    CHECK(c.value == 4.0);
    CHECK(c.tangent == -0.5);
    c /= Dual<double>(2.0, 1.0); // q = 2, tangent (−0.5 − 2·1)/2
    CHECK(c.value == 2.0);
    CHECK(c.tangent == -1.25);
    c += 1.0;
    CHECK(c.value == 3.0);
    CHECK(c.tangent == -1.25);
    // Comparisons look at values only; at a tie max and min take the first argument.
    const Dual<double> p{1.0, 1.0}, q{1.0, -1.0};
    CHECK(p >= q);
    CHECK(p <= q);
    CHECK_FALSE(p < q);
    CHECK_FALSE(p > q);
    CHECK(p == q);
    CHECK_FALSE(p != q);
    CHECK(max(p, q).tangent == 1.0);
    CHECK(min(q, p).tangent == -1.0);
    CHECK(max(p, 1.0).tangent == 1.0);
    CHECK(max(1.0, p).tangent == 0.0);
    CHECK(min(p, 1.0).tangent == 1.0);
    CHECK(min(1.0, p).tangent == 0.0);
    // isfinite needs both parts finite.
    CHECK(isfinite(p));
    CHECK_FALSE(isfinite(Dual<double>(1.0, std::numeric_limits<double>::infinity())));
    CHECK_FALSE(isfinite(Dual<double>(std::nan(""), 0.0)));
    // x^y at x = 0: ∂/∂y is 0 (the limit for y > 0), not 0·log 0 = NaN; ∂/∂x = y·0^{y−1} = 0 for y = 2.
    const Dual<double> zy = pow(Dual<double>(0.0, 0.0), Dual<double>(2.0, 1.0));
    CHECK(zy.value == 0.0);
    CHECK(zy.tangent == 0.0);
    const Dual<double> zx = pow(Dual<double>(0.0, 1.0), Dual<double>(1.0, 0.0)); // x^1: ∂/∂x = 1
    CHECK(zx.tangent == 1.0);
}

TEST_CASE("Dual math functions equal their analytic derivatives", "[ad][dual]") {
    using std::exp;
    const double x = 0.37;
    CHECK(d1([](auto v) { return exp(v); }, x) == Approx(std::exp(x)).epsilon(1e-15));
    CHECK(d1([](auto v) { return log(v); }, x) == Approx(1 / x).epsilon(1e-15));
    CHECK(d1([](auto v) { return log1p(v); }, x) == Approx(1 / (1 + x)).epsilon(1e-15));
    CHECK(d1([](auto v) { return expm1(v); }, x) == Approx(std::exp(x)).epsilon(1e-15));
    CHECK(d1([](auto v) { return sqrt(v); }, x) == Approx(0.5 / std::sqrt(x)).epsilon(1e-15));
    CHECK(d1([](auto v) { return tanh(v); }, x) == Approx(1 - std::tanh(x) * std::tanh(x)).epsilon(1e-15));
    CHECK(d1([](auto v) { return pow(v, 3.0); }, x) == Approx(3 * x * x).epsilon(1e-15));
    CHECK(d1([](auto v) { return pow(2.0, v); }, x) == Approx(std::pow(2.0, x) * std::log(2.0)).epsilon(1e-15));
    CHECK(d1([](auto v) { return abs(v); }, -x) == -1.0);
    CHECK(d1([](auto v) { return abs(v); }, 0.0) == 0.0);
    const double s = 1 / (1 + std::exp(-x));
    CHECK(d1([](auto v) { return sigmoid(v); }, x) == Approx(s * (1 - s)).epsilon(1e-15));
    CHECK(d1([](auto v) { return softplus(v); }, x) == Approx(s).epsilon(1e-15));
    CHECK(d1([](auto v) { return log_sigmoid(v); }, x) == Approx(1 - s).epsilon(1e-14));
    CHECK(d1([](auto v) { return max(v, Dual<double>(0.1)); }, x) == 1.0);
    CHECK(d1([](auto v) { return min(v, 0.1); }, x) == 0.0);
}

TEST_CASE("nested Dual gives second derivatives: a Hessian entry", "[ad][dual][second-order]") {
    // f(x, y) = x²·y + sin-free mix: e^{xy} + x³/y;  ∂²f/∂x∂y = e^{xy}(1 + xy) + 2x − 3x²/y²... computed below
    auto f = [](auto x, auto y) { return x * x * y + exp(x * y) + x * x * x / y; };
    const double x0 = 0.6, y0 = 1.7;
    using DD = Dual<Dual<double>>;
    // Seed x along the inner level and y along the outer level: tangent.tangent = ∂²f/∂x∂y.
    const DD x{Dual<double>(x0, 1.0), Dual<double>(0.0, 0.0)};
    const DD y{Dual<double>(y0, 0.0), Dual<double>(1.0, 0.0)};
    const DD r = f(x, y);
    const double hxy = 2 * x0 + std::exp(x0 * y0) * (1 + x0 * y0) - 3 * x0 * x0 / (y0 * y0);
    CHECK(r.tangent.tangent == Approx(hxy).epsilon(1e-13));
    CHECK(r.value.tangent == Approx(2 * x0 * y0 + y0 * std::exp(x0 * y0) + 3 * x0 * x0 / y0).epsilon(1e-13));
    // Diagonal: ∂²f/∂x² = 2y + y² e^{xy} + 6x/y
    const DD xx{Dual<double>(x0, 1.0), Dual<double>(1.0, 0.0)};
    const DD yc{Dual<double>(y0, 0.0), Dual<double>(0.0, 0.0)};
    CHECK(f(xx, yc).tangent.tangent == Approx(2 * y0 + y0 * y0 * std::exp(x0 * y0) + 6 * x0 / y0).epsilon(1e-13));
}

TEST_CASE("every Dual/Var math function passes expect_ad", "[ad][dual][var]") {
    for (double x : {0.3, 1.7}) {
        expect_ad([](auto v) { return exp(v[0]); }, {x});
        expect_ad([](auto v) { return log(v[0]); }, {x});
        expect_ad([](auto v) { return log1p(v[0]); }, {x});
        expect_ad([](auto v) { return expm1(v[0]); }, {x});
        expect_ad([](auto v) { return sqrt(v[0]); }, {x});
        expect_ad([](auto v) { return tanh(v[0]); }, {x});
        expect_ad([](auto v) { using std::abs; return abs(v[0]); }, {-x});
        expect_ad([](auto v) { using diffbio::sigmoid; return sigmoid(v[0]); }, {x});
        expect_ad([](auto v) { using diffbio::softplus; return softplus(v[0]); }, {-x});
        expect_ad([](auto v) { using diffbio::log_sigmoid; return log_sigmoid(v[0]); }, {x});
        expect_ad([](auto v) { return pow(v[0], 2.5); }, {x});
        expect_ad([](auto v) { return pow(3.0, v[0]); }, {x});
        expect_ad([](auto v) { return pow(v[0], v[1]); }, {x, 1.3});
        expect_ad([](auto v) { using std::max; return max(v[0], v[1]); }, {x, 1.0});
        expect_ad([](auto v) { using std::min; return min(v[0], v[1]); }, {x, 1.0});
        expect_ad([](auto v) { return v[0] * v[1] - v[0] / v[1] + (-v[1]) + 2.0 * v[0] - 1.0 / v[1]; }, {x, 1.3});
    }
}
