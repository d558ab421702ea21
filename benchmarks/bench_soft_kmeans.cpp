// Soft k-means at single-cell scale: 50,000 cells × 50 dimensions (PCA-sized), K = 10.
//   BM_assign_plain<R, P>   soft assignments in double / float without a tape (forward only)
//   BM_assign_var_fwd<P>    the Var forward: recording the fused node and its forward kernel
//   BM_assign_var_fwdbwd<P> forward + reverse sweep with a loss Σ w_ik r_ik (gradients w.r.t. the
//                           points, the centroids and τ)
//   BM_assign_centroids_fwdbwd<P>  the training case: constant points, Var centroids and τ
//   BM_lloyd_step<P>        one hard assignment pass (the τ → 0 labels)
// The shapes of issue 6 (n × F points, K centroids: 100000 × 50, K = 20 and 1000000 × 32,
// K = 256; Gaussian blobs, k-means++ centroids; benchmarks/peers/kmeans_speed.sh runs the same
// entries next to scikit-learn):
//   BM_lloyd_iteration<P>   ops::lloyd with max_iter = 1 (scikit-learn's fit(max_iter=1): one
//                           iteration, the final relabelling, the inertia)
//   BM_soft_forward<R, P>   ops::soft_assign_into (double / float) into a kept buffer
//   BM_soft_fwdbwd_node<P>  the fused node's forward and backward kernels (∂/∂centroids, ∂/∂τ
//                           given ∂L/∂r), into kept buffers: the soft step without tape bookkeeping
//   BM_soft_fwdbwd_tape<P>  the training case on a tape (100000 × 50 only: the 10^6 × 256 case
//                           needs ~12 GB of tape)
// P = Cpu or CpuParallel{2}. Counters: items/s = points per second. Run with
// --benchmark_repetitions=N --benchmark_report_aggregates_only=true and quote the medians.

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <tuple>
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

/// items/s = points per second.
void count_points(benchmark::State& state, std::size_t n) {
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
}

template <class R, class P>
void BM_assign_plain(benchmark::State& state) {
    const Data& d = data();
    const std::vector<R> x(d.x.begin(), d.x.end()), mu(d.mu.begin(), d.mu.end());
    for (auto _ : state) {
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const R>(x), kN, std::span<const R>(mu), kK, R(2.0));
        benchmark::DoNotOptimize(r.data());
    }
    count_points(state, kN);
}

/// Times `step(tape)` with the tape rewound to its starting mark before every iteration.
template <class Step>
void time_on_tape(benchmark::State& state, Step step) {
    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    for (auto _ : state) {
        tape.rewind(start);
        step(tape);
    }
}

/// Reverse sweep of the loss Σ w_ik r_ik (one Tape::weighted_sum node); the centroid gradients
/// land in gm.
void centroid_gradients(diffbio::ad::Tape& tape, std::span<const diffbio::ad::Var> r, const std::vector<double>& w,
                        std::span<const diffbio::ad::Var> mv, std::vector<double>& gm) {
    const diffbio::ad::Var loss = tape.weighted_sum(r, w);
    tape.backward(loss);
    tape.adjoints(mv, gm);
    benchmark::DoNotOptimize(gm.data());
}

/// Var points, centroids and τ; the forward pass alone, or with the reverse sweep when Backward.
template <class P, bool Backward>
void assign_var(benchmark::State& state) {
    const Data& d = data();
    std::vector<double> gm(Backward ? d.mu.size() : 0);
    time_on_tape(state, [&](diffbio::ad::Tape& tape) {
        const auto xv = tape.variables(d.x);
        const auto mv = tape.variables(d.mu);
        const diffbio::ad::Var t = tape.variable(2.0);
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const diffbio::ad::Var>(xv), kN, std::span<const diffbio::ad::Var>(mv), kK, t);
        if constexpr (Backward) {
            centroid_gradients(tape, r, d.w, mv, gm);
        } else {
            benchmark::DoNotOptimize(r.data());
        }
    });
    count_points(state, kN);
}

template <class P>
void BM_assign_var_fwd(benchmark::State& state) {
    assign_var<P, false>(state);
}

template <class P>
void BM_assign_var_fwdbwd(benchmark::State& state) {
    assign_var<P, true>(state);
}

/// The training case: constant points (double), Var centroids and τ = tau; forward + backward.
template <class P>
void centroids_fwdbwd(benchmark::State& state, const Data& d, std::size_t n, std::size_t K, double tau) {
    std::vector<double> gm(d.mu.size());
    time_on_tape(state, [&](diffbio::ad::Tape& tape) {
        const auto mv = tape.variables(d.mu);
        const diffbio::ad::Var t = tape.variable(tau);
        auto r = diffbio::ops::soft_assign(policy<P>(), std::span<const double>(d.x), n, std::span<const diffbio::ad::Var>(mv), K, t);
        centroid_gradients(tape, r, d.w, mv, gm);
    });
    count_points(state, n);
}

template <class P>
void BM_assign_centroids_fwdbwd(benchmark::State& state) {
    centroids_fwdbwd<P>(state, data(), kN, kK, 2.0);
}

