#pragma once
// CUDA backend of QualityFilter (see <diffbio/ops/preprocessing/quality_filter.hpp> for the maths).
//
//   forward:  w_{i,l} = σ((q_{i,l} − θ)/s) for l < lengths[i], 0 in padding;  seq'_{i,l,a} = seq_{i,l,a}·w_{i,l}
//   backward: with w̄ = ∂L/∂w + Σ_a ∂L/∂seq'_a · seq_a and g = w̄·σ'(z)/s, z = (q − θ)/s (l < lengths[i] only):
//             seq_grad += ∂L/∂seq' · w,  quality_grad += g,  *theta_grad += −Σ g   (padding: no q/θ gradient)
//
// Two levels of API, both for T = float or double:
//   * device pointers (quality_filter_forward / quality_filter_backward taking `const T*`): asynchronous
//     on the policy's stream, except that the backward synchronises it when theta_grad is requested (the
//     Σ g reduction accumulates in double, one atomicAdd per block, and comes back to the host).
//   * host convenience (taking a QualityFilter and a ReadsView<T, T> of host data): copies to the device,
//     runs, copies back; the backward adds ∂L/∂θ into the operator's threshold().grad() like
//     ad::Binder<ad::Var>::accumulate_grad does and returns the reads' gradients.
//
// Mapping: one thread per base (i, l), grid-stride over N·L (256-thread blocks, at most 65536 blocks);
// a thread's work is forward_base / backward_base, which tests/cuda/test_preprocessing_cuda.cu also
// runs on the host without a GPU.
// Memory: no scratch beyond one double for the θ reduction. O(N·L). nvcc only.

#include <cstddef>
#include <cstdint>
#include <span>
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
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/quality_filter.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>

namespace diffbio::ops::cuda {

namespace quality_filter_kernels {

/// Block-wide sum of one double; thread 0 gets the total. blockDim.x must be a multiple of 32
/// and at most 1024.
__device__ inline double block_sum(double v) {
    __shared__ double warp_totals[32];
    for (unsigned off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_totals[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0) {
        for (unsigned w = 0; w < (blockDim.x >> 5); ++w) total += warp_totals[w];
    }
    return total;
}

/// The forward of base idx = i·L + l (one thread's work; also run on the host by the tests).
template <class T>
DIFFBIO_HD inline void forward_base(std::size_t idx, const T* __restrict__ seq, const T* __restrict__ quality,
                                    const std::uint32_t* __restrict__ lengths, std::size_t length, T theta, T softness,
                                    T* __restrict__ weights_out, T* __restrict__ seq_out) {
    const std::size_t i = idx / length;
    const std::size_t l = idx - i * length;
    const T w = l < lengths[i] ? diffbio::sigmoid((quality[idx] - theta) / softness) : T(0);
    if (weights_out != nullptr) weights_out[idx] = w;
    if (seq_out != nullptr) {
        for (std::size_t a = 0; a < 4; ++a) seq_out[idx * 4 + a] = seq[idx * 4 + a] * w;
    }
}

/// The backward of base idx (inv = 1/softness); returns g = ∂L/∂q (0 in padding), whose negation
/// is the base's share of ∂L/∂θ.
template <class T>
DIFFBIO_HD inline T backward_base(std::size_t idx, const T* __restrict__ seq, const T* __restrict__ quality,
                                  const std::uint32_t* __restrict__ lengths, std::size_t length, T theta, T softness,
                                  T inv, const T* __restrict__ seq_grad_out, const T* __restrict__ weights_grad_out,
                                  T* __restrict__ seq_grad_in, T* __restrict__ quality_grad) {
    const std::size_t i = idx / length;
    const std::size_t l = idx - i * length;
    const bool valid = l < lengths[i];
    const T z = (quality[idx] - theta) / softness;
    const T w = valid ? diffbio::sigmoid(z) : T(0);
    T wbar = weights_grad_out != nullptr ? weights_grad_out[idx] : T(0);
    if (seq_grad_out != nullptr) {
        T acc = T(0);
        for (std::size_t a = 0; a < 4; ++a) {
            const T gy = seq_grad_out[idx * 4 + a];
            acc += gy * seq[idx * 4 + a];
            if (seq_grad_in != nullptr) seq_grad_in[idx * 4 + a] += gy * w;
        }
        wbar += acc;
    }
    if (!valid) return T(0);
    const T g = wbar * diffbio::sigmoid_derivative(z) * inv;
    if (quality_grad != nullptr) quality_grad[idx] += g;
    return g;
}

template <class T>
__global__ void forward(const T* __restrict__ seq, const T* __restrict__ quality,
                        const std::uint32_t* __restrict__ lengths, std::size_t n_bases, std::size_t length, T theta,
                        T softness, T* __restrict__ weights_out, T* __restrict__ seq_out) {
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n_bases;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        forward_base(idx, seq, quality, lengths, length, theta, softness, weights_out, seq_out);
    }
}

template <class T>
__global__ void backward(const T* __restrict__ seq, const T* __restrict__ quality,
                         const std::uint32_t* __restrict__ lengths, std::size_t n_bases, std::size_t length, T theta,
                         T softness, const T* __restrict__ seq_grad_out, const T* __restrict__ weights_grad_out,
                         T* __restrict__ seq_grad_in, T* __restrict__ quality_grad, double* __restrict__ theta_sum) {
    const T inv = T(1) / softness;
    double sum_g = 0.0;
    for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n_bases;
         idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        sum_g += static_cast<double>(backward_base(idx, seq, quality, lengths, length, theta, softness, inv,
                                                   seq_grad_out, weights_grad_out, seq_grad_in, quality_grad));
    }
    if (theta_sum != nullptr) {
        sum_g = block_sum(sum_g);
        if (threadIdx.x == 0) atomicAdd(theta_sum, sum_g);
    }
}

} // namespace quality_filter_kernels

