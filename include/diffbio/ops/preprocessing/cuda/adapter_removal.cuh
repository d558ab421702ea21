#pragma once
// CUDA backend of AdapterRemoval's soft trimming (see <diffbio/ops/preprocessing/adapter_removal.hpp>
// for the maths and the decision rule). Same semantics as the CPU fused node, for T = float or double:
//
//   raw_p = Σ_{k<ov} Σ_a seq_{p+k,a}·B[k,a],  ov = min(len − p, La), B = S·A (B[k,a] = Σ_b S[a,b] A[k,b])
//   z_p   = (raw_p − θ(ov))/T,  θ(ov) = max(τ_m·m·ov, min_score) (ties take the fraction branch)
//   r_l   = exp(Σ_{p≤l, ov_p ≥ min_overlap} log σ(−z_p)) for l < len, 0 in padding;  trim = Σ_l r_l
//   seq'  = seq·r,  quality' = quality·r
// and the backward of the CPU node (adapter_read_backward): with r̄_l = ∂L/∂r_l + ∂L/∂trim +
// Σ_a ∂L/∂seq'_{l,a}·seq_{l,a} + ∂L/∂quality'_l·quality_l and the suffix sums ū_p = Σ_{l≥p} r̄_l r_l,
//   z̄_p = −ū_p σ(z_p),  g_p = z̄_p/T,  B̄[k,a] += Σ_{i,p} g_p seq_{p+k,a},  seq̄_{p+k,a} += g_p B[k,a],
//   τ̄_m += −Σ z̄_p·m·ov/T (fraction branch only),  T̄ += −Σ z̄_p z_p/T
// plus seq̄ += ∂L/∂seq'·r and qualitȳ += ∂L/∂quality'·r. B̄ maps to Ā and S̄ on the host
// (adapter_parameter_gradients), exactly as the CPU node does; ∂L/∂log T = T̄·T.
//
// Kernel mapping: ONE WARP PER READ (256-thread blocks = 8 warps = 8 reads at a time, grid-stride over
// reads). The read is walked in chunks of 32 positions, lane j owning start p = chunk + j:
//   forward   lane j computes raw_p (La·4 multiply-adds, B staged in shared memory) and log σ(−z_p); a
//             warp inclusive scan (__shfl_up_sync, 5 steps) plus the running carry of the previous
//             chunks gives the log-survival Σ_{q≤p}; lane j writes r_p (and seq'_p, quality'_p); the
//             trim position is a warp sum of the lanes' partial Σ r. O(L·La·4 / 32) per lane.
//   backward  chunks from the 3' end: r̄_p r_p is suffix-scanned (__shfl_down_sync) with a carry, lane j
//             recomputes z_p and forms g_p. B̄ is accumulated per chunk with lanes over the La·4 entries
//             (g_p broadcast by __shfl_sync; lane e reads seq[(p·4 + e)], coalesced) into a per-warp
//             slice of shared memory in double that only lane e mod 32 touches (no atomics); at the end
//             the block sums its warps' slices and adds them with one double atomicAdd per entry. τ̄_m
//             and T̄ are per-lane double sums, warp-reduced, one atomicAdd per warp. If seq̄ is requested
//             the g_p of a read go to a scratch array and, after __syncwarp, lane j gathers
//             seq̄_{q,a} += Σ_{k ≤ min(La−1, q)} g_{q−k} B[k,a] for q = j, j+32, … (no write conflicts).
// The per-read warp programs (forward_read, backward_read) are written against the warp interface of
// <diffbio/exec/cuda/warp.cuh>; tests/cuda/test_preprocessing_cuda.cu also runs them on a host emulation
// of a warp, without a GPU.
// Memory: forward: La·4·sizeof(T) shared per block, nothing else. Backward: 8·La·4·8 + La·4·sizeof(T)
// bytes of shared memory per block (fewer warps per block when that would exceed 48 KiB), La·4 + 2
// doubles of device scratch, and N·L·sizeof(T) device scratch for g only when seq_grad is requested.
// The backward grid is at most 8 blocks per SM, so the B̄ atomics are at most 8·SMs·La·4.
// Limits: adapter length ≤ 512 (InvalidArgument beyond). Float runs the per-read arithmetic in float
// (like the CPU operator on float data) and the cross-read reductions (B̄, τ̄_m, T̄) in double.
//
// Two levels of API:
//   * device pointers (adapter_removal_forward / adapter_removal_backward with AdapterRemovalArgs):
//     the forward is asynchronous on the policy's stream; the backward synchronises it to return B̄,
//     τ̄_m and T̄ (in double) to the host.
//   * host convenience (taking an AdapterRemoval and a ReadsView<T, T> of host data): copies to the
//     device, runs, copies back; the backward adds the parameter gradients (adapter one-hot, scores,
//     match threshold, log temperature when learnable) into the operator's Parameter::grad() like
//     ad::Binder<ad::Var>::accumulate_grad does, and returns the reads' gradients.
// nvcc only.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/launch.cuh>
#include <diffbio/exec/cuda/warp.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>

