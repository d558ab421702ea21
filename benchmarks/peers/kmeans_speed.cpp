// kmeans_speed: the diffbio side of benchmarks/peers/kmeans_speed.sh. Reads the points and the
// initial centroids that kmeans_speed.py make-data wrote, and times one k-means step on them.
//
//   kmeans_speed --data FILE [--reps N] [--threads T] [--tau TAU] [--labels FILE] [--tape-max-gb G]
//
// T = 1: exec::Cpu, else exec::CpuParallel{T}. Entries (each one untimed warm-up call, then N
// timed calls, default 5; times are wall seconds):
//   lloyd_max_iter_1   ops::lloyd(x, n, init, K, {.max_iter = 1, .tol = 0}): what scikit-learn's
//                      fit(max_iter=1) computes (the tolerance's feature variances, one Lloyd
//                      iteration (labels + centroid means), the final relabelling with the new
//                      centroids, the inertia). --labels: scikit-learn's labels of the same fit
//                      (int32); the line then says how many of ours differ.
//   hard_assign        ops::hard_assign: one labelling pass (nearest centroid of every point)
//   soft_fwd_f64       ops::soft_assign in double (no tape): r [n × K] at τ and the labels
//   soft_fwd_f64_into  ops::soft_assign_into: the same into a buffer kept across calls (no
//                      allocation: what a training loop does; fresh gigabyte outputs cost page
//                      faults, which dominate on virtual machines)
//   soft_fwd_f32       the same in float (points and centroids converted beforehand, untimed)
//   soft_fwd_f32_into  soft_assign_into in float
//   soft_fwdbwd_tape   the training case on a rewound ad::Tape: constant points (double), Var
//                      centroids and τ; r = soft_assign(...), loss = Σ w_ik r_ik (one
//                      Tape::weighted_sum node), Tape::backward, the centroid adjoints read out.
//                      Skipped when its memory (≈ 40 bytes per entry of r) exceeds --tape-max-gb
//                      (default 8).
//   soft_fwdbwd_tape_into  the same with soft_assign_into(..., std::span<ad::Var>): the n × K
//                      handles go into a vector kept across steps (what a training loop does)
//   soft_fwdbwd_node   the fused node's own work, without the tape's bookkeeping: the forward
//                      kernel (r) and the backward kernel (∂/∂centroids and ∂/∂τ given ∂L/∂r = w),
//                      into preallocated buffers.
// One line per entry:
//   <entry> threads=<T> median_s=<..> min_s=<..> points_per_s=<..> [check=<..>]
// check: the inertia (lloyd), Σ labels (hard_assign), Σ r_i0 (soft), Σ ∂L/∂μ + ∂L/∂τ (fwdbwd).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

namespace ad = diffbio::ad;
namespace exec = diffbio::exec;
namespace ops = diffbio::ops;

