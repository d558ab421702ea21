// ARI, NMI and silhouette against scikit-learn on the same labels and points: the labelings and
// coordinates are written to a scratch file, /usr/bin/python3 (Debian's python3-sklearn) computes
// adjusted_rand_score, normalized_mutual_info_score and silhouette_score, and we compare each
// number. WARNs and passes when /usr/bin/python3 cannot import sklearn.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "python_peer.hpp"

#include <diffbio/metrics/ari.hpp>
#include <diffbio/metrics/nmi.hpp>
#include <diffbio/metrics/silhouette.hpp>

namespace m = diffbio::metrics;

namespace {

// Reads blocks "L <n>" (two labelings follow, one per line) and "S <n> <d>" (a labeling, then n·d
// coordinates); prints ARI and NMI for L, the silhouette for S, one per line, full precision.
constexpr const char* script = R"(import sys
import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
lines = open(sys.argv[1]).read().split("\n")
i = 0
while i < len(lines):
    head = lines[i].split()
    if not head:
        i += 1
        continue
    if head[0] == "L":
        a = [int(v) for v in lines[i + 1].split()]
        b = [int(v) for v in lines[i + 2].split()]
        print(repr(float(adjusted_rand_score(a, b))))
        print(repr(float(normalized_mutual_info_score(a, b))))
        i += 3
    else:
        n, d = int(head[1]), int(head[2])
        lab = [int(v) for v in lines[i + 1].split()]
        x = np.array([float(v) for v in lines[i + 2].split()]).reshape(n, d)
        print(repr(float(silhouette_score(x, lab, metric="euclidean"))))
        i += 3
)";

struct Lcg {
    std::uint64_t s;
    double next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(s >> 11) * 0x1.0p-53;
    }
    int below(int k) { return static_cast<int>(next() * k); }
};

struct LabelCase {
    std::vector<int> a, b;
};
struct SilCase {
    std::vector<int> labels;
    std::vector<double> x;
    std::size_t dim;
};

} // namespace

TEST_CASE("ARI, NMI and silhouette equal scikit-learn's on the same labels", "[metrics][sklearn]") {
    if (!diffbio::test::python_can_import("sklearn")) return;
    Lcg rng{2024};
    std::vector<LabelCase> lc;
    auto random_case = [&](int n, int ka, int kb, int offset) {
        LabelCase c;
        for (int i = 0; i < n; ++i) {
            c.a.push_back(rng.below(ka) - offset);
            c.b.push_back(rng.below(kb) * 3);
        }
        lc.push_back(c);
    };
    random_case(50, 3, 4, 0);
    random_case(200, 10, 7, 5);
    random_case(1000, 2, 2, 0);
    random_case(500, 50, 3, 0);
    {
        LabelCase c; // a noisy copy: 25% of the labels redrawn
        for (int i = 0; i < 1000; ++i) {
            c.a.push_back(rng.below(8));
            c.b.push_back(rng.next() < 0.25 ? rng.below(8) : c.a.back());
        }
        lc.push_back(c);
    }
    {
        LabelCase c; // all singletons vs 5 clusters
        for (int i = 0; i < 300; ++i) {
            c.a.push_back(i);
            c.b.push_back(i % 5);
        }
        lc.push_back(c);
    }

    std::vector<SilCase> sc;
    auto blobs = [&](int n, std::size_t dim, int k, double noise_share) {
        SilCase c;
        c.dim = dim;
        for (int i = 0; i < n; ++i) {
            const int t = i % k;
            for (std::size_t j = 0; j < dim; ++j) c.x.push_back(3.0 * t * (j == 0 ? 1.0 : 0.5) + rng.next() * 2.0);
            c.labels.push_back(rng.next() < noise_share ? rng.below(k) : t);
        }
        sc.push_back(c);
    };
    blobs(150, 4, 3, 0.0);
    blobs(200, 2, 5, 0.3);
    blobs(61, 3, 2, 0.5);
    sc.back().labels.back() = 9; // a singleton cluster

    std::ostringstream out;
    out << std::setprecision(17);
    for (const auto& c : lc) {
        out << "L " << c.a.size() << '\n';
        diffbio::test::write_line(out, c.a);
        diffbio::test::write_line(out, c.b);
    }
    for (const auto& c : sc) {
        out << "S " << c.labels.size() << ' ' << c.dim << '\n';
        diffbio::test::write_line(out, c.labels);
        diffbio::test::write_line(out, c.x);
    }
    const diffbio::test::PythonRun run = diffbio::test::run_python(script, out.str(), "metrics_sklearn");
    INFO("python output:\n" << run.output);
    REQUIRE(run.status == 0);
    std::vector<double> sk;
    std::istringstream lines(run.output);
    for (std::string line; std::getline(lines, line);) sk.push_back(std::strtod(line.c_str(), nullptr));
    REQUIRE(sk.size() == 2 * lc.size() + sc.size());

    std::size_t at = 0;
    for (std::size_t i = 0; i < lc.size(); ++i) {
        const double ari = m::adjusted_rand_index(lc[i].a, lc[i].b);
        const double nmi = m::normalized_mutual_information(lc[i].a, lc[i].b);
        INFO("label case " << i << std::setprecision(17) << ": ARI " << ari << " vs sklearn " << sk[at] << ", NMI " << nmi
                           << " vs sklearn " << sk[at + 1]);
        CHECK(ari == Approx(sk[at]).epsilon(1e-12).margin(1e-15));
        CHECK(nmi == Approx(sk[at + 1]).epsilon(1e-12).margin(1e-15));
        at += 2;
    }
    for (std::size_t i = 0; i < sc.size(); ++i) {
        const double s = m::silhouette_score(std::span<const double>(sc[i].x), sc[i].dim, sc[i].labels);
        INFO("silhouette case " << i << std::setprecision(17) << ": " << s << " vs sklearn " << sk[at]);
        CHECK(s == Approx(sk[at]).epsilon(1e-12).margin(1e-15));
        ++at;
    }
}
