#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <diffbio/ops/preprocessing/adapter_removal.hpp>

#include "expect_ad.hpp"
#include "read_fixtures.hpp"
#include "expect_params.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;

namespace {
using diffbio::test::batch_of;
double sig(double x) { return diffbio::sigmoid(x); }

/// Retention and trim positions as a function of the reads' one-hot values (for expect_ad).
auto retention_of_reads(const ops::AdapterRemoval& ar, const ReadBatch& b) {
    return [&ar, &b](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        std::vector<T> seq(v.begin(), v.end());
        const ops::ReadsView<T, float> view{seq, b.quality, b.lengths, b.num_reads, b.length};
        auto bind = diffbio::test::make_binder<T>();
        const auto r = ar.apply(bind, view);
        std::vector<T> out = r.retention;
        out.insert(out.end(), r.trim_position.begin(), r.trim_position.end());
        return out;
    };
}

/// A weighted sum of the masked reads plus a trim position, generic in the Binder.
auto weighted_output(const ops::AdapterRemoval& ar, const ReadBatch& b) {
    return [&ar, &b](auto& bind) {
        const auto r = ar.apply(bind, ops::view_of(b));
        using R = std::decay_t<decltype(r.retention[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.seq.size(); ++i) s = s + r.seq[i] * (0.5 + 0.01 * static_cast<double>(i));
        return s + 0.3 * r.trim_position[1];
    };
}
} // namespace

TEST_CASE("AdapterRemoval: hand-computed retention of a short read", "[ops][adapter]") {
    // Adapter ACGT, read TTACGT, min overlap 2, match 2 / mismatch −1, τ_m = 0.5, T = 0.5.
    // Raw scores by start: p0 TTAC −4, p1 TACG −4, p2 ACGT 8, p3 CGT/ACG −3, p4 GT/AC −2, p5 (ov 1) none.
    // z_p = (raw − τ_m·2·ov)/T: (−4 − 4)/0.5, (−4 − 4)/0.5, (8 − 4)/0.5, (−3 − 3)/0.5, (−2 − 2)/0.5.
    const ReadBatch b = batch_of({"TTACGT"});
    ops::AdapterRemoval ar({.adapter_sequence = "ACGT", .temperature = 0.5, .match_threshold = 0.5, .min_overlap = 2});
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    const double z[5] = {-16, -16, 8, -12, -8};
    double expect = 1.0, pos = 0.0;
    for (int l = 0; l < 6; ++l) {
        if (l < 5) expect *= sig(-z[l]);
        CHECK(r.retention[static_cast<std::size_t>(l)] == Approx(expect).epsilon(1e-13));
        pos += expect;
    }
    CHECK(r.trim_position[0] == Approx(pos).epsilon(1e-13));
    CHECK(r.trim_position[0] == Approx(2.0).margin(2e-3)); // the adapter starts at 2
    CHECK(r.quality[0] == Approx(30.0 * r.retention[0]).epsilon(1e-14));
    CHECK(ar.trimmed_lengths(ops::view_of(b)) == std::vector<std::uint32_t>{2});
}

TEST_CASE("AdapterRemoval: a read without adapter keeps its full length", "[ops][adapter]") {
    // 50 bp without any adapter k-mer; pipeline defaults (τ_m 0.8, T 1).
    const std::string read = "TTGCATCCGTAACTGGTCATTGCAGCATCGTTACCATGGTATCCGGTATC";
    const ReadBatch b = batch_of({read, read.substr(0, 38) + "AGATCGGAAGAG"});
    ops::AdapterRemoval ar({.match_threshold = 0.8});
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    for (std::size_t l = 0; l < 50; ++l) CHECK(r.retention[l] > 0.999);
    CHECK(r.trim_position[0] > 49.9);
    // With the adapter at 38: bases before 38 kept, from 38 on removed.
    CHECK(r.retention[50 + 37] > 0.99);
    CHECK(r.retention[50 + 38] < 0.01);
    // After the cut each of the 12 adapter bases keeps σ(−z_38) = σ(−(24 − 19.2)/1).
    CHECK(r.trim_position[1] == Approx(38.0 + 12 * sig(-4.8)).margin(0.01));
    CHECK(ar.trimmed_lengths(ops::view_of(b)) == std::vector<std::uint32_t>{50, 38});
}

TEST_CASE("AdapterRemoval: partial adapter at the 3' end and the first occurrence wins", "[ops][adapter]") {
    const std::string body = "TTGCATCCGTAACTGGTCATTGCAGCATCG"; // 30 bp
    const ReadBatch b = batch_of({body + "AGATCGGA", body.substr(0, 10) + "AGATCGGAAGAG" + "AGATCGGAAGAG"});
    ops::AdapterRemoval ar({.match_threshold = 0.8});
    CHECK(ar.trimmed_lengths(ops::view_of(b)) == std::vector<std::uint32_t>{30, 10});
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    // 8 adapter bases: raw 16 against 0.8·16 → z = 3.2; a full adapter: z = 4.8.
    CHECK(r.trim_position[0] == Approx(30.0 + 8 * sig(-3.2)).margin(0.01));
    CHECK(r.trim_position[1] == Approx(10.0 + 12 * sig(-4.8)).margin(0.01)); // the second copy cuts the rest
}

TEST_CASE("AdapterRemoval recovers hard first-occurrence trimming as T -> 0", "[ops][adapter][limit]") {
    const ReadBatch b = batch_of({"GGGGACGTACGTCC", "CCCCCCCCCC", "ACGAACGT"});
    ops::AdapterRemoval ar({.adapter_sequence = "ACGT", .temperature = 1e-6, .match_threshold = 0.7, .min_overlap = 3});
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    const auto cut = ar.trimmed_lengths(ops::view_of(b));
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t l = 0; l < b.lengths[i]; ++l) {
            CHECK(r.retention[i * b.length + l] == (l < cut[i] ? 1.0 : 0.0));
        }
        CHECK(r.trim_position[i] == static_cast<double>(cut[i]));
    }
    CHECK(cut == std::vector<std::uint32_t>{4, 10, 4});
}

