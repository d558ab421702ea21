#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/ops/variant/cnv.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using diffbio::ops::CNVSegmentation;
using diffbio::ops::CNVSegmentationConfig;
namespace ad = diffbio::ad;

namespace {

/// Step signal: 0 on [0, 50), +0.585 (gain) on [50, 80), −1 (loss) on [80, 120), 0 on [120, 150),
/// plus deterministic noise (sd ≈ 0.15).
std::vector<double> step_signal() {
    std::vector<double> y;
    std::uint64_t s = 12345;
    auto noise = [&] {
        double u = 0.0;
        for (int k = 0; k < 6; ++k) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            u += static_cast<double>(s >> 11) * 0x1.0p-53;
        }
        return (u - 3.0) * 0.15 * std::sqrt(2.0); // sum of 6 uniforms: variance 1/2
    };
    for (int i = 0; i < 150; ++i) {
        const double level = i < 50 ? 0.0 : i < 80 ? 0.585 : i < 120 ? -1.0 : 0.0;
        y.push_back(level + noise());
    }
    return y;
}

template <class T>
T scalar_of(ad::Binder<T>&);

/// The values of a Var result, with the fields check() reads.
struct CNVSegmentationResultValues {
    explicit CNVSegmentationResultValues(const diffbio::ops::CNVSegmentationResult<ad::Var>& r) : log_partition(r.log_partition.value()) {
        for (const auto& v : r.posteriors) posteriors.push_back(v.value());
        for (const auto& v : r.boundaries) boundaries.push_back(v.value());
        for (const auto& v : r.smoothed) smoothed.push_back(v.value());
    }
    double log_partition;
    std::vector<double> posteriors, boundaries, smoothed;
};

} // namespace

TEST_CASE("CNVSegmentation: Viterbi finds the steps of a synthetic signal", "[variant][cnv]") {
    CNVSegmentation cnv;
    const auto y = step_signal();
    const auto path = cnv.viterbi(std::span<const double>(y));
    const auto segs = CNVSegmentation::segments(std::span<const std::size_t>(path), std::span<const double>(y));
    REQUIRE(segs.size() == 4);
    const std::size_t want_start[] = {0, 50, 80, 120}, want_state[] = {1, 2, 0, 1};
    for (std::size_t k = 0; k < 4; ++k) {
        INFO("segment " << k);
        CHECK(segs[k].start == want_start[k]);
        CHECK(segs[k].state == want_state[k]);
    }
    CHECK(segs[1].mean == Approx(0.585).margin(0.1));
    CHECK(segs[2].mean == Approx(-1.0).margin(0.1));
}

TEST_CASE("CNVSegmentation: posteriors are distributions; tau -> 0 recovers the Viterbi path", "[variant][cnv]") {
    CNVSegmentation cnv;
    const auto y = step_signal();
    ad::Binder<double> bind;
    const auto r = cnv.apply(bind, std::span<const double>(y));
    const std::size_t n = y.size(), K = 3;
    REQUIRE(r.posteriors.size() == n * K);
    REQUIRE(r.boundaries.size() == n);
    REQUIRE(r.smoothed.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
        double s = 0.0;
        for (std::size_t k = 0; k < K; ++k) s += r.posteriors[i * K + k];
        CHECK(s == Approx(1.0).margin(1e-10));
        CHECK(r.boundaries[i] >= -1e-12);
        CHECK(r.boundaries[i] <= 1.0 + 1e-12);
    }
    // the boundary probabilities peak at the true change points
    for (std::size_t b : {50, 80, 120}) CHECK(r.boundaries[b] > 0.5);
    double elsewhere = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        if (i != 50 && i != 80 && i != 120) elsewhere = std::max(elsewhere, r.boundaries[i]);
    }
    CHECK(elsewhere < 0.5);
    // tau -> 0: one-hot Viterbi path, F -> the Viterbi score
    const auto path = cnv.viterbi(std::span<const double>(y));
    const auto h = cnv.apply(bind, std::span<const double>(y), 1e-3);
    double viterbi_score = 0.0;
    const double v = 0.2 * 0.2;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < K; ++k) CHECK(h.posteriors[i * K + k] == Approx(path[i] == k ? 1.0 : 0.0).margin(1e-6));
        const double d = y[i] - cnv.state_means().values()[path[i]];
        viterbi_score += -d * d / (2 * v) - (i > 0 && path[i] != path[i - 1] ? 10.0 : 0.0);
    }
    CHECK(h.log_partition == Approx(viterbi_score).epsilon(1e-6));
    // F decreases toward the Viterbi score as tau falls (log-sum-exp ≥ max)
    CHECK(r.log_partition >= h.log_partition);
}

