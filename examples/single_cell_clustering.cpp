// Single-cell clustering with diffbio, on real labelled data and on a large simulation.
//
// 1. pbmc_small (Seurat's 80 cells × 230 genes, pbmc_raw.txt read with io::read_dense_counts;
//    labels Idents(pbmc_small), exported by scripts/export_pbmc_small_labels.R unless --labels):
//    normalize_total → log1p → highly-variable genes → z-score per gene (clipped at ±10, as
//    Seurat's ScaleData) → PCA → soft k-means with deterministic annealing (k = number of labels,
//    seeded k-means++), ARI/NMI against the labels, next to scikit-learn's KMeans on the same PCA
//    matrix (scripts/sklearn_kmeans.py through /usr/bin/python3).
// 2. A simulation (core/simulate_counts.hpp, 50,000 cells × 1,000 genes by default, --cells N; 6
//    clusters whose marker genes (5%) differ by a log fold change of 0.5, --de-fold): the same
//    pipeline, ARI/NMI against the true clusters, seconds per stage. The default is hard on
//    purpose (PCA + k-means reaches an ARI of about 0.64), so that step 3 has room to show a gain.
// 3. Learned features instead of PCA: a linear projection z = x·W (genes → d, W initialised with
//    the PCA loadings, so step 0 is exactly the PCA pipeline) and the soft k-means centroids are
//    trained end to end with Adam through the tape (ad::Var: x·W is one fused node, the soft
//    assignments another; the objective and the penalty are scalar tape ops), minimising
//      soft-ari     1 − soft ARI(soft assignments, true labels) on a training split of the cells
//                   (supervised), or
//      silhouette   −soft silhouette(z, soft assignments) (unsupervised; O(n²) on the tape, so at
//                   most --silhouette-cells training cells are used),
//    plus --l2 · ‖W − W₀‖²/‖W₀‖², a ridge toward the PCA loadings W₀ against overfitting the
//    training cells (the default 0.1 did best of 0, 0.1, 1, 10 on these same splits, on both data
//    sets; there is no separate validation split, so the printed gains are somewhat optimistic).
//    Evaluated on the held-out cells only, before and after training: (a) soft k-means refitted
//    from scratch on the held-out cells' features (unsupervised), (b) the held-out cells assigned
//    to the nearest trained centroid. Several random splits (--splits, --sim-splits; the simulated
//    training uses the first --learn-cells cells); the mean gain is printed, also when it is zero
//    or negative.
// 4. TSV tables and PNG figures (scripts/plot_single_cell.py, matplotlib via /usr/bin/python3):
//    the first two PCs, and the first two principal components of the learned features (first
//    split), coloured by true labels and by predicted clusters side by side.
// With --check the program exits 1 unless the simulation's soft k-means ARI is ≥ --min-ari, every
// training loss is finite and every training run ends below its starting loss.
//
// Usage: single_cell_clustering [--counts FILE] [--labels FILE] [--cells N] [--out DIR] ...
//        (--help lists every option)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/simulate_counts.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/io/count_matrix.hpp>
#include <diffbio/metrics/ari.hpp>
#include <diffbio/metrics/nmi.hpp>
#include <diffbio/metrics/silhouette.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/linear.hpp>
#include <diffbio/ops/singlecell/normalize.hpp>
#include <diffbio/ops/singlecell/pca.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

#ifndef DIFFBIO_SOURCE_DIR
#define DIFFBIO_SOURCE_DIR "."
#endif

namespace ad = diffbio::ad;
namespace fs = std::filesystem;
namespace ops = diffbio::ops;
namespace metrics = diffbio::metrics;
namespace nn = diffbio::nn;
namespace exec = diffbio::exec;

