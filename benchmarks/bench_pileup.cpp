// bench_pileup: pileup throughput (aligned bases per second) of ops::DifferentiablePileup,
// the diffbio side of benchmarks/peers/pileup_speed.sh (which also times samtools mpileup).
//
//   bench_pileup [--bam FILE --contig NAME] [--reps N] [--threads T]
//
// Variants (each run once to warm up, then N times, default 15; one line each):
//   forward_float      in memory, Binder<float>, quality weights on (1 − 10^(−Q/10)), no AD,
//                      into a reused PileupResult (apply_into); forward_float_alloc: apply(),
//                      a fresh result per call
//   forward_hard       in memory, double, hard counts (samtools' numbers), reused result
//   forward_backward   in memory, Var: a, b and the read weights on the tape, loss = Σ counts·c
//                      + Σ deletions + Σ mean quality, one reverse sweep (tape and result reused)
//   end_to_end         --bam only: open the BAM, decode every record (AlignmentReader, no
//                      names), pile up the contig in float with quality weights
// Cpu (threads=1) and, with --threads T > 1, CpuParallel{T}. Output lines:
//   <variant> threads=<T> median_ms=<..> min_ms=<..> cpu_median_ms=<..> bases=<aligned bases in the
//   region> Gbases_per_s=<bases / wall median> Gbases_per_cpu_s=<bases / CPU-time median, all threads>
// Without --bam the batch is synthetic: 100 bp reads at 40x over a 50 kb contig, random CIGARs
// with indels. --bam needs htslib: the build defines DIFFBIO_BENCH_WITH_HTSLIB when it links
// diffbio::io (otherwise the synthetic batch only).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/variant/pileup.hpp>
#if defined(DIFFBIO_BENCH_WITH_HTSLIB)
#include <diffbio/io/alignment.hpp>
#endif

namespace ad = diffbio::ad;
namespace exec = diffbio::exec;
namespace ops = diffbio::ops;
using diffbio::AlignedBatch;

namespace {

AlignedBatch synthetic(std::int64_t contig_len, int depth, std::uint32_t read_len) {
    AlignedBatch b;
    b.contigs = {{"synthetic", contig_len}};
    std::uint64_t s = 42;
    auto rnd = [&](std::uint64_t n) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (s >> 33) % n;
    };
    const auto n = static_cast<std::size_t>(contig_len) * static_cast<std::size_t>(depth) / read_len;
    std::vector<std::int64_t> starts(n);
    for (auto& st : starts) st = static_cast<std::int64_t>(rnd(static_cast<std::uint64_t>(contig_len) - read_len - 10));
    std::sort(starts.begin(), starts.end());
    std::string seq;
    std::vector<std::uint8_t> q;
    for (std::size_t i = 0; i < n; ++i) {
        std::vector<std::uint32_t> ops;
        const auto a = static_cast<std::uint32_t>(30 + rnd(40));
        if (rnd(10) == 0) { // one indel in 10% of the reads
            const bool ins = rnd(2) == 0;
            ops = {diffbio::cigar_pack(diffbio::CigarOp::Match, a),
                   diffbio::cigar_pack(ins ? diffbio::CigarOp::Insertion : diffbio::CigarOp::Deletion, 2),
                   diffbio::cigar_pack(diffbio::CigarOp::Match, read_len - a - (ins ? 2 : 0))};
        } else {
            ops = {diffbio::cigar_pack(diffbio::CigarOp::Match, read_len)};
        }
        seq.resize(read_len);
        q.resize(read_len);
        for (std::uint32_t l = 0; l < read_len; ++l) {
            seq[l] = "ACGT"[rnd(4)];
            q[l] = static_cast<std::uint8_t>(2 + rnd(40));
        }
        b.add("", 0, starts[i], 60, 0, ops, seq, q);
    }
    return b;
}

struct Timing {
    double median_ms, min_ms, cpu_median_ms;
};

double cpu_now_ms() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

/// Wall-clock median and minimum, and the median of the process CPU time (all threads): on a
/// shared machine the CPU time is what the work costs, the wall time what a user waits.
template <class F>
Timing time_ms(F&& f, int reps) {
    f();
    std::vector<double> t, c;
    for (int r = 0; r < reps; ++r) {
        const double c0 = cpu_now_ms();
        const auto t0 = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        c.push_back(cpu_now_ms() - c0);
    }
    std::sort(t.begin(), t.end());
    std::sort(c.begin(), c.end());
    return {t[t.size() / 2], t.front(), c[c.size() / 2]};
}

void report(const char* name, int threads, Timing ms, double bases) {
    std::printf("%s threads=%d median_ms=%.3f min_ms=%.3f cpu_median_ms=%.3f bases=%.0f Gbases_per_s=%.4f "
                "Gbases_per_cpu_s=%.4f\n",
                name, threads, ms.median_ms, ms.min_ms, ms.cpu_median_ms, bases, bases / (ms.median_ms * 1e-3) / 1e9,
                bases / (ms.cpu_median_ms * 1e-3) / 1e9);
    std::fflush(stdout);
}