template <class P>
void BM_lloyd_step(benchmark::State& state) {
    const Data& d = data();
    for (auto _ : state) {
        auto l = diffbio::ops::hard_assign(d.x, kN, d.mu, kK, policy<P>());
        benchmark::DoNotOptimize(l.data());
    }
    count_points(state, kN);
}

/// Issue-6 data: n points in K Gaussian blobs (centres ~ N(0, 3²) per coordinate, unit noise),
/// k-means++ centroids (seed 1), ∂L/∂r = a fixed pattern in [-1, 1].
const Data& shaped(std::size_t n, std::size_t F, std::size_t K) {
    static std::map<std::tuple<std::size_t, std::size_t, std::size_t>, Data> cache;
    auto it = cache.find({n, F, K});
    if (it != cache.end()) return it->second;
    Data out;
    std::uint64_t s = 77;
    auto u = [&] {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (static_cast<double>(s >> 11) + 0.5) * 0x1.0p-53;
    };
    auto normal = [&] { return std::sqrt(-2.0 * std::log(u())) * std::cos(6.283185307179586 * u()); };
    std::vector<double> centres(K * F);
    for (double& c : centres) c = 3.0 * normal();
    out.x.resize(n * F);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = static_cast<std::size_t>(u() * static_cast<double>(K)) % K;
        for (std::size_t f = 0; f < F; ++f) out.x[i * F + f] = centres[c * F + f] + normal();
    }
    out.mu = diffbio::ops::kmeans_plusplus(out.x, n, F, K, 1);
    out.w.resize(n * K);
    for (std::size_t j = 0; j < out.w.size(); ++j) out.w[j] = static_cast<double>(static_cast<int>((j * 2654435761ULL) % 2001) - 1000) * 1e-3;
    return cache.emplace(std::make_tuple(n, F, K), std::move(out)).first->second;
}

/// n, F, K of an issue-6 entry (its Args).
std::tuple<std::size_t, std::size_t, std::size_t> shape_of(const benchmark::State& state) {
    return {static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
            static_cast<std::size_t>(state.range(2))};
}

template <class P>
void BM_lloyd_iteration(benchmark::State& state) {
    const auto [n, F, K] = shape_of(state);
    const Data& d = shaped(n, F, K);
    for (auto _ : state) {
        auto r = diffbio::ops::lloyd(d.x, n, d.mu, K, {.max_iter = 1, .tol = 0.0}, policy<P>());
        benchmark::DoNotOptimize(r.inertia);
    }
    count_points(state, n);
}

template <class R, class P>
void BM_soft_forward(benchmark::State& state) {
    const auto [n, F, K] = shape_of(state);
    const Data& d = shaped(n, F, K);
    const std::vector<R> x(d.x.begin(), d.x.end()), mu(d.mu.begin(), d.mu.end());
    std::vector<R> r(n * K);
    const R tau = static_cast<R>(F);
    for (auto _ : state) {
        diffbio::ops::soft_assign_into(policy<P>(), std::span<const R>(x), n, std::span<const R>(mu), K, tau, std::span<R>(r));
        benchmark::DoNotOptimize(r.data());
    }
    count_points(state, n);
}

template <class P>
void BM_soft_fwdbwd_node(benchmark::State& state) {
    namespace kd = diffbio::ops::kmeans_detail;
    const auto [n, F, K] = shape_of(state);
    const Data& d = shaped(n, F, K);
    std::vector<double> r(n * K), gm(K * F);
    const double tau = static_cast<double>(F);
    for (auto _ : state) {
        kd::forward<double>(policy<P>(), d.x.data(), n, F, d.mu.data(), K, tau, r.data(), nullptr, nullptr);
        double gt = 0.0;
        std::fill(gm.begin(), gm.end(), 0.0);
        kd::backward(policy<P>(), d.x.data(), n, F, d.mu.data(), K, tau, r.data(), d.w.data(), nullptr, gm.data(), &gt);
        benchmark::DoNotOptimize(gt);
        benchmark::DoNotOptimize(gm.data());
    }
    count_points(state, n);
}

template <class P>
void BM_soft_fwdbwd_tape(benchmark::State& state) {
    const auto [n, F, K] = shape_of(state);
    centroids_fwdbwd<P>(state, shaped(n, F, K), n, K, static_cast<double>(F));
}

using diffbio::exec::Cpu;
using diffbio::exec::CpuParallel;

void issue6_shapes(benchmark::internal::Benchmark* b) {
    b->Args({100000, 50, 20})->Args({1000000, 32, 256})->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_lloyd_iteration, Cpu)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_lloyd_iteration, CpuParallel)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_forward, double, Cpu)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_forward, double, CpuParallel)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_forward, float, Cpu)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_forward, float, CpuParallel)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_fwdbwd_node, Cpu)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_fwdbwd_node, CpuParallel)->Apply(issue6_shapes);
BENCHMARK_TEMPLATE(BM_soft_fwdbwd_tape, Cpu)->Args({100000, 50, 20})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_soft_fwdbwd_tape, CpuParallel)->Args({100000, 50, 20})->Unit(benchmark::kMillisecond);

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