namespace {

constexpr const char* default_counts = "/usr/lib/R/site-library/Seurat/extdata/pbmc_raw.txt";

struct Options {
    std::string counts = default_counts;
    std::string labels;
    std::string out = "single_cell_output";
    std::size_t cells = 50000;
    std::size_t genes = 1000;
    std::size_t clusters = 6;
    double de_fold = 0.5;
    double de_prob = 0.05;
    std::size_t hvg = 2000;
    std::size_t pcs = 10;
    std::size_t restarts = 10;
    std::size_t learn_cells = 5000;
    std::size_t splits = 10;
    std::size_t sim_splits = 3;
    double train_frac = 0.7;
    std::size_t steps = 150;
    double alpha = 0.02;
    double tau_scale = 0.5;
    double l2 = 0.1;
    std::size_t silhouette_cells = 300;
    std::string objective = "both";
    std::uint64_t seed = 0;
    int threads = 2;
    double min_ari = 0.0;
    bool pbmc = true;
    bool sim = true;
    bool sklearn = true;
    bool plots = true;
    bool check = false;
};

[[noreturn]] void usage(int code) {
    std::fprintf(code == 0 ? stdout : stderr,
                 "usage: single_cell_clustering [options]\n"
                 "  --counts FILE        pbmc_small counts (genes x cells TSV; default %s)\n"
                 "  --labels FILE        TSV 'cell<TAB>label' (default: exported with scripts/export_pbmc_small_labels.R)\n"
                 "  --cells N            simulated cells (default 50000)\n"
                 "  --genes G            simulated genes (default 1000)\n"
                 "  --clusters K         simulated clusters (default 6)\n"
                 "  --de-fold F          |log fold change| of a cluster's marker genes (default 0.5)\n"
                 "  --de-prob P          share of marker genes per cluster (default 0.05)\n"
                 "  --hvg N              highly-variable genes kept (default 2000)\n"
                 "  --pcs D              principal components = learned dimensions (default 10)\n"
                 "  --restarts R         k-means++ starts of soft k-means, best inertia kept (default 10)\n"
                 "  --learn-cells N      simulated cells used for the learned features (default 5000)\n"
                 "  --splits S           random train/held-out splits of pbmc_small (default 10)\n"
                 "  --sim-splits S       random train/held-out splits of the simulated cells (default 3)\n"
                 "  --train-frac F       share of cells in the training split (default 0.7)\n"
                 "  --steps N            Adam steps (default 150)\n"
                 "  --alpha A            Adam step relative to the scale of W and of the centroids (default 0.02)\n"
                 "  --tau-scale S        training temperature / mean squared distance to the nearest centroid (default 0.5)\n"
                 "  --l2 L               penalty L * |W - W0|^2 / |W0|^2 that keeps W near the PCA loadings W0 (default 0.1)\n"
                 "  --objective O        soft-ari | silhouette | both (default both)\n"
                 "  --silhouette-cells N training cells of the silhouette objective (default 300)\n"
                 "  --seed S  --threads T  --out DIR  --no-pbmc  --no-sim  --no-sklearn  --no-plots\n"
                 "  --check              exit 1 unless the simulation's ARI >= --min-ari and every training loss is finite\n"
                 "                       and ends below its start\n"
                 "  --min-ari X          the bound of --check (default 0)\n",
                 default_counts);
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "single_cell_clustering: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        auto size = [&]() -> std::size_t {
            const std::string v = value();
            std::size_t pos = 0;
            unsigned long long r = 0;
            try {
                r = std::stoull(v, &pos);
            } catch (const std::exception&) {
                pos = 0;
            }
            if (pos != v.size() || v.empty() || v[0] == '-') {
                std::fprintf(stderr, "single_cell_clustering: %s needs a whole number >= 0, got '%s'\n", a.c_str(), v.c_str());
                std::exit(2);
            }
            return static_cast<std::size_t>(r);
        };
        auto real = [&]() -> double {
            const std::string v = value();
            std::size_t pos = 0;
            double r = 0.0;
            try {
                r = std::stod(v, &pos);
            } catch (const std::exception&) {
                pos = 0;
            }
            if (pos != v.size() || !std::isfinite(r)) {
                std::fprintf(stderr, "single_cell_clustering: %s needs a number, got '%s'\n", a.c_str(), v.c_str());
                std::exit(2);
            }
            return r;
        };
        if (a == "--counts") o.counts = value();
        else if (a == "--labels") o.labels = value();
        else if (a == "--out") o.out = value();
        else if (a == "--cells") o.cells = size();
        else if (a == "--genes") o.genes = size();
        else if (a == "--clusters") o.clusters = size();
        else if (a == "--de-fold") o.de_fold = real();
        else if (a == "--de-prob") o.de_prob = real();
        else if (a == "--hvg") o.hvg = size();
        else if (a == "--pcs") o.pcs = size();
        else if (a == "--restarts") o.restarts = size();
        else if (a == "--learn-cells") o.learn_cells = size();
        else if (a == "--splits") o.splits = size();
        else if (a == "--sim-splits") o.sim_splits = size();
        else if (a == "--train-frac") o.train_frac = real();
        else if (a == "--steps") o.steps = size();
        else if (a == "--alpha") o.alpha = real();
        else if (a == "--tau-scale") o.tau_scale = real();
        else if (a == "--l2") o.l2 = real();
        else if (a == "--objective") o.objective = value();
        else if (a == "--silhouette-cells") o.silhouette_cells = size();
        else if (a == "--seed") o.seed = size();
        else if (a == "--threads") o.threads = static_cast<int>(size());
        else if (a == "--min-ari") o.min_ari = real();
        else if (a == "--no-pbmc") o.pbmc = false;
        else if (a == "--no-sim") o.sim = false;
        else if (a == "--no-sklearn") o.sklearn = false;
        else if (a == "--no-plots") o.plots = false;
        else if (a == "--check") o.check = true;
        else if (a == "--help" || a == "-h") usage(0);
        else {
            std::fprintf(stderr, "single_cell_clustering: unknown option '%s'\n", a.c_str());
            usage(2);
        }
    }
    auto fail = [](const char* msg) {
        std::fprintf(stderr, "single_cell_clustering: %s\n", msg);
        std::exit(2);
    };
    if (o.objective != "soft-ari" && o.objective != "silhouette" && o.objective != "both") {
        fail("--objective must be soft-ari, silhouette or both");
    }
    if (o.pcs == 0 || o.restarts == 0 || o.clusters == 0 || o.cells == 0 || o.genes == 0 || o.hvg == 0) {
        fail("--pcs, --restarts, --clusters, --cells, --genes and --hvg must be >= 1");
    }
    if (!(o.train_frac > 0.0 && o.train_frac < 1.0)) fail("--train-frac must be in (0, 1)");
    if (!(o.alpha > 0.0) || !(o.tau_scale > 0.0)) fail("--alpha and --tau-scale must be > 0");
    if (!(o.l2 >= 0.0)) fail("--l2 must be >= 0");
    if (o.silhouette_cells < 4) fail("--silhouette-cells must be >= 4");
    if (o.threads < 1) fail("--threads must be >= 1");
    return o;
}

