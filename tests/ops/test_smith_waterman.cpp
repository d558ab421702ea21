#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <diffbio/ops/alignment/smith_waterman.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;
using ops::AlignmentMode;
using ops::GapExtend;
using ops::GapModel;
using ops::GapOpen;
using ops::SmithWaterman;
using ops::SmithWatermanConfig;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// Encoded sequences that outlive the CodePairs viewing them.
struct Batch {
    std::vector<std::vector<std::uint8_t>> seqs;
    std::vector<ops::CodePair> pairs;
};

Batch batch_of(const SmithWaterman& sw, const std::vector<std::pair<std::string, std::string>>& strs) {
    Batch b;
    b.seqs.reserve(2 * strs.size());
    for (const auto& [q, t] : strs) {
        b.seqs.push_back(sw.encode(q));
        b.seqs.push_back(sw.encode(t));
    }
    for (std::size_t k = 0; k < strs.size(); ++k) b.pairs.push_back({b.seqs[2 * k], b.seqs[2 * k + 1]});
    return b;
}

std::string random_dna(std::mt19937& rng, std::size_t len) {
    static const char letters[] = "ACGT";
    std::uniform_int_distribution<int> d(0, 3);
    std::string s(len, 'A');
    for (char& c : s) c = letters[d(rng)];
    return s;
}

/// The textbook Gotoh DP (H, E, F with H ≥ 0 in local mode), written independently of the
/// operator: a gap of length k costs open + (k − 1)·extend; linear gaps are open = extend.
double classic_dp(const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& t, std::span<const double> S,
                  std::size_t A, double open, double extend, bool local) {
    const std::size_t m = q.size(), n = t.size();
    std::vector<std::vector<double>> H(m + 1, std::vector<double>(n + 1, 0.0)), E = H, F = H;
    for (std::size_t i = 0; i <= m; ++i) {
        for (std::size_t j = 0; j <= n; ++j) {
            E[i][j] = F[i][j] = -inf;
            if (i == 0 && j == 0) continue;
            if (!local && i == 0) H[i][j] = -(open + static_cast<double>(j - 1) * extend);
            if (!local && j == 0) H[i][j] = -(open + static_cast<double>(i - 1) * extend);
        }
    }
    double best = 0.0;
    for (std::size_t i = 1; i <= m; ++i) {
        for (std::size_t j = 1; j <= n; ++j) {
            E[i][j] = std::max(E[i][j - 1] - extend, H[i][j - 1] - open);
            F[i][j] = std::max(F[i - 1][j] - extend, H[i - 1][j] - open);
            H[i][j] = std::max({H[i - 1][j - 1] + S[q[i - 1] * A + t[j - 1]], E[i][j], F[i][j]});
            if (local) H[i][j] = std::max(H[i][j], 0.0);
            best = std::max(best, H[i][j]);
        }
    }
    if (local) return best;
    if (m == 0 && n == 0) return 0.0;
    return H[m][n];
}

/// Score of an alignment given as CIGAR over its ranges (rescoring a traceback): each I or D run is
/// one gap, −(open + (len − 1)·extend), or −len·extend with linear gaps.
double rescore(const SmithWaterman& sw, const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& t,
               const ops::Alignment& a) {
    const auto S = sw.substitution().values();
    const std::size_t A = sw.alphabet_size();
    const double o = sw.gap_open().scalar(), e = sw.gap_extend().scalar();
    const bool linear = sw.config().gaps == GapModel::Linear;
    std::size_t i = a.query_begin, j = a.target_begin, pos = 0;
    double score = 0.0;
    while (pos < a.cigar.size()) {
        std::size_t len = 0;
        while (std::isdigit(static_cast<unsigned char>(a.cigar[pos])) != 0) {
            len = len * 10 + static_cast<std::size_t>(a.cigar[pos++] - '0');
        }
        const char op = a.cigar[pos++];
        if (op == 'M') {
            for (std::size_t k = 0; k < len; ++k) score += S[q[i++] * A + t[j++]];
        } else {
            score -= linear ? static_cast<double>(len) * e : o + static_cast<double>(len - 1) * e;
            (op == 'I' ? i : j) += len;
        }
    }
    CHECK(i == a.query_end);
    CHECK(j == a.target_end);
    return score;
}

std::vector<double> random_profile(std::mt19937& rng, std::size_t len, std::size_t A) {
    std::uniform_real_distribution<double> u(0.05, 1.0);
    std::vector<double> v(len * A);
    for (std::size_t i = 0; i < len; ++i) {
        double sum = 0.0;
        for (std::size_t a = 0; a < A; ++a) sum += v[i * A + a] = u(rng);
        for (std::size_t a = 0; a < A; ++a) v[i * A + a] /= sum;
    }
    return v;
}

/// Σ_k (1 + k/2)·score_k over a batch of coded pairs, generic in the Binder (for gradient checks).
auto weighted_scores(const SmithWaterman& sw, const std::vector<ops::CodePair>& pairs) {
    return [&sw, &pairs](auto& bind) {
        const auto r = sw.apply(bind, pairs);
        using R = std::decay_t<decltype(r.score[0])>;
        R s = R(0.0);
        for (std::size_t k = 0; k < r.score.size(); ++k) s = s + r.score[k] * (1.0 + 0.5 * static_cast<double>(k));
        return s;
    };
}

/// Scores of two profile pairs as a function of all their values (for expect_ad): v = [x0 y0 x1 y1].
auto profile_scores(const SmithWaterman& sw, const std::vector<std::size_t>& lens) {
    return [&sw, &lens](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        const std::size_t A = sw.alphabet_size();
        std::vector<ops::ProfilePair<T>> pairs;
        std::size_t off = 0;
        for (std::size_t k = 0; k + 1 < lens.size(); k += 2) {
            const std::span<const T> x = v.subspan(off, lens[k] * A);
            off += lens[k] * A;
            const std::span<const T> y = v.subspan(off, lens[k + 1] * A);
            off += lens[k + 1] * A;
            pairs.push_back({x, y});
        }
        auto bind = diffbio::test::make_binder<T>();
        return sw.apply(bind, pairs).score;
    };
}

SmithWatermanConfig compat_config(double tau, double open = 10.0, double extend = 1.0) {
    return {.gaps = GapModel::Linear, .gap_open = GapOpen{open}, .gap_extend = GapExtend{extend}, .temperature = tau,
            .diffbio_compat = true};
}

/// The four proper models at a temperature, with open 3 and extend 1.
std::vector<SmithWatermanConfig> proper_configs(double tau, bool hard = false) {
    std::vector<SmithWatermanConfig> out;
    for (const AlignmentMode mode : {AlignmentMode::Local, AlignmentMode::Global}) {
        for (const GapModel gaps : {GapModel::Linear, GapModel::Affine}) {
            out.push_back({.mode = mode, .gaps = gaps, .gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0},
                           .temperature = tau, .hard = hard});
        }
    }
    return out;
}

std::string describe(const SmithWatermanConfig& c) {
    return std::string(c.diffbio_compat ? "compat" : (c.mode == AlignmentMode::Local ? "local" : "global")) + " " +
           (c.gaps == GapModel::Linear ? "linear" : "affine") + (c.hard ? " hard" : "") +
           " tau=" + std::to_string(c.temperature);
}

} // namespace

// ---- DiffBio parity ---------------------------------------------------------------------------------

TEST_CASE("SmithWaterman diffbio_compat hits the spec's golden table", "[ops][sw][golden]") {
    // Spec §3.2: DNA 2/−1, g_o = −10, g_e = −1 (GapOpen{10}, GapExtend{1}); columns hard, T = 0.1, 0.5, 1, 2, 5.
    struct Row {
        const char* q;
        const char* t;
        double v[6];
    };
    const Row rows[] = {
        {"ACGT", "ACGT", {8, 8.0000, 8.0092, 8.1457, 8.9345, 14.5248}},
        {"ACGTACGT", "ACGTACGT", {16, 16.0000, 16.0092, 16.1454, 16.9255, 23.7966}},
        {"ACGTACGT", "ACGAACGT", {13, 13.0000, 13.0093, 13.1518, 14.0525, 22.0546}},
        {"ACGTACGT", "ACGTTACGT", {10, 10.0000, 10.0806, 10.5458, 12.2823, 22.6932}},
        {"ACGTACGT", "ACGACGT", {8, 8.0000, 8.0806, 8.5414, 10.2020, 19.9103}},
        {"AAAA", "TTTT", {0, 0.0693, 0.3842, 0.9444, 2.4284, 9.4026}},
        {"TTACGTTT", "AAACGTAA", {8, 8.0000, 8.0795, 8.5069, 9.9100, 17.7865}},
    };
    const double taus[] = {0.1, 0.5, 1.0, 2.0, 5.0};
    int hit = 0;
    for (const Row& r : rows) {
        SmithWatermanConfig hc = compat_config(1.0);
        hc.hard = true;
        CHECK(SmithWaterman(hc).score(r.q, r.t) == r.v[0]);
        hit += SmithWaterman(hc).score(r.q, r.t) == r.v[0];
        double prev = 0.0;
        for (std::size_t k = 0; k < 5; ++k) {
            const SmithWaterman sw(compat_config(taus[k]));
            const double s = sw.score(r.q, r.t);
            INFO(r.q << " / " << r.t << " at T = " << taus[k] << ": " << s);
            CHECK(s == Approx(r.v[k + 1]).margin(1e-4));
            hit += std::fabs(s - r.v[k + 1]) <= 1e-4;
            CHECK(s >= prev); // non-decreasing in T
            prev = s;
            // score − hard ≤ T·(ln 2 + (L1 + L2 − 1)·ln 4), and score ≥ max(hard, T ln 2)
            const double l = static_cast<double>(std::string(r.q).size() + std::string(r.t).size());
            CHECK(s - r.v[0] <= taus[k] * (std::log(2.0) + (l - 1.0) * std::log(4.0)));
            CHECK(s >= std::max(r.v[0], taus[k] * std::log(2.0)) - 1e-12);
        }
    }
    CHECK(hit == 42);
    // The second table: g_o = −2, g_e = −0.5.
    const Row rows2[] = {{"ACGTACGT", "ACGAACGT", {13, 13.0000, 13.2466}},
                         {"ACGTACGT", "ACGTTACGT", {13.5, 13.5693, 14.4495}},
                         {"ACGTACGT", "ACGACGT", {11.5, 11.5000, 11.8249}}};
    for (const Row& r : rows2) {
        SmithWatermanConfig hc = compat_config(1.0, 2.0, 0.5);
        hc.hard = true;
        CHECK(SmithWaterman(hc).score(r.q, r.t) == r.v[0]);
        CHECK(SmithWaterman(compat_config(0.1, 2.0, 0.5)).score(r.q, r.t) == Approx(r.v[1]).margin(1e-4));
        CHECK(SmithWaterman(compat_config(1.0, 2.0, 0.5)).score(r.q, r.t) == Approx(r.v[2]).margin(1e-4));
    }
}

