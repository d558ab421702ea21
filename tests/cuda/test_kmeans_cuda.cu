// CPU/GPU parity of soft k-means' CUDA backend (ops/singlecell/cuda/soft_kmeans.cuh) in float and
// double: soft assignments and labels, their gradients w.r.t. points, centroids and τ (against
// the CPU Var node), the soft centroid update, one Lloyd iteration and the full Lloyd loop; edge
// cases τ = 1e-4 and 1e4 (finite, rows sum to 1), K = 1 (r = 1, zero gradients), points equal to
// centroids.
//
// Part 1 runs everywhere: the row kernels' bodies (assign_row, backward_row with one lane) on the
// host, with the backend's own GEMM calls (X·Mᵀ, D̄·M, D̄ᵀ·X, Rᵀ·X: transposes and leading
// dimensions) run through a host GEMM with cuBLAS's column-major semantics, against the Cpu
// backend; and the host API's validation. Part 2 needs a GPU (exit 77 without one, after part 1
// passed): everything on the device, including the 32-lane warp reductions, the column sums and
// the Lloyd kernels that part 1 cannot reach.
//
// Tolerances, relative to max(1, |cpu|): double 1e-12 (assignments), 1e-10 (gradients, centroids,
// inertia); float 1e-5 (the project's float bar) on data of unit scale with τ ≥ 0.5, where the
// float rounding of the GEMM-form distances stays far below it, also on the same data moved
// 1e4–1e5 (float) and 1e6–1e9 (double) from the origin (the kernels' centred frame). Labels must
// agree except where the two nearest centroids are within 1e-5 (float) / 1e-12 (double) of each
// other. The host API refuses data whose squared distances would leave the scalar's range.

#include <diffbio/ops/singlecell/cuda/soft_kmeans.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/exec/cuda/error.cuh>

#include "cuda_checks.hpp"
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

namespace {

using namespace diffbio;
namespace kk = ops::cuda::kmeans_kernels;

using cuda_checks::expect;
using cuda_checks::expect_all_close;
using cuda_checks::expect_close;
using cuda_checks::expect_throw;
using cuda_checks::failures;

std::uint64_t rng_state = 99;
double uniform() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(rng_state >> 24) / static_cast<double>(1ULL << 40);
}
double draw_float_exact(double lo, double hi) { return static_cast<double>(static_cast<float>(lo + (hi - lo) * uniform())); }

/// Points [n × F] in [−1, 1] and K centroids: data rows moved by up to 0.3 (exact in float).
struct Problem {
    std::size_t n, F, K;
    std::vector<double> x, mu;
};
Problem random_problem(std::size_t n, std::size_t F, std::size_t K) {
    Problem p{n, F, K, {}, {}};
    for (std::size_t j = 0; j < n * F; ++j) p.x.push_back(draw_float_exact(-1.0, 1.0));
    for (std::size_t k = 0; k < K; ++k) {
        const std::size_t row = (k * 7919) % n;
        for (std::size_t f = 0; f < F; ++f) p.mu.push_back(static_cast<double>(static_cast<float>(p.x[row * F + f] + 0.3 * (uniform() - 0.5))));
    }
    return p;
}

/// Blobs around K well separated centres (for Lloyd in float).
Problem blobs(std::size_t n, std::size_t F, std::size_t K) {
    Problem p{n, F, K, {}, {}};
    std::vector<double> centre(K * F);
    for (double& c : centre) c = draw_float_exact(-8.0, 8.0);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t k = i % K;
        for (std::size_t f = 0; f < F; ++f) p.x.push_back(draw_float_exact(centre[k * F + f] - 0.7, centre[k * F + f] + 0.7));
    }
    for (std::size_t k = 0; k < K; ++k) {
        for (std::size_t f = 0; f < F; ++f) p.mu.push_back(p.x[(3 * k + 1) * F + f]); // the first points of the blobs, shuffled
    }
    return p;
}

template <class T>
std::vector<T> as(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}

/// Exact squared distances (double) of point i to every centroid.
std::vector<double> distances(const Problem& p, std::size_t i) {
    std::vector<double> d(p.K, 0.0);
    for (std::size_t k = 0; k < p.K; ++k) {
        for (std::size_t f = 0; f < p.F; ++f) {
            const double e = p.x[i * p.F + f] - p.mu[k * p.F + f];
            d[k] += e * e;
        }
    }
    return d;
}

