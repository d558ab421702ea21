#pragma once
// CUDA backend of soft k-means (see <diffbio/ops/singlecell/soft_kmeans.hpp> for the maths), for
// T = float or double: one soft step forward (squared distances, row softmax(−D/τ), hard labels,
// the soft centroid update), its backward (∂L/∂x, ∂L/∂μ, ∂L/∂τ, as the CPU fused Var node), and
// Lloyd's hard iteration (labels, inertia, new centroids) with the full Lloyd loop on top.
//
// Kernels (row-major x [n × F], μ [K × F], r [n × K]; cuBLAS is column-major, so a row-major
// [a × b] matrix is passed as the column-major [b × a] one, i.e. its transpose):
//   frame       as the CPU kernels, in a frame centred on the centroids' mean c (per feature,
//               summed in double in k order: the CPU's c to the bit): x − c and μ − c by two
//               elementwise kernels (the points' copy is n × F scratch), ‖μ_k − c‖² one thread per
//               centroid (sequential over F, as the CPU). Distances are the same in this frame;
//               an offset the data share no longer costs the GEMM form its digits.
//   distances   the scores E_ik = ‖μ_k − c‖² − 2 (x_i − c)·(μ_k − c) = D_ik − ‖x_i − c‖²
//               (scikit-learn's form: ‖x_i − c‖² cancels in D_ik − min_j D_ij and in the argmin,
//               so no clamp is needed): −2·Xc·Mcᵀ by one cuBLAS GEMM (Sgemm/Dgemm, α = −2,
//               default math mode: no TF32), then ONE WARP PER ROW: E_ik, the minimum m_i with the
//               lowest index on exact ties (warp argmin), r_ik = e^{−(E_ik − m_i)/τ} / Σ_j …
//               written in place. All in T, as the CPU float/double kernel.
//   backward    one warp per row (recomputing E when ∂L/∂τ is wanted, by the same GEMM):
//               G_ik = r_ik (r̄_ik − Σ_j r̄_ij r_ij), D̄ = −G/τ (in double, stored as T), 2 Σ_k D̄_ik;
//               x̄ += 2 (Σ_k D̄_ik) x_i then x̄ += −2 D̄·M (GEMM, β = 1); μ̄ += 2 (Σ_i D̄_ik) μ_k then
//               μ̄ += −2 D̄ᵀ·X (GEMM, β = 1), all with the centred x − c and μ − c (whose c terms
//               cancel exactly); τ̄ += Σ G_ik (E_ik − m_i) / τ² (double).
//   centroids   soft update μ_k = Σ_i r_ik x_i / Σ_i r_ik: S = Rᵀ·X by GEMM, column sums of R in
//               double (column-parallel blocks over row chunks, one double atomicAdd per column
//               and block); a centroid with Σ_i r_ik ≤ 0 keeps its previous value.
//   Lloyd       labels as above (no softmax); Σ_i x_i and counts per label with double atomicAdd;
//               means, squared centroid shift and inertia Σ‖x_i − μ_{l_i}‖² (direct differences)
//               in double.
//
// Determinism and parity: GEMMs and row kernels are deterministic; column sums, the Lloyd sums,
// inertia, shift and τ̄ add per-block double partials with atomicAdd (order varies; ~1e-16
// relative). Against the Cpu backend: doubles agree to rounding (tested at 1e-10 relative), floats
// to the float rounding of the GEMM-form distances (tested at 1e-5 relative for τ ~ 1 on data of
// unit scale, and on data 1e4 and 1e5 from the origin). The GEMM form has absolute errors
// ~ u·‖x_i − c‖·‖μ_k − c‖ in E, so labels of points whose two nearest centroids are that close
// may differ from the CPU's, and at τ → 0 the soft assignments of such points too.
// Range: the host entry points refuse, as the CPU kernels do, data whose squared distances may
// leave T's range (kmeans_detail::check_distance_range, one host pass over the points: float
// ~9e18 from the centroids' mean); the device-pointer functions leave that to their caller.
//
// Two levels of API (namespace diffbio::ops::cuda):
//   * device pointers with a KMeansWorkspace<T> (a cuBLAS handle and grown-on-demand scratch,
//     reused across calls): soft_assign_forward, soft_assign_backward, soft_centroid_update,
//     lloyd_step, kmeans_inertia. Asynchronous on the policy's stream unless they return a host
//     number (∂L/∂τ, Lloyd statistics: one synchronisation). A workspace serves one stream at a
//     time. Scratch (grown on demand, kept): n × K T (backward, labels-only and Lloyd calls),
//     max(n, K × F) T, the centred frame n × F + F + K × F + K T, and K × F + K + 2 doubles.
//   * host convenience on host data (copies in, runs, copies out; synchronous): soft_assign,
//     soft_assign_backward, hard_assign, soft_centroid_update, lloyd_step, lloyd (the CPU loop of
//     scikit-learn's Lloyd on the GPU, returning LloydResult), and soft_kmeans_apply /
//     soft_kmeans_backward with a SoftKMeans operator (centroid gradients added into
//     op.centroids().grad(), as ad::Binder<ad::Var>::accumulate_grad does).
// Limits: n, K, F must fit cuBLAS's int dimensions (< 2^31). nvcc only; link CUDA::cublas.

// soft_kmeans.hpp uses Eigen on the host only. Under nvcc, Eigen marks its functions
// __host__ __device__, which nvcc 13 reports (warnings 20012 and 20015, errors under
// -Werror=all-warnings, the latter unless --expt-relaxed-constexpr); EIGEN_NO_CUDA keeps Eigen
// host-only, as in a g++ translation unit. It takes effect only if Eigen was not included before.
#if !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/launch.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

namespace diffbio::ops::cuda {

/// cuBLAS errors become BackendError naming the call.
inline void check_cublas(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        throw BackendError(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusName(status) + " (" +
                           cublasGetStatusString(status) + ")");
    }
}

