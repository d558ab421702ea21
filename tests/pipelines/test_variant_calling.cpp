#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/loss.hpp>
#include <diffbio/pipelines/variant_calling.hpp>

#include "expect_params.hpp"

using namespace diffbio;
using pipelines::VariantCallingPipeline;
using pipelines::VariantCallingPipelineConfig;

namespace {

constexpr std::int64_t ref_len = 40;

std::string reference_text() {
    std::string s;
    const char* b = "ACGT";
    for (std::int64_t i = 0; i < ref_len; ++i) s += b[(i * 7 + i / 3) % 4];
    return s;
}

std::vector<std::uint8_t> codes(const std::string& s) {
    std::vector<std::uint8_t> c;
    for (char ch : s) c.push_back(base_code(ch));
    return c;
}

/// Gapless reads of length 20 starting every 2 positions (coverage ≈ 10 in the middle), copied
/// from the reference except: position 20 → alternative in every other read (het), position 30
/// → alternative in every read (hom). Qualities vary with the read and position; one base of
/// quality 255 (missing).
AlignedBatch make_batch(const std::string& ref) {
    AlignedBatch b;
    b.contigs = {{"chr", ref_len}};
    const std::uint32_t len = 20;
    const std::vector<std::uint32_t> cigar{cigar_pack(CigarOp::Match, len)};
    int k = 0;
    for (std::int64_t start = 0; start + len <= ref_len; start += 2, ++k) {
        for (int copy = 0; copy < 2; ++copy) {
            std::string seq = ref.substr(static_cast<std::size_t>(start), len);
            std::vector<std::uint8_t> q(len);
            for (std::uint32_t j = 0; j < len; ++j) q[j] = static_cast<std::uint8_t>(8 + (7 * j + 5 * static_cast<unsigned>(k) + 11 * static_cast<unsigned>(copy)) % 33);
            auto flip = [](char c) { return c == 'A' ? 'G' : c == 'C' ? 'T' : c == 'G' ? 'A' : 'C'; };
            const std::int64_t het = 20 - start, hom = 30 - start;
            if (het >= 0 && het < len && copy == 1) seq[static_cast<std::size_t>(het)] = flip(seq[static_cast<std::size_t>(het)]);
            if (hom >= 0 && hom < len) seq[static_cast<std::size_t>(hom)] = flip(seq[static_cast<std::size_t>(hom)]);
            if (k == 3 && copy == 0) q[4] = missing_quality;
            b.add(std::string("r").append(std::to_string(k)).append("_").append(std::to_string(copy)), 0, start, 60, 0, cigar, seq, q);
        }
    }
    return b;
}

VariantCallingPipelineConfig small_config() {
    VariantCallingPipelineConfig c;
    c.region = {0, 0, ref_len};
    c.window = 5;
    c.hidden_dim = 8;
    c.dropout_rate = 0.2;
    c.seed = 3;
    return c;
}

std::vector<std::uint32_t> labels() {
    std::vector<std::uint32_t> y(ref_len, 0);
    y[20] = 1;
    y[30] = 2;
    return y;
}

template <class T>
T scalar_of(ad::Binder<T>&);

} // namespace

