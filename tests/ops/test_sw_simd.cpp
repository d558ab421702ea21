// The batched SIMD kernels of the smooth Smith-Waterman (sw_simd.hpp) against the scalar per-pair
// kernels (sw_kernel.hpp): forward scores of every model, backward sinks and gradients.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <diffbio/ops/alignment/sw_kernel.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>

#include "sw_test_pairs.hpp"

using namespace diffbio::ops::detail;
using namespace diffbio::test;

namespace {

/// Random pairs over A letters: lengths in [1, max_len] plus some of length 1 and very unequal shapes.
CodeBatch random_batch(std::mt19937& rng, std::size_t count, std::size_t max_len, std::size_t A) {
    std::uniform_int_distribution<std::size_t> len(1, max_len);
    CodeBatch b;
    for (std::size_t k = 0; k < count; ++k) {
        std::size_t m = len(rng), n = len(rng);
        if (k % 7 == 0) m = 1;
        if (k % 11 == 3) n = 1;
        if (k % 5 == 2) n = max_len * 3; // lanes of very different shapes in one batch
        std::vector<std::uint8_t> q = random_codes(rng, m, A);
        std::vector<std::uint8_t> t = random_codes(rng, n, A);
        if (k % 3 == 0) t = q; // related pairs: long alignments
        b.q.push_back(std::move(q));
        b.t.push_back(std::move(t));
    }
    return b;
}

template <class F>
void check_forward_codes(double rel, std::size_t max_len, double tau) {
    std::mt19937 rng(42);
    const std::size_t A = 5;
    for (const SwModel& md : sw_models(true)) {
        const CodeBatch b = random_batch(rng, 37, max_len, A);
        const auto pairs = b.pairs();
        const std::vector<F> S = random_matrix<F>(rng, A, md.hard);
        const SwScalars<F> p{F(3), F(1), static_cast<F>(tau)};
        std::vector<F> got(pairs.size());
        sw_simd_scores_codes<F>(md, p, S.data(), A, pairs, got.data(), 1, 0.0); // SIMD for every group
        std::vector<F> scratch;
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            const SwCodeCell<F> cell{S.data(), A, pairs[k].q, pairs[k].t};
            const F want = sw_forward<F>(md, p, pairs[k].m, pairs[k].n, cell, static_cast<F*>(nullptr), scratch);
            INFO(model_name(md) << ", pair " << k << " (" << pairs[k].m << " x " << pairs[k].n << "): simd " << got[k]
                                << ", scalar " << want);
            REQUIRE(std::isfinite(got[k]));
            if (md.hard) {
                CHECK(got[k] == want);
            } else {
                CHECK(std::fabs(got[k] - want) <= rel * std::max<double>(1.0, std::fabs(want)));
            }
        }
    }
}

} // namespace

TEST_CASE("SIMD forward equals the scalar kernel (double, every model, mixed lengths)", "[ops][sw_simd]") {
    check_forward_codes<double>(1e-12, 40, 1.0);
    check_forward_codes<double>(1e-12, 25, 0.3);
}

TEST_CASE("SIMD forward equals the scalar kernel (float, every model, mixed lengths)", "[ops][sw_simd]") {
    check_forward_codes<float>(1e-5, 40, 1.0);
}

TEST_CASE("SIMD forward of soft profiles equals the scalar kernel (every model)", "[ops][sw_simd]") {
    std::mt19937 rng(9);
    const std::size_t A = 4;
    const CodeBatch shapes = random_batch(rng, 21, 30, A);
    std::vector<std::vector<double>> xs, ys;
    for (std::size_t k = 0; k < shapes.q.size(); ++k) {
        xs.push_back(random_profile(rng, shapes.q[k].size(), A));
        ys.push_back(random_profile(rng, shapes.t[k].size(), A));
    }
    std::vector<SwSeqPair<double>> pairs;
    for (std::size_t k = 0; k < xs.size(); ++k) pairs.push_back({xs[k].data(), xs[k].size() / A, ys[k].data(), ys[k].size() / A});
    for (const SwModel& md : sw_models(true)) {
        const std::vector<double> S = random_matrix<double>(rng, A, false);
        const SwScalars<double> p{2.5, 0.75, 0.9};
        std::vector<double> got(pairs.size()), scratch, B;
        sw_simd_scores_profiles<double, double>(md, p, S.data(), A, pairs, got.data(), 1, 0.0);
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            sw_times_matrix<double, double>(S.data(), A, pairs[k].t, pairs[k].n, B);
            const SwProfileCell<double, double> cell{pairs[k].q, B.data(), A};
            const double want = sw_forward<double>(md, p, pairs[k].m, pairs[k].n, cell, static_cast<double*>(nullptr), scratch);
            INFO(model_name(md) << ", pair " << k << " (" << pairs[k].m << " x " << pairs[k].n << ")");
            CHECK(got[k] == Approx(want).epsilon(1e-12).margin(1e-12));
        }
    }
}

