// The intra-pair wavefront forward of the smooth Smith-Waterman (sw_wavefront.hpp) against the
// scalar per-pair kernel (sw_kernel.hpp): every linear/affine model, float and double, pairs of
// many shapes, extreme temperatures, and the public API's single-pair result whichever kernel runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>
#include <diffbio/ops/alignment/sw_kernel.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>
#include <diffbio/ops/alignment/sw_wavefront.hpp>

#include "sw_test_pairs.hpp"

using namespace diffbio::ops::detail;
using namespace diffbio::test;

namespace {

/// Every linear and affine model (the wavefront has no compat kernel).
std::vector<SwModel> wave_models() { return sw_models(false); }

/// A target related to the query (long local alignments): 75% copied, the rest random, with an
/// insertion and a deletion, cut or padded to `len`.
std::vector<std::uint8_t> related(std::mt19937& rng, const std::vector<std::uint8_t>& q, std::size_t len, std::size_t A) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::uint8_t> t = random_codes(rng, len, A);
    for (std::size_t j = 0; j < len; ++j) {
        const std::size_t src = j < len / 3 ? j : (j < 2 * len / 3 ? j + 2 : j - 1);
        if (src < q.size() && u(rng) < 0.75) t[j] = q[src];
    }
    return t;
}

/// The scalar reference in F and in double (the exact value the soft results approximate).
template <class F>
std::pair<F, double> reference(const SwModel& md, const SwScalars<F>& p, const std::vector<F>& S, std::size_t A,
                               const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& t) {
    std::vector<F> scratch;
    std::vector<double> scratch_d;
    const SwCodeCell<F> cell{S.data(), A, q.data(), t.data()};
    const F f = sw_forward<F>(md, p, q.size(), t.size(), cell, static_cast<F*>(nullptr), scratch);
    const std::vector<double> Sd(S.begin(), S.end());
    const SwCodeCell<double> celld{Sd.data(), A, q.data(), t.data()};
    const SwScalars<double> pd{static_cast<double>(p.open), static_cast<double>(p.extend), static_cast<double>(p.tau)};
    const double d = sw_forward<double>(md, pd, q.size(), t.size(), celld, static_cast<double*>(nullptr), scratch_d);
    return {f, d};
}

/// Soft tolerance: the wavefront and the scalar kernel in F each differ from the double value by
/// rounding in F accumulated along the alignment: one rounding of a value ≤ max(1, |score|, τ) per
/// step of the path, at most m + n steps. Both must stay within (m + n)·ε·max(1, |score|, τ) of it
/// (measured: ≤ 0.05 of that bound in float, 1000 × 1000, τ from 1e-4 to 1e4).
template <class F>
double soft_tolerance(std::size_t m, std::size_t n, double score, double tau) {
    const double eps = std::numeric_limits<F>::epsilon();
    return static_cast<double>(m + n) * eps * std::max({1.0, std::fabs(score), tau});
}

struct Shape {
    std::size_t m, n;
};

template <class F>
void check_shapes(const std::vector<Shape>& shapes, std::size_t A, double tau, F open, F extend, std::uint32_t seed) {
    std::mt19937 rng(seed);
    SwWaveWork<F> work;
    for (const SwModel& md : wave_models()) {
        const std::vector<F> S = random_matrix<F>(rng, A, md.hard);
        const SwScalars<F> p{open, extend, static_cast<F>(tau)};
        for (std::size_t r = 0; r < shapes.size(); ++r) {
            const Shape sh = shapes[r];
            const std::vector<std::uint8_t> q = random_codes(rng, sh.m, A);
            const std::vector<std::uint8_t> t = r % 2 == 0 ? related(rng, q, sh.n, A) : random_codes(rng, sh.n, A);
            const F got = sw_wavefront_score_codes<F>(md, p, S.data(), A, q.data(), q.size(), t.data(), t.size(), work);
            const auto [want, exact] = reference<F>(md, p, S, A, q, t);
            INFO(model_name(md) << ", " << sh.m << " x " << sh.n << ", A " << A << ", tau " << tau << ": wavefront "
                                << got << ", scalar " << want << ", double " << exact);
            REQUIRE(std::isfinite(got));
            if (md.hard) {
                CHECK(got == want);
            } else {
                const double tol = soft_tolerance<F>(sh.m, sh.n, exact, tau);
                CHECK(std::fabs(static_cast<double>(got) - exact) <= tol);
                CHECK(std::fabs(static_cast<double>(want) - exact) <= tol); // the tolerance is not loose for the reference
            }
        }
    }
}