TEST_CASE("CNVSegmentation: tau from 2.3e-308 to 1e20 in double, float and the fused node: finite, rows of 1, the Viterbi limit",
          "[variant][cnv][numerics]") {
    CNVSegmentation cnv;
    const auto y = step_signal();
    const std::vector<float> yf(y.begin(), y.end());
    const std::size_t n = y.size(), K = 3;
    const auto path = cnv.viterbi(std::span<const double>(y));
    double viterbi_score = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = y[i] - cnv.state_means().values()[path[i]];
        viterbi_score += -d * d / (2 * 0.2 * 0.2) - (i > 0 && path[i] != path[i - 1] ? 10.0 : 0.0);
    }
    // Checks one result: finite everywhere, posteriors rows of 1, boundaries in [0, 1]; below 1e-6
    // the one-hot Viterbi path, boundaries 1 exactly at its switches and 0 elsewhere, F its score.
    const auto check = [&](const auto& r, double tau, double tol) {
        INFO("tau " << tau);
        REQUIRE(std::isfinite(static_cast<double>(r.log_partition)));
        for (std::size_t i = 0; i < n; ++i) {
            double row = 0.0;
            for (std::size_t k = 0; k < K; ++k) {
                const double g = r.posteriors[i * K + k];
                REQUIRE(std::isfinite(g));
                row += g;
                if (tau <= 1e-6) CHECK(g == Approx(path[i] == k ? 1.0 : 0.0).margin(tol));
            }
            CHECK(row == Approx(1.0).margin(tol));
            const double b = r.boundaries[i];
            REQUIRE(std::isfinite(b));
            CHECK(b >= 0.0);
            CHECK(b <= 1.0 + tol);
            REQUIRE(std::isfinite(static_cast<double>(r.smoothed[i])));
            if (tau <= 1e-6) CHECK(b == Approx(i > 0 && path[i] != path[i - 1] ? 1.0 : 0.0).margin(tol));
        }
        if (tau <= 1e-6) CHECK(static_cast<double>(r.log_partition) == Approx(viterbi_score).epsilon(tol));
    };
    for (const double tau : {2.3e-308, 1e-300, 1e-50, 1e-20, 1e-12, 1e-8, 1e-6, 1.0, 1e3, 1e20}) {
        ad::Binder<double> bind;
        check(cnv.apply(bind, std::span<const double>(y), tau), tau, 1e-9);
        ad::Binder<float> fbind;
        if (tau <= 1e3) check(cnv.apply(fbind, std::span<const float>(yf), tau), tau, 2e-5);
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> vbind(tape);
        const auto rv = cnv.apply(vbind, std::span<const double>(y), tau);
        CNVSegmentationResultValues vals{rv};
        check(vals, tau, 1e-9);
        tape.backward(rv.log_partition);
        for (auto* p : cnv.parameters()) {
            for (const double g : p->grad()) CHECK(std::isfinite(g));
            p->zero_grad();
        }
    }
}

