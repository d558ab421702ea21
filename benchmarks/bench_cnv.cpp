// CNVSegmentation on one 2,000-probe chromosome (K = 3 states, τ = 1): the fused tape node
// (apply) against the generic recursion recorded on the tape (apply_generic), forward + reverse
// sweep, gradients with respect to μ, log σ, λ (and y with /y_on_tape).
//   BM_cnv_plain            the double forward (generic recursion, no tape), for scale
//   BM_cnv_var<Fused, all>  loss = Σ of every output with fixed weights (F, γ, b, ŷ)
//   BM_cnv_var<Fused, F>    loss = −F (the likelihood-style training loss of examples/cnv_coriell)
// Fused = 1: apply (one node); Fused = 0: apply_generic (O(n·K²) records). The tape is rewound
// each iteration (no allocation after the first). Counters: items/s = probes per second. Run with
// --benchmark_repetitions=N --benchmark_report_aggregates_only=true and quote the medians.

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/ops/variant/cnv.hpp>

namespace {

constexpr std::size_t kN = 2000;

const std::vector<double>& signal() {
    static const std::vector<double> y = [] {
        std::vector<double> v(kN);
        for (std::size_t i = 0; i < kN; ++i) {
            const std::size_t seg = i / 250;
            const double level = seg % 4 == 1 ? 0.58 : seg % 4 == 3 ? -1.0 : 0.0;
            v[i] = level + 0.15 * std::sin(1.7 * static_cast<double>(i)) + 0.08 * std::cos(0.31 * static_cast<double>(i * i));
        }
        return v;
    }();
    return y;
}

void BM_cnv_plain(benchmark::State& state) {
    diffbio::ops::CNVSegmentation cnv;
    const auto& y = signal();
    for (auto _ : state) {
        diffbio::ad::Binder<double> bind;
        const auto r = cnv.apply(bind, std::span<const double>(y));
        benchmark::DoNotOptimize(r.log_partition);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

template <bool Fused, bool AllOutputs>
void BM_cnv_var(benchmark::State& state) {
    namespace ad = diffbio::ad;
    diffbio::ops::CNVSegmentation cnv;
    const auto& y = signal();
    const bool y_on_tape = state.range(0) != 0;
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    double sink = 0.0;
    for (auto _ : state) {
        tape.rewind(start);
        for (auto* p : cnv.parameters()) p->zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const auto yv = y_on_tape ? tape.variables(y) : std::span<const ad::Var>();
        auto run = [&](auto ys) { return Fused ? cnv.apply(bind, ys) : cnv.apply_generic(bind, ys); };
        const auto r = y_on_tape ? run(yv) : run(std::span<const double>(y));
        ad::Var loss = -r.log_partition;
        if constexpr (AllOutputs) {
            std::vector<double> w;
            std::vector<ad::Var> v;
            for (std::size_t i = 0; i < r.posteriors.size(); ++i) {
                v.push_back(r.posteriors[i]);
                w.push_back(std::sin(0.37 * static_cast<double>(i)));
            }
            for (std::size_t i = 0; i < kN; ++i) {
                v.push_back(r.boundaries[i]);
                w.push_back(0.5);
                v.push_back(r.smoothed[i]);
                w.push_back(std::cos(0.11 * static_cast<double>(i)));
            }
            loss = loss + tape.push_nary([&] {
                double s = 0.0;
                for (std::size_t i = 0; i < v.size(); ++i) s += w[i] * tape.value(v[i]);
                return s;
            }(), v, w);
        }
        tape.backward(loss);
        bind.accumulate_grad();
        sink += cnv.state_means().grad()[0];
    }
    benchmark::DoNotOptimize(sink);
    state.counters["tape_vars"] = static_cast<double>(tape.num_vars());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

} // namespace

BENCHMARK(BM_cnv_plain)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_cnv_var, true, false)->ArgName("y_on_tape")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_cnv_var, false, false)->ArgName("y_on_tape")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_cnv_var, true, true)->ArgName("y_on_tape")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_cnv_var, false, true)->ArgName("y_on_tape")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
