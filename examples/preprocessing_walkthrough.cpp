// The seed walkthrough of diffbio: DiffBio's preprocessing example, in C++.
//
// 1. Simulate 100 reads × 50 bp with the seed's quality model (35 − 15·pos/L + read noise N(0, 3)
//    + position noise N(0, 5), clipped to [2, 41]; seeded), or read real reads (--fastq FILE).
// 2. Run the preprocessing pipeline (quality filter, adapter removal, duplicate weighting; error
//    correction off) and print shapes and the read-weight range.
// 3. The gradient of the retained-signal loss with respect to the quality threshold, in reverse
//    and forward mode.
// 4. Train the threshold from θ = 35 with Adam (lr 1.0, 50 steps) on the seed's loss
//       loss = mean((1 − w)·[q > 30]) + mean(w·[q < 15]),   w = σ(q − θ) (the quality filter)
//    printing steps 0, 10, …, 40 and the final θ.
// 5. Write TSV tables and, unless --no-plots, the seed's figures as PNG (scripts/plot_walkthrough.py,
//    matplotlib through /usr/bin/python3).
// With --check the program exits 1 unless the seed's outcome is reproduced (final θ in [18.5, 21],
// mean retention from ≈0.15 to ≥ 0.8, ≥ 99% of q > 30 kept, ≥ 99% of q < 15 filtered).
//
// Usage: preprocessing_walkthrough [--fastq FILE] [--out DIR] [--steps N] [--no-plots] [--check]

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <diffbio/diffbio.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/pipelines/preprocessing.hpp>

namespace ad = diffbio::ad;
namespace fs = std::filesystem;
using diffbio::ReadBatch;
using diffbio::pipelines::PreprocessingPipeline;
using diffbio::pipelines::PreprocessingPipelineConfig;

namespace {

struct Options {
    std::string fastq;
    std::string out = "walkthrough_output";
    int steps = 50;
    std::size_t max_reads = 2000;
    bool plots = true;
    bool check = false;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "preprocessing_walkthrough: %s needs a value\n", name);
                std::exit(2);
            }
            return std::string(argv[++i]);
        };
        if (a == "--fastq") o.fastq = value("--fastq");
        else if (a == "--out") o.out = value("--out");
        else if (a == "--steps") o.steps = std::stoi(value("--steps"));
        else if (a == "--max-reads") o.max_reads = static_cast<std::size_t>(std::stoul(value("--max-reads")));
        else if (a == "--no-plots") o.plots = false;
        else if (a == "--check") o.check = true;
        else {
            std::fprintf(stderr, "usage: preprocessing_walkthrough [--fastq FILE] [--max-reads N] [--out DIR] "
                                 "[--steps N] [--no-plots] [--check]\n");
            std::exit(2);
        }
    }
    return o;
}

/// The seed's synthetic reads: uniform random bases, qualities with read and position noise.
ReadBatch simulate(std::size_t reads, std::size_t length, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> read_noise(0.0, 3.0), pos_noise(0.0, 5.0);
    std::uniform_int_distribution<int> base(0, 3);
    ReadBatch b;
    for (std::size_t r = 0; r < reads; ++r) {
        const double offset = read_noise(rng);
        std::string seq(length, 'A');
        std::vector<float> q(length);
        for (std::size_t p = 0; p < length; ++p) {
            seq[p] = diffbio::bases[static_cast<std::size_t>(base(rng))];
            const double v = 35.0 - 15.0 * static_cast<double>(p) / static_cast<double>(length) + offset + pos_noise(rng);
            q[p] = static_cast<float>(std::clamp(v, 2.0, 41.0));
        }
        b.add("sim_" + std::to_string(r), seq, q);
    }
    return b;
}

/// The seed's loss on the quality-filter weights, generic in the scalar.
template <class R>
R retained_signal_loss(const std::vector<R>& w, const ReadBatch& b) {
    R high = R(0.0), low = R(0.0);
    std::size_t count = 0;
    for (std::size_t i = 0; i < b.num_reads; ++i) {
        for (std::size_t l = 0; l < b.lengths[i]; ++l) {
            const double q = b.quality[i * b.length + l];
            const R& wl = w[i * b.length + l];
            if (q > 30.0) high = high + (1.0 - wl);
            if (q < 15.0) low = low + wl;
            ++count;
        }
    }
    return (high + low) / static_cast<double>(count);
}

struct RetentionStats {
    double mean = 0, high_kept = 0, low_filtered = 0;
};

RetentionStats stats(const std::vector<double>& w, const ReadBatch& b) {
    RetentionStats s;
    double n = 0, nh = 0, nl = 0, kh = 0, fl = 0;
    for (std::size_t i = 0; i < b.num_reads; ++i) {
        for (std::size_t l = 0; l < b.lengths[i]; ++l) {
            const double q = b.quality[i * b.length + l], wl = w[i * b.length + l];
            s.mean += wl;
            ++n;
            if (q > 30.0) { kh += wl; ++nh; }
            if (q < 15.0) { fl += 1.0 - wl; ++nl; }
        }
    }
    s.mean /= n;
    s.high_kept = nh > 0 ? kh / nh : 1.0;
    s.low_filtered = nl > 0 ? fl / nl : 1.0;
    return s;
}

void write_matrix(const fs::path& path, const std::vector<double>& m, std::size_t rows, std::size_t cols) {
    std::ofstream f(path);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) f << (j ? "\t" : "") << m[i * cols + j];
        f << '\n';
    }
}

} // namespace

