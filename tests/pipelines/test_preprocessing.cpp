#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <diffbio/pipelines/preprocessing.hpp>

#include "expect_params.hpp"

using namespace diffbio;
using pipelines::PreprocessingPipeline;
using pipelines::PreprocessingPipelineConfig;
using Catch::Matchers::Contains;

namespace {
ReadBatch small_batch() {
    ReadBatch b;
    const std::string body = "TTGCATCCGTAACTGGTCATTGCAGCATCG";
    auto add = [&b](const std::string& name, const std::string& seq, float q_hi, float q_tail, std::size_t tail) {
        std::vector<float> q(seq.size(), q_hi);
        for (std::size_t i = seq.size() - std::min(tail, seq.size()); i < seq.size(); ++i) q[i] = q_tail;
        b.add(name, seq, q);
    };
    add("clean", body, 35, 35, 0);
    add("adapter", body.substr(0, 20) + "AGATCGGAAGAG", 35, 35, 0);
    add("tail", body, 35, 8, 6);
    add("copy", body, 35, 35, 0);
    add("short", body.substr(0, 12), 35, 5, 6);
    return b;
}
std::set<std::string> names(const std::vector<ad::Parameter*>& ps) {
    std::set<std::string> s;
    for (auto* p : ps) s.insert(p->name());
    return s;
}
} // namespace

TEST_CASE("pipeline config carries DiffBio's fields and defaults", "[pipelines][preprocessing]") {
    const PreprocessingPipelineConfig c;
    CHECK(c.read_length == 150);
    CHECK(c.quality_threshold == 20.0);
    CHECK(c.adapter_sequence == "AGATCGGAAGAG");
    CHECK(c.adapter_match_threshold == 0.8);
    CHECK(c.adapter_temperature == 1.0);
    CHECK(c.duplicate_similarity_threshold == 0.95);
    CHECK(c.error_correction_window == 11);
    CHECK(c.error_correction_hidden_dim == 64);
    CHECK(c.enable_adapter_removal);
    CHECK(c.enable_duplicate_weighting);
    CHECK(c.enable_error_correction);
    CHECK(c.quality_softness == 1.0);
    CHECK(c.min_length == 15);
    CHECK(c.mask_low_quality);
    CHECK_THROWS_WITH(PreprocessingPipeline({.adapter_temperature = 0.0}), Contains("'adapter_temperature'"));
    // NaN data is refused up front, naming the read and position, whatever the stages
    ReadBatch b = small_batch();
    b.quality[b.length + 2] = std::numeric_limits<float>::quiet_NaN();
    ad::Binder<double> bind;
    CHECK_THROWS_WITH(PreprocessingPipeline().apply(bind, b), Contains("quality at read 1, position 2 is not finite"));
}

TEST_CASE("parameters() lists exactly the enabled stages", "[pipelines][preprocessing]") {
    PreprocessingPipeline all;
    const auto n_all = names(all.parameters());
    CHECK(n_all.count("quality_threshold") == 1);
    CHECK(n_all.count("adapter_one_hot") == 1);
    CHECK(n_all.count("duplicate_kernel") == 1);
    CHECK(n_all.size() > 8);
    PreprocessingPipeline qf_only({.enable_adapter_removal = false, .enable_duplicate_weighting = false,
                                   .enable_error_correction = false});
    CHECK(names(qf_only.parameters()) == std::set<std::string>{"quality_threshold"});
}

