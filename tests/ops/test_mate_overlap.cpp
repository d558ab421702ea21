#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/mate_overlap.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"
#include "read_fixtures.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;
using diffbio::test::batch_of;

namespace {

std::string revcomp(const std::string& s) {
    std::string r(s.rbegin(), s.rend());
    for (char& c : r) {
        c = c == 'A' ? 'T' : c == 'C' ? 'G' : c == 'G' ? 'C' : c == 'T' ? 'A' : c;
    }
    return r;
}

/// A pair of reads of length `len` from `fragment`: mate 1 reads the fragment then adapter 1,
/// mate 2 the reverse complement then adapter 2.
std::pair<std::string, std::string> read_pair(const std::string& fragment, std::size_t len, const std::string& a1,
                                              const std::string& a2, const std::string& filler = "") {
    std::string m1 = fragment + a1 + filler, m2 = revcomp(fragment) + a2 + filler;
    return {m1.substr(0, std::min(len, m1.size())), m2.substr(0, std::min(len, m2.size()))};
}

/// Score of two bases under match/mismatch scoring (exact strings, no one-hot algebra).
double base_score(char a, char b, double match, double mismatch) { return a == b ? match : mismatch; }
char complement(char c) { return revcomp(std::string(1, c))[0]; }

/// E_p and w_p straight from the definition, on strings (an independent reference).
std::pair<double, double> evidence(const std::string& m1, const std::string& m2, std::size_t p, const std::string& a1,
                                   const std::string& a2, double match, double mismatch) {
    double e = 0.0, w = 0.0;
    for (std::size_t k = 0; k < p; ++k) {
        const std::size_t j = p - 1 - k;
        if (k >= m1.size() || j >= m2.size()) continue;
        e += base_score(m1[k], complement(m2[j]), match, mismatch);
        w += 1.0;
    }
    for (std::size_t k = 0; p + k < m1.size() && k < a1.size(); ++k, w += 1.0) e += base_score(m1[p + k], a1[k], match, mismatch);
    for (std::size_t k = 0; p + k < m2.size() && k < a2.size(); ++k, w += 1.0) e += base_score(m2[p + k], a2[k], match, mismatch);
    return {e, w * match};
}

/// Pair views (mate 1, mate 2) of two batches.
auto views(const ReadBatch& b1, const ReadBatch& b2) { return std::pair{ops::view_of(b1), ops::view_of(b2)}; }

/// A weighted sum of both trimmed mates and the insert lengths, generic in the Binder.
auto weighted_output(const ops::MateOverlap& mo, const ReadBatch& b1, const ReadBatch& b2) {
    return [&mo, &b1, &b2](auto& bind) {
        const auto r = mo.apply(bind, ops::view_of(b1), ops::view_of(b2));
        using R = std::decay_t<decltype(r.insert_length[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.seq1.size(); ++i) s = s + r.seq1[i] * (0.5 + 0.01 * static_cast<double>(i % 17));
        for (std::size_t i = 0; i < r.quality2.size(); ++i) s = s + r.quality2[i] * (0.002 * static_cast<double>(i % 5));
        for (std::size_t i = 0; i < r.insert_length.size(); ++i) s = s + 0.3 * r.insert_length[i];
        return s;
    };
}

} // namespace

TEST_CASE("MateOverlap: soft retention equals the definition, computed on strings", "[ops][mate]") {
    // Adapters of 5 bases, match 1 / mismatch −3, τ_m 0.3, min_score 3.5, T = 2.
    const std::string a1 = "AGATC", a2 = "AGCTG";
    const auto [m1, m2] = read_pair("GATTACAGG", 12, a1, a2, "TT"); // insert 9 in 12 bp reads
    const auto [n1, n2] = read_pair("CCGTAGGCATTAGC", 10, a1, a2);  // insert 14 > 10: no read-through
    const ReadBatch b1 = batch_of({m1, n1}), b2 = batch_of({m2, n2.substr(0, 8)}); // mates of unequal length
    ops::MateOverlap mo({.adapter1 = a1, .adapter2 = a2, .temperature = 2.0});
    ad::Binder<double> bind;
    const auto [v1, v2] = views(b1, b2);
    const auto r = mo.apply(bind, v1, v2);
    const std::vector<std::pair<std::string, std::string>> pairs = {{m1, m2}, {n1, n2.substr(0, 8)}};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& [s1, s2] = pairs[i];
        const std::size_t P = std::max(s1.size(), s2.size());
        double R = 1.0, insert = 0.0;
        for (std::size_t p = 0; p < P; ++p) {
            const auto [e, w] = evidence(s1, s2, p, a1, a2, 1.0, -3.0);
            const double theta = std::max(0.3 * w, 3.5);
            R *= diffbio::sigmoid(-(e - theta) / 2.0);
            insert += R;
            if (p < s1.size()) CHECK(r.retention1[i * b1.length + p] == Approx(R).epsilon(1e-12).margin(1e-300));
            if (p < s2.size()) CHECK(r.retention2[i * b2.length + p] == Approx(R).epsilon(1e-12).margin(1e-300));
        }
        CHECK(r.insert_length[i] == Approx(insert).epsilon(1e-12));
    }
    // A fixed (not learnable) temperature gives the same values, and is reported as configured.
    CHECK(mo.temperature() == Approx(2.0).epsilon(1e-15));
    ops::MateOverlap fixed({.adapter1 = a1, .adapter2 = a2, .temperature = 2.0, .learnable_temperature = false});
    CHECK(fixed.temperature() == Approx(2.0).epsilon(1e-15));
    CHECK(fixed.parameters().size() + 1 == mo.parameters().size());
    const auto rf = fixed.apply(bind, v1, v2);
    CHECK(rf.retention1 == r.retention1);
    CHECK(rf.insert_length == r.insert_length);
    CHECK(r.insert_length[0] == Approx(9.0).margin(0.05));
    CHECK(r.insert_length[1] > 9.9);
    CHECK(r.retention2[1 * b2.length + 8] == 0.0); // padding of the shorter mate
    CHECK(r.quality1[3] == Approx(30.0 * r.retention1[3]).epsilon(1e-14));
    CHECK(mo.insert_lengths(v1, v2) == std::vector<std::uint32_t>{9, 10});
}

