#pragma once
// CUDA backend of the batched smooth Smith-Waterman / Needleman-Wunsch DP of
// <diffbio/ops/alignment/smith_waterman.hpp> (recursions, conventions and tie rules there): scores
// and Σ_k w_k·∂score_k/∂(S, open, extend, τ), as SmithWaterman::value_and_grad, for T = float or
// double and every model the CPU SIMD path runs: linear and affine (Gotoh, three states) gaps,
// local and global, soft and hard, and DiffBio's compat recursion. Integer-coded pairs only
// (CodePair; profile pairs stay on the CPU), alphabets of at most 32 letters.
//
// Mapping: ONE WARP PER PAIR (warps_per_block pairs per block, pairs sorted by m·n descending so
// the longest start first). The DP rows 0..m (row 0 = the border) are cut into strips of 32 rows;
// lane t owns row 32k + t of strip k and the warp sweeps the strip as an anti-diagonal wavefront:
// at step s (0 ≤ s < n + 32) lane t computes cell (32k + t, j = s − t), 0 ≤ j ≤ n (column 0 = the
// border). The up and diagonal neighbours come from lane t − 1 by __shfl_up_sync (the diagonal is
// the previous step's up value, kept in a register); lane 0 reads the bottom row of the strip above,
// which lane 31 wrote to global memory. Cell scores: S (A×A, pre-scaled, below) in shared memory,
// indexed by the lane's query code and the target code of its column. Nothing but the pair's own
// m × n cells is computed (no padding, no masking artefacts).
//
// Soft maxima in base 2: every value is kept scaled by k = 1/(τ·ln 2) (hard: k = 1), so that
// smax_τ(c) = m + log2(1 + Σ_{c_k ≠ first max} 2^{c_k − m}) with exactly computed differences and
// no multiplication in the recursions (the first pass and the backward's recomputation therefore
// give bit-identical values, which the hard and compat tie rules rely on). Float on the device
// uses the hardware ex2/lg2 (PTX ex2.approx.ftz / lg2.approx.ftz) because their arguments are
// confined: 2^x only of differences to the maximum (x ≤ 0, 2 ulp relative error, results below
// 2^-126 flushed as the CPU kernels flush subnormals) and log2 only of 1 + Σ ∈ [1, 4] (absolute
// error below 2^-22, less than the rounding of the float value it is added to); nothing else is
// approximate (IEEE reciprocal, no -use_fast_math). Double uses exp2/log2, host code exp2f/log2f.
// "No path" is the sentinel −1e30 (float) / −1e300 (double), as in the CPU SIMD kernels.
//
// Backward without the DP matrix in global memory. The first (forward) pass writes, per pair,
// (a) the bottom row of every strip ((⌈(m+1)/32⌉ − 1)·(n+1)·K values, K = 3 affine, 1 otherwise) and
// (b) a frontier checkpoint every C wavefront steps (C = SwCudaOptions::segment, default 32): each
// lane's two carried cells, 2K values, i.e. ⌈(m+1)/32⌉·⌈(n+32)/C⌉·32·2K values. The backward kernel
// walks the strips bottom-up and each strip's segments of C steps right-to-left: it reloads the
// segment's frontier, recomputes its C steps into SHARED memory (Q values per cell: affine M, X, Y;
// linear M and the three P candidates; compat H and its three candidates) and sweeps them in
// reverse. Adjoints travel one lane up per step by __shfl_down_sync (affine: ∂/∂M and ∂/∂X of the
// row below, "pulled" with weights that depend only on the cell's own M, X, Y; linear and compat:
// the cell's softmax weights "push" its adjoint to its up, left and diagonal predecessors), and
// between strips through a global row of n + 1 messages. So each cell is computed twice forward
// and once backward, and the checkpoints cost about 2·(24/C + 12/32) bytes of global traffic per
// cell (float, affine; 2.25 at C = 32).
// ∂F/∂s_ij (the posterior) goes to per-lane double bins in shared memory keyed by the target
// code (the lane's query code is fixed within a strip), which the warp adds into its A×A double
// block of shared memory after each strip and into global memory (double atomicAdd) after the
// pair; ∂/∂(open, extend, τ) accumulate per lane in float over one segment, then in double, and
// go to global memory with one atomicAdd each per pair.
//
// Memory. Device workspace per pair (T elements): (⌈(m+1)/32⌉ − 1)·(n+1)·K + ⌈(m+1)/32⌉·⌈(n+32)/C⌉·64K
// + 2·(n+1)·K_msg (K_msg = 2 affine, 1 otherwise); for float, affine, C = 32: about 1.2 bytes per
// cell (1.2 MB for a 1000×1000 pair, 1.2 GB for 1,024 of them). value_and_grad processes the batch
// in chunks whose workspace stays under SwCudaOptions::max_workspace_bytes (default 2 GiB; a single
// larger pair gets its own chunk); a SwCudaWorkspace keeps it between calls. Scores only: 2·(n+1)·K
// values per pair. Shared memory per block: A²·sizeof(T) + warps·(C·Q·32·sizeof(T) + 32·A·8 + A²·8) bytes
// (backward; forward: A²·sizeof(T)), e.g. 4 warps, float, affine, DNA: 52.6 KiB per block, i.e.
// 4 blocks (16 warps) per H100 SM (228 KiB). Registers (ptxas, sm_90, float): forward 44-55, backward
// 56-94 per thread, no local memory; register limits allow 16-24 warps per SM.
//
// Two levels of API, T = float or double:
//   * device level (smith_waterman_scores / smith_waterman_value_and_grad taking SwCudaModel<T>):
//     codes, weights, scores and gradients in device memory, the small pair table (offsets into
//     the codes and lengths) on the host. Stream-ordered on the policy's stream; each call
//     synchronises the stream before it returns (its small tables are freed).
//   * host convenience (taking a SmithWaterman and CodePairs in host memory): the same inputs and
//     result (SwGradResult<F>) as SmithWaterman::value_and_grad; copies, runs, copies back.
// Errors: InvalidArgument for a code ≥ A, an alphabet of more than 32 letters, non-finite
// parameters or weights, τ ≤ 0, a segment of 0 or one that does not fit in shared memory;
// ShapeError when weights and pairs differ in length; BackendError for CUDA failures.
// nvcc only.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/warp.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>

