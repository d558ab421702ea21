// bench_pipeline_fastq: forward and forward+backward time of the whole PreprocessingPipeline on
// the reads of a FASTQ file (Phred+33, one line per sequence and quality, equal lengths), the C++
// side of benchmarks/peers/jax_preprocessing.sh (the JAX side is jax_preprocessing.py).
//
//   bench_pipeline_fastq --data FILE [--reps N] [--threads T] [--stages LIST] [--float 0|1]
//                        [--only forward|gradient]
//
// Config: the pipeline defaults (read_length 150, quality threshold 20, adapter AGATCGGAAGAG,
// match threshold 0.8, temperature 1, duplicate similarity 0.95, window 11, hidden 64). LIST
// names the optional stages that run, comma-separated, from adapter, duplicates,
// error_correction (default: all three; "none": the quality filter alone, which always runs).
// Loss (same as the JAX side):
//   loss = 1/(N·L) · Σ_i read_weights[i] · Σ_{l,k} (k+1) · preprocessed_reads[i,l,k]
// gradient: reverse mode, ∂loss/∂ every pipeline parameter. --float 1: the forward runs with
// Binder<float> (float kernels end to end) and the gradient with
// PreprocessingPipelineConfig::float_gradient (float GEMMs inside the reverse-mode nodes); the
// default (0) computes in double. T = 1 runs exec::Cpu, otherwise exec::CpuParallel{T}. Each
// variant is run once to warm up, then N times (default 20); --only runs one of them (for
// profiling one variant alone); one line per variant:
//   <variant> threads=<T> median_ms=<..> min_ms=<..> loss=<..>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/diffbio.hpp>

namespace ad = diffbio::ad;
namespace exec = diffbio::exec;
using diffbio::ReadBatch;

namespace {

ReadBatch read_fastq(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    ReadBatch b;
    std::string name, seq, plus, qual;
    std::vector<float> q;
    while (std::getline(in, name) && std::getline(in, seq) && std::getline(in, plus) && std::getline(in, qual)) {
        if (name.empty() || name[0] != '@' || qual.size() != seq.size()) throw std::runtime_error("bad FASTQ record in " + path);
        q.resize(qual.size());
        for (std::size_t i = 0; i < qual.size(); ++i) q[i] = static_cast<float>(qual[i] - 33);
        b.add(name.substr(1), seq, q);
    }
    if (b.num_reads == 0) throw std::runtime_error("no reads in " + path);
    return b;
}

/// Σ_i w_i · Σ_{l,k} (k+1)·R[i,l,k] / (N·L), for float, double (summed in double) or Var.
template <class R>
std::conditional_t<std::is_same_v<R, ad::Var>, ad::Var, double>
loss_of(const diffbio::pipelines::PreprocessingResult<R>& r, std::size_t n, std::size_t len) {
    const std::size_t per_read = len * 4;
    std::vector<double> coef(per_read);
    for (std::size_t j = 0; j < per_read; ++j) coef[j] = static_cast<double>(j % 4 + 1) / static_cast<double>(n * len);
    if constexpr (std::is_same_v<R, ad::Var>) {
        ad::Var loss = 0.0;
        ad::Tape& tape = ad::Tape::active();
        const std::span<const ad::Var> s = tape.weighted_row_sums(r.preprocessed_reads, coef); // one per read
        for (std::size_t i = 0; i < n; ++i) {
            loss += r.read_weights[i] * s[i];
        }
        return loss;
    } else {
        // eight partial sums per read (as Tape::weighted_row_sums): one accumulator chain would make
        // the loss latency-bound, and slower than the pipeline stage it follows
        constexpr std::size_t lanes = 8;
        double loss = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const R* row = r.preprocessed_reads.data() + i * per_read;
            double part[lanes] = {};
            std::size_t j = 0;
            for (; j + lanes <= per_read; j += lanes) {
                for (std::size_t u = 0; u < lanes; ++u) part[u] += coef[j + u] * static_cast<double>(row[j + u]);
            }
            for (; j < per_read; ++j) part[0] += coef[j] * static_cast<double>(row[j]);
            double s = 0.0;
            for (const double p : part) s += p;
            loss += static_cast<double>(r.read_weights[i]) * s;
        }
        return loss;
    }
}