TEST_CASE("MateOverlap finds inserts whose adapter part is too short for single-end trimming", "[ops][mate]") {
    // 100 bp reads, inserts 97–99: 1–3 adapter bases that no single-end rule can tell from a read end.
    std::mt19937 rng(11);
    const char* bases = "ACGT";
    std::vector<std::string> r1, r2;
    std::vector<std::uint32_t> truth;
    for (std::size_t insert : {0, 1, 5, 20, 60, 97, 98, 99, 100, 101, 150, 199}) {
        std::string frag;
        for (std::size_t k = 0; k < insert; ++k) frag += bases[rng() % 4];
        std::string filler;
        for (int k = 0; k < 120; ++k) filler += bases[rng() % 4];
        const auto [m1, m2] = read_pair(frag, 100, "AGATCGGAAGAGCGGTTCAG", "AGATCGGAAGAGCGTCGTGT", filler);
        r1.push_back(m1);
        r2.push_back(m2);
        truth.push_back(static_cast<std::uint32_t>(std::min<std::size_t>(insert, 100)));
    }
    const ReadBatch b1 = batch_of(r1), b2 = batch_of(r2);
    ops::MateOverlap mo;
    CHECK(mo.insert_lengths(ops::view_of(b1), ops::view_of(b2)) == truth);
    // The single-end operator with the same rule misses the short adapter tails.
    ops::AdapterRemoval se({.adapter_sequence = "AGATCGGAAGAG", .match_threshold = 0.3, .min_overlap = 1,
                            .match_score = 1.0, .mismatch_score = -3.0, .min_score = 3.5});
    const auto single = se.trimmed_lengths(ops::view_of(b1));
    CHECK(single[7] == 100); // insert 99: one adapter base
    // Sequencing errors in the overlap (3 of 98 bases) still leave the evidence far above θ.
    std::string e1 = r1[6];
    for (std::size_t k : {10, 40, 80}) e1[k] = e1[k] == 'A' ? 'C' : 'A';
    const ReadBatch c1 = batch_of({e1}), c2 = batch_of({r2[6]});
    CHECK(mo.insert_lengths(ops::view_of(c1), ops::view_of(c2)) == std::vector<std::uint32_t>{98});
}