/// std::system after flushing our own output, so that the two appear in order.
int run_command(const std::string& cmd) {
    std::fflush(stdout);
    return std::system(cmd.c_str());
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// A cells × genes count matrix with one true label per cell (codes 0..L−1).
struct LabelledCounts {
    std::string name;
    diffbio::CountMatrix counts;
    std::vector<int> truth;
    std::vector<std::string> label_names;
};

/// The preprocessed matrix, its PCA and the time of each stage.
struct Prepared {
    std::size_t n = 0, genes = 0;   ///< cells, genes kept
    std::vector<double> x;          ///< [n × genes] scaled log-normalised expression, centred by the PCA mean
    ops::Pca pca;
    std::vector<std::pair<std::string, double>> seconds;
};

/// Centres each column and divides it by its standard deviation (divisor n − 1; a constant
/// column becomes 0), then clips to [−clip, clip] (Seurat's ScaleData, scanpy's scale(max_value)).
void scale_columns(std::vector<double>& x, std::size_t n, std::size_t G, double clip) {
    std::vector<double> mean(G, 0.0), ss(G, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) mean[g] += x[i * G + g];
    }
    for (double& m : mean) m /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) ss[g] += (x[i * G + g] - mean[g]) * (x[i * G + g] - mean[g]);
    }
    for (std::size_t g = 0; g < G; ++g) ss[g] = n > 1 ? std::sqrt(ss[g] / static_cast<double>(n - 1)) : 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t g = 0; g < G; ++g) {
            double& v = x[i * G + g];
            v = ss[g] > 0.0 ? std::clamp((v - mean[g]) / ss[g], -clip, clip) : 0.0;
        }
    }
}

Prepared preprocess(const diffbio::CountMatrix& counts, const Options& opt) {
    Prepared p;
    p.n = counts.n_cells();
    auto t = Clock::now();
    const diffbio::CountMatrix logn = ops::log1p_transform(ops::normalize_total(counts, 1e4));
    p.seconds.emplace_back("normalize_total + log1p", seconds_since(t));
    t = Clock::now();
    const ops::HvgResult hvg = ops::highly_variable_genes(logn, {.n_top = opt.hvg, .n_bins = 20});
    p.genes = hvg.selected.size();
    p.seconds.emplace_back("highly_variable_genes", seconds_since(t));
    t = Clock::now();
    p.x = ops::dense_columns(logn, hvg.selected);
    scale_columns(p.x, p.n, p.genes, 10.0);
    p.seconds.emplace_back("dense HVG matrix + scale", seconds_since(t));
    t = Clock::now();
    p.pca = ops::pca_fit(p.x, p.n, p.genes, {.n_components = opt.pcs, .solver = ops::PcaSolver::Auto, .seed = opt.seed});
    for (std::size_t i = 0; i < p.n; ++i) {
        for (std::size_t g = 0; g < p.genes; ++g) p.x[i * p.genes + g] -= p.pca.mean[g];
    }
    p.seconds.emplace_back(std::string("PCA (") + (p.pca.solver == ops::PcaSolver::Exact ? "exact" : "randomized") + ")",
                           seconds_since(t));
    return p;
}

/// Fewer rows than this run on one thread whatever --threads says.
constexpr std::size_t parallel_rows = 10000;

/// Soft k-means (annealing, then Lloyd), the best of `restarts` k-means++ seeds by inertia.
struct Clustering {
    std::vector<int> labels;
    std::vector<double> centroids;
    double inertia = 0.0;
    std::uint64_t seed = 0;
    std::size_t stages = 0, soft_iterations = 0, lloyd_iterations = 0;
    double first_inertia = 0.0;           ///< of the first seed alone
    std::vector<int> first_labels;        ///< of the first seed alone
};

Clustering soft_kmeans(std::span<const double> x, std::size_t n, std::size_t d, std::size_t K, std::uint64_t seed,
                       std::size_t restarts, int threads) {
    Clustering best;
    for (std::size_t r = 0; r < restarts; ++r) {
        ops::SoftKMeans km({.n_clusters = K, .n_features = d, .temperature = 1.0, .seed = seed + r});
        // OpenMP regions cost more than they save on small inputs (measured: 80 cells took 1.7 s
        // with 2 threads on a busy 2-core machine, 1 ms on one).
        const ops::SoftKMeansFitReport rep = threads > 1 && n >= parallel_rows ? km.fit(x, n, {}, true, exec::CpuParallel{threads})
                                                                               : km.fit(x, n, {}, true, exec::Cpu{});
        if (r == 0) {
            best.first_inertia = rep.inertia;
            best.first_labels = km.labels();
        }
        if (r == 0 || rep.inertia < best.inertia) {
            best.labels = km.labels();
            best.centroids.assign(km.centroids().values().begin(), km.centroids().values().end());
            best.inertia = rep.inertia;
            best.seed = seed + r;
            best.stages = rep.stages;
            best.soft_iterations = rep.soft_iterations;
            best.lloyd_iterations = rep.lloyd_iterations;
        }
    }
    return best;
}

struct Scores {
    double ari = 0.0, nmi = 0.0;
};
Scores score(const std::vector<int>& truth, const std::vector<int>& pred) {
    return {metrics::adjusted_rand_index(truth, pred), metrics::normalized_mutual_information(truth, pred)};
}