TEST_CASE("CNVSegmentation: a log partition past float's range is refused, not NaN; double computes it",
          "[variant][cnv][numerics][errors]") {
    // τ·log Z ≈ τ·n·log K = 1e38 · 10 · log 3: beyond float's 3.4e38 (it was NaN), not double's.
    CNVSegmentation cnv;
    const std::vector<double> y{0, 0.01, -0.02, 0.5, 0.52, 0.49, 0, 0.0, -0.5, -0.51};
    const std::vector<float> yf(y.begin(), y.end());
    ad::Binder<double> bind;
    const auto r = cnv.apply(bind, std::span<const double>(y), 1e38);
    CHECK(r.log_partition == Approx(1e38 * 10 * std::log(3.0)).epsilon(1e-6));
    for (const double g : r.posteriors) CHECK(g == Approx(1.0 / 3.0).epsilon(1e-9));
    ad::Binder<float> fbind;
    CHECK_THROWS_WITH(cnv.apply(fbind, std::span<const float>(yf), 1e38),
                      Catch::Matchers::Contains("CNVSegmentation: a soft maximum of the recursion is not finite") &&
                          Catch::Matchers::Contains("range of float") && Catch::Matchers::Contains("compute in double"));
    // the data can overflow it too: emissions −(y − μ)²/2σ² of y = 1e20
    const std::vector<float> big{0.0f, 1e20f, 0.5f};
    CHECK_THROWS_WITH(cnv.apply(fbind, std::span<const float>(big)), Catch::Matchers::Contains("signal's scale"));
    const std::vector<double> bigd(big.begin(), big.end());
    CHECK(std::isfinite(cnv.apply(bind, std::span<const double>(bigd)).log_partition));
}

TEST_CASE("CNVSegmentation: exact posteriors on a tiny chain by enumeration", "[variant][cnv]") {
    CNVSegmentation cnv(CNVSegmentationConfig{.state_means = {0.0, 1.0}, .noise_sd = 0.5, .switch_penalty = 1.5});
    const std::vector<double> y{0.1, 0.9, 0.4, 1.2};
    ad::Binder<double> bind;
    const auto r = cnv.apply(bind, std::span<const double>(y), 0.7);
    // enumerate all 2^4 paths
    double Z = 0.0;
    std::vector<double> post(8, 0.0), bnd(4, 0.0);
    for (unsigned z = 0; z < 16; ++z) {
        double s = 0.0;
        for (unsigned i = 0; i < 4; ++i) {
            const unsigned k = (z >> i) & 1u;
            const double d = y[i] - k;
            s += -d * d / (2 * 0.25);
            if (i > 0 && k != ((z >> (i - 1)) & 1u)) s -= 1.5;
        }
        const double w = std::exp(s / 0.7);
        Z += w;
        for (unsigned i = 0; i < 4; ++i) {
            post[2 * i + ((z >> i) & 1u)] += w;
            if (i > 0 && ((z >> i) & 1u) != ((z >> (i - 1)) & 1u)) bnd[i] += w;
        }
    }
    CHECK(r.log_partition == Approx(0.7 * std::log(Z)).epsilon(1e-12));
    for (std::size_t k = 0; k < 8; ++k) CHECK(r.posteriors[k] == Approx(post[k] / Z).epsilon(1e-12));
    for (std::size_t i = 0; i < 4; ++i) CHECK(r.boundaries[i] == Approx(bnd[i] / Z).epsilon(1e-12).margin(1e-15));
    for (std::size_t i = 0; i < 4; ++i) CHECK(r.smoothed[i] == Approx(post[2 * i + 1] / Z).epsilon(1e-12));
}

