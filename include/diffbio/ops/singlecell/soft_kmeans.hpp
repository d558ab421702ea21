#pragma once
// SoftKMeans: k-means with soft assignments that gradients flow through.
//
// Points x [n × F] (row-major), centroids μ [K × F], temperature τ > 0:
//   D_ik = ‖x_i − μ_k‖² = ‖x_i − c‖² + E_ik,  E_ik = ‖μ_k − c‖² − 2 (x_i − c)·(μ_k − c)
// squared distances, in a frame centred on the centroids' mean c (an offset the data share costs
// the expansion no digits; D is the same for any c)
//   r_ik = softmax_k(−D_ik/τ) = e^{−(D_ik − m_i)/τ} / Σ_j e^{−(D_ij − m_i)/τ},  m_i = min_k D_ik
// D_ik − m_i = E_ik − min_j E_ij: the kernels compute only the scores E (one GEMM X·Mᵀ, as
// scikit-learn), never ‖x_i − c‖², which cancels. Every exponent is ≤ 0 and the nearest centroid
// contributes e^0 = 1, so the sum is ≥ 1: no overflow, no division by 0, no NaN for any τ in
// [1e-4, 1e4] (and beyond). Hard labels are argmin_k E_ik, the lowest index on exact ties (as
// scikit-learn, whose labels are the argmin of the same scores).
//
// Gradients (one reverse sweep, all GEMMs), with G_ik = r_ik (r̄_ik − Σ_j r̄_ij r_ij), D̄ = −G/τ:
//   x̄_i = 2 (Σ_k D̄_ik) x_i − 2 (D̄ M)_i          μ̄_k = 2 (Σ_i D̄_ik) μ_k − 2 (D̄ᵀ X)_k
// (computed with x − c and μ − c, whose c terms cancel)
//   τ̄   = Σ_ik G_ik (D_ik − m_i)/τ²
// (the derivative of the exact squared distance).
//
// τ → 0: r becomes the one-hot of the hard label (split evenly on exact ties), and the soft
// centroid update μ_k = Σ_i r_ik x_i / Σ_i r_ik becomes Lloyd's mean of the points labelled k:
// lloyd() below is that limit, step by step the algorithm of scikit-learn's
// KMeans(algorithm="lloyd") from given initial centroids (same labels, inertia, iterations).
//
// Kernels: float/double run blocks of rows (65536/K rows, 16 to 512: the block's scores stay in
// the L2 cache) through one pass: the GEMM, then per row the minimum and its index and the
// softmax (a vectorised e^t, within ~1 ulp of std::exp) without a tape; Lloyd's pass adds each
// point to its centroid's sum (and the inertia) in the same pass. Var records ONE fused node
// (forward in double; the backward runs the two GEMMs per block; inputs x, μ and τ may each be
// plain or Var); Dual evaluates the same formulas directly (small problems). exec::CpuParallel
// splits the row blocks over OpenMP threads; partial sums of μ̄, τ̄ and Lloyd's sums are added in
// thread order (deterministic for a fixed thread count).
//
// Initialisation (kmeans_plusplus): Arthur & Vassilvitskii's D² sampling with an explicit seed.
// The first centroid is a point drawn uniformly; each next one is a point drawn with probability
// proportional to its squared distance to the nearest centroid chosen so far (one draw per
// centroid; scikit-learn's "greedy" variant, which tries 2 + log K candidates, is not
// reproduced). Random numbers: splitmix64 of the seed, so results do not depend on the
// standard library. When every remaining point coincides with a chosen centroid (D² all 0), the
// next centroid is drawn uniformly.
//
// Fit (SoftKMeans::fit): deterministic annealing. For τ = τ_0, τ_0·decay, ... down to τ_end:
// soft EM steps (assignments r at τ, then μ ← Σ r x / Σ r) until the centroids move less than
// the tolerance or `inner_iterations` steps; then, unless disabled, Lloyd's hard iterations from
// the annealed centroids to convergence. labels() and inertia() describe the result.
//
// Differences from DiffBio's SoftKMeansClustering (spec §5.3): centroids are initialised by
// seeded k-means++ on the data (DiffBio: N(0,1)·0.1, far from most data), the temperature may be
// a differentiable argument (DiffBio: static), `learnable_centroids` is not carried over (the
// centroids are always a Parameter; freeze them by not stepping them), and the fit loop and the
// hard Lloyd limit are new. Lloyd's empty clusters keep their previous centroid (scikit-learn
// moves them to far points; its result differs only when a cluster empties).
//
// Errors: InvalidArgument for K = 0, K > n in initialisation/fit, τ ≤ 0 or not finite, NaN or
// infinite data or centroids (naming the first bad entry), data so spread that squared distances
// may leave the scalar's range (float: ~1e19 from the centroids' mean; OverflowWatch); ShapeError
// for sizes that disagree.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/huge_pages.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/simd.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

namespace kmeans_detail {

template <class V>
using Mat = Eigen::Matrix<V, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using diffbio::check_all_finite; // every entry finite, else InvalidArgument naming the first bad one

/// Shapes of x [n × F] and centroids [K × F]; returns F.
inline std::size_t check_shapes(std::size_t x_size, std::size_t n, std::size_t c_size, std::size_t K, const char* where) {
    if (n == 0) throw InvalidArgument(std::string(where) + ": no points (n = 0)");
    if (K == 0) throw InvalidArgument(std::string(where) + ": the number of clusters K must be >= 1");
    if (c_size == 0 || c_size % K != 0) {
        throw ShapeError(std::string(where) + ": centroids have " + std::to_string(c_size) + " entries, not a positive multiple of K = " +
                         std::to_string(K));
    }
    const std::size_t F = c_size / K;
    if (x_size != n * F) {
        throw ShapeError(std::string(where) + ": points have " + std::to_string(x_size) + " entries, expected n x F = " +
                         std::to_string(n) + " x " + std::to_string(F));
    }
    return F;
}

/// Rows per block: a block's rows × K scores (at most 512 KiB in double) stay in the L2 cache
/// between the GEMM that writes them and the row pass that reads them. Depends on K only, so that
/// every policy cuts the same blocks and computes the same numbers.
inline std::size_t block_rows(std::size_t K) {
    const std::size_t r = std::size_t{65536} / std::max<std::size_t>(K, 1);
    return std::clamp<std::size_t>(r - r % 16, 16, 512);
}

/// Runs body(i0, i1, thread) over blocks of `rows` rows, in parallel under CpuParallel.
template <class P, class Body>
void for_blocks(const P& policy, std::size_t n, std::size_t rows, Body&& body) {
    const auto nb = static_cast<std::ptrdiff_t>((n + rows - 1) / rows);
    [[maybe_unused]] const int threads = exec::thread_count(policy);
    if constexpr (std::is_same_v<P, exec::CpuParallel>) {
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t b = 0; b < nb; ++b) {
            const std::size_t i0 = static_cast<std::size_t>(b) * rows;
            body(i0, std::min(n, i0 + rows), exec::this_thread_index());
        }
    } else {
        for (std::ptrdiff_t b = 0; b < nb; ++b) {
            const std::size_t i0 = static_cast<std::size_t>(b) * rows;
            body(i0, std::min(n, i0 + rows), std::size_t{0});
        }
    }
}