namespace {

/// Σ_k fbar_k·∂F_k/∂(S, open, extend, τ) by the scalar double kernels (the reference).
SwBatchGrads scalar_grads(const SwModel& md, const SwScalars<double>& p, const std::vector<double>& S, std::size_t A,
                          const std::vector<SwSeqPair<std::uint8_t>>& pairs, const std::vector<double>& fbar,
                          std::vector<double>& scores) {
    SwBatchGrads out;
    out.Sbar.assign(A * A, 0.0);
    scores.assign(pairs.size(), 0.0);
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        scores[k] = scalar_pair_grads_add(md, p, S, A, pairs[k], fbar[k], out);
    }
    return out;
}

template <class F>
void check_backward_codes(double rel, std::size_t max_len, double tau, std::size_t count, std::size_t checkpoint = 0) {
    std::mt19937 rng(7);
    const std::size_t A = 4;
    for (const SwModel& md : sw_models(true)) {
        const CodeBatch b = random_batch(rng, count, max_len, A);
        const auto pairs = b.pairs();
        const std::vector<double> S = random_matrix<double>(rng, A, md.hard);
        const std::vector<F> Sf(S.begin(), S.end());
        const SwScalars<double> p{3.0, 1.0, tau};
        const SwScalars<F> pf{F(3), F(1), static_cast<F>(tau)};
        std::vector<double> fbar(pairs.size());
        std::uniform_real_distribution<double> u(-1.0, 2.0);
        // hard: integer weights, so that every sum is exact in any order and the gradients must be equal
        for (std::size_t k = 0; k < fbar.size(); ++k) {
            fbar[k] = k % 4 == 1 ? 0.0 : (md.hard ? std::round(u(rng)) : u(rng));
        }
        std::vector<double> want_scores;
        const SwBatchGrads want = scalar_grads(md, p, S, A, pairs, fbar, want_scores);
        std::vector<F> got_scores(pairs.size());
        SwBatchGrads got;
        sw_simd_value_and_grad_codes<F, double>(md, pf, Sf.data(), A, pairs, fbar.data(), got_scores.data(), got, 1,
                                                checkpoint);
        INFO(model_name(md) << " tau " << tau << " checkpoint " << checkpoint);
        double scale = 1.0;
        for (double v : want.Sbar) scale = std::max(scale, std::fabs(v));
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            CHECK(std::fabs(got_scores[k] - want_scores[k]) <= rel * std::max(1.0, std::fabs(want_scores[k])));
        }
        for (std::size_t e = 0; e < A * A; ++e) {
            INFO("S entry " << e << ": simd " << got.Sbar[e] << ", scalar " << want.Sbar[e]);
            CHECK(std::isfinite(got.Sbar[e]));
            CHECK(std::fabs(got.Sbar[e] - want.Sbar[e]) <= rel * scale);
        }
        auto close = [&](double a, double w) { return std::fabs(a - w) <= rel * std::max(scale, std::fabs(w)); };
        INFO("open " << got.g.open << " vs " << want.g.open << ", extend " << got.g.extend << " vs " << want.g.extend
                     << ", tau " << got.g.tau << " vs " << want.g.tau);
        CHECK(close(got.g.open, want.g.open));
        CHECK(close(got.g.extend, want.g.extend));
        CHECK(close(got.g.tau, want.g.tau));
        if (md.hard) {
            CHECK(got.g.tau == 0.0);
            // (compat splits its max's adjoint among ties: a division, not exact in every order)
            if (md.kind != SwKind::Compat) {
                for (std::size_t e = 0; e < A * A; ++e) CHECK(got.Sbar[e] == want.Sbar[e]);
                CHECK(got.g.open == want.g.open);
                CHECK(got.g.extend == want.g.extend);
            }
        }
    }
}

} // namespace

TEST_CASE("SIMD backward equals the scalar backward (double, every model)", "[ops][sw_simd]") {
    check_backward_codes<double>(1e-12, 30, 1.0, 29);
    check_backward_codes<double>(1e-12, 20, 0.25, 19);
}

TEST_CASE("Checkpointed SIMD backward equals the scalar backward (every k, incl. 1 and blocks past the end)",
          "[ops][sw_simd]") {
    for (std::size_t k : {1, 2, 3, 5, 8}) check_backward_codes<double>(1e-12, 24, 0.7, 13, k);
    check_backward_codes<float>(1e-5, 24, 1.0, 13, 4);
}

TEST_CASE("SIMD backward equals the scalar backward (float, every model)", "[ops][sw_simd]") {
    check_backward_codes<float>(1e-5, 30, 1.0, 29);
}

namespace {

/// A copy of q with substitutions (probability sub per base) and single-base insertions and
/// deletions (probability indel each): a homolog whose alignment path wanders off the diagonal.
std::vector<std::uint8_t> mutate(std::mt19937& rng, const std::vector<std::uint8_t>& q, double sub, double indel, std::size_t A) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<int> code(0, static_cast<int>(A) - 1);
    std::vector<std::uint8_t> t;
    for (const std::uint8_t c : q) {
        const double r = u(rng);
        if (r < indel) continue; // deletion
        if (r < 2 * indel) t.push_back(static_cast<std::uint8_t>(code(rng))); // insertion before c
        t.push_back(u(rng) < sub ? static_cast<std::uint8_t>(code(rng)) : c);
    }
    return t;
}