TEST_CASE("MateOverlap recovers the hard decision as T -> 0", "[ops][mate][limit]") {
    const auto [m1, m2] = read_pair("GATTACAGGT", 16, "ACGTTG", "TTGCAA", "CCCC");
    const auto [n1, n2] = read_pair("CATCAT", 16, "ACGTTG", "TTGCAA", "GGGGGGGGGG");
    const ReadBatch b1 = batch_of({m1, n1, "ACGTAC"}), b2 = batch_of({m2, n2, "GGGTTTGG"});
    ops::MateOverlap mo({.adapter1 = "ACGTTG", .adapter2 = "TTGCAA", .temperature = 1e-6});
    ad::Binder<double> bind;
    const auto r = mo.apply(bind, ops::view_of(b1), ops::view_of(b2));
    const auto cut = mo.insert_lengths(ops::view_of(b1), ops::view_of(b2));
    CHECK(cut == std::vector<std::uint32_t>{10, 6, 8});
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t l = 0; l < b1.lengths[i]; ++l) CHECK(r.retention1[i * b1.length + l] == (l < cut[i] ? 1.0 : 0.0));
        for (std::size_t l = 0; l < b2.lengths[i]; ++l) CHECK(r.retention2[i * b2.length + l] == (l < cut[i] ? 1.0 : 0.0));
        CHECK(r.insert_length[i] == static_cast<double>(cut[i]));
    }
}

TEST_CASE("MateOverlap gradients w.r.t. both mates: fused Var node = Dual = finite differences", "[ops][mate][ad]") {
    const auto [m1, m2] = read_pair("GATTAC", 9, "ACGT", "TGCA", "GG");
    const ReadBatch b1 = batch_of({m1, "CCAG"}), b2 = batch_of({m2, "TTGCAT"});
    ops::MateOverlap mo({.adapter1 = "ACGT", .adapter2 = "TGCA", .temperature = 1.7, .match_threshold = 0.4, .min_score = 2.0});
    const std::vector<double> x1(b1.one_hot.begin(), b1.one_hot.end()), x2(b2.one_hot.begin(), b2.one_hot.end());
    std::vector<double> x = x1;
    x.insert(x.end(), x2.begin(), x2.end());
    diffbio::test::expect_ad(
        [&](auto v) {
            using T = std::decay_t<decltype(v[0])>;
            const std::vector<T> s1(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(x1.size()));
            const std::vector<T> s2(v.begin() + static_cast<std::ptrdiff_t>(x1.size()), v.end());
            const ops::ReadsView<T, float> v1{s1, b1.quality, b1.lengths, b1.num_reads, b1.length};
            const ops::ReadsView<T, float> v2{s2, b2.quality, b2.lengths, b2.num_reads, b2.length};
            auto bind = diffbio::test::make_binder<T>();
            const auto r = mo.apply(bind, v1, v2);
            std::vector<T> out = r.retention1;
            out.insert(out.end(), r.retention2.begin(), r.retention2.end());
            out.insert(out.end(), r.insert_length.begin(), r.insert_length.end());
            return out;
        },
        x, {.check_float = false});
}

