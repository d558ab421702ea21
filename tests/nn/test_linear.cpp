#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <diffbio/nn/linear.hpp>

#include "expect_ad.hpp"

using diffbio::ad::Binder;
using diffbio::ad::Dual;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace nn = diffbio::nn;
namespace exec = diffbio::exec;

namespace {
// x [2 × 3], W [3 × 2], b [2]:  y = x·W + b
const std::vector<double> x23{1.0, 2.0, 3.0, -1.0, 0.5, 2.0};
const std::vector<double> w32{0.5, -1.0, 0.25, 2.0, -0.5, 1.0};
const std::vector<double> b2{0.1, -0.2};
// row 0: [1·0.5 + 2·0.25 + 3·(−0.5) + 0.1,  1·(−1) + 2·2 + 3·1 − 0.2] = [−0.4, 5.8]
// row 1: [−0.5 + 0.125 − 1 + 0.1,           1 + 1 + 2 − 0.2]          = [−1.275, 3.8]
const std::vector<double> y22{-0.4, 5.8, -1.275, 3.8};

nn::Linear hand_layer() {
    nn::Linear lin(3, 2, 0, "hand");
    std::copy(w32.begin(), w32.end(), lin.weight().values().begin());
    std::copy(b2.begin(), b2.end(), lin.bias().values().begin());
    return lin;
}

template <class U>
std::vector<U> as(const std::vector<double>& v) {
    return std::vector<U>(v.begin(), v.end());
}
} // namespace

TEST_CASE("Linear: hand-computed 2x3 example in every scalar", "[nn][linear]") {
    const nn::Linear lin = hand_layer();
    SECTION("double, and float data with double parameters") {
        Binder<double> bind;
        const auto y = lin.forward(bind, std::span<const double>(x23), 2);
        REQUIRE(y.size() == 4);
        for (std::size_t i = 0; i < 4; ++i) CHECK(y[i] == Approx(y22[i]).epsilon(1e-15));
        const auto xf = as<float>(x23);
        const auto yf = lin.forward(bind, std::span<const float>(xf), 2);
        for (std::size_t i = 0; i < 4; ++i) CHECK(yf[i] == Approx(y22[i]).epsilon(1e-7));
    }
    SECTION("float") {
        Binder<float> bind;
        const auto xf = as<float>(x23);
        const std::vector<float> y = lin.forward(bind, std::span<const float>(xf), 2);
        for (std::size_t i = 0; i < 4; ++i) CHECK(y[i] == Approx(y22[i]).epsilon(1e-6));
    }
    SECTION("Dual and Var") {
        Binder<Dual<double>> bd;
        const auto yd = lin.forward(bd, std::span<const double>(x23), 2);
        for (std::size_t i = 0; i < 4; ++i) CHECK(yd[i].value == Approx(y22[i]).epsilon(1e-15));
        Tape tape;
        ScopedTape scope(tape);
        Binder<Var> bv(tape);
        const auto yv = lin.forward(bv, std::span<const double>(x23), 2);
        for (std::size_t i = 0; i < 4; ++i) CHECK(yv[i].value() == Approx(y22[i]).epsilon(1e-15));
        CHECK(tape.num_nodes() == 1); // one fused node, no scalar records
        CHECK(tape.num_operands() == 0);
    }
    SECTION("CpuParallel gives the same numbers") {
        Binder<double> bind;
        const auto y = lin.forward(bind, std::span<const double>(x23), 2, exec::CpuParallel{2});
        for (std::size_t i = 0; i < 4; ++i) CHECK(y[i] == Approx(y22[i]).epsilon(1e-15));
    }
}

TEST_CASE("Linear: parameters, init and shape errors", "[nn][linear]") {
    nn::Linear lin(5, 3, 11, "enc");
    CHECK(lin.in_features() == 5);
    CHECK(lin.out_features() == 3);
    CHECK(lin.weight().name() == "enc.weight");
    CHECK(lin.bias().name() == "enc.bias");
    CHECK(lin.weight().size() == 15);
    CHECK(lin.parameters().size() == 2);
    const double bound = 2.0 * std::sqrt(1.0 / 5.0) / nn::truncated_normal_std;
    for (const double w : lin.weight().values()) CHECK(std::fabs(w) <= bound);
    for (const double b : lin.bias().values()) CHECK(b == 0.0);
    Binder<double> bind;
    const std::vector<double> bad(7, 1.0);
    CHECK_THROWS_AS(lin.forward(bind, std::span<const double>(bad), 2), diffbio::ShapeError);
    CHECK_THROWS_WITH(lin.forward(bind, std::span<const double>(bad), 2), Catch::Contains("7") && Catch::Contains("2 × 5 = 10"));
    CHECK_THROWS_AS(nn::Linear(0, 3, 0), diffbio::InvalidArgument);
    CHECK(lin.forward(bind, std::span<const double>(), 0).empty());
    std::vector<double> x(10, 1.0);
    x[6] = std::nan("");
    CHECK_THROWS_WITH(lin.forward(bind, std::span<const double>(x), 2), Catch::Contains("Linear 'enc': input entry 6 is not finite (nan)"));
    const std::vector<double> w(15, 0.1), b(3, 0.0);
    CHECK_THROWS_WITH(nn::linear(std::span<const double>(x), 2, std::span<const double>(w), std::span<const double>(b), 5, 3),
                      Catch::Contains("linear: x entry 6"));
}