namespace diffbio::ops::cuda {

/// Shapes and scalar settings of one adapter-removal launch.
template <class T>
struct AdapterRemovalArgs {
    std::size_t n = 0;              ///< reads
    std::size_t length = 0;         ///< padded length L
    std::size_t adapter_length = 0; ///< La (rows of B)
    std::size_t min_overlap = 1;    ///< starts with ov < min_overlap contribute nothing
    double match_score = 2.0;       ///< m: θ(ov) = max(τ_m·m·ov, min_score)
    double min_score = -std::numeric_limits<double>::infinity();
    T tau_m = T(0.5);               ///< match threshold τ_m
    T temperature = T(1);           ///< T itself (not log T)
};

/// ∂L/∂(outputs) for the device backward; each may be null (zero).
template <class T>
struct AdapterRemovalOutputGradPtrs {
    const T* retention = nullptr;     ///< [N × L]
    const T* trim_position = nullptr; ///< [N]
    const T* seq = nullptr;           ///< [N × L × 4] ∂L/∂seq'
    const T* quality = nullptr;       ///< [N × L] ∂L/∂quality'
};

/// What the device backward returns to the host (summed over all reads, in double).
struct AdapterScoreGradients {
    std::vector<double> B;    ///< [La × 4] ∂L/∂B
    double tau_m = 0.0;       ///< ∂L/∂τ_m
    double temperature = 0.0; ///< ∂L/∂T (multiply by T for ∂L/∂log T)
};

/// Longest adapter the CUDA kernels accept (shared-memory staging of B and of the B̄ slices).
inline constexpr std::size_t adapter_cuda_max_length = 512;

namespace adapter_kernels {

using exec::cuda::warp_inclusive_scan;
using exec::cuda::warp_suffix_scan;
using exec::cuda::warp_sum;

/// z of the start p < len of one read (x: the read's [L × 4] rows). Returns false when ov < min_overlap
/// (the start contributes nothing). Same operation order as detail::adapter_read_forward.
template <class T>
DIFFBIO_HD inline bool start_z(const T* __restrict__ x, std::size_t p, std::size_t len, const T* __restrict__ B,
                               const AdapterRemovalArgs<T>& a, T& z, bool& fraction, double& w) {
    const std::size_t rest = len - p;
    const std::size_t ov = rest < a.adapter_length ? rest : a.adapter_length;
    if (ov < a.min_overlap) return false;
    const T* row = x + p * 4;
    T s = T(0);
    for (std::size_t e = 0; e < ov * 4; ++e) s += row[e] * B[e];
    w = a.match_score * static_cast<double>(ov);
    // detail::adapter_threshold: the fraction τ_m·w is formed in double and rounded to T.
    const T frac = static_cast<T>(static_cast<double>(a.tau_m) * w);
    fraction = static_cast<double>(frac) >= a.min_score;
    const T theta = fraction ? frac : static_cast<T>(a.min_score);
    z = (s - theta) / a.temperature;
    return true;
}

/// The forward of read i by one warp (the warp interface of <diffbio/exec/cuda/warp.cuh>; every lane
/// calls it with the same i). B: [La × 4] (shared memory on the device).
template <class T, class W>
DIFFBIO_HD void forward_read(const W& w, const AdapterRemovalArgs<T>& a, std::size_t i, const T* __restrict__ seq,
                             const T* __restrict__ quality, const std::uint32_t* __restrict__ lengths,
                             const T* __restrict__ B, T* __restrict__ retention, T* __restrict__ trim_position,
                             T* __restrict__ seq_out, T* __restrict__ quality_out) {
    const unsigned lane = w.lane();
    const std::size_t L = a.length;
    const std::size_t len = lengths[i];
    const T* x = seq + i * L * 4;
    T carry = T(0); // Σ log σ(−z_q) over the previous chunks
    T total = T(0); // this lane's share of Σ r
    for (std::size_t c0 = 0; c0 < L; c0 += 32) {
        const std::size_t p = c0 + lane;
        T term = T(0);
        if (p < len) {
            T z;
            bool fraction;
            double wt;
            if (start_z(x, p, len, B, a, z, fraction, wt)) term = diffbio::log_sigmoid(-z);
        }
        const T inclusive = warp_inclusive_scan(w, term);
        const T log_survival = carry + inclusive;
        carry += w.from(inclusive, 31);
        if (p < L) {
            using std::exp;
            const std::size_t il = i * L + p;
            const T r = p < len ? exp(log_survival) : T(0);
            retention[il] = r;
            total += r;
            if (seq_out != nullptr) {
                for (std::size_t b = 0; b < 4; ++b) seq_out[il * 4 + b] = x[p * 4 + b] * r;
            }
            if (quality_out != nullptr) quality_out[il] = quality[il] * r;
        }
    }
    total = warp_sum(w, total);
    if (lane == 0 && trim_position != nullptr) trim_position[i] = total;
}

/// The backward of read i by one warp. B̄ goes into acc [La × 4] (the warp's own slice: entry e is
/// only touched by lane e mod 32), this lane's shares of τ̄_m and T̄ into tau_bar and temp_bar (to be
/// warp-summed), seq̄ and qualitȳ (when not null) are accumulated (+=). g_scratch: [N × L], needed
/// when seq_grad is not null.
template <class T, class W>
DIFFBIO_HD void backward_read(const W& w, const AdapterRemovalArgs<T>& a, std::size_t i, const T* __restrict__ seq,
                              const T* __restrict__ quality, const std::uint32_t* __restrict__ lengths,
                              const T* __restrict__ B, const T* __restrict__ retention,
                              const AdapterRemovalOutputGradPtrs<T>& gy, T* __restrict__ g_scratch,
                              T* __restrict__ seq_grad, T* __restrict__ quality_grad, double* __restrict__ acc,
                              double& tau_bar, double& temp_bar) {
    const unsigned lane = w.lane();
    const std::size_t L = a.length;
    const double temp = static_cast<double>(a.temperature);
    const std::size_t len = lengths[i];
    const T* x = seq + i * L * 4;
    const T* r = retention + i * L;
    const T pos_bar = gy.trim_position != nullptr ? gy.trim_position[i] : T(0);
    T carry = T(0); // Σ_{l ≥ end of this chunk} r̄_l r_l
    for (std::size_t c = (len + 31) / 32; c-- > 0;) {
        const std::size_t p = c * 32 + lane;
        const std::size_t il = i * L + p;
        T v = T(0);
        if (p < len) {
            T rbar = pos_bar;
            if (gy.retention != nullptr) rbar += gy.retention[il];
            if (gy.seq != nullptr) {
                for (std::size_t b = 0; b < 4; ++b) rbar += gy.seq[il * 4 + b] * x[p * 4 + b];
            }
            if (gy.quality != nullptr) rbar += gy.quality[il] * quality[il];
            v = rbar * r[p];
        }
        const T suffix = carry + warp_suffix_scan(w, v);
        carry = w.from(suffix, 0);
        T g = T(0);
        if (p < len) {
            T z;
            bool fraction;
            double wt;
            if (start_z(x, p, len, B, a, z, fraction, wt)) {
                const T zbar = -suffix * diffbio::sigmoid(z); // d log σ(−z)/dz = −σ(z)
                if (fraction) tau_bar -= static_cast<double>(zbar) * wt / temp;
                temp_bar -= static_cast<double>(zbar) * static_cast<double>(z) / temp;
                g = zbar / a.temperature;
            }
            if (g_scratch != nullptr) g_scratch[il] = g;
        }
        // B̄[e] += g_p · seq[p·4 + e] for e < ov_p·4, lanes over e.
        for (unsigned j = 0; j < 32; ++j) {
            const T gj = w.from(g, j);
            if (gj == T(0)) continue; // warp-uniform: also every p ≥ len and ov < min_overlap
            const std::size_t pj = c * 32 + j;
            const std::size_t rest = len - pj;
            const std::size_t ov4 = (rest < a.adapter_length ? rest : a.adapter_length) * 4;
            const T* row = x + pj * 4;
            for (std::size_t e = lane; e < ov4; e += 32) acc[e] += static_cast<double>(gj * row[e]);
        }
    }
    if (seq_grad != nullptr || (quality_grad != nullptr && gy.quality != nullptr)) {
        w.sync(); // the read's g_scratch entries, written by other lanes, are visible from here
        for (std::size_t q = lane; q < L; q += 32) {
            const std::size_t il = i * L + q;
            const T rq = q < len ? r[q] : T(0);
            if (seq_grad != nullptr) {
                T s4[4] = {T(0), T(0), T(0), T(0)};
                if (q < len) {
                    const std::size_t kmax = q < a.adapter_length - 1 ? q : a.adapter_length - 1;
                    const T* gq = g_scratch + i * L + q;
                    for (std::size_t k = 0; k <= kmax; ++k) {
                        const T gk = *(gq - k); // g of the start p = q − k (0 if inactive)
                        for (std::size_t b = 0; b < 4; ++b) s4[b] += gk * B[k * 4 + b];
                    }
                }
                for (std::size_t b = 0; b < 4; ++b) {
                    T add = s4[b];
                    if (gy.seq != nullptr) add += gy.seq[il * 4 + b] * rq;
                    seq_grad[il * 4 + b] += add;
                }
            }
            if (quality_grad != nullptr && gy.quality != nullptr) quality_grad[il] += gy.quality[il] * rq;
        }
    }
}

template <class T>
__global__ void forward(AdapterRemovalArgs<T> a, const T* __restrict__ seq, const T* __restrict__ quality,
                        const std::uint32_t* __restrict__ lengths, const T* __restrict__ B_global,
                        T* __restrict__ retention, T* __restrict__ trim_position, T* __restrict__ seq_out,
                        T* __restrict__ quality_out) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* B = reinterpret_cast<T*>(shared_bytes);
    const std::size_t la4 = a.adapter_length * 4;
    for (std::size_t e = threadIdx.x; e < la4; e += blockDim.x) B[e] = B_global[e];
    __syncthreads();