std::vector<Shape> small_shapes() {
    std::vector<Shape> s{{1, 1}, {1, 2}, {2, 1}, {1, 37}, {53, 1}, {2, 2}, {3, 70}, {70, 3}, {300, 7}, {7, 300},
                         {31, 33}, {64, 64}, {65, 17}, {17, 65}, {100, 131}};
    std::mt19937 rng(3);
    std::uniform_int_distribution<std::size_t> len(1, 90);
    for (int k = 0; k < 8; ++k) s.push_back({len(rng), len(rng)}); // ragged
    return s;
}

/// The public operator in a linear/affine model: gap open 3, extend 1, τ = 0.8, DNA scores 2/−1.
diffbio::ops::SmithWaterman api_operator(const SwModel& md) {
    namespace ops = diffbio::ops;
    ops::SmithWatermanConfig cfg;
    cfg.gaps = md.kind == SwKind::Linear ? ops::GapModel::Linear : ops::GapModel::Affine;
    cfg.mode = md.local ? ops::AlignmentMode::Local : ops::AlignmentMode::Global;
    cfg.hard = md.hard;
    cfg.gap_open = ops::GapOpen{3.0};
    cfg.gap_extend = ops::GapExtend{1.0};
    cfg.temperature = 0.8;
    return ops::SmithWaterman(cfg, ops::SubstitutionMatrix::dna(2.0, -1.0));
}

} // namespace

TEST_CASE("Wavefront equals the scalar kernel (double, every linear/affine model, many shapes)", "[ops][sw_wavefront]") {
    check_shapes<double>(small_shapes(), 4, 1.0, 3.0, 1.0, 1);
    check_shapes<double>(small_shapes(), 5, 0.3, 2.5, 0.5, 2);
}

TEST_CASE("Wavefront equals the scalar kernel (float, every linear/affine model, many shapes)", "[ops][sw_wavefront]") {
    check_shapes<float>(small_shapes(), 4, 1.0, 3.0f, 1.0f, 4);
    check_shapes<float>(small_shapes(), 5, 0.7, 1.0f, 2.0f, 5); // open < extend
}