/// A cuBLAS handle and device scratch for the k-means kernels of scalar T, grown on demand and
/// reused across calls. Not copyable or movable. Creating one initialises cuBLAS (costly: keep it).
template <class T>
class KMeansWorkspace {
public:
    KMeansWorkspace() { check_cublas(cublasCreate(&handle_), "cublasCreate"); }
    KMeansWorkspace(const KMeansWorkspace&) = delete;
    KMeansWorkspace& operator=(const KMeansWorkspace&) = delete;
    ~KMeansWorkspace() {
        if (handle_ != nullptr) (void)cublasDestroy(handle_);
    }

    /// The handle, bound to p.stream.
    cublasHandle_t cublas(const exec::Cuda& p) {
        check_cublas(cublasSetStream(handle_, p.stream), "cublasSetStream");
        return handle_;
    }
    /// Scratch of at least `count` elements (contents undefined; growing frees the old buffer,
    /// which waits for the device).
    T* matrix(std::size_t count) { return grow(matrix_, count); }
    T* vectors(std::size_t count) { return grow(vectors_, count); }
    /// The points and the centroids in the frame centred on the centroids' mean.
    T* points(std::size_t count) { return grow(points_, count); }
    T* frame(std::size_t count) { return grow(frame_, count); }
    double* doubles(std::size_t count) { return grow(doubles_, count); }
    int* ints(std::size_t count) { return grow(ints_, count); }

private:
    template <class U>
    static U* grow(exec::cuda::DeviceBuffer<U>& b, std::size_t count) {
        if (b.size() < count) b = exec::cuda::DeviceBuffer<U>(count);
        return b.data();
    }
    cublasHandle_t handle_ = nullptr;
    exec::cuda::DeviceBuffer<T> matrix_, vectors_, points_, frame_;
    exec::cuda::DeviceBuffer<double> doubles_;
    exec::cuda::DeviceBuffer<int> ints_;
};

/// What a Lloyd iteration reports: the inertia Σ‖x_i − μ_{l_i}‖² with the centroids the labels
/// came from (scikit-learn's per-iteration inertia), and Σ_k ‖μ_k^new − μ_k‖².
struct LloydStepStats {
    double inertia = 0.0;
    double shift = 0.0;
};

namespace kmeans_kernels {

inline constexpr unsigned warp = 32;

/// Reductions over the lanes that share a row. Serial: one lane (the host runs of the kernels'
/// bodies in the tests); Warp: the 32 lanes of a warp (butterfly shuffles, every lane gets the
/// result).
struct SerialLanes {
    template <class U>
    DIFFBIO_HD static U sum(U v) {
        return v;
    }
    template <class U>
    DIFFBIO_HD static void argmin(U&, int&) {}
};
struct WarpLanes {
    template <class U>
    DIFFBIO_HD static U sum(U v) {
#if defined(__CUDA_ARCH__)
        for (unsigned off = warp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
#endif
        return v;
    }
    /// (value, index) with the smallest value, lowest index on ties; index −1 means "no value".
    template <class U>
    DIFFBIO_HD static void argmin(U& v, int& k) {
#if defined(__CUDA_ARCH__)
        for (unsigned off = warp / 2; off > 0; off >>= 1) {
            const U ov = __shfl_xor_sync(0xffffffffu, v, off);
            const int ok = __shfl_xor_sync(0xffffffffu, k, off);
            if (ok >= 0 && (k < 0 || ov < v || (ov == v && ok < k))) {
                v = ov;
                k = ok;
            }
        }
#else
        (void)v;
        (void)k;
#endif
    }
};

/// Turns the lane's entries of `row` [K] from −2 (X·Mᵀ)_i into the scores E_ik = ‖μ_k‖² − 2 x_i·μ_k and
/// returns min_k E_ik over all the lanes; best_k gets its k (lowest index on ties; −1 when K = 0).
template <class T, class Lanes>
DIFFBIO_HD T score_row(const T* mu_norm2, std::size_t K, T* row, int& best_k, unsigned lane, unsigned lanes) {
    T best = T(0);
    best_k = -1;
    for (std::size_t k = lane; k < K; k += lanes) {
        const T e = row[k] + mu_norm2[k];
        row[k] = e;
        if (best_k < 0 || e < best) {
            best = e;
            best_k = static_cast<int>(k);
        }
    }
    Lanes::argmin(best, best_k);
    return best;
}

/// Row i of the forward: `row` [K] holds −2 (X·Mᵀ)_i on entry; on exit the scores E_i =
/// ‖μ_k‖² − 2 x_i·μ_k (soft = false) or the soft assignments r_i = softmax(−(E_i − m_i)/τ) at
/// 1/τ = inv_tau (soft = true). labels[i] (when not null) gets argmin_k E_ik, lowest index on ties.
/// Lanes `lane` of `lanes` share the row.
template <class T, class Lanes>
DIFFBIO_HD void assign_row(std::size_t i, const T* mu_norm2, std::size_t K, T inv_tau, bool soft, T* row, int* labels, unsigned lane,
                           unsigned lanes) {
    using std::exp;
    int best_k = -1;
    const T best = score_row<T, Lanes>(mu_norm2, K, row, best_k, lane, lanes);
    if (labels != nullptr && lane == 0) labels[i] = best_k;
    if (!soft) return;
    T s = T(0);
    for (std::size_t k = lane; k < K; k += lanes) {
        const T e = exp((best - row[k]) * inv_tau); // −(D_ik − m_i)/τ ≤ 0
        row[k] = e;
        s += e;
    }
    s = Lanes::sum(s);
    const T is = T(1) / s;
    for (std::size_t k = lane; k < K; k += lanes) row[k] *= is;
}

/// Row i of the backward: with r = p[i], r̄ = pbar[i], writes D̄_i = −G_i/τ into `row` [K] and
/// 2 Σ_k D̄_ik into rowsum[i] (when not null); when with_tau, `row` holds −2 (X·Mᵀ)_i on entry and
/// the lane's part of Σ_k G_ik (D_ik − m_i) = Σ_k G_ik (E_ik − min_j E_ij) is returned (else 0).
template <class T, class Lanes>
DIFFBIO_HD double backward_row(std::size_t i, const T* mu_norm2, std::size_t K, double tau, const T* p, const T* pbar, bool with_tau,
                               T* row, T* rowsum, unsigned lane, unsigned lanes) {
    const T* pi = p + i * K;
    const T* gi = pbar + i * K;
    double m = 0.0;
    if (with_tau) {
        int best_k = -1;
        m = static_cast<double>(score_row<T, Lanes>(mu_norm2, K, row, best_k, lane, lanes));
    }
    double dot = 0.0;
    for (std::size_t k = lane; k < K; k += lanes) dot += static_cast<double>(gi[k]) * static_cast<double>(pi[k]);
    dot = Lanes::sum(dot);
    const double inv = 1.0 / tau;
    double tb = 0.0, rs = 0.0;
    for (std::size_t k = lane; k < K; k += lanes) {
        const double g = static_cast<double>(pi[k]) * (static_cast<double>(gi[k]) - dot);
        const double db = -g * inv;
        if (with_tau) tb += g * (static_cast<double>(row[k]) - m);
        row[k] = static_cast<T>(db);
        rs += db;
    }
    rs = Lanes::sum(rs);
    if (rowsum != nullptr && lane == 0) rowsum[i] = static_cast<T>(2.0 * rs);
    return tb;
}

/// Block-wide sum of one double; thread 0 gets the total. blockDim.x a multiple of 32, ≤ 1024.
__device__ inline double block_sum(double v) {
    __shared__ double warp_totals[32];
    v = WarpLanes::sum(v);
    const unsigned lane = threadIdx.x % warp, w = threadIdx.x / warp;
    if (lane == 0) warp_totals[w] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0) {
        for (unsigned k = 0; k < blockDim.x / warp; ++k) total += warp_totals[k];
    }
    return total;
}

/// Feature f of the centroids' mean c = Σ_k μ_k / K, summed in double in k order and rounded to T
/// (the CPU's kmeans_detail::centred, to the bit).
template <class T>
DIFFBIO_HD T centroid_mean(const T* mu, std::size_t K, std::size_t F, std::size_t f) {
    double s = 0.0;
    for (std::size_t k = 0; k < K; ++k) s += static_cast<double>(mu[k * F + f]);
    return static_cast<T>(s / static_cast<double>(K));
}

template <class T>
__global__ void centroid_means(const T* __restrict__ mu, std::size_t K, std::size_t F, T* __restrict__ c) {
    for (std::size_t f = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; f < F;
         f += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        c[f] = centroid_mean(mu, K, F, f);
    }
}

/// out [rows × F] = a − c (each row less the centroids' mean): points or centroids in the frame
/// centred on c.
template <class T>
__global__ void centre_rows(const T* __restrict__ a, std::size_t rows, std::size_t F, const T* __restrict__ c, T* __restrict__ out) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < rows * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        out[idx] = a[idx] - c[idx % F];
    }
}

