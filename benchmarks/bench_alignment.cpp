// bench_alignment: throughput of the smooth Smith-Waterman kernels in cells per second
// (items_per_second = m·n·pairs), on random DNA pairs (match 2, mismatch −1, GapOpen{3},
// GapExtend{1}, τ = 1, local). Shapes (the /<pairs>/<length> arguments): 1,024 pairs of 150 × 150,
// 64 pairs of 1,000 × 1,000 and a single unbatched 1,000 × 1,000 pair.
//
//   BM_lse4_cell<F>                     the reference rate: τ·logsumexp of 4 candidates per cell, many
//                                       independent cells, packs of sw_simd_lanes<F> with the same
//                                       simd::exp_nonpos/log_normal and max-factored form as the DP
//   BM_naive_reference/<pairs>/<len>    sw_reference<double> (the naive generic recursion), small shape
//   BM_scalar_forward<F, kind>          the scalar per-pair kernel (sw_score), forward only
//   BM_single_pair_wavefront<F, kind>/<len>  the intra-pair wavefront kernel on one len × len pair
//   BM_forward<F, kind>/<pairs>/<len>/<threads>        SmithWaterman::apply with Binder<F> (SIMD)
//   BM_forward_backward<F, kind>/<pairs>/<len>/<threads>  SmithWaterman::value_and_grad<F> (SIMD):
//                                       ∂/∂S, open, extend (τ fixed, its gradient not computed); the
//                                       operator keeps its tables between calls (its default cache)
//   BM_forward_backward_tau<F, kind>    the same with ∂/∂τ too (SwGradOptions::temperature_gradient)
//   BM_forward_backward_ckpt<F, kind>   the same with checkpoint = √m
//   BM_forward_backward_kept<F, kind>   the same with an ops::SwWorkspace kept across iterations
//   BM_forward_backward_fresh<F, kind>  the same without the cache (table_cache_bytes = 0): every
//                                       call allocates its tables and the kernel zeroes their pages
//   BM_parasail_sw_striped_16           parasail's striped 16-bit SW (affine, hard) on the same pairs,
//                                       when compiled with -DDIFFBIO_BENCH_PARASAIL and -lparasail
// threads = 1 runs exec::Cpu, otherwise exec::CpuParallel{threads}.
//
// The CMake build uses the project's flags (baseline x86-64: SSE2, 4 float lanes per register);
// for the machine's full width compile by hand with -march=native (see the report in the PR).

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>
#include <diffbio/ops/alignment/sw_wavefront.hpp>

#if defined(DIFFBIO_BENCH_PARASAIL)
#include <parasail.h>
#endif

namespace ad = diffbio::ad;
namespace ops = diffbio::ops;
namespace exec = diffbio::exec;
namespace simd = diffbio::simd;
using ops::detail::SwKind;