TEST_CASE("Wavefront with a large alphabet (scores gathered per diagonal) and profiles", "[ops][sw_wavefront]") {
    check_shapes<double>(small_shapes(), 20, 1.0, 4.0, 1.0, 6);
    check_shapes<float>(small_shapes(), 20, 1.0, 4.0f, 1.0f, 7);
    // profiles: one-hot rows give the codes' scores; soft rows the scalar kernel's s_ij = x_i S y_j
    std::mt19937 rng(8);
    const std::size_t A = 4;
    SwWaveWork<double> work;
    for (const SwModel& md : wave_models()) {
        for (Shape sh : {Shape{1, 1}, Shape{40, 3}, Shape{57, 71}}) {
            const std::vector<double> S = random_matrix<double>(rng, A, false), x = random_profile(rng, sh.m, A),
                                      y = random_profile(rng, sh.n, A);
            const SwScalars<double> p{2.5, 0.75, 0.9};
            const double got = sw_wavefront_score_profiles<double, double>(md, p, S.data(), A, x.data(), sh.m, y.data(),
                                                                           sh.n, work);
            std::vector<double> B, scratch;
            sw_times_matrix<double, double>(S.data(), A, y.data(), sh.n, B);
            const SwProfileCell<double, double> cell{x.data(), B.data(), A};
            const double want = sw_forward<double>(md, p, sh.m, sh.n, cell, static_cast<double*>(nullptr), scratch);
            // the batched profile driver: alone (pair by pair, the wavefront when large enough) and
            // forced into the inter-pair lanes
            const std::vector<SwSeqPair<double>> one{{x.data(), sh.m, y.data(), sh.n}};
            double driver = 0.0, lanes = 0.0;
            sw_simd_scores_profiles<double, double>(md, p, S.data(), A, one, &driver, 1);
            sw_simd_scores_profiles<double, double>(md, p, S.data(), A, one, &lanes, 1, 0.0);
            INFO(model_name(md) << ", profiles " << sh.m << " x " << sh.n << ": wavefront " << got << ", driver "
                                << driver << ", lanes " << lanes << ", scalar " << want);
            CHECK(got == Approx(want).epsilon(1e-12).margin(1e-12));
            CHECK(driver == Approx(want).epsilon(1e-12).margin(1e-12));
            CHECK(lanes == Approx(want).epsilon(1e-12).margin(1e-12));
        }
    }
}

TEST_CASE("Wavefront at extreme temperatures stays finite and equal to the scalar kernel", "[ops][sw_wavefront]") {
    const std::vector<Shape> shapes{{1, 1}, {9, 40}, {120, 95}};
    for (double tau : {1e-4, 1e4}) {
        check_shapes<double>(shapes, 4, tau, 3.0, 1.0, 10);
        check_shapes<float>(shapes, 4, tau, 3.0f, 1.0f, 11);
        // |open − extend|/τ beyond the shared-normalisation range: the per-candidate soft maxes
        check_shapes<float>(shapes, 4, tau, 11.0f, 0.5f, 12);
    }
    // the two affine forms on both sides of the float range (|o − e|/τ = 45 and 55)
    check_shapes<float>({{80, 90}}, 4, 0.2, 10.0f, 1.0f, 13);
    check_shapes<float>({{80, 90}}, 4, 0.2, 12.0f, 1.0f, 13);
}

TEST_CASE("Wavefront on one 1000 x 1000 pair equals the scalar kernel", "[ops][sw_wavefront]") {
    check_shapes<float>({{1000, 1000}}, 4, 1.0, 3.0f, 1.0f, 20);
    check_shapes<double>({{1000, 1000}}, 4, 1.0, 3.0, 1.0, 21);
}

TEST_CASE("SmithWaterman::apply gives a single pair's score whichever kernel runs", "[ops][sw_wavefront]") {
    namespace ops = diffbio::ops;
    namespace ad = diffbio::ad;
    std::mt19937 rng(30);
    // the target longer than the query: the score drivers transpose the pair (rows along the longer)
    const std::vector<std::uint8_t> q = random_codes(rng, 400, 4), t = related(rng, q, 430, 4);
    std::vector<std::vector<std::uint8_t>> others;
    for (int k = 0; k < 70; ++k) others.push_back(random_codes(rng, 380 + static_cast<std::size_t>(k), 4));
    for (const SwModel& md : wave_models()) {
        const ops::SmithWaterman sw = api_operator(md);
        // alone: the wavefront; in a full batch: a lane of the inter-pair kernel
        const std::vector<ops::CodePair> single{{q, t}};
        std::vector<ops::CodePair> batch{{q, t}};
        for (const auto& o : others) batch.push_back({o, t});
        ad::Binder<double> bind;
        const double alone = sw.apply(bind, single).score[0];
        const double in_batch = sw.apply(bind, batch).score[0];
        // the scalar kernel, directly
        std::vector<double> scratch;
        const auto S = sw.substitution().values();
        const SwCodeCell<double> cell{S.data(), 4, q.data(), t.data()};
        const double scalar = sw_forward<double>(md, {3.0, 1.0, 0.8}, q.size(), t.size(), cell,
                                                 static_cast<double*>(nullptr), scratch);
        ad::Binder<float> bindf;
        const float alone_f = sw.apply(bindf, single).score[0];
        // the tape's forward value (the same driver in double)
        double var_value = 0.0;
        {
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> bv(tape);
            var_value = tape.value(sw.apply(bv, single).score[0]);
        }
        INFO(model_name(md) << ": alone " << alone << ", in a batch " << in_batch << ", scalar " << scalar
                            << ", float " << alone_f << ", Var " << var_value);
        CHECK(var_value == alone);
        if (md.hard) {
            CHECK(alone == scalar);
            CHECK(in_batch == scalar);
            CHECK(static_cast<double>(alone_f) == scalar); // integer scores: exact in float too
        } else {
            CHECK(std::fabs(alone - scalar) <= 1e-12 * std::max(1.0, std::fabs(scalar)));
            CHECK(std::fabs(in_batch - scalar) <= 1e-12 * std::max(1.0, std::fabs(scalar)));
            CHECK(std::fabs(alone_f - scalar) <= soft_tolerance<float>(q.size(), t.size(), scalar, 0.8));
        }
    }
}

