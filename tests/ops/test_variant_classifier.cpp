#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/nn/loss.hpp>
#include <diffbio/ops/variant/classifier.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using diffbio::ops::VariantClassifier;
using diffbio::ops::VariantClassifierConfig;
namespace ad = diffbio::ad;

namespace {

std::vector<double> features(std::size_t L, std::size_t F, double phase = 0.0) {
    std::vector<double> x(L * F);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = std::sin(0.37 * static_cast<double>(k) + phase) + 0.1;
    return x;
}

VariantClassifierConfig small_config() {
    return {.num_classes = 3, .features = 3, .window = 5, .hidden_dim = 6, .num_layers = 2, .dropout_rate = 0.0, .seed = 7};
}

/// By hand: the network on one window (double), for comparison with apply().
std::vector<double> by_hand(VariantClassifier& c, const std::vector<double>& window) {
    const auto& cfg = c.config();
    std::vector<double> h = window;
    for (std::size_t i = 0; i < cfg.num_layers; ++i) {
        auto& l = c.hidden_layer(i);
        std::vector<double> o(l.out_features());
        for (std::size_t j = 0; j < o.size(); ++j) {
            double s = l.bias().values()[j];
            for (std::size_t k = 0; k < h.size(); ++k) s += h[k] * l.weight().values()[k * o.size() + j];
            o[j] = s > 0.0 ? s : 0.0;
        }
        h = o;
    }
    auto& l = c.output_layer();
    std::vector<double> z(l.out_features());
    for (std::size_t j = 0; j < z.size(); ++j) {
        double s = l.bias().values()[j];
        for (std::size_t k = 0; k < h.size(); ++k) s += h[k] * l.weight().values()[k * z.size() + j];
        z[j] = s;
    }
    return z;
}

template <class T>
T scalar_of(ad::Binder<T>&);

} // namespace

TEST_CASE("VariantClassifier: defaults, shapes, probabilities", "[variant][classifier]") {
    VariantClassifier c(VariantClassifierConfig{.features = 8});
    CHECK(c.config().window == 11);
    CHECK(c.config().hidden_dim == 64);
    CHECK(c.config().num_classes == 3);
    CHECK(c.training());
    CHECK(c.parameters().size() == 6); // 2 hidden layers + output, weight and bias each
    c.eval();
    const std::size_t L = 30;
    const auto x = features(L, 8);
    ad::Binder<double> bind;
    const auto r = c.apply(bind, std::span<const double>(x), L);
    REQUIRE(r.logits.size() == L * 3);
    REQUIRE(r.probabilities.size() == L * 3);
    for (std::size_t p = 0; p < L; ++p) {
        double s = 0.0;
        for (std::size_t k = 0; k < 3; ++k) {
            CHECK(std::isfinite(r.logits[p * 3 + k]));
            CHECK(r.probabilities[p * 3 + k] >= 0.0);
            s += r.probabilities[p * 3 + k];
        }
        CHECK(s == Approx(1.0).margin(1e-12));
        CHECK(r.predicted(p) < 3);
    }
}

TEST_CASE("VariantClassifier: edge-padded windows equal the network by hand", "[variant][classifier]") {
    VariantClassifier c(small_config());
    const std::size_t L = 7, F = 3, W = 5;
    const auto x = features(L, F);
    ad::Binder<double> bind;
    const auto r = c.apply(bind, std::span<const double>(x), L);
    for (std::size_t p = 0; p < L; ++p) {
        std::vector<double> win;
        for (std::size_t k = 0; k < W; ++k) {
            const long s = std::clamp<long>(static_cast<long>(p + k) - 2, 0, static_cast<long>(L) - 1);
            for (std::size_t f = 0; f < F; ++f) win.push_back(x[static_cast<std::size_t>(s) * F + f]);
        }
        const auto z = by_hand(c, win);
        for (std::size_t k = 0; k < 3; ++k) CHECK(r.logits[p * 3 + k] == Approx(z[k]).epsilon(1e-12));
        // classify() on the same window agrees
        const auto rw = c.classify(bind, std::span<const double>(win), 1);
        for (std::size_t k = 0; k < 3; ++k) CHECK(rw.logits[k] == Approx(z[k]).epsilon(1e-12));
    }
}

TEST_CASE("VariantClassifier: dropout only in training mode, reproducible from its seed", "[variant][classifier]") {
    auto cfg = small_config();
    cfg.dropout_rate = 0.5;
    cfg.hidden_dim = 32;
    cfg.dropout_seed = 11;
    VariantClassifier c(cfg);
    const std::size_t L = 20;
    const auto x = features(L, 3);
    ad::Binder<double> bind;
    c.eval();
    const auto e1 = c.apply(bind, std::span<const double>(x), L);
    c.train();
    const auto t1 = c.apply(bind, std::span<const double>(x), L);
    const auto t2 = c.apply(bind, std::span<const double>(x), L);
    CHECK(t1.logits == t2.logits); // same seed, same masks
    CHECK(t1.logits != e1.logits); // dropout changes the output in training mode
    c.set_dropout_seed(12);
    const auto t3 = c.apply(bind, std::span<const double>(x), L);
    CHECK(t3.logits != t1.logits); // a new seed draws new masks
    c.eval();
    const auto e2 = c.apply(bind, std::span<const double>(x), L);
    CHECK(e2.logits == e1.logits); // eval ignores the seed
    // Same classifier rebuilt from the same config: identical weights and masks.
    VariantClassifier c2(cfg);
    const auto u1 = c2.apply(bind, std::span<const double>(x), L);
    CHECK(u1.logits == t1.logits);
    // The masks are the same in every scalar: Var training pass equals the double one.
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> vb(tape);
    const auto tv = c2.apply(vb, std::span<const double>(x), L);
    for (std::size_t k = 0; k < tv.logits.size(); ++k) CHECK(tape.value(tv.logits[k]) == Approx(t1.logits[k]).epsilon(1e-12));
}

