// bench_preprocessing: forward and forward+backward throughput of the read preprocessing
// operators and the whole pipeline, on simulated 150 bp reads, with exec::Cpu and CpuParallel.
//
//   BM_<stage>_forward/<reads>/<threads>     double, no tape
//   BM_<stage>_forward_float/...             float (Binder<float>: float kernels end to end)
//   BM_<stage>_gradient/<reads>/<threads>    Var: record on a rewound tape, sweep, collect gradients
//   BM_<stage>_gradient_float/...            Var with float_gradient (float kernels in the fused nodes)
//   BM_duplicate_weighting_100k/<threads>    the exact O(N²) duplicate weights on 100,000 reads
//                                            (forward and forward+backward, one iteration each)
// threads = 1 runs exec::Cpu, otherwise exec::CpuParallel{threads}. Counter: reads_per_second.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <diffbio/core/simd.hpp>
#include <diffbio/diffbio.hpp>

namespace ad = diffbio::ad;
namespace ops = diffbio::ops;
namespace exec = diffbio::exec;
using diffbio::ReadBatch;

namespace {

/// Uniform random 150 bp reads, the walkthrough's quality model, a share with adapters and copies.
const ReadBatch& reads(std::size_t n) {
    static std::map<std::size_t, ReadBatch> cache;
    auto it = cache.find(n);
    if (it != cache.end()) return it->second;
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> base(0, 3);
    std::normal_distribution<double> noise(0.0, 5.0);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    const std::string adapter = "AGATCGGAAGAGCGGTTCAGCAGGAATGCCGAGA";
    ReadBatch b;
    std::string previous;
    for (std::size_t r = 0; r < n; ++r) {
        std::string seq(150, 'A');
        for (char& c : seq) c = diffbio::bases[static_cast<std::size_t>(base(rng))];
        if (unif(rng) < 0.3) { // adapter read-through at a random insert length
            const auto ins = static_cast<std::size_t>(60 + unif(rng) * 90);
            for (std::size_t k = ins; k < 150; ++k) seq[k] = adapter[(k - ins) % adapter.size()];
        }
        if (!previous.empty() && unif(rng) < 0.1) seq = previous; // duplicates
        previous = seq;
        std::vector<float> q(150);
        for (std::size_t p = 0; p < 150; ++p) {
            q[p] = static_cast<float>(std::clamp(36.0 - 12.0 * static_cast<double>(p) / 150.0 + noise(rng), 2.0, 41.0));
        }
        b.add(std::string("r").append(std::to_string(r)), seq, q);
    }
    return cache.emplace(n, std::move(b)).first->second;
}

template <class F>
void with_policy(int threads, F&& f) {
    if (threads <= 1) {
        f(exec::Cpu{});
    } else {
        f(exec::CpuParallel{threads});
    }
}

/// Forward (double, or Scalar) of one stage.
template <class Stage, class Scalar = double>
void forward_bench(benchmark::State& state, Stage& stage) {
    const ReadBatch& b = reads(static_cast<std::size_t>(state.range(0)));
    with_policy(static_cast<int>(state.range(1)), [&](auto policy) {
        ad::Binder<Scalar> bind;
        for (auto _ : state) {
            auto r = stage.apply(bind, ops::view_of(b), policy);
            benchmark::DoNotOptimize(r);
        }
    });
    state.counters["reads_per_second"] =
        benchmark::Counter(static_cast<double>(b.num_reads), benchmark::Counter::kIsIterationInvariantRate);
}

/// Forward + backward (Var) of one stage: loss = Σ of every output entry times a fixed weight.
template <class Stage, class Outputs>
void gradient_bench(benchmark::State& state, Stage& stage, Outputs outputs) {
    const ReadBatch& b = reads(static_cast<std::size_t>(state.range(0)));
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    with_policy(static_cast<int>(state.range(1)), [&](auto policy) {
        for (auto _ : state) {
            tape.rewind(start);
            ad::Binder<ad::Var> bind(tape);
            auto r = stage.apply(bind, ops::view_of(b), policy);
            const std::vector<ad::Var>& y = outputs(r);
            std::vector<double> w(y.size());
            for (std::size_t i = 0; i < w.size(); ++i) w[i] = 1.0 + 1e-3 * static_cast<double>(i % 7);
            const ad::Var loss = tape.push_nary(0.0, y, w);
            tape.backward(loss);
            bind.accumulate_grad();
        }
    });
    state.counters["reads_per_second"] =
        benchmark::Counter(static_cast<double>(b.num_reads), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tape_MB"] = static_cast<double>(tape.used_bytes()) / 1e6;
}

ops::QualityFilter quality_filter;
ops::AdapterRemoval adapter_removal({.adapter_sequence = "AGATCGGAAGAG", .match_threshold = 0.8});
ops::DuplicateWeighting duplicate_weighting({.similarity_threshold = 0.95});
ops::ErrorCorrection error_correction;
diffbio::pipelines::PreprocessingPipeline pipeline;
ops::DuplicateWeighting duplicate_weighting_f({.similarity_threshold = 0.95, .float_gradient = true});
ops::ErrorCorrection error_correction_f({.float_gradient = true});
diffbio::pipelines::PreprocessingPipeline pipeline_f({.float_gradient = true});

void BM_quality_filter_forward(benchmark::State& s) { forward_bench(s, quality_filter); }
void BM_quality_filter_forward_float(benchmark::State& s) { forward_bench<ops::QualityFilter, float>(s, quality_filter); }

/// The σ part of the quality filter alone: weights σ(q − 20) of every base, float, one thread,
/// into a preallocated buffer (no allocation, no masking): the kernel's ceiling.
void BM_quality_weights_kernel_float(benchmark::State& state) {
    const ReadBatch& b = reads(static_cast<std::size_t>(state.range(0)));
    std::vector<float> w(b.quality.size());
    for (auto _ : state) {
        std::size_t l = 0;
        const diffbio::simd::vf t = diffbio::simd::broadcast(20.0f);
        for (; l + diffbio::simd::lanes <= w.size(); l += diffbio::simd::lanes) {
            diffbio::simd::store(w.data() + l, diffbio::simd::sigmoid(diffbio::simd::load(b.quality.data() + l) - t));
        }
        for (; l < w.size(); ++l) w[l] = static_cast<float>(diffbio::sigmoid(b.quality[l] - 20.0f));
        benchmark::DoNotOptimize(w.data());
        benchmark::ClobberMemory();
    }
    state.counters["reads_per_second"] =
        benchmark::Counter(static_cast<double>(b.num_reads), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bases_per_second"] =
        benchmark::Counter(static_cast<double>(w.size()), benchmark::Counter::kIsIterationInvariantRate);
}
void BM_quality_filter_gradient(benchmark::State& s) {
    gradient_bench(s, quality_filter, [](auto& r) -> const auto& { return r.seq; });
}
void BM_adapter_removal_forward(benchmark::State& s) { forward_bench(s, adapter_removal); }
void BM_adapter_removal_gradient(benchmark::State& s) {
    gradient_bench(s, adapter_removal, [](auto& r) -> const auto& { return r.seq; });
}
void BM_duplicate_weighting_forward(benchmark::State& s) { forward_bench(s, duplicate_weighting); }
void BM_duplicate_weighting_gradient(benchmark::State& s) {
    gradient_bench(s, duplicate_weighting, [](auto& r) -> const auto& { return r.weights; });
}

void BM_duplicate_weighting_forward_float(benchmark::State& s) {
    forward_bench<ops::DuplicateWeighting, float>(s, duplicate_weighting);
}
void BM_duplicate_weighting_gradient_float(benchmark::State& s) {
    gradient_bench(s, duplicate_weighting_f, [](auto& r) -> const auto& { return r.weights; });
}

struct ErrorCorrectionStage {
    const ops::ErrorCorrection* ec;
    template <class T, class P>
    auto apply(ad::Binder<T>& bind, const ops::ReadsView<float, float>& v, const P& policy) const {
        struct Out {
            std::vector<T> seq;
        };
        return Out{ec->apply(bind, v.seq, v.quality, v.lengths, v.n, v.length, policy)};
    }
};
ErrorCorrectionStage error_correction_stage{&error_correction};
ErrorCorrectionStage error_correction_stage_f{&error_correction_f};
void BM_error_correction_forward(benchmark::State& s) { forward_bench(s, error_correction_stage); }
void BM_error_correction_forward_float(benchmark::State& s) {
    forward_bench<ErrorCorrectionStage, float>(s, error_correction_stage);
}
void BM_error_correction_gradient(benchmark::State& s) {
    gradient_bench(s, error_correction_stage, [](auto& r) -> const auto& { return r.seq; });
}
void BM_error_correction_gradient_float(benchmark::State& s) {
    gradient_bench(s, error_correction_stage_f, [](auto& r) -> const auto& { return r.seq; });
}
void BM_pipeline_forward(benchmark::State& s) { forward_bench(s, pipeline); }
void BM_pipeline_forward_float(benchmark::State& s) {
    forward_bench<diffbio::pipelines::PreprocessingPipeline, float>(s, pipeline);
}
void BM_pipeline_gradient(benchmark::State& s) {
    gradient_bench(s, pipeline, [](auto& r) -> const auto& { return r.preprocessed_reads; });
}
void BM_pipeline_gradient_float(benchmark::State& s) {
    gradient_bench(s, pipeline_f, [](auto& r) -> const auto& { return r.preprocessed_reads; });
}

void BM_duplicate_weighting_100k(benchmark::State& state) {
    const ReadBatch& b = reads(100000);
    double forward_s = 0;
    with_policy(static_cast<int>(state.range(0)), [&](auto policy) {
        for (auto _ : state) {
            const auto t0 = std::chrono::steady_clock::now();
            ad::Binder<double> plain;
            auto f = duplicate_weighting.apply(plain, ops::view_of(b), policy);
            benchmark::DoNotOptimize(f);
            forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            ad::Tape tape;
            ad::ScopedTape scope(tape);
            ad::Binder<ad::Var> bind(tape);
            auto r = duplicate_weighting.apply(bind, ops::view_of(b), policy);
            const std::vector<double> w(r.weights.size(), 1.0);
            tape.backward(tape.push_nary(0.0, r.weights, w));
            bind.accumulate_grad();
        }
    });
    state.counters["forward_seconds"] = forward_s;
    state.counters["reads_per_second"] =
        benchmark::Counter(static_cast<double>(b.num_reads), benchmark::Counter::kIsIterationInvariantRate);
}

void sizes(benchmark::internal::Benchmark* b) {
    for (int threads : {1, 2}) b->Args({1000, threads});
    b->Unit(benchmark::kMillisecond);
}

} // namespace

BENCHMARK(BM_quality_filter_forward)->Apply(sizes);
BENCHMARK(BM_quality_filter_forward_float)->Apply(sizes);
BENCHMARK(BM_quality_weights_kernel_float)->Arg(100)->Arg(1000)->Arg(100000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_quality_filter_gradient)->Apply(sizes);
BENCHMARK(BM_adapter_removal_forward)->Apply(sizes);
BENCHMARK(BM_adapter_removal_gradient)->Apply(sizes);
BENCHMARK(BM_duplicate_weighting_forward)->Apply(sizes);
BENCHMARK(BM_duplicate_weighting_forward_float)->Apply(sizes);
BENCHMARK(BM_duplicate_weighting_gradient)->Apply(sizes);
BENCHMARK(BM_duplicate_weighting_gradient_float)->Apply(sizes);
BENCHMARK(BM_error_correction_forward)->Apply(sizes);
BENCHMARK(BM_error_correction_forward_float)->Apply(sizes);
BENCHMARK(BM_error_correction_gradient)->Apply(sizes);
BENCHMARK(BM_error_correction_gradient_float)->Apply(sizes);
BENCHMARK(BM_pipeline_forward)->Apply(sizes);
BENCHMARK(BM_pipeline_forward_float)->Apply(sizes);
BENCHMARK(BM_pipeline_gradient)->Apply(sizes);
BENCHMARK(BM_pipeline_gradient_float)->Apply(sizes);
BENCHMARK(BM_duplicate_weighting_100k)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond);

BENCHMARK_MAIN();