TEST_CASE("SmithWaterman diffbio_compat: H diagonal and the spec's §7.3 properties", "[ops][sw][golden]") {
    const SmithWaterman sw(compat_config(1.0));
    const Batch b = batch_of(sw, {{"ACGT", "ACGT"}});
    ad::Binder<double> bind;
    const auto t = sw.reference(bind, b.pairs[0]);
    REQUIRE(t.rows == 5);
    REQUIRE(t.cols == 5);
    const double diag[] = {2.1269, 4.1429, 6.1451, 8.1454};
    for (std::size_t k = 1; k <= 4; ++k) CHECK(t.at(t.H, k, k) == Approx(diag[k - 1]).margin(1e-4));
    for (std::size_t i = 1; i <= 4; ++i) {
        for (std::size_t j = 1; j <= 4; ++j) {
            CHECK(t.at(t.H, i, j) > 0.0);
            if (i != j) CHECK((t.at(t.H, i, j) > 0.30 && t.at(t.H, i, j) < 0.46));
        }
    }
    CHECK(sw.score("ACGT", "ACGT") > 4.0);
    CHECK(sw.score("AAAA", "AAAA") > sw.score("AAAA", "TTTT"));
    CHECK(SmithWaterman(compat_config(1.0, 1.0, 0.5)).score("ACGT", "AGT") >
          SmithWaterman(compat_config(1.0, 20.0, 5.0)).score("ACGT", "AGT"));
    CHECK(SmithWaterman(compat_config(0.5)).score("TTACGTTT", "AAACGTAA") > 0.0);
    CHECK(SmithWaterman({.gaps = GapModel::Linear, .diffbio_compat = true}).score("ACGT", "ACGT") ==
          Approx(8.1457).margin(1e-4));
}

// ---- hand-computed tables -------------------------------------------------------------------------

TEST_CASE("SmithWaterman hard DP pins whole tables of a hand-computed case", "[ops][sw][fixture]") {
    // Query ACG (rows), target AG (columns); DNA 2/−1; cell scores s = [[2, −1], [−1, −1], [−1, 2]].
    // Linear: every gap position costs e = 1. Affine: open 3, extend 1. Compat: g = 1.5 + 0.5 = 2.
    const double N = -inf;
    struct Case {
        SmithWatermanConfig cfg;
        std::vector<double> H, M, X, Y; // (4 × 3) tables, empty where the model has none
        double score;
        const char* cigar;
        std::size_t qb, qe, tb, te;
    };
    const std::vector<Case> cases = {
        {{.mode = AlignmentMode::Local, .gaps = GapModel::Linear, .gap_extend = GapExtend{1.0}, .hard = true},
         {N, N, N, N, 2, 1, N, 1, 1, N, 0, 3},
         {N, N, N, N, 2, -1, N, -1, 1, N, -1, 3},
         {},
         {},
         3, "1M1I1M", 0, 3, 0, 2},
        {{.mode = AlignmentMode::Global, .gaps = GapModel::Linear, .gap_extend = GapExtend{1.0}, .hard = true},
         {0, -1, -2, -1, 2, 1, -2, 1, 1, -3, 0, 3},
         {N, N, N, N, 2, -2, N, -2, 1, N, -3, 3},
         {},
         {},
         3, "1M1I1M", 0, 3, 0, 2},
        {{.mode = AlignmentMode::Local, .gaps = GapModel::Affine, .gap_open = GapOpen{3.0},
          .gap_extend = GapExtend{1.0}, .hard = true},
         {},
         {N, N, N, N, 2, -1, N, -1, 1, N, -1, 2},
         {N, N, N, N, N, N, N, -1, -4, N, -2, -2},
         {N, N, N, N, N, -1, N, N, -4, N, N, -4},
         2, "1M", 0, 1, 0, 1},
        {{.mode = AlignmentMode::Global, .gaps = GapModel::Affine, .gap_open = GapOpen{3.0},
          .gap_extend = GapExtend{1.0}, .hard = true},
         {},
         {0, N, N, N, 2, -4, N, -4, 1, N, -5, 1},
         {N, N, N, -3, -6, -7, -4, -1, -4, -5, -2, -2},
         {N, -3, -4, N, -6, -1, N, -7, -4, N, -8, -5},
         1, "1M1I1M", 0, 3, 0, 2},
        {{.gaps = GapModel::Linear, .gap_open = GapOpen{1.5}, .gap_extend = GapExtend{0.5}, .hard = true,
          .diffbio_compat = true},
         {0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 2},
         {},
         {},
         {},
         2, "1M", 0, 1, 0, 1},
    };
    for (const Case& c : cases) {
        INFO(describe(c.cfg));
        const SmithWaterman sw(c.cfg);
        const Batch b = batch_of(sw, {{"ACG", "AG"}});
        ad::Binder<double> bind;
        const auto t = sw.reference(bind, b.pairs[0]);
        CHECK(t.score == c.score);
        CHECK(t.H == c.H);
        CHECK(t.M == c.M);
        CHECK(t.X == c.X);
        CHECK(t.Y == c.Y);
        // The kernel's full table holds the same values (linear/compat: H; affine: M, X, Y planes).
        ops::detail::SwModel md{c.cfg.diffbio_compat ? ops::detail::SwKind::Compat
                                                     : (c.cfg.gaps == GapModel::Linear ? ops::detail::SwKind::Linear
                                                                                       : ops::detail::SwKind::Affine),
                                c.cfg.mode == AlignmentMode::Local, true};
        std::vector<double> table(md.states() * 12), scratch;
        const auto S = sw.substitution().values();
        const double F = ops::detail::sw_forward<double>(
            md, {c.cfg.gap_open.value, c.cfg.gap_extend.value, 1.0}, 3, 2,
            ops::detail::SwCodeCell<double>{S.data(), 4, b.seqs[0].data(), b.seqs[1].data()}, table.data(), scratch);
        CHECK(F == c.score);
        std::vector<double> expect = c.H;
        if (md.kind == ops::detail::SwKind::Affine) {
            expect = c.M;
            expect.insert(expect.end(), c.X.begin(), c.X.end());
            expect.insert(expect.end(), c.Y.begin(), c.Y.end());
        }
        CHECK(table == expect);
        CHECK(sw.score("ACG", "AG") == c.score);
        const ops::Alignment a = sw.traceback("ACG", "AG");
        CHECK(a.score == c.score);
        CHECK(a.cigar == c.cigar);
        CHECK(a.query_begin == c.qb);
        CHECK(a.query_end == c.qe);
        CHECK(a.target_begin == c.tb);
        CHECK(a.target_end == c.te);
    }
}

TEST_CASE("SmithWaterman soft values of tiny cases, by hand", "[ops][sw][fixture]") {
    // One aligned pair A/A (s = 2) at τ = 1.
    // Local: F = log(1 + e²) (the empty alignment and the pair).
    // Global affine, open 3: M = 2, X_11 = Y_01 − 3 = −6, Y_11 = X_10 − 3 = −6 (both gap orders count):
    //   F = log(e² + 2e⁻⁶). Global linear, e = 3: P_11 = log(e² + 2e⁻⁶) as well (affine with open = extend).
    for (const auto& cfg : proper_configs(1.0)) {
        SmithWatermanConfig c = cfg;
        c.gap_open = GapOpen{3.0};
        c.gap_extend = GapExtend{3.0};
        const SmithWaterman sw(c);
        const double expect = c.mode == AlignmentMode::Local ? std::log1p(std::exp(2.0))
                                                              : 2.0 + std::log1p(2.0 * std::exp(-8.0));
        INFO(describe(c));
        CHECK(sw.score("A", "A") == Approx(expect).epsilon(1e-14));
    }
    // Local linear, AC vs A, e = 1: M_11 = 2, M_21 = −1 + smax(0, −∞) = −1: F = log(1 + e² + e⁻¹).
    const SmithWaterman lin({.gaps = GapModel::Linear, .gap_extend = GapExtend{1.0}});
    CHECK(lin.score("AC", "A") == Approx(std::log(1.0 + std::exp(2.0) + std::exp(-1.0))).epsilon(1e-14));
}

