// Soft k-means at single-cell scale: 50,000 cells × 50 dimensions (PCA-sized), K = 10.
//   BM_assign_plain<R, P>   soft assignments in double / float without a tape (forward only)
//   BM_assign_var_fwd<P>    the Var forward: recording the fused node and its forward kernel
//   BM_assign_var_fwdbwd<P> forward + reverse sweep with a loss Σ w_ik r_ik (gradients w.r.t. the
//                           points, the centroids and τ)
//   BM_assign_centroids_fwdbwd<P>  the training case: constant points, Var centroids and τ
//   BM_lloyd_step<P>        one hard assignment pass (the τ → 0 labels)
// P = Cpu or CpuParallel{2}. Counters: items/s = points per second. Run with
// --benchmark_repetitions=N --benchmark_report_aggregates_only=true and quote the medians.

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

namespace {

constexpr std::size_t kN = 50000, kF = 50, kK = 10;

struct Data {
    std::vector<double> x, mu, w;
};

const Data& data() {
    static const Data d = [] {
        Data out;
        std::uint64_t s = 2024;
        auto u = [&] {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            return static_cast<double>(s >> 11) * 0x1.0p-53;
        };
        out.x.resize(kN * kF);
        for (std::size_t i = 0; i < kN; ++i) {
            const std::size_t c = i % kK;
            for (std::size_t f = 0; f < kF; ++f) out.x[i * kF + f] = (f % kK == c ? 3.0 : 0.0) + u();
        }
        out.mu = diffbio::ops::kmeans_plusplus(out.x, kN, kF, kK, 1);
        out.w.resize(kN * kK);
        for (std::size_t j = 0; j < out.w.size(); ++j) out.w[j] = std::sin(0.001 * static_cast<double>(j));
        return out;
    }();
    return d;
}

template <class P>
P policy() {
    if constexpr (std::is_same_v<P, diffbio::exec::CpuParallel>) {
        return P{2};
    } else {
        return P{};
    }
}

template <class R, class P>
void BM_assign_plain(benchmark::State& state) {
    const Data& d = data();
    const std::vector<R> x(d.x.begin(), d.x.end()), mu(d.mu.begin(), d.mu.end());
    for (auto _ : state) {
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const R>(x), kN, std::span<const R>(mu), kK, R(2.0));
        benchmark::DoNotOptimize(r.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

template <class P>
void BM_assign_var_fwd(benchmark::State& state) {
    const Data& d = data();
    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    for (auto _ : state) {
        tape.rewind(start);
        const auto xv = tape.variables(d.x);
        const auto mv = tape.variables(d.mu);
        const diffbio::ad::Var t = tape.variable(2.0);
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const diffbio::ad::Var>(xv), kN, std::span<const diffbio::ad::Var>(mv), kK, t);
        benchmark::DoNotOptimize(r.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

template <class P>
void BM_assign_var_fwdbwd(benchmark::State& state) {
    const Data& d = data();
    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    std::vector<double> gm(d.mu.size());
    for (auto _ : state) {
        tape.rewind(start);
        const auto xv = tape.variables(d.x);
        const auto mv = tape.variables(d.mu);
        const diffbio::ad::Var t = tape.variable(2.0);
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const diffbio::ad::Var>(xv), kN, std::span<const diffbio::ad::Var>(mv), kK, t);
        const diffbio::ad::Var loss = tape.push_nary(0.0, r, d.w); // value unused: only its adjoints matter
        tape.backward(loss);
        tape.adjoints(mv, gm);
        benchmark::DoNotOptimize(gm.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

/// The training case: constant points (double), Var centroids and τ; forward + backward.
template <class P>
void BM_assign_centroids_fwdbwd(benchmark::State& state) {
    const Data& d = data();
    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    std::vector<double> gm(d.mu.size());
    for (auto _ : state) {
        tape.rewind(start);
        const auto mv = tape.variables(d.mu);
        const diffbio::ad::Var t = tape.variable(2.0);
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const double>(d.x), kN, std::span<const diffbio::ad::Var>(mv), kK, t);
        const diffbio::ad::Var loss = tape.push_nary(0.0, r, d.w);
        tape.backward(loss);
        tape.adjoints(mv, gm);
        benchmark::DoNotOptimize(gm.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

template <class P>
void BM_lloyd_step(benchmark::State& state) {
    const Data& d = data();
    for (auto _ : state) {
        auto l = diffbio::ops::hard_assign(d.x, kN, d.mu, kK, policy<P>());
        benchmark::DoNotOptimize(l.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

using diffbio::exec::Cpu;
using diffbio::exec::CpuParallel;

BENCHMARK_TEMPLATE(BM_assign_plain, double, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_plain, double, CpuParallel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_plain, float, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_plain, float, CpuParallel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_var_fwd, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_var_fwd, CpuParallel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_var_fwdbwd, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_var_fwdbwd, CpuParallel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_centroids_fwdbwd, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_assign_centroids_fwdbwd, CpuParallel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_lloyd_step, Cpu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_lloyd_step, CpuParallel)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