/// Labels agree, or both centroids are nearest to within `gap` (relative to the distance scale).
void expect_labels(const std::vector<int>& got, const std::vector<int>& want, const Problem& p, double gap, const std::string& what) {
    if (got.size() != want.size()) {
        std::printf("FAIL %s: sizes %zu vs %zu\n", what.c_str(), got.size(), want.size());
        ++failures;
        return;
    }
    int reported = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        bool ok = got[i] >= 0 && static_cast<std::size_t>(got[i]) < p.K;
        if (ok) {
            const auto d = distances(p, i);
            const double scale = std::max(1.0, d[static_cast<std::size_t>(want[i])]);
            ok = std::fabs(d[static_cast<std::size_t>(got[i])] - d[static_cast<std::size_t>(want[i])]) <= gap * scale;
        }
        if (!ok) {
            if (reported++ < 5) std::printf("FAIL %s[%zu]: label %d, cpu %d\n", what.c_str(), i, got[i], want[i]);
            ++failures;
        }
    }
}

/// CPU Var gradients of L = Σ rbar · soft_assign(x, μ, τ).
struct CpuGrads {
    std::vector<double> x, mu;
    double tau = 0.0;
};
CpuGrads cpu_grads(const Problem& p, double tau, const std::vector<double>& rbar) {
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto xv = tape.variables(p.x);
    const auto mv = tape.variables(p.mu);
    const ad::Var tv = tape.variable(tau);
    const auto r = ops::soft_assign(exec::Cpu{}, xv, p.n, mv, p.K, tv);
    ad::Var loss = 0.0;
    for (std::size_t j = 0; j < r.size(); ++j) loss += r[j] * rbar[j];
    tape.backward(loss);
    CpuGrads g;
    g.x.resize(xv.size());
    g.mu.resize(mv.size());
    tape.adjoints(xv, g.x);
    tape.adjoints(mv, g.mu);
    g.tau = tape.adjoint(tv);
    return g;
}

std::vector<double> random_rbar(std::size_t count) {
    std::vector<double> v;
    for (std::size_t j = 0; j < count; ++j) v.push_back(draw_float_exact(-1.0, 1.0));
    return v;
}

// ---- Part 1: the row kernels' bodies on the host --------------------------------------------

/// A host stand-in for the cuBLAS handle: the backend's GEMM helpers (kmeans_cuda_detail::
/// gemm_x_mt, gemm_at_x, gemm_a_m) call gemm(handle, ...) unqualified, which finds this one for
/// HostGemm. C = alpha·op(A)·op(B) + beta·C on column-major arrays, as cublas<t>gemm defines it.
struct HostGemm {};
template <class T>
void gemm(HostGemm, cublasOperation_t ta, cublasOperation_t tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* A,
          std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t i = 0; i < m; ++i) {
            T s = T(0);
            for (std::size_t l = 0; l < k; ++l) {
                const T a = ta == CUBLAS_OP_N ? A[i + l * lda] : A[l + i * lda];
                const T b = tb == CUBLAS_OP_N ? B[l + j * ldb] : B[j + l * ldb];
                s += a * b;
            }
            C[i + j * ldc] = beta == T(0) ? alpha * s : alpha * s + beta * C[i + j * ldc];
        }
    }
}
namespace kd = ops::cuda::kmeans_cuda_detail;

/// The device path's centred frame (kmeans_cuda_detail::centre) on the host: c by the kernels'
/// own centroid_mean, then x − c, μ − c and ‖μ_k − c‖² (sequential over F, as row_norms2).
template <class T>
struct HostFrame {
    std::vector<T> x, mu, mn;
};
template <class T>
HostFrame<T> host_frame(const std::vector<T>& x, std::size_t n, std::size_t F, const std::vector<T>& mu, std::size_t K) {
    std::vector<T> c(F);
    for (std::size_t f = 0; f < F; ++f) c[f] = kk::centroid_mean(mu.data(), K, F, f);
    HostFrame<T> fr{std::vector<T>(n * F), std::vector<T>(K * F), std::vector<T>(K, T(0))};
    for (std::size_t j = 0; j < n * F; ++j) fr.x[j] = x[j] - c[j % F];
    for (std::size_t j = 0; j < K * F; ++j) fr.mu[j] = mu[j] - c[j % F];
    for (std::size_t k = 0; k < K; ++k) {
        for (std::size_t f = 0; f < F; ++f) fr.mn[k] += fr.mu[k * F + f] * fr.mu[k * F + f];
    }
    return fr;
}