/// Long pairs in one batch: homologs with indels (each lane's path its own), homologs inside random
/// flanks (local alignments in the middle of the table) and unrelated pairs, 60–320 bp.
CodeBatch long_batch(std::mt19937& rng, std::size_t count, std::size_t A) {
    std::uniform_int_distribution<std::size_t> len(60, 320);
    CodeBatch b;
    for (std::size_t k = 0; k < count; ++k) {
        std::vector<std::uint8_t> q = random_codes(rng, len(rng), A), t;
        if (k % 4 == 3) {
            t = random_codes(rng, len(rng), A);
        } else {
            t = mutate(rng, q, 0.2, 0.02, A);
            if (k % 4 == 2) {
                std::vector<std::uint8_t> flanked = random_codes(rng, 40, A);
                flanked.insert(flanked.end(), t.begin(), t.end());
                const auto tail = random_codes(rng, 25, A);
                flanked.insert(flanked.end(), tail.begin(), tail.end());
                t = std::move(flanked);
            }
        }
        b.q.push_back(std::move(q));
        b.t.push_back(std::move(t));
    }
    return b;
}

/// The models whose reverse sweeps skip cells (linear soft and hard, affine soft; local and
/// global): SIMD forward and backward of long pairs at temperatures where most of each table's
/// posteriors and end weights underflow to exactly 0 (hard: every cell off the traceback), against
/// the scalar double kernels, with ∂/∂τ and without, full table and checkpointed.
template <class F>
void check_backward_underflow(double rel, double tau, std::size_t checkpoint) {
    std::mt19937 rng(23);
    const std::size_t A = 4;
    const CodeBatch b = long_batch(rng, 40, A);
    const auto pairs = b.pairs();
    const std::vector<double> S = random_matrix<double>(rng, A, false);
    const std::vector<F> Sf(S.begin(), S.end());
    const SwScalars<double> p{3.0, 1.0, tau};
    const SwScalars<F> pf{F(3), F(1), static_cast<F>(tau)};
    std::vector<double> fbar(pairs.size());
    std::uniform_real_distribution<double> u(-1.0, 2.0);
    for (double& v : fbar) v = u(rng);
    for (const auto& [kind, local, hard, dtau] :
         {std::tuple{SwKind::Linear, true, false, true}, std::tuple{SwKind::Linear, true, false, false},
          std::tuple{SwKind::Linear, false, false, true}, std::tuple{SwKind::Linear, true, true, true},
          std::tuple{SwKind::Linear, false, true, true}, std::tuple{SwKind::Affine, true, false, true},
          std::tuple{SwKind::Affine, true, false, false}, std::tuple{SwKind::Affine, false, false, true}}) {
        const SwModel md{kind, local, hard, dtau};
        std::vector<double> want_scores;
        const SwBatchGrads want = scalar_grads(md, p, S, A, pairs, fbar, want_scores);
        std::vector<F> got_scores(pairs.size());
        SwBatchGrads got;
        sw_simd_value_and_grad_codes<F, double>(md, pf, Sf.data(), A, pairs, fbar.data(), got_scores.data(), got, 1, checkpoint);
        INFO(model_name(md) << " tau " << tau << " checkpoint " << checkpoint << " dtau " << dtau);
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            CHECK(std::fabs(got_scores[k] - want_scores[k]) <= rel * std::max(1.0, std::fabs(want_scores[k])));
        }
        double scale = 1.0;
        for (double v : want.Sbar) scale = std::max(scale, std::fabs(v));
        for (std::size_t e = 0; e < A * A; ++e) {
            INFO("S entry " << e << ": simd " << got.Sbar[e] << ", scalar " << want.Sbar[e]);
            CHECK(std::fabs(got.Sbar[e] - want.Sbar[e]) <= rel * scale);
        }
        auto close = [&](double a, double w) { return std::fabs(a - w) <= rel * std::max(scale, std::fabs(w)); };
        INFO("extend " << got.g.extend << " vs " << want.g.extend << ", tau " << got.g.tau << " vs " << want.g.tau);
        CHECK(close(got.g.open, want.g.open));
        CHECK(close(got.g.extend, want.g.extend));
        CHECK(close(got.g.tau, dtau && !hard ? want.g.tau : 0.0));
    }
}

} // namespace

TEST_CASE("SIMD soft local backward where posteriors underflow: skipped cells change nothing", "[ops][sw_simd]") {
    // the kernel skips a cell whose adjoint and end weight are 0 in every lane (and a whole row's end
    // weights from the forward's row maxima): long homologs at low τ leave most cells at exactly 0
    for (const double tau : {0.02, 0.3}) {
        check_backward_underflow<double>(1e-10, tau, 0);
        check_backward_underflow<double>(1e-10, tau, 17);
    }
    check_backward_underflow<float>(1e-4, 0.3, 0);
}

