#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <diffbio/exec/policy.hpp>

#include <diffbio/ops/preprocessing/quality_filter.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"
#include "read_fixtures.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;

namespace {
ReadBatch two_reads() {
    ReadBatch b;
    const std::vector<float> q1{30, 10, 20}, q2{40, 5};
    b.add("r1", "ACG", q1);
    b.add("r2", "TN", q2);
    return b;
}
} // namespace

TEST_CASE("QualityFilter: hand-computed weights, masking and padding", "[ops][quality-filter]") {
    const ReadBatch b = two_reads();
    ops::QualityFilter qf;
    ad::Binder<double> bind;
    const auto r = qf.apply(bind, ops::view_of(b));
    REQUIRE(r.weights.size() == 6);
    CHECK(r.weights[0] == Approx(diffbio::sigmoid(10.0)).epsilon(1e-15));
    CHECK(r.weights[1] == Approx(diffbio::sigmoid(-10.0)).epsilon(1e-15));
    CHECK(r.weights[2] == 0.5);
    CHECK(r.weights[3] == Approx(diffbio::sigmoid(20.0)).epsilon(1e-15));
    CHECK(r.weights[5] == 0.0); // padding
    // masked one-hot: A at position 0 of read 1, N (0.25 each) at position 1 of read 2
    CHECK(r.seq[0] == Approx(diffbio::sigmoid(10.0)).epsilon(1e-15));
    CHECK(r.seq[1] == 0.0);
    CHECK(r.seq[(3 + 1) * 4 + 2] == Approx(0.25 * diffbio::sigmoid(-15.0)).epsilon(1e-15));
    for (int k = 0; k < 4; ++k) CHECK(r.seq[(3 + 2) * 4 + k] == 0.0);
}

TEST_CASE("QualityFilter: spec behaviour at the default threshold 20", "[ops][quality-filter]") {
    ReadBatch b;
    const std::vector<float> q{40, 0, 20};
    b.add("r", "AAA", q);
    ops::QualityFilter qf;
    ad::Binder<double> bind;
    const auto w = qf.apply(bind, ops::view_of(b)).weights;
    CHECK(w[0] > 0.9);
    CHECK(w[1] < 0.5);
    CHECK(w[2] == 0.5);
    ops::QualityFilter strict({.initial_threshold = 50.0});
    CHECK(strict.apply(bind, ops::view_of(b)).weights[0] < 0.5);
}

TEST_CASE("QualityFilter recovers the hard cutoff as the softness goes to 0", "[ops][quality-filter][limit]") {
    ReadBatch b;
    const std::vector<float> q{19.9f, 20.1f, 35.0f, 2.0f};
    b.add("r", "ACGT", q);
    ops::QualityFilter qf({.initial_threshold = 20.0, .softness = 1e-6});
    ad::Binder<double> bind;
    const auto w = qf.apply(bind, ops::view_of(b)).weights;
    CHECK(w == std::vector<double>{0.0, 1.0, 1.0, 0.0});
    // A softness below float's range (1e-50 rounds to 0 in float) is still the hard step in the
    // float pass, with 0.5 at q = θ (not 0/0 = NaN); float's σ is within 1.2e-7 of 0 and 1.
    ReadBatch at;
    at.add("r", "ACGTA", std::vector<float>{20.0f, 19.99f, 20.01f, 20.0f, 41.0f});
    ad::Binder<float> fbind;
    for (const double s : {1e-50, 1e-40, 1e-30}) {
        const auto wf = ops::QualityFilter({.initial_threshold = 20.0, .softness = s}).apply(fbind, ops::view_of(at)).weights;
        const std::vector<float> expect{0.5f, 0.0f, 1.0f, 0.5f, 1.0f};
        REQUIRE(wf.size() == expect.size());
        for (std::size_t k = 0; k < wf.size(); ++k) CHECK(wf[k] == Approx(expect[k]).margin(1.2e-7));
    }
}

