// Throughput of the CUDA backends of DifferentiablePileup (ops/variant/cuda/pileup.cuh) and soft
// k-means (ops/singlecell/cuda/soft_kmeans.cuh). A plain program (no Google Benchmark): each
// measurement is one warm-up call and then `reps` calls timed with cudaEvents on the default
// stream; the median is printed. Device data only (the host <-> device copies are timed
// separately for the pileup's batch upload).
//
//   pileup   1M reads x 150 bp on a 10 Mb contig (15x coverage; 10% of the reads carry a 1-3 bp
//            deletion or insertion, 5% a soft clip), region = the whole contig; forward (table,
//            frequencies, mean quality) with quality weights and read weights, and backward (all
//            adjoints; read-weight, gate and a/b gradients). Rate: aligned bases / s.
//   k-means  100k x 50, K = 20 and 1M x 32, K = 256: soft assignments + labels (forward), the
//            backward (x, mu and tau gradients), the soft centroid update and one Lloyd iteration
//            (labels, inertia, update; it synchronises for its statistics). Rate: points / s.
//
// Usage: bench_pileup_kmeans_cuda [--reps N] [--double] [--cpu]
//   --double  also run everything in double
//   --cpu     also time the Cpu backend's forward once (exec::CpuParallel, all OpenMP threads)
//             on the same data, for a GPU/CPU ratio
// Exits 77 when no CUDA device is present.

#include <diffbio/ops/singlecell/cuda/soft_kmeans.cuh>
#include <diffbio/ops/variant/cuda/pileup.cuh>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include <diffbio/ad/binder.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>
#include <diffbio/ops/variant/pileup.hpp>

namespace {

using namespace diffbio;
using exec::cuda::DeviceBuffer;

int reps = 10;

std::uint64_t rng_state = 2024;
std::uint64_t next_u64() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng_state >> 17;
}
double uniform() { return static_cast<double>(next_u64() % (1ULL << 40)) / static_cast<double>(1ULL << 40); }

/// Median milliseconds of `reps` timed calls after one warm-up call.
template <class F>
double time_ms(F&& f) {
    f();
    exec::cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    cudaEvent_t a, b;
    exec::cuda::check(cudaEventCreate(&a), "cudaEventCreate");
    exec::cuda::check(cudaEventCreate(&b), "cudaEventCreate");
    std::vector<float> ms;
    for (int r = 0; r < reps; ++r) {
        exec::cuda::check(cudaEventRecord(a), "cudaEventRecord");
        f();
        exec::cuda::check(cudaEventRecord(b), "cudaEventRecord");
        exec::cuda::check(cudaEventSynchronize(b), "cudaEventSynchronize");
        float t = 0.0f;
        exec::cuda::check(cudaEventElapsedTime(&t, a, b), "cudaEventElapsedTime");
        ms.push_back(t);
    }
    (void)cudaEventDestroy(a);
    (void)cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return static_cast<double>(ms[ms.size() / 2]);
}