template <class T>
__global__ void row_norms2(const T* __restrict__ mu, std::size_t K, std::size_t F, T* __restrict__ out) {
    for (std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; k < K;
         k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        T s = T(0);
        for (std::size_t f = 0; f < F; ++f) s += mu[k * F + f] * mu[k * F + f];
        out[k] = s;
    }
}

template <class T>
__global__ void assign_rows(std::size_t n, const T* __restrict__ mu_norm2, std::size_t K, T inv_tau, bool soft, T* __restrict__ rows,
                            int* __restrict__ labels) {
    const unsigned lane = threadIdx.x % warp;
    const std::size_t warps_per_block = blockDim.x / warp;
    for (std::size_t i = blockIdx.x * warps_per_block + threadIdx.x / warp; i < n; i += gridDim.x * warps_per_block) {
        assign_row<T, WarpLanes>(i, mu_norm2, K, inv_tau, soft, rows + i * K, labels, lane, warp);
    }
}

/// Backward rows; Σ G (D − m) of the block added into *tau_acc (when with_tau).
template <class T>
__global__ void backward_rows(std::size_t n, const T* __restrict__ mu_norm2, std::size_t K, double tau, const T* __restrict__ p,
                              const T* __restrict__ pbar, bool with_tau, T* __restrict__ rows, T* __restrict__ rowsum,
                              double* __restrict__ tau_acc) {
    const unsigned lane = threadIdx.x % warp;
    const std::size_t warps_per_block = blockDim.x / warp;
    double tb = 0.0;
    for (std::size_t i = blockIdx.x * warps_per_block + threadIdx.x / warp; i < n; i += gridDim.x * warps_per_block) {
        tb += backward_row<T, WarpLanes>(i, mu_norm2, K, tau, p, pbar, with_tau, rows + i * K, rowsum, lane, warp);
    }
    if (!with_tau) return; // uniform
    tb = block_sum(tb);
    if (threadIdx.x == 0) atomicAdd(tau_acc, tb);
}

/// out[k] += Σ_{i in this block's rows} a[i, k] (double), for a [n × K]: blocks over chunks of
/// `chunk` rows, threads over columns (coalesced), one atomicAdd per column and block.
template <class T>
__global__ void column_sums(const T* __restrict__ a, std::size_t n, std::size_t K, std::size_t chunk, double* __restrict__ out) {
    const std::size_t chunks = (n + chunk - 1) / chunk;
    for (std::size_t c = blockIdx.x; c < chunks; c += gridDim.x) {
        const std::size_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        for (std::size_t k = threadIdx.x; k < K; k += blockDim.x) {
            double s = 0.0;
            for (std::size_t i = i0; i < i1; ++i) s += static_cast<double>(a[i * K + k]);
            atomicAdd(out + k, s);
        }
    }
}