TEST_CASE("VariantCallingPipeline: defaults and shapes", "[pipelines][variant]") {
    VariantCallingPipelineConfig def;
    def.region = {0, 0, ref_len};
    CHECK(def.window == 11);
    CHECK(def.hidden_dim == 64);
    CHECK(def.quality_threshold == 20.0);
    CHECK(def.use_quality_weights);
    CHECK(def.seed == 0);
    CHECK(def.coverage_scale == 0.0);
    CHECK(pipelines::VariantCall{}.pos == 0);
    VariantCallingPipeline pipe(def);
    CHECK(pipe.training());
    CHECK(pipe.parameters().size() == 1 + 2 + 6);
    const std::string ref = reference_text();
    const auto batch = make_batch(ref);
    const auto rc = codes(ref);
    ad::Binder<double> bind;
    pipe.eval();
    const auto r = pipe.apply(bind, batch, std::span<const std::uint8_t>(rc));
    CHECK(r.gates.size() == batch.num_bases());
    CHECK(r.features.size() == ref_len * 8);
    REQUIRE(r.calls.probabilities.size() == ref_len * 3);
    for (std::int64_t p = 0; p < ref_len; ++p) {
        double s = 0.0;
        for (std::size_t c = 0; c < 3; ++c) s += r.calls.probabilities[static_cast<std::size_t>(p) * 3 + c];
        CHECK(s == Approx(1.0).margin(1e-12));
    }
    // automatic coverage scale: the unweighted mean depth, aligned bases / L
    const double depth = static_cast<double>(batch.num_bases()) / static_cast<double>(ref_len);
    CHECK(VariantCallingPipeline::mean_depth(batch, def.region) == Approx(depth).epsilon(1e-15));
    for (std::size_t p = 0; p < static_cast<std::size_t>(ref_len); ++p) {
        CHECK(r.features[p * 8 + 4] == Approx(r.pileup.coverage[p] / depth).epsilon(1e-12));
    }
    VariantCallingPipelineConfig no_q = def;
    no_q.use_quality_weights = false;
    CHECK(VariantCallingPipeline(no_q).parameters().size() == 1 + 6);
}

TEST_CASE("VariantCallingPipeline: gates and features by hand", "[pipelines][variant]") {
    auto cfg = small_config();
    cfg.use_quality_weights = false;
    cfg.quality_threshold = 15.0;
    cfg.quality_softness = 2.0;
    cfg.coverage_scale = 4.0;
    VariantCallingPipeline pipe(cfg);
    const std::string ref = reference_text();
    const auto batch = make_batch(ref);
    const auto rc = codes(ref);
    ad::Binder<double> bind;
    const auto r = pipe.apply(bind, batch, std::span<const std::uint8_t>(rc));
    // gates: σ((Q − 15)/2), missing quality → 30
    std::vector<double> cnt(ref_len * 4, 0.0), cov(ref_len, 0.0), qs(ref_len, 0.0);
    for (std::size_t i = 0; i < batch.num_reads(); ++i) {
        for (std::size_t j = 0; j < batch.read_length(i); ++j) {
            const std::size_t m = batch.base_offset[i] + j;
            const double q = batch.qualities[m] == 255 ? 30.0 : batch.qualities[m];
            const double g = 1.0 / (1.0 + std::exp(-(q - 15.0) / 2.0));
            CHECK(r.gates[m] == Approx(g).epsilon(1e-12));
            const auto p = static_cast<std::size_t>(batch.ref_start[i]) + j;
            cnt[4 * p + batch.bases[m]] += g;
            cov[p] += g;
            qs[p] += g * q;
        }
    }
    for (std::size_t p = 0; p < static_cast<std::size_t>(ref_len); ++p) {
        INFO("position " << p);
        const double S = cnt[4 * p] + cnt[4 * p + 1] + cnt[4 * p + 2] + cnt[4 * p + 3];
        const std::size_t rb = rc[p];
        std::vector<double> alts;
        for (std::size_t c = 0; c < 4; ++c) {
            if (c != rb) alts.push_back(cnt[4 * p + c] / (S + 0.5));
        }
        std::sort(alts.rbegin(), alts.rend());
        const double* x = r.features.data() + p * 8;
        CHECK(x[0] == Approx(cnt[4 * p + rb] / (S + 0.5)).epsilon(1e-12));
        for (std::size_t j = 0; j < 3; ++j) CHECK(x[1 + j] == Approx(alts[j]).epsilon(1e-12).margin(1e-15));
        CHECK(x[4] == Approx(cov[p] / 4.0).epsilon(1e-12));
        CHECK(x[5] == 0.0);
        CHECK(x[6] == 0.0);
        CHECK(x[7] == Approx(qs[p] / (cov[p] + 0.5) / 40.0).epsilon(1e-12).margin(1e-15));
    }
    // the het and hom columns
    CHECK(r.features[20 * 8] > 0.2);
    CHECK(r.features[20 * 8] < 0.8);
    CHECK(r.features[20 * 8 + 1] > 0.2);
    CHECK(r.features[20 * 8 + 2] == 0.0);
    CHECK(r.features[30 * 8] == 0.0);
    CHECK(r.features[30 * 8 + 1] > 0.9);
}