TEST_CASE("Batched score driver: pair by pair (wavefront) equals the inter-pair lanes and the scalar kernel",
          "[ops][sw_wavefront]") {
    // Ten 260 x 250 pairs (≥ 64k cells each) fill less than half of a lane group, so the driver runs
    // them one by one through the wavefront; min_lanes = 0 forces the inter-pair kernel instead.
    std::mt19937 rng(40);
    const std::size_t A = 4;
    CodeBatch b;
    for (int k = 0; k < 10; ++k) {
        b.q.push_back(random_codes(rng, 260, A));
        b.t.push_back(k % 2 == 0 ? related(rng, b.q.back(), 250, A) : random_codes(rng, 250, A));
    }
    const std::vector<SwSeqPair<std::uint8_t>> pairs = b.pairs();
    for (const SwModel& md : wave_models()) {
        const std::vector<float> S = random_matrix<float>(rng, A, md.hard);
        // τ = 0.8: the shared-normalisation affine form; τ = 0.1 (|o − e|/τ = 60): the per-candidate one
        for (float tau : {0.8f, 0.1f}) {
            const SwScalars<float> p{7.0f, 1.0f, tau};
            std::vector<float> wave(pairs.size()), lanes(pairs.size());
            sw_simd_scores_codes<float>(md, p, S.data(), A, pairs, wave.data(), 1);
            sw_simd_scores_codes<float>(md, p, S.data(), A, pairs, lanes.data(), 1, 0.0);
            for (std::size_t k = 0; k < pairs.size(); ++k) {
                const auto [want, exact] = reference<float>(md, p, S, A, b.q[k], b.t[k]);
                INFO(model_name(md) << ", tau " << tau << ", pair " << k << ": pair by pair " << wave[k]
                                    << ", lanes " << lanes[k] << ", scalar " << want << ", double " << exact);
                if (md.hard) {
                    CHECK(wave[k] == want);
                    CHECK(lanes[k] == want);
                } else {
                    const double tol = soft_tolerance<float>(260, 250, exact, tau);
                    CHECK(std::fabs(static_cast<double>(wave[k]) - exact) <= tol);
                    CHECK(std::fabs(static_cast<double>(lanes[k]) - exact) <= tol);
                }
            }
        }
    }
}