namespace diffbio::ops::cuda {

/// Launch and memory settings of the CUDA Smith-Waterman.
struct SwCudaOptions {
    std::size_t segment = 32;                                ///< C: wavefront steps recomputed at once in the backward
    unsigned warps_per_block = 4;                            ///< pairs per thread block
    std::size_t max_workspace_bytes = std::size_t(2) << 30; ///< device workspace of one value_and_grad chunk
};

/// Reusable device memory for the DP workspace of repeated calls (grows, never shrinks; a call
/// without one allocates and frees its own).
class SwCudaWorkspace {
public:
    void* reserve(std::size_t bytes) {
        if (buf_.size() < bytes) {
            buf_ = exec::cuda::DeviceBuffer<unsigned char>(); // free first (cudaFree synchronises)
            buf_ = exec::cuda::DeviceBuffer<unsigned char>(bytes);
        }
        return buf_.data();
    }
    std::size_t bytes() const noexcept { return buf_.size(); }

private:
    exec::cuda::DeviceBuffer<unsigned char> buf_;
};

/// Longest alphabet the CUDA kernels take (shared-memory bins of the substitution gradient).
inline constexpr std::size_t sw_cuda_max_alphabet = 32;

/// The model and parameter values of one launch (host memory).
template <class T>
struct SwCudaModel {
    ops::detail::SwModel model;  ///< kind, local, hard
    std::vector<T> S;            ///< A×A row-major
    std::size_t A = 0;
    T open = T(0), extend = T(0), tau = T(1);
};

/// One pair of a device batch: offsets into the device code array and the lengths.
struct SwCudaPair {
    std::uint64_t query_offset = 0;
    std::uint64_t target_offset = 0;
    std::uint32_t query_length = 0;
    std::uint32_t target_length = 0;
};

namespace sw_cuda_detail {

using ops::detail::SwKind;

inline constexpr unsigned full_mask = 0xffffffffu;

template <class T>
struct Num;
template <>
struct Num<float> {
    static constexpr float none = -1e30f;
    static constexpr float ln2 = 0.693147180559945309f;
    // Device: the hardware 2^x and log2 (MUFU). Every argument of ex2 is ≤ 0 (a difference to the
    // maximum) and its relative error is 2 ulp; results below 2^-126 flush to 0, as the CPU kernels
    // flush subnormals (they weigh < 1e-38 against the maximum's 1). Every argument of lg2 lies in
    // [1, 4] (1 + a sum of at most three such terms), where its absolute error is below 2^-22,
    // i.e. τ·1.7e-7 on a soft max: below the rounding of the float values it is added to.
    DIFFBIO_HD static float ex2(float x) {
#if defined(__CUDA_ARCH__)
        float r;
        asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
        return r;
#else
        return exp2f(x);
#endif
    }
    DIFFBIO_HD static float lg2(float x) {
#if defined(__CUDA_ARCH__)
        float r;
        asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
        return r;
#else
        return log2f(x);
#endif
    }
    DIFFBIO_HD static float max(float a, float b) { return fmaxf(a, b); }
    DIFFBIO_HD static float min(float a, float b) { return fminf(a, b); }
    DIFFBIO_HD static float rcp(float x) {
#if defined(__CUDA_ARCH__)
        return __frcp_rn(x); // IEEE round-to-nearest reciprocal (not an approximation)
#else
        return 1.0f / x;
#endif
    }
};
template <>
struct Num<double> {
    static constexpr double none = -1e300;
    static constexpr double ln2 = 0.693147180559945309417;
    DIFFBIO_HD static double ex2(double x) { return exp2(x); }
    DIFFBIO_HD static double lg2(double x) { return log2(x); }
    DIFFBIO_HD static double max(double a, double b) { return fmax(a, b); }
    DIFFBIO_HD static double min(double a, double b) { return fmin(a, b); }
    DIFFBIO_HD static double rcp(double x) {
#if defined(__CUDA_ARCH__)
        return __drcp_rn(x);
#else
        return 1.0 / x;
#endif
    }
};

// ---- per-cell maths (scaled units: every value times k = 1/(τ ln 2)) ------------------------------

template <bool Hard, class T>
DIFFBIO_HD inline T smax2(T a, T b) {
    using N = Num<T>;
    const T m = N::max(a, b);
    if constexpr (Hard) {
        return m;
    } else {
        return m + N::lg2(T(1) + N::ex2(N::min(a, b) - m));
    }
}

template <bool Hard, class T>
DIFFBIO_HD inline T smax3(T a, T b, T c) {
    using N = Num<T>;
    const T ab = N::max(a, b);
    const T m = N::max(ab, c);
    if constexpr (Hard) {
        return m;
    } else {
        return m + N::lg2(T(1) + (N::ex2(N::min(a, b) - m) + N::ex2(N::min(ab, c) - m)));
    }
}

template <bool Hard, class T>
DIFFBIO_HD inline T smax4(T a, T b, T c, T d) {
    using N = Num<T>;
    const T ab = N::max(a, b), cd = N::max(c, d);
    const T m = N::max(ab, cd);
    if constexpr (Hard) {
        return m;
    } else {
        return m + N::lg2(T(1) + (N::ex2(N::min(a, b) - m) + N::ex2(N::min(c, d) - m) + N::ex2(N::min(ab, cd) - m)));
    }
}

/// Softmax weights w of K scaled candidates (hard: one-hot at the first maximum); returns the
/// entropy −Σ w ln w in natural units (∂smax_τ/∂τ; 0 when hard).
template <bool Hard, int K, class T>
DIFFBIO_HD inline T weights(const T (&c)[K], T (&w)[K]) {
    using N = Num<T>;
    if constexpr (Hard) {
        int best = 0;
        for (int k = 1; k < K; ++k) best = c[k] > c[best] ? k : best;
        for (int k = 0; k < K; ++k) w[k] = k == best ? T(1) : T(0);
        return T(0);
    } else {
        T m = c[0];
        for (int k = 1; k < K; ++k) m = N::max(m, c[k]);
        T t[K];
        T z = T(0);
        for (int k = 0; k < K; ++k) {
            t[k] = c[k] - m;
            w[k] = N::ex2(t[k]);
            z += w[k];
        }
        const T iz = N::rcp(z);
        T wt = T(0);
        for (int k = 0; k < K; ++k) {
            w[k] *= iz;
            wt += w[k] * t[k];
        }
        return N::ln2 * (N::lg2(z) - wt);
    }
}

/// Scaled scalars of a launch: o·k, e·k, (o + e)·k, and 1/k to bring scores back.
template <class T>
struct Scalars {
    T open;
    T extend;
    T gap;     ///< compat: open + extend
    T unscale; ///< τ·ln 2 (hard: 1)
};

/// Values carried from cell to cell, kept per cell for the backward, and sent per step.
DIFFBIO_HD constexpr int carried(SwKind k) { return k == SwKind::Affine ? 3 : 1; }
DIFFBIO_HD constexpr int stored(SwKind k) { return k == SwKind::Affine ? 3 : 4; }
DIFFBIO_HD constexpr int message(SwKind k) { return k == SwKind::Affine ? 2 : 1; }

/// Forward of one cell (i, j): L, U, D the carried values of (i, j−1), (i−1, j), (i−1, j−1);
/// s the cell score (inner cells). out: the carried values; keep: what the backward needs;
/// match: the value the local end score sums (affine and linear M, compat H).
template <class T, SwKind Kd, bool Local, bool Hard>
DIFFBIO_HD inline void cell_forward(bool i0, bool j0, const T* L, const T* U, const T* D, T s, const Scalars<T>& p,
                                    T* out, T* keep, T& match) {
    const T none = Num<T>::none;
    if constexpr (Kd == SwKind::Affine) {
        const T o = p.open, e = p.extend;
        T M = none, X = none, Y = none;
        if (i0 && j0) {
            M = Local ? none : T(0);
        } else if (i0) {
            Y = smax3<Hard>(L[0] - o, L[2] - e, L[1] - o);
        } else if (j0) {
            X = smax3<Hard>(U[0] - o, U[1] - e, U[2] - o);
        } else {
            if constexpr (Local) {
                M = s + smax4<Hard>(T(0), D[0], D[1], D[2]);
            } else {
                M = s + smax3<Hard>(D[0], D[1], D[2]);
            }
            X = smax3<Hard>(U[0] - o, U[1] - e, U[2] - o);
            Y = smax3<Hard>(L[0] - o, L[2] - e, L[1] - o);
        }
        out[0] = keep[0] = M;
        out[1] = keep[1] = X;
        out[2] = keep[2] = Y;
        match = M;
    } else if constexpr (Kd == SwKind::Linear) {
        const T e = p.extend;
        T M = none, P;
        if (i0 && j0) {
            P = Local ? none : T(0);
        } else if (i0) {
            P = L[0] - e;
        } else if (j0) {
            P = U[0] - e;
        } else {
            if constexpr (Local) {
                M = s + smax2<Hard>(T(0), D[0]);
            } else {
                M = s + D[0];
            }
            P = smax3<Hard>(M, U[0] - e, L[0] - e);
        }
        out[0] = P;
        keep[0] = M;
        keep[1] = U[0];
        keep[2] = L[0];
        keep[3] = D[0];
        match = M;
    } else {
        const T g = p.gap;
        T H = T(0), ds = T(0);
        if (!i0 && !j0) {
            ds = D[0] + s;
            H = smax4<Hard>(T(0), ds, U[0] - g, L[0] - g);
        }
        out[0] = H;
        keep[0] = H;
        keep[1] = ds;
        keep[2] = U[0];
        keep[3] = L[0];
        match = H;
    }
}

/// Per-lane float accumulators of one segment.
template <class T>
struct Acc {
    T tau = T(0), open = T(0), extend = T(0), ent = T(0);
};

/// Affine backward of one cell by pulling: aD = ∂/∂M(i+1, j+1), aU = ∂/∂X(i+1, j), aL = ∂/∂Y(i, j+1),
/// whose soft maxima take their candidates from this cell's v = (M, X, Y) only. a: ∂/∂(M, X, Y).
template <class T, bool Local, bool Hard>
DIFFBIO_HD inline void affine_pull(const T* v, T aD, T aU, T aL, const Scalars<T>& p, T* a, Acc<T>& acc) {
    a[0] = a[1] = a[2] = T(0);
    if (aD == T(0) && aU == T(0) && aL == T(0)) return;
    const T o = p.open, e = p.extend;
    T wX[3], wY[3], wD[3];
    const T cX[3] = {v[0] - o, v[1] - e, v[2] - o};
    const T cY[3] = {v[0] - o, v[2] - e, v[1] - o};
    const T hX = weights<Hard>(cX, wX);
    const T hY = weights<Hard>(cY, wY);
    T hD;
    if constexpr (Local) {
        const T c[4] = {T(0), v[0], v[1], v[2]};
        T w[4];
        hD = weights<Hard>(c, w);
        wD[0] = w[1], wD[1] = w[2], wD[2] = w[3];
    } else {
        const T c[3] = {v[0], v[1], v[2]};
        hD = weights<Hard>(c, wD);
    }
    a[0] = aD * wD[0] + aU * wX[0] + aL * wY[0];
    a[1] = aD * wD[1] + aU * wX[1] + aL * wY[2];
    a[2] = aD * wD[2] + aU * wX[2] + aL * wY[1];
    acc.tau += aD * hD + aU * hX + aL * hY;
    acc.open -= aU * (wX[0] + wX[2]) + aL * (wY[0] + wY[2]);
    acc.extend -= aU * wX[1] + aL * wY[1];
}

/// Linear / compat backward of one cell by pushing: a = the complete adjoint of the cell's state
/// (P or H), kv its kept candidates; returns ∂F/∂s_ij (posterior) and the pushes to (i−1, j),
/// (i, j−1), (i−1, j−1). end: the local end score's share of ∂/∂M (linear only).
template <class T, SwKind Kd, bool Local, bool Hard>
DIFFBIO_HD inline T push(bool i0, bool j0, const T* kv, T a, T end, const Scalars<T>& p, T& up, T& left, T& diag,
                         Acc<T>& acc) {
    up = left = diag = T(0);
    if constexpr (Kd == SwKind::Linear) {
        if (i0 || j0) { // border: P = P_prev − e (a single candidate), P_00 constant
            if (i0 && j0) return T(0);
            (i0 ? left : up) = a;
            acc.extend -= a;
            return T(0);
        }
        const T e = p.extend;
        T aM = end;
        if (a != T(0)) {
            const T c[3] = {kv[0], kv[1] - e, kv[2] - e};
            T w[3];
            acc.tau += a * weights<Hard>(c, w);
            acc.extend -= a * (w[1] + w[2]);
            up = a * w[1];
            left = a * w[2];
            aM += a * w[0];
        }
        if (aM != T(0)) {
            if constexpr (Local) {
                const T c[2] = {T(0), kv[3]};
                T w[2];
                acc.tau += aM * weights<Hard>(c, w);
                diag = aM * w[1];
            } else {
                diag = aM;
            }
        }
        return aM;
    } else {
        (void)end;
        if (i0 || j0 || a == T(0)) return T(0); // compat borders are constants
        const T g = p.gap;
        const T c[4] = {T(0), kv[1], kv[2] - g, kv[3] - g};
        T w[4];
        acc.tau += a * weights<Hard>(c, w);
        acc.open -= a * (w[2] + w[3]);
        acc.extend -= a * (w[2] + w[3]);
        diag = a * w[1];
        up = a * w[2];
        left = a * w[3];
        return diag;
    }
}

/// What the forward pass leaves for the backward, per pair (scaled units).
template <class T>
struct PairFwd {
    T F;                ///< the score, scaled
    T mx;               ///< compat: the hard max over H
    std::uint32_t bi;   ///< local hard: the end cell (0, 0: the empty alignment)
    std::uint32_t bj;
    std::uint32_t ties; ///< compat: cells with H = mx
};

/// Workspace layout of one pair (T elements from its offset).
struct Layout {
    std::uint32_t W, strips, steps, segs;
    std::size_t rows, ckpt, msg, total;
};
DIFFBIO_HD inline Layout layout(SwKind kd, std::uint32_t m, std::uint32_t n, std::uint32_t C) {
    Layout l{};
    const std::size_t K = static_cast<std::size_t>(carried(kd));
    l.W = n + 1;
    l.strips = (m + 32) / 32;
    l.steps = n + 32;
    l.segs = (l.steps + C - 1) / C;
    l.rows = 0;
    l.ckpt = l.rows + (static_cast<std::size_t>(l.strips) - 1) * l.W * K;
    l.msg = l.ckpt + static_cast<std::size_t>(l.strips) * l.segs * 32 * 2 * K;
    l.total = l.msg + 2 * static_cast<std::size_t>(l.W) * static_cast<std::size_t>(message(kd));
    return l;
}

/// The warp operations of the device (<diffbio/exec/cuda/warp.cuh>). The same drivers run on a host
/// emulation of a warp in tests/cuda/test_sw_cuda_emulation.cu.
using exec::cuda::DeviceWarp;

/// One pair's geometry and inputs for the drivers.
template <class T>
struct PairIn {
    const std::uint8_t* q;
    const std::uint8_t* t;
    std::uint32_t m, n;
    const T* S; ///< scaled A×A (shared memory on the device)
    std::uint32_t A;
};

/// The forward pass of one pair by one warp. With work (value_and_grad) it keeps the bottom row
/// of every strip and a frontier checkpoint every C steps there (layout()); without it (scores
/// only) the strip rows alternate between the two rows of `rows` (2·(n+1)·K values). fwd (may be
/// null) receives the facts the backward needs. Returns the score (natural units) in every lane.
template <class T, SwKind Kd, bool Local, bool Hard, class Warp>
DIFFBIO_HD T forward_pair(const Warp& w, const PairIn<T>& pr, const Scalars<T>& p, T* work, T* two_rows,
                          std::uint32_t C, PairFwd<T>* fwd) {
    using N = Num<T>;
    constexpr int K = carried(Kd);
    constexpr int Q = stored(Kd);
    const unsigned lane = w.lane();
    const T none = N::none;
    const std::uint32_t m = pr.m, n = pr.n;
    const Layout lay = layout(Kd, m, n, C == 0 ? 1 : C);
    T* rows = work == nullptr ? two_rows : work + lay.rows;
    T* ck = work == nullptr ? nullptr : work + lay.ckpt;
    auto slot = [&](std::uint32_t k) -> std::size_t { return work == nullptr ? (k & 1U) : k; }; // strip k's bottom row
    T emax = T(0), esum = lane == 0 ? T(1) : T(0); // local soft: the end sum (the empty alignment once)
    T best = T(0);                                // local hard
    std::uint32_t bi = 0, bj = 0;
    T mx = T(0);                                  // compat
    std::uint32_t ties = 0;
    T root = none;                                // global: the score at (m, n)
    for (std::uint32_t k = 0; k < lay.strips; ++k) {
        const std::uint32_t i = 32 * k + lane;
        const bool row_ok = i <= m;
        const T* Srow = pr.S + (row_ok && i > 0 ? static_cast<std::uint32_t>(pr.q[i - 1]) * pr.A : 0U);
        T L[K], Dg[K];
        for (int c = 0; c < K; ++c) L[c] = Dg[c] = none;
        std::uint32_t next_ck = 0, seg = 0; // the next checkpoint step and its segment
        for (std::uint32_t s = 0; s < lay.steps; ++s) {
            if (ck != nullptr && s == next_ck) {
                T* at = ck + ((static_cast<std::size_t>(k) * lay.segs + seg) * 32 + lane) * 2 * K;
                for (int c = 0; c < K; ++c) at[c] = L[c], at[K + c] = Dg[c];
                next_ck += C;
                ++seg;
            }
            T U[K];
            for (int c = 0; c < K; ++c) U[c] = w.up(L[c]);
            const int j = static_cast<int>(s) - static_cast<int>(lane);
            if (!row_ok || j < 0 || j > static_cast<int>(n)) continue;
            if (lane == 0 && k > 0) { // the bottom row of strip k − 1, written by its lane 31
                for (int c = 0; c < K; ++c) U[c] = rows[(slot(k - 1) * lay.W + j) * K + c];
            }
            const bool inner = i > 0 && j > 0;
            const T sc = inner ? Srow[pr.t[j - 1]] : T(0);
            T out[K], keep[Q], match;
            cell_forward<T, Kd, Local, Hard>(i == 0, j == 0, L, U, Dg, sc, p, out, keep, match);
            if (inner) {
                if constexpr (Kd == SwKind::Compat) {
                    if (match > mx) {
                        mx = match;
                        ties = 1;
                    } else if (match == mx) {
                        ++ties;
                    }
                } else if constexpr (Local && Hard) {
                    if (match > best) best = match, bi = i, bj = static_cast<std::uint32_t>(j);
                } else if constexpr (Local) {
                    const T d = match - emax;
                    const T ex = N::ex2(-(d < T(0) ? -d : d));
                    esum = d <= T(0) ? esum + ex : esum * ex + T(1);
                    emax = N::max(emax, match);
                }
            }
            if constexpr (!Local) {
                if (i == m && j == static_cast<int>(n)) {
                    if constexpr (Kd == SwKind::Affine) {
                        root = smax3<Hard>(out[0], out[1], out[2]);
                    } else {
                        root = out[0];
                    }
                }
            }
            if (lane == 31 && k + 1 < lay.strips) {
                for (int c = 0; c < K; ++c) rows[(slot(k) * lay.W + j) * K + c] = out[c];
            }
            for (int c = 0; c < K; ++c) Dg[c] = U[c], L[c] = out[c];
        }
        w.sync(); // the strip's bottom row is visible to lane 0 of the next strip
    }
    // Warp reductions.
    T F;
    if constexpr (Kd == SwKind::Compat) {
        for (unsigned off = 16; off > 0; off >>= 1) {
            const T om = w.flip(mx, off);
            const std::uint32_t ot = w.flip(ties, off);
            if (om > mx) {
                mx = om;
                ties = ot;
            } else if (om == mx) {
                ties += ot;
            }
        }
        F = smax2<Hard>(T(0), mx);
    } else if constexpr (!Local) {
        for (unsigned off = 16; off > 0; off >>= 1) root = N::max(root, w.flip(root, off));
        F = root;
    } else if constexpr (Hard) {
        for (unsigned off = 16; off > 0; off >>= 1) {
            const T ob = w.flip(best, off);
            const std::uint32_t oi = w.flip(bi, off), oj = w.flip(bj, off);
            if (ob > best || (ob == best && (oi < bi || (oi == bi && oj < bj)))) best = ob, bi = oi, bj = oj;
        }
        F = best;
    } else {
        for (unsigned off = 16; off > 0; off >>= 1) {
            const T om = w.flip(emax, off), os = w.flip(esum, off);
            const T M = N::max(emax, om);
            esum = esum * N::ex2(emax - M) + os * N::ex2(om - M);
            emax = M;
        }
        F = emax + N::lg2(esum);
    }
    if (fwd != nullptr && lane == 0) {
        fwd->F = F;
        fwd->mx = mx;
        fwd->bi = bi;
        fwd->bj = bj;
        fwd->ties = ties;
    }
    return F * p.unscale;
}

/// Per-lane double sums of the backward.
struct LaneGrads {
    double tau = 0.0, open = 0.0, extend = 0.0;
};

/// The backward of one pair by one warp after forward_pair wrote `work` and `fwd` (same C).
/// buf: this warp's C·Q·32 shared values; bins: its A·32 doubles; sbar: its A×A doubles
/// (accumulated). fbar ≠ 0. Returns this lane's share of ∂/∂(τ, open, extend).
template <class T, SwKind Kd, bool Local, bool Hard, class Warp>
DIFFBIO_HD LaneGrads backward_pair(const Warp& w, const PairIn<T>& pr, const Scalars<T>& p, T* work, std::uint32_t C,
                                   const PairFwd<T>& fwd, T fbar, T* buf, double* bins, double* sbar) {
    using N = Num<T>;
    constexpr int K = carried(Kd);
    constexpr int Q = stored(Kd);
    constexpr int KM = message(Kd);
    const unsigned lane = w.lane();
    const std::uint32_t m = pr.m, n = pr.n, A = pr.A;
    const Layout lay = layout(Kd, m, n, C);
    const T* rows = work + lay.rows;
    const T* ck = work + lay.ckpt;
    T* msg = work + lay.msg;
    LaneGrads g;
    double ent = 0.0; // local soft: −Σ w ln w of the end soft max, scaled by 1/ln 2
    T mbar = T(0);    // compat: the share of each tied cell
    if constexpr (Local && !Hard && Kd != SwKind::Compat) {
        if (lane == 0) ent = static_cast<double>(N::ex2(-fwd.F) * fwd.F);
    }
    if constexpr (Kd == SwKind::Compat) {
        const T c[2] = {T(0), fwd.mx};
        T w2[2];
        const T h = weights<Hard>(c, w2);
        if (lane == 0) g.tau += static_cast<double>(fbar * h);
        mbar = fwd.ties > 0 ? fbar * w2[1] / static_cast<T>(fwd.ties) : T(0);
    }
    for (std::uint32_t kk = lay.strips; kk-- > 0;) {
        const std::uint32_t i = 32 * kk + lane;
        const bool row_ok = i <= m;
        const T* Srow = pr.S + (row_ok && i > 0 ? static_cast<std::uint32_t>(pr.q[i - 1]) * A : 0U);
        for (std::uint32_t b = 0; b < A; ++b) bins[b * 32 + lane] = 0.0;
        const bool has_lower = 32 * (kk + 1) <= m;
        const T* low = msg + static_cast<std::size_t>((kk + 1) & 1U) * lay.W * KM;
        T* upw = msg + static_cast<std::size_t>(kk & 1U) * lay.W * KM;
        T out[KM];
        for (int c = 0; c < KM; ++c) out[c] = T(0);
        T held = T(0), left = T(0); // affine: ∂/∂M of (i+1, j+1), ∂/∂Y of (i, j+1); push: pending diag, left push
        for (std::uint32_t seg = lay.segs; seg-- > 0;) {
            const std::uint32_t s0 = seg * C, s1 = s0 + C < lay.steps ? s0 + C : lay.steps;
            // Recompute the segment's cells from its frontier checkpoint into buf.
            T L[K], Dg[K];
            {
                const T* at = ck + ((static_cast<std::size_t>(kk) * lay.segs + seg) * 32 + lane) * 2 * K;
                for (int c = 0; c < K; ++c) L[c] = at[c], Dg[c] = at[K + c];
            }
            for (std::uint32_t s = s0; s < s1; ++s) {
                T U[K];
                for (int c = 0; c < K; ++c) U[c] = w.up(L[c]);
                const int j = static_cast<int>(s) - static_cast<int>(lane);
                if (!row_ok || j < 0 || j > static_cast<int>(n)) continue;
                if (lane == 0 && kk > 0) {
                    for (int c = 0; c < K; ++c) U[c] = rows[(static_cast<std::size_t>(kk - 1) * lay.W + j) * K + c];
                }
                const bool inner = i > 0 && j > 0;
                const T sc = inner ? Srow[pr.t[j - 1]] : T(0);
                T o2[K], keep[Q], match;
                cell_forward<T, Kd, Local, Hard>(i == 0, j == 0, L, U, Dg, sc, p, o2, keep, match);
                T* slot = buf + static_cast<std::size_t>(s - s0) * Q * 32 + lane;
                for (int q = 0; q < Q; ++q) slot[q * 32] = keep[q];
                for (int c = 0; c < K; ++c) Dg[c] = U[c], L[c] = o2[c];
            }
            // Reverse sweep of the segment.
            Acc<T> acc;
            for (std::uint32_t s = s1; s-- > s0;) {
                T recv[KM];
                for (int c = 0; c < KM; ++c) recv[c] = w.down(out[c]);
                const int j = static_cast<int>(s) - static_cast<int>(lane);
                const bool act = row_ok && j >= 0 && j <= static_cast<int>(n);
                if (lane == 31) {
                    for (int c = 0; c < KM; ++c) {
                        recv[c] = act && has_lower ? low[static_cast<std::size_t>(j) * KM + c] : T(0);
                    }
                }
                if (!act) {
                    if constexpr (Kd == SwKind::Affine) {
                        out[0] = out[1] = T(0);
                        held = recv[0];
                    } else {
                        out[0] = held;
                        held = T(0);
                    }
                    left = T(0);
                    continue;
                }
                const T* slot = buf + static_cast<std::size_t>(s - s0) * Q * 32 + lane;
                T kv[Q];
                for (int q = 0; q < Q; ++q) kv[q] = slot[q * 32];
                const bool inner = i > 0 && j > 0;
                const bool at_end = i == m && j == static_cast<int>(n);
                T aM; // ∂F/∂s_ij
                if constexpr (Kd == SwKind::Affine) {
                    T a[3];
                    affine_pull<T, Local, Hard>(kv, held, recv[1], left, p, a, acc);
                    held = recv[0];
                    if constexpr (!Local) {
                        if (at_end && (m > 0 || n > 0)) {
                            const T c[3] = {kv[0], kv[1], kv[2]};
                            T wr[3];
                            acc.tau += fbar * weights<Hard>(c, wr);
                            for (int x = 0; x < 3; ++x) a[x] += fbar * wr[x];
                        }
                    } else if (inner) {
                        if constexpr (Hard) {
                            if (i == fwd.bi && static_cast<std::uint32_t>(j) == fwd.bj) a[0] += fbar;
                        } else {
                            const T tt = kv[0] - fwd.F;
                            const T ws = N::ex2(tt);
                            a[0] += fbar * ws;
                            acc.ent -= ws * tt;
                        }
                    }
                    out[0] = a[0];
                    out[1] = a[1];
                    left = a[2];
                    aM = a[0];
                } else {
                    T a = recv[0] + left;
                    T end = T(0);
                    if constexpr (Kd == SwKind::Linear) {
                        if constexpr (!Local) {
                            if (at_end) a += fbar;
                        } else if (inner) {
                            if constexpr (Hard) {
                                if (i == fwd.bi && static_cast<std::uint32_t>(j) == fwd.bj) end = fbar;
                            } else {
                                const T tt = kv[0] - fwd.F;
                                const T ws = N::ex2(tt);
                                end = fbar * ws;
                                acc.ent -= ws * tt;
                            }
                        }
                    } else {
                        if (inner && kv[0] == fwd.mx) a += mbar;
                    }
                    T up, lp, dg;
                    aM = push<T, Kd, Local, Hard>(i == 0, j == 0, kv, a, end, p, up, lp, dg, acc);
                    out[0] = up + held;
                    held = dg;
                    left = lp;
                }
                if (inner && aM != T(0)) bins[static_cast<std::uint32_t>(pr.t[j - 1]) * 32 + lane] += static_cast<double>(aM);
                if (lane == 0 && kk > 0) {
                    for (int c = 0; c < KM; ++c) upw[static_cast<std::size_t>(j) * KM + c] = out[c];
                }
            }
            g.tau += static_cast<double>(acc.tau);
            g.open += static_cast<double>(acc.open);
            g.extend += static_cast<double>(acc.extend);
            ent += static_cast<double>(acc.ent);
        }
        w.sync(); // bins and the message row of this strip are complete
        for (std::uint32_t b = lane; b < A; b += 32) {
            for (std::uint32_t l = 0; l < 32; ++l) {
                const std::uint32_t il = 32 * kk + l;
                if (il >= 1 && il <= m) sbar[static_cast<std::uint32_t>(pr.q[il - 1]) * A + b] += bins[b * 32 + l];
            }
        }
        w.sync();
    }
    if constexpr (Local && !Hard && Kd != SwKind::Compat) {
        g.tau += static_cast<double>(fbar) * static_cast<double>(N::ln2) * ent;
    } else {
        (void)ent;
    }
    return g;
}

// ---- kernels -----------------------------------------------------------------------------------

/// A launch over pairs order[first .. first + count).
template <class T>
struct Launch {
    const std::uint8_t* codes;
    const SwCudaPair* pairs;
    const std::uint32_t* order;      ///< batch index of each warp's pair
    const std::uint64_t* work_off;   ///< workspace offset (T elements) of each warp's pair (scores: of its two rows)
    std::uint32_t count;
    const T* S;                      ///< scaled A×A
    std::uint32_t A;
    Scalars<T> p;
    T* work;                         ///< value_and_grad: the workspace; scores: the rows
    std::uint32_t C;
    PairFwd<T>* fwd;                 ///< per warp
    T* scores;                       ///< per batch pair (natural units), may be null
    const T* fbar;                   ///< per batch pair
    double* grads;                   ///< A² + 3 (S̄, open, extend, τ), accumulated
};

template <class T>
__device__ inline PairIn<T> pair_in(const Launch<T>& L, const SwCudaPair& pr, const T* S) {
    return {L.codes + pr.query_offset, L.codes + pr.target_offset, pr.query_length, pr.target_length, S, L.A};
}

template <class T, SwKind Kd, bool Local, bool Hard>
__global__ void forward_kernel(Launch<T> L) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* S = reinterpret_cast<T*>(shared_bytes);
    for (std::uint32_t e = threadIdx.x; e < L.A * L.A; e += blockDim.x) S[e] = L.S[e];
    __syncthreads();
    const std::uint32_t idx = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (idx >= L.count) return;
    const std::uint32_t k = L.order[idx];
    const SwCudaPair pr = L.pairs[k];
    T* at = L.work + L.work_off[idx];
    const bool saving = L.fwd != nullptr;
    const T F = forward_pair<T, Kd, Local, Hard>(DeviceWarp{}, pair_in(L, pr, S), L.p, saving ? at : nullptr,
                                                 saving ? nullptr : at, L.C, saving ? L.fwd + idx : nullptr);
    if ((threadIdx.x & 31u) == 0 && L.scores != nullptr) L.scores[k] = F;
}

template <class T>
DIFFBIO_HD inline std::size_t align16(std::size_t bytes) {
    return (bytes + 15) / 16 * 16;
}

/// Shared bytes of the backward: S, then per warp buf (C·Q·32 T), bins (A·32 double), sbar (A² double).
template <class T>
DIFFBIO_HD inline std::size_t backward_warp_bytes(SwKind kd, std::size_t C, std::size_t A) {
    return align16<T>(C * static_cast<std::size_t>(stored(kd)) * 32 * sizeof(T)) + align16<T>(A * 32 * sizeof(double)) +
           align16<T>(A * A * sizeof(double));
}

template <class T, SwKind Kd, bool Local, bool Hard>
__global__ void backward_kernel(Launch<T> L) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* S = reinterpret_cast<T*>(shared_bytes);
    for (std::uint32_t e = threadIdx.x; e < L.A * L.A; e += blockDim.x) S[e] = L.S[e];
    __syncthreads();
    const unsigned warp = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    const std::uint32_t idx = blockIdx.x * (blockDim.x >> 5) + warp;
    if (idx >= L.count) return;
    const std::uint32_t k = L.order[idx];
    const T fbar = L.fbar[k];
    if (fbar == T(0)) return;
    unsigned char* mine = shared_bytes + align16<T>(L.A * L.A * sizeof(T)) + warp * backward_warp_bytes<T>(Kd, L.C, L.A);
    T* buf = reinterpret_cast<T*>(mine);
    double* bins = reinterpret_cast<double*>(mine + align16<T>(static_cast<std::size_t>(L.C) * stored(Kd) * 32 * sizeof(T)));
    double* sbar = bins + align16<T>(L.A * 32 * sizeof(double)) / sizeof(double);
    for (std::uint32_t e = lane; e < L.A * L.A; e += 32) sbar[e] = 0.0;
    __syncwarp();
    const SwCudaPair pr = L.pairs[k];
    const LaneGrads g = backward_pair<T, Kd, Local, Hard>(DeviceWarp{}, pair_in(L, pr, S), L.p, L.work + L.work_off[idx],
                                                          L.C, L.fwd[idx], fbar, buf, bins, sbar);
    __syncwarp();
    for (std::uint32_t e = lane; e < L.A * L.A; e += 32) {
        if (sbar[e] != 0.0) atomicAdd(L.grads + e, sbar[e]);
    }
    double t = g.tau, o = g.open, x = g.extend;
    for (unsigned off = 16; off > 0; off >>= 1) {
        t += __shfl_xor_sync(full_mask, t, static_cast<int>(off));
        o += __shfl_xor_sync(full_mask, o, static_cast<int>(off));
        x += __shfl_xor_sync(full_mask, x, static_cast<int>(off));
    }
    if (lane == 0) {
        const std::size_t A2 = static_cast<std::size_t>(L.A) * L.A;
        atomicAdd(L.grads + A2, o);
        atomicAdd(L.grads + A2 + 1, x);
        atomicAdd(L.grads + A2 + 2, t);
    }
}