template <class V>
std::vector<V> row_norms2(const V* mu, std::size_t K, std::size_t F) {
    std::vector<V> out(K, V(0));
    for (std::size_t k = 0; k < K; ++k) {
        for (std::size_t f = 0; f < F; ++f) out[k] += mu[k * F + f] * mu[k * F + f];
    }
    return out;
}

/// The centroids in a frame centred on their mean c (per feature), with their squared norms.
/// Distances are the same between x − c and μ − c, and in the expansion ‖μ − c‖² − 2 (x − c)·(μ − c)
/// an offset that the data share no longer costs digits: without it, float points at 1e4 ± 1 saw
/// two centroids 1 apart as a tie, and at 1e5 the farther one won.
template <class V>
struct CentredCentroids {
    std::vector<V> c;  ///< [F] the centroids' mean
    std::vector<V> mu; ///< [K × F] μ_k − c
    std::vector<V> mn; ///< [K] ‖μ_k − c‖²
};

template <class V>
CentredCentroids<V> centred(const V* mu, std::size_t K, std::size_t F) {
    CentredCentroids<V> out;
    std::vector<double> sum(F, 0.0);
    for (std::size_t k = 0; k < K; ++k) {
        for (std::size_t f = 0; f < F; ++f) sum[f] += static_cast<double>(mu[k * F + f]);
    }
    out.c.resize(F);
    for (std::size_t f = 0; f < F; ++f) out.c[f] = static_cast<V>(sum[f] / static_cast<double>(K));
    out.mu.resize(K * F);
    for (std::size_t k = 0; k < K; ++k) {
        for (std::size_t f = 0; f < F; ++f) out.mu[k * F + f] = mu[k * F + f] - out.c[f];
    }
    out.mn = row_norms2(out.mu.data(), K, F);
    return out;
}

/// The `rows` points starting at x in the centroids' frame: Xc = X − c.
template <class V>
void centre_rows(const V* x, std::size_t rows, std::size_t F, const CentredCentroids<V>& cc, Mat<V>& Xc) {
    const Eigen::Map<const Mat<V>> X(x, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(F));
    const Eigen::Map<const Eigen::Matrix<V, 1, Eigen::Dynamic>> c(cc.c.data(), static_cast<Eigen::Index>(F));
    Xc = X.rowwise() - c;
}

/// Scores E_ik = ‖μ_k − c‖² − 2 (x_i − c)·(μ_k − c) of `rows` points starting at x: the squared
/// distances less ‖x_i − c‖² (scikit-learn's form, in the centroids' frame), one GEMM (the −2
/// goes into its α) and a broadcast add. Xc: the points in that frame.
template <class V>
void block_scores(const V* x, std::size_t rows, std::size_t F, const CentredCentroids<V>& cc, std::size_t K, Mat<V>& Xc,
                  Mat<V>& E) {
    centre_rows(x, rows, F, cc, Xc);
    const Eigen::Map<const Mat<V>> M(cc.mu.data(), static_cast<Eigen::Index>(K), static_cast<Eigen::Index>(F));
    const Eigen::Map<const Eigen::Matrix<V, 1, Eigen::Dynamic>> mn(cc.mn.data(), static_cast<Eigen::Index>(K));
    E.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(K));
    E.noalias() = (V(-2) * Xc) * M.transpose();
    E.rowwise() += mn;
}

/// The first row of a block whose scores might overflow V (reported after the parallel loop), or
/// n when none does. |E_ik| and every partial sum of its GEMM are at most (‖x_i − c‖ + ‖μ_k − c‖)²
/// (Cauchy-Schwarz), so a block passes when that is below a quarter of V's largest value: when a
/// point's and a centroid's distances from the centroids' mean add up to at most ~9.2e18 in float,
/// ~6.7e153 in double.
class OverflowWatch {
public:
    explicit OverflowWatch(std::size_t n) : first_(n), n_(n) {}

    template <class V>
    void check_block(const Mat<V>& Xc, V mu_max_norm2, std::size_t i0) {
        using std::sqrt;
        const V x_max_norm2 = Xc.rows() > 0 ? Xc.rowwise().squaredNorm().maxCoeff() : V(0);
        const V r = sqrt(x_max_norm2) + sqrt(mu_max_norm2);
        if (r * r <= std::numeric_limits<V>::max() / V(4)) return;
        std::size_t cur = first_.load(std::memory_order_relaxed);
        while (i0 < cur && !first_.compare_exchange_weak(cur, i0, std::memory_order_relaxed)) {
        }
    }

    /// Throws InvalidArgument naming the first block's first row when one might overflow.
    template <class V>
    void throw_if_any(const char* where) const {
        const std::size_t i = first_.load();
        if (i == n_) return;
        constexpr bool f32 = std::is_same_v<V, float>;
        throw InvalidArgument(std::string(where) + ": the squared distances between the points (from point " +
                              std::to_string(i) + ") and the centroids may exceed the range of " +
                              (f32 ? "float" : "double") + " (largest " +
                              diffbio::detail::format_value(static_cast<double>(std::numeric_limits<V>::max())) +
                              "): " + (f32 ? "compute in double or scale the data" : "scale the data"));
    }

private:
    std::atomic<std::size_t> first_;
    std::size_t n_;
};

template <class V>
V max_of(const std::vector<V>& v) {
    return v.empty() ? V(0) : *std::max_element(v.begin(), v.end());
}

/// The kernels' range check on its own, one pass over the points (for backends that do not
/// centre the points on the host, e.g. CUDA's): throws OverflowWatch's InvalidArgument when the
/// squared distances between x [n × F] and μ [K × F] may leave V's range.
template <class V>
void check_distance_range(const V* x, std::size_t n, std::size_t F, const V* mu, std::size_t K, const char* where) {
    const CentredCentroids<V> cc = centred(mu, K, F);
    const V mu_max = max_of(cc.mn);
    OverflowWatch watch(n);
    Mat<V> Xc;
    const std::size_t rows = block_rows(K);
    for (std::size_t i0 = 0; i0 < n; i0 += rows) {
        centre_rows(x + i0 * F, std::min(rows, n - i0), F, cc, Xc);
        watch.check_block(Xc, mu_max, i0);
    }
    watch.throw_if_any<V>(where);
}