namespace {

/// fbar·∂F/∂(S, open, extend, τ) of one pair by the scalar double kernels (the reference).
SwBatchGrads scalar_pair_grads(const SwModel& md, const SwScalars<double>& p, const std::vector<double>& S,
                               std::size_t A, const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& t,
                               double fbar, double& score) {
    SwBatchGrads out;
    out.Sbar.assign(A * A, 0.0);
    score = scalar_pair_grads_add(md, p, S, A, {q.data(), q.size(), t.data(), t.size()}, fbar, out);
    return out;
}

/// The inter-pair kernel's gradients for the same pair in F: 32 copies (a full lane group) with
/// weights fbar/32 (exact scaling).
template <class F>
SwBatchGrads lanes_grads(const SwModel& md, const SwScalars<F>& p, const std::vector<F>& S, std::size_t A,
                         const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& t, double fbar) {
    const std::vector<SwSeqPair<std::uint8_t>> pairs(32, SwSeqPair<std::uint8_t>{q.data(), q.size(), t.data(), t.size()});
    const std::vector<double> w(32, fbar / 32.0);
    std::vector<F> scores(32);
    SwBatchGrads res;
    sw_simd_value_and_grad_codes<F, double>(md, p, S.data(), A, pairs, w.data(), scores.data(), res, 1);
    return res;
}

/// The wavefront's score and gradients against the scalar kernels: hard (integer S and fbar)
/// exactly; soft within tol·max(1, largest |gradient|), tol = max(rel, ε·max(1, |F|)/τ): rounding a
/// value v in F moves the soft max weights by about ε·|v|/τ relative (float at τ = 1e-4 resolves
/// ∂F/∂τ to a few digits only). Float also against the inter-pair float kernel (same tolerance).
template <class F>
void check_grads(const std::vector<Shape>& shapes, std::size_t A, double tau, double open, double extend, double rel,
                 std::uint32_t seed) {
    std::mt19937 rng(seed);
    SwWaveWork<F> work;
    std::uniform_real_distribution<double> u(-1.0, 2.0);
    for (const SwModel& md : wave_models()) {
        const std::vector<double> S = random_matrix<double>(rng, A, md.hard);
        const std::vector<F> Sf(S.begin(), S.end());
        for (std::size_t r = 0; r < shapes.size(); ++r) {
            const Shape sh = shapes[r];
            const std::vector<std::uint8_t> q = random_codes(rng, sh.m, A);
            const std::vector<std::uint8_t> t = r % 2 == 0 ? related(rng, q, sh.n, A) : random_codes(rng, sh.n, A);
            const double fbar = md.hard ? std::round(u(rng)) + 3.0 : u(rng);
            double want_score = 0.0;
            const SwBatchGrads want = scalar_pair_grads(md, {open, extend, tau}, S, A, q, t, fbar, want_score);
            std::vector<double> Sbar(A * A, 0.0);
            SwGrads g;
            const SwScalars<F> pf{static_cast<F>(open), static_cast<F>(extend), static_cast<F>(tau)};
            const F got_score = sw_wavefront_value_and_grad_codes<F>(md, pf, Sf.data(), A, q.data(), q.size(), t.data(),
                                                                     t.size(), static_cast<F>(fbar), Sbar.data(), g, work);
            double scale = 1.0;
            for (double v : want.Sbar) scale = std::max(scale, std::fabs(v));
            for (double v : {want.g.open, want.g.extend, want.g.tau}) scale = std::max(scale, std::fabs(v));
            INFO(model_name(md) << ", " << sh.m << " x " << sh.n << ", tau " << tau << ", fbar " << fbar << ": open "
                                << g.open << " vs " << want.g.open << ", extend " << g.extend << " vs "
                                << want.g.extend << ", tau " << g.tau << " vs " << want.g.tau);
            REQUIRE(std::isfinite(g.open));
            REQUIRE(std::isfinite(g.extend));
            REQUIRE(std::isfinite(g.tau));
            if (md.hard) {
                CHECK(static_cast<double>(got_score) == want_score);
                for (std::size_t k = 0; k < A * A; ++k) CHECK(Sbar[k] == want.Sbar[k]);
                CHECK(g.open == want.g.open);
                CHECK(g.extend == want.g.extend);
                CHECK(g.tau == 0.0);
            } else {
                CHECK(std::fabs(static_cast<double>(got_score) - want_score) <=
                      soft_tolerance<F>(sh.m, sh.n, want_score, tau));
                const double eps = std::numeric_limits<F>::epsilon();
                const double tol = std::max(rel, eps * std::max(1.0, std::fabs(want_score)) / tau) * scale;
                std::vector<const SwBatchGrads*> refs{&want};
                SwBatchGrads lanes;
                if constexpr (std::is_same_v<F, float>) {
                    lanes = lanes_grads<F>(md, pf, Sf, A, q, t, fbar);
                    refs.push_back(&lanes);
                }
                for (const SwBatchGrads* ref : refs) {
                    for (std::size_t k = 0; k < A * A; ++k) {
                        INFO("S entry " << k << ": " << Sbar[k] << " vs " << ref->Sbar[k]);
                        CHECK(std::fabs(Sbar[k] - ref->Sbar[k]) <= tol);
                    }
                    INFO("reference: open " << ref->g.open << ", extend " << ref->g.extend << ", tau " << ref->g.tau);
                    CHECK(std::fabs(g.open - ref->g.open) <= tol);
                    CHECK(std::fabs(g.extend - ref->g.extend) <= tol);
                    CHECK(std::fabs(g.tau - ref->g.tau) <= tol);
                }
            }
        }
    }
}

} // namespace