TEST_CASE("VariantCallingPipeline: indel features; the mean depth skips unmapped and other-contig reads",
          "[pipelines][variant]") {
    AlignedBatch b;
    b.contigs = {{"chr", ref_len}, {"other", ref_len}};
    const std::string ref = reference_text();
    const std::vector<std::uint8_t> q15(15, 30), q20(20, 30);
    // r0: 5M 2D 5M 1I 4M from 2: bases on 2..6, a deletion over 7 and 8, bases on 9..13, an
    // insertion anchored at 13, bases on 14..17.
    const std::vector<std::uint32_t> indel{cigar_pack(CigarOp::Match, 5), cigar_pack(CigarOp::Deletion, 2),
                                           cigar_pack(CigarOp::Match, 5), cigar_pack(CigarOp::Insertion, 1),
                                           cigar_pack(CigarOp::Match, 4)};
    const std::string s0 = ref.substr(2, 5) + ref.substr(9, 5) + "A" + ref.substr(14, 4);
    b.add("r0", 0, 2, 60, 0, indel, s0, q15);
    const std::vector<std::uint32_t> m20{cigar_pack(CigarOp::Match, 20)};
    b.add("r1", 0, 0, 60, 0, m20, ref.substr(0, 20), q20);
    b.add("on_other_contig", 1, 0, 60, 0, m20, ref.substr(0, 20), q20);
    b.add("placed_unmapped", 0, 0, 0, sam_flag::unmapped, m20, ref.substr(0, 20), q20);
    auto cfg = small_config();
    cfg.use_quality_weights = false;
    const ops::PileupRegion region{0, 0, ref_len};
    // aligned bases of the two mapped reads on chr: 14 + 20
    CHECK(VariantCallingPipeline::mean_depth(b, region) == Approx(34.0 / ref_len).epsilon(1e-15));
    VariantCallingPipeline pipe(cfg);
    ad::Binder<double> bind;
    const auto rc = codes(ref);
    const auto r = pipe.apply(bind, b, std::span<const std::uint8_t>(rc));
    CHECK(r.pileup.deletions[7] == 1.0);
    CHECK(r.pileup.deletions[8] == 1.0);
    CHECK(r.pileup.insertions[13] == 1.0);
    const double g = 1.0 / (1.0 + std::exp(-(30.0 - 20.0))); // every base's gate
    for (std::size_t p = 0; p < static_cast<std::size_t>(ref_len); ++p) {
        INFO("position " << p);
        const double reads = (p < 20 ? 1.0 : 0.0) + ((p >= 2 && p <= 6) || (p >= 9 && p <= 17) ? 1.0 : 0.0);
        const double cov = reads * g, del = (p == 7 || p == 8) ? 1.0 : 0.0, ins = p == 13 ? 1.0 : 0.0;
        CHECK(r.pileup.coverage[p] == Approx(cov).epsilon(1e-14));
        const double* x = r.features.data() + p * 8;
        CHECK(x[4] == Approx(cov).epsilon(1e-12)); // the automatic c̄ is max(1, mean depth 0.85) = 1
        CHECK(x[5] == Approx(del / (cov + del + 0.5)).epsilon(1e-12));
        CHECK(x[6] == Approx(ins / (cov + del + 0.5)).epsilon(1e-12));
    }
}