// ---- the classic DP and τ → 0 ---------------------------------------------------------------------

TEST_CASE("SmithWaterman hard mode is the classic DP and soft scores approach it as tau -> 0", "[ops][sw][limit]") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::size_t> len(0, 40);
    std::vector<std::pair<std::string, std::string>> strs;
    for (int k = 0; k < 40; ++k) strs.emplace_back(random_dna(rng, len(rng)), random_dna(rng, len(rng)));
    strs.emplace_back("ACGTACGTAC", "ACGTTTTACGTAC"); // a long gap
    strs.emplace_back("GGGGACGTGGG", "TTACGTTT");
    for (const double tau : {1e-2, 1e-3}) {
        for (const auto& cfg : proper_configs(tau)) {
            INFO(describe(cfg));
            SmithWatermanConfig hc = cfg;
            hc.hard = true;
            const SmithWaterman soft(cfg), hard(hc);
            const Batch b = batch_of(soft, strs);
            ad::Binder<double> bind;
            const auto s = soft.apply(bind, b.pairs).score;
            const auto h = hard.apply(bind, b.pairs).score;
            const bool local = cfg.mode == AlignmentMode::Local, linear = cfg.gaps == GapModel::Linear;
            const double o = linear ? 1.0 : 3.0;
            for (std::size_t k = 0; k < strs.size(); ++k) {
                const double m = static_cast<double>(strs[k].first.size()), n = static_cast<double>(strs[k].second.size());
                const double classic =
                    classic_dp(b.seqs[2 * k], b.seqs[2 * k + 1], soft.substitution().values(), 4, o, 1.0, local);
                INFO("pair " << k << ": " << strs[k].first << " / " << strs[k].second);
                CHECK(h[k] == classic);
                CHECK(s[k] >= h[k] - 1e-9);
                CHECK(s[k] - h[k] <= tau * (2.0 * (m + n + 2.0) * std::log(4.0) + std::log(m * n + 1.0)));
                // The traceback's path scores the hard score.
                const ops::Alignment a = hard.traceback(b.pairs[k]);
                CHECK(a.score == h[k]);
                CHECK(rescore(hard, b.seqs[2 * k], b.seqs[2 * k + 1], a) == h[k]);
            }
        }
    }
    // diffbio_compat hard = classic local SW with a linear gap open + extend per position.
    SmithWatermanConfig cc = compat_config(1.0, 1.5, 0.5);
    cc.hard = true;
    const SmithWaterman compat(cc);
    const Batch b = batch_of(compat, strs);
    ad::Binder<double> bind;
    const auto h = compat.apply(bind, b.pairs).score;
    for (std::size_t k = 0; k < strs.size(); ++k) {
        CHECK(h[k] == classic_dp(b.seqs[2 * k], b.seqs[2 * k + 1], compat.substitution().values(), 4, 2.0, 2.0, true));
    }
}

TEST_CASE("SmithWaterman: CIGARs of obvious cases", "[ops][sw][traceback]") {
    const SmithWaterman local({.gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0}});
    CHECK(local.traceback("ACGTACGT", "ACGTACGT").cigar == "8M");
    CHECK(local.traceback("ACGTACGTAC", "ACGTACGTAC").score == 20.0);
    // One extra letter in the query: an insertion (query letter against a gap).
    CHECK(local.traceback("ACGTAACGTA", "ACGTACGTA").cigar == "4M1I5M");
    CHECK(local.traceback("ACGTACGTA", "ACGTAACGTA").cigar == "4M1D5M");
    const ops::Alignment a = local.traceback("TTTACGTGTT", "GGACGTGGG");
    CHECK(a.cigar == "5M");
    CHECK(a.query_begin == 3);
    CHECK(a.query_end == 8);
    CHECK(a.target_begin == 2);
    CHECK(a.target_end == 7);
    CHECK(local.traceback("AAAA", "TTTT").cigar.empty()); // the empty alignment
    const SmithWaterman global({.mode = AlignmentMode::Global, .gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0}});
    CHECK(global.traceback("ACGT", "ACGTAA").cigar == "4M2D");
    CHECK(global.traceback("CCACGT", "ACGT").cigar == "2I4M");
    CHECK(global.traceback("ACGT", "ACGTAA").score == 8.0 - 4.0);
    CHECK(global.traceback("", "ACG").cigar == "3D");
}

// ---- gradients -----------------------------------------------------------------------------------

TEST_CASE("SmithWaterman parameter gradients: fused Var node = Dual reference = finite differences", "[ops][sw][ad]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(1.3);
    configs[0].temperature = 0.8; // local linear
    configs[3].temperature = 2.0; // global affine
    configs.push_back(compat_config(1.0, 2.0, 0.5));
    for (auto& c : configs) {
        c.learnable_temperature = true;
        if (!c.diffbio_compat) c.gap_open = GapOpen{2.5}, c.gap_extend = GapExtend{0.75};
    }
    for (const SmithWatermanConfig& cfg : configs) {
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const Batch b = batch_of(sw, {{"ACGTTAG", "ACTTAGG"}, {"G", "GACT"}, {"TTACG", "CGA"}, {"CATG", ""}});
        diffbio::test::expect_parameter_gradients(sw.parameters(), weighted_scores(sw, b.pairs),
                                                  {.mode_rel = 1e-9, .mode_abs = 1e-11, .fd_rel = 1e-6, .fd_abs = 1e-8,
                                                   .samples = 16});
    }
}

TEST_CASE("SmithWaterman hard-mode gradients are those of the best path", "[ops][sw][ad]") {
    // A matrix without ties (random reals), so the best path is unique and the score is locally linear.
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<double> S(16);
    for (std::size_t a = 0; a < 4; ++a) {
        for (std::size_t c = 0; c < 4; ++c) S[a * 4 + c] = (a == c ? 2.0 : -1.0) + 0.3 * u(rng);
    }
    for (SmithWatermanConfig cfg : proper_configs(1.0, true)) {
        cfg.gap_open = GapOpen{2.3};
        cfg.gap_extend = GapExtend{0.7};
        INFO(describe(cfg));
        SmithWaterman sw(cfg, ops::SubstitutionMatrix("ACGT", S));
        const Batch b = batch_of(sw, {{"ACGTTAGCA", "ACTTAGGCA"}, {"TTACGAT", "CGAAT"}});
        diffbio::test::expect_parameter_gradients(sw.parameters(), weighted_scores(sw, b.pairs),
                                                  {.mode_rel = 1e-12, .mode_abs = 1e-12, .fd_rel = 1e-6, .fd_abs = 1e-8,
                                                   .samples = 16});
        // The hard posterior is the 0/1 indicator of the traceback's aligned pairs.
        ad::Binder<double> bind;
        const auto post = sw.apply(bind, b.pairs, {.posterior = true}).posterior;
        for (std::size_t k = 0; k < b.pairs.size(); ++k) {
            const ops::Alignment a = sw.traceback(b.pairs[k]);
            const std::size_t n = b.pairs[k].target.size();
            std::vector<double> expect(b.pairs[k].query.size() * n, 0.0);
            std::size_t i = a.query_begin, j = a.target_begin, pos = 0;
            while (pos < a.cigar.size()) {
                std::size_t len = 0;
                while (std::isdigit(static_cast<unsigned char>(a.cigar[pos])) != 0) {
                    len = len * 10 + static_cast<std::size_t>(a.cigar[pos++] - '0');
                }
                const char op = a.cigar[pos++];
                for (std::size_t r = 0; r < len; ++r) {
                    if (op == 'M') expect[i * n + j] = 1.0;
                    i += op != 'D';
                    j += op != 'I';
                }
            }
            CHECK(post[k] == expect);
        }
    }
}

TEST_CASE("SmithWaterman gradients w.r.t. soft profiles in every AD mode", "[ops][sw][ad]") {
    std::mt19937 rng(11);
    const std::vector<std::size_t> lens{5, 4, 3, 6};
    std::vector<double> x;
    for (const std::size_t l : lens) {
        const auto p = random_profile(rng, l, 4);
        x.insert(x.end(), p.begin(), p.end());
    }
    std::vector<SmithWatermanConfig> configs = proper_configs(0.9);
    configs.push_back(compat_config(1.0, 2.0, 0.5));
    for (auto& c : configs) {
        if (!c.diffbio_compat) c.gap_open = GapOpen{2.0}, c.gap_extend = GapExtend{0.5};
    }
    for (const SmithWatermanConfig& cfg : configs) {
        INFO(describe(cfg));
        const SmithWaterman sw(cfg);
        diffbio::test::expect_ad(profile_scores(sw, lens), x, {.fd_rel = 1e-6, .fd_abs = 1e-8});
    }
}