/// The problem moved by `offset` (every coordinate, points and centroids), rounded to T (so that
/// a float run and its double reference see the same inputs).
template <class T>
Problem shifted(Problem p, double offset) {
    for (double& v : p.x) v = static_cast<double>(static_cast<T>(v + offset));
    for (double& v : p.mu) v = static_cast<double>(static_cast<T>(v + offset));
    return p;
}

template <class T>
void emulated_forward(const Problem& p, double tau, double rel, const char* tname) {
    const auto x = as<T>(p.x), mu = as<T>(p.mu);
    const HostFrame<T> fr = host_frame(x, p.n, p.F, mu, p.K);
    std::vector<T> rows(p.n * p.K);
    std::vector<int> labels(p.n, -1);
    kd::gemm_x_mt(HostGemm{}, fr.x.data(), p.n, p.F, fr.mu.data(), p.K, T(-2), rows.data());
    for (std::size_t i = 0; i < p.n; ++i) {
        kk::assign_row<T, kk::SerialLanes>(i, fr.mn.data(), p.K, T(1) / static_cast<T>(tau), true, rows.data() + i * p.K, labels.data(), 0, 1);
    }
    std::vector<int> cpu_labels;
    const auto cpu = ops::soft_assign(exec::Cpu{}, std::span<const T>(x), p.n, std::span<const T>(mu), p.K, static_cast<T>(tau), &cpu_labels);
    const std::string what = std::string("host-run assign_row ") + tname + " tau " + std::to_string(tau);
    expect_all_close(rows, cpu, rel, what + " assignments");
    expect_labels(labels, cpu_labels, p, rel, what + " labels");
}

/// backward_row (one lane) with the device path's composition and GEMM calls, in the centred
/// frame: x̄ = 2 (Σ_k D̄_ik) (x_i − c) − 2 D̄·(M − c), μ̄ = 2 (Σ_i D̄_ik) (μ_k − c) − 2 D̄ᵀ·(X − c),
/// τ̄ = Σ G (D − m) / τ²; and the soft centroid update S = Rᵀ·X.
void emulated_backward(const Problem& p, double tau, const std::vector<double>& rbar, const CpuGrads& want) {
    const std::size_t n = p.n, F = p.F, K = p.K;
    const auto r = ops::soft_assign(exec::Cpu{}, std::span<const double>(p.x), n, std::span<const double>(p.mu), K, tau);
    const HostFrame<double> fr = host_frame(p.x, n, F, p.mu, K);
    std::vector<double> db(n * K), rs(n);
    kd::gemm_x_mt(HostGemm{}, fr.x.data(), n, F, fr.mu.data(), K, -2.0, db.data());
    double tb = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        tb += kk::backward_row<double, kk::SerialLanes>(i, fr.mn.data(), K, tau, r.data(), rbar.data(), true, db.data() + i * K, rs.data(), 0, 1);
    }
    std::vector<double> gx(n * F, 0.0), gm(K * F, 0.0), cs(K, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t f = 0; f < F; ++f) gx[i * F + f] += rs[i] * fr.x[i * F + f];
        for (std::size_t k = 0; k < K; ++k) cs[k] += db[i * K + k];
    }
    kd::gemm_a_m(HostGemm{}, db.data(), n, K, fr.mu.data(), F, -2.0, 1.0, gx.data());
    for (std::size_t j = 0; j < K * F; ++j) gm[j] += 2.0 * cs[j / F] * fr.mu[j];
    kd::gemm_at_x(HostGemm{}, db.data(), n, K, fr.x.data(), F, -2.0, 1.0, gm.data());
    const std::string what = "host-run backward_row tau " + std::to_string(tau);
    expect_all_close(gx, want.x, 1e-10, what + " points gradient");
    expect_all_close(gm, want.mu, 1e-10, what + " centroids gradient");
    expect_close(tb / (tau * tau), want.tau, 1e-10, what + " tau gradient");

    std::vector<double> S(K * F), w(K, 0.0), upd(K * F);
    kd::gemm_at_x(HostGemm{}, r.data(), n, K, p.x.data(), F, 1.0, 0.0, S.data());
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < K; ++k) w[k] += r[i * K + k];
    }
    for (std::size_t j = 0; j < K * F; ++j) upd[j] = w[j / F] > 0.0 ? S[j] / w[j / F] : p.mu[j];
    expect_all_close(upd, ops::soft_centroid_update(p.x, n, r, K, p.mu), 1e-12, what + " soft centroid update");
}