/// Calls fn(kind, local, hard) as compile-time constants for the model's run-time flags.
template <class Fn>
void with_model(const ops::detail::SwModel& md, Fn&& fn) {
    auto flags = [&](auto kd) {
        if (md.hard) {
            md.local ? fn(kd, std::true_type{}, std::true_type{}) : fn(kd, std::false_type{}, std::true_type{});
        } else {
            md.local ? fn(kd, std::true_type{}, std::false_type{}) : fn(kd, std::false_type{}, std::false_type{});
        }
    };
    switch (md.kind) {
    case SwKind::Linear: flags(std::integral_constant<SwKind, SwKind::Linear>{}); break;
    case SwKind::Affine: flags(std::integral_constant<SwKind, SwKind::Affine>{}); break;
    case SwKind::Compat: // local only (SmithWatermanConfig::validate)
        if (!md.local) throw InvalidArgument("smith_waterman (CUDA): the compat model is local only");
        if (md.hard) {
            fn(std::integral_constant<SwKind, SwKind::Compat>{}, std::true_type{}, std::true_type{});
        } else {
            fn(std::integral_constant<SwKind, SwKind::Compat>{}, std::true_type{}, std::false_type{});
        }
        break;
    }
}

/// The scaled scalars and matrix of a model.
template <class T>
Scalars<T> scaled(const SwCudaModel<T>& md, std::vector<T>& S) {
    const double k = md.model.hard ? 1.0 : 1.0 / (static_cast<double>(md.tau) * static_cast<double>(Num<double>::ln2));
    S.resize(md.S.size());
    for (std::size_t e = 0; e < S.size(); ++e) S[e] = static_cast<T>(static_cast<double>(md.S[e]) * k);
    Scalars<T> p;
    p.open = static_cast<T>(static_cast<double>(md.open) * k);
    p.extend = static_cast<T>(static_cast<double>(md.extend) * k);
    p.gap = static_cast<T>((static_cast<double>(md.open) + static_cast<double>(md.extend)) * k);
    p.unscale = md.model.hard ? T(1) : static_cast<T>(1.0 / k);
    return p;
}