TEST_CASE("SmithWaterman fused node equals the reference recursion on the tape", "[ops][sw][ad]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(0.7);
    configs.push_back(compat_config(0.7, 2.0, 0.5));
    for (SmithWatermanConfig cfg : configs) {
        cfg.learnable_temperature = true;
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const Batch b = batch_of(sw, {{"ACGTTAGCA", "ACTTAGGA"}});
        std::vector<std::vector<double>> grads[2];
        double values[2] = {0.0, 0.0};
        for (int path = 0; path < 2; ++path) {
            for (ad::Parameter* p : sw.parameters()) p->zero_grad();
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> bind(tape);
            const std::size_t nodes = tape.num_nodes();
            const ad::Var y = path == 0 ? sw.apply(bind, b.pairs).score[0] : sw.reference(bind, b.pairs[0]).score;
            if (path == 0) CHECK(tape.num_nodes() == nodes + 1); // one fused node
            values[path] = tape.value(y);
            tape.backward(y);
            bind.accumulate_grad();
            for (ad::Parameter* p : sw.parameters()) grads[path].emplace_back(p->grad().begin(), p->grad().end());
        }
        CHECK(values[0] == Approx(values[1]).epsilon(1e-13));
        for (std::size_t k = 0; k < grads[0].size(); ++k) {
            for (std::size_t e = 0; e < grads[0][k].size(); ++e) {
                CHECK(grads[0][k][e] == Approx(grads[1][k][e]).epsilon(1e-11).margin(1e-13));
            }
        }
    }
}

TEST_CASE("SmithWaterman one-hot profiles = codes, mixed plain and Var parameters and profiles", "[ops][sw][ad]") {
    for (SmithWatermanConfig cfg : proper_configs(0.9)) {
        cfg.learnable_temperature = true;
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const std::vector<std::pair<std::string, std::string>> strs{{"ACGTTAGC", "ACTTAGGC"}, {"GAT", "TTACA"}};
        const Batch b = batch_of(sw, strs);
        std::vector<std::vector<double>> oh;
        for (const auto& [q, t] : strs) {
            oh.push_back(sw.matrix().one_hot(q));
            oh.push_back(sw.matrix().one_hot(t));
        }
        const std::vector<ops::ProfilePair<double>> prof{{oh[0], oh[1]}, {oh[2], oh[3]}};
        // Parameter gradients (Var parameters, constant profiles) of codes and of one-hot profiles.
        auto param_grads = [&](auto run) {
            for (ad::Parameter* p : sw.parameters()) p->zero_grad();
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> vb(tape);
            const auto s = run(vb);
            tape.backward(s[0] + 2.0 * s[1]);
            vb.accumulate_grad();
            std::vector<double> g{tape.value(s[0]), tape.value(s[1])};
            for (ad::Parameter* p : sw.parameters()) g.insert(g.end(), p->grad().begin(), p->grad().end());
            return g;
        };
        const auto g_codes = param_grads([&](ad::Binder<ad::Var>& vb) { return sw.apply(vb, b.pairs).score; });
        const auto g_prof = param_grads([&](ad::Binder<ad::Var>& vb) { return sw.apply(vb, prof).score; });
        for (std::size_t e = 0; e < g_codes.size(); ++e) CHECK(g_prof[e] == Approx(g_codes[e]).epsilon(1e-12).margin(1e-13));
        // Profile gradients with constant parameters (Binder<double>, Var profiles) = with Var parameters.
        auto prof_grads = [&](auto& bind, ad::Tape& tape) {
            std::vector<std::span<const ad::Var>> vars;
            for (const auto& v : oh) vars.push_back(tape.variables(v));
            const std::vector<ops::ProfilePair<ad::Var>> pv{{vars[0], vars[1]}, {vars[2], vars[3]}};
            const auto s = sw.apply(bind, pv).score;
            tape.backward(s[0] + 2.0 * s[1]);
            std::vector<double> g;
            for (const auto& v : vars) {
                std::vector<double> a(v.size());
                tape.adjoints(v, a);
                g.insert(g.end(), a.begin(), a.end());
            }
            return g;
        };
        std::vector<double> g_plain, g_var;
        {
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<double> bind;
            g_plain = prof_grads(bind, tape);
        }
        {
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> bind(tape);
            g_var = prof_grads(bind, tape);
        }
        REQUIRE(g_plain.size() == g_var.size());
        for (std::size_t e = 0; e < g_plain.size(); ++e) CHECK(g_plain[e] == Approx(g_var[e]).epsilon(1e-13).margin(1e-14));
        // Posteriors of codes and one-hot profiles agree too.
        ad::Binder<double> plain;
        const auto pc = sw.apply(plain, b.pairs, {.posterior = true}).posterior;
        const auto pp = sw.apply(plain, prof, {.posterior = true}).posterior;
        for (std::size_t k = 0; k < 2; ++k) {
            REQUIRE(pc[k].size() == pp[k].size());
            for (std::size_t e = 0; e < pc[k].size(); ++e) CHECK(pp[k][e] == Approx(pc[k][e]).epsilon(1e-12).margin(1e-14));
        }
    }
}

// ---- posterior -----------------------------------------------------------------------------------

TEST_CASE("SmithWaterman posterior: probabilities, row and column sums, dF/dS", "[ops][sw][posterior]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(1.0);
    configs.push_back(compat_config(1.0, 2.0, 0.5));
    for (const SmithWatermanConfig& cfg : configs) {
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const Batch b = batch_of(sw, {{"ACGTTAGCATG", "ACTTAGGCAG"}, {"GATTACA", "TTAC"}});
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = sw.apply(bind, b.pairs, {.posterior = true});
        REQUIRE(r.posterior.size() == 2);
        tape.backward(r.score[0]);
        std::vector<double> dS(16, 0.0);
        tape.adjoints(bind(sw.substitution()), dS);
        const auto& q = b.pairs[0].query;
        const auto& t = b.pairs[0].target;
        std::vector<double> from_post(16, 0.0);
        for (std::size_t k = 0; k < 2; ++k) {
            const std::size_t m = b.pairs[k].query.size(), n = b.pairs[k].target.size();
            const auto& P = r.posterior[k];
            REQUIRE(P.size() == m * n);
            for (const double v : P) CHECK((v >= 0.0 && v <= 1.0 + 1e-12));
            for (std::size_t i = 0; i < m; ++i) { // each query letter is aligned at most once
                double row = 0.0;
                for (std::size_t j = 0; j < n; ++j) row += P[i * n + j];
                CHECK(row <= 1.0 + 1e-12);
            }
            for (std::size_t j = 0; j < n; ++j) {
                double col = 0.0;
                for (std::size_t i = 0; i < m; ++i) col += P[i * n + j];
                CHECK(col <= 1.0 + 1e-12);
            }
        }
        for (std::size_t i = 0; i < q.size(); ++i) {
            for (std::size_t j = 0; j < t.size(); ++j) from_post[q[i] * 4 + t[j]] += r.posterior[0][i * t.size() + j];
        }
        for (std::size_t e = 0; e < 16; ++e) CHECK(dS[e] == Approx(from_post[e]).epsilon(1e-12).margin(1e-14));
        // A well-aligned pair: the posterior concentrates on the diagonal of the shared part at low τ.
        SmithWatermanConfig cold = cfg;
        cold.temperature = 0.05;
        const SmithWaterman sc(cold);
        const Batch same = batch_of(sc, {{"ACGTTAGC", "ACGTTAGC"}});
        ad::Binder<double> plain;
        const auto pc = sc.apply(plain, same.pairs, {.posterior = true}).posterior[0];
        for (std::size_t i = 0; i < 8; ++i) CHECK(pc[i * 8 + i] == Approx(1.0).margin(1e-6));
    }
}

// ---- batching, symmetry, policies --------------------------------------------------------------------