TEST_CASE("AdapterRemoval gradients: fused Var node = Dual = finite differences", "[ops][adapter][ad]") {
    // Differentiate w.r.t. the reads' one-hot values (soft reads), the quality passes through.
    const ReadBatch b = batch_of({"TTACGTAC", "GACGTT"});
    ops::AdapterRemoval ar({.adapter_sequence = "ACGT", .temperature = 2.0, .match_threshold = 0.6, .min_overlap = 2});
    const std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    diffbio::test::expect_ad(retention_of_reads(ar, b), x, {.check_float = false});
}

TEST_CASE("AdapterRemoval parameter gradients agree between modes and finite differences", "[ops][adapter][ad]") {
    const ReadBatch b = batch_of({"TTACGTAC", "GACGTTAA"});
    ops::AdapterRemoval ar({.adapter_sequence = "ACGT", .temperature = 1.5, .match_threshold = 0.6, .min_overlap = 2});
    diffbio::test::expect_parameter_gradients(ar.parameters(), weighted_output(ar, b),
                                              {.mode_rel = 1e-10, .mode_abs = 1e-12, .fd_rel = 1e-6, .fd_abs = 1e-8, .samples = 16});
}

TEST_CASE("AdapterRemoval validates its config", "[ops][adapter][errors]") {
    CHECK_THROWS_WITH(ops::AdapterRemoval({.adapter_sequence = "ACXT"}), Contains("'X'"));
    CHECK_THROWS_AS(ops::AdapterRemoval({.adapter_sequence = ""}), InvalidArgument);
    CHECK_THROWS_WITH(ops::AdapterRemoval({.temperature = -1.0}), Contains("'temperature'"));
    CHECK_THROWS_AS(ops::AdapterRemoval({.min_overlap = 0}), InvalidArgument);
    CHECK_THROWS_WITH(ops::AdapterRemoval({.min_score = std::numeric_limits<double>::infinity()}), Contains("'min_score'"));
    CHECK_THROWS_AS(ops::AdapterRemoval({.min_score = std::nan("")}), InvalidArgument);
    ReadBatch b = batch_of({"TTACGTAC", "GACGTTAA"});
    b.one_hot[(1 * 8 + 6) * 4 + 0] = std::numeric_limits<float>::quiet_NaN(); // read 1, position 6, A
    ops::AdapterRemoval ar;
    ad::Binder<double> bind;
    CHECK_THROWS_WITH(ar.apply(bind, ops::view_of(b)), Contains("AdapterRemoval: base value at read 1, position 6, channel A is not finite"));
    CHECK_THROWS_WITH(ar.trimmed_lengths(ops::view_of(b)), Contains("is not finite"));
}

