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