TEST_CASE("SmithWaterman batches: no padding artefacts, Cpu = CpuParallel, symmetric models", "[ops][sw][batch]") {
    std::mt19937 rng(5);
    std::uniform_int_distribution<std::size_t> len(0, 30);
    std::vector<std::pair<std::string, std::string>> strs;
    for (int k = 0; k < 24; ++k) strs.emplace_back(random_dna(rng, len(rng)), random_dna(rng, len(rng)));
    std::vector<SmithWatermanConfig> configs = proper_configs(0.8);
    configs.push_back(compat_config(0.8, 2.0, 0.5));
    for (SmithWatermanConfig cfg : configs) {
        cfg.learnable_temperature = true;
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const Batch b = batch_of(sw, strs);
        ad::Binder<double> bind;
        const auto all = sw.apply(bind, b.pairs).score;
        const auto par = sw.apply(bind, b.pairs, {}, exec::CpuParallel{2}).score;
        ad::Binder<float> fbind;
        const auto fl = sw.apply(fbind, b.pairs).score;
        for (std::size_t k = 0; k < strs.size(); ++k) {
            // A lone pair runs the scalar kernel; the batch runs lane groups when they fill enough
            // lanes (wider registers: more lanes, e.g. -march=native), whose exp/log round
            // differently in the last bits. A padding artefact would move a score by far more.
            const double alone = sw.apply(bind, std::vector<ops::CodePair>{b.pairs[k]}).score[0];
            CHECK(all[k] == Approx(alone).epsilon(1e-13).margin(1e-12));
            CHECK(par[k] == all[k]);
            CHECK(static_cast<double>(fl[k]) == Approx(all[k]).epsilon(1e-5).margin(1e-4));
            // Swapping query and target keeps the score (DNA matrix symmetric).
            const ops::CodePair swapped{b.pairs[k].target, b.pairs[k].query};
            CHECK(sw.apply(bind, std::vector<ops::CodePair>{swapped}).score[0] == Approx(all[k]).epsilon(1e-13).margin(1e-12));
        }
        // Gradients of a batch (Cpu and CpuParallel) = the sum of single-pair gradients.
        auto grads = [&](auto policy, const std::vector<ops::CodePair>& pairs) {
            for (ad::Parameter* p : sw.parameters()) p->zero_grad();
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> vb(tape);
            const auto s = sw.apply(vb, pairs, {}, policy).score;
            ad::Var sum = 0.0;
            for (const ad::Var& v : s) sum = sum + v;
            tape.backward(sum);
            vb.accumulate_grad();
            std::vector<double> g;
            for (ad::Parameter* p : sw.parameters()) g.insert(g.end(), p->grad().begin(), p->grad().end());
            return g;
        };
        const auto g_all = grads(exec::Cpu{}, b.pairs);
        const auto g_par = grads(exec::CpuParallel{2}, b.pairs);
        std::vector<double> g_sum(g_all.size(), 0.0);
        for (const auto& pr : b.pairs) {
            const auto g = grads(exec::Cpu{}, std::vector<ops::CodePair>{pr});
            for (std::size_t e = 0; e < g.size(); ++e) g_sum[e] += g[e];
        }
        for (std::size_t e = 0; e < g_all.size(); ++e) {
            CHECK(g_par[e] == Approx(g_all[e]).epsilon(1e-12).margin(1e-12));
            CHECK(g_sum[e] == Approx(g_all[e]).epsilon(1e-12).margin(1e-12));
        }
    }
    // Affine with open = extend is the linear model, soft values included.
    for (const AlignmentMode mode : {AlignmentMode::Local, AlignmentMode::Global}) {
        const SmithWaterman lin({.mode = mode, .gaps = GapModel::Linear, .gap_extend = GapExtend{1.5}, .temperature = 0.7});
        const SmithWaterman aff({.mode = mode, .gaps = GapModel::Affine, .gap_open = GapOpen{1.5},
                                 .gap_extend = GapExtend{1.5}, .temperature = 0.7});
        for (const auto& [q, t] : strs) CHECK(aff.score(q, t) == Approx(lin.score(q, t)).epsilon(1e-12).margin(1e-12));
    }
    // Empty sequences: local 0; global one gap; compat τ ln 2.
    CHECK(SmithWaterman().score("", "ACG") == 0.0);
    CHECK(SmithWaterman({.mode = AlignmentMode::Global, .gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0}})
              .score("", "ACG") == Approx(-5.0).epsilon(1e-14));
    CHECK(SmithWaterman({.mode = AlignmentMode::Global}).score("", "") == 0.0);
    CHECK(SmithWaterman(compat_config(1.0)).score("ACG", "") == Approx(std::log(2.0)).epsilon(1e-14));
}

TEST_CASE("SmithWaterman with BLOSUM62 on proteins", "[ops][sw][blosum]") {
    const ops::SubstitutionMatrix b62 = ops::SubstitutionMatrix::blosum62();
    REQUIRE(b62.size() == 20);
    for (std::size_t a = 0; a < 20; ++a) {
        for (std::size_t c = 0; c < 20; ++c) CHECK(b62(a, c) == b62(c, a));
    }
    CHECK(b62(b62.code('W'), b62.code('W')) == 11.0);
    CHECK(b62(b62.code('C'), b62.code('C')) == 9.0);
    CHECK(b62(b62.code('A'), b62.code('R')) == -1.0);
    CHECK(b62(b62.code('w'), b62.code('F')) == 1.0);
    SmithWatermanConfig cfg{.gap_open = GapOpen{11.0}, .gap_extend = GapExtend{1.0}, .hard = true};
    const SmithWaterman sw(cfg, b62);
    const std::string p = "MKTAYIAKQRQISFVKSHFSRQ";
    double self = 0.0;
    for (const char c : p) self += b62(b62.code(c), b62.code(c));
    CHECK(sw.score(p, p) == self);
    const auto a = sw.traceback("HEAGAWGHEE", "PAWHEAE");
    CHECK(a.score == sw.score("HEAGAWGHEE", "PAWHEAE"));
    const std::vector<std::uint8_t> q = sw.encode("HEAGAWGHEE"), t = sw.encode("PAWHEAE");
    CHECK(a.score == classic_dp(q, t, sw.substitution().values(), 20, 11.0, 1.0, true));
}

// ---- numerics ------------------------------------------------------------------------------------

TEST_CASE("SmithWaterman stays finite for extreme temperatures, lengths and scores", "[ops][sw][numerics]") {
    std::mt19937 rng(13);
    const std::string long_q = random_dna(rng, 10000), short_t = random_dna(rng, 20);
    const std::string mid_q = random_dna(rng, 300), mid_t = random_dna(rng, 40);
    for (const double tau : {1e-4, 1.0, 1e4}) {
        for (const double scale : {1.0, 1e4}) {
            std::vector<SmithWatermanConfig> configs = proper_configs(tau);
            configs.push_back(compat_config(tau));
            for (SmithWatermanConfig cfg : configs) {
                cfg.learnable_temperature = true;
                cfg.gap_open = GapOpen{cfg.gap_open.value * scale};
                cfg.gap_extend = GapExtend{cfg.gap_extend.value * scale};
                INFO(describe(cfg) << " scale " << scale);
                SmithWaterman sw(cfg, ops::SubstitutionMatrix::dna(2.0 * scale / 2.0, -scale));
                const Batch b = batch_of(sw, {{long_q, short_t}, {"A", "C"}, {"A", mid_q}, {mid_q, mid_t}});
                ad::Binder<double> bind;
                ad::Binder<float> fbind;
                const auto d = sw.apply(bind, b.pairs).score;
                const auto f = sw.apply(fbind, b.pairs).score;
                for (std::size_t k = 0; k < d.size(); ++k) {
                    CHECK(std::isfinite(d[k]));
                    CHECK(std::isfinite(f[k]));
                    CHECK(static_cast<double>(f[k]) == Approx(d[k]).epsilon(1e-3).margin(1e-3 * scale));
                }
                // Gradients and posteriors of the shorter pairs.
                const std::vector<ops::CodePair> small(b.pairs.begin() + 1, b.pairs.end());
                for (ad::Parameter* p : sw.parameters()) p->zero_grad();
                ad::Tape tape;
                ad::ScopedTape scope(tape);
                ad::Binder<ad::Var> vb(tape);
                const auto r = sw.apply(vb, small, {.posterior = true});
                ad::Var sum = 0.0;
                for (const ad::Var& v : r.score) sum = sum + v;
                tape.backward(sum);
                vb.accumulate_grad();
                for (ad::Parameter* p : sw.parameters()) {
                    for (const double g : p->grad()) CHECK(std::isfinite(g));
                }
                for (const auto& P : r.posterior) {
                    for (const double v : P) CHECK((std::isfinite(v) && v >= 0.0 && v <= 1.0 + 1e-9));
                }
            }
        }
    }
    // At τ = 1e-4 the soft local score equals the classic DP to within τ·(path length)·ln 4.
    const SmithWaterman soft({.gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0}, .temperature = 1e-4});
    const std::vector<std::uint8_t> q = soft.encode(mid_q), t = soft.encode(mid_t);
    const double classic = classic_dp(q, t, soft.substitution().values(), 4, 3.0, 1.0, true);
    CHECK(std::fabs(soft.score(mid_q, mid_t) - classic) <= 1e-4 * 700.0);
}

// ---- value_and_grad: the tape-free training entry point ---------------------------------------------