TEST_CASE("AdapterRemoval min_score: short 3' overlaps, hand-computed", "[ops][adapter][min_score]") {
    // The recommended rule: match 1, mismatch −3, τ_m 0.3, min_score 3.5, min_overlap 1. A start
    // with overlap ov is accepted when raw > θ(ov) = max(0.3·ov, 3.5). The body (C/T only) scores
    // below θ at every start. Tails (adapter AGATCGGAAGAG) and the raw score of the start at 20:
    //   A             ov 1  raw 1 < 3.5        keep 21
    //   AGA           ov 3  raw 3 < 3.5        keep 23 (the fraction rule alone, 3 > 0.9, would cut)
    //   AGAT          ov 4  raw 4 > 3.5        cut 20
    //   AGTTC         ov 5  raw 4 − 3 = 1      keep 25 (one mismatch in 5 is not enough evidence)
    //   AGATCGCA      ov 8  raw 7 − 3 = 4      cut 20 (θ = max(2.4, 3.5) = 3.5)
    //   AGCTCGGAAGTG  ov 12 raw 10 − 6 = 4     cut 20 (θ = max(3.6, 3.5) = 3.6: the fraction decides)
    //   AGCTCGGTAGTG  ov 12 raw 9 − 9 = 0      keep 32
    const std::string body = "CCTTCCTTCCTTCCTTCCTT";
    const std::vector<std::string> tails = {"A", "AGA", "AGAT", "AGTTC", "AGATCGCA", "AGCTCGGAAGTG", "AGCTCGGTAGTG"};
    std::vector<std::string> reads;
    for (const auto& t : tails) reads.push_back(body + t);
    const ReadBatch b = batch_of(reads);
    const ops::AdapterRemovalConfig cfg{.adapter_sequence = "AGATCGGAAGAG", .temperature = 1e-6, .match_threshold = 0.3,
                                        .min_overlap = 1, .match_score = 1.0, .mismatch_score = -3.0, .min_score = 3.5};
    ops::AdapterRemoval ar(cfg);
    const auto cut = ar.trimmed_lengths(ops::view_of(b));
    CHECK(cut == std::vector<std::uint32_t>{21, 23, 20, 25, 20, 20, 32});
    // The soft operator at T → 0 is the same hard rule.
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    for (std::size_t i = 0; i < reads.size(); ++i) {
        INFO("read " << i);
        for (std::size_t l = 0; l < b.lengths[i]; ++l) CHECK(r.retention[i * b.length + l] == (l < cut[i] ? 1.0 : 0.0));
        CHECK(r.trim_position[i] == static_cast<double>(cut[i]));
    }
    // Without the floor (min_score = −∞) the fraction rule cuts the 1- and 3-base overlaps.
    ops::AdapterRemovalConfig frac = cfg;
    frac.min_score = -std::numeric_limits<double>::infinity();
    CHECK(ops::AdapterRemoval(frac).trimmed_lengths(ops::view_of(b)) ==
          std::vector<std::uint32_t>{20, 20, 20, 25, 20, 20, 32});
}