template <class T>
void check_model(const SwCudaModel<T>& md, const char* where) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "smith_waterman (CUDA): T is float or double");
    if (md.A == 0 || md.A > sw_cuda_max_alphabet) {
        throw InvalidArgument(std::string(where) + ": the alphabet has " + std::to_string(md.A) +
                              " letters; the CUDA kernels take 1 to " + std::to_string(sw_cuda_max_alphabet));
    }
    check_size(md.S.size(), md.A * md.A, where, "the substitution matrix (A x A)");
    for (std::size_t e = 0; e < md.S.size(); ++e) check_finite(md.S[e], where, "substitution matrix entry");
    check_finite(md.open, where, "gap_open");
    check_finite(md.extend, where, "gap_extend");
    check_temperature(md.tau, where, "temperature");
    double big = std::max(std::fabs(static_cast<double>(md.open)), std::fabs(static_cast<double>(md.extend)));
    for (const T v : md.S) big = std::max(big, std::fabs(static_cast<double>(v)));
    ops::detail::check_sw_kernel_range<T>(md.model.hard ? 0.0 : static_cast<double>(md.tau), big, where); // CPU's sentinels
    if (md.model.kind == SwKind::Compat && !md.model.local) {
        throw InvalidArgument(std::string(where) + ": the compat model is local only");
    }
}

