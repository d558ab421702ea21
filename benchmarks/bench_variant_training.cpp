// One training step of pipelines::VariantCallingPipeline per 10,000 reads (issue 5's "training
// step time of the pipeline per 10k reads"): forward (quality gates, pileup, features,
// classifier), the class-weighted cross entropy, the reverse sweep, and the Adam updates, exactly
// as examples/variant_calling.cpp trains (two Adams: the classifier at 0.01, θ, a, b at 0.05;
// default config: window 11, hidden 64, 2 layers, dropout 0.1 in training mode, quality weights).
//
// Data, in memory and deterministic: a random reference of L bases and a diploid donor with a SNV
// every ~500 bases (a third homozygous); 10,000 reads of 100 bp with uniform starts over the
// region, each from one of the two haplotypes, 0.5% substitution errors, Phred qualities 10..40,
// and 5% of the reads with a 2-base deletion (CIGAR 50M2D50M). L = 10,000·100/depth, so the step
// time per 10k reads depends on the depth (the classifier's cost grows with L): depth 50 (L = 20
// kb, examples/variant_calling.sh's coverage) and depth 20 (L = 50 kb, about the lambda phage).
//   BM_train_step<P>/depth:D   P = Cpu or CpuParallel{2}
// Reported time = seconds per step = seconds per 10k reads (the batch is exactly 10,000 reads),
// wall clock; the CPU column is the process's CPU time (all threads); items/s = reads per second
// of wall time. Run with --benchmark_repetitions=N
// --benchmark_report_aggregates_only=true and quote the medians.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/loss.hpp>
#include <diffbio/pipelines/variant_calling.hpp>

namespace {

constexpr std::size_t kReads = 10000;
constexpr std::uint32_t kReadLen = 100;

struct Data {
    diffbio::AlignedBatch batch;
    std::vector<std::uint8_t> ref;
    std::vector<double> target; ///< class-weighted one-hot rows [L × 3]
};

Data simulate(std::int64_t L) {
    Data d;
    std::uint64_t s = 20240607;
    auto rnd = [&](std::uint64_t n) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (s >> 33) % n;
    };
    const char* acgt = "ACGT";
    std::string ref(static_cast<std::size_t>(L), 'A');
    for (char& c : ref) c = acgt[rnd(4)];
    std::string hap[2] = {ref, ref};
    std::vector<std::uint32_t> label(static_cast<std::size_t>(L), 0);
    for (std::int64_t p = 250; p < L - 250; p += 400 + static_cast<std::int64_t>(rnd(200))) {
        const auto i = static_cast<std::size_t>(p);
        const char alt = acgt[(diffbio::base_code(ref[i]) + 1 + rnd(3)) % 4];
        const bool hom = rnd(3) == 0;
        hap[0][i] = alt;
        if (hom) hap[1][i] = alt;
        label[i] = hom ? 2 : 1;
    }
    d.batch.contigs = {{"sim", L}};
    std::string seq;
    std::vector<std::uint8_t> q;
    for (std::size_t r = 0; r < kReads; ++r) {
        const bool del = rnd(20) == 0;
        const std::uint32_t span = kReadLen + (del ? 2 : 0);
        const auto start = static_cast<std::int64_t>(rnd(static_cast<std::uint64_t>(L) - span));
        const std::string& h = hap[rnd(2)];
        seq.clear();
        for (std::uint32_t j = 0; j < span; ++j) {
            if (del && (j == 50 || j == 51)) continue;
            seq += h[static_cast<std::size_t>(start) + j];
        }
        q.resize(kReadLen);
        for (std::uint32_t j = 0; j < kReadLen; ++j) {
            q[j] = static_cast<std::uint8_t>(10 + rnd(31));
            if (rnd(200) == 0) seq[j] = acgt[(diffbio::base_code(seq[j]) + 1 + rnd(3)) % 4];
        }
        std::vector<std::uint32_t> cigar;
        if (del) {
            cigar = {diffbio::cigar_pack(diffbio::CigarOp::Match, 50), diffbio::cigar_pack(diffbio::CigarOp::Deletion, 2),
                     diffbio::cigar_pack(diffbio::CigarOp::Match, 50)};
        } else {
            cigar = {diffbio::cigar_pack(diffbio::CigarOp::Match, kReadLen)};
        }
        d.batch.add("", 0, start, 60, 0, cigar, seq, q);
    }
    d.ref.resize(static_cast<std::size_t>(L));
    for (std::size_t p = 0; p < d.ref.size(); ++p) d.ref[p] = diffbio::base_code(ref[p]);
    // the example's targets: variant classes weighted 20, rescaled to a weighted mean
    d.target.assign(3 * static_cast<std::size_t>(L), 0.0);
    double total = 0.0;
    for (std::size_t p = 0; p < label.size(); ++p) {
        const double w = label[p] == 0 ? 1.0 : 20.0;
        d.target[3 * p + label[p]] = w;
        total += w;
    }
    for (double& t : d.target) t *= static_cast<double>(L) / total;
    return d;
}