TEST_CASE("MateOverlap parameter gradients agree between modes and finite differences", "[ops][mate][ad]") {
    const auto [m1, m2] = read_pair("GATTACA", 10, "ACGTA", "TGCAG", "CC");
    const ReadBatch b1 = batch_of({m1, "CCAGTAC"}), b2 = batch_of({m2, "TTGCATGA"});
    // min_score 3: the floor decides short candidates, the fraction long ones (both branches).
    ops::MateOverlap mo({.adapter1 = "ACGTA", .adapter2 = "TGCAG", .temperature = 1.5, .match_threshold = 0.4,
                         .match_score = 1.5, .mismatch_score = -1.0, .min_score = 3.0});
    diffbio::test::expect_parameter_gradients(mo.parameters(), weighted_output(mo, b1, b2),
                                              {.mode_rel = 1e-10, .mode_abs = 1e-12, .fd_rel = 1e-6, .fd_abs = 1e-8, .samples = 20});
}

TEST_CASE("MateOverlap: CpuParallel gives the same values and gradients as Cpu", "[ops][mate][exec]") {
    std::mt19937 rng(5);
    const char* bases = "ACGT";
    std::vector<std::string> r1, r2;
    for (int i = 0; i < 40; ++i) {
        std::string frag;
        for (std::size_t k = 0, n = 5 + rng() % 30; k < n; ++k) frag += bases[rng() % 4];
        const auto [m1, m2] = read_pair(frag, 20 + rng() % 10, "AGATCGGAAGAG", "AGATCGGAAGAG", "ACGTTGCAACGTTGCA");
        r1.push_back(m1);
        r2.push_back(m2);
    }
    const ReadBatch b1 = batch_of(r1), b2 = batch_of(r2);
    ops::MateOverlap mo;
    auto run = [&](const auto& policy) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        for (auto* p : mo.parameters()) p->zero_grad();
        const auto r = mo.apply(bind, ops::view_of(b1), ops::view_of(b2), policy);
        ad::Var s = ad::Var(0.0);
        for (std::size_t i = 0; i < r.insert_length.size(); ++i) s = s + r.insert_length[i] * static_cast<double>(i % 3);
        tape.backward(s);
        bind.accumulate_grad();
        std::vector<double> out{s.value()};
        for (auto* p : mo.parameters()) out.insert(out.end(), p->grad().begin(), p->grad().end());
        return out;
    };
    const auto a = run(exec::Cpu{}), b = run(exec::CpuParallel{2});
    REQUIRE(a.size() == b.size());
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k] == Approx(b[k]).epsilon(1e-12).margin(1e-14));
}

TEST_CASE("MateOverlap validates its config and the pair shapes", "[ops][mate][errors]") {
    CHECK_THROWS_WITH(ops::MateOverlap({.adapter1 = "AGXT"}), Contains("'adapter1'"));
    CHECK_THROWS_WITH(ops::MateOverlap({.adapter2 = ""}), Contains("'adapter2'"));
    CHECK_THROWS_WITH(ops::MateOverlap({.temperature = 0.0}), Contains("'temperature'"));
    CHECK_THROWS_WITH(ops::MateOverlap({.match_score = -1.0}), Contains("'match_score'"));
    CHECK_THROWS_WITH(ops::MateOverlap({.min_score = std::nan("")}), Contains("'min_score'"));
    const ReadBatch b1 = batch_of({"ACGT", "ACGA"}), b2 = batch_of({"ACGT"});
    ops::MateOverlap mo;
    ad::Binder<double> bind;
    CHECK_THROWS_AS(mo.apply(bind, ops::view_of(b1), ops::view_of(b2)), ShapeError);
    CHECK_THROWS_WITH(mo.insert_lengths(ops::view_of(b1), ops::view_of(b2)), Contains("mate 2 has 1"));
    ReadBatch b3 = batch_of({"ACGT", "ACGA"});
    b3.quality[5] = std::numeric_limits<float>::infinity(); // read 1, position 1
    CHECK_THROWS_WITH(mo.apply(bind, ops::view_of(b1), ops::view_of(b3)),
                      Contains("MateOverlap (mate 2): quality at read 1, position 1 is not finite (inf)"));
}