TEST_CASE("pipeline output: shapes, retention = quality weight x adapter retention", "[pipelines][preprocessing]") {
    const ReadBatch b = small_batch();
    PreprocessingPipeline p({.enable_error_correction = false});
    ad::Binder<double> bind;
    const auto r = p.apply(bind, b);
    REQUIRE(r.preprocessed_reads.size() == b.num_reads * b.length * 4);
    REQUIRE(r.preprocessed_quality.size() == b.num_reads * b.length);
    REQUIRE(r.read_weights.size() == b.num_reads);
    REQUIRE(r.trim_position.size() == b.num_reads);
    CHECK(*std::max_element(r.read_weights.begin(), r.read_weights.end()) == 1.0);
    // Stage by stage with the operators themselves.
    const auto qf = p.quality_filter().apply(bind, ops::view_of(b));
    const ops::ReadsView<double, float> v{qf.seq, b.quality, b.lengths, b.num_reads, b.length};
    const auto ar = p.adapter_removal().apply(bind, v);
    for (std::size_t k = 0; k < r.retention.size(); ++k) {
        CHECK(r.retention[k] == Approx(qf.weights[k] * ar.retention[k]).epsilon(1e-14));
        CHECK(r.preprocessed_quality[k] == Approx(b.quality[k] * ar.retention[k]).epsilon(1e-14));
    }
    CHECK(r.trim_position[1] == Approx(20.0).margin(0.2));
    // The adapter read is cut after 20 bases; the clean read keeps its signal (up to its last
    // 6 bases, whose GCATCG matches 4 of the adapter's first 6: raw 6 against 9.6, z = −3.6).
    CHECK(r.retention[1 * b.length + 25] < 0.01);
    CHECK(r.retention[0 * b.length + 20] > 0.999);
    CHECK(r.retention[0 * b.length + 25] == Approx(r.retention[0 * b.length + 20] * diffbio::sigmoid(3.6)).epsilon(1e-3));
    // Without duplicate weighting every weight is 1.
    PreprocessingPipeline nodup({.enable_duplicate_weighting = false, .enable_error_correction = false});
    for (double w : nodup.apply(bind, b).read_weights) CHECK(w == 1.0);
}