int main(int argc, char** argv) try {
    const Options opt = parse(argc, argv);
    ReadBatch batch;
    if (opt.fastq.empty()) {
        batch = simulate(100, 50, 42);
        std::printf("synthetic reads: %zu x %zu bp (seed 42)\n", batch.num_reads, batch.length);
    } else {
        diffbio::io::FastqReader reader(opt.fastq);
        reader.read_batch(batch, opt.max_reads);
        std::printf("%s: %zu reads, padded length %zu\n", opt.fastq.c_str(), batch.num_reads, batch.length);
    }

    PreprocessingPipelineConfig cfg;
    cfg.read_length = batch.length;
    cfg.quality_threshold = 35.0;
    cfg.enable_error_correction = false;
    PreprocessingPipeline pipeline(cfg);
    ad::Parameter& theta = pipeline.quality_filter().threshold();

    // ---- 2. one pass in double ------------------------------------------------------------
    ad::Binder<double> plain;
    const auto first = pipeline.apply(plain, batch);
    const auto [wmin, wmax] = std::minmax_element(first.read_weights.begin(), first.read_weights.end());
    std::printf("preprocessed_reads [%zu, %zu, 4], preprocessed_quality [%zu, %zu], read_weights [%zu] in [%.4f, %.4f]\n",
                batch.num_reads, batch.length, batch.num_reads, batch.length, batch.num_reads, *wmin, *wmax);

    // ---- 3. the gradient of the loss w.r.t. the threshold, both modes -----------------------
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    double grad_rev = 0;
    {
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipeline.apply(bind, batch);
        const ad::Var loss = retained_signal_loss(r.quality_weights, batch);
        tape.backward(loss);
        grad_rev = tape.adjoint(bind(theta)[0]);
    }
    ad::Binder<ad::Dual<double>> fwd;
    fwd.seed(theta, 0);
    const double grad_fwd = retained_signal_loss(pipeline.apply(fwd, batch).quality_weights, batch).tangent;
    std::printf("d loss / d theta at theta = 35: %.6f (reverse), %.6f (forward)\n", grad_rev, grad_fwd);

    // ---- 4. training ---------------------------------------------------------------------------
    diffbio::nn::Adam adam({&theta}, {.learning_rate = 1.0});
    std::vector<double> initial_w(first.quality_weights.begin(), first.quality_weights.end()), final_w;
    fs::create_directories(opt.out);
    std::ofstream curve(fs::path(opt.out) / "training.tsv");
    curve << "step\tloss\ttheta\tmean_retention\n";
    for (int step = 0; step <= opt.steps; ++step) {
        tape.rewind(start);
        adam.zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipeline.apply(bind, batch);
        const ad::Var loss = retained_signal_loss(r.quality_weights, batch);
        tape.backward(loss);
        bind.accumulate_grad();
        std::vector<double> w(r.quality_weights.size());
        for (std::size_t k = 0; k < w.size(); ++k) w[k] = r.quality_weights[k].value();
        const RetentionStats s = stats(w, batch);
        curve << step << '\t' << loss.value() << '\t' << theta[0] << '\t' << s.mean << '\n';
        if (step < opt.steps && step % 10 == 0) {
            std::printf("step %3d  loss %.4f  theta %.3f  mean retention %.3f\n", step, loss.value(), theta[0], s.mean);
        }
        if (step == opt.steps) {
            final_w = w;
            break;
        }
        adam.step();
    }
    curve.close();
    const RetentionStats s0 = stats(initial_w, batch), s1 = stats(final_w, batch);
    std::printf("final theta %.3f\n", theta[0]);
    std::printf("mean retention %.3f -> %.3f; q > 30 bases retained %.2f%%; q < 15 bases filtered %.2f%%\n", s0.mean,
                s1.mean, 100.0 * s1.high_kept, 100.0 * s1.low_filtered);

    // ---- 5. tables and figures ------------------------------------------------------------------
    const fs::path out(opt.out);
    std::vector<double> q(batch.quality.begin(), batch.quality.end());
    write_matrix(out / "quality.tsv", q, batch.num_reads, batch.length);
    write_matrix(out / "retention_initial.tsv", initial_w, batch.num_reads, batch.length);
    write_matrix(out / "retention_final.tsv", final_w, batch.num_reads, batch.length);
    {
        std::ofstream f(out / "read_weights.tsv");
        for (double w : first.read_weights) f << w << '\n';
        std::ofstream g(out / "threshold.tsv");
        g << "quality\tsoft\thard\n";
        for (int k = 0; k <= 410; ++k) {
            const double qq = 0.1 * k;
            g << qq << '\t' << diffbio::sigmoid(qq - theta[0]) << '\t' << (qq > theta[0] ? 1 : 0) << '\n';
        }
    }
    std::printf("tables written to %s/\n", opt.out.c_str());
    if (opt.plots) {
        const fs::path script = fs::path(DIFFBIO_SOURCE_DIR) / "scripts" / "plot_walkthrough.py";
        const std::string cmd = "/usr/bin/python3 '" + script.string() + "' '" + opt.out + "'";
        if (std::system(cmd.c_str()) != 0) {
            std::fprintf(stderr, "plots: %s failed (is python3-matplotlib installed?)\n", cmd.c_str());
        }
    }

    if (opt.check) {
        const bool ok = theta[0] >= 18.5 && theta[0] <= 21.0 && s0.mean < 0.25 && s1.mean >= 0.8 &&
                        s1.high_kept >= 0.99 && s1.low_filtered >= 0.99 && std::fabs(grad_rev - grad_fwd) < 1e-10;
        std::printf("%s\n", ok ? "check: OK" : "check: FAILED");
        return ok ? 0 : 1;
    }
    return 0;
} catch (const diffbio::Error& e) {
    std::fprintf(stderr, "preprocessing_walkthrough: %s\n", e.what());
    return 1;
}