namespace {

/// [∂/∂S..., ∂/∂open, ∂/∂extend, ∂/∂τ] of Σ_k w_k·score_k on the tape (the fused Var node).
std::vector<double> tape_gradients(SmithWaterman& sw, const std::vector<ops::CodePair>& pairs,
                                   const std::vector<double>& w) {
    for (ad::Parameter* p : {&sw.substitution(), &sw.gap_open(), &sw.gap_extend(), &sw.temperature()}) p->zero_grad();
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> vb(tape);
    const auto r = sw.apply(vb, pairs);
    ad::Var sum = 0.0;
    for (std::size_t k = 0; k < r.score.size(); ++k) sum = sum + r.score[k] * w[k];
    tape.backward(sum);
    vb.accumulate_grad();
    std::vector<double> g(sw.substitution().grad().begin(), sw.substitution().grad().end());
    g.push_back(sw.gap_open().grad()[0]);
    g.push_back(sw.gap_extend().grad()[0]);
    g.push_back(sw.temperature().grad()[0]);
    return g;
}

template <class F>
std::vector<double> vag_gradients(const ops::SwGradResult<F>& r) {
    std::vector<double> g(r.substitution.begin(), r.substitution.end());
    g.push_back(static_cast<double>(r.gap_open));
    g.push_back(static_cast<double>(r.gap_extend));
    g.push_back(static_cast<double>(r.temperature));
    return g;
}

/// Central differences of Σ_k w_k·score_k (double forward) in every parameter value.
std::vector<double> fd_gradients(SmithWaterman& sw, const std::vector<ops::CodePair>& pairs,
                                 const std::vector<double>& w, double h) {
    auto loss = [&] {
        ad::Binder<double> bind;
        const auto r = sw.apply(bind, pairs);
        double s = 0.0;
        for (std::size_t k = 0; k < r.score.size(); ++k) s += w[k] * r.score[k];
        return s;
    };
    std::vector<double> g;
    for (ad::Parameter* p : {&sw.substitution(), &sw.gap_open(), &sw.gap_extend(), &sw.temperature()}) {
        for (double& v : p->values()) {
            const double v0 = v;
            v = v0 + h;
            const double up = loss();
            v = v0 - h;
            const double down = loss();
            v = v0;
            g.push_back((up - down) / (2.0 * h));
        }
    }
    return g;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double rel, const char* what) {
    REQUIRE(got.size() == want.size());
    double scale = 1.0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    for (std::size_t e = 0; e < got.size(); ++e) {
        INFO(what << ": entry " << e << " (last three: open, extend, tau): " << got[e] << " vs " << want[e]);
        CHECK(std::isfinite(got[e]));
        CHECK(std::fabs(got[e] - want[e]) <= rel * scale);
    }
}

} // namespace

TEST_CASE("SmithWaterman::value_and_grad = the Var tape = finite differences, float and double, checkpointed",
          "[ops][sw][ad][value_and_grad]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(0.9);
    configs.push_back(compat_config(1.1, 2.0, 0.5));
    std::mt19937 rng(21);
    for (SmithWatermanConfig cfg : configs) {
        cfg.learnable_temperature = true;
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        std::vector<std::pair<std::string, std::string>> strs{{"ACGTTAG", "ACTTAGG"}, {"G", "GACT"}, {"TTACG", "CGA"}};
        for (int k = 0; k < 9; ++k) strs.push_back({random_dna(rng, 5 + 3 * k), random_dna(rng, 30 - 2 * k)});
        const Batch b = batch_of(sw, strs);
        std::vector<double> w;
        for (std::size_t k = 0; k < b.pairs.size(); ++k) w.push_back(k % 5 == 3 ? 0.0 : 1.0 + 0.5 * static_cast<double>(k));
        const std::vector<double> tape = tape_gradients(sw, b.pairs, w);
        const auto d = sw.value_and_grad<double>(b.pairs, w);
        const auto dk = sw.value_and_grad<double>(b.pairs, w, ops::SwGradOptions{3});
        const auto f = sw.value_and_grad<float>(b.pairs, w, ops::SwGradOptions{4});
        check_close(vag_gradients(d), tape, 1e-12, "double vs tape");
        check_close(vag_gradients(dk), tape, 1e-12, "double checkpointed vs tape");
        check_close(vag_gradients(f), tape, 2e-5, "float vs tape");
        check_close(vag_gradients(d), fd_gradients(sw, b.pairs, w, 1e-5), 1e-6, "double vs finite differences");
        SmithWatermanConfig ck = cfg;
        ck.checkpoint = 2; // the Var node's backward with checkpoints
        SmithWaterman swk(ck);
        check_close(tape_gradients(swk, b.pairs, w), tape, 1e-12, "checkpointed tape vs tape");
        ad::Binder<double> bind;
        const auto scores = sw.apply(bind, b.pairs).score;
        for (std::size_t k = 0; k < scores.size(); ++k) {
            CHECK(d.score[k] == Approx(scores[k]).epsilon(1e-12));
            CHECK(static_cast<double>(f.score[k]) == Approx(scores[k]).epsilon(1e-5).margin(1e-5));
        }
        // Cpu = CpuParallel
        const auto dp = sw.value_and_grad<double>(b.pairs, w, {}, exec::CpuParallel{2});
        check_close(vag_gradients(dp), vag_gradients(d), 1e-13, "CpuParallel vs Cpu");
    }
}

TEST_CASE("SmithWaterman::value_and_grad gives d/dtau only where learnable or asked for, the rest unchanged",
          "[ops][sw][ad][value_and_grad]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(0.9);
    configs.push_back(compat_config(1.1, 2.0, 0.5));
    std::mt19937 rng(23);
    for (const SmithWatermanConfig& cfg : configs) {
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        SmithWatermanConfig lc = cfg;
        lc.learnable_temperature = true;
        SmithWaterman swl(lc);
        // many short pairs (the inter-pair kernel) and one long pair alone (the wavefront)
        std::vector<std::pair<std::string, std::string>> many;
        for (int k = 0; k < 40; ++k) many.push_back({random_dna(rng, 20 + k), random_dna(rng, 45 - k / 2)});
        const Batch bm = batch_of(sw, many);
        const Batch bl = batch_of(sw, {{random_dna(rng, 400), random_dna(rng, 380)}});
        for (const Batch* b : {&bm, &bl}) {
            const std::vector<double> w(b->pairs.size(), 0.75);
            const auto without = sw.value_and_grad<double>(b->pairs, w);
            const auto with = sw.value_and_grad<double>(b->pairs, w, {.temperature_gradient = true});
            const auto learnable = swl.value_and_grad<double>(b->pairs, w);
            const auto without_f = sw.value_and_grad<float>(b->pairs, w);
            const auto with_f = sw.value_and_grad<float>(b->pairs, w, {.temperature_gradient = true});
            CHECK(without.temperature == 0.0);
            CHECK(without_f.temperature == 0.0f);
            CHECK(with.temperature != 0.0);
            CHECK(learnable.temperature == with.temperature);
            CHECK(with_f.temperature == Approx(with.temperature).epsilon(1e-3));
            // skipping the entropy terms changes no other value
            CHECK(without.score == with.score);
            CHECK(without.substitution == with.substitution);
            CHECK(without.gap_open == with.gap_open);
            CHECK(without.gap_extend == with.gap_extend);
            CHECK(without_f.substitution == with_f.substitution);
            CHECK(without_f.gap_extend == with_f.gap_extend);
        }
        // the tape: a fixed temperature's node leaves ∂/∂τ out and the other gradients as they were
        std::vector<double> w(bm.pairs.size(), 1.0);
        std::vector<double> fixed = tape_gradients(sw, bm.pairs, w), learn = tape_gradients(swl, bm.pairs, w);
        CHECK(fixed.back() == 0.0);
        CHECK(learn.back() != 0.0);
        fixed.pop_back();
        learn.pop_back();
        CHECK(fixed == learn);
    }
}

TEST_CASE("SmithWaterman::value_and_grad with kept tables (a workspace, the operator's cache) gives the same bits, call after call",
          "[ops][sw][value_and_grad]") {
    std::vector<SmithWatermanConfig> configs = proper_configs(0.7);
    configs.push_back(compat_config(1.1, 2.0, 0.5));
    std::mt19937 rng(5);
    std::vector<std::pair<std::string, std::string>> big, small;
    for (int k = 0; k < 40; ++k) big.push_back({random_dna(rng, 20 + k % 60), random_dna(rng, 80 - k % 50)});
    for (int k = 0; k < 20; ++k) small.push_back({random_dna(rng, 5 + k), random_dna(rng, 30 - k)});
    ops::SwWorkspace ws; // one workspace for every model and size below: stale tables must not matter
    for (const SmithWatermanConfig& cfg : configs) {
        INFO(describe(cfg));
        SmithWaterman sw(cfg); // keeps its tables in its own cache between calls (the default)
        SmithWatermanConfig fresh_cfg = cfg;
        fresh_cfg.table_cache_bytes = 0;
        const SmithWaterman fresh(fresh_cfg); // fresh tables every call
        const Batch bb = batch_of(sw, big), bs = batch_of(sw, small);
        const std::vector<double> wb(bb.pairs.size(), 0.75), wsm(bs.pairs.size(), -1.25);
        auto same = [](const auto& a, const auto& b) {
            CHECK(a.score == b.score);
            CHECK(a.substitution == b.substitution);
            CHECK(a.gap_open == b.gap_open);
            CHECK(a.gap_extend == b.gap_extend);
            CHECK(a.temperature == b.temperature);
        };
        for (int round = 0; round < 2; ++round) {
            const auto ref_b = fresh.value_and_grad<double>(bb.pairs, wb);
            same(sw.value_and_grad<double>(bb.pairs, wb, {.workspace = &ws}), ref_b);
            same(sw.value_and_grad<double>(bb.pairs, wb), ref_b);
            same(sw.value_and_grad<double>(bs.pairs, wsm, {.workspace = &ws}), fresh.value_and_grad<double>(bs.pairs, wsm));
            same(sw.value_and_grad<double>(bs.pairs, wsm), fresh.value_and_grad<double>(bs.pairs, wsm));
            same(sw.value_and_grad<double>(bb.pairs, wb, {.checkpoint = 3, .workspace = &ws}),
                 fresh.value_and_grad<double>(bb.pairs, wb, {.checkpoint = 3}));
            same(sw.value_and_grad<double>(bb.pairs, wb, {.checkpoint = 3}),
                 fresh.value_and_grad<double>(bb.pairs, wb, {.checkpoint = 3}));
            same(sw.value_and_grad<float>(bb.pairs, wb, {.workspace = &ws}), fresh.value_and_grad<float>(bb.pairs, wb));
            same(sw.value_and_grad<float>(bb.pairs, wb), fresh.value_and_grad<float>(bb.pairs, wb));
            // two threads add their partial sums in either order: equal scores, gradients to rounding
            const auto pa = sw.value_and_grad<double>(bb.pairs, wb, {.workspace = &ws}, exec::CpuParallel{2});
            const auto pb = fresh.value_and_grad<double>(bb.pairs, wb, {}, exec::CpuParallel{2});
            const auto pc = sw.value_and_grad<double>(bb.pairs, wb, {}, exec::CpuParallel{2});
            CHECK(pa.score == pb.score);
            CHECK(pc.score == pb.score);
            check_close(vag_gradients(pa), vag_gradients(pb), 1e-13, "CpuParallel with and without a workspace");
            check_close(vag_gradients(pc), vag_gradients(pb), 1e-13, "CpuParallel with and without the cache");
        }
        CHECK(sw.cached_table_bytes() > 0);
        CHECK(fresh.cached_table_bytes() == 0);
    }
    CHECK(ws.bytes() > 0);
    ws.release();
    CHECK(ws.bytes() == 0);
}