TEST_CASE("pipeline gradients: Var, Dual and finite differences agree for every stage's parameters",
          "[pipelines][preprocessing][ad]") {
    const ReadBatch b = small_batch();
    PreprocessingPipeline p({.quality_threshold = 25.0, .adapter_temperature = 2.0, .duplicate_similarity_threshold = 0.5,
                             .error_correction_window = 3, .error_correction_hidden_dim = 4, .seed = 3});
    auto loss = [&](auto& bind) {
        const auto r = p.apply(bind, b);
        using R = std::decay_t<decltype(r.read_weights[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.preprocessed_reads.size(); ++i) s = s + r.preprocessed_reads[i] * (0.5 + 0.01 * static_cast<double>(i % 13));
        for (std::size_t i = 0; i < r.read_weights.size(); ++i) s = s + r.read_weights[i] * (1.0 + static_cast<double>(i));
        for (std::size_t i = 0; i < r.retention.size(); ++i) s = s + 0.1 * r.retention[i];
        return s;
    };
    diffbio::test::expect_parameter_gradients(p.parameters(), loss);
}

TEST_CASE("pipeline gradients without adapter removal: the data qualities as one block of constants",
          "[pipelines][preprocessing][ad]") {
    // No stage changes the qualities, so on a tape they are recorded as one block of constant
    // leaves (160 here, a block the reverse sweep jumps over), between the quality filter's node
    // and the stages after it. A loss that reads them must still give every parameter's gradient.
    const ReadBatch b = small_batch();
    PreprocessingPipeline p({.quality_threshold = 25.0, .duplicate_similarity_threshold = 0.5, .error_correction_window = 3,
                             .error_correction_hidden_dim = 4, .enable_adapter_removal = false, .seed = 3});
    auto loss = [&](auto& bind) {
        const auto r = p.apply(bind, b);
        using R = std::decay_t<decltype(r.read_weights[0])>;
        REQUIRE(r.preprocessed_quality.size() == b.num_reads * b.length);
        R s = R(0.0);
        for (std::size_t i = 0; i < r.preprocessed_reads.size(); ++i) s = s + r.preprocessed_reads[i] * (0.5 + 0.01 * static_cast<double>(i % 11));
        for (std::size_t i = 0; i < r.preprocessed_quality.size(); ++i) s = s + 0.001 * r.preprocessed_quality[i] * r.quality_weights[i];
        for (std::size_t i = 0; i < r.read_weights.size(); ++i) s = s + r.read_weights[i] * (1.0 + static_cast<double>(i));
        return s;
    };
    // The loss is a sum of ~1,000 terms of order 1 while ∂/∂θ is ~0.003: at the default step
    // (1e-6) the rounding of the sum moves the central difference by ~1e-4 of the slope (it
    // agrees to six digits at 1e-4 and 1e-3, and drifts at 1e-6 and 1e-7). Same tolerances.
    diffbio::test::ParameterTolerance tol;
    tol.fd_step = 1e-4;
    diffbio::test::expect_parameter_gradients(p.parameters(), loss, tol);
}

TEST_CASE("harden: adapter cut, 3' quality trim, masking, drop and duplicate flags", "[pipelines][preprocessing][harden]") {
    ReadBatch b = small_batch();
    const std::size_t L = b.length;
    b.quality[0 * L + 5] = 10; // an interior low-quality base of the clean read
    b.quality[1 * L + 19] = 20; // q = θ exactly: trimmed at the 3' end of the adapter read's insert ...
    b.quality[1 * L + 3] = 20;  // ... and masked inside it
    PreprocessingPipeline p({.duplicate_similarity_threshold = 0.9999, .enable_error_correction = false, .min_length = 10});
    const auto h = p.harden(b);
    CHECK(h.length == L);
    CHECK(h.adapter_cut == std::vector<std::uint32_t>{30, 20, 30, 30, 12});
    CHECK(h.kept_length == std::vector<std::uint32_t>{30, 19, 24, 30, 6});
    CHECK(h.dropped == std::vector<std::uint8_t>{0, 0, 0, 0, 1});
    CHECK(h.duplicate == std::vector<std::uint8_t>{0, 0, 1, 1, 0}); // 'tail' and 'copy' repeat 'clean'
    CHECK(h.masked[0 * L + 5] == 1);
    CHECK(h.masked[0 * L + 4] == 0);
    CHECK(h.masked[1 * L + 3] == 1);
    CHECK(h.masked[2 * L + 26] == 0); // trimmed away, not masked
    // every flag: masked exactly where the base is inside the kept part and q <= θ = 20
    REQUIRE(h.masked.size() == b.num_reads * L);
    std::size_t n_masked = 0;
    for (std::size_t i = 0; i < b.num_reads; ++i) {
        for (std::size_t l = 0; l < L; ++l) {
            const bool want = l < h.kept_length[i] && b.quality[i * L + l] <= 20.0f;
            INFO("read " << i << ", position " << l);
            CHECK(h.masked[i * L + l] == (want ? 1 : 0));
            n_masked += want;
        }
    }
    CHECK(n_masked == 2);
    // without duplicate weighting no read is a duplicate; without masking no base is masked
    PreprocessingPipeline plain({.enable_duplicate_weighting = false, .enable_error_correction = false, .min_length = 10,
                                 .mask_low_quality = false});
    const auto g = plain.harden(b);
    CHECK(g.kept_length == h.kept_length);
    CHECK(g.duplicate == std::vector<std::uint8_t>(b.num_reads, 0));
    CHECK(g.masked == std::vector<std::uint8_t>(b.num_reads * L, 0));
    CHECK(pipelines::HardenedReads{}.length == 0);
}

TEST_CASE("harden_pair: both mates cut at the insert found from the mate overlap", "[pipelines][preprocessing][harden]") {
    // Insert of 27 bp in 30 bp reads: 3 adapter bases, too few for the single-end rule.
    const std::string insert = "TTGCATCCGTAACTGGTCATTGCAGCA";
    std::string rc(insert.rbegin(), insert.rend());
    for (char& c : rc) c = c == 'A' ? 'T' : c == 'C' ? 'G' : c == 'G' ? 'C' : 'A';
    const std::string other = "GGCATTACGTTAGCCATGACTGATCGATCA"; // 30 bp, no read-through
    std::string other_rc(other.rbegin(), other.rend());
    for (char& c : other_rc) c = c == 'A' ? 'T' : c == 'C' ? 'G' : c == 'G' ? 'C' : 'A';
    ReadBatch m1, m2;
    const std::vector<float> q(30, 35.0f);
    m1.add("p0", insert + "AGA", q);
    m2.add("p0", rc + "AGA", q);
    m1.add("p1", other, q);
    m2.add("p1", other_rc.substr(0, 24) + "TTTTTT", std::vector<float>(30, 35.0f));
    m2.quality[1 * m2.length + 29] = 5; // a low-quality 3' base of mate 2 of pair 1
    PreprocessingPipeline p({.enable_duplicate_weighting = false, .enable_error_correction = false, .min_length = 10});
    const auto [h1, h2] = p.harden_pair(m1, m2);
    CHECK(h1.adapter_cut == std::vector<std::uint32_t>{27, 30});
    CHECK(h2.adapter_cut == std::vector<std::uint32_t>{27, 30});
    CHECK(h2.kept_length == std::vector<std::uint32_t>{27, 29});
    CHECK(p.harden(m1).adapter_cut[0] == 30); // single end: the 3-base tail is left
    ReadBatch one;
    one.add("x", insert, std::vector<float>(insert.size(), 30.0f));
    CHECK_THROWS_WITH(p.harden_pair(m1, one), Contains("mate 2 has 1"));
}

TEST_CASE("pipeline float paths: Binder<float> forward and float_gradient agree with double", "[pipelines][preprocessing][ad]") {
    const ReadBatch b = small_batch();
    PreprocessingPipelineConfig cfg{.quality_threshold = 25.0, .adapter_temperature = 2.0, .duplicate_similarity_threshold = 0.5,
                                    .error_correction_window = 3, .error_correction_hidden_dim = 8, .seed = 3};
    PreprocessingPipeline pd(cfg);
    cfg.float_gradient = true;
    PreprocessingPipeline pf(cfg);
    const auto weight = [](std::size_t i) { return 0.5 + 0.01 * static_cast<double>(i % 13); };
    // forward: float binder vs double
    ad::Binder<double> bd;
    const auto rd = pd.apply(bd, b);
    ad::Binder<float> bf;
    const auto rf = pd.apply(bf, b);
    REQUIRE(rf.preprocessed_reads.size() == rd.preprocessed_reads.size());
    for (std::size_t i = 0; i < rd.preprocessed_reads.size(); ++i) CHECK(rf.preprocessed_reads[i] == Approx(rd.preprocessed_reads[i]).margin(1e-5));
    for (std::size_t i = 0; i < rd.read_weights.size(); ++i) CHECK(rf.read_weights[i] == Approx(rd.read_weights[i]).epsilon(1e-4));
    // reverse mode: float_gradient vs double, loss and every parameter gradient
    const auto grad = [&](PreprocessingPipeline& p, double& loss_value) {
        for (ad::Parameter* q : p.parameters()) q->zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = p.apply(bind, b);
        ad::Var s = 0.0;
        for (std::size_t i = 0; i < r.preprocessed_reads.size(); ++i) s += r.preprocessed_reads[i] * weight(i);
        for (std::size_t i = 0; i < r.read_weights.size(); ++i) s += r.read_weights[i] * (1.0 + static_cast<double>(i));
        tape.backward(s);
        bind.accumulate_grad();
        loss_value = s.value();
        std::vector<double> g;
        for (ad::Parameter* q : p.parameters()) g.insert(g.end(), q->grad().begin(), q->grad().end());
        return g;
    };
    double ld = 0.0, lf = 0.0;
    const auto gd = grad(pd, ld);
    const auto gf = grad(pf, lf);
    REQUIRE(gd.size() == gf.size());
    CHECK(lf == Approx(ld).epsilon(1e-5));
    double scale = 0.0, diff = 0.0;
    for (std::size_t i = 0; i < gd.size(); ++i) {
        scale = std::max(scale, std::fabs(gd[i]));
        diff = std::max(diff, std::fabs(gf[i] - gd[i]));
    }
    INFO("max |Δ gradient| " << diff << " of max |gradient| " << scale);
    REQUIRE(scale > 0.0);
    CHECK(diff < 1e-3 * scale);
    CHECK(diff > 0.0); // the float kernels ran
}