const Data& data(int depth) {
    static std::map<int, Data> cache;
    auto it = cache.find(depth);
    if (it == cache.end()) {
        const auto L = static_cast<std::int64_t>(kReads * kReadLen / static_cast<std::size_t>(depth));
        it = cache.emplace(depth, simulate(L)).first;
    }
    return it->second;
}

template <class P>
P policy() {
    if constexpr (std::is_same_v<P, diffbio::exec::CpuParallel>) {
        return P{2};
    } else {
        return P{};
    }
}

template <class P>
void BM_train_step(benchmark::State& state) {
    namespace ad = diffbio::ad;
    using diffbio::pipelines::VariantCallingPipeline;
    const Data& d = data(static_cast<int>(state.range(0)));
    const auto L = static_cast<std::int64_t>(d.ref.size());
    diffbio::pipelines::VariantCallingPipelineConfig cfg;
    cfg.region = {0, 0, L};
    cfg.seed = 42;
    VariantCallingPipeline pipe(cfg);
    std::vector<ad::Parameter*> scalars{&pipe.quality_threshold()};
    for (auto* p : pipe.pileup().parameters()) scalars.push_back(p);
    diffbio::nn::Adam adam_net(pipe.classifier().parameters(), {.learning_rate = 0.01});
    diffbio::nn::Adam adam_scalar(scalars, {.learning_rate = 0.05});
    const P pol = policy<P>();
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    pipe.train();
    std::uint64_t step = 0;
    double loss_value = 0.0;
    auto train_step = [&] {
        tape.rewind(start);
        adam_net.zero_grad();
        adam_scalar.zero_grad();
        pipe.set_dropout_seed(++step);
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipe.apply(bind, d.batch, std::span<const std::uint8_t>(d.ref), pol);
        const ad::Var loss = diffbio::nn::cross_entropy_with_logits(
            std::span<const ad::Var>(r.calls.logits), std::span<const double>(d.target), d.ref.size(), 3);
        tape.backward(loss);
        bind.accumulate_grad();
        adam_net.step();
        adam_scalar.step();
        loss_value = loss.value();
    };
    train_step(); // warm-up, untimed: the tape and the optimizers allocate their memory once
    for (auto _ : state) train_step();
    benchmark::DoNotOptimize(loss_value);
    state.counters["positions"] = static_cast<double>(L);
    state.counters["loss"] = loss_value;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kReads));
}

} // namespace

using diffbio::exec::Cpu;
using diffbio::exec::CpuParallel;
BENCHMARK_TEMPLATE(BM_train_step, Cpu)->ArgName("depth")->Arg(50)->Arg(20)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK_TEMPLATE(BM_train_step, CpuParallel)->ArgName("depth")->Arg(50)->Arg(20)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();

BENCHMARK_MAIN();
