// Throughput of the CUDA Smith-Waterman (<diffbio/ops/alignment/cuda/smith_waterman.cuh>) in float:
// forward (scores) and forward + backward (value_and_grad) on 1,024 pairs of 150 × 150 and 1,024
// pairs of 1000 × 1000 random DNA (each target a mutated copy of its query, cut or padded to the
// length), in cells per second (Σ m·n / time). GPU times: cudaEvent around the device-level calls
// (codes, weights and outputs already on the device, a reused workspace; the small pair tables are
// uploaded by each call), median of the repetitions after one warm-up. CPU times: the same batch
// through SmithWaterman::apply / value_and_grad<float> with exec::CpuParallel (all OpenMP threads),
// for the 150 × 150 batch, and for 1000 × 1000 only with --cpu-large (seconds to minutes).
//
//   bench_sw_cuda [--cpu-large] [--models all]        (exit 77 without a GPU)
//
// Default model: affine, local, soft, τ = 1 (GapOpen 10, GapExtend 1, DNA +2/−1); --models all
// adds linear local soft, affine global soft and affine local hard. Prints one line per case.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/ops/alignment/cuda/smith_waterman.cuh>

namespace {

namespace exec = diffbio::exec;
namespace ops = diffbio::ops;
namespace cu = diffbio::ops::cuda;

struct Batch {
    std::vector<std::vector<std::uint8_t>> seqs;
    std::vector<ops::CodePair> pairs;
    std::vector<std::uint8_t> codes;
    std::vector<cu::SwCudaPair> table;
    double cells = 0.0;
};

Batch make_batch(std::size_t count, std::size_t len, std::mt19937& rng) {
    Batch b;
    for (std::size_t k = 0; k < count; ++k) {
        std::vector<std::uint8_t> q(len), t;
        for (auto& c : q) c = static_cast<std::uint8_t>(rng() % 4);
        for (const std::uint8_t c : q) {
            const unsigned r = rng() % 100;
            if (r < 8) {
                t.push_back(static_cast<std::uint8_t>(rng() % 4));
            } else if (r < 11) {
                continue;
            } else if (r < 14) {
                t.push_back(c);
                t.push_back(static_cast<std::uint8_t>(rng() % 4));
            } else {
                t.push_back(c);
            }
        }
        t.resize(len, 0);
        b.seqs.push_back(std::move(q));
        b.seqs.push_back(std::move(t));
    }
    for (std::size_t k = 0; k < count; ++k) {
        const auto& q = b.seqs[2 * k];
        const auto& t = b.seqs[2 * k + 1];
        b.pairs.push_back({q, t});
        cu::SwCudaPair d;
        d.query_offset = b.codes.size();
        d.query_length = static_cast<std::uint32_t>(q.size());
        b.codes.insert(b.codes.end(), q.begin(), q.end());
        d.target_offset = b.codes.size();
        d.target_length = static_cast<std::uint32_t>(t.size());
        b.codes.insert(b.codes.end(), t.begin(), t.end());
        b.table.push_back(d);
        b.cells += static_cast<double>(q.size()) * static_cast<double>(t.size());
    }
    return b;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class Fn>
double gpu_ms(cudaStream_t stream, int reps, Fn&& fn) {
    fn(); // warm-up (first launch, workspace growth)
    cudaEvent_t a, b;
    exec::cuda::check(cudaEventCreate(&a), "cudaEventCreate");
    exec::cuda::check(cudaEventCreate(&b), "cudaEventCreate");
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        exec::cuda::check(cudaEventRecord(a, stream), "cudaEventRecord");
        fn();
        exec::cuda::check(cudaEventRecord(b, stream), "cudaEventRecord");
        exec::cuda::check(cudaEventSynchronize(b), "cudaEventSynchronize");
        float ms = 0.0f;
        exec::cuda::check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
        t.push_back(ms);
    }
    (void)cudaEventDestroy(a);
    (void)cudaEventDestroy(b);
    return median(t);
}

template <class Fn>
double cpu_ms(int reps, Fn&& fn) {
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return median(t);
}

void run(const std::string& name, const ops::SmithWatermanConfig& cfg, const Batch& b, bool cpu, int reps) {
    const ops::SmithWaterman sw(cfg);
    const exec::Cuda gpu{};
    const cu::SwCudaModel<float> md = cu::sw_cuda_model<float>(sw);
    const std::vector<float> w(b.pairs.size(), 1.0f);
    exec::cuda::DeviceBuffer<std::uint8_t> codes{std::span<const std::uint8_t>(b.codes)};
    exec::cuda::DeviceBuffer<float> dw{std::span<const float>(w)}, scores(b.pairs.size());
    exec::cuda::DeviceBuffer<double> grads(md.A * md.A + 3);
    cu::SwCudaWorkspace ws;
    const std::span<const cu::SwCudaPair> table(b.table);
    const double fwd = gpu_ms(gpu.stream, reps, [&] {
        cu::smith_waterman_scores<float>(gpu, md, codes.data(), table, scores.data(), {}, &ws);
    });
    const double both = gpu_ms(gpu.stream, reps, [&] {
        cu::smith_waterman_value_and_grad<float>(gpu, md, codes.data(), table, dw.data(), scores.data(), grads.data(), {},
                                                 &ws);
    });
    std::printf("%-22s %4zu pairs %4u x %-4u  GPU forward %9.3f ms %7.4f Tcells/s | forward+backward %9.3f ms %7.4f Tcells/s"
                " | workspace %.0f MiB\n",
                name.c_str(), b.pairs.size(), b.table[0].query_length, b.table[0].target_length, fwd,
                b.cells / (fwd * 1e-3) / 1e12, both, b.cells / (both * 1e-3) / 1e12,
                static_cast<double>(ws.bytes()) / (1024.0 * 1024.0));
    if (!cpu) return;
    const int threads = exec::thread_count(exec::CpuParallel{});
    const double cf = cpu_ms(3, [&] {
        diffbio::ad::Binder<float> bind;
        (void)sw.apply(bind, b.pairs, {}, exec::CpuParallel{});
    });
    const double cb = cpu_ms(1, [&] { (void)sw.value_and_grad<float>(b.pairs, w, {}, exec::CpuParallel{}); });
    std::printf("%-22s CPU (%d threads)      forward %9.1f ms %7.4f Tcells/s | forward+backward %9.1f ms %7.4f Tcells/s"
                " | GPU speed-up %.0fx / %.0fx\n",
                name.c_str(), threads, cf, b.cells / (cf * 1e-3) / 1e12, cb, b.cells / (cb * 1e-3) / 1e12, cf / fwd,
                cb / both);
}

} // namespace