/// Forward on device data. seq [N×L×4] (may be null when seq_out is null), quality [N×L], lengths [N]
/// (each ≤ L; not checked on the device). weights_out [N×L] and seq_out [N×L×4] may each be null.
/// Asynchronous on p.stream. Throws InvalidArgument for softness ≤ 0 or not finite, θ not finite.
template <class T>
void quality_filter_forward(const exec::Cuda& p, const T* seq, const T* quality, const std::uint32_t* lengths,
                            std::size_t n, std::size_t length, T theta, T softness, T* weights_out, T* seq_out) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "quality_filter (CUDA): T is float or double");
    check_finite(theta, "quality_filter_forward (CUDA)", "theta");
    check_temperature(softness, "quality_filter_forward (CUDA)", "softness");
    const std::size_t n_bases = n * length;
    if (n_bases == 0 || (weights_out == nullptr && seq_out == nullptr)) return;
    if (seq_out != nullptr && seq == nullptr) throw InvalidArgument("quality_filter_forward (CUDA): seq_out needs seq");
    quality_filter_kernels::forward<T><<<exec::cuda::grid_size(n_bases), exec::cuda::block_size, 0, p.stream>>>(
        seq, quality, lengths, n_bases, length, theta, softness, weights_out, seq_out);
    exec::cuda::check_launch("quality_filter_forward");
}

namespace quality_filter_detail {

/// The backward launch; returns Σ g (in double; 0 and no synchronisation when want_sum is false).
template <class T>
double backward(const exec::Cuda& p, const T* seq, const T* quality, const std::uint32_t* lengths, std::size_t n,
                std::size_t length, T theta, T softness, const T* seq_grad_out, const T* weights_grad_out,
                T* seq_grad_in, T* quality_grad, bool want_sum) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "quality_filter (CUDA): T is float or double");
    check_finite(theta, "quality_filter_backward (CUDA)", "theta");
    check_temperature(softness, "quality_filter_backward (CUDA)", "softness");
    const std::size_t n_bases = n * length;
    if (n_bases == 0) return 0.0;
    if (seq_grad_out != nullptr && seq == nullptr) {
        throw InvalidArgument("quality_filter_backward (CUDA): seq_grad_out needs seq");
    }
    if (!want_sum) {
        if (quality_grad == nullptr && (seq_grad_in == nullptr || seq_grad_out == nullptr)) return 0.0;
        quality_filter_kernels::backward<T><<<exec::cuda::grid_size(n_bases), exec::cuda::block_size, 0, p.stream>>>(
            seq, quality, lengths, n_bases, length, theta, softness, seq_grad_out, weights_grad_out, seq_grad_in,
            quality_grad, nullptr);
        exec::cuda::check_launch("quality_filter_backward");
        return 0.0;
    }
    double* sum = nullptr;
    exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&sum), sizeof(double), p.stream), "cudaMallocAsync");
    double host = 0.0;
    try {
        exec::cuda::check(cudaMemsetAsync(sum, 0, sizeof(double), p.stream), "cudaMemsetAsync");
        quality_filter_kernels::backward<T><<<exec::cuda::grid_size(n_bases), exec::cuda::block_size, 0, p.stream>>>(
            seq, quality, lengths, n_bases, length, theta, softness, seq_grad_out, weights_grad_out, seq_grad_in,
            quality_grad, sum);
        exec::cuda::check_launch("quality_filter_backward");
        exec::cuda::check(cudaMemcpyAsync(&host, sum, sizeof(double), cudaMemcpyDeviceToHost, p.stream), "cudaMemcpyAsync");
        exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
    } catch (...) {
        (void)cudaFreeAsync(sum, p.stream);
        throw;
    }
    exec::cuda::check(cudaFreeAsync(sum, p.stream), "cudaFreeAsync");
    return host;
}