template <class P>
void run_all(const AlignedBatch& batch, const ops::PileupRegion& region, const P& policy, int threads, int reps,
             double bases, volatile double& sink) {
    ops::DifferentiablePileup soft_pile;
    ops::PileupConfig hard_cfg;
    hard_cfg.use_quality_weights = false;
    ops::DifferentiablePileup hard_pile(hard_cfg);
    ops::PileupResult<float> rf;
    report("forward_float", threads, time_ms([&] {
               ad::Binder<float> bind;
               soft_pile.apply_into(bind, batch, region, ops::PileupInputs<float, float, float>{}, rf, policy);
               sink = sink + rf.counts[0];
           }, reps), bases);
    report("forward_float_alloc", threads, time_ms([&] {
               ad::Binder<float> bind;
               const auto r = soft_pile.apply(bind, batch, region, policy);
               sink = sink + r.counts[0];
           }, reps), bases);
    ops::PileupResult<double> rh;
    report("forward_hard", threads, time_ms([&] {
               ad::Binder<double> bind;
               hard_pile.apply_into(bind, batch, region, ops::PileupInputs<double, double, double>{}, rh, policy);
               sink = sink + rh.counts[0];
           }, reps), bases);
    std::vector<double> rho(batch.num_reads(), 1.0);
    ad::Tape tape;
    ops::PileupResult<ad::Var> r;
    report("forward_backward", threads, time_ms([&] {
               tape.clear();
               ad::ScopedTape scope(tape);
               ad::Binder<ad::Var> bind(tape);
               const auto rv = tape.variables(rho);
               soft_pile.apply_into(bind, batch, region, ops::PileupInputs<ad::Var, double, double>{rv, {}, {}}, r,
                                    policy);
               ad::Var loss = 0.0;
               for (std::size_t p = 0; p < r.length(); ++p) {
                   loss += r.counts[4 * p] + 2.0 * r.counts[4 * p + 1] + r.deletions[p] + 0.01 * r.mean_quality[p];
               }
               tape.backward(loss);
               sink = sink + tape.adjoint(rv[0]);
           }, reps), bases);
}

} // namespace

int main(int argc, char** argv) {
    std::string bam, contig;
    int reps = 15, threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
            return argv[++i];
        };
        if (a == "--bam") bam = next();
        else if (a == "--contig") contig = next();
        else if (a == "--reps") reps = std::stoi(next());
        else if (a == "--threads") threads = std::stoi(next());
        else {
            std::fprintf(stderr, "usage: bench_pileup [--bam FILE --contig NAME] [--reps N] [--threads T]\n");
            return 2;
        }
    }
    AlignedBatch batch;
    ops::PileupRegion region;
#if defined(DIFFBIO_BENCH_WITH_HTSLIB)
    diffbio::io::AlignmentReaderOptions opt;
    opt.keep_names = false;
    if (!bam.empty()) {
        diffbio::io::AlignmentReader in(bam, opt);
        in.read_all(batch);
        const std::int32_t c = batch.contig_index(contig);
        if (c < 0) throw std::runtime_error("contig '" + contig + "' is not in " + bam);
        region = {c, 0, batch.contigs[static_cast<std::size_t>(c)].length};
    }
#else
    if (!bam.empty()) {
        std::fprintf(stderr, "bench_pileup: built without htslib (DIFFBIO_BENCH_WITH_HTSLIB): --bam unavailable\n");
        return 2;
    }
#endif
    if (bam.empty()) {
        batch = synthetic(50000, 40, 100);
        region = {0, 0, 50000};
    }
    // Aligned bases in the region (hard coverage, N included).
    ops::PileupConfig hard_cfg;
    hard_cfg.use_quality_weights = false;
    ad::Binder<double> b0;
    const auto hard = ops::DifferentiablePileup(hard_cfg).apply(b0, batch, region);
    double bases = 0.0;
    for (double c : hard.coverage) bases += c;
    std::printf("# %zu reads, %zu bases in the batch, %.0f aligned bases in %zu positions\n", batch.num_reads(),
                batch.num_bases(), bases, region.length());
    volatile double sink = 0.0;
    run_all(batch, region, exec::Cpu{}, 1, reps, bases, sink);
    if (threads > 1) run_all(batch, region, exec::CpuParallel{threads}, threads, reps, bases, sink);
#if defined(DIFFBIO_BENCH_WITH_HTSLIB)
    if (!bam.empty()) {
        ops::DifferentiablePileup pile;
        auto e2e = [&](auto policy, int t) {
            report("end_to_end", t, time_ms([&] {
                       diffbio::io::AlignmentReaderOptions o;
                       o.keep_names = false;
                       o.threads = t > 1 ? t - 1 : 0;
                       diffbio::io::AlignmentReader in(bam, o);
                       AlignedBatch b;
                       in.read_all(b);
                       ad::Binder<float> bind;
                       const auto r = pile.apply(bind, b, region, policy);
                       sink = sink + r.counts[0];
                   }, reps), bases);
        };
        e2e(exec::Cpu{}, 1);
        if (threads > 1) e2e(exec::CpuParallel{threads}, threads);
    }
#endif
    return sink == 12345.678 ? 1 : 0;
}
