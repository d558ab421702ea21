// Clustering metrics at single-cell scale, on simulated data (simulate_counts): ARI and NMI on
// 10^6 labels, hard silhouette and iLISI on n points in 30 dimensions (O(n²·d), Cpu and
// CpuParallel{2}), soft silhouette (double) on 500 points, and the simulator itself.
// Counters: items/s = labels, points or cells·genes per second.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <diffbio/core/simulate_counts.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/metrics/ari.hpp>
#include <diffbio/metrics/lisi.hpp>
#include <diffbio/metrics/nmi.hpp>
#include <diffbio/metrics/silhouette.hpp>

namespace {

struct Points {
    std::vector<double> x;
    std::vector<int> cluster, batch;
};

/// n points in dim dimensions: 8 clusters of uniform noise around distinct centres, 2 batches.
Points make_points(std::size_t n, std::size_t dim) {
    Points p;
    std::uint64_t s = 12345;
    auto u = [&] {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(s >> 11) * 0x1.0p-53;
    };
    for (std::size_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(i % 8);
        for (std::size_t j = 0; j < dim; ++j) p.x.push_back((j % 8 == static_cast<std::size_t>(c) ? 4.0 : 0.0) + u());
        p.cluster.push_back(c);
        p.batch.push_back(static_cast<int>((i / 8) % 2));
    }
    return p;
}

void BM_ari_nmi(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<int> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
        a[i] = static_cast<int>(i % 20);
        b[i] = static_cast<int>((i * 7 + i / 3) % 15);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(diffbio::metrics::adjusted_rand_index(a, b));
        benchmark::DoNotOptimize(diffbio::metrics::normalized_mutual_information(a, b));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_ari_nmi)->Arg(1000000)->Unit(benchmark::kMillisecond);

template <class Policy>
void BM_silhouette(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Points p = make_points(n, 30);
    for (auto _ : state) {
        benchmark::DoNotOptimize(
            diffbio::metrics::silhouette_score(Policy{}, std::span<const double>(p.x), 30, p.cluster));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK_TEMPLATE(BM_silhouette, diffbio::exec::Cpu)->Arg(2000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_silhouette, diffbio::exec::CpuParallel)->Arg(2000)->Unit(benchmark::kMillisecond);

template <class Policy>
void BM_ilisi(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Points p = make_points(n, 30);
    for (auto _ : state) {
        benchmark::DoNotOptimize(diffbio::metrics::lisi(Policy{}, std::span<const double>(p.x), 30, p.batch).median);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK_TEMPLATE(BM_ilisi, diffbio::exec::Cpu)->Arg(2000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ilisi, diffbio::exec::CpuParallel)->Arg(2000)->Unit(benchmark::kMillisecond);

void BM_soft_silhouette(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Points p = make_points(n, 30);
    std::vector<double> prob(n * 8);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < 8; ++k) prob[i * 8 + k] = static_cast<int>(k) == p.cluster[i] ? 0.72 : 0.04;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(diffbio::metrics::soft_silhouette(std::span<const double>(p.x), 30,
                                                                   std::span<const double>(prob), 8));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_soft_silhouette)->Arg(500)->Unit(benchmark::kMillisecond);

void BM_simulate_counts(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        auto s = diffbio::simulate_counts({.n_cells = n, .n_genes = 2000, .n_clusters = 8, .n_batches = 2,
                                           .doublet_rate = 0.05, .ambient_fraction = 0.02, .seed = 1});
        benchmark::DoNotOptimize(s.counts.nnz());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n * 2000));
}
BENCHMARK(BM_simulate_counts)->Arg(2000)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