/// The smallest of e[0..K) into m, and its lowest index.
template <class V>
std::size_t row_argmin(const V* e, std::size_t K, V& m) {
    m = Eigen::Map<const Eigen::Array<V, 1, Eigen::Dynamic>>(e, static_cast<Eigen::Index>(K)).minCoeff();
    std::size_t k = 0;
    for (; k + 16 <= K; k += 16) { // find the chunk first (vectorised compares), then the entry
        bool hit = false;
        for (std::size_t j = 0; j < 16; ++j) hit = hit || e[k + j] == m;
        if (hit) break;
    }
    for (; k < K; ++k) {
        if (e[k] == m) return k;
    }
    // reached only when the row holds a NaN (a distance that overflowed): the first smallest by <
    std::size_t best = 0;
    for (k = 1; k < K; ++k) {
        if (e[k] < e[best]) best = k;
    }
    m = e[best];
    return best;
}

/// Constants of exp_nonpositive: the range where e^t is a normal number, the reduction t = (n +
/// r/ln 2)·ln 2 with |r| ≤ ln 2 / 2, and Taylor's 1/j! up to a degree whose remainder is below
/// half an ulp there (r^14/14! < 5e-18; float: r^8/8! < 6e-9).
template <class V>
struct ExpConstants;
template <>
struct ExpConstants<double> {
    using Bits = std::uint64_t;
    static constexpr double normal_from = -708.0;  // e^-708 > DBL_MIN
    static constexpr double zero_below = -745.2;   // e^t rounds to 0 below
    static constexpr double log2e = 1.4426950408889634;
    static constexpr double round_shift = 0x1.8p52; // adding it rounds to an integer in the low bits
    static constexpr double ln2_hi = 6.93147180369123816490e-01; // trailing zero bits: n·ln2_hi is exact
    static constexpr double ln2_lo = 1.90821492927058770002e-10;
    static constexpr int mantissa_bits = 52;
    static constexpr std::int64_t bias = 1023;
    static constexpr int degree = 13;
};
template <>
struct ExpConstants<float> {
    using Bits = std::uint32_t;
    static constexpr float normal_from = -87.0f; // e^-87 > FLT_MIN
    static constexpr float zero_below = -104.0f;
    static constexpr float log2e = 1.44269504f;
    static constexpr float round_shift = 0x1.8p23f;
    static constexpr float ln2_hi = 0.693145751953125f;
    static constexpr float ln2_lo = 1.428606765330187045e-06f;
    static constexpr int mantissa_bits = 23;
    static constexpr std::int64_t bias = 127;
    static constexpr int degree = 7;
};

/// out[j] = e^{t[j]} for t[j] ≤ 0 (V = float or double), within about 1 ulp of std::exp, in a loop
/// the compiler vectorises (std::exp is a call per entry): e^t = 2^n e^r with n = round(t/ln 2) and
/// a polynomial in r, 2^n built in the exponent bits. Results below the normal range (rare: a
/// softmax entry < 1e-308, float 1e-38) are taken from std::exp in a second pass.
template <class V>
void exp_nonpositive(const V* t, V* out, std::size_t n) {
    using C = ExpConstants<V>;
    using Bits = typename C::Bits;
    using SBits = std::make_signed_t<Bits>;
    static constexpr auto coef = [] {
        std::array<V, C::degree + 1> c{};
        double f = 1.0;
        for (int j = 0; j <= C::degree; ++j) {
            if (j > 0) f *= j;
            c[static_cast<std::size_t>(j)] = static_cast<V>(1.0 / f);
        }
        return c;
    }();
    const auto shift_bits = static_cast<SBits>(std::bit_cast<Bits>(C::round_shift));
    int below = 0;
    DIFFBIO_OMP(simd reduction(+ : below))
    for (std::size_t j = 0; j < n; ++j) {
        const bool normal = t[j] >= C::normal_from;
        below += normal ? 0 : 1;
        const V s = normal ? t[j] : C::normal_from;
        const V shifted = s * C::log2e + C::round_shift;
        const V nf = shifted - C::round_shift;
        const V r = (s - nf * C::ln2_hi) - nf * C::ln2_lo;
        V p = coef[C::degree];
        for (int d = C::degree - 1; d >= 0; --d) p = p * r + coef[static_cast<std::size_t>(d)];
        const SBits e = static_cast<SBits>(std::bit_cast<Bits>(shifted)) - shift_bits; // n, in [-1021, 0]
        const V two_n = std::bit_cast<V>(static_cast<Bits>(static_cast<Bits>(e + static_cast<SBits>(C::bias)) << C::mantissa_bits));
        out[j] = normal ? p * two_n : V(0);
    }
    if (below > 0) {
        for (std::size_t j = 0; j < n; ++j) {
            if (t[j] < C::normal_from && t[j] > C::zero_below) out[j] = std::exp(t[j]);
        }
    }
}

/// Forward kernel. Writes (each when not null): p [n × K] the soft assignments at τ, labels [n]
/// the argmin (lowest index on ties), dmin [n] the minimum squared distance.
template <class V, class P>
void forward(const P& policy, const V* x, std::size_t n, std::size_t F, const V* mu, std::size_t K, V tau, V* p, int* labels,
             double* dmin) {
    const CentredCentroids<V> cc = centred(mu, K, F);
    const V mu_max = max_of(cc.mn);
    const V inv = V(1) / tau;
    OverflowWatch watch(n);
    using RowArray = Eigen::Map<Eigen::Array<V, 1, Eigen::Dynamic>>;
    for_blocks(policy, n, block_rows(K), [&](std::size_t i0, std::size_t i1, std::size_t) {
        thread_local Mat<V> Xc, E;
        block_scores(x + i0 * F, i1 - i0, F, cc, K, Xc, E);
        watch.check_block(Xc, mu_max, i0);
        for (std::size_t i = i0; i < i1; ++i) {
            V* e = E.data() + (i - i0) * K;
            V m;
            const std::size_t best = row_argmin(e, K, m);
            if (labels != nullptr) labels[i] = static_cast<int>(best);
            if (dmin != nullptr) {
                const V d = Xc.row(static_cast<Eigen::Index>(i - i0)).squaredNorm() + m;
                dmin[i] = d > V(0) ? static_cast<double>(d) : 0.0;
            }
            if (p != nullptr) {
                for (std::size_t k = 0; k < K; ++k) e[k] = (m - e[k]) * inv; // −(D_ik − m_i)/τ ≤ 0
                V* pi = p + i * K;
                exp_nonpositive(e, pi, K);
                RowArray row(pi, static_cast<Eigen::Index>(K));
                row *= V(1) / row.sum();
            }
        }
    });
    watch.throw_if_any<V>("soft k-means");
}