namespace {

struct Data {
    std::int64_t n = 0, F = 0, K = 0;
    std::vector<double> x, mu;
};

Data read_data(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    char magic[8];
    in.read(magic, 8);
    if (!in || std::memcmp(magic, "DBKMEANS", 8) != 0) throw std::runtime_error(path + ": not a kmeans_speed data file");
    Data d;
    in.read(reinterpret_cast<char*>(&d.n), 8);
    in.read(reinterpret_cast<char*>(&d.F), 8);
    in.read(reinterpret_cast<char*>(&d.K), 8);
    d.x.resize(static_cast<std::size_t>(d.n * d.F));
    d.mu.resize(static_cast<std::size_t>(d.K * d.F));
    in.read(reinterpret_cast<char*>(d.x.data()), static_cast<std::streamsize>(d.x.size() * sizeof(double)));
    in.read(reinterpret_cast<char*>(d.mu.data()), static_cast<std::streamsize>(d.mu.size() * sizeof(double)));
    if (!in) throw std::runtime_error(path + ": truncated");
    return d;
}

struct Timing {
    double median_s, min_s, check;
};

Timing time_it(int reps, const std::function<double()>& f) {
    double check = f(); // warm-up
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        check = f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return {t[(t.size() - 1) / 2], t.front(), check};
}

void report(const char* entry, int threads, std::size_t n, const Timing& t, const std::string& extra = "") {
    std::printf("%s threads=%d median_s=%.6f min_s=%.6f points_per_s=%.5g check=%.12g%s\n", entry, threads, t.median_s, t.min_s,
                static_cast<double>(n) / t.median_s, t.check, extra.c_str());
    std::fflush(stdout);
}

template <class P>
void run_all(const P& policy, int threads, const Data& d, int reps, double tau, const std::string& labels_path, double tape_max_gb) {
    const auto n = static_cast<std::size_t>(d.n), F = static_cast<std::size_t>(d.F), K = static_cast<std::size_t>(d.K);
    const std::span<const double> x(d.x), mu(d.mu);

    std::vector<int> last_labels;
    const Timing tl = time_it(reps, [&] {
        auto r = ops::lloyd(x, n, mu, K, {.max_iter = 1, .tol = 0.0}, policy);
        last_labels = std::move(r.labels);
        return r.inertia;
    });
    std::string extra;
    if (!labels_path.empty()) {
        std::vector<std::int32_t> sk(n);
        std::ifstream in(labels_path, std::ios::binary);
        in.read(reinterpret_cast<char*>(sk.data()), static_cast<std::streamsize>(n * sizeof(std::int32_t)));
        if (!in) throw std::runtime_error(labels_path + ": cannot read " + std::to_string(n) + " labels");
        std::size_t differ = 0;
        for (std::size_t i = 0; i < n; ++i) differ += sk[i] != last_labels[i] ? 1 : 0;
        extra = " labels_differing_from_sklearn=" + std::to_string(differ);
    }
    report("lloyd_max_iter_1", threads, n, tl, extra);

    report("hard_assign", threads, n, time_it(reps, [&] {
               const auto l = ops::hard_assign(x, n, mu, K, policy);
               double s = 0.0;
               for (const int v : l) s += v;
               return s;
           }));

    report("soft_fwd_f64", threads, n, time_it(reps, [&] {
               const auto r = ops::soft_assign(policy, x, n, mu, K, tau);
               double s = 0.0;
               for (std::size_t i = 0; i < n; ++i) s += r[i * K];
               return s;
           }));

    {
        std::vector<double> out(n * K);
        report("soft_fwd_f64_into", threads, n, time_it(reps, [&] {
                   ops::soft_assign_into(policy, x, n, mu, K, tau, std::span<double>(out));
                   double s = 0.0;
                   for (std::size_t i = 0; i < n; ++i) s += out[i * K];
                   return s;
               }));
    }

    {
        const std::vector<float> xf(d.x.begin(), d.x.end()), mf(d.mu.begin(), d.mu.end());
        report("soft_fwd_f32", threads, n, time_it(reps, [&] {
                   const auto r = ops::soft_assign(policy, std::span<const float>(xf), n, std::span<const float>(mf), K, static_cast<float>(tau));
                   double s = 0.0;
                   for (std::size_t i = 0; i < n; ++i) s += r[i * K];
                   return s;
               }));
        std::vector<float> out(n * K);
        report("soft_fwd_f32_into", threads, n, time_it(reps, [&] {
                   ops::soft_assign_into(policy, std::span<const float>(xf), n, std::span<const float>(mf), K, static_cast<float>(tau),
                                         std::span<float>(out));
                   double s = 0.0;
                   for (std::size_t i = 0; i < n; ++i) s += out[i * K];
                   return s;
               }));
    }

    // ∂L/∂r = w: a fixed pattern in [-1, 1]
    std::vector<double> w(n * K);
    for (std::size_t j = 0; j < w.size(); ++j) w[j] = static_cast<double>(static_cast<int>((j * 2654435761ULL) % 2001) - 1000) * 1e-3;

    const double tape_gb = 40.0 * static_cast<double>(n * K) / 1e9;
    if (tape_gb <= tape_max_gb) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto start = tape.mark();
        std::vector<double> gm(mu.size());
        std::vector<ad::Var> r_kept; // soft_fwdbwd_tape_into's buffer
        for (const bool into : {false, true}) {
            if (into) r_kept.resize(n * K);
            report(into ? "soft_fwdbwd_tape_into" : "soft_fwdbwd_tape", threads, n, time_it(reps, [&] {
                       tape.rewind(start);
                       const auto mv = tape.variables(mu);
                       const ad::Var t = tape.variable(tau);
                       std::vector<ad::Var> r_fresh;
                       if (into) {
                           ops::soft_assign_into(policy, x, n, std::span<const ad::Var>(mv), K, t, std::span<ad::Var>(r_kept));
                       } else {
                           r_fresh = ops::soft_assign(policy, x, n, std::span<const ad::Var>(mv), K, t);
                       }
                       const ad::Var loss = tape.weighted_sum(into ? r_kept : r_fresh, w); // one node, 8 bytes a term
                       tape.backward(loss);
                       tape.adjoints(mv, gm);
                       double s = tape.adjoint(t);
                       for (const double g : gm) s += g;
                       return s;
                   }));
            if (into) std::vector<ad::Var>().swap(r_kept);
        }
    } else {
        for (const char* e : {"soft_fwdbwd_tape", "soft_fwdbwd_tape_into"}) {
            std::printf("%s threads=%d skipped: needs about %.1f GB (> --tape-max-gb %.1f)\n", e, threads, tape_gb, tape_max_gb);
        }
    }