inline void check_pairs(std::span<const SwCudaPair> pairs, const char* where) {
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        if (pairs[k].query_length > (1U << 30) || pairs[k].target_length > (1U << 30)) {
            throw InvalidArgument(std::string(where) + ": pair " + std::to_string(k) + " is longer than 2^30");
        }
    }
}

/// Pair indices by m·n descending (the longest pairs start first).
inline std::vector<std::uint32_t> longest_first(std::span<const SwCudaPair> pairs) {
    std::vector<std::uint32_t> order(pairs.size());
    std::iota(order.begin(), order.end(), 0U);
    auto cells = [&](std::uint32_t k) {
        return static_cast<std::uint64_t>(pairs[k].query_length + 1) * (pairs[k].target_length + 1);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return cells(a) > cells(b); });
    return order;
}

inline int max_shared_bytes() {
    int dev = 0, bytes = 0;
    exec::cuda::check(cudaGetDevice(&dev), "cudaGetDevice");
    exec::cuda::check(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                      "cudaDeviceGetAttribute");
    return bytes;
}

template <class Kernel>
void allow_shared(Kernel kernel, std::size_t bytes) {
    if (bytes > 48 * 1024) {
        exec::cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                          "cudaFuncSetAttribute");
    }
}

} // namespace sw_cuda_detail

