#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <diffbio/nn/loss.hpp>

#include "expect_ad.hpp"

using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::test::expect_ad;
namespace nn = diffbio::nn;

namespace {
template <class T>
std::span<const T> sp(const std::vector<T>& v) {
    return std::span<const T>(v);
}
} // namespace

TEST_CASE("losses: hand values", "[nn][loss]") {
    CHECK(nn::mse(sp<double>({1.0, 2.0}), sp<double>({0.0, 4.0})) == Approx(2.5).epsilon(1e-15));
    CHECK(nn::binary_cross_entropy_with_logits(sp<double>({0.0}), sp<double>({1.0})) == Approx(std::log(2.0)).epsilon(1e-15));
    // z = 2, y = 0.25: softplus(2) − 0.5
    CHECK(nn::binary_cross_entropy_with_logits(sp<double>({2.0}), sp<double>({0.25})) ==
          Approx(std::log1p(std::exp(2.0)) - 0.5).epsilon(1e-15));
    // extreme logits stay finite and exact
    CHECK(nn::binary_cross_entropy_with_logits(sp<double>({1000.0, -1000.0}), sp<double>({0.0, 1.0})) ==
          Approx(1000.0).epsilon(1e-15));
    CHECK(nn::binary_cross_entropy_with_logits(sp<double>({1000.0}), sp<double>({1.0})) == 0.0);
    // uniform logits: log C per row
    CHECK(nn::cross_entropy_with_logits(sp<double>({3.0, 3.0, 3.0, 3.0}), sp<double>({0.0, 1.0, 0.0, 0.0}), 1, 4) ==
          Approx(std::log(4.0)).epsilon(1e-15));
    const std::vector<double> z{1.0, 2.0, 0.5, -1.0, 0.0, 3.0};
    const std::vector<std::uint32_t> labels{1, 2};
    const std::vector<double> onehot{0, 1, 0, 0, 0, 1};
    const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5));
    const double lse1 = std::log(std::exp(-1.0) + std::exp(0.0) + std::exp(3.0));
    const double expected = 0.5 * ((lse0 - 2.0) + (lse1 - 3.0));
    CHECK(nn::cross_entropy_with_labels(sp(z), sp(labels), 2, 3) == Approx(expected).epsilon(1e-14));
    CHECK(nn::cross_entropy_with_logits(sp(z), sp(onehot), 2, 3) == Approx(expected).epsilon(1e-14));
}

TEST_CASE("losses pass expect_ad in predictions and targets (Var: one node)", "[nn][loss][ad]") {
    const std::vector<double> p{0.3, -1.2, 2.0, 0.8, 0.1, 0.6, 0.9, 0.2};
    expect_ad([](auto v) { return nn::mse(v.first(4), v.subspan(4)); }, p);
    expect_ad([](auto v) { return nn::binary_cross_entropy_with_logits(v.first(4), v.subspan(4)); }, p);
    const std::vector<double> q{0.3, -1.2, 2.0, 0.8, 0.1, 0.6, 0.2, 0.3, 0.5, 0.1, 0.1, 0.8};
    expect_ad([](auto v) { return nn::cross_entropy_with_logits(v.first(6), v.subspan(6), 2, 3); }, q);
    const std::vector<std::uint32_t> labels{0, 2};
    expect_ad([&](auto v) { return nn::cross_entropy_with_labels(v.first(6), sp(labels), 2, 3); }, q);
    Tape tape;
    ScopedTape scope(tape);
    const auto x = tape.variables(p);
    const std::vector<double> target{1.0, 0.0, 1.0, 1.0};
    const auto l = nn::binary_cross_entropy_with_logits(x.first(4), sp(target)); // Var logits, plain targets
    CHECK(tape.num_nodes() == 1);
    CHECK(tape.num_operands() == 0);
    tape.backward(l);
    CHECK(tape.adjoint(x[0]) == Approx((1.0 / (1.0 + std::exp(-0.3)) - 1.0) / 4.0).epsilon(1e-14));
}

TEST_CASE("losses: errors", "[nn][loss]") {
    const std::vector<double> a{1.0, 2.0}, b{1.0}, none;
    CHECK_THROWS_AS(nn::mse(sp(a), sp(b)), diffbio::ShapeError);
    CHECK_THROWS_AS(nn::mse(sp(none), sp(none)), diffbio::InvalidArgument);
    CHECK_THROWS_AS(nn::cross_entropy_with_logits(sp(a), sp(a), 2, 2), diffbio::ShapeError);
    const std::vector<std::uint32_t> bad{5};
    CHECK_THROWS_AS(nn::cross_entropy_with_labels(sp(a), sp(bad), 1, 2), diffbio::InvalidArgument);
    // A bad label past the first row is found too, and named.
    const std::vector<double> z6{0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    const std::vector<std::uint32_t> late{0, 1, 2};
    CHECK_THROWS_WITH(nn::cross_entropy_with_labels(sp(z6), sp(late), 3, 2),
                      Catch::Contains("label 2 of row 2 is not < cols = 2"));
    const std::vector<std::uint32_t> two{0, 1};
    CHECK_THROWS_AS(nn::cross_entropy_with_labels(sp(z6), sp(two), 3, 2), diffbio::ShapeError);
}