/// One labelling pass of Lloyd's algorithm (double) over blocks of points: labels [n] (nearest
/// centroid, lowest index on exact ties) and, each when not null and fused into the same pass, the
/// sums Σ x_i [K × F] and counts [K] of the points of each label and the inertia Σ_i ‖x_i −
/// μ_{l_i}‖² (each squared distance summed coordinate by coordinate). Partial sums per thread,
/// added in thread order (with Cpu: in point order).
template <class P>
void hard_pass(const P& policy, const double* x, std::size_t n, std::size_t F, const double* mu, std::size_t K, int* labels, double* sums,
               double* counts, double* inertia) {
    const CentredCentroids<double> cc = centred(mu, K, F);
    const double mu_max = max_of(cc.mn);
    OverflowWatch watch(n);
    const auto T = static_cast<std::size_t>(exec::thread_count(policy));
    std::vector<double> sum_part(sums != nullptr ? T * K * F : 0, 0.0), count_part(counts != nullptr ? T * K : 0, 0.0);
    std::vector<double> inertia_part(T, 0.0);
    for_blocks(policy, n, block_rows(K), [&](std::size_t i0, std::size_t i1, std::size_t t) {
        thread_local Mat<double> Xc, E;
        block_scores(x + i0 * F, i1 - i0, F, cc, K, Xc, E);
        watch.check_block(Xc, mu_max, i0);
        double* st = sums != nullptr ? sum_part.data() + t * K * F : nullptr;
        double* ct = counts != nullptr ? count_part.data() + t * K : nullptr;
        double acc = inertia_part[t];
        for (std::size_t i = i0; i < i1; ++i) {
            double m;
            const std::size_t best = row_argmin(E.data() + (i - i0) * K, K, m);
            labels[i] = static_cast<int>(best);
            const double* xi = x + i * F;
            if (st != nullptr) {
                double* s = st + best * F;
                for (std::size_t f = 0; f < F; ++f) s[f] += xi[f];
            }
            if (ct != nullptr) ct[best] += 1.0;
            if (inertia != nullptr) {
                const double* c = mu + best * F;
                double s = 0.0;
                for (std::size_t f = 0; f < F; ++f) {
                    const double d = xi[f] - c[f];
                    s += d * d;
                }
                acc += s;
            }
        }
        inertia_part[t] = acc;
    });
    watch.throw_if_any<double>("k-means (Lloyd)");
    for (std::size_t t = 0; t < T; ++t) {
        if (sums != nullptr) {
            for (std::size_t j = 0; j < K * F; ++j) sums[j] = t == 0 ? sum_part[j] : sums[j] + sum_part[t * K * F + j];
        }
        if (counts != nullptr) {
            for (std::size_t k = 0; k < K; ++k) counts[k] = t == 0 ? count_part[k] : counts[k] + count_part[t * K + k];
        }
        if (inertia != nullptr) *inertia = t == 0 ? inertia_part[0] : *inertia + inertia_part[t];
    }
}

/// Σ_k g_k·log p_k over the p_k > 0 (an underflowed p_k = 0 has g_k = 0 and adds 0, the limit
/// of p·log p).
inline double sum_times_log(const double* g, const double* p, std::size_t K) {
    using D = simd::pack<double, simd::native_lanes<double>>;
    constexpr std::size_t W = D::size;
    D acc = D::broadcast(0.0);
    std::size_t k = 0;
    for (; k + W <= K; k += W) {
        const D pk = D::load(p + k);
        acc += D::load(g + k) * simd::select(pk > D::broadcast(0.0), simd::log(pk), D::broadcast(0.0));
    }
    double s = 0.0;
    for (std::size_t l = 0; l < W; ++l) s += acc[static_cast<int>(l)];
    for (; k < K; ++k) s += p[k] > 0.0 ? g[k] * std::log(p[k]) : 0.0;
    return s;
}

/// Backward kernel (double): given p and p̄, ACCUMULATES x̄ [n × F], μ̄ [K × F] and τ̄ (each
/// skipped when null). τ̄ = Σ_ik G_ik (D_ik − m_i)/τ² with G_ik = p_ik (p̄_ik − Σ_j p̄_ij p_ij). The
/// shifted distances come from p itself: D_ik − m_i = −τ (log p_ik + log Z_i), and Σ_k G_ik = 0
/// removes the log Z_i term, so Σ_k G_ik (D_ik − m_i) = −τ Σ_k G_ik log p_ik: one vector log per
/// entry instead of recomputing the forward's distance GEMM (or keeping n × K distances).
template <class P>
void backward(const P& policy, const double* x, std::size_t n, std::size_t F, const double* mu, std::size_t K, double tau,
              const double* p, const double* pbar, double* xbar, double* mubar, double* taubar) {
    const int threads = exec::thread_count(policy);
    const auto T = static_cast<std::size_t>(threads);
    std::vector<Mat<double>> mu_part(mubar != nullptr ? T : 0);
    std::vector<std::vector<double>> col_part(mubar != nullptr ? T : 0);
    std::vector<double> tau_part(T, 0.0);
    for (std::size_t t = 0; t < mu_part.size(); ++t) {
        mu_part[t] = Mat<double>::Zero(static_cast<Eigen::Index>(K), static_cast<Eigen::Index>(F));
        col_part[t].assign(K, 0.0);
    }
    // In the centroids' frame (as the forward): the c terms of x̄ and μ̄ cancel exactly, since
    // Σ_k D̄_ik c and (Σ_i D̄_ik) c appear once with each sign.
    const CentredCentroids<double> cc = centred(mu, K, F);
    const Eigen::Map<const Mat<double>> M(cc.mu.data(), static_cast<Eigen::Index>(K), static_cast<Eigen::Index>(F));
    const double inv = 1.0 / tau;
    using Row = Eigen::Map<const Eigen::Array<double, 1, Eigen::Dynamic>>;
    using RowOut = Eigen::Map<Eigen::Array<double, 1, Eigen::Dynamic>>;
    const auto Ki = static_cast<Eigen::Index>(K);
    for_blocks(policy, n, block_rows(K), [&](std::size_t i0, std::size_t i1, std::size_t t) {
        const auto rows = static_cast<Eigen::Index>(i1 - i0);
        thread_local Mat<double> Dbar, XB, X;
        Dbar.resize(rows, Ki);
        double tb = 0.0;
        double* colsum = mubar != nullptr ? col_part[t].data() : nullptr;
        for (std::size_t i = i0; i < i1; ++i) {
            const Row pi(p + i * K, Ki), gi(pbar + i * K, Ki);
            const double dot = (gi * pi).sum();
            RowOut db(Dbar.data() + (i - i0) * K, Ki);
            db = pi * (gi - dot); // G_ik
            if (taubar != nullptr) tb -= tau * sum_times_log(db.data(), p + i * K, K); // Σ_k G_ik (D_ik − m_i)
            db *= -inv; // D̄ = −G/τ
            if (colsum != nullptr) {
                for (std::size_t k = 0; k < K; ++k) colsum[k] += db[static_cast<Eigen::Index>(k)];
            }
        }
        tau_part[t] += tb;
        centre_rows(x + i0 * F, i1 - i0, F, cc, X);
        if (xbar != nullptr) {
            XB.noalias() = -2.0 * (Dbar * M);
            for (Eigen::Index i = 0; i < rows; ++i) {
                const double rs = 2.0 * Dbar.row(i).sum();
                double* xb = xbar + (i0 + static_cast<std::size_t>(i)) * F;
                for (std::size_t f = 0; f < F; ++f) xb[f] += XB(i, static_cast<Eigen::Index>(f)) + rs * X(i, static_cast<Eigen::Index>(f));
            }
        }
        if (mubar != nullptr) mu_part[t].noalias() -= 2.0 * (Dbar.transpose() * X);
    });
    if (mubar != nullptr) {
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t k = 0; k < K; ++k) {
                for (std::size_t f = 0; f < F; ++f) {
                    mubar[k * F + f] += mu_part[t](static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(f)) + 2.0 * col_part[t][k] * cc.mu[k * F + f];
                }
            }
        }
    }
    if (taubar != nullptr) {
        double tb = 0.0;
        for (const double v : tau_part) tb += v;
        *taubar += tb * inv * inv;
    }
}