/// The model and current parameter values of a SmithWaterman operator, in T.
template <class T>
SwCudaModel<T> sw_cuda_model(const SmithWaterman& op) {
    const SmithWatermanConfig& cfg = op.config();
    SwCudaModel<T> md;
    md.model.kind = cfg.diffbio_compat ? ops::detail::SwKind::Compat
                                       : (cfg.gaps == GapModel::Linear ? ops::detail::SwKind::Linear
                                                                       : ops::detail::SwKind::Affine);
    md.model.local = cfg.mode == AlignmentMode::Local;
    md.model.hard = cfg.hard;
    md.A = op.alphabet_size();
    const std::span<const double> S = op.substitution().values();
    md.S.assign(S.begin(), S.end());
    md.open = static_cast<T>(op.gap_open().values()[0]);
    md.extend = static_cast<T>(op.gap_extend().values()[0]);
    md.tau = static_cast<T>(op.temperature().values()[0]);
    return md;
}

/// Scores of a batch on the device: codes (device) hold every sequence, pairs (host) the offsets
/// and lengths; scores (device, one per pair, indexed like pairs) receive the scores. Workspace:
/// 2·(n+1)·K values of T per pair (K = 3 affine, else 1). Synchronises p.stream before returning.
/// Codes are not checked on the device (each must be < A).
template <class T>
void smith_waterman_scores(const exec::Cuda& p, const SwCudaModel<T>& model, const std::uint8_t* codes,
                           std::span<const SwCudaPair> pairs, T* scores, const SwCudaOptions& opt = {},
                           SwCudaWorkspace* workspace = nullptr) {
    namespace d = sw_cuda_detail;
    const char* where = "smith_waterman_scores (CUDA)";
    d::check_model(model, where);
    d::check_pairs(pairs, where);
    if (pairs.empty()) return;
    if (opt.warps_per_block == 0 || opt.warps_per_block > 32) {
        throw InvalidArgument(std::string(where) + ": warps_per_block must be 1..32");
    }
    std::vector<T> S;
    const d::Scalars<T> sc = d::scaled(model, S);
    const std::vector<std::uint32_t> order = d::longest_first(pairs);
    const auto dS = exec::cuda::upload(p, std::span<const T>(S));
    const auto dpairs = exec::cuda::upload(p, pairs);
    const auto dorder = exec::cuda::upload(p, std::span<const std::uint32_t>(order));
    // two rows of (n + 1)·K values per pair for the strip boundaries
    const std::size_t K = static_cast<std::size_t>(d::carried(model.model.kind));
    std::vector<std::uint64_t> offs(order.size());
    std::uint64_t total = 0;
    for (std::size_t r = 0; r < order.size(); ++r) {
        offs[r] = total;
        total += 2 * (static_cast<std::uint64_t>(pairs[order[r]].target_length) + 1) * K;
    }
    const auto doffs = exec::cuda::upload(p, std::span<const std::uint64_t>(offs));
    SwCudaWorkspace own;
    T* rows = static_cast<T*>((workspace != nullptr ? *workspace : own).reserve(total * sizeof(T)));
    d::Launch<T> L{codes, dpairs.data(), dorder.data(), doffs.data(), static_cast<std::uint32_t>(pairs.size()), dS.data(),
                   static_cast<std::uint32_t>(model.A), sc, rows, 1, nullptr, scores, nullptr, nullptr};
    const unsigned warps = opt.warps_per_block;
    const unsigned blocks = static_cast<unsigned>((pairs.size() + warps - 1) / warps);
    const std::size_t shared = model.A * model.A * sizeof(T);
    d::with_model(model.model, [&](auto kd, auto local, auto hard) {
        d::forward_kernel<T, decltype(kd)::value, decltype(local)::value, decltype(hard)::value>
            <<<blocks, warps * 32, shared, p.stream>>>(L);
    });
    exec::cuda::check_launch("smith_waterman_scores");
    exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize"); // the tables above are freed next
}

