// Parity of ops::SmithWaterman with parasail (https://github.com/jeffdaily/parasail), built only when
// parasail is installed (Debian: libparasail-dev; see tests/CMakeLists.txt).
//
// Mapping: GapOpen{o}, GapExtend{e} are parasail's `open` and `gap` arguments unchanged (a gap of
// length k costs o + (k − 1)·e in both); our linear gaps (e per position) are parasail with
// open = gap = e; diffbio_compat's per-position g = open + extend is parasail with open = gap = g.
// Local hard mode is parasail_sw, global hard mode parasail_nw.

#include <catch2/catch.hpp>

#include <parasail.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <diffbio/ops/alignment/smith_waterman.hpp>

using namespace diffbio;
using ops::AlignmentMode;
using ops::GapExtend;
using ops::GapModel;
using ops::GapOpen;
using ops::SmithWaterman;
using ops::SmithWatermanConfig;

namespace {

std::string random_seq(std::mt19937& rng, const std::string& alphabet, std::size_t len) {
    std::uniform_int_distribution<std::size_t> d(0, alphabet.size() - 1);
    std::string s(len, 'A');
    for (char& c : s) c = alphabet[d(rng)];
    return s;
}

enum class Peer { Sw, Nw };

/// parasail's score of one pair (the matrix made by the caller).
int parasail_score(Peer peer, const std::string& a, const std::string& b, int open, int gap,
                   const parasail_matrix_t* m) {
    parasail_result_t* r = peer == Peer::Sw
                               ? parasail_sw(a.data(), static_cast<int>(a.size()), b.data(), static_cast<int>(b.size()),
                                             open, gap, m)
                               : parasail_nw(a.data(), static_cast<int>(a.size()), b.data(), static_cast<int>(b.size()),
                                             open, gap, m);
    const int s = parasail_result_get_score(r);
    parasail_result_free(r);
    return s;
}

/// Our scores of a batch of string pairs (one call, the batched API).
std::vector<double> our_scores(const SmithWaterman& sw, const std::vector<std::pair<std::string, std::string>>& strs) {
    std::vector<std::vector<std::uint8_t>> seqs;
    seqs.reserve(2 * strs.size());
    std::vector<ops::CodePair> pairs;
    for (const auto& [a, b] : strs) {
        seqs.push_back(sw.encode(a));
        seqs.push_back(sw.encode(b));
    }
    for (std::size_t k = 0; k < strs.size(); ++k) pairs.push_back({seqs[2 * k], seqs[2 * k + 1]});
    ad::Binder<double> bind;
    return sw.apply(bind, pairs).score;
}

} // namespace

TEST_CASE("parasail: the gap convention open + (k - 1) extend", "[parasail][sw]") {
    // ACGTTTACGT vs ACGTACGT: eight matches (16) around one gap of length 2.
    parasail_matrix_t* m = parasail_matrix_create("ACGT", 2, -1);
    const SmithWaterman sw({.gap_open = GapOpen{3.0}, .gap_extend = GapExtend{1.0}, .hard = true});
    CHECK(parasail_score(Peer::Sw, "ACGTTTACGT", "ACGTACGT", 3, 1, m) == 12);
    CHECK(sw.score("ACGTTTACGT", "ACGTACGT") == 16.0 - (3.0 + 1.0 * 1.0));
    CHECK(sw.traceback("ACGTTTACGT", "ACGTACGT").cigar == "3M2I5M");
    parasail_matrix_free(m);
}

TEST_CASE("parasail: 10,000 random DNA pairs, local affine hard = parasail_sw", "[parasail][sw]") {
    std::mt19937 rng(2024);
    std::uniform_int_distribution<std::size_t> len(10, 300);
    std::uniform_int_distribution<int> match(1, 5), mismatch(-5, -1), open(1, 15);
    std::size_t agree = 0, total = 0, soft_ok = 0, soft_total = 0;
    for (int block = 0; block < 100; ++block) {
        const int ma = match(rng), mi = mismatch(rng), o = open(rng);
        const int e = std::uniform_int_distribution<int>(1, o)(rng);
        std::vector<std::pair<std::string, std::string>> strs;
        for (int k = 0; k < 100; ++k) strs.emplace_back(random_seq(rng, "ACGT", len(rng)), random_seq(rng, "ACGT", len(rng)));
        const SmithWaterman hard({.gap_open = GapOpen{double(o)}, .gap_extend = GapExtend{double(e)}, .hard = true},
                                 ops::SubstitutionMatrix::dna(ma, mi));
        const std::vector<double> ours = our_scores(hard, strs);
        parasail_matrix_t* m = parasail_matrix_create("ACGT", ma, mi);
        std::vector<int> peer(strs.size());
        for (std::size_t k = 0; k < strs.size(); ++k) {
            peer[k] = parasail_score(Peer::Sw, strs[k].first, strs[k].second, o, e, m);
            INFO("block " << block << " pair " << k << " (match " << ma << ", mismatch " << mi << ", open " << o
                          << ", extend " << e << ")");
            CHECK(ours[k] == double(peer[k]));
            agree += ours[k] == double(peer[k]);
            ++total;
        }
        parasail_matrix_free(m);
        // The soft score at τ = 0.01 on the first 3 pairs of every block: hard ≤ soft ≤ hard + τ·bound.
        const double tau = 0.01;
        const SmithWaterman soft({.gap_open = GapOpen{double(o)}, .gap_extend = GapExtend{double(e)}, .temperature = tau},
                                 ops::SubstitutionMatrix::dna(ma, mi));
        const std::vector<std::pair<std::string, std::string>> few(strs.begin(), strs.begin() + 3);
        const std::vector<double> s = our_scores(soft, few);
        for (std::size_t k = 0; k < few.size(); ++k) {
            const double l = static_cast<double>(few[k].first.size() + few[k].second.size());
            const bool ok = s[k] >= peer[k] - 1e-9 && s[k] - peer[k] <= tau * (2.0 * (l + 2.0) * std::log(4.0) + 2.0 * std::log(l));
            CHECK(ok);
            soft_ok += ok;
            ++soft_total;
        }
    }
    CHECK(total == 10000);
    CHECK(agree == total);
    CHECK(soft_ok == soft_total);
    WARN("parasail parity: " << agree << " / " << total << " hard local affine scores equal; " << soft_ok << " / "
                             << soft_total << " soft scores (tau = 0.01) within the bound");
}