    const std::size_t warps = blockDim.x >> 5;
    for (std::size_t i = blockIdx.x * warps + (threadIdx.x >> 5); i < a.n; i += gridDim.x * warps) {
        forward_read(exec::cuda::DeviceWarp{}, a, i, seq, quality, lengths, B, retention, trim_position, seq_out,
                     quality_out);
    }
}

template <class T>
__global__ void backward(AdapterRemovalArgs<T> a, const T* __restrict__ seq, const T* __restrict__ quality,
                         const std::uint32_t* __restrict__ lengths, const T* __restrict__ B_global,
                         const T* __restrict__ retention, AdapterRemovalOutputGradPtrs<T> gy, T* __restrict__ g_scratch,
                         T* __restrict__ seq_grad, T* __restrict__ quality_grad, double* __restrict__ sums) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    const std::size_t la4 = a.adapter_length * 4;
    const std::size_t warps = blockDim.x >> 5;
    double* slices = reinterpret_cast<double*>(shared_bytes); // [warps × La·4] B̄ partials
    T* B = reinterpret_cast<T*>(slices + warps * la4);
    for (std::size_t e = threadIdx.x; e < la4; e += blockDim.x) B[e] = B_global[e];
    for (std::size_t e = threadIdx.x; e < warps * la4; e += blockDim.x) slices[e] = 0.0;
    __syncthreads();