void write_rows(const fs::path& path, std::span<const double> x, std::size_t cols) {
    std::ofstream f(path);
    char buf[40];
    for (std::size_t i = 0; i < x.size() / cols; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            std::snprintf(buf, sizeof buf, "%.17g", x[i * cols + j]);
            f << (j ? "\t" : "") << buf;
        }
        f << '\n';
    }
    if (!f) throw diffbio::Error("cannot write " + path.string());
}

/// scikit-learn's KMeans (k-means++, n_init = 10, random_state = seed) on x [n × d].
struct SklearnRun {
    bool ok = false;
    std::vector<int> labels;
    std::string line; ///< what the script printed
    double seconds = 0.0;
};

SklearnRun run_sklearn(std::span<const double> x, std::size_t d, std::size_t K, const std::vector<int>& truth,
                       const Options& opt, const std::string& tag) {
    SklearnRun run;
    const fs::path dir = fs::path(opt.out);
    const fs::path xin = dir / (tag + "_pcs.tsv"), lab = dir / (tag + "_sklearn_labels.txt"), tru = dir / (tag + "_truth.txt"),
                   log = dir / (tag + "_sklearn.log");
    write_rows(xin, x, d);
    {
        std::ofstream f(tru);
        for (int t : truth) f << t << '\n';
    }
    const fs::path script = fs::path(DIFFBIO_SOURCE_DIR) / "scripts" / "sklearn_kmeans.py";
    const std::string cmd = "/usr/bin/python3 '" + script.string() + "' '" + xin.string() + "' " + std::to_string(K) + " " +
                            std::to_string(opt.seed) + " '" + lab.string() + "' 10 '" + tru.string() + "' > '" + log.string() +
                            "' 2>&1";
    const auto t = Clock::now();
    const int status = run_command(cmd);
    run.seconds = seconds_since(t);
    std::ifstream lf(log);
    std::stringstream all;
    all << lf.rdbuf();
    run.line = all.str();
    while (!run.line.empty() && (run.line.back() == '\n' || run.line.back() == '\r')) run.line.pop_back();
    if (status != 0) {
        std::printf("  scikit-learn: skipped (%s failed; Debian: python3-sklearn):\n    %s\n", cmd.c_str(), run.line.c_str());
        return run;
    }
    std::ifstream lin(lab);
    int v = 0;
    while (lin >> v) run.labels.push_back(v);
    if (run.labels.size() != truth.size()) {
        std::printf("  scikit-learn: expected %zu labels in %s, read %zu\n", truth.size(), lab.string().c_str(), run.labels.size());
        return run;
    }
    // Only the sklearn line (scikit-learn may print warnings before it).
    const std::size_t at = run.line.rfind("sklearn n=");
    if (at != std::string::npos) run.line = run.line.substr(at);
    run.ok = true;
    return run;
}

// ---------------------------------------------------------------------------------------------
// Learned features

/// A deterministic permutation of 0..n−1 (Fisher–Yates on splitmix64 of the seed).
std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed) {
    std::vector<std::size_t> p(n);
    std::iota(p.begin(), p.end(), std::size_t{0});
    std::uint64_t state = seed ^ 0xA5A5A5A5DEADBEEFULL;
    auto next = [&state] {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    };
    for (std::size_t i = n; i > 1; --i) {
        const double u = static_cast<double>(next() >> 11) * 0x1.0p-53;
        std::swap(p[i - 1], p[std::min(i - 1, static_cast<std::size_t>(u * static_cast<double>(i)))]);
    }
    return p;
}

std::vector<double> gather_rows(std::span<const double> x, std::size_t cols, std::span<const std::size_t> rows) {
    std::vector<double> out(rows.size() * cols);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(rows[r] * cols), cols, out.begin() + static_cast<std::ptrdiff_t>(r * cols));
    }
    return out;
}

template <class T>
std::vector<T> gather(const std::vector<T>& v, std::span<const std::size_t> idx) {
    std::vector<T> out;
    out.reserve(idx.size());
    for (std::size_t i : idx) out.push_back(v[i]);
    return out;
}

/// Held-out quality of features z: (a) soft k-means refitted on them, (b) nearest trained centroid.
struct HeldOut {
    Scores refit, centroid;
};

struct LearnRun {
    std::vector<double> losses;        ///< per step, before the step's update; the last after the final update
    std::vector<double> objective;     ///< the same without the L2 penalty
    HeldOut before, after;
    double tau = 0.0;
    double seconds = 0.0;
    std::vector<double> z_all;         ///< [n × d] learned features of every cell given
    std::vector<int> centroid_labels;  ///< nearest trained centroid of every cell given
    std::vector<std::uint8_t> is_train;
};