template <class F>
double wall_ms_once(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void report(const char* what, double ms, double items, const char* unit) {
    std::printf("  %-44s %10.3f ms   %10.3g %s/s\n", what, ms, items / (ms * 1e-3), unit);
}

template <class T>
std::vector<T> random_vector(std::size_t n, double lo, double hi) {
    std::vector<T> v(n);
    for (T& x : v) x = static_cast<T>(lo + (hi - lo) * uniform());
    return v;
}

// ---- pileup ----------------------------------------------------------------------------------

constexpr std::int64_t contig_length = 10'000'000;

/// 1M reads of 150 bases, filled array by array (AlignedBatch::add would build a string per read).
AlignedBatch pileup_batch(std::size_t reads, std::uint32_t len, std::size_t& aligned_bases) {
    AlignedBatch b;
    b.contigs = {{"chr", contig_length}};
    b.contig.reserve(reads);
    b.ref_start.reserve(reads);
    b.ref_end.reserve(reads);
    b.mapq.reserve(reads);
    b.flags.reserve(reads);
    b.bases.reserve(reads * len);
    b.qualities.reserve(reads * len);
    aligned_bases = 0;
    for (std::size_t i = 0; i < reads; ++i) {
        const std::int64_t start = static_cast<std::int64_t>(next_u64() % static_cast<std::uint64_t>(contig_length - 200));
        std::int64_t ref_len = 0;
        const std::uint64_t kind = next_u64() % 100;
        if (kind < 5) { // deletion
            const auto d = static_cast<std::uint32_t>(1 + next_u64() % 3);
            b.cigar.insert(b.cigar.end(), {cigar_pack(CigarOp::Match, 70), cigar_pack(CigarOp::Deletion, d), cigar_pack(CigarOp::Match, len - 70)});
            ref_len = len + d;
            aligned_bases += len;
        } else if (kind < 10) { // insertion
            const auto ins = static_cast<std::uint32_t>(1 + next_u64() % 3);
            b.cigar.insert(b.cigar.end(),
                           {cigar_pack(CigarOp::Match, 80), cigar_pack(CigarOp::Insertion, ins), cigar_pack(CigarOp::Match, len - 80 - ins)});
            ref_len = len - ins;
            aligned_bases += len - ins;
        } else if (kind < 15) { // soft clip
            b.cigar.insert(b.cigar.end(), {cigar_pack(CigarOp::SoftClip, 10), cigar_pack(CigarOp::Match, len - 10)});
            ref_len = len - 10;
            aligned_bases += len - 10;
        } else {
            b.cigar.push_back(cigar_pack(CigarOp::Match, len));
            ref_len = len;
            aligned_bases += len;
        }
        b.contig.push_back(0);
        b.ref_start.push_back(start);
        b.ref_end.push_back(start + ref_len);
        b.mapq.push_back(60);
        b.flags.push_back(static_cast<std::uint16_t>(next_u64() % 2 == 0 ? sam_flag::reverse : 0));
        for (std::uint32_t k = 0; k < len; ++k) {
            const std::uint64_t r = next_u64();
            b.bases.push_back(static_cast<std::uint8_t>(r % 64 == 0 ? 4 : r % 4));
            b.qualities.push_back(static_cast<std::uint8_t>(2 + (r >> 8) % 40));
        }
        b.base_offset.push_back(b.bases.size());
        b.cigar_offset.push_back(b.cigar.size());
        b.name_offset.push_back(0);
    }
    return b;
}

template <class T>
void bench_pileup(const AlignedBatch& batch, const ops::cuda::DeviceAlignedBatch& dbatch, std::size_t aligned_bases, bool cpu,
                  const char* tname) {
    const exec::Cuda p{};
    ops::PileupConfig cfg;
    const ops::PileupRegion region{0, 0, contig_length};
    const std::size_t L = region.length(), N = batch.num_reads(), M = batch.num_bases();
    const auto rho = random_vector<T>(N, 0.5, 1.0), gates = random_vector<T>(M, 0.0, 1.0);
    const auto d_rho = exec::cuda::upload(p, std::span<const T>(rho));
    const auto d_gates = exec::cuda::upload(p, std::span<const T>(gates));
    DeviceBuffer<T> table(8 * L), freq(4 * L), mq(L);
    const ops::cuda::PileupDeviceInputs<T> in{d_rho.data(), d_gates.data(), nullptr};
    std::printf("pileup (%s): %zu reads, %zu aligned bases, region of %zu positions\n", tname, N, aligned_bases, L);
    const double f_ms = time_ms([&] {
        ops::cuda::pileup_forward<T>(p, cfg, 1.0, 0.0, dbatch.view(), region, in, ops::cuda::PileupDeviceOutputs<T>{table.data(), freq.data(), mq.data()});
    });
    report("forward (table, frequencies, mean quality)", f_ms, static_cast<double>(aligned_bases), "bases");

    const auto h_counts = random_vector<T>(4 * L, -1.0, 1.0), h_freq = random_vector<T>(4 * L, -1.0, 1.0),
               h_l = random_vector<T>(L, -1.0, 1.0);
    const auto g_counts = exec::cuda::upload(p, std::span<const T>(h_counts));
    const auto g_freq = exec::cuda::upload(p, std::span<const T>(h_freq));
    const auto g_l = exec::cuda::upload(p, std::span<const T>(h_l));
    DeviceBuffer<T> g_rho(N), g_gates(M);
    g_rho.fill_zero();
    g_gates.fill_zero();
    ops::cuda::PileupDeviceOutputGrads<T> gy;
    gy.counts = g_counts.data();
    gy.coverage = g_l.data();
    gy.deletions = g_l.data();
    gy.insertions = g_l.data();
    gy.frequencies = g_freq.data();
    gy.mean_quality = g_l.data();
    double ab[2] = {0.0, 0.0};
    const double b_ms = time_ms([&] {
        ops::cuda::pileup_backward<T>(p, cfg, 1.0, 0.0, dbatch.view(), region, in, table.data(), gy,
                                      ops::cuda::PileupDeviceInputGrads<T>{g_rho.data(), g_gates.data(), nullptr}, ab);
    });
    report("backward (read weights, gates, a, b)", b_ms, static_cast<double>(aligned_bases), "bases");

    if (cpu) {
        ops::DifferentiablePileup op(cfg);
        ad::Binder<T> bind;
        const ops::PileupInputs<T, T, T> hin{rho, gates, {}};
        ops::PileupResult<T> res;
        op.apply_into(bind, batch, region, hin, res, exec::CpuParallel{}); // warm-up (allocates)
        const double c_ms = wall_ms_once([&] { op.apply_into(bind, batch, region, hin, res, exec::CpuParallel{}); });
        report("CPU forward (CpuParallel, one run)", c_ms, static_cast<double>(aligned_bases), "bases");
        std::printf("  GPU/CPU forward speed-up: %.1fx\n", c_ms / f_ms);
    }
}

// ---- k-means ---------------------------------------------------------------------------------

template <class T>
void bench_kmeans(std::size_t n, std::size_t F, std::size_t K, bool cpu, const char* tname) {
    const exec::Cuda p{};
    std::printf("soft k-means (%s): n = %zu, F = %zu, K = %zu\n", tname, n, F, K);
    // K blobs of unit spread around centres in [-5, 5]^F; centroids = points of each blob.
    std::vector<T> centres = random_vector<T>(K * F, -5.0, 5.0), x(n * F), mu(K * F);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t f = 0; f < F; ++f) x[i * F + f] = centres[(i % K) * F + f] + static_cast<T>(uniform() - 0.5);
    }
    for (std::size_t k = 0; k < K; ++k) std::copy_n(x.begin() + static_cast<std::ptrdiff_t>((k + K) * F), F, mu.begin() + static_cast<std::ptrdiff_t>(k * F));
    const auto dx = exec::cuda::upload(p, std::span<const T>(x));
    const auto dm = exec::cuda::upload(p, std::span<const T>(mu));
    const auto rbar = random_vector<T>(n * K, -1.0, 1.0);
    const auto drbar = exec::cuda::upload(p, std::span<const T>(rbar));
    DeviceBuffer<T> r(n * K), gx(n * F), gm(K * F), next(K * F);
    DeviceBuffer<int> labels(n);
    gx.fill_zero();
    gm.fill_zero();
    ops::cuda::KMeansWorkspace<T> ws;
    const T tau = T(1);
    const double f_ms = time_ms([&] { ops::cuda::soft_assign_forward<T>(p, ws, dx.data(), n, F, dm.data(), K, tau, r.data(), labels.data()); });
    report("soft assignments + labels", f_ms, static_cast<double>(n), "points");
    double tg = 0.0;
    const double b_ms = time_ms([&] {
        ops::cuda::soft_assign_backward<T>(p, ws, dx.data(), n, F, dm.data(), K, tau, r.data(), drbar.data(), gx.data(), gm.data(), &tg);
    });
    report("backward (x, mu, tau)", b_ms, static_cast<double>(n), "points");
    const double u_ms = time_ms([&] { ops::cuda::soft_centroid_update<T>(p, ws, dx.data(), n, F, r.data(), K, dm.data(), next.data()); });
    report("soft centroid update", u_ms, static_cast<double>(n), "points");
    const double l_ms = time_ms([&] { (void)ops::cuda::lloyd_step<T>(p, ws, dx.data(), n, F, dm.data(), K, labels.data(), next.data()); });
    report("Lloyd iteration (labels, inertia, update)", l_ms, static_cast<double>(n), "points");
    if (cpu) {
        std::vector<int> lab;
        (void)ops::soft_assign(exec::CpuParallel{}, std::span<const T>(x), n, std::span<const T>(mu), K, tau, &lab); // warm-up
        const double c_ms = wall_ms_once(
            [&] { (void)ops::soft_assign(exec::CpuParallel{}, std::span<const T>(x), n, std::span<const T>(mu), K, tau, &lab); });
        report("CPU soft assignments + labels (one run)", c_ms, static_cast<double>(n), "points");
        std::printf("  GPU/CPU forward speed-up: %.1fx\n", c_ms / f_ms);
    }
}

} // namespace

