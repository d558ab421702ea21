// bench_sw_peer: forward and forward+backward time of ops::SmithWaterman on a batch of DNA pairs
// from a file, the C++ side of benchmarks/peers/jax_sw.sh (the JAX side is jax_sw.py, which also
// writes the file: one pair per line, "<query> <target>", letters ACGT).
//
//   bench_sw_peer --data FILE [--reps N] [--threads T] [--variants compat,linear,affine]
//
// Config (as on the JAX side): DNA matrix match 2 / mismatch −1, local, τ = 1, GapOpen{10},
// GapExtend{1} (parasail's convention). Variants: "compat" = diffbio_compat (DiffBio's linear gap
// of open + extend = 11 per position and its hard max over cells), "linear" (1 per gap position),
// "affine" (10 + (k − 1) for a gap of length k). Loss = Σ of the pair scores.
// Entry points timed (T = 1: exec::Cpu; otherwise exec::CpuParallel{T}):
//   forward_f32   SmithWaterman::apply with ad::Binder<float>   (scores in float)
//   forward_f64   SmithWaterman::apply with ad::Binder<double>
//   tape          Binder<ad::Var> on a rewound tape: apply + sum + Tape::backward + accumulate_grad
//                 (gradient w.r.t. the matrix, open and extend)
//   vag_f32/_f64  SmithWaterman::value_and_grad<F>(pairs, weights, options, policy), the non-tape
//                 entry point, when the header has it (detected at compile time; rows absent
//                 otherwise)
// Each is run once to warm up, then N times (default 10); one line each:
//   <variant> <entry> threads=<T> median_ms=<..> min_ms=<..> loss=<..> cells_per_s=<..>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/scoring.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>

namespace ad = diffbio::ad;
namespace exec = diffbio::exec;
namespace ops = diffbio::ops;

namespace {

struct Batch {
    std::vector<std::vector<std::uint8_t>> seqs;
    std::vector<ops::CodePair> pairs;
    double cells = 0.0;
};

Batch read_pairs(const std::string& path, const ops::SubstitutionMatrix& S) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    Batch b;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string q, t;
        if (!(ls >> q)) continue;
        if (!(ls >> t)) throw std::runtime_error("a line of " + path + " holds one sequence, expected two");
        b.seqs.push_back(S.encode(q));
        b.seqs.push_back(S.encode(t));
        b.cells += static_cast<double>(q.size()) * static_cast<double>(t.size());
    }
    if (b.seqs.empty()) throw std::runtime_error("no pairs in " + path);
    for (std::size_t k = 0; k < b.seqs.size(); k += 2) b.pairs.push_back({b.seqs[k], b.seqs[k + 1]});
    return b;
}

struct Timing {
    double median_ms, min_ms, loss;
};

template <class F>
Timing time_it(int reps, F&& f) {
    double loss = f(); // warm-up
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        loss = f();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t m = ms.size() / 2;
    return {ms.size() % 2 ? ms[m] : 0.5 * (ms[m - 1] + ms[m]), ms.front(), loss};
}

void print(const char* variant, const char* entry, int threads, const Timing& t, double cells,
           const std::string& extra = "") {
    std::printf("%s %s threads=%d median_ms=%.4f min_ms=%.4f loss=%.9g cells_per_s=%.4g%s\n", variant, entry, threads,
                t.median_ms, t.min_ms, t.loss, cells / (t.median_ms * 1e-3), extra.c_str());
    std::fflush(stdout);
}

template <class T>
double sum_of(const std::vector<T>& v) {
    double s = 0.0;
    for (const T& x : v) s += static_cast<double>(x);
    return s;
}

/// The loss out of value_and_grad's result, whatever its exact shape (a struct with a `value` or
/// `score(s)` member, a pair, or a plain number).
template <class R>
double loss_of_result(const R& r) {
    if constexpr (requires { r.value; }) {
        if constexpr (requires { sum_of(r.value); }) return sum_of(r.value);
        else return static_cast<double>(r.value);
    } else if constexpr (requires { r.scores; }) {
        return sum_of(r.scores);
    } else if constexpr (requires { r.score; }) {
        if constexpr (requires { sum_of(r.score); }) return sum_of(r.score);
        else return static_cast<double>(r.score);
    } else if constexpr (requires { r.first; }) {
        if constexpr (requires { sum_of(r.first); }) return sum_of(r.first);
        else return static_cast<double>(r.first);
    } else if constexpr (std::is_arithmetic_v<R>) {
        return static_cast<double>(r);
    } else {
        return 0.0; // unknown shape: timed, loss not shown
    }
}