TEST_CASE("SmithWaterman's table cache: the limit, release, copies, the tape, concurrent calls", "[ops][sw][value_and_grad]") {
    std::mt19937 rng(8);
    std::vector<std::pair<std::string, std::string>> strs;
    for (int k = 0; k < 24; ++k) strs.push_back({random_dna(rng, 40 + k), random_dna(rng, 60 - k)});
    SmithWatermanConfig cfg = proper_configs(0.9).front();
    SmithWaterman sw(cfg);
    const Batch b = batch_of(sw, strs);
    const std::vector<double> w(b.pairs.size(), 0.5);
    CHECK(sw.cached_table_bytes() == 0);
    const auto first = sw.value_and_grad<double>(b.pairs, w);
    const std::size_t kept = sw.cached_table_bytes();
    CHECK(kept > 0);
    // a copy shares the cache; release empties it for both
    const SmithWaterman copy = sw;
    CHECK(copy.cached_table_bytes() == kept);
    copy.release_cached_tables();
    CHECK(sw.cached_table_bytes() == 0);
    // the tape's reverse pass over code pairs keeps its (double) tables too, with the same gradients
    const std::vector<double> tape_fresh = [&] {
        SmithWatermanConfig c0 = cfg;
        c0.table_cache_bytes = 0;
        SmithWaterman f(c0);
        return tape_gradients(f, b.pairs, w);
    }();
    CHECK(tape_gradients(sw, b.pairs, w) == tape_fresh);
    CHECK(sw.cached_table_bytes() > 0);
    CHECK(tape_gradients(sw, b.pairs, w) == tape_fresh);
    // tables above the limit are freed at the end of the call that needed them
    SmithWatermanConfig small = cfg;
    small.table_cache_bytes = kept - 1;
    const SmithWaterman tight(small);
    const auto r = tight.value_and_grad<double>(b.pairs, w);
    CHECK(r.score == first.score);
    CHECK(r.substitution == first.substitution);
    CHECK(tight.cached_table_bytes() == 0);
    // calls from several threads at once on one operator: one holds the cache, the others
    // allocate their own tables; every result equals the serial one
    std::vector<ops::SwGradResult<double>> got(4);
    DIFFBIO_OMP(parallel for num_threads(4))
    for (int t = 0; t < 4; ++t) got[static_cast<std::size_t>(t)] = sw.value_and_grad<double>(b.pairs, w);
    for (const auto& g : got) {
        CHECK(g.score == first.score);
        CHECK(g.substitution == first.substitution);
        CHECK(g.gap_open == first.gap_open);
        CHECK(g.gap_extend == first.gap_extend);
    }
}

TEST_CASE("SmithWaterman::value_and_grad stays finite: tau 1e-4..1e4, scores 1e4, a 10,000 x 50 pair",
          "[ops][sw][numerics][value_and_grad]") {
    std::mt19937 rng(17);
    const std::string long_q = random_dna(rng, 10000), t50 = random_dna(rng, 50);
    for (const double tau : {1e-4, 1e4}) {
        for (const double scale : {1.0, 1e4}) {
            std::vector<SmithWatermanConfig> configs = proper_configs(tau);
            configs.push_back(compat_config(tau));
            for (std::size_t c = 0; c < configs.size(); ++c) {
                SmithWatermanConfig cfg = configs[c];
                cfg.gap_open = GapOpen{cfg.gap_open.value * scale};
                cfg.gap_extend = GapExtend{cfg.gap_extend.value * scale};
                INFO(describe(cfg) << " scale " << scale);
                SmithWaterman sw(cfg, ops::SubstitutionMatrix::dna(scale, -scale));
                // the 10,000-letter query for one model per setting, in turn (test time); 1,000 otherwise
                const std::size_t setting = (tau > 1.0 ? 2U : 0U) + (scale > 1.0 ? 1U : 0U);
                const std::string q = c == setting ? long_q : long_q.substr(0, 1000);
                const Batch b = batch_of(sw, {{q, t50}, {"A", "C"}, {t50, "A"}});
                const std::vector<double> w{1.0, -0.5, 2.0};
                const auto d = sw.value_and_grad<double>(b.pairs, w, {.temperature_gradient = true});
                const auto f = sw.value_and_grad<float>(b.pairs, w, {.checkpoint = 100, .temperature_gradient = true});
                for (const double g : vag_gradients(d)) CHECK(std::isfinite(g));
                for (const double g : vag_gradients(f)) CHECK(std::isfinite(g));
                for (std::size_t k = 0; k < w.size(); ++k) {
                    CHECK(std::isfinite(d.score[k]));
                    CHECK(std::isfinite(f.score[k]));
                    CHECK(static_cast<double>(f.score[k]) == Approx(d.score[k]).epsilon(1e-3).margin(1e-3 * scale));
                }
            }
        }
    }
}

TEST_CASE("SmithWaterman::value_and_grad<float> below float's range of tau: the hard limit, finite, as double's",
          "[ops][sw][numerics][value_and_grad]") {
    std::mt19937 rng(29);
    const std::string q = random_dna(rng, 120), t = random_dna(rng, 90);
    for (const double tau : {1e-50, 1e-300}) { // 0 as a float (it was 0/0 = NaN)
        std::vector<SmithWatermanConfig> configs = proper_configs(tau);
        configs.push_back(compat_config(tau));
        for (const SmithWatermanConfig& cfg : configs) {
            INFO(describe(cfg) << " tau " << tau);
            SmithWaterman sw(cfg);
            const Batch b = batch_of(sw, {{q, t}, {"ACGT", "ACGT"}});
            const std::vector<double> w{1.0, 1.0};
            const auto d = sw.value_and_grad<double>(b.pairs, w);
            const auto f = sw.value_and_grad<float>(b.pairs, w);
            for (const double g : vag_gradients(f)) CHECK(std::isfinite(g));
            for (std::size_t k = 0; k < w.size(); ++k) CHECK(static_cast<double>(f.score[k]) == Approx(d.score[k]).epsilon(1e-6));
        }
    }
}