/// out[i, f] += scale[i] · x[i, f]   (x̄ += 2 (Σ_k D̄_ik) x_i)
template <class T>
__global__ void add_row_scaled(const T* __restrict__ x, std::size_t n, std::size_t F, const T* __restrict__ scale, T* __restrict__ out) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        out[idx] += scale[idx / F] * x[idx];
    }
}

/// out[k, f] += 2 · colsum[k] · mu[k, f]   (μ̄ += 2 (Σ_i D̄_ik) μ_k)
template <class T>
__global__ void add_centroid_scaled(const T* __restrict__ mu, std::size_t K, std::size_t F, const double* __restrict__ colsum,
                                    T* __restrict__ out) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < K * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        out[idx] += static_cast<T>(2.0 * colsum[idx / F] * static_cast<double>(mu[idx]));
    }
}

/// out[k, f] = S[k, f] / w_k when w_k > 0, else previous[k, f] (out may be previous).
template <class T>
__global__ void divide_centroids(const T* __restrict__ S, const double* __restrict__ w, std::size_t K, std::size_t F,
                                 const T* previous, T* out) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < K * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const double wk = w[idx / F];
        out[idx] = wk > 0.0 ? static_cast<T>(static_cast<double>(S[idx]) / wk) : previous[idx];
    }
}

/// *acc += Σ_i ‖x_i − μ_{l_i}‖² (double).
template <class T>
__global__ void inertia(const T* __restrict__ x, std::size_t n, std::size_t F, const T* __restrict__ mu, const int* __restrict__ labels,
                        double* __restrict__ acc) {
    double s = 0.0;
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const std::size_t i = idx / F, f = idx - i * F;
        const double d = static_cast<double>(x[idx]) - static_cast<double>(mu[static_cast<std::size_t>(labels[i]) * F + f]);
        s += d * d;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}

/// sums[l_i, f] += x[i, f], counts[l_i] += 1 (double).
template <class T>
__global__ void lloyd_accumulate(const T* __restrict__ x, std::size_t n, std::size_t F, const int* __restrict__ labels,
                                 double* __restrict__ sums, double* __restrict__ counts) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const std::size_t i = idx / F, f = idx - i * F;
        const auto l = static_cast<std::size_t>(labels[i]);
        atomicAdd(sums + l * F + f, static_cast<double>(x[idx]));
        if (f == 0) atomicAdd(counts + l, 1.0);
    }
}

/// out[k, f] = sums/counts when counts[k] > 0, else mu[k, f] (out may be mu); *shift += Σ (new − old)².
template <class T>
__global__ void lloyd_update(const double* __restrict__ sums, const double* __restrict__ counts, std::size_t K, std::size_t F,
                             const T* mu, T* out, double* __restrict__ shift) {
    double s = 0.0;
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < K * F;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const double cnt = counts[idx / F];
        const T old = mu[idx];
        if (cnt > 0.0) {
            const double c = sums[idx] / cnt;
            const double d = c - static_cast<double>(old);
            s += d * d;
            out[idx] = static_cast<T>(c);
        } else {
            out[idx] = old;
        }
    }
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(shift, s);
}

/// *acc += the number of i with a[i] != b[i] (as a double).
template <class L>
__global__ void count_changed(const L* __restrict__ a, const L* __restrict__ b, std::size_t n, double* __restrict__ acc) {
    double s = 0.0;
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        if (a[i] != b[i]) s += 1.0;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}

} // namespace kmeans_kernels

namespace kmeans_cuda_detail {

inline void check_dims(std::size_t n, std::size_t F, std::size_t K, const char* where) {
    if (n == 0) throw InvalidArgument(std::string(where) + ": no points (n = 0)");
    if (K == 0) throw InvalidArgument(std::string(where) + ": the number of clusters K must be >= 1");
    if (F == 0) throw InvalidArgument(std::string(where) + ": the number of features F must be >= 1");
    const auto lim = static_cast<std::size_t>(INT_MAX);
    if (n > lim || K > lim || F > lim) {
        throw InvalidArgument(std::string(where) + ": n, K and F must each be below 2^31 (cuBLAS dimensions)");
    }
}

inline void gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                 const float* A, std::size_t lda, const float* B, std::size_t ldb, float beta, float* C, std::size_t ldc) {
    check_cublas(cublasSgemm(h, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A, static_cast<int>(lda),
                             B, static_cast<int>(ldb), &beta, C, static_cast<int>(ldc)),
                 "cublasSgemm");
}
inline void gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, std::size_t m, std::size_t n, std::size_t k, double alpha,
                 const double* A, std::size_t lda, const double* B, std::size_t ldb, double beta, double* C, std::size_t ldc) {
    check_cublas(cublasDgemm(h, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A, static_cast<int>(lda),
                             B, static_cast<int>(ldb), &beta, C, static_cast<int>(ldc)),
                 "cublasDgemm");
}

// The three products below are written against gemm(handle, ...) with cuBLAS's column-major
// semantics; the handle type is a template parameter so that the tests can run the very same
// calls through a host reference GEMM (found by argument-dependent lookup).

/// rows [n × K] (row-major) = alpha·X·Mᵀ: column-major [K × n] = (M as col-major [F × K])ᵀ · (X as
/// col-major [F × n]).
template <class H, class T>
void gemm_x_mt(H h, const T* x, std::size_t n, std::size_t F, const T* mu, std::size_t K, T alpha, T* rows) {
    gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, K, n, F, alpha, mu, F, x, F, T(0), rows, K);
}

/// out [K × F] (row-major) = alpha·Aᵀ·X + beta·out for A [n × K]: column-major [F × K] =
/// (X as col-major [F × n]) · (A as col-major [K × n])ᵀ.
template <class H, class T>
void gemm_at_x(H h, const T* a, std::size_t n, std::size_t K, const T* x, std::size_t F, T alpha, T beta, T* out) {
    gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, F, K, n, alpha, x, F, a, K, beta, out, F);
}