using exec::cuda::download;
using exec::cuda::upload;
using exec::cuda::zeros;

} // namespace quality_filter_detail

/// Backward on device data. seq_grad_out = ∂L/∂seq' [N×L×4] and weights_grad_out = ∂L/∂w [N×L] may be
/// null (zero); seq is needed when seq_grad_out is given. seq_grad_in [N×L×4] and quality_grad [N×L]
/// (device, may be null) ACCUMULATE (+=). theta_grad is a HOST pointer (may be null) that accumulates
/// −Σ g (summed in double); when it is given the call synchronises p.stream, otherwise it stays
/// asynchronous.
template <class T>
void quality_filter_backward(const exec::Cuda& p, const T* seq, const T* quality, const std::uint32_t* lengths,
                             std::size_t n, std::size_t length, T theta, T softness, const T* seq_grad_out,
                             const T* weights_grad_out, T* seq_grad_in, T* quality_grad, T* theta_grad) {
    const double sum = quality_filter_detail::backward<T>(p, seq, quality, lengths, n, length, theta, softness,
                                                          seq_grad_out, weights_grad_out, seq_grad_in, quality_grad,
                                                          theta_grad != nullptr);
    if (theta_grad != nullptr) *theta_grad -= static_cast<T>(sum);
}

/// Gradients of the reads from quality_filter_backward (host convenience form).
template <class T>
struct QualityFilterReadGradients {
    std::vector<T> seq;     ///< [N × L × 4] ∂L/∂seq
    std::vector<T> quality; ///< [N × L] ∂L/∂quality
};

/// One-call forward on host data: QualityFilter::apply with the operator's current θ and softness,
/// computed on the GPU (stream-ordered copies on p.stream). Synchronous.
template <class T>
QualityFilterResult<T> quality_filter_forward(const exec::Cuda& p, const QualityFilter& op,
                                              const ReadsView<T, T>& reads) {
    namespace d = quality_filter_detail;
    reads.validate("quality_filter_forward (CUDA)");
    const auto seq = d::upload(p, reads.seq);
    const auto quality = d::upload(p, reads.quality);
    const auto lengths = d::upload(p, reads.lengths);
    exec::cuda::DeviceBuffer<T> weights(reads.n * reads.length), seq_out(reads.n * reads.length * 4);
    quality_filter_forward<T>(p, seq.data(), quality.data(), lengths.data(), reads.n, reads.length,
                              static_cast<T>(op.threshold().values()[0]), static_cast<T>(op.config().softness),
                              weights.data(), seq_out.data());
    QualityFilterResult<T> out;
    out.seq = d::download(p, seq_out);
    out.weights = d::download(p, weights);
    return out;
}

/// One-call backward on host data. seq_grad_out (∂L/∂seq', N×L×4) and weights_grad_out (∂L/∂w, N×L)
/// may be empty (zero). Adds ∂L/∂θ (summed in double) into op.threshold().grad() and returns ∂L/∂seq
/// and ∂L/∂quality. Synchronous.
template <class T>
QualityFilterReadGradients<T> quality_filter_backward(const exec::Cuda& p, QualityFilter& op,
                                                      const ReadsView<T, T>& reads, std::span<const T> seq_grad_out,
                                                      std::span<const T> weights_grad_out) {
    namespace d = quality_filter_detail;
    const char* where = "quality_filter_backward (CUDA)";
    reads.validate(where);
    if (!seq_grad_out.empty()) check_size(seq_grad_out.size(), reads.seq.size(), where, "seq_grad_out (N x L x 4)");
    if (!weights_grad_out.empty()) {
        check_size(weights_grad_out.size(), reads.quality.size(), where, "weights_grad_out (N x L)");
    }
    const auto seq = d::upload(p, reads.seq);
    const auto quality = d::upload(p, reads.quality);
    const auto lengths = d::upload(p, reads.lengths);
    const auto gseq = d::upload(p, seq_grad_out);
    const auto gw = d::upload(p, weights_grad_out);
    auto seq_grad = d::zeros<T>(p, reads.seq.size());
    auto quality_grad = d::zeros<T>(p, reads.quality.size());
    const double sum = d::backward<T>(p, seq.data(), quality.data(), lengths.data(), reads.n, reads.length,
                                      static_cast<T>(op.threshold().values()[0]), static_cast<T>(op.config().softness),
                                      seq_grad_out.empty() ? nullptr : gseq.data(),
                                      weights_grad_out.empty() ? nullptr : gw.data(), seq_grad.data(),
                                      quality_grad.data(), true);
    op.threshold().grad()[0] -= sum;
    QualityFilterReadGradients<T> out;
    out.seq = d::download(p, seq_grad);
    out.quality = d::download(p, quality_grad);
    return out;
}

} // namespace diffbio::ops::cuda