    const exec::cuda::DeviceWarp w{};
    double* acc = slices + (threadIdx.x >> 5) * la4; // this warp's slice
    double tau_bar = 0.0, temp_bar = 0.0;
    for (std::size_t i = blockIdx.x * warps + (threadIdx.x >> 5); i < a.n; i += gridDim.x * warps) {
        backward_read(w, a, i, seq, quality, lengths, B, retention, gy, g_scratch, seq_grad, quality_grad, acc, tau_bar,
                      temp_bar);
    }
    tau_bar = warp_sum(w, tau_bar);
    temp_bar = warp_sum(w, temp_bar);
    if (w.lane() == 0) {
        atomicAdd(&sums[la4], tau_bar);
        atomicAdd(&sums[la4 + 1], temp_bar);
    }
    __syncthreads();
    for (std::size_t e = threadIdx.x; e < la4; e += blockDim.x) {
        double s = 0.0;
        for (std::size_t k = 0; k < warps; ++k) s += slices[k * la4 + e];
        if (s != 0.0) atomicAdd(&sums[e], s);
    }
}

} // namespace adapter_kernels

namespace adapter_detail {

template <class T>
void validate(const AdapterRemovalArgs<T>& a, const char* where) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "adapter_removal (CUDA): T is float or double");
    if (a.adapter_length == 0) throw InvalidArgument(std::string(where) + ": 'adapter_length' is 0");
    if (a.adapter_length > adapter_cuda_max_length) {
        throw InvalidArgument(std::string(where) + ": adapter length " + std::to_string(a.adapter_length) +
                              " exceeds the CUDA backend's limit of " + std::to_string(adapter_cuda_max_length));
    }
    if (a.min_overlap == 0) throw InvalidArgument(std::string(where) + ": 'min_overlap' must be >= 1");
    check_temperature(a.temperature, where, "temperature");
    check_finite(a.tau_m, where, "tau_m");
    check_positive(a.match_score, where, "match_score");
    if (std::isnan(a.min_score) || a.min_score == std::numeric_limits<double>::infinity()) {
        throw InvalidArgument(std::string(where) + ": 'min_score' must be finite or -infinity");
    }
}

