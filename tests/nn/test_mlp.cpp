#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <diffbio/nn/mlp.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using diffbio::ad::Binder;
using diffbio::ad::Dual;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace nn = diffbio::nn;

namespace {
using diffbio::test::make_binder;

std::vector<double> inputs(std::size_t n) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = std::cos(0.7 * static_cast<double>(i) + 0.3);
    return x;
}
} // namespace

TEST_CASE("MLP: layers, parameters, hand-checked composition", "[nn][mlp]") {
    nn::MLP mlp(3, {4, 2}, nn::Activation::tanh, nn::Activation::sigmoid, 9, "net");
    CHECK(mlp.num_layers() == 2);
    CHECK(mlp.in_features() == 3);
    CHECK(mlp.out_features() == 2);
    const auto params = mlp.parameters();
    REQUIRE(params.size() == 4);
    CHECK(params[0]->name() == "net.0.weight");
    CHECK(params[0]->size() == 12);
    CHECK(params[3]->name() == "net.1.bias");
    CHECK(params[3]->size() == 2);
    CHECK(mlp.layer(0).weight().values()[0] != mlp.layer(1).weight().values()[0]); // distinct seeds
    // forward == sigmoid(tanh(x W0 + b0) W1 + b1), computed by hand
    mlp.layer(0).bias().values()[1] = 0.3;
    const auto x = inputs(6);
    Binder<double> bind;
    const auto y = mlp.forward(bind, std::span<const double>(x), 2);
    REQUIRE(y.size() == 4);
    const auto w0 = mlp.layer(0).weight().values(), b0 = mlp.layer(0).bias().values();
    const auto w1 = mlp.layer(1).weight().values(), b1 = mlp.layer(1).bias().values();
    for (std::size_t r = 0; r < 2; ++r) {
        double h[4];
        for (std::size_t j = 0; j < 4; ++j) {
            double z = b0[j];
            for (std::size_t k = 0; k < 3; ++k) z += x[r * 3 + k] * w0[k * 4 + j];
            h[j] = std::tanh(z);
        }
        for (std::size_t j = 0; j < 2; ++j) {
            double z = b1[j];
            for (std::size_t k = 0; k < 4; ++k) z += h[k] * w1[k * 2 + j];
            CHECK(y[r * 2 + j] == Approx(1.0 / (1.0 + std::exp(-z))).epsilon(1e-14));
        }
    }
}

TEST_CASE("MLP passes expect_ad in its input (tiny sizes)", "[nn][mlp][ad]") {
    const nn::MLP smooth(3, {4, 2}, nn::Activation::tanh, nn::Activation::none, 1);
    const nn::MLP rectified(3, {5, 3, 2}, nn::Activation::relu, nn::Activation::sigmoid, 2);
    for (const nn::MLP* m : {&smooth, &rectified}) {
        expect_ad(
            [m](auto v) {
                using U = typename decltype(v)::value_type;
                auto bind = make_binder<U>();
                return m->forward(bind, v, 2);
            },
            inputs(6));
    }
}

TEST_CASE("MLP: parameter gradients agree between Var, Dual and finite differences", "[nn][mlp][ad]") {
    nn::MLP mlp(3, {4, 2}, nn::Activation::tanh, nn::Activation::none, 4);
    const auto x = inputs(9);
    const auto loss = [&](auto& bind) {
        const auto y = mlp.forward(bind, std::span<const double>(x), 3);
        auto s = y[0] * 0.0;
        for (std::size_t k = 0; k < y.size(); ++k) s = s + y[k] * (0.5 + 0.1 * static_cast<double>(k));
        return s;
    };
    Tape tape;
    ScopedTape scope(tape);
    Binder<Var> bv(tape);
    const Var l = loss(bv);
    tape.backward(l);
    for (auto* p : mlp.parameters()) p->zero_grad();
    bv.accumulate_grad();
    CHECK(tape.num_nodes() == 2); // one fused node per layer
    for (auto* p : mlp.parameters()) {
        for (std::size_t j = 0; j < p->size(); j += 3) {
            Binder<Dual<double>> bd;
            bd.seed(*p, j);
            const double fwd = loss(bd).tangent;
            const double h = 1e-6;
            const double v0 = p->values()[j];
            Binder<double> b;
            p->values()[j] = v0 + h;
            const double up = loss(b);
            p->values()[j] = v0 - h;
            const double dn = loss(b);
            p->values()[j] = v0;
            INFO(p->name() << "[" << j << "]");
            CHECK(p->grad()[j] == Approx(fwd).epsilon(1e-11).margin(1e-13));
            CHECK(p->grad()[j] == Approx((up - dn) / (2 * h)).epsilon(1e-6).margin(1e-8));
        }
    }
}