/// A vector of `size` value-initialised entries (an operator's output), its pages hinted for
/// transparent huge pages before they are first touched (core/huge_pages.hpp).
template <class T>
std::vector<T> large_output(std::size_t size) {
    std::vector<T> v;
    diffbio::detail::reserve_hinted(v, size);
    v.resize(size);
    return v;
}

/// Values of a span as V (a view when already V, else a converted copy in buf).
template <class V, class S>
const V* values_as(std::span<const S> v, std::vector<V>& buf) {
    if constexpr (std::is_same_v<S, V>) {
        return v.data();
    } else {
        buf.resize(v.size());
        for (std::size_t j = 0; j < v.size(); ++j) buf[j] = static_cast<V>(primal(v[j]));
        return buf.data();
    }
}

/// Σ_i ‖x_i − μ_{l_i}‖², each distance summed directly (as scikit-learn's inertia).
inline double inertia(const double* x, std::size_t n, std::size_t F, const double* mu, const int* labels) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double* c = mu + static_cast<std::size_t>(labels[i]) * F;
        double s = 0.0;
        for (std::size_t f = 0; f < F; ++f) {
            const double d = x[i * F + f] - c[f];
            s += d * d;
        }
        total += s;
    }
    return total;
}

/// Σ_f Var(x_·f), the variances with divisor n (two passes: means, then squared deviations), each
/// feature's sums in point order; row by row over x [n × F], so each pass reads x once.
inline double feature_variance_sum(const double* x, std::size_t n, std::size_t F) {
    std::vector<double> mean(F, 0.0), var(F, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t f = 0; f < F; ++f) mean[f] += x[i * F + f];
    }
    for (std::size_t f = 0; f < F; ++f) mean[f] /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t f = 0; f < F; ++f) {
            const double d = x[i * F + f] - mean[f];
            var[f] += d * d;
        }
    }
    double total = 0.0;
    for (std::size_t f = 0; f < F; ++f) total += var[f] / static_cast<double>(n);
    return total;
}

/// A splitmix64 stream: uniform doubles in [0, 1).
struct SplitMix {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    std::size_t below(std::size_t n) { return std::min(n - 1, static_cast<std::size_t>(uniform() * static_cast<double>(n))); }
};

struct SoftAssignArgs {
    std::size_t F;
    int* labels; // null when the caller wants no labels
};
/// The checks every soft_assign form makes (shapes, τ, finite inputs, the output's size), and the
/// labels vector sized to n.
template <class S, class C, class Tau>
SoftAssignArgs check_soft_assign(std::span<const S> x, std::size_t n, std::span<const C> centroids, std::size_t K, const Tau& tau,
                                 const char* where, std::size_t out_size, std::vector<int>* labels) {
    const std::size_t F = check_shapes(x.size(), n, centroids.size(), K, where);
    check_temperature(tau, where, "tau");
    check_size(out_size, n * K, where, "output");
    check_all_finite(x, where, "points");
    check_all_finite(centroids, where, "centroids");
    if (labels == nullptr) return {F, nullptr};
    labels->assign(n, 0);
    return {F, labels->data()};
}
} // namespace kmeans_detail

/// soft_assign for float or double without allocating: writes r [n × K] into `out` (a buffer the
/// caller keeps across calls, e.g. in a training loop: r is n·K values, 2 GB in double for 10^6
/// points and 256 centroids, and first touching fresh memory costs more than computing r).
template <exec::HostPolicy P, class V>
    requires std::is_floating_point_v<V>
void soft_assign_into(const P& policy, std::span<const V> x, std::size_t n, std::span<const V> centroids, std::size_t K,
                      std::type_identity_t<V> tau, std::span<V> out, std::vector<int>* labels = nullptr) {
    const auto [F, lab] = kmeans_detail::check_soft_assign(x, n, centroids, K, tau, "soft_assign_into", out.size(), labels);
    kmeans_detail::forward<V>(policy, x.data(), n, F, centroids.data(), K, tau, out.data(), lab, nullptr);
}

namespace kmeans_detail {
/// The tape form of soft_assign: ONE fused node whose n·K outputs' handles go into `out`.
template <exec::HostPolicy P, class S, class C, class Tau>
void soft_assign_node(const P& policy, std::span<const S> x, std::size_t n, std::span<const C> centroids, std::size_t K,
                      const Tau& tau, int* lab, std::span<ad::Var> out) {
    namespace sd = soft::detail;
    const std::size_t F = centroids.size() / K;
    ad::Tape& tape = ad::Tape::active();
    constexpr bool tau_var = sd::is_var_v<Tau>;
    const std::span<const double> saved_x = sd::saved_values(tape, x);
    const std::span<const double> saved_c = sd::saved_values(tape, centroids);
    const double tau_v = sd::primal_scalar(tau);
    const std::span<double> r = tape.record_node_into({sd::node_inputs(x), sd::node_inputs(centroids), sd::node_input(tau)}, out, [=](const ad::NodeGrad& g) {
        const auto xd = sd::input_values<S>(g, 0, saved_x);
        const auto cd = sd::input_values<C>(g, 1, saved_c);
        const double t = tau_var ? g.in_value(2)[0] : tau_v;
        double tb = 0.0;
        backward(policy, xd.data(), n, F, cd.data(), K, t, g.out_value().data(), g.out_adjoint().data(), sd::is_var_v<S> ? g.in_adjoint(0).data() : nullptr,
                 sd::is_var_v<C> ? g.in_adjoint(1).data() : nullptr, tau_var ? &tb : nullptr);
        if constexpr (tau_var) g.in_adjoint(2)[0] += tb;
    });
    const auto xd = sd::forward_values(tape, x, saved_x);
    const auto cd = sd::forward_values(tape, centroids, saved_c);
    forward<double>(policy, xd.data(), n, F, cd.data(), K, tau_v, r.data(), lab, nullptr);
}
} // namespace kmeans_detail

/// The tape form of soft_assign_into: r as ONE fused node on the active tape, its n·K handles
/// written into `out` (a buffer the caller keeps across training steps, as above; at least one of
/// the scalars is ad::Var, the others double).
template <exec::HostPolicy P, class S, class C, class Tau>
    requires std::is_same_v<promote_t<S, C, Tau>, ad::Var>