namespace {

struct Batch {
    std::vector<std::vector<std::uint8_t>> q, t;
    std::vector<ops::CodePair> pairs;
    double cells = 0.0;
};

/// `count` pairs of `len` × `len` random DNA codes, the targets 70% identical to their queries
/// (related: each target base is its query's with probability 0.7, else random), or drawn
/// independently of them (unrelated: the kernels' worst case, where no cell's adjoint or end
/// weight underflows to 0 and none can be skipped).
const Batch& batch(std::size_t count, std::size_t len, bool unrelated = false) {
    static std::map<std::tuple<std::size_t, std::size_t, bool>, Batch> cache;
    auto it = cache.find({count, len, unrelated});
    if (it != cache.end()) return it->second;
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> base(0, 3);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Batch b;
    b.q.resize(count);
    b.t.resize(count);
    for (std::size_t k = 0; k < count; ++k) {
        b.q[k].resize(len);
        b.t[k].resize(len);
        for (std::size_t i = 0; i < len; ++i) {
            b.q[k][i] = static_cast<std::uint8_t>(base(rng));
            b.t[k][i] = !unrelated && u(rng) < 0.7 ? b.q[k][i] : static_cast<std::uint8_t>(base(rng));
        }
    }
    for (std::size_t k = 0; k < count; ++k) b.pairs.push_back({b.q[k], b.t[k]});
    b.cells = static_cast<double>(count * len * len);
    return cache.emplace(std::tuple{count, len, unrelated}, std::move(b)).first->second;
}

ops::SmithWaterman aligner(SwKind kind, std::size_t checkpoint = 0, bool keep_tables = true) {
    ops::SmithWatermanConfig cfg;
    cfg.gaps = kind == SwKind::Linear ? ops::GapModel::Linear : ops::GapModel::Affine;
    cfg.gap_open = ops::GapOpen{3.0};
    cfg.gap_extend = ops::GapExtend{1.0};
    cfg.checkpoint = checkpoint;
    if (!keep_tables) cfg.table_cache_bytes = 0;
    return ops::SmithWaterman(cfg, ops::SubstitutionMatrix::dna(2.0, -1.0));
}

template <class Fn>
void with_policy(int threads, Fn&& fn) {
    if (threads <= 1) {
        fn(exec::Cpu{});
    } else {
        fn(exec::CpuParallel{threads});
    }
}

// ---- the reference rate ---------------------------------------------------------------------------

template <class F>
void BM_lse4_cell(benchmark::State& state) {
    constexpr int L = ops::detail::sw_simd_lanes<F>;
    using V = simd::pack<F, L>;
    const std::size_t cells = 1U << 14; // 4 inputs + 1 output: stays in L2
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> u(-20.0, 20.0);
    std::vector<F> in(4 * cells), out(cells);
    for (F& v : in) v = static_cast<F>(u(rng));
    const ops::detail::SwSoft<V> t{V::broadcast(F(1)), V::broadcast(F(1))};
    for (auto _ : state) {
        for (std::size_t c = 0; c < cells; c += L) {
            const V a = V::load(in.data() + c), b = V::load(in.data() + cells + c),
                    d = V::load(in.data() + 2 * cells + c), e = V::load(in.data() + 3 * cells + c);
            ops::detail::sw_vsmax4<false>(a, b, d, e, t).store(out.data() + c);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(cells));
}
BENCHMARK_TEMPLATE(BM_lse4_cell, float);
BENCHMARK_TEMPLATE(BM_lse4_cell, double);

// ---- baselines ------------------------------------------------------------------------------------

void BM_naive_reference(benchmark::State& state) {
    const Batch& b = batch(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
    const ops::SmithWaterman sw = aligner(SwKind::Affine);
    ad::Binder<double> bind;
    for (auto _ : state) {
        double sum = 0.0;
        for (const ops::CodePair& pr : b.pairs) sum += sw.reference(bind, pr).score;
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}
BENCHMARK(BM_naive_reference)->Args({16, 150})->Unit(benchmark::kMillisecond);

template <class F, SwKind Kind>
void BM_scalar_forward(benchmark::State& state) {
    const Batch& b = batch(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
    const ops::SmithWaterman sw = aligner(Kind);
    const std::vector<F> S(sw.substitution().values().begin(), sw.substitution().values().end());
    const ops::detail::SwModel md{Kind, true, false};
    const ops::detail::SwScalars<F> p{F(3), F(1), F(1)};
    std::vector<F> scratch;
    for (auto _ : state) {
        F sum = F(0);
        for (const ops::CodePair& pr : b.pairs) {
            const ops::detail::SwCodeCell<F> cell{S.data(), 4, pr.query.data(), pr.target.data()};
            sum += ops::detail::sw_score<F>(md, p, pr.query.size(), pr.target.size(), cell, scratch);
        }
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}
BENCHMARK_TEMPLATE(BM_scalar_forward, float, SwKind::Linear)->Args({64, 150})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_scalar_forward, float, SwKind::Affine)->Args({64, 150})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_scalar_forward, double, SwKind::Affine)->Args({64, 150})->Unit(benchmark::kMillisecond);

/// The intra-pair wavefront kernel (sw_wavefront.hpp) on one unbatched pair, forward only: the
/// kernel SmithWaterman::apply runs for a lone large pair (BM_forward/1/1000/1 adds the API).
template <class F, SwKind Kind>
void BM_single_pair_wavefront(benchmark::State& state) {
    const Batch& b = batch(1, static_cast<std::size_t>(state.range(0)));
    const ops::SmithWaterman sw = aligner(Kind);
    const std::vector<F> S(sw.substitution().values().begin(), sw.substitution().values().end());
    const ops::detail::SwModel md{Kind, true, false};
    const ops::detail::SwScalars<F> p{F(3), F(1), F(1)};
    ops::detail::SwWaveWork<F> work;
    const ops::CodePair& pr = b.pairs[0];
    for (auto _ : state) {
        const F score = ops::detail::sw_wavefront_score_codes<F>(md, p, S.data(), 4, pr.query.data(), pr.query.size(),
                                                                 pr.target.data(), pr.target.size(), work);
        benchmark::DoNotOptimize(score);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}
BENCHMARK_TEMPLATE(BM_single_pair_wavefront, float, SwKind::Linear)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_single_pair_wavefront, float, SwKind::Affine)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_single_pair_wavefront, double, SwKind::Linear)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_single_pair_wavefront, double, SwKind::Affine)->Arg(1000)->Unit(benchmark::kMillisecond);

/// One unbatched pair of soft profiles (rows of 4 probabilities) as Vars on a tape: the score and
/// the gradients of both profiles (the node's backward: the wavefront for a lone pair), double.
template <SwKind Kind>
void BM_profile_pair_grad(benchmark::State& state) {
    const auto len = static_cast<std::size_t>(state.range(0));
    const ops::SmithWaterman sw = aligner(Kind);
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> u(0.05, 1.0);
    auto profile = [&] {
        std::vector<double> v(len * 4);
        for (std::size_t i = 0; i < len; ++i) {
            double sum = 0.0;
            for (std::size_t a = 0; a < 4; ++a) sum += v[i * 4 + a] = u(rng);
            for (std::size_t a = 0; a < 4; ++a) v[i * 4 + a] /= sum;
        }
        return v;
    };
    const std::vector<double> x = profile(), y = profile();
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<double> bind;
    const auto start = tape.mark();
    for (auto _ : state) {
        tape.rewind(start);
        const std::vector<ops::ProfilePair<ad::Var>> pairs{{tape.variables(x), tape.variables(y)}};
        const auto s = sw.apply(bind, pairs).score;
        tape.backward(s[0]);
        benchmark::DoNotOptimize(tape.adjoint(pairs[0].query[0]));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(len * len));
}
BENCHMARK_TEMPLATE(BM_profile_pair_grad, SwKind::Linear)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_profile_pair_grad, SwKind::Affine)->Arg(1000)->Unit(benchmark::kMillisecond);

// ---- the SIMD kernels through the public API -----------------------------------------------------

template <class F, SwKind Kind, bool Unrelated = false>
void BM_forward(benchmark::State& state) {
    const Batch& b = batch(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)), Unrelated);
    const ops::SmithWaterman sw = aligner(Kind);
    with_policy(static_cast<int>(state.range(2)), [&](const auto& policy) {
        ad::Binder<F> bind;
        for (auto _ : state) {
            const auto r = sw.apply(bind, std::span<const ops::CodePair>(b.pairs), ops::AlignOptions{}, policy);
            benchmark::DoNotOptimize(r.score.data());
        }
    });
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}