/// out [n × F] (row-major) = alpha·A·M + beta·out for A [n × K], M [K × F]: column-major [F × n] =
/// (M as col-major [F × K]) · (A as col-major [K × n]).
template <class H, class T>
void gemm_a_m(H h, const T* a, std::size_t n, std::size_t K, const T* mu, std::size_t F, T alpha, T beta, T* out) {
    gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, F, n, K, alpha, mu, F, a, K, beta, out, F);
}

inline constexpr std::size_t colsum_chunk = 256;

template <class T>
void launch_column_sums(const exec::Cuda& p, const T* a, std::size_t n, std::size_t K, double* out) {
    const std::size_t chunks = (n + colsum_chunk - 1) / colsum_chunk;
    kmeans_kernels::column_sums<T><<<static_cast<unsigned>(std::min<std::size_t>(chunks, 65536)), exec::cuda::block_size, 0, p.stream>>>(
        a, n, K, colsum_chunk, out);
    exec::cuda::check_launch("kmeans column_sums");
}

inline unsigned row_grid(std::size_t n) { return exec::cuda::grid_size(n * kmeans_kernels::warp); }

/// Points and centroids in the frame centred on the centroids' mean c (device pointers into the
/// workspace): x − c [n × F], μ − c [K × F] and ‖μ_k − c‖² [K]. Distances are the same in this
/// frame, and the GEMM form ‖μ_k − c‖² − 2 (x_i − c)·(μ_k − c) no longer loses the digits of an
/// offset the data share (the CPU kernels' frame: kmeans_detail::centred).
template <class T>
struct CentredFrame {
    const T* x;
    const T* mu;
    const T* mn;
};

/// Launches the centring on p.stream. Scratch: n × F T (points) and F + K × F + K T (frame).
template <class T>
CentredFrame<T> centre(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* mu, std::size_t K) {
    T* fr = ws.frame(F + K * F + K);
    T* c = fr;
    T* muc = fr + F;
    T* mn = muc + K * F;
    T* xc = ws.points(n * F);
    kmeans_kernels::centroid_means<T><<<exec::cuda::grid_size(F), exec::cuda::block_size, 0, p.stream>>>(mu, K, F, c);
    exec::cuda::check_launch("kmeans centroid_means");
    kmeans_kernels::centre_rows<T><<<exec::cuda::grid_size(K * F), exec::cuda::block_size, 0, p.stream>>>(mu, K, F, c, muc);
    exec::cuda::check_launch("kmeans centre_rows (centroids)");
    kmeans_kernels::row_norms2<T><<<exec::cuda::grid_size(K), exec::cuda::block_size, 0, p.stream>>>(muc, K, F, mn);
    exec::cuda::check_launch("kmeans row_norms2");
    kmeans_kernels::centre_rows<T><<<exec::cuda::grid_size(n * F), exec::cuda::block_size, 0, p.stream>>>(x, n, F, c, xc);
    exec::cuda::check_launch("kmeans centre_rows (points)");
    return {xc, muc, mn};
}

inline double fetch_scalar(const exec::Cuda& p, const double* d) {
    double host = 0.0;
    exec::cuda::check(cudaMemcpyAsync(&host, d, sizeof(double), cudaMemcpyDeviceToHost, p.stream), "cudaMemcpyAsync D2H");
    exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
    return host;
}

} // namespace kmeans_cuda_detail

/// Forward on device data: assignments [n × K] = softmax_k(−D_ik/τ) (may be null) and labels [n]
/// (may be null) of points x [n × F] to centroids mu [K × F]. Asynchronous. Scratch: the centred
/// frame (n × F + F + K × F + K T), and n × K T when assignments is null. Does not check that the
/// squared distances stay within T's range (the host entry points do: check_distance_range).
/// Throws InvalidArgument for n, K or F = 0 and τ ≤ 0 or not finite.
template <class T>
void soft_assign_forward(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* mu,
                         std::size_t K, T tau, T* assignments, int* labels) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "soft k-means (CUDA): T is float or double");
    namespace d = kmeans_cuda_detail;
    constexpr const char* where = "soft_assign_forward (CUDA)";
    d::check_dims(n, F, K, where);
    check_temperature(tau, where, "tau");
    if (assignments == nullptr && labels == nullptr) return;
    T* rows = assignments != nullptr ? assignments : ws.matrix(n * K);
    const d::CentredFrame<T> fr = d::centre(p, ws, x, n, F, mu, K);
    d::gemm_x_mt(ws.cublas(p), fr.x, n, F, fr.mu, K, T(-2), rows);
    kmeans_kernels::assign_rows<T><<<d::row_grid(n), exec::cuda::block_size, 0, p.stream>>>(n, fr.mn, K, T(1) / tau, assignments != nullptr,
                                                                                           rows, labels);
    exec::cuda::check_launch("kmeans assign_rows");
}