void soft_assign_into(const P& policy, std::span<const S> x, std::size_t n, std::span<const C> centroids, std::size_t K,
                      const Tau& tau, std::span<ad::Var> out, std::vector<int>* labels = nullptr) {
    int* lab = kmeans_detail::check_soft_assign(x, n, centroids, K, tau, "soft_assign_into", out.size(), labels).labels;
    kmeans_detail::soft_assign_node(policy, x, n, centroids, K, tau, lab, out);
}

/// Soft assignments r [n × K] of points x [n × F] to centroids [K × F] at temperature τ (see the
/// header comment). Scalars: any mix of double, float, Dual, Var (the result is their promotion);
/// for Var ONE fused node. `labels`, when not null, receives the hard labels (resized to n).
template <exec::HostPolicy P, class S, class C, class Tau>
std::vector<promote_t<S, C, Tau>> soft_assign(const P& policy, std::span<const S> x, std::size_t n, std::span<const C> centroids,
                                              std::size_t K, const Tau& tau, std::vector<int>* labels = nullptr) {
    using R = promote_t<S, C, Tau>;
    const auto [F, lab] = kmeans_detail::check_soft_assign(x, n, centroids, K, tau, "soft_assign", n * K, labels);
    if constexpr (std::is_floating_point_v<R>) {
        std::vector<R> xb, cb;
        const R* xv = kmeans_detail::values_as<R>(x, xb);
        const R* cv = kmeans_detail::values_as<R>(centroids, cb);
        std::vector<R> p = kmeans_detail::large_output<R>(n * K);
        kmeans_detail::forward<R>(policy, xv, n, F, cv, K, static_cast<R>(primal(tau)), p.data(), lab, nullptr);
        return p;
    } else if constexpr (std::is_same_v<R, ad::Var>) {
        std::vector<ad::Var> out = kmeans_detail::large_output<ad::Var>(n * K);
        kmeans_detail::soft_assign_node(policy, x, n, centroids, K, tau, lab, std::span<ad::Var>(out));
        return out;
    } else {
        // Dual (and other AD scalars, small problems): the squared distances themselves, element
        // by element (no expansion, so no digits lost to an offset), then the same softmax.
        using std::exp;
        std::vector<R> p(n * K, passive<R>(0.0));
        std::vector<R> d(K, passive<R>(0.0)); // D_ik
        for (std::size_t i = 0; i < n; ++i) {
            std::size_t best = 0;
            for (std::size_t k = 0; k < K; ++k) {
                R sq = passive<R>(0.0);
                for (std::size_t f = 0; f < F; ++f) {
                    const R diff = x[i * F + f] - centroids[k * F + f];
                    sq = sq + diff * diff;
                }
                d[k] = sq;
                if (primal(d[k]) < primal(d[best])) best = k;
            }
            if (!std::isfinite(primal(d[best]))) {
                throw InvalidArgument("soft_assign: the squared distances of point " + std::to_string(i) +
                                      " to the centroids exceed the range of its scalar: scale the data");
            }
            if (lab != nullptr) lab[i] = static_cast<int>(best);
            const R m = d[best];
            R s = passive<R>(0.0);
            for (std::size_t k = 0; k < K; ++k) {
                p[i * K + k] = exp(-(d[k] - m) / tau);
                s = s + p[i * K + k];
            }
            for (std::size_t k = 0; k < K; ++k) p[i * K + k] = p[i * K + k] / s;
        }
        return p;
    }
}

template <class S, class C, class Tau>
std::vector<promote_t<S, C, Tau>> soft_assign(std::span<const S> x, std::size_t n, std::span<const C> centroids, std::size_t K,
                                              const Tau& tau, std::vector<int>* labels = nullptr) {
    return soft_assign(exec::Cpu{}, x, n, centroids, K, tau, labels);
}

/// Hard labels argmin_k ‖x_i − μ_k‖² (lowest index on ties) of x [n × F], centroids [K × F].
template <exec::HostPolicy P = exec::Cpu>
std::vector<int> hard_assign(std::span<const double> x, std::size_t n, std::span<const double> centroids, std::size_t K,
                             const P& policy = {}) {
    constexpr const char* where = "hard_assign";
    const std::size_t F = kmeans_detail::check_shapes(x.size(), n, centroids.size(), K, where);
    kmeans_detail::check_all_finite(x, where, "points");
    kmeans_detail::check_all_finite(centroids, where, "centroids");
    std::vector<int> labels(n);
    kmeans_detail::hard_pass(policy, x.data(), n, F, centroids.data(), K, labels.data(), nullptr, nullptr, nullptr);
    return labels;
}

/// Σ_i ‖x_i − μ_{l_i}‖² (each squared distance summed coordinate by coordinate).
inline double kmeans_inertia(std::span<const double> x, std::size_t n, std::span<const double> centroids, std::size_t K,
                             std::span<const int> labels) {
    const std::size_t F = kmeans_detail::check_shapes(x.size(), n, centroids.size(), K, "kmeans_inertia");
    check_size(labels.size(), n, "kmeans_inertia", "labels");
    for (std::size_t i = 0; i < n; ++i) {
        if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= K) {
            throw InvalidArgument("kmeans_inertia: label " + std::to_string(labels[i]) + " of point " + std::to_string(i) +
                                  " is not in [0, K)");
        }
    }
    return kmeans_detail::inertia(x.data(), n, F, centroids.data(), labels.data());
}

/// The soft centroid update μ_k = Σ_i r_ik x_i / Σ_i r_ik (double). A centroid whose total weight
/// Σ_i r_ik is 0 keeps its value from `previous` ([K × F]). With one-hot r this is Lloyd's update.
inline std::vector<double> soft_centroid_update(std::span<const double> x, std::size_t n, std::span<const double> r, std::size_t K,
                                                std::span<const double> previous) {
    const std::size_t F = kmeans_detail::check_shapes(x.size(), n, previous.size(), K, "soft_centroid_update");
    check_size(r.size(), n * K, "soft_centroid_update", "assignments");
    const Eigen::Map<const kmeans_detail::Mat<double>> X(x.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(F));
    const Eigen::Map<const kmeans_detail::Mat<double>> Rm(r.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(K));
    kmeans_detail::Mat<double> S = Rm.transpose() * X;
    std::vector<double> out(previous.begin(), previous.end());
    for (std::size_t k = 0; k < K; ++k) {
        const double w = Rm.col(static_cast<Eigen::Index>(k)).sum();
        if (!(w > 0.0)) continue;
        for (std::size_t f = 0; f < F; ++f) out[k * F + f] = S(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(f)) / w;
    }
    return out;
}