/// Kept: the caller's SwWorkspace; Fresh: no table cache (each call allocates and first-touches
/// its tables); neither: the operator's own cache (the default), as in a training loop.
template <class F, SwKind Kind, bool Checkpoint, bool Kept = false, bool Tau = false, bool Fresh = false, bool Unrelated = false>
void BM_forward_backward_impl(benchmark::State& state) {
    const Batch& b = batch(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)), Unrelated);
    const std::size_t k = Checkpoint ? static_cast<std::size_t>(std::sqrt(static_cast<double>(state.range(1)))) : 0;
    const ops::SmithWaterman sw = aligner(Kind, 0, !Fresh);
    const std::vector<double> weights(b.pairs.size(), 1.0);
    ops::SwWorkspace ws;
    with_policy(static_cast<int>(state.range(2)), [&](const auto& policy) {
        for (auto _ : state) {
            const auto r = sw.template value_and_grad<F>(std::span<const ops::CodePair>(b.pairs), std::span<const double>(weights),
                                                         ops::SwGradOptions{k, Kept ? &ws : nullptr, Tau}, policy);
            benchmark::DoNotOptimize(r.substitution.data());
        }
    });
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}
template <class F, SwKind Kind>
void BM_forward_backward(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, false>(state);
}
template <class F, SwKind Kind>
void BM_forward_backward_ckpt(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, true>(state);
}