/// Backward on device data (the CPU Var node's gradients): from the forward's assignments p and
/// their adjoint pbar (both [n × K]), ACCUMULATES ∂L/∂x into x_grad [n × F] and ∂L/∂μ into
/// centroids_grad [K × F] (device, each may be null) and adds ∂L/∂τ into *tau_grad (a HOST double,
/// may be null; synchronises p.stream). Scratch: n × K + n T, the centred frame, K + 1 doubles.
template <class T>
void soft_assign_backward(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* mu,
                          std::size_t K, T tau, const T* assignments, const T* assignments_grad, T* x_grad, T* centroids_grad,
                          double* tau_grad) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "soft k-means (CUDA): T is float or double");
    namespace d = kmeans_cuda_detail;
    constexpr const char* where = "soft_assign_backward (CUDA)";
    d::check_dims(n, F, K, where);
    check_temperature(tau, where, "tau");
    if (x_grad == nullptr && centroids_grad == nullptr && tau_grad == nullptr) return;
    const bool with_tau = tau_grad != nullptr;
    T* db = ws.matrix(n * K);
    T* tv = ws.vectors(n);
    double* dv = ws.doubles(K + 1); // [0] Σ G (D − m), [1..K] column sums of D̄
    exec::cuda::check(cudaMemsetAsync(dv, 0, (K + 1) * sizeof(double), p.stream), "cudaMemsetAsync");
    cublasHandle_t h = ws.cublas(p);
    // In the centroids' frame, as the forward: the c terms of x̄ and μ̄ cancel exactly.
    const d::CentredFrame<T> fr = d::centre(p, ws, x, n, F, mu, K);
    if (with_tau) d::gemm_x_mt(h, fr.x, n, F, fr.mu, K, T(-2), db);
    kmeans_kernels::backward_rows<T><<<d::row_grid(n), exec::cuda::block_size, 0, p.stream>>>(
        n, fr.mn, K, static_cast<double>(tau), assignments, assignments_grad, with_tau, db, x_grad != nullptr ? tv : nullptr, dv);
    exec::cuda::check_launch("kmeans backward_rows");
    if (x_grad != nullptr) {
        kmeans_kernels::add_row_scaled<T><<<exec::cuda::grid_size(n * F), exec::cuda::block_size, 0, p.stream>>>(fr.x, n, F, tv, x_grad);
        exec::cuda::check_launch("kmeans add_row_scaled");
        d::gemm_a_m(h, db, n, K, fr.mu, F, T(-2), T(1), x_grad);
    }
    if (centroids_grad != nullptr) {
        d::launch_column_sums<T>(p, db, n, K, dv + 1);
        kmeans_kernels::add_centroid_scaled<T><<<exec::cuda::grid_size(K * F), exec::cuda::block_size, 0, p.stream>>>(fr.mu, K, F, dv + 1,
                                                                                                                     centroids_grad);
        exec::cuda::check_launch("kmeans add_centroid_scaled");
        d::gemm_at_x(h, db, n, K, fr.x, F, T(-2), T(1), centroids_grad);
    }
    if (with_tau) {
        const double acc = d::fetch_scalar(p, dv);
        const double t = static_cast<double>(tau);
        *tau_grad += acc / (t * t);
    }
}

/// Soft centroid update on device data: out [K × F] = Σ_i r_ik x_i / Σ_i r_ik, or previous [K × F]
/// where Σ_i r_ik ≤ 0 (out may equal previous). Asynchronous. Scratch: K × F T, K doubles.
template <class T>
void soft_centroid_update(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* r, std::size_t K,
                          const T* previous, T* out) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "soft k-means (CUDA): T is float or double");
    namespace d = kmeans_cuda_detail;
    d::check_dims(n, F, K, "soft_centroid_update (CUDA)");
    T* S = ws.vectors(K * F);
    double* w = ws.doubles(K);
    exec::cuda::check(cudaMemsetAsync(w, 0, K * sizeof(double), p.stream), "cudaMemsetAsync");
    d::gemm_at_x(ws.cublas(p), r, n, K, x, F, T(1), T(0), S);
    d::launch_column_sums<T>(p, r, n, K, w);
    kmeans_kernels::divide_centroids<T><<<exec::cuda::grid_size(K * F), exec::cuda::block_size, 0, p.stream>>>(S, w, K, F, previous, out);
    exec::cuda::check_launch("kmeans divide_centroids");
}

/// Σ_i ‖x_i − μ_{l_i}‖² on device data (labels in [0, K), not checked). Synchronises p.stream.
template <class T>
double kmeans_inertia(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* mu, const int* labels) {
    double* acc = ws.doubles(1);
    exec::cuda::check(cudaMemsetAsync(acc, 0, sizeof(double), p.stream), "cudaMemsetAsync");
    kmeans_kernels::inertia<T><<<exec::cuda::grid_size(n * F), exec::cuda::block_size, 0, p.stream>>>(x, n, F, mu, labels, acc);
    exec::cuda::check_launch("kmeans inertia");
    return kmeans_cuda_detail::fetch_scalar(p, acc);
}

/// One Lloyd iteration on device data: labels [n] = argmin_k ‖x_i − μ_k‖² (lowest index on ties),
/// and, when new_centroids [K × F] is not null, the means of each label's points (an empty
/// cluster keeps its centroid; new_centroids may equal mu). Returns the inertia (with mu) and the
/// squared centroid shift (0 without an update). Synchronises p.stream. Scratch: n × K T, the
/// centred frame, K × F + K + 2 doubles.
template <class T>
LloydStepStats lloyd_step(const exec::Cuda& p, KMeansWorkspace<T>& ws, const T* x, std::size_t n, std::size_t F, const T* mu, std::size_t K,
                          int* labels, T* new_centroids) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "soft k-means (CUDA): T is float or double");
    namespace d = kmeans_cuda_detail;
    d::check_dims(n, F, K, "lloyd_step (CUDA)");
    if (labels == nullptr) throw InvalidArgument("lloyd_step (CUDA): labels are required");
    soft_assign_forward<T>(p, ws, x, n, F, mu, K, T(1), nullptr, labels);
    double* dv = ws.doubles(2 + K + K * F); // inertia, shift, counts [K], sums [K × F]
    exec::cuda::check(cudaMemsetAsync(dv, 0, (2 + K + K * F) * sizeof(double), p.stream), "cudaMemsetAsync");
    kmeans_kernels::inertia<T><<<exec::cuda::grid_size(n * F), exec::cuda::block_size, 0, p.stream>>>(x, n, F, mu, labels, dv);
    exec::cuda::check_launch("kmeans inertia");
    if (new_centroids != nullptr) {
        kmeans_kernels::lloyd_accumulate<T><<<exec::cuda::grid_size(n * F), exec::cuda::block_size, 0, p.stream>>>(x, n, F, labels,
                                                                                                                 dv + 2 + K, dv + 2);
        exec::cuda::check_launch("kmeans lloyd_accumulate");
        kmeans_kernels::lloyd_update<T><<<exec::cuda::grid_size(K * F), exec::cuda::block_size, 0, p.stream>>>(dv + 2 + K, dv + 2, K, F,
                                                                                                             mu, new_centroids, dv + 1);
        exec::cuda::check_launch("kmeans lloyd_update");
    }
    double host[2] = {0.0, 0.0};
    exec::cuda::check(cudaMemcpyAsync(host, dv, 2 * sizeof(double), cudaMemcpyDeviceToHost, p.stream), "cudaMemcpyAsync D2H");
    exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
    return {host[0], host[1]};
}