/// k-means++ (D² sampling, see the header comment): K rows of x [n × F] as initial centroids.
inline std::vector<double> kmeans_plusplus(std::span<const double> x, std::size_t n, std::size_t F, std::size_t K, std::uint64_t seed) {
    constexpr const char* where = "kmeans_plusplus";
    if (F == 0) throw InvalidArgument(std::string(where) + ": the number of features F must be >= 1");
    if (K == 0) throw InvalidArgument(std::string(where) + ": the number of clusters K must be >= 1");
    if (n == 0) throw InvalidArgument(std::string(where) + ": no points (n = 0)");
    check_size(x.size(), n * F, where, "points");
    if (K > n) {
        throw InvalidArgument(std::string(where) + ": K = " + std::to_string(K) + " clusters need at least K points, got n = " +
                              std::to_string(n));
    }
    kmeans_detail::check_all_finite(x, where, "points");
    kmeans_detail::SplitMix rng{seed};
    std::vector<double> mu(K * F);
    std::vector<double> d2(n, std::numeric_limits<double>::infinity());
    std::size_t pick = rng.below(n);
    for (std::size_t k = 0; k < K; ++k) {
        if (k > 0) {
            double total = 0.0;
            for (const double v : d2) total += v;
            if (total > 0.0) {
                const double u = rng.uniform() * total;
                double acc = 0.0;
                pick = n; // the last point with d2 > 0 when u lands on the rounding edge
                for (std::size_t i = 0; i < n; ++i) {
                    if (d2[i] <= 0.0) continue;
                    acc += d2[i];
                    pick = i;
                    if (u < acc) break;
                }
            } else {
                pick = rng.below(n);
            }
        }
        std::copy(x.begin() + static_cast<std::ptrdiff_t>(pick * F), x.begin() + static_cast<std::ptrdiff_t>((pick + 1) * F),
                  mu.begin() + static_cast<std::ptrdiff_t>(k * F));
        for (std::size_t i = 0; i < n; ++i) {
            double s = 0.0;
            for (std::size_t f = 0; f < F; ++f) {
                const double d = x[i * F + f] - mu[k * F + f];
                s += d * d;
            }
            d2[i] = std::min(d2[i], s);
        }
    }
    return mu;
}

struct LloydOptions {
    std::size_t max_iter = 300;
    /// Relative tolerance: stop when Σ_k ‖μ_k^new − μ_k‖² ≤ tol · mean_f Var(x_·f) (scikit-learn's
    /// tol, the variance with divisor n).
    double tol = 1e-4;
};

struct LloydResult {
    std::vector<double> centroids; ///< [K × F]
    std::vector<int> labels;       ///< [n]
    double inertia = 0.0;
    std::size_t iterations = 0;    ///< scikit-learn's n_iter_
    bool strict_convergence = false; ///< the labels stopped changing (else: tol or max_iter)
};

/// Lloyd's k-means from the given initial centroids, iteration by iteration as scikit-learn's
/// KMeans(init=centroids, n_init=1, algorithm="lloyd"): each iteration labels every point by its
/// nearest centroid and moves each centroid to the mean of its points; stop when the labels equal
/// the previous iteration's (strict convergence) or the squared centroid shift is ≤ the scaled
/// tolerance; without strict convergence the points are labelled once more with the final
/// centroids. Empty clusters keep their centroid.
template <exec::HostPolicy P = exec::Cpu>
LloydResult lloyd(std::span<const double> x, std::size_t n, std::span<const double> initial, std::size_t K, const LloydOptions& opt = {},
                  const P& policy = {}) {
    constexpr const char* where = "lloyd";
    const std::size_t F = kmeans_detail::check_shapes(x.size(), n, initial.size(), K, where);
    if (K > n) throw InvalidArgument(std::string(where) + ": K = " + std::to_string(K) + " exceeds the number of points n = " + std::to_string(n));
    if (opt.max_iter == 0) throw InvalidArgument(std::string(where) + ": 'max_iter' must be >= 1");
    if (!(opt.tol >= 0.0) || !std::isfinite(opt.tol)) throw InvalidArgument(std::string(where) + ": 'tol' must be finite and >= 0");
    kmeans_detail::check_all_finite(x, where, "points");
    kmeans_detail::check_all_finite(initial, where, "centroids");
    // tol · mean over features of the (biased) variance
    const double tol = opt.tol * kmeans_detail::feature_variance_sum(x.data(), n, F) / static_cast<double>(F);

    LloydResult res;
    res.centroids.assign(initial.begin(), initial.end());
    res.labels.assign(n, 0);
    std::vector<int> old(n, -1);
    std::vector<double> sums(K * F), counts(K);
    std::size_t it = 0;
    for (; it < opt.max_iter; ++it) {
        // labels, and the sums and counts per label, in one pass over the points
        kmeans_detail::hard_pass(policy, x.data(), n, F, res.centroids.data(), K, res.labels.data(), sums.data(), counts.data(), nullptr);
        double shift = 0.0;
        for (std::size_t k = 0; k < K; ++k) {
            if (counts[k] == 0.0) continue;
            for (std::size_t f = 0; f < F; ++f) {
                const double c = sums[k * F + f] / counts[k];
                shift += (c - res.centroids[k * F + f]) * (c - res.centroids[k * F + f]);
                res.centroids[k * F + f] = c;
            }
        }
        if (res.labels == old) {
            res.strict_convergence = true;
            break;
        }
        if (shift <= tol) break;
        old = res.labels;
    }
    res.iterations = std::min(it + 1, opt.max_iter);
    if (!res.strict_convergence) { // relabel with the final centroids, the inertia in the same pass
        kmeans_detail::hard_pass(policy, x.data(), n, F, res.centroids.data(), K, res.labels.data(), nullptr, nullptr, &res.inertia);
    } else {
        res.inertia = kmeans_detail::inertia(x.data(), n, F, res.centroids.data(), res.labels.data());
    }
    return res;
}

struct SoftKMeansConfig {
    std::size_t n_clusters = 10;
    std::size_t n_features = 50;
    double temperature = 1.0; ///< τ of apply() (a temperature passed to apply overrides it)
    std::uint64_t seed = 0;   ///< k-means++ seed
    void validate() const {
        if (n_clusters == 0) throw InvalidArgument("SoftKMeansConfig: 'n_clusters' must be >= 1");
        if (n_features == 0) throw InvalidArgument("SoftKMeansConfig: 'n_features' must be >= 1");
        check_temperature(temperature, "SoftKMeansConfig", "temperature");
    }
};

struct SoftKMeansFitOptions {
    double tau_start = 0.0;        ///< first τ; 0: the mean squared distance of a point to its nearest initial centroid
    double tau_end = 0.0;          ///< last τ; 0: 1e-4 · tau_start
    double decay = 0.5;            ///< τ ← τ·decay between stages, in (0, 1)
    std::size_t inner_iterations = 20; ///< soft EM steps per τ at most
    double tol = 1e-4;             ///< stage ends when Σ‖Δμ‖² ≤ tol · mean feature variance
    bool finish_with_lloyd = true; ///< then Lloyd's hard iterations to convergence
    LloydOptions lloyd = {};
};