TEST_CASE("Wavefront backward equals the scalar backward (double, every linear/affine model)", "[ops][sw_wavefront]") {
    check_grads<double>(small_shapes(), 4, 1.0, 3.0, 1.0, 1e-11, 50);
    check_grads<double>(small_shapes(), 5, 0.3, 1.0, 2.0, 1e-11, 51);          // open < extend
    check_grads<double>({{40, 50}, {13, 90}}, 20, 0.7, 4.0, 1.0, 1e-11, 52); // gathered cell scores
}

TEST_CASE("Wavefront backward equals the scalar backward (float, extreme temperatures)", "[ops][sw_wavefront]") {
    check_grads<float>(small_shapes(), 4, 1.0, 3.0, 1.0, 1e-5, 53);
    for (double tau : {1e-4, 1e4}) {
        check_grads<double>({{1, 1}, {9, 40}, {120, 95}}, 4, tau, 3.0, 1.0, 1e-10, 54);
        check_grads<float>({{1, 1}, {9, 40}, {120, 95}}, 4, tau, 3.0, 1.0, 1e-5, 55);
    }
    check_grads<float>({{80, 90}}, 4, 0.1, 11.0, 0.5, 1e-5, 56); // the per-candidate affine form
}

TEST_CASE("SmithWaterman::value_and_grad gives a single pair's gradients whichever kernel runs", "[ops][sw_wavefront]") {
    namespace ops = diffbio::ops;
    std::mt19937 rng(60);
    const std::vector<std::uint8_t> q = random_codes(rng, 300, 4), t = related(rng, q, 260, 4);
    for (const SwModel& md : wave_models()) {
        const ops::SmithWaterman sw = api_operator(md);
        // alone: the wavefront (with or without a checkpoint request it fits); 32 copies with
        // weight 1/32: a full group of the inter-pair kernel
        const std::vector<ops::CodePair> single{{q, t}}, copies(32, ops::CodePair{q, t});
        const std::vector<double> w1{1.0}, w32(32, 1.0 / 32.0);
        const ops::SwGradOptions tau{.temperature_gradient = true};
        const auto alone = sw.value_and_grad<double>(single, w1, tau);
        const auto alone_ck = sw.value_and_grad<double>(single, w1, {.checkpoint = 17, .temperature_gradient = true});
        const auto lanes = sw.value_and_grad<double>(copies, w32, tau);
        const auto alone_f = sw.value_and_grad<float>(single, w1, tau);
        INFO(model_name(md) << ": open " << alone.gap_open << " / " << lanes.gap_open << ", extend " << alone.gap_extend
             << " / " << lanes.gap_extend << ", tau " << alone.temperature << " / " << lanes.temperature);
        double scale = 1.0;
        for (double v : lanes.substitution) scale = std::max(scale, std::fabs(v));
        const double tol = md.hard ? 0.0 : 1e-11 * scale;
        // float: the weights' rounding ε·|F|/τ (see check_grads)
        const double eps_f = std::numeric_limits<float>::epsilon();
        const double tol_f =
            md.hard ? 0.0 : std::max(1e-5, eps_f * std::max(1.0, std::fabs(lanes.score[0])) / 0.8) * scale;
        CHECK(std::fabs(alone.score[0] - lanes.score[0]) <= (md.hard ? 0.0 : 1e-12 * std::fabs(lanes.score[0])));
        for (std::size_t k = 0; k < lanes.substitution.size(); ++k) {
            CHECK(std::fabs(alone.substitution[k] - lanes.substitution[k]) <= tol);
            CHECK(alone_ck.substitution[k] == alone.substitution[k]);
            CHECK(std::fabs(alone_f.substitution[k] - lanes.substitution[k]) <= tol_f);
        }
        CHECK(std::fabs(alone.gap_open - lanes.gap_open) <= tol);
        CHECK(std::fabs(alone.gap_extend - lanes.gap_extend) <= tol);
        CHECK(std::fabs(alone.temperature - lanes.temperature) <= tol);
        CHECK(std::fabs(alone_f.gap_open - lanes.gap_open) <= tol_f);
        CHECK(std::fabs(alone_f.gap_extend - lanes.gap_extend) <= tol_f);
        CHECK(std::fabs(alone_f.temperature - lanes.temperature) <= tol_f);
    }
}