    {
        std::vector<double> p(n * K), gm(mu.size());
        report("soft_fwdbwd_node", threads, n, time_it(reps, [&] {
                   ops::kmeans_detail::forward<double>(policy, x.data(), n, F, mu.data(), K, tau, p.data(), nullptr, nullptr);
                   std::fill(gm.begin(), gm.end(), 0.0);
                   double tb = 0.0;
                   ops::kmeans_detail::backward(policy, x.data(), n, F, mu.data(), K, tau, p.data(), w.data(), nullptr, gm.data(), &tb);
                   double s = tb;
                   for (const double g : gm) s += g;
                   return s;
               }));
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string data, labels;
    int reps = 5, threads = 1;
    double tau = 0.0, tape_max_gb = 8.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--data") data = argv[i + 1];
        else if (a == "--reps") reps = std::atoi(argv[i + 1]);
        else if (a == "--threads") threads = std::atoi(argv[i + 1]);
        else if (a == "--tau") tau = std::atof(argv[i + 1]);
        else if (a == "--labels") labels = argv[i + 1];
        else if (a == "--tape-max-gb") tape_max_gb = std::atof(argv[i + 1]);
        else {
            std::fprintf(stderr, "kmeans_speed: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (data.empty() || reps < 1 || threads < 1) {
        std::fprintf(stderr, "usage: kmeans_speed --data FILE [--reps N] [--threads T] [--tau TAU] [--labels FILE] [--tape-max-gb G]\n");
        return 2;
    }
    try {
        const Data d = read_data(data);
        // default τ: the number of features (the data's noise is N(0, 1) per coordinate, so the
        // squared distances between points of one blob are about 2F: soft, far from one-hot)
        if (tau <= 0.0) tau = static_cast<double>(d.F);
        std::printf("# n=%lld F=%lld K=%lld tau=%g reps=%d\n", static_cast<long long>(d.n), static_cast<long long>(d.F),
                    static_cast<long long>(d.K), tau, reps);
        if (threads == 1) {
            run_all(exec::Cpu{}, 1, d, reps, tau, labels, tape_max_gb);
        } else {
            run_all(exec::CpuParallel{threads}, threads, d, reps, tau, labels, tape_max_gb);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kmeans_speed: %s\n", e.what());
        return 1;
    }
    return 0;
}