/// Trains W [G × d] (from the PCA loadings) and the centroids [K × d] on the training split for
/// `objective`, then scores the held-out split. x: [n × G], centred.
LearnRun learn_features(const Prepared& p, std::span<const double> x, std::size_t n, const std::vector<int>& truth, std::size_t L,
                        const std::string& objective, std::uint64_t split_seed, const Options& opt) {
    const auto t_start = Clock::now();
    const std::size_t G = p.genes, d = p.pca.n_components, K = L;
    const exec::Cpu policy{}; // a few thousand cells at most: serial (see soft_kmeans)
    const auto perm = permutation(n, split_seed);
    const std::size_t n_train = std::max<std::size_t>(K + 1, static_cast<std::size_t>(opt.train_frac * static_cast<double>(n)));
    if (n_train + K + 1 > n) throw diffbio::InvalidArgument("learn_features: too few cells for a train/held-out split");
    std::vector<std::size_t> train(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(n_train));
    std::vector<std::size_t> test(perm.begin() + static_cast<std::ptrdiff_t>(n_train), perm.end());
    std::sort(train.begin(), train.end());
    std::sort(test.begin(), test.end());
    const std::vector<double> x_train = gather_rows(x, G, train), x_test = gather_rows(x, G, test);
    const std::vector<int> y_train = gather(truth, train), y_test = gather(truth, test);
    const std::size_t n_test = test.size();

    nn::Linear proj(G, d, opt.seed, "projection");
    for (std::size_t g = 0; g < G; ++g) {
        for (std::size_t j = 0; j < d; ++j) proj.weight()[g * d + j] = p.pca.components[j * G + g];
    }
    auto project = [&](std::span<const double> rows, std::size_t count) {
        ad::Binder<double> plain;
        return proj.forward(plain, rows, count, policy);
    };

    // Step 0 = the PCA pipeline: centroids from soft k-means on the training cells' PCA scores.
    const std::vector<double> z_train0 = project(x_train, n_train), z_test0 = project(x_test, n_test);
    const Clustering init = soft_kmeans(z_train0, n_train, d, K, opt.seed, opt.restarts, opt.threads);
    ops::SoftKMeans km({.n_clusters = K, .n_features = d, .temperature = 1.0, .seed = opt.seed});
    km.set_centroids(init.centroids);

    LearnRun run;
    run.before.centroid = score(y_test, ops::hard_assign(z_test0, n_test, km.centroids().values(), K, policy));
    run.before.refit = score(y_test, soft_kmeans(z_test0, n_test, d, K, opt.seed, opt.restarts, opt.threads).labels);

    // Temperature: tau_scale × the mean squared distance of a training cell to its nearest centroid.
    {
        const auto lab = ops::hard_assign(z_train0, n_train, km.centroids().values(), K, policy);
        run.tau = opt.tau_scale * ops::kmeans_inertia(z_train0, n_train, km.centroids().values(), K, lab) / static_cast<double>(n_train);
    }
    // Adam steps: alpha × the typical size of an entry (W: unit columns over G genes; centroids:
    // the root mean variance of the PCA scores).
    double score_var = 0.0;
    for (double ev : p.pca.explained_variance) score_var += ev;
    score_var /= static_cast<double>(d);
    nn::Adam adam_w({&proj.weight()}, {.learning_rate = opt.alpha / std::sqrt(static_cast<double>(G))});
    nn::Adam adam_c({&km.centroids()}, {.learning_rate = opt.alpha * std::sqrt(score_var)});

    const bool silhouette = objective == "silhouette";
    const std::size_t n_obj = silhouette ? std::min(n_train, opt.silhouette_cells) : n_train;
    const std::span<const double> x_obj(x_train.data(), n_obj * G);
    const std::vector<double> w0(proj.weight().values().begin(), proj.weight().values().end());
    const double w0_norm2 = std::inner_product(w0.begin(), w0.end(), w0.begin(), 0.0);
    std::vector<double> onehot(n_train * L, 0.0);
    for (std::size_t i = 0; i < n_train; ++i) onehot[i * L + static_cast<std::size_t>(y_train[i])] = 1.0;

    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto mark = tape.mark();
    for (std::size_t step = 0; step <= opt.steps; ++step) {
        tape.rewind(mark);
        adam_w.zero_grad();
        adam_c.zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const std::vector<ad::Var> z = proj.forward(bind, x_obj, n_obj, policy);
        const auto assign = km.apply(bind, std::span<const ad::Var>(z), n_obj, run.tau, policy);
        const std::span<const ad::Var> P(assign.assignments);
        const ad::Var fit = silhouette ? -metrics::soft_silhouette(std::span<const ad::Var>(z), d, P, K)
                                       : 1.0 - metrics::soft_adjusted_rand_index(P, K, std::span<const double>(onehot), L);
        ad::Var loss = fit;
        if (opt.l2 > 0.0) {
            const std::span<const ad::Var> w = bind(proj.weight());
            ad::Var pen = 0.0;
            for (std::size_t k = 0; k < w.size(); ++k) {
                const ad::Var dw = w[k] - w0[k];
                pen = pen + dw * dw;
            }
            loss = loss + (opt.l2 / w0_norm2) * pen;
        }
        run.losses.push_back(loss.value());
        run.objective.push_back(fit.value());
        if (step == opt.steps || !std::isfinite(loss.value())) break;
        tape.backward(loss);
        bind.accumulate_grad();
        adam_w.step();
        adam_c.step();
    }

    const std::vector<double> z_test = project(x_test, n_test);
    run.after.centroid = score(y_test, ops::hard_assign(z_test, n_test, km.centroids().values(), K, policy));
    run.after.refit = score(y_test, soft_kmeans(z_test, n_test, d, K, opt.seed, opt.restarts, opt.threads).labels);
    run.z_all = project(x, n);
    run.centroid_labels = ops::hard_assign(run.z_all, n, km.centroids().values(), K, policy);
    run.is_train.assign(n, 0);
    for (std::size_t i : train) run.is_train[i] = 1;
    run.seconds = seconds_since(t_start);
    return run;
}

struct CheckState {
    bool ok = true;
    std::vector<std::string> failures;
    void require(bool cond, const std::string& what) {
        if (!cond) {
            ok = false;
            failures.push_back(what);
        }
    }
};