/// Device workspace (bytes) value_and_grad needs for the given pairs at once.
template <class T>
std::size_t smith_waterman_workspace_bytes(ops::detail::SwKind kind, std::span<const SwCudaPair> pairs,
                                           std::size_t segment = 32) {
    std::size_t total = 0;
    for (const SwCudaPair& pr : pairs) {
        total += sw_cuda_detail::layout(kind, pr.query_length, pr.target_length, static_cast<std::uint32_t>(segment)).total;
    }
    return total * sizeof(T);
}

/// Scores and Σ_k weights[k]·∂score_k/∂(S, open, extend, τ) on the device: codes, weights (one per
/// pair), scores (one per pair) and grads (A² + 3 doubles: S̄ row-major, open, extend, τ; ADDED TO;
/// linear gaps: the open slot stays untouched) in device memory, pairs on the host. Pairs whose
/// weight is 0 skip the backward. Synchronises p.stream before returning.
template <class T>
void smith_waterman_value_and_grad(const exec::Cuda& p, const SwCudaModel<T>& model, const std::uint8_t* codes,
                                   std::span<const SwCudaPair> pairs, const T* weights, T* scores, double* grads,
                                   const SwCudaOptions& opt = {}, SwCudaWorkspace* workspace = nullptr) {
    namespace d = sw_cuda_detail;
    const char* where = "smith_waterman_value_and_grad (CUDA)";
    d::check_model(model, where);
    d::check_pairs(pairs, where);
    if (opt.segment == 0 || opt.segment > 4096) throw InvalidArgument(std::string(where) + ": segment must be 1..4096");
    if (opt.warps_per_block == 0 || opt.warps_per_block > 32) {
        throw InvalidArgument(std::string(where) + ": warps_per_block must be 1..32");
    }
    if (pairs.empty()) return;
    const std::size_t A = model.A;
    const std::size_t S_bytes = d::align16<T>(A * A * sizeof(T));
    const std::size_t warp_bytes = d::backward_warp_bytes<T>(model.model.kind, opt.segment, A);
    const std::size_t limit = static_cast<std::size_t>(d::max_shared_bytes());
    if (S_bytes + warp_bytes > limit) {
        throw InvalidArgument(std::string(where) + ": segment " + std::to_string(opt.segment) + " needs " +
                              std::to_string(S_bytes + warp_bytes) + " bytes of shared memory per warp, the device has " +
                              std::to_string(limit) + " per block: use a smaller SwCudaOptions::segment");
    }
    const unsigned warps = static_cast<unsigned>(std::min<std::size_t>(opt.warps_per_block, (limit - S_bytes) / warp_bytes));
    const std::size_t shared_bwd = S_bytes + warps * warp_bytes;
    std::vector<T> S;
    const d::Scalars<T> sc = d::scaled(model, S);
    const std::vector<std::uint32_t> order = d::longest_first(pairs);
    const auto C = static_cast<std::uint32_t>(opt.segment);
    // Chunks of the sorted pairs whose workspace fits the budget.
    std::vector<std::size_t> need(order.size());
    for (std::size_t r = 0; r < order.size(); ++r) {
        const SwCudaPair& pr = pairs[order[r]];
        need[r] = d::layout(model.model.kind, pr.query_length, pr.target_length, C).total;
    }
    const std::size_t budget = std::max<std::size_t>(opt.max_workspace_bytes / sizeof(T), 1);
    std::vector<std::size_t> starts{0};
    std::size_t biggest = 0, run = 0;
    for (std::size_t r = 0; r < order.size(); ++r) {
        if (run > 0 && run + need[r] > budget) {
            biggest = std::max(biggest, run);
            starts.push_back(r);
            run = 0;
        }
        run += need[r];
    }
    biggest = std::max(biggest, run);
    starts.push_back(order.size());
    const auto dS = exec::cuda::upload(p, std::span<const T>(S));
    const auto dpairs = exec::cuda::upload(p, pairs);
    const auto dorder = exec::cuda::upload(p, std::span<const std::uint32_t>(order));
    SwCudaWorkspace own;
    T* work = static_cast<T*>((workspace != nullptr ? *workspace : own).reserve(biggest * sizeof(T)));
    exec::cuda::DeviceBuffer<d::PairFwd<T>> fwd(order.size());
    std::vector<std::uint64_t> offs(order.size());
    for (std::size_t c = 0; c + 1 < starts.size(); ++c) {
        std::uint64_t off = 0;
        for (std::size_t r = starts[c]; r < starts[c + 1]; ++r) offs[r] = off, off += need[r];
    }
    const auto doffs = exec::cuda::upload(p, std::span<const std::uint64_t>(offs));
    for (std::size_t c = 0; c + 1 < starts.size(); ++c) {
        const std::size_t first = starts[c], count = starts[c + 1] - first;
        d::Launch<T> L{codes, dpairs.data(), dorder.data() + first, doffs.data() + first,
                       static_cast<std::uint32_t>(count), dS.data(), static_cast<std::uint32_t>(A), sc, work, C,
                       fwd.data() + first, scores, weights, grads};
        const unsigned blocks = static_cast<unsigned>((count + warps - 1) / warps);
        d::with_model(model.model, [&](auto kd, auto local, auto hard) {
            constexpr ops::detail::SwKind K = decltype(kd)::value;
            constexpr bool Lo = decltype(local)::value, H = decltype(hard)::value;
            d::forward_kernel<T, K, Lo, H><<<blocks, warps * 32, A * A * sizeof(T), p.stream>>>(L);
            exec::cuda::check_launch("smith_waterman_value_and_grad (forward)");
            d::allow_shared(d::backward_kernel<T, K, Lo, H>, shared_bwd);
            d::backward_kernel<T, K, Lo, H><<<blocks, warps * 32, shared_bwd, p.stream>>>(L);
            exec::cuda::check_launch("smith_waterman_value_and_grad (backward)");
        });
    }
    exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
}