/// value_and_grad<F>(pairs, weights, options, policy) rows when SmithWaterman has that entry point.
template <class F, class SW, class P>
void vag_row(const SW& sw, const Batch& b, const P& policy, int threads, int reps, const char* variant,
             const char* entry) {
    const std::vector<F> weights(b.pairs.size(), F(1));
    if constexpr (requires { sw.template value_and_grad<F>(b.pairs, weights, diffbio::ops::SwGradOptions{}, policy); }) {
        const Timing t = time_it(reps, [&] {
            return loss_of_result(sw.template value_and_grad<F>(b.pairs, weights, diffbio::ops::SwGradOptions{}, policy));
        });
        print(variant, entry, threads, t, b.cells);
    } else if constexpr (requires { SW::template value_and_grad<F>(b.pairs, weights, diffbio::ops::SwGradOptions{}, policy); }) {
        const Timing t = time_it(reps, [&] {
            return loss_of_result(SW::template value_and_grad<F>(b.pairs, weights, diffbio::ops::SwGradOptions{}, policy));
        });
        print(variant, entry, threads, t, b.cells);
    } else {
        (void)sw, (void)b, (void)policy, (void)threads, (void)reps;
        std::fprintf(stderr, "bench_sw_peer: %s %s: SmithWaterman::value_and_grad<%s>(pairs, weights, options, policy) "
                             "is not available, row skipped\n", variant, entry, std::is_same_v<F, float> ? "float" : "double");
    }
}

/// " dS_sum=.. dopen=.. dextend=.." of the accumulated parameter gradients.
std::string grads_of(ops::SmithWaterman& model) {
    double dS = 0.0;
    for (const double g : model.substitution().grad()) dS += g;
    char buf[160];
    std::snprintf(buf, sizeof buf, " dS_sum=%.9g dopen=%.9g dextend=%.9g", dS, model.gap_open().grad()[0],
                  model.gap_extend().grad()[0]);
    return buf;
}

template <class P>
void run(const Batch& b, const ops::SmithWaterman& sw, const char* variant, const P& policy, int threads, int reps) {
    print(variant, "forward_f32", threads, time_it(reps, [&] {
              ad::Binder<float> bind;
              return sum_of(sw.apply(bind, b.pairs, {}, policy).score);
          }),
          b.cells);
    print(variant, "forward_f64", threads, time_it(reps, [&] {
              ad::Binder<double> bind;
              return sum_of(sw.apply(bind, b.pairs, {}, policy).score);
          }),
          b.cells);
    ops::SmithWaterman model = sw; // parameters whose gradients are accumulated
    const std::vector<double> ones(b.pairs.size(), 1.0);
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    const Timing tape_t = time_it(reps, [&] {
        tape.rewind(start);
        for (ad::Parameter* p : model.parameters()) p->zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const std::vector<ad::Var> s = model.apply(bind, b.pairs, {}, policy).score;
        double value = 0.0;
        for (const ad::Var& v : s) value += v.value();
        const ad::Var loss = tape.push_nary(value, std::span<const ad::Var>(s), ones);
        tape.backward(loss);
        bind.accumulate_grad();
        return loss.value();
    });
    print(variant, "tape", threads, tape_t, b.cells, grads_of(model));
    vag_row<float>(sw, b, policy, threads, reps, variant, "vag_f32");
    vag_row<double>(sw, b, policy, threads, reps, variant, "vag_f64");
}

} // namespace

int main(int argc, char** argv) {
    std::string data, variants = "compat,linear,affine";
    int reps = 10, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--data") data = argv[i + 1];
        else if (a == "--reps") reps = std::atoi(argv[i + 1]);
        else if (a == "--threads") threads = std::atoi(argv[i + 1]);
        else if (a == "--variants") variants = argv[i + 1];
        else {
            std::fprintf(stderr, "bench_sw_peer: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (data.empty() || reps < 1 || threads < 1) {
        std::fprintf(stderr, "usage: bench_sw_peer --data FILE [--reps N] [--threads T] [--variants compat,linear,affine]\n");
        return 2;
    }
    try {
        const ops::SubstitutionMatrix S = ops::SubstitutionMatrix::dna(2.0, -1.0);
        const Batch b = read_pairs(data, S);
        std::printf("pairs=%zu cells=%.0f\n", b.pairs.size(), b.cells);
        const ops::SmithWatermanConfig base{.mode = ops::AlignmentMode::Local,
                                            .gap_open = ops::GapOpen{10.0},
                                            .gap_extend = ops::GapExtend{1.0},
                                            .temperature = 1.0};
        std::stringstream vs(variants);
        std::string v;
        while (std::getline(vs, v, ',')) {
            ops::SmithWatermanConfig cfg = base;
            if (v == "compat") {
                cfg.gaps = ops::GapModel::Linear;
                cfg.diffbio_compat = true;
            } else if (v == "linear") {
                cfg.gaps = ops::GapModel::Linear;
            } else if (v == "affine") {
                cfg.gaps = ops::GapModel::Affine;
            } else {
                std::fprintf(stderr, "bench_sw_peer: unknown variant '%s' (compat, linear, affine)\n", v.c_str());
                return 2;
            }
            const ops::SmithWaterman sw(cfg, S);
            if (threads == 1) run(b, sw, v.c_str(), exec::Cpu{}, 1, reps);
            else run(b, sw, v.c_str(), exec::CpuParallel{threads}, threads, reps);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_sw_peer: %s\n", e.what());
        return 1;
    }
    return 0;
}