/// Runs every objective over every split, prints per split and the mean gain; writes the
/// training curves and the features of the first split.
void learned_features_report(const std::string& tag, const Prepared& p, std::span<const double> x, std::size_t n,
                             const std::vector<int>& truth, std::size_t L, std::size_t splits, const Options& opt,
                             CheckState& check) {
    std::vector<std::string> objectives;
    if (opt.objective == "soft-ari" || opt.objective == "both") objectives.push_back("soft-ari");
    if (opt.objective == "silhouette" || opt.objective == "both") objectives.push_back("silhouette");
    std::ofstream curves(fs::path(opt.out) / (tag + "_training.tsv"));
    curves << "objective\tsplit\tstep\tloss\tterm\n";
    for (const std::string& obj : objectives) {
        std::printf("\n  learned features, objective %s (%s) + %g |W - W0|^2/|W0|^2, %zu Adam steps, %zu splits of %zu cells "
                    "(%.0f%% train):\n",
                    obj.c_str(), obj == "soft-ari" ? "1 - soft ARI, supervised on the training labels" : "-soft silhouette, unsupervised",
                    opt.l2, opt.steps, splits, n, 100.0 * opt.train_frac);
        std::printf("    split  tau        loss first -> last  (term)   held-out ARI refit   held-out ARI centroids   NMI refit\n");
        double gain_refit = 0.0, gain_cent = 0.0, gain_nmi = 0.0, secs = 0.0;
        std::size_t wins = 0;
        for (std::size_t s = 0; s < splits; ++s) {
            const LearnRun r = learn_features(p, x, n, truth, L, obj, opt.seed + 1000 * (s + 1), opt);
            std::printf("    %5zu  %-9.3g  %8.4f -> %8.4f (%7.4f)   %6.3f -> %6.3f      %6.3f -> %6.3f          %6.3f -> %6.3f\n", s,
                        r.tau, r.losses.front(), r.losses.back(), r.objective.back(), r.before.refit.ari, r.after.refit.ari, r.before.centroid.ari,
                        r.after.centroid.ari, r.before.refit.nmi, r.after.refit.nmi);
            gain_refit += r.after.refit.ari - r.before.refit.ari;
            gain_cent += r.after.centroid.ari - r.before.centroid.ari;
            gain_nmi += r.after.refit.nmi - r.before.refit.nmi;
            wins += r.after.refit.ari > r.before.refit.ari ? 1 : 0;
            secs += r.seconds;
            bool finite = true;
            for (std::size_t k = 0; k < r.losses.size(); ++k) {
                finite = finite && std::isfinite(r.losses[k]);
                curves << obj << '\t' << s << '\t' << k << '\t' << r.losses[k] << '\t' << r.objective[k] << '\n';
            }
            check.require(finite, tag + " " + obj + " split " + std::to_string(s) + ": a training loss is not finite");
            check.require(finite && r.losses.back() < r.losses.front(),
                          tag + " " + obj + " split " + std::to_string(s) + ": the loss did not decrease");
            if (s == 0) {
                // For the figure: the first two principal components of the learned features.
                const std::size_t d = p.pca.n_components, c = std::min<std::size_t>(2, d);
                const ops::Pca view = ops::pca_fit(r.z_all, n, d, {.n_components = c, .solver = ops::PcaSolver::Exact});
                std::ofstream f(fs::path(opt.out) / (tag + "_learned_" + obj + ".tsv"));
                f << "x1\tx2\ttruth\tpredicted\ttrain\n";
                for (std::size_t i = 0; i < n; ++i) {
                    f << view.scores[i * c] << '\t' << view.scores[i * c + c - 1] << '\t' << truth[i] << '\t' << r.centroid_labels[i]
                      << '\t' << int(r.is_train[i]) << '\n';
                }
            }
        }
        const double S = static_cast<double>(splits);
        std::printf("    mean gain on held-out cells: ARI refit %+.3f, ARI nearest centroid %+.3f, NMI refit %+.3f "
                    "(refit ARI better in %zu of %zu splits; %.1f s per split)\n",
                    gain_refit / S, gain_cent / S, gain_nmi / S, wins, splits, secs / S);
        if (gain_refit / S <= 0.0) {
            std::printf("    => no gain from training for the refitted clustering (objective %s): the PCA features are as good or better here\n",
                        obj.c_str());
        }
    }
}

void print_stage_times(const std::vector<std::pair<std::string, double>>& t) {
    std::printf("  seconds per stage:\n");
    double total = 0.0;
    for (const auto& [name, s] : t) {
        std::printf("    %-38s %8.3f\n", name.c_str(), s);
        total += s;
    }
    std::printf("    %-38s %8.3f\n", "total", total);
}