void check_validation() {
    const exec::Cuda p{};
    std::vector<float> x{0.f, 1.f, 2.f, 3.f}, mu{0.f, 1.f};
    expect_throw([&] { (void)ops::cuda::soft_assign<float>(p, x, 2, mu, 1, 0.0f); }, "tau", "tau = 0");
    expect_throw([&] { (void)ops::cuda::soft_assign<float>(p, x, 3, mu, 1, 1.0f); }, "points", "points of the wrong size");
    x[2] = std::nanf("");
    expect_throw([&] { (void)ops::cuda::hard_assign<float>(p, x, 2, mu, 1); }, "entry 2", "a NaN point");
    expect_throw([&] { (void)ops::cuda::lloyd<float>(p, std::vector<float>{0.f}, 1, std::vector<float>{0.f, 1.f}, 2); }, "exceeds", "K > n");
    // squared distances past float's range (1e40), refused before anything runs, as on the CPU
    const std::vector<float> far{0.f, 1e20f};
    expect_throw([&] { (void)ops::cuda::soft_assign<float>(p, far, 2, far, 2, 1.0f); }, "range of float", "points 1e20 apart (soft_assign)");
    expect_throw([&] { (void)ops::cuda::lloyd<float>(p, far, 2, far, 2); }, "range of float", "points 1e20 apart (lloyd)");
}

// ---- Part 2: the GPU -------------------------------------------------------------------------

template <class T>
void gpu_soft(const Problem& p, double tau, double rel_fwd, double rel_grad, const char* tname) {
    const exec::Cuda dev{};
    const auto x = as<T>(p.x), mu = as<T>(p.mu);
    const std::string what = std::string("GPU ") + tname + " n " + std::to_string(p.n) + " K " + std::to_string(p.K) + " tau " +
                             std::to_string(tau);
    std::vector<int> labels, cpu_labels;
    const auto r = ops::cuda::soft_assign<T>(dev, x, p.n, mu, p.K, static_cast<T>(tau), &labels);
    const auto cpu = ops::soft_assign(exec::Cpu{}, std::span<const T>(x), p.n, std::span<const T>(mu), p.K, static_cast<T>(tau), &cpu_labels);
    expect_all_close(r, cpu, rel_fwd, what + " assignments");
    expect_labels(labels, cpu_labels, p, rel_fwd, what + " labels");
    expect_labels(ops::cuda::hard_assign<T>(dev, x, p.n, mu, p.K), cpu_labels, p, rel_fwd, what + " hard_assign");
    const auto rbar = random_rbar(p.n * p.K);
    const auto want = cpu_grads(p, tau, rbar);
    const auto rb = as<T>(rbar);
    const auto g = ops::cuda::soft_assign_backward<T>(dev, x, p.n, mu, p.K, static_cast<T>(tau), r, rb);
    expect_all_close(g.points, want.x, rel_grad, what + " points gradient");
    expect_all_close(g.centroids, want.mu, rel_grad, what + " centroids gradient");
    expect_close(g.tau, want.tau, rel_grad, what + " tau gradient");
    // soft centroid update (CPU: double)
    const auto upd = ops::cuda::soft_centroid_update<T>(dev, x, p.n, r, p.K, mu);
    const std::vector<double> rd(r.begin(), r.end());
    expect_all_close(upd, ops::soft_centroid_update(p.x, p.n, rd, p.K, p.mu), rel_grad, what + " soft centroid update");
}

/// τ = 1e-4 and 1e4: finite, rows sum to 1, finite gradients; in double also parity with the CPU.
template <class T>
void gpu_extreme_tau(const Problem& p, double rel, const char* tname) {
    const exec::Cuda dev{};
    const auto x = as<T>(p.x), mu = as<T>(p.mu);
    for (const double tau : {1e-4, 1e4}) {
        const std::string what = std::string("GPU ") + tname + " tau " + std::to_string(tau);
        const auto r = ops::cuda::soft_assign<T>(dev, x, p.n, mu, p.K, static_cast<T>(tau));
        bool finite = true, sums = true;
        for (std::size_t i = 0; i < p.n; ++i) {
            double s = 0.0;
            for (std::size_t k = 0; k < p.K; ++k) {
                finite = finite && std::isfinite(static_cast<double>(r[i * p.K + k]));
                s += static_cast<double>(r[i * p.K + k]);
            }
            sums = sums && std::fabs(s - 1.0) <= rel * 10;
        }
        expect(finite, what + ": assignments finite");
        expect(sums, what + ": rows sum to 1");
        const auto rbar = random_rbar(p.n * p.K);
        const auto g = ops::cuda::soft_assign_backward<T>(dev, x, p.n, mu, p.K, static_cast<T>(tau), r, as<T>(rbar));
        bool gf = std::isfinite(g.tau);
        for (const T v : g.points) gf = gf && std::isfinite(static_cast<double>(v));
        for (const T v : g.centroids) gf = gf && std::isfinite(static_cast<double>(v));
        expect(gf, what + ": gradients finite");
        if (std::is_same_v<T, double>) {
            const auto cpu = ops::soft_assign(exec::Cpu{}, std::span<const double>(p.x), p.n, std::span<const double>(p.mu), p.K, tau);
            expect_all_close(r, cpu, 1e-9, what + " assignments");
        }
    }
}

