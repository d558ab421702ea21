#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/segment_sum.hpp>
#include <diffbio/soft/threshold.hpp>

#include "expect_ad.hpp"

using Catch::Matchers::Contains;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::test::expect_ad;
namespace soft = diffbio::soft;
namespace exec = diffbio::exec;

namespace {
// Four reads' bases at reference positions, one-hot over A C G T.
const std::vector<double> onehot{1, 0, 0, 0,  // A at 0
                                 0, 1, 0, 0,  // C at 1
                                 1, 0, 0, 0,  // A at 0
                                 0, 0, 0, 1,  // T at 2
                                 0, 0, 1, 0}; // G skipped (id −1)
const std::vector<std::int32_t> ids{0, 1, 0, 2, -1};
} // namespace

TEST_CASE("segment_sum: hand-computed weighted table", "[soft][segment-sum]") {
    const std::vector<double> w{0.5, 1.0, 0.25, 2.0, 9.0};
    const auto out = soft::segment_sum(exec::Cpu{}, std::span<const double>(onehot), 4, std::span<const double>(w),
                                       std::span<const std::int32_t>(ids), 3);
    const std::vector<double> expected{0.75, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 0, 2.0};
    CHECK(out == expected);
}

TEST_CASE("segment_sum with hard weights gives integer counts (the tau -> 0 limit)", "[soft][segment-sum][limit]") {
    const auto counts = soft::segment_sum(exec::Cpu{}, std::span<const double>(onehot), 4, std::span<const double>(),
                                          std::span<const std::int32_t>(ids), 3);
    CHECK(counts == std::vector<double>{2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1});
    // Quality-gated counting: soft weights σ((q − 20)/τ) become exact 0/1 as τ → 0.
    const std::vector<double> q{30, 10, 25, 21, 40};
    const auto w = soft::soft_threshold(exec::Cpu{}, std::span<const double>(q), 20.0, 1e-6);
    const auto gated = soft::segment_sum(exec::Cpu{}, std::span<const double>(onehot), 4, std::span<const double>(w),
                                         std::span<const std::int32_t>(ids), 3);
    CHECK(gated == std::vector<double>{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("segment_sum: Cpu and CpuParallel agree on a large random table", "[soft][segment-sum][exec]") {
    const std::size_t m = 50000, c = 5, s = 700;
    std::vector<double> v(m * c), w(m);
    std::vector<std::int32_t> id(m);
    std::uint64_t state = 12345;
    auto next = [&] { state = state * 6364136223846793005ULL + 1442695040888963407ULL; return state >> 33; };
    for (std::size_t i = 0; i < m; ++i) {
        id[i] = static_cast<std::int32_t>(next() % (s + 20)) - 20; // some negatives: skipped
        w[i] = static_cast<double>(next() % 1000) / 1000.0;
        for (std::size_t k = 0; k < c; ++k) v[i * c + k] = static_cast<double>(next() % 7);
    }
    const auto a = soft::segment_sum(exec::Cpu{}, std::span<const double>(v), c, std::span<const double>(w),
                                     std::span<const std::int32_t>(id), s);
    const auto b = soft::segment_sum(exec::CpuParallel{3}, std::span<const double>(v), c, std::span<const double>(w),
                                     std::span<const std::int32_t>(id), s);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == Approx(a[i]).epsilon(1e-13));
    // Backward of both policies.
    std::vector<double> og(s * c);
    for (std::size_t i = 0; i < og.size(); ++i) og[i] = std::cos(static_cast<double>(i));
    std::vector<double> gv1(m * c, 0), gw1(m, 0), gv2(m * c, 0), gw2(m, 0);
    soft::segment_sum_backward(exec::Cpu{}, std::span<const double>(v), c, std::span<const double>(w),
                               std::span<const std::int32_t>(id), s, std::span<const double>(og), std::span<double>(gv1),
                               std::span<double>(gw1));
    soft::segment_sum_backward(exec::CpuParallel{3}, std::span<const double>(v), c, std::span<const double>(w),
                               std::span<const std::int32_t>(id), s, std::span<const double>(og), std::span<double>(gv2),
                               std::span<double>(gw2));
    CHECK(gv1 == gv2);
    CHECK(gw1 == gw2);
}

TEST_CASE("segment_sum: CpuParallel with fewer entries than threads", "[soft][segment-sum][exec]") {
    const std::vector<double> v{1.0, 2.0, 3.0};
    const std::vector<std::int32_t> id{1, 1, 0};
    for (std::size_t m = 0; m <= 3; ++m) {
        const auto out = soft::segment_sum(exec::CpuParallel{8}, std::span<const double>(v).first(m), 1,
                                           std::span<const double>(), std::span<const std::int32_t>(id).first(m), 2);
        const auto ref = soft::segment_sum(exec::Cpu{}, std::span<const double>(v).first(m), 1,
                                           std::span<const double>(), std::span<const std::int32_t>(id).first(m), 2);
        CHECK(out == ref);
    }
}

TEST_CASE("segment_sum passes expect_ad in values and weights (Var: fused node)", "[soft][segment-sum][ad]") {
    // 4 entries × 2 channels, 3 segments; v = 8 values then 4 weights.
    const std::vector<double> p{0.2, 0.8, 1.0, -0.5, 0.3, 0.3, 2.0, 0.1, /*w*/ 0.9, 0.4, 1.5, 0.7};
    const std::vector<std::int32_t> id{2, 0, 2, -1};
    auto f = [&id](auto v) {
        return soft::segment_sum(exec::Cpu{}, v.first(8), 2, v.subspan(8, 4), std::span<const std::int32_t>(id), 3);
    };
    expect_ad(f, p);
    auto fp = [&id](auto v) {
        return soft::segment_sum(exec::CpuParallel{2}, v.first(8), 2, v.subspan(8, 4), std::span<const std::int32_t>(id), 3);
    };
    expect_ad(fp, p);
}

TEST_CASE("segment_sum without weights passes expect_ad in values (unit weights in the fused backward)",
          "[soft][segment-sum][ad]") {
    const std::vector<double> p{0.2, 0.8, 1.0, -0.5, 0.3, 0.3, 2.0, 0.1};
    const std::vector<std::int32_t> id{2, 0, 2, -1};
    auto f = [&id](auto policy) {
        return [&id, policy](auto v) {
            using T = std::remove_cvref_t<decltype(v[0])>;
            using W = std::conditional_t<std::is_same_v<T, float>, float, double>; // passive, empty
            return soft::segment_sum(policy, v, 2, std::span<const W>(), std::span<const std::int32_t>(id), 3);
        };
    };
    expect_ad(f(exec::Cpu{}), p);
    expect_ad(f(exec::CpuParallel{2}), p);
    // And the value: segment 2 holds entries 0 and 2, segment 1 is empty, entry 3 is dropped.
    const auto out = f(exec::Cpu{})(std::span<const double>(p));
    const std::vector<double> want{1.0, -0.5, 0.0, 0.0, 0.5, 1.1};
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(out[i] == Approx(want[i]).epsilon(1e-15));
}

TEST_CASE("pileup-style counting: data bases, learnable quality gate, one node each", "[soft][segment-sum][node]") {
    const std::vector<double> q{30, 10, 25, 21, 40};
    Tape tape;
    ScopedTape scope(tape);
    const Var t = tape.variable(20.0), tau = tape.variable(2.0);
    const auto w = soft::soft_threshold(exec::Cpu{}, std::span<const double>(q), t, tau);
    const auto counts = soft::segment_sum(exec::Cpu{}, std::span<const double>(onehot), 4, std::span<const Var>(w),
                                          std::span<const std::int32_t>(ids), 3);
    CHECK(tape.num_nodes() == 2);
    tape.backward(counts[0]); // A count at position 0 = w0 + w2
    const double s0 = diffbio::sigmoid(5.0), s2 = diffbio::sigmoid(2.5);
    CHECK(counts[0].value() == Approx(s0 + s2).epsilon(1e-15));
    CHECK(tape.adjoint(t) == Approx(-(s0 * (1 - s0) + s2 * (1 - s2)) / 2.0).epsilon(1e-14));
}

TEST_CASE("segment_sum rejects bad shapes and ids", "[soft][segment-sum][errors]") {
    const std::vector<double> v{1, 2, 3, 4};
    const std::vector<std::int32_t> id{0, 5};
    CHECK_THROWS_WITH(soft::segment_sum(exec::Cpu{}, std::span<const double>(v), 2, std::span<const double>(),
                                        std::span<const std::int32_t>(id), 3),
                      Contains("ids[1] = 5"));
    const std::vector<std::int32_t> short_ids{0};
    CHECK_THROWS_AS(soft::segment_sum(exec::Cpu{}, std::span<const double>(v), 2, std::span<const double>(),
                                      std::span<const std::int32_t>(short_ids), 3),
                    diffbio::ShapeError);
    CHECK_THROWS_AS(soft::segment_sum(exec::Cpu{}, std::span<const double>(v), 3, std::span<const double>(),
                                      std::span<const std::int32_t>(id), 3),
                    diffbio::ShapeError);
    CHECK_THROWS_AS(soft::segment_sum(exec::Cpu{}, std::span<const double>(v), 0, std::span<const double>(),
                                      std::span<const std::int32_t>(id), 3),
                    diffbio::InvalidArgument);
    const std::vector<double> w3{1, 1, 1};
    const std::vector<std::int32_t> ok{0, 1};
    CHECK_THROWS_WITH(soft::segment_sum(exec::Cpu{}, std::span<const double>(v), 2, std::span<const double>(w3),
                                        std::span<const std::int32_t>(ok), 3),
                      Contains("weights has size 3, expected 2"));
}