TEST_CASE("SmithWaterman at huge temperatures and scores: as the reference recursion up to the kernels' limits, "
          "refused above them", "[ops][sw][numerics][errors]") {
    // The SIMD (and CUDA) kernels mask the cells outside a pair with the sentinel −1e30 (float) or
    // −1e300 (double), which weighs 0 in a soft max only for τ ≤ 1e27 (1e296): at τ = 1e30 float
    // counted the masked cells of the shorter pair as paths (ACGT/ACGT scored 35 times its value),
    // and at 1e38 it gave NaN. Up to the limit every scalar equals the reference recursion (−∞ for
    // "no path", any τ); above it the kernels refuse with a message.
    std::mt19937 rng(31);
    const std::string q = random_dna(rng, 120), t = random_dna(rng, 90);
    // 40 pairs of different lengths: full lane groups of the inter-pair kernels, whose masked cells
    // are the ones at stake (a pair or two run the wavefront or the scalar kernel)
    std::vector<std::pair<std::string, std::string>> strs{{"ACGT", "ACGT"}, {q, t}};
    for (int k = 0; k < 38; ++k) strs.emplace_back(random_dna(rng, 5 + rng() % 60), random_dna(rng, 5 + rng() % 60));
    const std::vector<double> w(strs.size(), 1.0);
    for (const double tau : {1e26, 1e27}) {
        for (const SmithWatermanConfig& cfg : proper_configs(tau)) {
            INFO(describe(cfg) << " tau " << tau);
            SmithWaterman sw(cfg);
            const Batch b = batch_of(sw, strs);
            const auto d = sw.value_and_grad<double>(b.pairs, w);
            const auto f = sw.value_and_grad<float>(b.pairs, w);
            ad::Binder<float> fbind;
            const auto fa = sw.apply(fbind, b.pairs);
            for (std::size_t k = 0; k < w.size(); ++k) {
                ad::Binder<double> bind;
                const double ref = sw.reference(bind, b.pairs[k]).score;
                CHECK(std::fabs(ref) > 1e26);
                CHECK(d.score[k] == Approx(ref).epsilon(1e-12));
                CHECK(static_cast<double>(f.score[k]) == Approx(ref).epsilon(1e-5));
                CHECK(static_cast<double>(fa.score[k]) == Approx(ref).epsilon(1e-5));
            }
        }
    }
    for (const SmithWatermanConfig& cfg : proper_configs(1e28)) {
        INFO(describe(cfg));
        SmithWaterman sw(cfg);
        const Batch b = batch_of(sw, strs);
        CHECK_THROWS_WITH(sw.value_and_grad<float>(b.pairs, w),
                          Contains("SmithWaterman::value_and_grad: temperature 1e+28 is above the float kernels' limit "
                                   "of 1e+27") &&
                              Contains("compute in double"));
        ad::Binder<float> fbind;
        CHECK_THROWS_WITH(sw.apply(fbind, b.pairs), Contains("SmithWaterman::apply: temperature 1e+28"));
        const auto d = sw.value_and_grad<double>(b.pairs, w);
        ad::Binder<double> bind;
        CHECK(d.score[1] == Approx(sw.reference(bind, b.pairs[1]).score).epsilon(1e-12));
    }
    SmithWaterman huge(proper_configs(1e297)[0]);
    const Batch hb = batch_of(huge, {{"ACGT", "ACGT"}});
    CHECK_THROWS_WITH(huge.value_and_grad<double>(hb.pairs, std::vector<double>{1.0}),
                      Contains("above the double kernels' limit of 1e+296"));
    // Gap penalties: the kernels take magnitudes up to 1e20 (float) and 1e290 (double); past float's
    // range (3.4e38 · 3 gaps) a result could not even be stored.
    SmithWatermanConfig gcfg{.mode = AlignmentMode::Global, .gaps = GapModel::Linear, .gap_open = GapOpen{0.0},
                             .gap_extend = GapExtend{1e20}};
    SmithWaterman gsw(gcfg);
    const Batch gb = batch_of(gsw, {{"ACGT", "A"}});
    const std::vector<double> w1{1.0};
    ad::Binder<double> gbind;
    const double gref = gsw.reference(gbind, gb.pairs[0]).score;
    CHECK(gref == Approx(-3e20).epsilon(1e-12));
    CHECK(static_cast<double>(gsw.value_and_grad<float>(gb.pairs, w1).score[0]) == Approx(gref).epsilon(1e-6));
    gcfg.gap_extend = GapExtend{2e20};
    CHECK_THROWS_WITH(SmithWaterman(gcfg).value_and_grad<float>(gb.pairs, w1),
                      Contains("gap penalty of magnitude 2e+20 is above the float kernels' limit of 1e+20"));
    CHECK(SmithWaterman(gcfg).value_and_grad<double>(gb.pairs, w1).score[0] == Approx(-6e20).epsilon(1e-12));
    // Profiles scale the substitution scores: a cell's score is at most (A · max|x|)² · max|S|, so
    // one-hot rows times 1e9 (a bound of 3.2e19) run in float, and times 1e10 (3.2e21) are refused;
    // double computes both as the reference recursion.
    SmithWaterman psw(proper_configs(1.0)[0]);
    for (const double scale : {1e9, 1e10}) {
        INFO("profile scale " << scale);
        std::vector<double> hot(4 * 4, 0.0);
        for (std::size_t i = 0; i < 4; ++i) hot[i * 4 + i] = scale;
        const std::vector<ops::ProfilePair<double>> prof{{hot, hot}};
        ad::Binder<double> pdb;
        const double ref = psw.reference(pdb, prof[0]).score;
        CHECK(ref == Approx(4 * 2 * scale * scale).epsilon(1e-12));
        ad::Binder<float> pfb;
        const std::vector<float> hotf(hot.begin(), hot.end());
        const std::vector<ops::ProfilePair<float>> proff{{hotf, hotf}};
        if (scale < 1e10) {
            CHECK(static_cast<double>(psw.apply(pfb, proff).score[0]) == Approx(ref).epsilon(1e-6));
        } else {
            CHECK_THROWS_WITH(psw.apply(pfb, proff), Contains("(profile weights included) or gap penalty of magnitude "
                                                             "3.2e+21 is above the float kernels' limit"));
        }
        CHECK(psw.apply(pdb, prof).score[0] == Approx(ref).epsilon(1e-12));
    }
}

TEST_CASE("SmithWaterman::value_and_grad rejects mismatched or non-finite weights", "[ops][sw][errors]") {
    const SmithWaterman sw;
    const Batch b = batch_of(sw, {{"ACGT", "ACG"}, {"A", "C"}});
    CHECK_THROWS_AS(sw.value_and_grad<double>(b.pairs, std::vector<double>{1.0}), ShapeError);
    CHECK_THROWS_WITH(sw.value_and_grad<double>(b.pairs, std::vector<double>{1.0, inf}), Contains("weight 1"));
}

// ---- errors --------------------------------------------------------------------------------------

TEST_CASE("SmithWaterman rejects bad configurations and inputs", "[ops][sw][errors]") {
    CHECK_THROWS_WITH(SmithWaterman({.temperature = 0.0}), Contains("'temperature'"));
    CHECK_THROWS_AS(SmithWaterman({.temperature = -1.0}), InvalidArgument);
    CHECK_THROWS_AS(SmithWaterman({.temperature = std::nan("")}), InvalidArgument);
    CHECK_THROWS_WITH(SmithWaterman({.gap_open = GapOpen{inf}}), Contains("'gap_open'"));
    CHECK_THROWS_WITH(SmithWaterman({.gap_extend = GapExtend{std::nan("")}}), Contains("'gap_extend'"));
    CHECK_THROWS_WITH(SmithWaterman({.diffbio_compat = true}), Contains("diffbio_compat"));
    CHECK_THROWS_AS(SmithWaterman({.mode = AlignmentMode::Global, .gaps = GapModel::Linear, .diffbio_compat = true}),
                    InvalidArgument);
    // Matrices.
    CHECK_THROWS_AS(ops::SubstitutionMatrix("ACGT", std::vector<double>(15, 1.0)), ShapeError);
    CHECK_THROWS_WITH(ops::SubstitutionMatrix("ACGT", std::vector<double>(15, 1.0)), Contains("expected 16"));
    std::vector<double> nan_m(16, 1.0);
    nan_m[5] = std::nan("");
    CHECK_THROWS_WITH(ops::SubstitutionMatrix("ACGT", nan_m), Contains("(1, 1)"));
    CHECK_THROWS_WITH(ops::SubstitutionMatrix("ACGA", std::vector<double>(16, 1.0)), Contains("twice"));
    // Parameters that an optimiser made invalid are caught at apply time.
    SmithWaterman sw;
    sw.substitution().values()[3] = std::nan("");
    CHECK_THROWS_WITH(sw.score("ACGT", "ACGT"), Contains("substitution matrix entry (0, 3)"));
    SmithWaterman sw2({.learnable_temperature = true});
    sw2.temperature().values()[0] = -0.5;
    CHECK_THROWS_WITH(sw2.score("ACGT", "ACGT"), Contains("temperature"));
    // Alphabet mismatches: codes beyond A, letters outside the alphabet, profiles of the wrong width.
    const SmithWaterman dna;
    const std::vector<std::uint8_t> ok{0, 1, 2}, bad{0, 7, 2};
    ad::Binder<double> bind;
    CHECK_THROWS_WITH(dna.apply(bind, std::vector<ops::CodePair>{{ok, bad}}),
                      Contains("target code 7 at position 1 is not < the alphabet size 4"));
    CHECK_THROWS_WITH(dna.encode("ACXT"), Contains("'X' at position 2"));
    CHECK_THROWS_AS(SmithWaterman(ops::SubstitutionMatrix::blosum62()).encode("ACGTJ"), InvalidArgument);
    const std::vector<double> x(10, 0.25), y(20, 0.05);
    CHECK_THROWS_AS(dna.apply(bind, std::vector<ops::ProfilePair<double>>{{x, x}}), ShapeError);
    CHECK_THROWS_WITH(dna.apply(bind, std::vector<ops::ProfilePair<double>>{{x, x}}), Contains("multiple of the alphabet size 4"));
    const SmithWaterman protein(ops::SubstitutionMatrix::blosum62());
    CHECK_NOTHROW(protein.apply(bind, std::vector<ops::ProfilePair<double>>{{y, y}}));
    CHECK_THROWS_AS(protein.apply(bind, std::vector<ops::ProfilePair<double>>{{x, y}}), ShapeError);
    std::vector<double> nan_p(8, 0.25);
    nan_p[6] = inf;
    CHECK_THROWS_WITH(dna.apply(bind, std::vector<ops::ProfilePair<double>>{{nan_p, nan_p}}), Contains("not finite"));
}