/// threads = 1: CPU time of this thread (a per-core rate, robust to other load on the machine);
/// the /real rows (threads 1 and 2): wall-clock time, for the CpuParallel speed-up.
void shapes(benchmark::internal::Benchmark* b) {
    b->Args({1024, 150, 1})->Args({64, 1000, 1})->Args({1, 1000, 1})->Unit(benchmark::kMillisecond);
}
void shapes_real(benchmark::internal::Benchmark* b) {
    for (int threads : {1, 2}) b->Args({1024, 150, threads})->Args({64, 1000, threads});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

#define DIFFBIO_BENCH_SW(name, F, kind)                                                                                 \
    BENCHMARK_TEMPLATE(name, F, kind)->Apply(shapes);                                                                   \
    BENCHMARK_TEMPLATE(name, F, kind)->Apply(shapes_real)
DIFFBIO_BENCH_SW(BM_forward, float, SwKind::Linear);
DIFFBIO_BENCH_SW(BM_forward, float, SwKind::Affine);
DIFFBIO_BENCH_SW(BM_forward, double, SwKind::Linear);
DIFFBIO_BENCH_SW(BM_forward, double, SwKind::Affine);
DIFFBIO_BENCH_SW(BM_forward_backward, float, SwKind::Linear);
DIFFBIO_BENCH_SW(BM_forward_backward, float, SwKind::Affine);
DIFFBIO_BENCH_SW(BM_forward_backward, double, SwKind::Linear);
DIFFBIO_BENCH_SW(BM_forward_backward, double, SwKind::Affine);
#undef DIFFBIO_BENCH_SW
void shapes_ckpt(benchmark::internal::Benchmark* b) {
    b->Args({64, 1000, 1})->Args({64, 1000, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
}
template <class F, SwKind Kind>
void BM_forward_backward_kept(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, false, true>(state);
}
template <class F, SwKind Kind>
void BM_forward_backward_fresh(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, false, false, false, true>(state);
}
template <class F, SwKind Kind>
void BM_forward_backward_tau(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, false, false, true>(state);
}
void shapes_tau(benchmark::internal::Benchmark* b) {
    b->Args({1024, 150, 1})->Args({64, 1000, 1})->Unit(benchmark::kMillisecond);
}
/// Unrelated pairs (batch above): forward and forward+backward where nothing can be skipped.
template <class F, SwKind Kind>
void BM_forward_unrelated(benchmark::State& state) {
    BM_forward<F, Kind, true>(state);
}
template <class F, SwKind Kind>
void BM_forward_backward_unrelated(benchmark::State& state) {
    BM_forward_backward_impl<F, Kind, false, false, false, false, true>(state);
}
BENCHMARK_TEMPLATE(BM_forward_unrelated, float, SwKind::Linear)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_unrelated, float, SwKind::Linear)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_unrelated, float, SwKind::Affine)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_tau, float, SwKind::Linear)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_tau, float, SwKind::Affine)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_tau, double, SwKind::Linear)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_tau, double, SwKind::Affine)->Apply(shapes_tau);
BENCHMARK_TEMPLATE(BM_forward_backward_kept, float, SwKind::Linear)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_kept, float, SwKind::Affine)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_fresh, float, SwKind::Linear)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_fresh, float, SwKind::Affine)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_fresh, double, SwKind::Affine)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_ckpt, float, SwKind::Linear)->Apply(shapes_ckpt);
BENCHMARK_TEMPLATE(BM_forward_backward_ckpt, float, SwKind::Affine)->Apply(shapes_ckpt);

#if defined(DIFFBIO_BENCH_PARASAIL)
template <bool Unrelated = false>
void BM_parasail_sw_striped_16(benchmark::State& state) {
    const Batch& b = batch(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)), Unrelated);
    parasail_matrix_t* matrix = parasail_matrix_create("ACGT", 2, -1);
    std::vector<std::string> q, t;
    for (std::size_t k = 0; k < b.pairs.size(); ++k) {
        std::string a, c;
        for (std::uint8_t x : b.q[k]) a.push_back("ACGT"[x]);
        for (std::uint8_t x : b.t[k]) c.push_back("ACGT"[x]);
        q.push_back(a);
        t.push_back(c);
    }
    for (auto _ : state) {
        long sum = 0;
        for (std::size_t k = 0; k < q.size(); ++k) {
            parasail_result_t* r = parasail_sw_striped_16(q[k].c_str(), static_cast<int>(q[k].size()), t[k].c_str(),
                                                          static_cast<int>(t[k].size()), 3, 1, matrix);
            sum += parasail_result_get_score(r);
            parasail_result_free(r);
        }
        benchmark::DoNotOptimize(sum);
    }
    parasail_matrix_free(matrix);
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * b.cells));
}
BENCHMARK_TEMPLATE(BM_parasail_sw_striped_16, false)->Args({1024, 150})->Args({64, 1000})->Args({1, 1000})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_parasail_sw_striped_16, true)->Args({1024, 150})->Args({64, 1000})->Unit(benchmark::kMillisecond);
#endif

} // namespace

BENCHMARK_MAIN();