struct Timing {
    double median_ms, min_ms, loss;
};

template <class F>
Timing time_it(int reps, F&& f) {
    double loss = f(); // warm-up (allocations, tape growth)
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        loss = f();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t m = ms.size() / 2;
    const double median = ms.size() % 2 ? ms[m] : 0.5 * (ms[m - 1] + ms[m]);
    return {median, ms.front(), loss};
}

void print_results(const std::vector<std::pair<const char*, Timing>>& results, int threads) {
    for (const auto& [name, t] : results) {
        std::printf("%s threads=%d median_ms=%.4f min_ms=%.4f loss=%.9g\n", name, threads, t.median_ms, t.min_ms, t.loss);
    }
}

template <class Scalar, class P>
void run(const ReadBatch& b, const diffbio::pipelines::PreprocessingPipelineConfig& cfg, const P& policy, int threads,
         int reps, const std::string& only) {
    diffbio::pipelines::PreprocessingPipeline pipeline(cfg);
    std::vector<std::pair<const char*, Timing>> results;
    if (only != "gradient") {
        results.emplace_back("forward", time_it(reps, [&] {
                                 ad::Binder<Scalar> bind;
                                 return loss_of(pipeline.apply(bind, b, policy), b.num_reads, b.length);
                             }));
    }
    if (only == "forward") {
        print_results(results, threads);
        return;
    }
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    results.emplace_back("forward+backward", time_it(reps, [&] {
        tape.rewind(start);
        for (ad::Parameter* p : pipeline.parameters()) p->zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const ad::Var loss = loss_of(pipeline.apply(bind, b, policy), b.num_reads, b.length);
        tape.backward(loss);
        bind.accumulate_grad();
        return loss.value();
    }));
    print_results(results, threads);
}

} // namespace

int main(int argc, char** argv) {
    std::string data, stages = "adapter,duplicates,error_correction", only;
    int reps = 20, threads = 1;
    bool use_float = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--data") data = argv[i + 1];
        else if (a == "--reps") reps = std::atoi(argv[i + 1]);
        else if (a == "--threads") threads = std::atoi(argv[i + 1]);
        else if (a == "--stages") stages = argv[i + 1];
        else if (a == "--float") use_float = std::atoi(argv[i + 1]) != 0;
        else if (a == "--only") only = argv[i + 1];
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
    }
    if (data.empty() || reps < 1 || threads < 1 || !(only.empty() || only == "forward" || only == "gradient")) {
        std::fprintf(stderr, "usage: bench_pipeline_fastq --data FILE [--reps N] [--threads T] [--stages LIST] [--float 0|1] "
                             "[--only forward|gradient]\n");
        return 2;
    }
    diffbio::pipelines::PreprocessingPipelineConfig cfg;
    cfg.enable_adapter_removal = cfg.enable_duplicate_weighting = cfg.enable_error_correction = false;
    for (std::size_t pos = 0; pos <= stages.size();) {
        const std::size_t end = std::min(stages.find(',', pos), stages.size());
        const std::string name = stages.substr(pos, end - pos);
        if (name == "adapter") cfg.enable_adapter_removal = true;
        else if (name == "duplicates") cfg.enable_duplicate_weighting = true;
        else if (name == "error_correction") cfg.enable_error_correction = true;
        else if (name != "none" && !name.empty()) {
            std::fprintf(stderr, "unknown stage '%s' (adapter, duplicates, error_correction, none)\n", name.c_str());
            return 2;
        }
        pos = end + 1;
    }
    cfg.float_gradient = use_float;
    try {
        const ReadBatch b = read_fastq(data);
        std::printf("reads=%zu length=%zu stages=%s precision=%s\n", b.num_reads, b.length, stages.c_str(),
                    use_float ? "float" : "double");
        if (use_float) {
            if (threads == 1) run<float>(b, cfg, exec::Cpu{}, 1, reps, only);
            else run<float>(b, cfg, exec::CpuParallel{threads}, threads, reps, only);
        } else {
            if (threads == 1) run<double>(b, cfg, exec::Cpu{}, 1, reps, only);
            else run<double>(b, cfg, exec::CpuParallel{threads}, threads, reps, only);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_pipeline_fastq: %s\n", e.what());
        return 1;
    }
    return 0;
}