TEST_CASE("VariantCallingPipeline::harden by hand: alternate allele, genotype, quality, skipped positions",
          "[pipelines][variant]") {
    VariantCallingPipeline pipe(small_config());
    pipelines::VariantCallingResult<double> r;
    r.pileup.region = {1, 100, 105};
    // per position: counts A C G T, coverage, P(ref / het / hom-alt), reference base
    r.pileup.counts = {5, 3, 3, 0,  // ref A: C and G tie at 3 → C (the first in ACGT order)
                       2, 6, 7, 0,  // ref C: G
                       0, 9, 0, 0,  // ref N: never called
                       8, 1, 0, 0,  // ref T, most probably ref: not called
                       0, 0, 9, 4}; // ref G: T
    r.pileup.coverage = {11.5, 15.25, 9.0, 9.0, 13.75};
    const std::vector<double> prob = {0.1, 0.7, 0.2,  0.0, 0.2, 0.8,  0.1, 0.8, 0.1,  0.6, 0.3, 0.1,  1e-120, 0.5, 0.5};
    r.calls.rows = 5;
    r.calls.classes = 3;
    r.calls.probabilities = prob;
    for (double v : prob) r.calls.logits.push_back(v > 0.0 ? std::log(v) : -1e4);
    const std::vector<std::uint8_t> ref = {0, 1, 4, 3, 2};
    const auto calls = pipe.harden(r, std::span<const std::uint8_t>(ref));
    REQUIRE(calls.size() == 3);
    const std::int64_t pos[3] = {100, 101, 104};
    const std::uint8_t rb[3] = {0, 1, 2}, alt[3] = {1, 2, 3};
    const int gt[3] = {1, 2, 1}; // the last: het and hom-alt tie, the first class wins
    const double qual[3] = {10.0, 999.0, 999.0}, depth[3] = {11.5, 15.25, 13.75};
    const std::size_t row[3] = {0, 1, 4};
    for (std::size_t k = 0; k < 3; ++k) {
        INFO("call " << k);
        CHECK(calls[k].contig == 1);
        CHECK(calls[k].pos == pos[k]);
        CHECK(calls[k].ref == rb[k]);
        CHECK(calls[k].alt == alt[k]);
        CHECK(calls[k].genotype == gt[k]);
        CHECK(calls[k].quality == Approx(qual[k]).epsilon(1e-12));
        CHECK(calls[k].depth == depth[k]);
        for (std::size_t c = 0; c < 3; ++c) CHECK(calls[k].probabilities[c] == prob[3 * row[k] + c]);
    }
}

TEST_CASE("VariantCallingPipeline: parameter gradients in every AD mode", "[pipelines][variant][ad]") {
    for (const bool qw : {true, false}) {
        auto cfg = small_config();
        cfg.use_quality_weights = qw;
        VariantCallingPipeline pipe(cfg);
        pipe.set_dropout_seed(9);
        // Biases away from 0: a position whose first-layer units are all inactive gives the
        // second layer a pre-activation equal to its bias, a relu kink at the zero init.
        for (std::size_t l = 0; l < 2; ++l) {
            auto b = pipe.classifier().hidden_layer(l).bias().values();
            for (std::size_t k = 0; k < b.size(); ++k) b[k] = 0.05 + 0.01 * static_cast<double>(k);
        }
        const std::string ref = reference_text();
        const auto batch = make_batch(ref);
        const auto rc = codes(ref);
        const auto y = labels();
        diffbio::test::expect_parameter_gradients(pipe.parameters(), [&](auto& bind) {
            using T = decltype(scalar_of(bind));
            const auto r = pipe.apply(bind, batch, std::span<const std::uint8_t>(rc));
            return nn::cross_entropy_with_labels(std::span<const T>(r.calls.logits), std::span<const std::uint32_t>(y),
                                                 static_cast<std::size_t>(ref_len), 3);
        });
        // θ and the pileup's a, b get non-zero gradients
        for (auto* p : pipe.parameters()) p->zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipe.apply(bind, batch, std::span<const std::uint8_t>(rc));
        tape.backward(nn::cross_entropy_with_labels(std::span<const ad::Var>(r.calls.logits), std::span<const std::uint32_t>(y),
                                                    static_cast<std::size_t>(ref_len), 3));
        bind.accumulate_grad();
        CHECK(pipe.quality_threshold().grad()[0] != 0.0);
        if (qw) {
            CHECK(pipe.pileup().quality_scale().grad()[0] != 0.0);
            CHECK(pipe.pileup().quality_offset().grad()[0] != 0.0);
        }
    }
}