int main(int argc, char** argv) {
    bool with_double = false, cpu = false;
    for (int a = 1; a < argc; ++a) {
        if (std::strcmp(argv[a], "--double") == 0) {
            with_double = true;
        } else if (std::strcmp(argv[a], "--cpu") == 0) {
            cpu = true;
        } else if (std::strcmp(argv[a], "--reps") == 0 && a + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++a]));
        } else {
            std::fprintf(stderr, "usage: %s [--reps N] [--double] [--cpu]\n", argv[0]);
            return 2;
        }
    }
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s; median of %d runs after a warm-up\n", prop.name, reps);

    std::size_t aligned = 0;
    const AlignedBatch batch = pileup_batch(1'000'000, 150, aligned);
    const exec::Cuda p{};
    ops::cuda::DeviceAlignedBatch dbatch;
    const double up_ms = wall_ms_once([&] { dbatch = ops::cuda::DeviceAlignedBatch(p, batch); });
    std::printf("batch upload (host -> device, pageable): %.1f ms for %.0f MB\n", up_ms,
                static_cast<double>(batch.num_bases() * 2 + batch.num_reads() * 40 + batch.cigar.size() * 4) / 1e6);
    bench_pileup<float>(batch, dbatch, aligned, cpu, "float");
    if (with_double) bench_pileup<double>(batch, dbatch, aligned, cpu, "double");

    bench_kmeans<float>(100'000, 50, 20, cpu, "float");
    bench_kmeans<float>(1'000'000, 32, 256, cpu, "float");
    if (with_double) {
        bench_kmeans<double>(100'000, 50, 20, cpu, "double");
        bench_kmeans<double>(1'000'000, 32, 256, cpu, "double");
    }
    return 0;
}