TEST_CASE("QualityFilter gradients: Var node, Dual and finite differences agree", "[ops][quality-filter][ad]") {
    const ReadBatch b = two_reads();
    ops::QualityFilter qf({.initial_threshold = 18.0, .softness = 2.0});
    // Loss = Σ seq' · c with fixed coefficients, as a function of θ.
    auto loss_at = [&](auto& bind) {
        const auto r = qf.apply(bind, ops::view_of(b));
        using R = std::decay_t<decltype(r.seq[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.seq.size(); ++i) s = s + r.seq[i] * (1.0 + 0.1 * static_cast<double>(i));
        return s;
    };
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> bv(tape);
    const ad::Var lv = loss_at(bv);
    tape.backward(lv);
    bv.accumulate_grad();
    const double g_rev = qf.threshold().grad()[0];
    ad::Binder<ad::Dual<double>> bd;
    bd.seed(qf.threshold(), 0);
    const double g_fwd = loss_at(bd).tangent;
    auto at = [&](double th) {
        ops::QualityFilter q2({.initial_threshold = th, .softness = 2.0});
        ad::Binder<double> b0;
        const auto r = q2.apply(b0, ops::view_of(b));
        double s = 0;
        for (std::size_t i = 0; i < r.seq.size(); ++i) s += r.seq[i] * (1.0 + 0.1 * static_cast<double>(i));
        return s;
    };
    const double fd = (at(18.0 + 1e-6) - at(18.0 - 1e-6)) / 2e-6;
    CHECK(g_rev < 0.0);
    CHECK(g_rev == Approx(g_fwd).epsilon(1e-12));
    CHECK(g_rev == Approx(fd).epsilon(1e-7));
}

TEST_CASE("QualityFilter gradients w.r.t. the reads and qualities: fused Var node = Dual = finite differences",
          "[ops][quality-filter][ad]") {
    // Soft reads and qualities as the inputs (as when an upstream stage produces them); every output
    // (weights and masked reads, padding included) is compared. Read 2 is padded.
    const ReadBatch b = two_reads();
    ops::QualityFilter qf({.initial_threshold = 18.0, .softness = 2.0});
    std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = 0.1 + 0.8 * x[k] + 0.01 * static_cast<double>(k % 7);
    const std::size_t n_seq = x.size();
    x.insert(x.end(), b.quality.begin(), b.quality.end());
    const auto f = [&](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        const std::vector<T> seq(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n_seq));
        const std::vector<T> quality(v.begin() + static_cast<std::ptrdiff_t>(n_seq), v.end());
        const ops::ReadsView<T, T> view{seq, quality, b.lengths, b.num_reads, b.length};
        auto bind = diffbio::test::make_binder<T>();
        const auto r = qf.apply(bind, view);
        std::vector<T> out = r.weights;
        out.insert(out.end(), r.seq.begin(), r.seq.end());
        return out;
    };
    diffbio::test::expect_ad(f, x);
}

TEST_CASE("QualityFilter: the fused Var node's gradients on exec::CpuParallel equal Cpu's", "[ops][quality-filter][ad]") {
    // θ, the soft reads and the qualities all Var; a loss on both outputs; 37 reads of varied length.
    ReadBatch b;
    for (int i = 0; i < 37; ++i) {
        const std::size_t len = 1 + static_cast<std::size_t>(i * 7) % 30;
        std::string s(len, 'A');
        std::vector<float> q(len);
        for (std::size_t l = 0; l < len; ++l) {
            s[l] = "ACGTN"[(static_cast<std::size_t>(i) + l * 3) % 5];
            q[l] = static_cast<float>((static_cast<std::size_t>(i) * 11 + l * 5) % 41);
        }
        b.add(std::to_string(i), s, q);
    }
    ops::QualityFilter qf({.initial_threshold = 21.5, .softness = 1.5});
    const auto grads = [&](const auto& policy) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto seq = tape.variables(std::vector<double>(b.one_hot.begin(), b.one_hot.end()));
        const auto quality = tape.variables(std::vector<double>(b.quality.begin(), b.quality.end()));
        ad::Binder<ad::Var> bind(tape);
        const ops::ReadsView<ad::Var, ad::Var> view{seq, quality, b.lengths, b.num_reads, b.length};
        const auto r = qf.apply(bind, view, policy);
        ad::Var loss = 0.0;
        for (std::size_t k = 0; k < r.weights.size(); ++k) loss += r.weights[k] * (0.3 + 0.001 * static_cast<double>(k));
        for (std::size_t k = 0; k < r.seq.size(); ++k) loss += r.seq[k] * (1.0 - 0.0007 * static_cast<double>(k));
        tape.backward(loss);
        qf.threshold().zero_grad();
        bind.accumulate_grad();
        std::vector<double> g(seq.size() + quality.size());
        tape.adjoints(seq, std::span<double>(g).first(seq.size()));
        tape.adjoints(quality, std::span<double>(g).subspan(seq.size()));
        g.push_back(qf.threshold().grad()[0]);
        qf.threshold().zero_grad();
        return g;
    };
    const auto serial = grads(exec::Cpu{});
    const auto parallel = grads(exec::CpuParallel{2});
    REQUIRE(serial.size() == parallel.size());
    CHECK(serial.back() != 0.0);
    for (std::size_t k = 0; k + 1 < serial.size(); ++k) REQUIRE(parallel[k] == serial[k]); // per-base: no reordering
    CHECK(parallel.back() == Approx(serial.back()).epsilon(1e-13));                        // θ: a sum over threads
}