TEST_CASE("VariantCallingPipeline: training learns the het and hom SNVs; call_variants hardens them",
          "[pipelines][variant]") {
    auto cfg = small_config();
    cfg.dropout_rate = 0.0;
    cfg.hidden_dim = 16;
    VariantCallingPipeline pipe(cfg);
    const std::string ref = reference_text();
    const auto batch = make_batch(ref);
    const auto rc = codes(ref);
    const auto y = labels();
    // class-weighted targets (the variants are rare)
    std::vector<double> target(ref_len * 3, 0.0);
    for (std::size_t p = 0; p < y.size(); ++p) target[3 * p + y[p]] = y[p] == 0 ? 1.0 : 10.0;
    nn::Adam adam(pipe.parameters(), {.learning_rate = 0.02});
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 150; ++step) {
        tape.rewind(start);
        adam.zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipe.apply(bind, batch, std::span<const std::uint8_t>(rc));
        const ad::Var loss = nn::cross_entropy_with_logits(std::span<const ad::Var>(r.calls.logits),
                                                           std::span<const double>(target), static_cast<std::size_t>(ref_len), 3);
        tape.backward(loss);
        bind.accumulate_grad();
        adam.step();
        (step == 0 ? first : last) = loss.value();
    }
    CHECK(last < 0.1 * first);
    const auto calls = pipe.call_variants(batch, std::span<const std::uint8_t>(rc));
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].pos == 20);
    CHECK(calls[0].genotype == 1);
    CHECK(calls[0].ref == rc[20]);
    CHECK(calls[0].alt != calls[0].ref);
    CHECK(calls[1].pos == 30);
    CHECK(calls[1].genotype == 2);
    CHECK(calls[1].quality > 10.0);
    CHECK(pipe.training()); // call_variants restores the mode
    // call_variants equals harden() of an eval-mode forward pass
    pipe.eval();
    ad::Binder<double> bd;
    const auto r = pipe.apply(bd, batch, std::span<const std::uint8_t>(rc));
    const auto again = pipe.harden(r, std::span<const std::uint8_t>(rc));
    REQUIRE(again.size() == calls.size());
    for (std::size_t k = 0; k < calls.size(); ++k) CHECK(again[k].probabilities == calls[k].probabilities);
}

TEST_CASE("VariantCallingPipeline: bad input", "[pipelines][variant]") {
    VariantCallingPipelineConfig c;
    CHECK_THROWS_AS(VariantCallingPipeline(c), InvalidArgument); // empty region
    c.region = {0, 0, ref_len};
    c.window = 4;
    CHECK_THROWS_AS(VariantCallingPipeline(c), InvalidArgument);
    c.window = 11;
    c.num_classes = 4;
    CHECK_THROWS_AS(VariantCallingPipeline(c), InvalidArgument);
    c.num_classes = 3;
    c.pseudocount = 0.0;
    CHECK_THROWS_AS(VariantCallingPipeline(c), InvalidArgument);
    VariantCallingPipeline pipe(small_config());
    const std::string ref = reference_text();
    const auto batch = make_batch(ref);
    const auto rc = codes(ref);
    ad::Binder<double> bind;
    CHECK_THROWS_AS(pipe.apply(bind, batch, std::span<const std::uint8_t>(rc).first(10)), ShapeError);
    auto far = small_config();
    far.region = {0, 0, ref_len + 5};
    VariantCallingPipeline pipe2(far);
    std::vector<std::uint8_t> rc2(ref_len + 5, 0);
    CHECK_THROWS_AS(pipe2.apply(bind, batch, std::span<const std::uint8_t>(rc2)), InvalidArgument);
}