inline constexpr unsigned block_threads = 256; // 8 warps, one read each
inline constexpr std::size_t shared_limit = 48 * 1024;

/// Reads per block of the backward: 8 unless the B̄ slices would not fit in 48 KiB.
template <class T>
unsigned backward_warps(std::size_t la4) {
    const std::size_t fixed = la4 * sizeof(T);
    const std::size_t per_warp = la4 * sizeof(double);
    std::size_t w = (shared_limit - fixed) / per_warp;
    if (w > block_threads / 32) w = block_threads / 32;
    return static_cast<unsigned>(w); // ≥ 1 for La ≤ adapter_cuda_max_length
}

inline unsigned capped_blocks(std::size_t n, std::size_t per_block, std::size_t cap) {
    const std::size_t blocks = (n + per_block - 1) / per_block;
    return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), cap));
}

using exec::cuda::download;
using exec::cuda::upload;
using exec::cuda::zeros;

/// An operator's parameter values.
struct AdapterValues {
    std::vector<double> A, S;
    double tau_m = 0.0;
};
inline AdapterValues values_of(const AdapterRemoval& op) {
    return {std::vector<double>(op.adapter().values().begin(), op.adapter().values().end()),
            std::vector<double>(op.scores().values().begin(), op.scores().values().end()),
            op.match_threshold().values()[0]};
}

template <class T>
AdapterRemovalArgs<T> args_of(const AdapterRemoval& op, double tau_m, std::size_t n, std::size_t length) {
    const AdapterRemovalConfig& c = op.config();
    AdapterRemovalArgs<T> a;
    a.n = n;
    a.length = length;
    a.adapter_length = op.adapter_length();
    a.min_overlap = c.min_overlap;
    a.match_score = c.match_score;
    a.min_score = c.min_score;
    a.tau_m = static_cast<T>(tau_m);
    a.temperature = static_cast<T>(op.temperature());
    return a;
}

} // namespace adapter_detail

/// B = S·A: B[k, a] = Σ_b S[a, b]·A[k, b] for the adapter profile A [La × 4] and the scores S [4 × 4].
inline std::vector<double> adapter_score_matrix(std::span<const double> A, std::span<const double> S) {
    check_size(S.size(), 16, "adapter_score_matrix", "scores (4 x 4)");
    if (A.size() % 4 != 0) throw ShapeError("adapter_score_matrix: adapter (La x 4) has a size that is not a multiple of 4");
    return detail::times_scores<double>(A, S, A.size() / 4);
}