TEST_CASE("MLP dropout: inverted, deterministic per seed, off in eval mode", "[nn][mlp][dropout]") {
    nn::MLPConfig cfg;
    cfg.in_features = 4;
    cfg.dims = {64};
    cfg.activation = nn::Activation::none;
    cfg.dropout_rate = 0.25;
    cfg.dropout_seed = 3;
    nn::MLP mlp(cfg);
    CHECK(mlp.training());
    CHECK(mlp.dropout_active());
    const std::size_t rows = 400;
    const auto x = inputs(rows * 4);
    Binder<double> bind;
    const auto y = mlp.forward(bind, std::span<const double>(x), rows);
    mlp.eval();
    CHECK_FALSE(mlp.dropout_active());
    const auto full = mlp.forward(bind, std::span<const double>(x), rows);
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (y[i] == 0.0 && full[i] != 0.0) {
            ++dropped;
        } else {
            CHECK(y[i] == Approx(full[i] / 0.75).epsilon(1e-14));
        }
    }
    const double frac = static_cast<double>(dropped) / static_cast<double>(y.size());
    CHECK(frac == Approx(0.25).margin(0.01));
    mlp.train();
    CHECK(mlp.forward(bind, std::span<const double>(x), rows) == y); // same seed, same mask
    mlp.set_dropout_seed(4);
    CHECK(mlp.forward(bind, std::span<const double>(x), rows) != y);
    // With a fixed mask, dropout is a linear map: expect_ad holds across scalar types.
    nn::MLPConfig small = cfg;
    small.dims = {3, 2};
    small.activation = nn::Activation::tanh;
    small.dropout_rate = 0.5;
    const nn::MLP m2(small);
    expect_ad(
        [&m2](auto v) {
            using U = typename decltype(v)::value_type;
            auto b = make_binder<U>();
            return m2.forward(b, v, 2);
        },
        inputs(8));
}

TEST_CASE("MLP: invalid configurations throw naming the field", "[nn][mlp]") {
    nn::MLPConfig cfg;
    cfg.in_features = 3;
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("dims"));
    cfg.dims = {4, 0};
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("dims[1]"));
    cfg.dims = {0, 4};
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("dims[0]"));
    cfg.dims = {4};
    // negative_slope is checked where leaky_relu is used, hidden or output, and only there.
    cfg.negative_slope = -0.1;
    CHECK_NOTHROW(nn::MLP(cfg));
    cfg.activation = nn::Activation::leaky_relu;
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("negative_slope"));
    cfg.activation = nn::Activation::relu;
    cfg.output_activation = nn::Activation::leaky_relu;
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("negative_slope"));
    cfg.output_activation = nn::Activation::none;
    cfg.negative_slope = 0.01;
    cfg.dropout_rate = -0.1;
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("dropout_rate"));
    cfg.dropout_rate = 1.0;
    CHECK_THROWS_AS(nn::MLP(cfg), diffbio::InvalidArgument);
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("dropout_rate"));
    cfg.dropout_rate = 0.0;
    cfg.in_features = 0;
    CHECK_THROWS_WITH(nn::MLP(cfg), Catch::Contains("in_features"));
    cfg.in_features = 3;
    const nn::MLP mlp(cfg);
    std::vector<double> x(6, 0.5);
    x[4] = std::numeric_limits<double>::infinity();
    Binder<double> bind;
    CHECK_THROWS_WITH(mlp.forward(bind, std::span<const double>(x), 2), Catch::Contains("MLP::forward: input entry 4 is not finite (inf)"));
}