TEST_CASE("CNVSegmentation: gradients in every AD mode", "[variant][cnv][ad]") {
    CNVSegmentation cnv(CNVSegmentationConfig{.state_means = {-0.8, 0.1, 0.7}, .noise_sd = 0.4, .switch_penalty = 2.0});
    const std::vector<double> y0{0.05, -0.7, -0.9, 0.6, 0.75, 0.2, 0.1};
    diffbio::test::expect_ad(
        [&](auto y) {
            using T = std::remove_cv_t<typename decltype(y)::element_type>;
            auto bind = diffbio::test::make_binder<T>();
            const auto r = cnv.apply(bind, y, 0.8);
            std::vector<T> out{r.log_partition};
            out.insert(out.end(), r.posteriors.begin(), r.posteriors.end());
            out.insert(out.end(), r.boundaries.begin() + 1, r.boundaries.end());
            out.insert(out.end(), r.smoothed.begin(), r.smoothed.end());
            return out;
        },
        y0, {.fd_rel = 1e-5, .fd_abs = 1e-7, .float_rel = 1e-3});
    diffbio::test::expect_parameter_gradients(cnv.parameters(), [&](auto& bind) {
        using T = decltype(scalar_of(bind));
        const auto r = cnv.apply(bind, std::span<const double>(y0), 0.8);
        T loss = r.log_partition;
        for (std::size_t i = 0; i < y0.size(); ++i) loss = loss + (r.smoothed[i] - y0[i]) * (r.smoothed[i] - y0[i]) + 0.3 * r.boundaries[i];
        return loss;
    });
}

TEST_CASE("CNVSegmentation: gradient descent moves wrong state means to the data's levels", "[variant][cnv]") {
    CNVSegmentation cnv(CNVSegmentationConfig{.state_means = {-0.6, 0.2, 0.9}, .noise_sd = 0.2});
    const auto y = step_signal();
    diffbio::nn::Adam adam({&cnv.state_means()}, {.learning_rate = 0.02});
    for (int step = 0; step < 150; ++step) {
        adam.zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = cnv.apply(bind, std::span<const double>(y));
        tape.backward(-r.log_partition); // maximise the (smoothed) segmentation score
        bind.accumulate_grad();
        adam.step();
    }
    const auto mu = cnv.state_means().values();
    CHECK(mu[0] == Approx(-1.0).margin(0.06));
    CHECK(mu[1] == Approx(0.0).margin(0.06));
    CHECK(mu[2] == Approx(0.585).margin(0.06));
}

namespace {

/// Values of every output and the gradients of a weighted sum of them (all outputs used) with
/// respect to μ, log σ, λ and y, on the tape: through apply (the fused node) or apply_generic.
struct TapeRun {
    std::vector<double> values, grad_params, grad_y;
};

TapeRun tape_run(CNVSegmentation& cnv, const std::vector<double>& y, double tau, bool fused) {
    for (auto* p : cnv.parameters()) p->zero_grad();
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> bind(tape);
    const auto yv = tape.variables(y);
    const auto r = fused ? cnv.apply(bind, yv, tau) : cnv.apply_generic(bind, yv, tau);
    TapeRun out;
    std::vector<ad::Var> all{r.log_partition};
    all.insert(all.end(), r.posteriors.begin(), r.posteriors.end());
    all.insert(all.end(), r.boundaries.begin(), r.boundaries.end());
    all.insert(all.end(), r.smoothed.begin(), r.smoothed.end());
    ad::Var loss = 0.0;
    for (std::size_t i = 0; i < all.size(); ++i) {
        out.values.push_back(tape.value(all[i]));
        loss = loss + std::sin(0.37 * static_cast<double>(i) + 0.1) * all[i]; // fixed, mixed-sign weights
    }
    tape.backward(loss);
    bind.accumulate_grad();
    for (auto* p : cnv.parameters()) out.grad_params.insert(out.grad_params.end(), p->grad().begin(), p->grad().end());
    out.grad_y.resize(y.size());
    tape.adjoints(yv, out.grad_y);
    return out;
}

/// The same weighted sum in double (generic recursion), for finite differences.
double plain_loss(const CNVSegmentation& cnv, const std::vector<double>& y, double tau) {
    ad::Binder<double> bind;
    const auto r = cnv.apply(bind, std::span<const double>(y), tau);
    std::vector<double> all{r.log_partition};
    all.insert(all.end(), r.posteriors.begin(), r.posteriors.end());
    all.insert(all.end(), r.boundaries.begin(), r.boundaries.end());
    all.insert(all.end(), r.smoothed.begin(), r.smoothed.end());
    double loss = 0.0;
    for (std::size_t i = 0; i < all.size(); ++i) loss += std::sin(0.37 * static_cast<double>(i) + 0.1) * all[i];
    return loss;
}

std::vector<double> wiggly_signal(std::size_t n) {
    std::vector<double> y(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double level = (i / 15) % 4 == 1 ? 0.6 : (i / 15) % 4 == 3 ? -0.8 : 0.0;
        y[i] = level + 0.25 * std::sin(1.7 * static_cast<double>(i)) + 0.1 * std::cos(0.31 * static_cast<double>(i * i));
    }
    return y;
}

/// value_abs: the absolute margin on values; the generic boundaries 1 − P(stay) carry a rounding
/// error of about ulp(|scores|/τ) that the fused node's sum over switches does not.
void compare_fused_generic(CNVSegmentation& cnv, const std::vector<double>& y, double tau, double rel,
                           double value_abs = 1e-12) {
    const TapeRun f = tape_run(cnv, y, tau, true), g = tape_run(cnv, y, tau, false);
    REQUIRE(f.values.size() == g.values.size());
    for (std::size_t i = 0; i < f.values.size(); ++i) {
        INFO("output " << i << ": fused " << f.values[i] << ", generic " << g.values[i]);
        CHECK(f.values[i] == Approx(g.values[i]).epsilon(1e-10).margin(value_abs));
    }
    REQUIRE(f.grad_params.size() == g.grad_params.size());
    for (std::size_t i = 0; i < f.grad_params.size(); ++i) {
        INFO("parameter gradient " << i << ": fused " << f.grad_params[i] << ", generic " << g.grad_params[i]);
        CHECK(std::isfinite(f.grad_params[i]));
        CHECK(f.grad_params[i] == Approx(g.grad_params[i]).epsilon(rel).margin(1e-9));
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
        INFO("d/dy[" << i << "]: fused " << f.grad_y[i] << ", generic " << g.grad_y[i]);
        CHECK(std::isfinite(f.grad_y[i]));
        CHECK(f.grad_y[i] == Approx(g.grad_y[i]).epsilon(rel).margin(1e-9));
    }
}

} // namespace