/// The shared part of both datasets: preprocessing, PCA, soft k-means, scikit-learn, tables.
Prepared cluster_and_report(const std::string& tag, const LabelledCounts& data, const Options& opt, CheckState& check,
                            std::vector<std::pair<std::string, double>> stage_times, double* ari_out) {
    const std::size_t L = data.label_names.size();
    Prepared p = preprocess(data.counts, opt);
    stage_times.insert(stage_times.end(), p.seconds.begin(), p.seconds.end());
    const std::size_t n = p.n, d = p.pca.n_components;
    std::printf("  %zu cells, %zu highly-variable genes, %zu PCs (%.1f%% of the variance), k = %zu clusters\n", n, p.genes, d,
                100.0 * std::accumulate(p.pca.explained_variance_ratio.begin(), p.pca.explained_variance_ratio.end(), 0.0), L);

    auto t = Clock::now();
    const Clustering c = soft_kmeans(p.pca.scores, n, d, L, opt.seed, opt.restarts, opt.threads);
    stage_times.emplace_back("soft k-means (" + std::to_string(opt.restarts) + " starts)", seconds_since(t));
    t = Clock::now();
    const Scores ours = score(data.truth, c.labels), ours1 = score(data.truth, c.first_labels);
    stage_times.emplace_back("ARI + NMI", seconds_since(t));
    std::printf("  diffbio soft k-means, annealed, seed %llu alone:        ARI %.4f  NMI %.4f  inertia %.6g\n",
                static_cast<unsigned long long>(opt.seed), ours1.ari, ours1.nmi, c.first_inertia);
    std::printf("  diffbio soft k-means, annealed, best of %2zu seeds:       ARI %.4f  NMI %.4f  inertia %.6g "
                "(seed %llu: %zu temperatures, %zu soft + %zu Lloyd iterations)\n",
                opt.restarts, ours.ari, ours.nmi, c.inertia, static_cast<unsigned long long>(c.seed), c.stages, c.soft_iterations,
                c.lloyd_iterations);
    if (ari_out != nullptr) *ari_out = ours.ari;
    check.require(std::isfinite(ours.ari) && std::isfinite(ours.nmi), tag + ": ARI/NMI not finite");

    std::vector<int> sk_labels;
    if (opt.sklearn) {
        const SklearnRun sk = run_sklearn(p.pca.scores, d, L, data.truth, opt, tag);
        if (sk.ok) {
            const Scores s = score(data.truth, sk.labels);
            std::printf("  scikit-learn KMeans (k-means++, n_init 10), same PCs:  ARI %.4f  NMI %.4f  (diffbio metrics)\n", s.ari, s.nmi);
            std::printf("    %s\n", sk.line.c_str());
            stage_times.emplace_back("scikit-learn KMeans (python, incl. I/O)", sk.seconds);
            sk_labels = sk.labels;
        }
    }
    print_stage_times(stage_times);

    std::ofstream f(fs::path(opt.out) / (tag + "_embedding.tsv"));
    f << "x1\tx2\ttruth\tpredicted\n";
    for (std::size_t i = 0; i < n; ++i) {
        f << p.pca.scores[i * d] << '\t' << p.pca.scores[i * d + (d > 1 ? 1 : 0)] << '\t' << data.truth[i] << '\t' << c.labels[i]
          << '\n';
    }
    std::ofstream names(fs::path(opt.out) / (tag + "_labels.tsv"));
    names << "code\tlabel\n";
    for (std::size_t l = 0; l < L; ++l) names << l << '\t' << data.label_names[l] << '\n';
    return p;
}

/// Labels TSV "cell<TAB>label" (a header line is allowed) matched to the barcodes of counts.
LabelledCounts attach_labels(diffbio::CountMatrix counts, const std::string& path) {
    std::ifstream in(path);
    if (!in) throw diffbio::Error("cannot open labels file '" + path + "'");
    std::map<std::string, std::string> by_cell;
    std::string line;
    std::size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const std::size_t tab = line.find('\t');
        if (tab == std::string::npos) throw diffbio::ParseError(path, static_cast<long>(lineno), "expected 'cell<TAB>label'");
        const std::string cell = line.substr(0, tab), label = line.substr(tab + 1);
        if (lineno == 1 && cell == "cell") continue;
        by_cell[cell] = label;
    }
    LabelledCounts out;
    std::map<std::string, int> code;
    std::vector<std::string> raw;
    for (const std::string& b : counts.barcodes) {
        const auto it = by_cell.find(b);
        if (it == by_cell.end()) throw diffbio::InvalidArgument("labels file '" + path + "' has no label for cell '" + b + "'");
        raw.push_back(it->second);
        code[it->second] = 0;
    }
    int k = 0;
    for (auto& [name, c] : code) {
        c = k++;
        out.label_names.push_back(name);
    }
    for (const std::string& r : raw) out.truth.push_back(code[r]);
    out.counts = std::move(counts);
    return out;
}

} // namespace