// ---------------------------------------------------------------------------------------------
// Host convenience (host data in and out; synchronous)
// ---------------------------------------------------------------------------------------------

namespace kmeans_cuda_detail {

/// The CPU's checks: shapes (returns F), finite data, squared distances within T's range.
template <class T>
std::size_t validate(std::span<const T> x, std::size_t n, std::span<const T> centroids, std::size_t K, const char* where) {
    const std::size_t F = kmeans_detail::check_shapes(x.size(), n, centroids.size(), K, where);
    kmeans_detail::check_all_finite(x, where, "points");
    kmeans_detail::check_all_finite(centroids, where, "centroids");
    check_dims(n, F, K, where);
    kmeans_detail::check_distance_range(x.data(), n, F, centroids.data(), K, where);
    return F;
}

} // namespace kmeans_cuda_detail

/// soft_assign (CPU: ops::soft_assign) on the GPU: r [n × K] and, when labels is not null, the hard
/// labels (resized to n).
template <class T>
std::vector<T> soft_assign(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> centroids, std::size_t K, T tau,
                           std::vector<int>* labels = nullptr) {
    constexpr const char* where = "soft_assign (CUDA)";
    const std::size_t F = kmeans_cuda_detail::validate(x, n, centroids, K, where);
    check_temperature(tau, where, "tau");
    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    const auto dm = exec::cuda::upload(p, centroids);
    exec::cuda::DeviceBuffer<T> r(n * K);
    exec::cuda::DeviceBuffer<int> lab(labels != nullptr ? n : 0);
    soft_assign_forward<T>(p, ws, dx.data(), n, F, dm.data(), K, tau, r.data(), labels != nullptr ? lab.data() : nullptr);
    if (labels != nullptr) *labels = exec::cuda::download(p, lab);
    return exec::cuda::download(p, r);
}

/// Gradients of soft_assign.
template <class T>
struct SoftAssignGradients {
    std::vector<T> points;    ///< [n × F]
    std::vector<T> centroids; ///< [K × F]
    double tau = 0.0;
};

/// The backward of soft_assign for ∂L/∂r = assignments_grad at the forward's assignments (both
/// [n × K]): all three gradients (the CPU Var node's).
template <class T>
SoftAssignGradients<T> soft_assign_backward(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> centroids,
                                            std::size_t K, T tau, std::span<const T> assignments, std::span<const T> assignments_grad) {
    constexpr const char* where = "soft_assign_backward (CUDA)";
    const std::size_t F = kmeans_cuda_detail::validate(x, n, centroids, K, where);
    check_temperature(tau, where, "tau");
    check_size(assignments.size(), n * K, where, "assignments (n x K)");
    check_size(assignments_grad.size(), n * K, where, "assignments_grad (n x K)");
    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    const auto dm = exec::cuda::upload(p, centroids);
    const auto dr = exec::cuda::upload(p, assignments);
    const auto dg = exec::cuda::upload(p, assignments_grad);
    auto gx = exec::cuda::zeros<T>(p, n * F);
    auto gm = exec::cuda::zeros<T>(p, K * F);
    SoftAssignGradients<T> out;
    soft_assign_backward<T>(p, ws, dx.data(), n, F, dm.data(), K, tau, dr.data(), dg.data(), gx.data(), gm.data(), &out.tau);
    out.points = exec::cuda::download(p, gx);
    out.centroids = exec::cuda::download(p, gm);
    return out;
}

/// hard_assign (CPU: ops::hard_assign) on the GPU.
template <class T>
std::vector<int> hard_assign(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> centroids, std::size_t K) {
    const std::size_t F = kmeans_cuda_detail::validate(x, n, centroids, K, "hard_assign (CUDA)");
    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    const auto dm = exec::cuda::upload(p, centroids);
    exec::cuda::DeviceBuffer<int> lab(n);
    soft_assign_forward<T>(p, ws, dx.data(), n, F, dm.data(), K, T(1), nullptr, lab.data());
    return exec::cuda::download(p, lab);
}

/// soft_centroid_update (CPU: ops::soft_centroid_update) on the GPU.
template <class T>
std::vector<T> soft_centroid_update(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> r, std::size_t K,
                                    std::span<const T> previous) {
    constexpr const char* where = "soft_centroid_update (CUDA)";
    const std::size_t F = kmeans_cuda_detail::validate(x, n, previous, K, where);
    check_size(r.size(), n * K, where, "assignments");
    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    const auto dr = exec::cuda::upload(p, r);
    auto dm = exec::cuda::upload(p, previous);
    soft_centroid_update<T>(p, ws, dx.data(), n, F, dr.data(), K, dm.data(), dm.data());
    return exec::cuda::download(p, dm);
}

/// One Lloyd iteration's results.
template <class T>
struct LloydStepResult {
    std::vector<int> labels;  ///< [n] with the input centroids
    std::vector<T> centroids; ///< [K × F] the updated centroids
    double inertia = 0.0;     ///< with the input centroids
    double shift = 0.0;       ///< Σ_k ‖μ_k^new − μ_k‖²
};