TEST_CASE("QualityFilter validates its config and inputs", "[ops][quality-filter][errors]") {
    CHECK_THROWS_WITH(ops::QualityFilter({.initial_threshold = 20.0, .softness = 0.0}), Contains("'softness'"));
    CHECK_THROWS_AS(ops::QualityFilter({.initial_threshold = std::nan(""), .softness = 1.0}), InvalidArgument);
    const ReadBatch b = two_reads();
    auto v = ops::view_of(b);
    v.quality = v.quality.first(3);
    ops::QualityFilter qf;
    ad::Binder<double> bind;
    CHECK_THROWS_AS(qf.apply(bind, v), ShapeError);
}

TEST_CASE("QualityFilter rejects NaN and inf bases and qualities, naming read, position and channel",
          "[ops][quality-filter][errors]") {
    const ReadBatch b = two_reads(); // L = 3
    std::vector<float> seq(b.one_hot.begin(), b.one_hot.end()), qual(b.quality.begin(), b.quality.end());
    ops::QualityFilter qf;
    ad::Binder<double> bind;
    const auto view = [&] { return ops::ReadsView<float, float>{seq, qual, b.lengths, b.num_reads, b.length}; };
    qual[4] = std::numeric_limits<float>::quiet_NaN(); // read 1, position 1
    CHECK_THROWS_WITH(qf.apply(bind, view()), Contains("QualityFilter: quality at read 1, position 1 is not finite (nan)"));
    qual[4] = 5.0f;
    seq[(1 * 3 + 2) * 4 + 3] = std::numeric_limits<float>::infinity(); // read 1, position 2 (padding), T
    CHECK_THROWS_WITH(qf.apply(bind, view()), Contains("base value at read 1, position 2, channel T is not finite (inf)"));
    ad::Binder<float> fbind; // the float pass, serial and on two threads
    CHECK_THROWS_WITH(qf.apply(fbind, view()), Contains("read 1, position 2, channel T"));
    CHECK_THROWS_WITH(qf.apply(fbind, view(), exec::CpuParallel{2}), Contains("read 1, position 2, channel T"));
    seq[(1 * 3 + 2) * 4 + 3] = 0.0f;
    CHECK_NOTHROW(qf.apply(bind, view()));
    // AD inputs are checked by value: a Var quality that is NaN
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> vb(tape);
    std::vector<ad::Var> qv;
    for (const float q : qual) qv.push_back(tape.variable(q));
    qv[2] = tape.variable(-std::numeric_limits<double>::infinity());
    const ops::ReadsView<float, ad::Var> vv{seq, qv, b.lengths, b.num_reads, b.length};
    CHECK_THROWS_WITH(qf.apply(vb, vv), Contains("quality at read 0, position 2 is not finite (-inf)"));
}

TEST_CASE("QualityFilter: the float SIMD pass agrees with the double pass, padding and tails included",
          "[ops][quality-filter][simd]") {
    // Lengths 0..21 cover reads shorter than a SIMD register and scalar tails of every size.
    std::vector<std::string> seqs;
    for (std::size_t n = 0; n < 22; ++n) seqs.push_back(std::string(n, "ACGTN"[n % 5]));
    ReadBatch b = diffbio::test::batch_of(seqs);
    for (std::size_t k = 0; k < b.quality.size(); ++k) b.quality[k] = static_cast<float>((k * 7) % 45);
    ops::QualityFilter qf({.initial_threshold = 17.5, .softness = 0.7});
    ad::Binder<float> fb;
    ad::Binder<double> db;
    const auto f = qf.apply(fb, ops::view_of(b));
    const auto d = qf.apply(db, ops::view_of(b));
    const auto fp = qf.apply(fb, ops::view_of(b), exec::CpuParallel{2});
    REQUIRE(f.weights.size() == d.weights.size());
    for (std::size_t k = 0; k < d.weights.size(); ++k) {
        const double ref = diffbio::sigmoid((static_cast<double>(b.quality[k]) - 17.5) / 0.7);
        const bool pad = k % b.length >= b.lengths[k / b.length];
        CHECK(d.weights[k] == (pad ? 0.0 : ref));
        // float: the kernel's σ is within 4e-7 of the exact σ of the float-rounded z; z itself
        // carries float rounding (|z| ≤ 26 here), so against double the agreement is ~1e-5.
        const float zf = (b.quality[k] - 17.5f) / static_cast<float>(0.7);
        CHECK(f.weights[k] == Approx(pad ? 0.0 : diffbio::sigmoid(static_cast<double>(zf))).epsilon(4e-7).margin(1e-30));
        CHECK(f.weights[k] == Approx(d.weights[k]).epsilon(1e-5).margin(1e-30));
        CHECK(fp.weights[k] == f.weights[k]);
    }
    for (std::size_t k = 0; k < d.seq.size(); ++k) {
        CHECK(d.seq[k] == static_cast<double>(b.one_hot[k]) * d.weights[k / 4]);
        CHECK(f.seq[k] == b.one_hot[k] * f.weights[k / 4]);
    }
}