namespace sw_cuda_detail {

/// The host batch as one code array and a pair table; validates the codes.
struct HostBatch {
    std::vector<std::uint8_t> codes;
    std::vector<SwCudaPair> pairs;
};
inline HostBatch host_batch(std::span<const CodePair> pairs, std::size_t A, const char* where) {
    HostBatch b;
    std::size_t total = 0;
    for (const CodePair& pr : pairs) total += pr.query.size() + pr.target.size();
    b.codes.reserve(total);
    b.pairs.reserve(pairs.size());
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        SwCudaPair d;
        d.query_offset = b.codes.size();
        d.query_length = static_cast<std::uint32_t>(pairs[k].query.size());
        b.codes.insert(b.codes.end(), pairs[k].query.begin(), pairs[k].query.end());
        d.target_offset = b.codes.size();
        d.target_length = static_cast<std::uint32_t>(pairs[k].target.size());
        b.codes.insert(b.codes.end(), pairs[k].target.begin(), pairs[k].target.end());
        if (pairs[k].query.size() > (std::size_t(1) << 30) || pairs[k].target.size() > (std::size_t(1) << 30)) {
            throw InvalidArgument(std::string(where) + ": pair " + std::to_string(k) + " is longer than 2^30");
        }
        b.pairs.push_back(d);
    }
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        for (const auto& [seq, name] : std::array{std::pair{pairs[k].query, "query"}, std::pair{pairs[k].target, "target"}}) {
            for (std::size_t i = 0; i < seq.size(); ++i) {
                if (seq[i] >= A) {
                    throw InvalidArgument(std::string(where) + ": pair " + std::to_string(k) + ", " + name + " code " +
                                          std::to_string(seq[i]) + " at position " + std::to_string(i) +
                                          " is not < the alphabet size " + std::to_string(A));
                }
            }
        }
    }
    return b;
}

} // namespace sw_cuda_detail

/// Scores of integer-coded pairs (host memory) with the operator's current parameters, computed in F.
template <class F = double>
std::vector<F> smith_waterman_scores(const exec::Cuda& p, const SmithWaterman& op, std::span<const CodePair> pairs,
                                     const SwCudaOptions& opt = {}) {
    const char* where = "smith_waterman_scores (CUDA)";
    const SwCudaModel<F> md = sw_cuda_model<F>(op);
    sw_cuda_detail::check_model(md, where);
    const sw_cuda_detail::HostBatch b = sw_cuda_detail::host_batch(pairs, md.A, where);
    if (pairs.empty()) return {};
    const auto codes = exec::cuda::upload(p, std::span<const std::uint8_t>(b.codes));
    exec::cuda::DeviceBuffer<F> scores(pairs.size());
    smith_waterman_scores<F>(p, md, codes.data(), std::span<const SwCudaPair>(b.pairs), scores.data(), opt);
    std::vector<F> out = exec::cuda::download(p, scores);
    check_results_finite(std::span<const F>(out), static_cast<double>(md.tau), where, "score of pair");
    return out;
}

/// SmithWaterman::value_and_grad on the GPU: the same inputs (integer-coded pairs and one weight
/// per pair, host memory) and result, with ∂/∂τ always (the CPU's with
/// SwGradOptions::temperature_gradient). The DP runs in F; the sums over cells and pairs in double.
template <class F = double, class W = double>
SwGradResult<F> smith_waterman_value_and_grad(const exec::Cuda& p, const SmithWaterman& op,
                                              std::span<const CodePair> pairs, std::span<const W> weights,
                                              const SwCudaOptions& opt = {}) {
    static_assert(std::is_floating_point_v<F>, "smith_waterman_value_and_grad (CUDA) computes in float or double");
    const char* where = "smith_waterman_value_and_grad (CUDA)";
    const SwCudaModel<F> md = sw_cuda_model<F>(op);
    sw_cuda_detail::check_model(md, where);
    if (weights.size() != pairs.size()) {
        throw ShapeError(std::string(where) + ": " + std::to_string(weights.size()) + " weights for " +
                         std::to_string(pairs.size()) + " pairs (one dloss/dscore per pair)");
    }
    std::vector<F> w(weights.size());
    for (std::size_t k = 0; k < weights.size(); ++k) {
        const double v = static_cast<double>(weights[k]);
        if (!std::isfinite(v)) throw InvalidArgument(std::string(where) + ": weight " + std::to_string(k) + " is not finite");
        w[k] = static_cast<F>(v);
    }
    const sw_cuda_detail::HostBatch b = sw_cuda_detail::host_batch(pairs, md.A, where);
    const std::size_t A = md.A;
    SwGradResult<F> out;
    out.substitution.assign(A * A, F(0));
    if (pairs.empty()) return out;
    const auto codes = exec::cuda::upload(p, std::span<const std::uint8_t>(b.codes));
    const auto dw = exec::cuda::upload(p, std::span<const F>(w));
    exec::cuda::DeviceBuffer<F> scores(pairs.size());
    auto grads = exec::cuda::zeros<double>(p, A * A + 3);
    smith_waterman_value_and_grad<F>(p, md, codes.data(), std::span<const SwCudaPair>(b.pairs), dw.data(), scores.data(),
                                     grads.data(), opt);
    out.score = exec::cuda::download(p, scores);
    check_results_finite(std::span<const F>(out.score), static_cast<double>(md.tau), where, "score of pair");
    const std::vector<double> g = exec::cuda::download(p, grads);
    for (std::size_t e = 0; e < A * A; ++e) out.substitution[e] = static_cast<F>(g[e]);
    out.gap_open = md.model.kind == ops::detail::SwKind::Linear ? F(0) : static_cast<F>(g[A * A]);
    out.gap_extend = static_cast<F>(g[A * A + 1]);
    out.temperature = static_cast<F>(g[A * A + 2]);
    return out;
}
template <class F = double, class W = double>
SwGradResult<F> smith_waterman_value_and_grad(const exec::Cuda& p, const SmithWaterman& op,
                                              const std::vector<CodePair>& pairs, const std::vector<W>& weights,
                                              const SwCudaOptions& opt = {}) {
    return smith_waterman_value_and_grad<F, W>(p, op, std::span<const CodePair>(pairs), std::span<const W>(weights), opt);
}

} // namespace diffbio::ops::cuda