TEST_CASE("VariantClassifier: gradients w.r.t. features in every AD mode", "[variant][classifier][ad]") {
    for (const double rate : {0.0, 0.3}) {
        auto cfg = small_config();
        cfg.dropout_rate = rate;
        cfg.dropout_seed = 5;
        VariantClassifier c(cfg);
        const std::size_t L = 6, F = 3;
        const auto x0 = features(L, F, 0.4);
        diffbio::test::expect_ad(
            [&](auto x) {
                using T = typename decltype(x)::element_type;
                auto bind = diffbio::test::make_binder<std::remove_cv_t<T>>();
                const auto r = c.apply(bind, x, L);
                std::vector<std::remove_cv_t<T>> out(r.logits.begin(), r.logits.end());
                out.insert(out.end(), r.probabilities.begin(), r.probabilities.end());
                return out;
            },
            x0, {.fd_rel = 1e-5, .fd_abs = 1e-7});
    }
}

TEST_CASE("VariantClassifier: parameter gradients (fused window layer, dropout, softmax)", "[variant][classifier][ad]") {
    auto cfg = small_config();
    cfg.dropout_rate = 0.25;
    cfg.dropout_seed = 3;
    VariantClassifier c(cfg);
    const std::size_t L = 9, F = 3;
    const auto x = features(L, F, 1.1);
    std::vector<std::uint32_t> labels{0, 1, 2, 0, 0, 1, 2, 2, 0};
    diffbio::test::expect_parameter_gradients(c.parameters(), [&](auto& bind) {
        using T = decltype(scalar_of(bind));
        const auto r = c.apply(bind, std::span<const double>(x), L);
        // cross entropy plus a term on the probabilities (exercises the softmax node)
        T loss = diffbio::nn::cross_entropy_with_labels(std::span<const T>(r.logits), std::span<const std::uint32_t>(labels), L, 3);
        for (std::size_t k = 0; k < r.probabilities.size(); ++k) loss = loss + 0.1 * r.probabilities[k] * r.probabilities[k];
        return loss;
    });
}

TEST_CASE("VariantClassifier: CpuParallel equals Cpu", "[variant][classifier]") {
    VariantClassifier c(VariantClassifierConfig{.features = 4, .window = 7, .hidden_dim = 16, .dropout_rate = 0.0});
    const std::size_t L = 3000;
    const auto x = features(L, 4);
    std::vector<double> g1, g2;
    std::vector<double> v1, v2;
    for (int mode = 0; mode < 2; ++mode) {
        for (auto* p : c.parameters()) p->zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto xv = tape.variables(x);
        const auto r = mode == 0 ? c.apply(bind, std::span<const ad::Var>(xv), L)
                                 : c.apply(bind, std::span<const ad::Var>(xv), L, diffbio::exec::CpuParallel{2});
        ad::Var s = 0.0;
        for (std::size_t k = 0; k < r.logits.size(); k += 3) s = s + r.logits[k] * double(k % 7);
        tape.backward(s);
        std::vector<double> gx(x.size());
        tape.adjoints(xv, gx);
        (mode == 0 ? g1 : g2) = gx;
        (mode == 0 ? v1 : v2).assign(1, tape.value(s));
    }
    CHECK(v1[0] == Approx(v2[0]).epsilon(1e-12));
    for (std::size_t k = 0; k < g1.size(); ++k) CHECK(g1[k] == Approx(g2[k]).epsilon(1e-10).margin(1e-12));
}

TEST_CASE("VariantClassifier: bad input", "[variant][classifier]") {
    CHECK_THROWS_AS(VariantClassifier(VariantClassifierConfig{.window = 4}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(VariantClassifier(VariantClassifierConfig{.num_layers = 0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(VariantClassifier(VariantClassifierConfig{.dropout_rate = 1.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(VariantClassifier(VariantClassifierConfig{.num_classes = 1}), diffbio::InvalidArgument);
    VariantClassifier c(small_config());
    ad::Binder<double> bind;
    std::vector<double> x(10);
    CHECK_THROWS_AS(c.apply(bind, std::span<const double>(x), 4), diffbio::ShapeError);
    CHECK_THROWS_AS(c.apply(bind, std::span<const double>(x), 0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(c.classify(bind, std::span<const double>(x), 1), diffbio::ShapeError);
    std::vector<double> feats(4 * 3, 0.5); // L = 4 positions × F = 3
    feats[10] = std::nan("");
    CHECK_THROWS_WITH(c.apply(bind, std::span<const double>(feats), 4), Catch::Contains("VariantClassifier: features entry 10 is not finite"));
    std::vector<double> windows(2 * 15, 0.5); // rows × W·F
    windows[29] = -std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(c.classify(bind, std::span<const double>(windows), 2), Catch::Contains("windows entry 29 is not finite (-inf)"));
}