struct SoftKMeansFitReport {
    std::size_t stages = 0;           ///< temperatures visited
    std::size_t soft_iterations = 0;  ///< soft EM steps in all
    std::size_t lloyd_iterations = 0; ///< Lloyd iterations of the finish (0 when disabled)
    double inertia = 0.0;
};

template <class T>
struct SoftKMeansResult {
    std::vector<T> assignments; ///< [n × K] r_ik, rows sum to 1
    std::vector<int> labels;    ///< [n] argmin distance, lowest index on ties
};

class SoftKMeans {
public:
    explicit SoftKMeans(SoftKMeansConfig cfg = {})
        : cfg_((cfg.validate(), cfg)), centroids_("centroids", std::vector<double>(cfg.n_clusters * cfg.n_features, 0.0)) {}

    const SoftKMeansConfig& config() const noexcept { return cfg_; }
    ad::Parameter& centroids() noexcept { return centroids_; }
    const ad::Parameter& centroids() const noexcept { return centroids_; }
    std::vector<ad::Parameter*> parameters() { return {&centroids_}; }

    /// Sets the centroids to k-means++ points of x [n × F] (seed from the config).
    void init_kmeanspp(std::span<const double> x, std::size_t n) {
        const auto mu = kmeans_plusplus(x, n, cfg_.n_features, cfg_.n_clusters, cfg_.seed);
        std::copy(mu.begin(), mu.end(), centroids_.values().begin());
    }
    /// Sets the centroids ([K × F]).
    void set_centroids(std::span<const double> mu) {
        check_size(mu.size(), centroids_.size(), "SoftKMeans::set_centroids", "centroids");
        kmeans_detail::check_all_finite(mu, "SoftKMeans::set_centroids", "centroids");
        std::copy(mu.begin(), mu.end(), centroids_.values().begin());
    }

    /// Soft assignments of x [n × F] at the config's temperature (centroids from the binder).
    template <class T, class S, exec::HostPolicy P = exec::Cpu>
    SoftKMeansResult<promote_t<T, S>> apply(ad::Binder<T>& bind, std::span<const S> x, std::size_t n, const P& policy = {}) const {
        return apply(bind, x, n, cfg_.temperature, policy);
    }
    /// As apply, at temperature tau (a double or a scalar to differentiate).
    template <class T, class S, class Tau, exec::HostPolicy P = exec::Cpu>
    SoftKMeansResult<promote_t<T, S, Tau>> apply(ad::Binder<T>& bind, std::span<const S> x, std::size_t n, const Tau& tau,
                                                 const P& policy = {}) const {
        check_size(x.size(), n * cfg_.n_features, "SoftKMeans::apply", "points");
        SoftKMeansResult<promote_t<T, S, Tau>> out;
        out.assignments = soft_assign(policy, x, n, bind(centroids_), cfg_.n_clusters, tau, &out.labels);
        return out;
    }

    /// Deterministic annealing (see the header comment) from the current centroids, or from
    /// k-means++ when `init` is true. Stores labels() and inertia().
    template <exec::HostPolicy P = exec::Cpu>
    SoftKMeansFitReport fit(std::span<const double> x, std::size_t n, const SoftKMeansFitOptions& opt = {}, bool init = true,
                            const P& policy = {}) {
        constexpr const char* where = "SoftKMeans::fit";
        const std::size_t K = cfg_.n_clusters, F = cfg_.n_features;
        check_size(x.size(), n * F, where, "points");
        if (K > n) throw InvalidArgument(std::string(where) + ": K = " + std::to_string(K) + " exceeds the number of points n = " + std::to_string(n));
        if (!(opt.decay > 0.0 && opt.decay < 1.0)) throw InvalidArgument(std::string(where) + ": 'decay' must be in (0, 1)");
        if (opt.tau_start != 0.0) check_temperature(opt.tau_start, where, "tau_start");
        if (opt.tau_end != 0.0) check_temperature(opt.tau_end, where, "tau_end");
        kmeans_detail::check_all_finite(x, where, "points");
        if (init) init_kmeanspp(x, n);
        std::vector<double> mu(centroids_.values().begin(), centroids_.values().end());
        std::vector<double> dmin(n), r(n * K);
        kmeans_detail::forward<double>(policy, x.data(), n, F, mu.data(), K, 1.0, nullptr, nullptr, dmin.data());
        double tau = opt.tau_start;
        if (tau == 0.0) {
            for (const double d : dmin) tau += d;
            tau /= static_cast<double>(n);
            if (!(tau > 0.0)) tau = 1.0; // every point on a centroid
        }
        const double tau_end = opt.tau_end != 0.0 ? opt.tau_end : 1e-4 * tau;
        const double tol = opt.tol * kmeans_detail::feature_variance_sum(x.data(), n, F) / static_cast<double>(F);
        SoftKMeansFitReport rep;
        for (;;) {
            ++rep.stages;
            for (std::size_t s = 0; s < opt.inner_iterations; ++s) {
                kmeans_detail::forward<double>(policy, x.data(), n, F, mu.data(), K, tau, r.data(), nullptr, nullptr);
                const auto next = soft_centroid_update(x, n, r, K, mu);
                double shift = 0.0;
                for (std::size_t j = 0; j < mu.size(); ++j) shift += (next[j] - mu[j]) * (next[j] - mu[j]);
                mu = next;
                ++rep.soft_iterations;
                if (shift <= tol) break;
            }
            if (tau <= tau_end) break;
            tau = std::max(tau * opt.decay, tau_end);
        }
        if (opt.finish_with_lloyd) {
            auto res = lloyd(x, n, std::span<const double>(mu), K, opt.lloyd, policy);
            mu = std::move(res.centroids);
            labels_ = std::move(res.labels);
            inertia_ = res.inertia;
            rep.lloyd_iterations = res.iterations;
        } else {
            labels_.assign(n, 0);
            kmeans_detail::hard_pass(policy, x.data(), n, F, mu.data(), K, labels_.data(), nullptr, nullptr, &inertia_);
        }
        std::copy(mu.begin(), mu.end(), centroids_.values().begin());
        rep.inertia = inertia_;
        return rep;
    }

    /// Hard labels of the last fit.
    const std::vector<int>& labels() const noexcept { return labels_; }
    /// Σ_i ‖x_i − μ_{l_i}‖² of the last fit.
    double inertia() const noexcept { return inertia_; }
    /// Hard labels of new points with the current centroids.
    template <exec::HostPolicy P = exec::Cpu>
    std::vector<int> predict(std::span<const double> x, std::size_t n, const P& policy = {}) const {
        return hard_assign(x, n, centroids_.values(), cfg_.n_clusters, policy);
    }

private:
    SoftKMeansConfig cfg_;
    ad::Parameter centroids_;
    std::vector<int> labels_;
    double inertia_ = 0.0;
};

} // namespace diffbio::ops
