#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <diffbio/ops/preprocessing/duplicate_weighting.hpp>

#include "expect_ad.hpp"
#include "read_fixtures.hpp"
#include "expect_params.hpp"

using namespace diffbio;

namespace {
using diffbio::test::batch_of;
const std::string a = "TTGCATCCGTAACTGGTCATTGCAGC";
const std::string c = "GACCTAGGATTTACGCACGTAACGTA";
} // namespace

TEST_CASE("DuplicateWeighting: a single read weighs 1, embeddings are unit vectors", "[ops][duplicates]") {
    const ReadBatch b = batch_of({a});
    ops::DuplicateWeighting dw;
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    CHECK(r.weights == std::vector<double>{1.0});
    double n2 = 0;
    for (double e : r.embeddings) n2 += e * e;
    CHECK(r.embeddings.size() == 32);
    CHECK(n2 == Approx(1.0).epsilon(1e-7));
}

TEST_CASE("DuplicateWeighting: exact copies share weight, hard limit gives 1/cluster size", "[ops][duplicates][limit]") {
    // Three copies of a, one c: sizes → 3, 3, 3, 1 at τ → 0 with a threshold between the
    // similarities; raw = 1/3, 1/3, 1/3, 1; mean 0.5 → weights 2/3, 2/3, 2/3, 2.
    const ReadBatch b = batch_of({a, a, c, a});
    ops::DuplicateWeighting dw({.similarity_threshold = 0.9999, .temperature = 1e-7, .learnable_temperature = false});
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    // the two embeddings differ enough for this threshold
    double s = 0;
    for (int e = 0; e < 32; ++e) s += r.embeddings[static_cast<std::size_t>(e)] * r.embeddings[static_cast<std::size_t>(64 + e)];
    REQUIRE(s < 0.9999);
    CHECK(r.weights[0] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(r.weights[1] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(r.weights[2] == Approx(2.0).epsilon(1e-12));
    CHECK(r.weights[3] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(std::accumulate(r.weights.begin(), r.weights.end(), 0.0) / 4.0 == Approx(1.0));
    CHECK(dw.duplicate_flags(ops::view_of(b)) == std::vector<bool>{false, true, false, true});
}

TEST_CASE("DuplicateWeighting: reads shorter than the kernel get a zero embedding, not NaN", "[ops][duplicates]") {
    const ReadBatch b = batch_of({"ACG", a});
    ops::DuplicateWeighting dw;
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    for (int e = 0; e < 32; ++e) CHECK(r.embeddings[static_cast<std::size_t>(e)] == 0.0);
    for (double w : r.weights) CHECK(std::isfinite(w));
}

TEST_CASE("DuplicateWeighting gradients: fused nodes = Dual = finite differences", "[ops][duplicates][ad]") {
    const ReadBatch b = batch_of({a.substr(0, 12), a.substr(0, 12), c.substr(0, 10), "ACGTAC"});
    ops::DuplicateWeighting dw({.embedding_dim = 4, .kernel_width = 3, .similarity_threshold = 0.5, .temperature = 0.3,
                                .block_size = 3});
    const std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    auto f = [&](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        std::vector<T> seq(v.begin(), v.end());
        const ops::ReadsView<T, float> view{seq, b.quality, b.lengths, b.num_reads, b.length};
        auto bind = diffbio::test::make_binder<T>();
        const auto r = dw.apply(bind, view);
        std::vector<T> out = r.weights;
        out.insert(out.end(), r.embeddings.begin(), r.embeddings.begin() + 6);
        return out;
    };
    diffbio::test::expect_ad(f, x, {.check_float = false});

    // Parameters: kernel entries, threshold, log temperature.
    auto loss = [&](auto& bind) {
        const auto r = dw.apply(bind, ops::view_of(b));
        using R = std::decay_t<decltype(r.weights[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.weights.size(); ++i) s = s + r.weights[i] * (1.0 + static_cast<double>(i));
        return s;
    };
    diffbio::test::expect_parameter_gradients(dw.parameters(), loss, {.samples = 6});
}

TEST_CASE("DuplicateWeighting: CpuParallel equals Cpu", "[ops][duplicates][exec]") {
    std::vector<std::string> reads;
    for (int i = 0; i < 40; ++i) reads.push_back(i % 3 == 0 ? a : (i % 3 == 1 ? c : a.substr(static_cast<std::size_t>(i % 5))));
    const ReadBatch b = batch_of(reads);
    ops::DuplicateWeighting dw({.block_size = 7});
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> b1(tape), b2(tape);
    const auto r1 = dw.apply(b1, ops::view_of(b), exec::Cpu{});
    const auto r2 = dw.apply(b2, ops::view_of(b), exec::CpuParallel{2});
    for (std::size_t i = 0; i < r1.weights.size(); ++i) CHECK(r2.weights[i].value() == Approx(r1.weights[i].value()).epsilon(1e-12));
}