/// Chain rule through B = S·A: A_grad[k, b] += Σ_a B̄[k, a] S[a, b], S_grad[a, b] += Σ_k B̄[k, a] A[k, b].
inline void adapter_parameter_gradients(std::span<const double> A, std::span<const double> S,
                                        std::span<const double> B_grad, std::span<double> A_grad,
                                        std::span<double> S_grad) {
    check_size(S.size(), 16, "adapter_parameter_gradients", "scores (4 x 4)");
    check_size(B_grad.size(), A.size(), "adapter_parameter_gradients", "B_grad (La x 4)");
    check_size(A_grad.size(), A.size(), "adapter_parameter_gradients", "A_grad (La x 4)");
    check_size(S_grad.size(), 16, "adapter_parameter_gradients", "S_grad (4 x 4)");
    detail::times_scores_backward(A, S, B_grad, A.size() / 4, A_grad, S_grad);
}

namespace adapter_detail {

/// Adds B̄, τ̄_m and T̄ (summed over the reads) into the operator's parameter gradients, as
/// ad::Binder<ad::Var>::accumulate_grad does: the adapter one-hot and scores through B = S·A, the
/// match threshold, and log T when the temperature is learnable (∂L/∂log T = T̄·T).
inline void add_parameter_gradients(AdapterRemoval& op, const AdapterValues& v, const AdapterScoreGradients& sg) {
    adapter_parameter_gradients(v.A, v.S, sg.B, op.adapter().grad(), op.scores().grad());
    op.match_threshold().grad()[0] += sg.tau_m;
    if (op.config().learnable_temperature) op.log_temperature().grad()[0] += sg.temperature * op.temperature();
}

} // namespace adapter_detail

/// Forward on device data: seq [N×L×4], lengths [N] (each ≤ L; not checked on the device), B [La×4]
/// (adapter_score_matrix, converted to T). retention [N×L] is required; trim_position [N], seq_out
/// [N×L×4] and quality_out [N×L] may be null (quality may be null when quality_out is). Asynchronous.
template <class T>
void adapter_removal_forward(const exec::Cuda& p, const AdapterRemovalArgs<T>& args, const T* seq, const T* quality,
                             const std::uint32_t* lengths, const T* B, T* retention, T* trim_position, T* seq_out,
                             T* quality_out) {
    const char* where = "adapter_removal_forward (CUDA)";
    adapter_detail::validate(args, where);
    if (retention == nullptr) throw InvalidArgument(std::string(where) + ": 'retention' output is required");
    if (quality_out != nullptr && quality == nullptr) throw InvalidArgument(std::string(where) + ": quality_out needs quality");
    if (args.n == 0) return;
    const std::size_t shared = args.adapter_length * 4 * sizeof(T);
    const unsigned reads_per_block = adapter_detail::block_threads / 32;
    adapter_kernels::forward<T><<<adapter_detail::capped_blocks(args.n, reads_per_block, 65535),
                                  adapter_detail::block_threads, shared, p.stream>>>(
        args, seq, quality, lengths, B, retention, trim_position, seq_out, quality_out);
    exec::cuda::check_launch("adapter_removal_forward");
}

