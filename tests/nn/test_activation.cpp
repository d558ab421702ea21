#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <type_traits>
#include <vector>

#include <diffbio/nn/activation.hpp>

#include "expect_ad.hpp"

using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace nn = diffbio::nn;
namespace exec = diffbio::exec;

namespace {
const std::vector<double> pts{-2.5, -0.3, 0.4, 1.7, 6.0};
}

TEST_CASE("activations: values", "[nn][activation]") {
    const std::span<const double> x(pts);
    const auto r = nn::relu(x);
    CHECK(r == std::vector<double>{0.0, 0.0, 0.4, 1.7, 6.0});
    const auto lr = nn::leaky_relu(x, 0.1);
    CHECK(lr[0] == Approx(-0.25).epsilon(1e-15));
    CHECK(lr[3] == 1.7);
    CHECK(nn::leaky_relu(x)[1] == Approx(-0.003).epsilon(1e-15)); // default slope 0.01
    const auto s = nn::sigmoid(x);
    const auto t = nn::tanh(x);
    for (std::size_t i = 0; i < pts.size(); ++i) {
        CHECK(s[i] == Approx(1.0 / (1.0 + std::exp(-pts[i]))).epsilon(1e-15));
        CHECK(t[i] == Approx(std::tanh(pts[i])).epsilon(1e-15));
    }
    CHECK(nn::activate(x, nn::Activation::none) == pts);
    CHECK(nn::activate(x, nn::Activation::tanh, 0.01, exec::CpuParallel{2}) == t);
    const std::vector<float> big{-1e4f, 1e4f};
    for (const float v : nn::sigmoid(std::span<const float>(big))) CHECK(std::isfinite(v));
    CHECK_THROWS_AS(nn::leaky_relu(x, -0.5), diffbio::InvalidArgument);
    CHECK_THROWS_WITH(nn::leaky_relu(x, -0.5), Catch::Contains("negative_slope"));
}

TEST_CASE("activations pass expect_ad (Var: one fused node each)", "[nn][activation][ad]") {
    expect_ad([](auto v) { return nn::relu(v); }, pts);
    expect_ad([](auto v) { return nn::leaky_relu(v, 0.2); }, pts);
    expect_ad([](auto v) { return nn::sigmoid(v); }, pts);
    expect_ad([](auto v) { return nn::tanh(v); }, pts);
    expect_ad([](auto v) { return nn::tanh(v, exec::CpuParallel{2}); }, pts);
    Tape tape;
    ScopedTape scope(tape);
    const auto x = tape.variables(pts);
    const auto y = nn::sigmoid(x);
    CHECK(tape.num_nodes() == 1);
    CHECK(tape.num_operands() == 0);
    tape.backward(y[2]);
    CHECK(tape.adjoint(x[2]) == Approx(y[2].value() * (1.0 - y[2].value())).epsilon(1e-14));
    CHECK(tape.adjoint(x[1]) == 0.0);
    // The relu derivative at 0 is the left one, 0, like the forward-mode branch.
    const std::vector<double> zero{0.0};
    const auto z = tape.variables(zero);
    const auto rz = nn::relu(z);
    tape.backward(rz[0]);
    CHECK(tape.adjoint(z[0]) == 0.0);
    // leaky_relu at 0 takes the left slope too, in both modes; slope 0 is allowed (= relu).
    const auto lz = nn::leaky_relu(z, 0.2);
    tape.backward(lz[0]);
    CHECK(tape.adjoint(z[0]) == 0.2);
    const std::vector<diffbio::ad::Dual<double>> zd{{0.0, 1.0}};
    CHECK(nn::leaky_relu(std::span<const diffbio::ad::Dual<double>>(zd), 0.2)[0].tangent == 0.2);
    CHECK(nn::relu(std::span<const diffbio::ad::Dual<double>>(zd))[0].tangent == 0.0);
    CHECK(nn::leaky_relu(std::span<const double>(pts), 0.0) == nn::relu(std::span<const double>(pts)));
}

TEST_CASE("softmax_rows: simplex rows, temperature, hard limit", "[nn][activation][softmax]") {
    const std::vector<double> x{1.0, 2.0, 3.0, 0.5, 0.5, -1.0};
    const auto p = nn::softmax_rows(std::span<const double>(x), 2, 3, 2.0);
    for (std::size_t r = 0; r < 2; ++r) CHECK(p[3 * r] + p[3 * r + 1] + p[3 * r + 2] == Approx(1.0).epsilon(1e-15));
    const double z = std::exp(0.5) + std::exp(1.0) + std::exp(1.5);
    CHECK(p[2] == Approx(std::exp(1.5) / z).epsilon(1e-15));
    const auto h = nn::softmax_rows(std::span<const double>(x), 2, 3, 1e-6);
    CHECK(h == std::vector<double>{0.0, 0.0, 1.0, 0.5, 0.5, 0.0}); // ties split evenly
    CHECK(nn::softmax_rows(std::span<const double>(x), 2, 3, 2.0, exec::CpuParallel{2}) == p);
    CHECK_THROWS_AS(nn::softmax_rows(std::span<const double>(x), 2, 3, 0.0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(nn::softmax_rows(std::span<const double>(x), 4, 2, 1.0), diffbio::ShapeError);
}

TEST_CASE("softmax_rows passes expect_ad in x and tau (one node)", "[nn][activation][softmax][ad]") {
    const std::vector<double> p{0.3, -1.2, 2.0, 1.9, 0.1, 0.7, 0.8};
    expect_ad([](auto v) { return nn::softmax_rows(v.first(6), 2, 3, v[6]); }, p);
    expect_ad([](auto v) { return nn::softmax_rows(v.first(6), 3, 2, v[6], exec::CpuParallel{2}); }, p);
    expect_ad(
        [](auto v) { // a plain-number tau (float with float data, so that the result stays float)
            using Tau = std::conditional_t<std::is_same_v<typename decltype(v)::value_type, float>, float, double>;
            return nn::softmax_rows(v.first(6), 2, 3, Tau(0.5));
        },
        p);
    Tape tape;
    ScopedTape scope(tape);
    const auto x = tape.variables(p);
    const auto y = nn::softmax_rows(x.first(6), 2, 3, x[6]);
    CHECK(tape.num_nodes() == 1);
    CHECK(y.size() == 6);
}