TEST_CASE("Linear: the fused Var node equals the generic Dual path, values and gradients", "[nn][linear][ad]") {
    nn::Linear lin(4, 3, 5);
    const std::size_t rows = 5;
    std::vector<double> x(rows * 4);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.3 * static_cast<double>(i) + 0.2);
    const std::vector<double> wsum{0.3, -1.1, 0.7}; // loss = Σ_r Σ_j wsum_j·y_rj
    for (const auto act : {nn::Activation::none, nn::Activation::tanh, nn::Activation::sigmoid}) {
        Tape tape;
        ScopedTape scope(tape);
        Binder<Var> bv(tape);
        const auto xv = tape.variables(x);
        const auto yv = lin.forward(bv, xv, rows, act);
        CHECK(tape.num_nodes() == 1);
        Var loss = 0.0;
        for (std::size_t k = 0; k < yv.size(); ++k) loss += wsum[k % 3] * yv[k];
        tape.backward(loss);
        std::vector<double> gx(x.size());
        tape.adjoints(xv, gx);
        auto& w = lin.weight();
        w.zero_grad();
        bv.accumulate_grad();
        // Dual: tangent along weight entry j, and along input entry j.
        for (std::size_t j = 0; j < w.size(); ++j) {
            Binder<Dual<double>> bd;
            bd.seed(w, j);
            const auto yd = lin.forward(bd, std::span<const double>(x), rows, act);
            double t = 0.0;
            for (std::size_t k = 0; k < yd.size(); ++k) {
                CHECK(yd[k].value == Approx(yv[k].value()).epsilon(1e-14));
                t += wsum[k % 3] * yd[k].tangent;
            }
            CHECK(w.grad()[j] == Approx(t).epsilon(1e-12).margin(1e-14));
        }
        for (std::size_t j = 0; j < x.size(); ++j) {
            std::vector<Dual<double>> xd(x.begin(), x.end());
            xd[j].tangent = 1.0;
            Binder<Dual<double>> bd;
            const auto yd = lin.forward(bd, std::span<const Dual<double>>(xd), rows, act);
            double t = 0.0;
            for (std::size_t k = 0; k < yd.size(); ++k) t += wsum[k % 3] * yd[k].tangent;
            CHECK(gx[j] == Approx(t).epsilon(1e-12).margin(1e-14));
        }
    }
}

TEST_CASE("linear passes expect_ad in x, W and b (fused node for Var)", "[nn][linear][ad]") {
    std::vector<double> p(x23);
    p.insert(p.end(), w32.begin(), w32.end());
    p.insert(p.end(), b2.begin(), b2.end());
    for (const auto act : {nn::Activation::none, nn::Activation::relu, nn::Activation::leaky_relu, nn::Activation::tanh,
                           nn::Activation::sigmoid}) {
        INFO("activation " << nn::activation_name(act));
        expect_ad([act](auto v) { return nn::linear(v.first(6), 2, v.subspan(6, 6), v.subspan(12, 2), 3, 2, act, 0.1); }, p);
        // A single row (one sample): the same checks, x = the first row only.
        std::vector<double> p1(x23.begin(), x23.begin() + 3);
        p1.insert(p1.end(), p.begin() + 6, p.end());
        expect_ad([act](auto v) { return nn::linear(v.first(3), 1, v.subspan(3, 6), v.subspan(9, 2), 3, 2, act, 0.1); }, p1);
    }
    // Plain data x with AD parameters (x is saved by the node, not recorded).
    expect_ad(
        [](auto v) {
            using U = typename decltype(v)::value_type;
            using Data = std::conditional_t<std::is_same_v<U, float>, float, double>;
            static const std::vector<Data> xd = as<Data>(x23);
            return nn::linear(std::span<const Data>(xd), 2, v.first(6), v.subspan(6, 2), 3, 2, nn::Activation::tanh);
        },
        std::vector<double>(p.begin() + 6, p.end()));
}

TEST_CASE("Linear: CpuParallel row blocks agree with Cpu, values and gradients", "[nn][linear]") {
    nn::Linear lin(6, 5, 3);
    const std::size_t rows = 301; // several blocks of >= 64 rows
    std::vector<double> x(rows * 6);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i));
    std::vector<double> vals[2], gx[2], gw[2], gb[2];
    for (int k = 0; k < 2; ++k) {
        Tape tape;
        ScopedTape scope(tape);
        Binder<Var> bv(tape);
        const auto xv = tape.variables(x);
        const auto y = k == 0 ? lin.forward(bv, xv, rows, nn::Activation::relu)
                              : lin.forward(bv, xv, rows, nn::Activation::relu, 0.01, exec::CpuParallel{3});
        Var loss = 0.0;
        for (std::size_t j = 0; j < y.size(); ++j) {
            vals[k].push_back(y[j].value());
            loss += std::cos(static_cast<double>(j)) * y[j];
        }
        tape.backward(loss);
        gx[k].resize(x.size());
        tape.adjoints(xv, gx[k]);
        lin.weight().zero_grad();
        bv.accumulate_grad();
        gw[k].assign(lin.weight().grad().begin(), lin.weight().grad().end());
        lin.bias().zero_grad();
        bv.accumulate_grad();
        gb[k].assign(lin.bias().grad().begin(), lin.bias().grad().end());
    }
    for (std::size_t j = 0; j < vals[0].size(); ++j) CHECK(vals[1][j] == Approx(vals[0][j]).epsilon(1e-14).margin(1e-15));
    for (std::size_t j = 0; j < gx[0].size(); ++j) CHECK(gx[1][j] == Approx(gx[0][j]).epsilon(1e-14).margin(1e-15));
    for (std::size_t j = 0; j < gw[0].size(); ++j) CHECK(gw[1][j] == Approx(gw[0][j]).epsilon(1e-12).margin(1e-14));
    REQUIRE(gb[0].size() == 5);
    for (std::size_t j = 0; j < gb[0].size(); ++j) CHECK(gb[1][j] == Approx(gb[0][j]).epsilon(1e-12).margin(1e-14));
}