TEST_CASE("AdapterRemoval min_score: soft value at T = 1 on the floor branch", "[ops][adapter][min_score]") {
    // Read CCCCAGAT, adapter AGATCG, match 1 / mismatch −3, τ_m 0.3, min_score 3.5, min_overlap 4, T = 1.
    // Starts 0..4 (ov 6, 6, 6, 5, 4): raw −14, −18, −14, −15, 4; θ = max(0.3·ov, 3.5) = 3.5 for all.
    const ReadBatch b = batch_of({"CCCCAGAT"});
    ops::AdapterRemoval ar({.adapter_sequence = "AGATCG", .temperature = 1.0, .match_threshold = 0.3, .min_overlap = 4,
                            .match_score = 1.0, .mismatch_score = -3.0, .min_score = 3.5});
    ad::Binder<double> bind;
    const auto r = ar.apply(bind, ops::view_of(b));
    const double z[5] = {-17.5, -21.5, -17.5, -18.5, 0.5};
    double expect = 1.0, pos = 0.0;
    for (std::size_t l = 0; l < 8; ++l) {
        if (l < 5) expect *= sig(-z[l]);
        CHECK(r.retention[l] == Approx(expect).epsilon(1e-13));
        pos += expect;
    }
    CHECK(r.trim_position[0] == Approx(pos).epsilon(1e-13));
    CHECK(ar.trimmed_lengths(ops::view_of(b)) == std::vector<std::uint32_t>{4});
}

TEST_CASE("AdapterRemoval min_score: gradients on both branches of max(tau_m w, min_score)", "[ops][adapter][ad][min_score]") {
    // ACGT, m 2: θ = max(0.6·2·ov, 3) is the floor 3 at ov 2 and the fraction 3.6 / 4.8 at ov 3 / 4.
    const ReadBatch b = batch_of({"TTACGTAC", "GACGTTAA"});
    ops::AdapterRemoval ar({.adapter_sequence = "ACGT", .temperature = 1.5, .match_threshold = 0.6, .min_overlap = 2,
                            .min_score = 3.0});
    diffbio::test::expect_parameter_gradients(ar.parameters(), weighted_output(ar, b),
                                              {.mode_rel = 1e-10, .mode_abs = 1e-12, .fd_rel = 1e-6, .fd_abs = 1e-8, .samples = 16});
    // And w.r.t. the reads.
    const std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    diffbio::test::expect_ad(retention_of_reads(ar, b), x, {.check_float = false});
}

TEST_CASE("AdapterRemoval min_score: at the tie tau_m w == min_score both modes take the fraction branch",
          "[ops][adapter][ad][min_score]") {
    // ACGT, m 2, τ_m 0.5: θ = max(0.5·2·ov, 3) ties exactly at ov 3 (the start 5 of each 8-base
    // read). The branch taken there decides ∂/∂τ_m: the fused node's backward and the Dual forward
    // must agree, and equal the one-sided difference from above (where the fraction holds).
    const ReadBatch b = batch_of({"TTACGTAC", "GACGTTAA"});
    const ops::AdapterRemovalConfig cfg{.adapter_sequence = "ACGT", .temperature = 1.5, .match_threshold = 0.5,
                                        .min_overlap = 2, .min_score = 3.0};
    ops::AdapterRemoval ar(cfg);
    const auto loss = weighted_output(ar, b);
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> bv(tape);
    tape.backward(loss(bv));
    bv.accumulate_grad();
    const double g_var = ar.match_threshold().grad()[0];
    ad::Binder<ad::Dual<double>> bd;
    bd.seed(ar.match_threshold(), 0);
    const double g_dual = loss(bd).tangent;
    auto at = [&](double tm) {
        ops::AdapterRemovalConfig c = cfg;
        c.match_threshold = tm;
        const ops::AdapterRemoval a2(c);
        ad::Binder<double> b0;
        return weighted_output(a2, b)(b0);
    };
    const double h = 1e-6;
    const double right = (at(0.5 + h) - at(0.5)) / h, left = (at(0.5) - at(0.5 - h)) / h;
    CHECK(g_var == Approx(g_dual).epsilon(1e-10));
    CHECK(g_var == Approx(right).epsilon(1e-4));
    CHECK(std::fabs(right - left) > 1e-3 * std::fabs(right)); // a real kink (0.5% here): the branches differ
}