TEST_CASE("parasail: linear gaps, global mode and diffbio_compat", "[parasail][sw]") {
    std::mt19937 rng(99);
    std::uniform_int_distribution<std::size_t> len(10, 300);
    std::size_t agree = 0, total = 0;
    for (int block = 0; block < 20; ++block) {
        const int ma = 1 + block % 4, mi = -1 - block % 3, o = 2 + block % 7, e = 1 + block % 2;
        std::vector<std::pair<std::string, std::string>> strs;
        for (int k = 0; k < 50; ++k) strs.emplace_back(random_seq(rng, "ACGT", len(rng)), random_seq(rng, "ACGT", len(rng)));
        parasail_matrix_t* m = parasail_matrix_create("ACGT", ma, mi);
        struct Variant {
            SmithWatermanConfig cfg;
            Peer peer;
            int open, gap;
        };
        const Variant variants[] = {
            {{.mode = AlignmentMode::Local, .gaps = GapModel::Linear, .gap_extend = GapExtend{double(e)}, .hard = true},
             Peer::Sw, e, e},
            {{.mode = AlignmentMode::Global, .gaps = GapModel::Affine, .gap_open = GapOpen{double(o)},
              .gap_extend = GapExtend{double(e)}, .hard = true},
             Peer::Nw, o, e},
            {{.mode = AlignmentMode::Global, .gaps = GapModel::Linear, .gap_extend = GapExtend{double(e)}, .hard = true},
             Peer::Nw, e, e},
            {{.gaps = GapModel::Linear, .gap_open = GapOpen{double(o)}, .gap_extend = GapExtend{double(e)}, .hard = true,
              .diffbio_compat = true},
             Peer::Sw, o + e, o + e},
        };
        for (const Variant& v : variants) {
            const std::vector<double> ours = our_scores(SmithWaterman(v.cfg, ops::SubstitutionMatrix::dna(ma, mi)), strs);
            for (std::size_t k = 0; k < strs.size(); ++k) {
                const int p = parasail_score(v.peer, strs[k].first, strs[k].second, v.open, v.gap, m);
                INFO("block " << block << " pair " << k << " peer " << (v.peer == Peer::Sw ? "sw" : "nw") << " open "
                              << v.open << " gap " << v.gap);
                CHECK(ours[k] == double(p));
                agree += ours[k] == double(p);
                ++total;
            }
        }
        parasail_matrix_free(m);
    }
    CHECK(agree == total);
    WARN("parasail parity: " << agree << " / " << total << " linear-local, global and compat scores equal");
}

TEST_CASE("parasail: BLOSUM62 values and protein alignments", "[parasail][sw]") {
    const ops::SubstitutionMatrix b62 = ops::SubstitutionMatrix::blosum62();
    const parasail_matrix_t* pm = parasail_matrix_lookup("blosum62");
    REQUIRE(pm != nullptr);
    const std::string& alpha = b62.alphabet();
    for (const char a : alpha) {
        for (const char b : alpha) {
            const int ia = pm->mapper[static_cast<unsigned char>(a)], ib = pm->mapper[static_cast<unsigned char>(b)];
            INFO(a << " / " << b);
            CHECK(b62(static_cast<std::size_t>(b62.code(a)), static_cast<std::size_t>(b62.code(b))) ==
                  double(pm->matrix[ia * pm->size + ib]));
        }
    }
    std::mt19937 rng(62);
    std::uniform_int_distribution<std::size_t> len(10, 200);
    std::vector<std::pair<std::string, std::string>> strs;
    for (int k = 0; k < 300; ++k) strs.emplace_back(random_seq(rng, alpha, len(rng)), random_seq(rng, alpha, len(rng)));
    const SmithWaterman sw({.gap_open = GapOpen{11.0}, .gap_extend = GapExtend{1.0}, .hard = true}, b62);
    const std::vector<double> ours = our_scores(sw, strs);
    std::size_t agree = 0;
    for (std::size_t k = 0; k < strs.size(); ++k) {
        const int p = parasail_score(Peer::Sw, strs[k].first, strs[k].second, 11, 1, pm);
        CHECK(ours[k] == double(p));
        agree += ours[k] == double(p);
    }
    CHECK(agree == strs.size());
}