TEST_CASE("CNVSegmentation: the fused Var node equals the generic recursion and finite differences",
          "[variant][cnv][ad]") {
    CNVSegmentation cnv(CNVSegmentationConfig{.state_means = {-0.9, -0.2, 0.3, 0.7}, .noise_sd = 0.3, .switch_penalty = 2.5});
    const auto y = wiggly_signal(90);
    const double tau = 0.7;
    compare_fused_generic(cnv, y, tau, 1e-8);
    // central differences of the double loss, every parameter entry and some y entries
    const TapeRun f = tape_run(cnv, y, tau, true);
    const double h = 1e-6;
    std::size_t j = 0;
    for (auto* p : cnv.parameters()) {
        for (std::size_t k = 0; k < p->size(); ++k, ++j) {
            const double v0 = p->values()[k];
            p->values()[k] = v0 + h;
            const double up = plain_loss(cnv, y, tau);
            p->values()[k] = v0 - h;
            const double down = plain_loss(cnv, y, tau);
            p->values()[k] = v0;
            INFO(p->name() << "[" << k << "]");
            CHECK(f.grad_params[j] == Approx((up - down) / (2 * h)).epsilon(1e-5).margin(1e-6));
        }
    }
    for (std::size_t i : {0, 14, 15, 16, 44, 45, 89}) {
        auto yp = y, ym = y;
        yp[i] += h;
        ym[i] -= h;
        INFO("y[" << i << "]");
        CHECK(f.grad_y[i] == Approx((plain_loss(cnv, yp, tau) - plain_loss(cnv, ym, tau)) / (2 * h)).epsilon(1e-5).margin(1e-6));
    }
}