int main(int argc, char** argv) {
    bool cpu_large = false, all = false;
    for (int a = 1; a < argc; ++a) {
        if (std::strcmp(argv[a], "--cpu-large") == 0) cpu_large = true;
        if (std::strcmp(argv[a], "--models") == 0 && a + 1 < argc && std::strcmp(argv[a + 1], "all") == 0) all = true;
    }
    if (!exec::cuda::device_available()) {
        std::printf("no CUDA device: nothing to measure\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    std::vector<std::pair<std::string, ops::SmithWatermanConfig>> models;
    models.push_back({"affine local soft", ops::SmithWatermanConfig{}});
    if (all) {
        ops::SmithWatermanConfig c;
        c.gaps = ops::GapModel::Linear;
        models.push_back({"linear local soft", c});
        c = {};
        c.mode = ops::AlignmentMode::Global;
        models.push_back({"affine global soft", c});
        c = {};
        c.hard = true;
        models.push_back({"affine local hard", c});
    }
    std::mt19937 rng(1);
    const Batch small = make_batch(1024, 150, rng);
    const Batch large = make_batch(1024, 1000, rng);
    for (const auto& [name, cfg] : models) {
        run(name, cfg, small, true, 20);
        run(name, cfg, large, cpu_large, 5);
    }
    return 0;
}