int main(int argc, char** argv) try {
    const Options opt = parse(argc, argv);
    fs::create_directories(opt.out);
    CheckState check;
    double sim_ari = -1.0;
    std::vector<std::string> figures;
    const fs::path plot_script = fs::path(DIFFBIO_SOURCE_DIR) / "scripts" / "plot_single_cell.py";

    // ---- 1. pbmc_small ----------------------------------------------------------------------------
    if (opt.pbmc) {
        std::printf("== pbmc_small: %s\n", opt.counts.c_str());
        std::string labels = opt.labels;
        bool have = fs::exists(opt.counts);
        if (!have) {
            std::printf("  skipped: %s not found (Debian: r-cran-seurat)\n", opt.counts.c_str());
        } else if (labels.empty()) {
            labels = (fs::path(opt.out) / "pbmc_small_labels_export.tsv").string();
            const fs::path script = fs::path(DIFFBIO_SOURCE_DIR) / "scripts" / "export_pbmc_small_labels.R";
            const std::string cmd = "Rscript '" + script.string() + "' '" + labels + "' > '" + opt.out + "/export_labels.log' 2>&1";
            if (run_command(cmd) != 0) {
                std::printf("  skipped: exporting Idents(pbmc_small) failed (%s; Debian: r-cran-seurat r-cran-seuratobject)\n",
                            cmd.c_str());
                have = false;
            } else {
                std::printf("  labels: Idents(pbmc_small) exported by %s to %s\n", script.string().c_str(), labels.c_str());
            }
        }
        if (have) {
            const auto t = Clock::now();
            LabelledCounts data = attach_labels(diffbio::io::read_dense_counts(opt.counts), labels);
            data.name = "pbmc_small";
            std::vector<std::pair<std::string, double>> times{{"read counts + labels", seconds_since(t)}};
            std::printf("  read %zu cells x %zu genes, %zu labels:", data.counts.n_cells(), data.counts.n_genes(),
                        data.label_names.size());
            std::vector<std::size_t> sizes(data.label_names.size(), 0);
            for (int c : data.truth) ++sizes[static_cast<std::size_t>(c)];
            for (std::size_t l = 0; l < sizes.size(); ++l) std::printf(" '%s' %zu", data.label_names[l].c_str(), sizes[l]);
            std::printf("\n");
            const Prepared p = cluster_and_report("pbmc_small", data, opt, check, times, nullptr);
            if (opt.steps > 0 && opt.splits > 0) {
                learned_features_report("pbmc_small", p, p.x, p.n, data.truth, data.label_names.size(), opt.splits, opt, check);
            }
            if (opt.plots) figures.push_back("pbmc_small");
        }
    }

    // ---- 2. simulation ----------------------------------------------------------------------------
    if (opt.sim) {
        diffbio::CountSimulationConfig cfg;
        cfg.n_cells = opt.cells;
        cfg.n_genes = opt.genes;
        cfg.n_clusters = opt.clusters;
        cfg.de_prob = opt.de_prob;
        cfg.de_log_fold = opt.de_fold;
        cfg.de_log_fold_sd = 0.2 * opt.de_fold;
        cfg.library_size = 3000.0;
        cfg.dispersion = 0.2;
        cfg.seed = opt.seed + 7;
        cfg.threads = opt.threads;
        std::printf("\n== simulation: %zu cells x %zu genes, %zu clusters (marker genes %.0f%%, |log fold| %.2f), "
                    "NB dispersion %.2f, %.0f UMIs per cell, seed %llu\n",
                    cfg.n_cells, cfg.n_genes, cfg.n_clusters, 100.0 * cfg.de_prob, cfg.de_log_fold, cfg.dispersion, cfg.library_size,
                    static_cast<unsigned long long>(cfg.seed));
        const auto t = Clock::now();
        diffbio::SimulatedCounts sim = diffbio::simulate_counts(cfg);
        std::vector<std::pair<std::string, double>> times{{"simulate_counts", seconds_since(t)}};
        LabelledCounts data;
        data.name = "simulation";
        data.counts = std::move(sim.counts);
        data.truth = sim.cluster;
        std::vector<int> present(cfg.n_clusters, 0);
        for (int c : data.truth) present[static_cast<std::size_t>(c)] = 1;
        // Codes of the clusters that occur, in order (a tiny simulation may miss one).
        std::vector<int> code(cfg.n_clusters, -1);
        for (std::size_t k = 0; k < cfg.n_clusters; ++k) {
            if (present[k]) {
                code[k] = static_cast<int>(data.label_names.size());
                data.label_names.push_back("cluster" + std::to_string(k));
            }
        }
        for (int& c : data.truth) c = code[static_cast<std::size_t>(c)];
        std::printf("  %zu non-zero counts (%.1f%% dense)\n", data.counts.nnz(),
                    100.0 * static_cast<double>(data.counts.nnz()) / (static_cast<double>(cfg.n_cells) * static_cast<double>(cfg.n_genes)));
        const Prepared p = cluster_and_report("simulation", data, opt, check, times, &sim_ari);
        if (opt.steps > 0 && opt.sim_splits > 0) {
            const std::size_t m = std::min(opt.learn_cells, p.n);
            // Cells are i.i.d. in the simulation: the first m are a random sample of them.
            const std::vector<int> truth_m(data.truth.begin(), data.truth.begin() + static_cast<std::ptrdiff_t>(m));
            learned_features_report("simulation", p, std::span<const double>(p.x.data(), m * p.genes), m, truth_m,
                                    data.label_names.size(), opt.sim_splits, opt, check);
        }
        if (opt.plots) figures.push_back("simulation");
        check.require(sim_ari >= opt.min_ari, "simulation: soft k-means ARI " + std::to_string(sim_ari) + " < --min-ari " +
                                                  std::to_string(opt.min_ari));
    }

    // ---- 4. figures ---------------------------------------------------------------------------------
    std::printf("\ntables written to %s/\n", opt.out.c_str());
    for (const std::string& tag : figures) {
        const std::string cmd = "/usr/bin/python3 '" + plot_script.string() + "' '" + opt.out + "' " + tag;
        if (run_command(cmd) != 0) {
            std::fprintf(stderr, "plots: %s failed (is python3-matplotlib installed?)\n", cmd.c_str());
        }
    }

    if (opt.check) {
        for (const std::string& f : check.failures) std::printf("check failed: %s\n", f.c_str());
        std::printf("%s\n", check.ok ? "check: OK" : "check: FAILED");
        return check.ok ? 0 : 1;
    }
    return 0;
} catch (const diffbio::Error& e) {
    std::fprintf(stderr, "single_cell_clustering: %s\n", e.what());
    return 1;
}