TEST_CASE("CNVSegmentation: fused node at the edges (tau -> 0, negative lambda, n = 1, plain parameters)",
          "[variant][cnv][ad]") {
    const auto y = wiggly_signal(40);
    SECTION("tau = 1e-3 with lambda = 10: switch weights underflow, values and gradients stay exact") {
        CNVSegmentation cnv;
        compare_fused_generic(cnv, y, 1e-3, 1e-7, 1e-10); // generic boundaries: 1 − stay ≈ ±2^-37 here
        // the fused boundaries are exactly 0 where the path cannot switch (e^{−λ/τ} = e^{−10^4})
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = cnv.apply(bind, std::span<const double>(y), 1e-3);
        const auto path = cnv.viterbi(std::span<const double>(y));
        for (std::size_t i = 1; i < y.size(); ++i) {
            CHECK(tape.value(r.boundaries[i]) == Approx(path[i] != path[i - 1] ? 1.0 : 0.0).margin(1e-12));
        }
    }
    SECTION("negative switch penalty (a step may push lambda below 0)") {
        CNVSegmentation cnv(CNVSegmentationConfig{.noise_sd = 0.5});
        cnv.switch_penalty().values()[0] = -0.8;
        compare_fused_generic(cnv, y, 1.3, 1e-8);
    }
    SECTION("a single probe") {
        CNVSegmentation cnv;
        compare_fused_generic(cnv, std::vector<double>{0.4}, 0.9, 1e-8);
    }
    SECTION("plain parameters (Binder<double>), y on the tape") {
        CNVSegmentation cnv(CNVSegmentationConfig{.noise_sd = 0.35, .switch_penalty = 1.5});
        std::vector<double> grad[2];
        for (int fused = 0; fused < 2; ++fused) {
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<double> bind;
            const auto yv = tape.variables(y);
            const auto r = fused ? cnv.apply(bind, yv, 0.8) : cnv.apply_generic(bind, yv, 0.8);
            ad::Var loss = r.log_partition;
            for (std::size_t i = 0; i < y.size(); ++i) loss = loss + 0.5 * r.smoothed[i] - r.boundaries[i] + r.posteriors[3 * i];
            tape.backward(loss);
            grad[fused].resize(y.size());
            tape.adjoints(yv, grad[fused]);
        }
        for (std::size_t i = 0; i < y.size(); ++i) CHECK(grad[1][i] == Approx(grad[0][i]).epsilon(1e-8).margin(1e-10));
    }
}

TEST_CASE("CNVSegmentation: the fused node is one tape record", "[variant][cnv][ad]") {
    CNVSegmentation cnv;
    const auto y = wiggly_signal(200);
    std::size_t vars[2];
    for (int fused = 0; fused < 2; ++fused) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        (void)(fused ? cnv.apply(bind, std::span<const double>(y)) : cnv.apply_generic(bind, std::span<const double>(y)));
        vars[fused] = tape.num_vars();
        if (fused) CHECK(tape.num_nodes() == 1);
    }
    // parameters (3 + 1 + 1) + outputs (1 + 3n + n + n) for the node; the generic recursion
    // records O(n·K²) intermediate variables
    CHECK(vars[1] == 5 + 1 + 5 * y.size());
    CHECK(vars[0] > 10 * vars[1]);
}

TEST_CASE("CNVSegmentation: bad input", "[variant][cnv]") {
    CHECK_THROWS_AS(CNVSegmentation(CNVSegmentationConfig{.state_means = {0.0}}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(CNVSegmentation(CNVSegmentationConfig{.noise_sd = 0.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(CNVSegmentation(CNVSegmentationConfig{.switch_penalty = -1.0}), diffbio::InvalidArgument);
    CNVSegmentation cnv;
    ad::Binder<double> bind;
    std::vector<double> empty, bad{0.0, std::nan("")};
    CHECK_THROWS_AS(cnv.apply(bind, std::span<const double>(empty)), diffbio::InvalidArgument);
    CHECK_THROWS_AS(cnv.apply(bind, std::span<const double>(bad)), diffbio::InvalidArgument);
    CHECK_THROWS_AS(cnv.viterbi(std::span<const double>(bad)), diffbio::InvalidArgument);
}