TEST_CASE("SmithWaterman profile gradients of a single pair: the wavefront equals the inter-pair lanes",
          "[ops][sw_wavefront]") {
    namespace ops = diffbio::ops;
    namespace ad = diffbio::ad;
    std::mt19937 rng(61);
    const std::size_t A = 4, m = 150, n = 120;
    const std::vector<double> x = random_profile(rng, m, A), y = random_profile(rng, n, A);
    for (const SwModel& md : wave_models()) {
        ops::SmithWaterman sw = api_operator(md);
        // the score of one pair (alone: the wavefront) or the mean of 32 copies of it (a full lane
        // group): the same function of S, the gaps, τ and the two profiles
        auto grads = [&](std::size_t copies) {
            for (ad::Parameter* p : sw.parameters()) p->zero_grad();
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> bind(tape);
            const auto xv = tape.variables(x), yv = tape.variables(y);
            const std::vector<ops::ProfilePair<ad::Var>> pairs(copies, ops::ProfilePair<ad::Var>{xv, yv});
            const auto s = sw.apply(bind, pairs).score;
            std::vector<double> ones(copies, 1.0 / static_cast<double>(copies));
            tape.backward(tape.push_nary(0.0, s, ones));
            bind.accumulate_grad();
            std::vector<double> g{tape.value(s[0])};
            for (ad::Parameter* p : sw.parameters()) g.insert(g.end(), p->grad().begin(), p->grad().end());
            for (const auto& v : {xv, yv}) {
                std::vector<double> a(v.size());
                tape.adjoints(v, a);
                g.insert(g.end(), a.begin(), a.end());
            }
            return g;
        };
        const std::vector<double> alone = grads(1), lanes = grads(32);
        REQUIRE(alone.size() == lanes.size());
        double scale = 1.0;
        for (double v : lanes) scale = std::max(scale, std::fabs(v));
        INFO(model_name(md));
        for (std::size_t e = 0; e < alone.size(); ++e) {
            INFO("entry " << e << ": alone " << alone[e] << ", lanes " << lanes[e]);
            CHECK(std::isfinite(alone[e]));
            CHECK(std::fabs(alone[e] - lanes[e]) <= 1e-11 * scale);
        }
    }
}
