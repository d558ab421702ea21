// Lloyd's k-means (the τ → 0 limit of SoftKMeans) against scikit-learn on simulated single-cell
// data: counts from simulate_counts go through normalize_total, log1p, HVG selection and PCA; we
// pick initial centroids with our seeded k-means++, write points and centroids to a scratch
// file, and /usr/bin/python3 (Debian's python3-sklearn) runs
// KMeans(init=centroids, n_init=1, algorithm="lloyd") from the same centroids. Labels must be
// identical, the inertia equal to 1e-6 relative, and the number of iterations the same.
// WARNs and passes when /usr/bin/python3 cannot import sklearn.

#include <catch2/catch.hpp>

#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "python_peer.hpp"

#include <diffbio/core/simulate_counts.hpp>
#include <diffbio/ops/singlecell/normalize.hpp>
#include <diffbio/ops/singlecell/pca.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

using namespace diffbio;

namespace {

// Blocks "C n F K max_iter", then a line of n·F points and a line of K·F centroids; prints per
// block a line of labels, then inertia and n_iter_ on the next line.
constexpr const char* script = R"(import sys
import numpy as np
from sklearn.cluster import KMeans
lines = open(sys.argv[1]).read().split("\n")
i = 0
while i < len(lines):
    head = lines[i].split()
    if not head:
        i += 1
        continue
    n, f, k, max_iter = int(head[1]), int(head[2]), int(head[3]), int(head[4])
    x = np.array([float(v) for v in lines[i + 1].split()], dtype=np.float64).reshape(n, f)
    c = np.array([float(v) for v in lines[i + 2].split()], dtype=np.float64).reshape(k, f)
    km = KMeans(n_clusters=k, init=c, n_init=1, algorithm="lloyd", max_iter=max_iter, tol=1e-4).fit(x)
    print(" ".join(str(int(v)) for v in km.labels_))
    print(repr(float(km.inertia_)), int(km.n_iter_))
    i += 3
)";

/// simulate -> normalise -> log1p -> HVG -> PCA scores [n × n_pcs].
std::vector<double> pca_of_simulation(std::size_t cells, std::size_t clusters, std::uint64_t seed, std::size_t n_pcs, double fold) {
    CountSimulationConfig sc;
    sc.n_cells = cells;
    sc.n_genes = 1000;
    sc.n_clusters = clusters;
    sc.n_batches = 2;
    sc.seed = seed;
    sc.de_log_fold = fold;
    const auto sim = simulate_counts(sc);
    const CountMatrix logn = ops::log1p_transform(ops::normalize_total(sim.counts, 1e4));
    const auto hvg = ops::highly_variable_genes(logn, {.n_top = 300});
    const auto dense = ops::dense_columns(logn, hvg.selected);
    return ops::pca_fit(dense, cells, hvg.selected.size(), {.n_components = n_pcs}).scores;
}

struct Case {
    std::vector<double> x, init;
    std::size_t n, F, K, max_iter;
};

} // namespace

TEST_CASE("Lloyd from k-means++ centroids equals scikit-learn's KMeans on simulated cells", "[ops][soft-kmeans][sklearn]") {
    if (!diffbio::test::python_can_import("sklearn.cluster")) return;
    std::vector<Case> cases;
    auto add = [&](std::size_t cells, std::size_t clusters, std::uint64_t sim_seed, std::size_t F, std::size_t K, std::uint64_t init_seed,
                   std::size_t max_iter, double fold) {
        Case c{pca_of_simulation(cells, clusters, sim_seed, F, fold), {}, cells, F, K, max_iter};
        c.init = ops::kmeans_plusplus(c.x, cells, F, K, init_seed);
        cases.push_back(std::move(c));
    };
    // (cells, true clusters, simulation seed, PCs, K, k-means++ seed, max_iter, DE log-fold)
    add(1500, 6, 1, 20, 6, 11, 300, 1.5);  // distinct clusters: few iterations
    add(1200, 5, 2, 15, 9, 12, 300, 0.4);  // weak clusters, more centroids: many iterations
    add(800, 4, 3, 10, 3, 13, 300, 0.3);   // fewer centroids than clusters
    add(1200, 5, 2, 15, 9, 12, 3, 0.4);    // stopped by max_iter: the final relabelling step
    add(2000, 8, 4, 30, 8, 14, 300, 0.5);

    std::ostringstream in;
    in << std::setprecision(17);
    for (const Case& c : cases) {
        in << "C " << c.n << ' ' << c.F << ' ' << c.K << ' ' << c.max_iter << '\n';
        diffbio::test::write_line(in, c.x);
        diffbio::test::write_line(in, c.init);
    }
    const diffbio::test::PythonRun run = diffbio::test::run_python(script, in.str(), "kmeans_sklearn");
    std::istringstream all(run.output);
    const int rc = run.status;
    INFO("python output:\n" << run.output);
    REQUIRE(rc == 0);

    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const Case& c = cases[ci];
        std::string label_line, stats_line;
        REQUIRE(std::getline(all, label_line));
        REQUIRE(std::getline(all, stats_line));
        std::istringstream ls(label_line), ss(stats_line);
        std::vector<int> sk_labels;
        for (int v; ls >> v;) sk_labels.push_back(v);
        double sk_inertia = 0.0;
        std::size_t sk_iter = 0;
        ss >> sk_inertia >> sk_iter;
        const auto ours = ops::lloyd(c.x, c.n, c.init, c.K, {.max_iter = c.max_iter, .tol = 1e-4});
        INFO("case " << ci << ": K = " << c.K << ", n = " << c.n << ", ours " << ours.iterations << " iterations, inertia "
                     << ours.inertia << "; sklearn " << sk_iter << " iterations, inertia " << sk_inertia);
        REQUIRE(sk_labels.size() == c.n);
        std::size_t differ = 0;
        for (std::size_t i = 0; i < c.n; ++i) differ += sk_labels[i] != ours.labels[i] ? 1 : 0;
        CHECK(differ == 0);
        CHECK(ours.inertia == Approx(sk_inertia).epsilon(1e-6));
        CHECK(ours.iterations == sk_iter);
        // the SoftKMeans operator's hard labels of the final centroids are Lloyd's labels
        ops::SoftKMeans km({.n_clusters = c.K, .n_features = c.F});
        km.set_centroids(ours.centroids);
        CHECK(km.predict(c.x, c.n) == ours.labels);
    }
}