/// Backward on device data. retention: the forward's output. grads: ∂L/∂(retention, trim, seq',
/// quality'), each may be null. seq_grad [N×L×4] and quality_grad [N×L] (may be null) ACCUMULATE (+=);
/// quality is needed when grads.quality is given. Returns ∂L/∂B, ∂L/∂τ_m and ∂L/∂T (double, summed
/// over the reads); synchronises p.stream.
template <class T>
AdapterScoreGradients adapter_removal_backward(const exec::Cuda& p, const AdapterRemovalArgs<T>& args, const T* seq,
                                               const T* quality, const std::uint32_t* lengths, const T* B,
                                               const T* retention, const AdapterRemovalOutputGradPtrs<T>& grads,
                                               T* seq_grad, T* quality_grad) {
    const char* where = "adapter_removal_backward (CUDA)";
    adapter_detail::validate(args, where);
    if (grads.quality != nullptr && quality == nullptr) throw InvalidArgument(std::string(where) + ": grads.quality needs quality");
    const std::size_t la4 = args.adapter_length * 4;
    AdapterScoreGradients out;
    out.B.assign(la4, 0.0);
    if (args.n == 0) return out;

    const unsigned warps = adapter_detail::backward_warps<T>(la4);
    const std::size_t shared = warps * la4 * sizeof(double) + la4 * sizeof(T);
    int device = 0, sms = 0;
    exec::cuda::check(cudaGetDevice(&device), "cudaGetDevice");
    exec::cuda::check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
    const unsigned blocks = adapter_detail::capped_blocks(args.n, warps, static_cast<std::size_t>(std::max(sms, 1)) * 8);

    double* sums = nullptr; // [La·4 + 2]: B̄, τ̄_m, T̄
    T* g_scratch = nullptr;
    std::vector<double> host(la4 + 2, 0.0);
    const auto release = [&] {
        if (sums != nullptr) (void)cudaFreeAsync(sums, p.stream);
        if (g_scratch != nullptr) (void)cudaFreeAsync(g_scratch, p.stream);
        sums = nullptr;
        g_scratch = nullptr;
    };
    try {
        exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&sums), host.size() * sizeof(double), p.stream),
                          "cudaMallocAsync");
        exec::cuda::check(cudaMemsetAsync(sums, 0, host.size() * sizeof(double), p.stream), "cudaMemsetAsync");
        if (seq_grad != nullptr && args.length > 0) {
            exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&g_scratch), args.n * args.length * sizeof(T), p.stream),
                              "cudaMallocAsync");
        }
        adapter_kernels::backward<T><<<blocks, warps * 32, shared, p.stream>>>(
            args, seq, quality, lengths, B, retention, grads, g_scratch, seq_grad, quality_grad, sums);
        exec::cuda::check_launch("adapter_removal_backward");
        exec::cuda::check(cudaMemcpyAsync(host.data(), sums, host.size() * sizeof(double), cudaMemcpyDeviceToHost, p.stream),
                          "cudaMemcpyAsync");
        exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
    } catch (...) {
        release();
        throw;
    }
    if (sums != nullptr) exec::cuda::check(cudaFreeAsync(sums, p.stream), "cudaFreeAsync");
    sums = nullptr;
    if (g_scratch != nullptr) exec::cuda::check(cudaFreeAsync(g_scratch, p.stream), "cudaFreeAsync");
    g_scratch = nullptr;
    std::copy(host.begin(), host.begin() + static_cast<std::ptrdiff_t>(la4), out.B.begin());
    out.tau_m = host[la4];
    out.temperature = host[la4 + 1];
    return out;
}

/// ∂L/∂(outputs) for the host backward; an empty span is zero.
template <class T>
struct AdapterRemovalOutputGrads {
    std::span<const T> retention;     ///< [N × L]
    std::span<const T> trim_position; ///< [N]
    std::span<const T> seq;           ///< [N × L × 4]
    std::span<const T> quality;       ///< [N × L]
};

/// Gradients of the reads from the host backward (empty when not requested).
template <class T>
struct AdapterRemovalReadGradients {
    std::vector<T> seq;     ///< [N × L × 4] ∂L/∂seq
    std::vector<T> quality; ///< [N × L] ∂L/∂quality
};

/// One-call forward on host data: AdapterRemoval::apply with the operator's current parameters,
/// computed on the GPU (B = S·A formed on the host in double, then rounded to T). Synchronous.
template <class T>
AdapterRemovalResult<T> adapter_removal_forward(const exec::Cuda& p, const AdapterRemoval& op,
                                                const ReadsView<T, T>& reads) {
    namespace d = adapter_detail;
    reads.validate("adapter_removal_forward (CUDA)");
    const d::AdapterValues v = d::values_of(op);
    const auto args = d::args_of<T>(op, v.tau_m, reads.n, reads.length);
    const std::vector<double> Bd = adapter_score_matrix(v.A, v.S);
    const std::vector<T> Bt(Bd.begin(), Bd.end());
    const auto seq = d::upload(p, reads.seq);
    const auto quality = d::upload(p, reads.quality);
    const auto lengths = d::upload(p, reads.lengths);
    const auto B = d::upload(p, std::span<const T>(Bt));
    exec::cuda::DeviceBuffer<T> r(reads.n * reads.length), pos(reads.n), seq_out(reads.seq.size()),
        quality_out(reads.quality.size());
    adapter_removal_forward<T>(p, args, seq.data(), quality.data(), lengths.data(), B.data(), r.data(), pos.data(),
                               seq_out.data(), quality_out.data());
    AdapterRemovalResult<T> out;
    out.seq = d::download(p, seq_out);
    out.quality = d::download(p, quality_out);
    out.retention = d::download(p, r);
    out.trim_position = d::download(p, pos);
    return out;
}