template <class T>
void gpu_lloyd(const Problem& p, double rel, const char* tname) {
    const exec::Cuda dev{};
    const auto x = as<T>(p.x), mu = as<T>(p.mu);
    const std::string what = std::string("GPU ") + tname + " Lloyd n " + std::to_string(p.n) + " K " + std::to_string(p.K);
    const auto step = ops::cuda::lloyd_step<T>(dev, x, p.n, mu, p.K);
    const auto labels = ops::hard_assign(p.x, p.n, p.mu, p.K);
    expect_labels(step.labels, labels, p, rel, what + " step labels");
    if (step.labels == labels) {
        expect_close(step.inertia, ops::kmeans_inertia(p.x, p.n, p.mu, p.K, labels), rel, what + " step inertia");
        ops::LloydOptions one;
        one.max_iter = 1;
        const auto cpu1 = ops::lloyd(p.x, p.n, p.mu, p.K, one);
        expect_all_close(step.centroids, cpu1.centroids, rel, what + " step centroids");
        double shift = 0.0;
        for (std::size_t j = 0; j < p.mu.size(); ++j) shift += (cpu1.centroids[j] - p.mu[j]) * (cpu1.centroids[j] - p.mu[j]);
        expect_close(step.shift, shift, rel, what + " step shift");
    }
    const auto gpu = ops::cuda::lloyd<T>(dev, x, p.n, mu, p.K);
    const auto cpu = ops::lloyd(p.x, p.n, p.mu, p.K);
    expect(gpu.iterations == cpu.iterations, what + " iterations " + std::to_string(gpu.iterations) + " vs " + std::to_string(cpu.iterations));
    expect(gpu.strict_convergence == cpu.strict_convergence, what + " strict convergence");
    expect(gpu.labels == cpu.labels, what + " labels");
    expect_all_close(gpu.centroids, cpu.centroids, rel, what + " centroids");
    expect_close(gpu.inertia, cpu.inertia, rel, what + " inertia");
}

