#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <diffbio/core/math.hpp>

#include "expect_ad.hpp"

using diffbio::test::expect_ad;

TEST_CASE("sigmoid: hand values and symmetry", "[core][math]") {
    CHECK(diffbio::sigmoid(0.0) == 0.5);
    CHECK(diffbio::sigmoid(2.0) == Approx(1.0 / (1.0 + std::exp(-2.0))).epsilon(1e-15));
    CHECK(diffbio::sigmoid(-3.0) == Approx(std::exp(-3.0) / (1.0 + std::exp(-3.0))).epsilon(1e-15));
    CHECK(diffbio::sigmoid(-3.0) + diffbio::sigmoid(3.0) == Approx(1.0).epsilon(1e-15));
    CHECK(diffbio::sigmoid(0.5f) == Approx(0.62245933f));
}

TEST_CASE("sigmoid, softplus, log_sigmoid stay finite at extreme inputs", "[core][math][numerics]") {
    for (double x : {-1e6, -745.0, -40.0, 40.0, 710.0, 1e6}) {
        CHECK(std::isfinite(diffbio::sigmoid(x)));
        CHECK(std::isfinite(diffbio::softplus(x)));
        CHECK(std::isfinite(diffbio::log_sigmoid(x)));
    }
    CHECK(diffbio::sigmoid(1e6) == 1.0);
    CHECK(diffbio::sigmoid(-1e6) == 0.0);
    CHECK(diffbio::softplus(1e6) == 1e6);
    CHECK(diffbio::softplus(-1e6) == 0.0);
    CHECK(diffbio::log_sigmoid(-1e6) == -1e6);
    for (float x : {-1e4f, -100.0f, 100.0f, 1e4f}) {
        CHECK(std::isfinite(diffbio::sigmoid(x)));
        CHECK(std::isfinite(diffbio::softplus(x)));
        CHECK(std::isfinite(diffbio::log_sigmoid(x)));
    }
}

TEST_CASE("sigmoid_with_derivative: the bits of sigmoid and sigmoid_derivative", "[core][math]") {
    for (double x : {-1e6, -745.0, -40.0, -3.0, -1e-9, 0.0, 1e-9, 0.7, 40.0, 710.0, 1e6}) {
        double s = -1.0, d = -1.0;
        diffbio::sigmoid_with_derivative(x, s, d);
        CHECK(s == diffbio::sigmoid(x));
        CHECK(d == diffbio::sigmoid_derivative(x));
    }
    float s = -1.0f, d = -1.0f;
    diffbio::sigmoid_with_derivative(-2.5f, s, d);
    CHECK(s == diffbio::sigmoid(-2.5f));
    CHECK(d == diffbio::sigmoid_derivative(-2.5f));
    CHECK(d == Approx(std::exp(-2.5) / ((1.0 + std::exp(-2.5)) * (1.0 + std::exp(-2.5)))).epsilon(1e-6));
}

TEST_CASE("softplus and log_sigmoid: hand values", "[core][math]") {
    CHECK(diffbio::softplus(0.0) == Approx(std::log(2.0)).epsilon(1e-15));
    CHECK(diffbio::softplus(1.0) == Approx(std::log1p(std::exp(1.0))).epsilon(1e-15));
    CHECK(diffbio::log1pexp(-2.0) == Approx(std::log1p(std::exp(-2.0))).epsilon(1e-15));
    CHECK(diffbio::log_sigmoid(1.5) == Approx(std::log(diffbio::sigmoid(1.5))).epsilon(1e-14));
    // softplus(x) − softplus(−x) = x
    CHECK(diffbio::softplus(3.25) - diffbio::softplus(-3.25) == Approx(3.25).epsilon(1e-15));
}

TEST_CASE("logaddexp and logsumexp: hand values and extremes", "[core][math]") {
    CHECK(diffbio::logaddexp(0.0, 0.0) == Approx(std::log(2.0)).epsilon(1e-15));
    CHECK(diffbio::logaddexp(1.0, 2.0) == Approx(std::log(std::exp(1.0) + std::exp(2.0))).epsilon(1e-15));
    CHECK(diffbio::logaddexp(1000.0, 1000.0) == Approx(1000.0 + std::log(2.0)).epsilon(1e-15));
    const double ninf = -std::numeric_limits<double>::infinity();
    CHECK(diffbio::logaddexp(ninf, ninf) == ninf);
    CHECK(diffbio::logaddexp(ninf, 3.0) == 3.0);
    const std::vector<double> v{1.0, 2.0, 3.0};
    CHECK(diffbio::logsumexp(std::span<const double>(v)) ==
          Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0))).epsilon(1e-15));
    const std::vector<double> big{1e6, 1e6 - 1.0};
    CHECK(diffbio::logsumexp(std::span<const double>(big)) == Approx(1e6 + std::log1p(std::exp(-1.0))).epsilon(1e-15));
    CHECK(diffbio::logsumexp(std::span<const double>()) == ninf);
}

TEST_CASE("core math functions pass expect_ad", "[core][math][ad]") {
    SECTION("sigmoid") {
        for (double x : {-3.0, -0.2, 0.0, 0.7, 4.0}) {
            expect_ad([](auto v) { using diffbio::sigmoid; return sigmoid(v[0]); }, {x});
        }
    }
    SECTION("softplus / log1pexp") {
        for (double x : {-5.0, -0.3, 0.0, 2.0, 30.0}) {
            expect_ad([](auto v) { using diffbio::softplus; return softplus(v[0]); }, {x});
            expect_ad([](auto v) { using diffbio::log1pexp; return log1pexp(v[0]); }, {x});
        }
    }
    SECTION("log_sigmoid") {
        for (double x : {-8.0, -1.0, 0.0, 1.0, 6.0}) {
            expect_ad([](auto v) { using diffbio::log_sigmoid; return log_sigmoid(v[0]); }, {x});
        }
    }
    SECTION("logaddexp, including the tie a == b") {
        expect_ad([](auto v) { return diffbio::logaddexp(v[0], v[1]); }, {0.3, -1.2});
        expect_ad([](auto v) { return diffbio::logaddexp(v[0], v[1]); }, {2.0, 2.0});
        expect_ad([](auto v) { return diffbio::logaddexp(v[0], v[1]); }, {50.0, -50.0});
    }
    SECTION("logsumexp") {
        expect_ad([](auto v) { return diffbio::logsumexp(v); }, {0.1, -2.0, 3.5, 3.5});
    }
}