/// One Lloyd iteration from `centroids` on the GPU.
template <class T>
LloydStepResult<T> lloyd_step(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> centroids, std::size_t K) {
    const std::size_t F = kmeans_cuda_detail::validate(x, n, centroids, K, "lloyd_step (CUDA)");
    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    const auto dm = exec::cuda::upload(p, centroids);
    exec::cuda::DeviceBuffer<int> lab(n);
    exec::cuda::DeviceBuffer<T> next(K * F);
    const LloydStepStats st = lloyd_step<T>(p, ws, dx.data(), n, F, dm.data(), K, lab.data(), next.data());
    LloydStepResult<T> out;
    out.labels = exec::cuda::download(p, lab);
    out.centroids = exec::cuda::download(p, next);
    out.inertia = st.inertia;
    out.shift = st.shift;
    return out;
}

/// lloyd (CPU: ops::lloyd, scikit-learn's Lloyd iterations from the given centroids) on the GPU,
/// iteration for iteration the CPU loop: the same stopping rules (labels unchanged, or squared
/// shift ≤ tol · mean feature variance, or max_iter), the final relabelling and inertia. The
/// centroids come back as double (of the T values).
template <class T>
LloydResult lloyd(const exec::Cuda& p, std::span<const T> x, std::size_t n, std::span<const T> initial, std::size_t K,
                  const LloydOptions& opt = {}) {
    constexpr const char* where = "lloyd (CUDA)";
    const std::size_t F = kmeans_cuda_detail::validate(x, n, initial, K, where);
    if (K > n) throw InvalidArgument(std::string(where) + ": K = " + std::to_string(K) + " exceeds the number of points n = " + std::to_string(n));
    if (opt.max_iter == 0) throw InvalidArgument(std::string(where) + ": 'max_iter' must be >= 1");
    if (!(opt.tol >= 0.0) || !std::isfinite(opt.tol)) throw InvalidArgument(std::string(where) + ": 'tol' must be finite and >= 0");
    double var_mean = 0.0;
    for (std::size_t f = 0; f < F; ++f) {
        double m = 0.0;
        for (std::size_t i = 0; i < n; ++i) m += static_cast<double>(x[i * F + f]);
        m /= static_cast<double>(n);
        double v = 0.0;
        for (std::size_t i = 0; i < n; ++i) v += (static_cast<double>(x[i * F + f]) - m) * (static_cast<double>(x[i * F + f]) - m);
        var_mean += v / static_cast<double>(n);
    }
    const double tol = opt.tol * var_mean / static_cast<double>(F);

    KMeansWorkspace<T> ws;
    const auto dx = exec::cuda::upload(p, x);
    auto mu = exec::cuda::upload(p, initial);
    exec::cuda::DeviceBuffer<T> next(K * F);
    exec::cuda::DeviceBuffer<int> labels(n), old(n);
    exec::cuda::check(cudaMemsetAsync(old.data(), 0xff, n * sizeof(int), p.stream), "cudaMemsetAsync"); // −1
    LloydResult res;
    std::size_t it = 0;
    for (; it < opt.max_iter; ++it) {
        const LloydStepStats st = lloyd_step<T>(p, ws, dx.data(), n, F, mu.data(), K, labels.data(), next.data());
        std::swap(mu, next);
        double* cnt = ws.doubles(1);
        exec::cuda::check(cudaMemsetAsync(cnt, 0, sizeof(double), p.stream), "cudaMemsetAsync");
        kmeans_kernels::count_changed<int><<<exec::cuda::grid_size(n), exec::cuda::block_size, 0, p.stream>>>(labels.data(), old.data(), n, cnt);
        exec::cuda::check_launch("kmeans count_changed");
        if (kmeans_cuda_detail::fetch_scalar(p, cnt) == 0.0) {
            res.strict_convergence = true;
            break;
        }
        if (st.shift <= tol) break;
        std::swap(labels, old);
    }
    res.iterations = std::min(it + 1, opt.max_iter);
    if (!res.strict_convergence) soft_assign_forward<T>(p, ws, dx.data(), n, F, mu.data(), K, T(1), nullptr, labels.data());
    res.inertia = kmeans_inertia<T>(p, ws, dx.data(), n, F, mu.data(), labels.data());
    res.labels = exec::cuda::download(p, labels);
    const auto c = exec::cuda::download(p, mu);
    res.centroids.assign(c.begin(), c.end());
    return res;
}

/// SoftKMeans::apply(bind, x, n, tau) on the GPU (the operator's centroids as T).
template <class T>
SoftKMeansResult<T> soft_kmeans_apply(const exec::Cuda& p, const SoftKMeans& op, std::span<const T> x, std::size_t n, T tau) {
    check_size(x.size(), n * op.config().n_features, "soft_kmeans_apply (CUDA)", "points");
    const auto cv = op.centroids().values();
    const std::vector<T> mu(cv.begin(), cv.end());
    SoftKMeansResult<T> out;
    out.assignments = soft_assign<T>(p, x, n, std::span<const T>(mu), op.config().n_clusters, tau, &out.labels);
    return out;
}

/// The backward of soft_kmeans_apply for ∂L/∂r = assignments_grad at the forward's assignments: adds
/// ∂L/∂μ into op.centroids().grad() and returns ∂L/∂x and ∂L/∂τ (centroids left empty).
template <class T>
SoftAssignGradients<T> soft_kmeans_backward(const exec::Cuda& p, SoftKMeans& op, std::span<const T> x, std::size_t n, T tau,
                                            std::span<const T> assignments, std::span<const T> assignments_grad) {
    const auto cv = op.centroids().values();
    const std::vector<T> mu(cv.begin(), cv.end());
    auto g = soft_assign_backward<T>(p, x, n, std::span<const T>(mu), op.config().n_clusters, tau, assignments, assignments_grad);
    auto grad = op.centroids().grad();
    for (std::size_t j = 0; j < grad.size(); ++j) grad[j] += static_cast<double>(g.centroids[j]);
    g.centroids.clear();
    return g;
}

} // namespace diffbio::ops::cuda