/// K = 1: every assignment is 1 and every gradient 0; points equal to centroids: their own label,
/// distance 0, no NaN.
template <class T>
void gpu_degenerate(double rel, const char* tname) {
    const exec::Cuda dev{};
    Problem one = random_problem(300, 5, 1);
    const auto x1 = as<T>(one.x), m1 = as<T>(one.mu);
    const auto r1 = ops::cuda::soft_assign<T>(dev, x1, one.n, m1, 1, T(0.5));
    expect(std::all_of(r1.begin(), r1.end(), [](T v) { return v == T(1); }), std::string(tname) + " K = 1: assignments 1");
    const auto g1 = ops::cuda::soft_assign_backward<T>(dev, x1, one.n, m1, 1, T(0.5), r1, as<T>(random_rbar(one.n)));
    expect(std::all_of(g1.points.begin(), g1.points.end(), [](T v) { return v == T(0); }) &&
               std::all_of(g1.centroids.begin(), g1.centroids.end(), [](T v) { return v == T(0); }) && g1.tau == 0.0,
           std::string(tname) + " K = 1: zero gradients");

    Problem eq = random_problem(200, 6, 5);
    for (std::size_t k = 0; k < eq.K; ++k) {
        for (std::size_t f = 0; f < eq.F; ++f) eq.x[(40 * k) * eq.F + f] = eq.mu[k * eq.F + f]; // point 40k is centroid k
    }
    const auto xe = as<T>(eq.x), me = as<T>(eq.mu);
    std::vector<int> labels, cpu_labels;
    const auto re = ops::cuda::soft_assign<T>(dev, xe, eq.n, me, eq.K, T(1e-4), &labels);
    const auto cpu = ops::soft_assign(exec::Cpu{}, std::span<const T>(xe), eq.n, std::span<const T>(me), eq.K, T(1e-4), &cpu_labels);
    expect_labels(labels, cpu_labels, eq, rel, std::string(tname) + " points on centroids: labels");
    if constexpr (std::is_same_v<T, double>) expect_all_close(re, cpu, 1e-9, std::string(tname) + " points on centroids: assignments");
    for (std::size_t k = 0; k < eq.K; ++k) {
        expect(labels[40 * k] == static_cast<int>(k), std::string(tname) + " point on centroid " + std::to_string(k) + ": its label");
        expect(re[40 * k * eq.K + k] > T(0.99), std::string(tname) + " point on centroid " + std::to_string(k) + ": assignment ~1");
    }
    expect(std::all_of(re.begin(), re.end(), [](T v) { return std::isfinite(static_cast<double>(v)); }),
           std::string(tname) + " points on centroids: finite");
    const auto ge = ops::cuda::soft_assign_backward<T>(dev, xe, eq.n, me, eq.K, T(1), ops::cuda::soft_assign<T>(dev, xe, eq.n, me, eq.K, T(1)),
                                                       as<T>(random_rbar(eq.n * eq.K)));
    bool gf = std::isfinite(ge.tau);
    for (const T v : ge.points) gf = gf && std::isfinite(static_cast<double>(v));
    expect(gf, std::string(tname) + " points on centroids: finite gradients");
}

} // namespace

int main() {
    // Part 1
    const Problem small = random_problem(700, 8, 6);
    for (const double tau : {0.5, 2.0}) {
        emulated_forward<double>(small, tau, 1e-12, "double");
        emulated_forward<float>(small, tau, 1e-5, "float");
        const auto rbar = random_rbar(small.n * small.K);
        emulated_backward(small, tau, rbar, cpu_grads(small, tau, rbar));
    }
    // Far from the origin: in the centred frame the distances keep their digits (uncentred, float
    // at 1e4 lost them all and the labels failed); gradients in double at 1e6.
    for (const double offset : {1e4, 1e5}) emulated_forward<float>(shifted<float>(small, offset), 0.5, 1e-5, "float, offset");
    for (const double offset : {1e6, 1e9}) emulated_forward<double>(shifted<double>(small, offset), 0.5, 1e-12, "double, offset");
    {
        const Problem far = shifted<double>(small, 1e6);
        const auto rbar = random_rbar(far.n * far.K);
        emulated_backward(far, 0.5, rbar, cpu_grads(far, 0.5, rbar));
    }
    check_validation();
    std::printf("host-run kernels and validation: %d failures\n", failures);
    if (failures != 0) return 1;

    // Part 2
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available; GPU parity not checked\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s\n", prop.name);
    const Problem a = random_problem(3000, 8, 6), b = random_problem(2500, 12, 40);
    for (const double tau : {0.5, 1.0, 3.0}) {
        gpu_soft<double>(a, tau, 1e-12, 1e-10, "double");
        gpu_soft<float>(a, tau, 1e-5, 1e-5, "float");
    }
    gpu_soft<double>(b, 1.0, 1e-12, 1e-10, "double");
    gpu_soft<float>(b, 1.0, 1e-5, 1e-5, "float");
    gpu_soft<double>(a, 1e4, 1e-12, 1e-10, "double");
    gpu_soft<float>(a, 1e4, 1e-5, 1e-5, "float");
    gpu_soft<float>(shifted<float>(a, 1e4), 0.5, 1e-5, 1e-5, "float, offset 1e4");
    gpu_soft<double>(shifted<double>(a, 1e6), 0.5, 1e-12, 1e-10, "double, offset 1e6");
    gpu_extreme_tau<double>(a, 1e-12, "double");
    gpu_extreme_tau<float>(a, 1e-5, "float");
    gpu_degenerate<double>(1e-12, "double");
    gpu_degenerate<float>(1e-5, "float");
    gpu_lloyd<double>(random_problem(4000, 6, 9), 1e-10, "double");
    gpu_lloyd<double>(blobs(3000, 5, 7), 1e-10, "double");
    gpu_lloyd<float>(blobs(3000, 5, 7), 1e-5, "float");
    std::printf("%s: %d failures\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