/// One-call backward on host data. retention: the forward's retention [N×L]. Adds the parameter
/// gradients into op.adapter().grad(), op.scores().grad(), op.match_threshold().grad() and, when the
/// temperature is learnable, op.log_temperature().grad(). Returns ∂L/∂seq and ∂L/∂quality when
/// read_gradients is true (else empty vectors, and no N·L scratch). Synchronous.
template <class T>
AdapterRemovalReadGradients<T> adapter_removal_backward(const exec::Cuda& p, AdapterRemoval& op,
                                                        const ReadsView<T, T>& reads, std::span<const T> retention,
                                                        const AdapterRemovalOutputGrads<T>& grads,
                                                        bool read_gradients = true) {
    namespace d = adapter_detail;
    const char* where = "adapter_removal_backward (CUDA)";
    reads.validate(where);
    const std::size_t nl = reads.n * reads.length;
    check_size(retention.size(), nl, where, "retention (N x L)");
    if (!grads.retention.empty()) check_size(grads.retention.size(), nl, where, "retention gradient (N x L)");
    if (!grads.trim_position.empty()) check_size(grads.trim_position.size(), reads.n, where, "trim_position gradient (N)");
    if (!grads.seq.empty()) check_size(grads.seq.size(), nl * 4, where, "seq' gradient (N x L x 4)");
    if (!grads.quality.empty()) check_size(grads.quality.size(), nl, where, "quality' gradient (N x L)");

    const d::AdapterValues v = d::values_of(op);
    const auto args = d::args_of<T>(op, v.tau_m, reads.n, reads.length);
    const std::vector<double> Bd = adapter_score_matrix(v.A, v.S);
    const std::vector<T> Bt(Bd.begin(), Bd.end());
    const auto seq = d::upload(p, reads.seq);
    const auto quality = d::upload(p, reads.quality);
    const auto lengths = d::upload(p, reads.lengths);
    const auto B = d::upload(p, std::span<const T>(Bt));
    const auto r = d::upload(p, retention);
    const auto g_r = d::upload(p, grads.retention);
    const auto g_pos = d::upload(p, grads.trim_position);
    const auto g_seq = d::upload(p, grads.seq);
    const auto g_q = d::upload(p, grads.quality);
    AdapterRemovalOutputGradPtrs<T> ptrs;
    ptrs.retention = grads.retention.empty() ? nullptr : g_r.data();
    ptrs.trim_position = grads.trim_position.empty() ? nullptr : g_pos.data();
    ptrs.seq = grads.seq.empty() ? nullptr : g_seq.data();
    ptrs.quality = grads.quality.empty() ? nullptr : g_q.data();
    auto seq_grad = d::zeros<T>(p, read_gradients ? reads.seq.size() : 0);
    auto quality_grad = d::zeros<T>(p, read_gradients ? reads.quality.size() : 0);
    const AdapterScoreGradients sg =
        adapter_removal_backward<T>(p, args, seq.data(), quality.data(), lengths.data(), B.data(), r.data(), ptrs,
                                    read_gradients ? seq_grad.data() : nullptr,
                                    read_gradients ? quality_grad.data() : nullptr);

    d::add_parameter_gradients(op, v, sg);
    AdapterRemovalReadGradients<T> out;
    if (read_gradients) {
        out.seq = d::download(p, seq_grad);
        out.quality = d::download(p, quality_grad);
    }
    return out;
}

} // namespace diffbio::ops::cuda
