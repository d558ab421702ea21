#pragma once
// CUDA backend of segment_sum (see <diffbio/soft/segment_sum.hpp> for the maths). All pointers
// are device pointers. The forward accumulates with atomicAdd (the order of additions, and so
// the last bits of float results, may vary between runs) and validates the ids on the device:
// an id >= segments raises ShapeError, which requires synchronising the stream. The backward is
// a gather without atomics and stays asynchronous. nvcc only.

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include <diffbio/core/error.hpp>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/launch.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/segment_sum.hpp>

namespace diffbio::soft::backend {

namespace cuda_kernels {

template <class T>
__global__ void segment_sum_forward(const T* __restrict__ values, std::size_t m, std::size_t channels,
                                    const T* __restrict__ weights, const std::int32_t* __restrict__ ids,
                                    std::size_t segments, T* __restrict__ out, int* __restrict__ bad) {
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < m;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const std::int32_t s = ids[i];
        if (s < 0) continue;
        if (static_cast<std::size_t>(s) >= segments) {
            atomicMax(bad, s);
            continue;
        }
        const T w = weights != nullptr ? weights[i] : T(1);
        const T* v = values + i * channels;
        T* o = out + static_cast<std::size_t>(s) * channels;
        for (std::size_t c = 0; c < channels; ++c) atomicAdd(&o[c], w * v[c]);
    }
}

template <class T>
__global__ void segment_sum_backward(const T* __restrict__ values, std::size_t m, std::size_t channels,
                                     const T* __restrict__ weights, const std::int32_t* __restrict__ ids,
                                     std::size_t segments, const T* __restrict__ out_grad, T* __restrict__ values_grad,
                                     T* __restrict__ weights_grad) {
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < m;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const std::int32_t s = ids[i];
        if (s < 0 || static_cast<std::size_t>(s) >= segments) continue;
        const T* g = out_grad + static_cast<std::size_t>(s) * channels;
        if (values_grad != nullptr) {
            const T w = weights != nullptr ? weights[i] : T(1);
            for (std::size_t c = 0; c < channels; ++c) values_grad[i * channels + c] += w * g[c];
        }
        if (weights_grad != nullptr) {
            const T* v = values + i * channels;
            T acc = 0;
            for (std::size_t c = 0; c < channels; ++c) acc += v[c] * g[c];
            weights_grad[i] += acc;
        }
    }
}

} // namespace cuda_kernels

template <>
struct SegmentSum<exec::Cuda> {
    template <class T>
    static void forward(const exec::Cuda& p, const T* values, std::size_t m, std::size_t channels, const T* weights,
                        const std::int32_t* ids, std::size_t segments, T* out) {
        if (segments * channels > 0) {
            exec::cuda::check(cudaMemsetAsync(out, 0, segments * channels * sizeof(T), p.stream), "cudaMemsetAsync");
        }
        if (m == 0) return;
        int* bad = nullptr;
        exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&bad), sizeof(int), p.stream), "cudaMallocAsync");
        int host_bad = -1;
        try {
            exec::cuda::check(cudaMemsetAsync(bad, 0xff, sizeof(int), p.stream), "cudaMemsetAsync"); // −1
            cuda_kernels::segment_sum_forward<T><<<exec::cuda::grid_size(m), exec::cuda::block_size, 0, p.stream>>>(
                values, m, channels, weights, ids, segments, out, bad);
            exec::cuda::check_launch("segment_sum_forward");
            exec::cuda::check(cudaMemcpyAsync(&host_bad, bad, sizeof(int), cudaMemcpyDeviceToHost, p.stream),
                              "cudaMemcpyAsync");
            exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
        } catch (...) {
            (void)cudaFreeAsync(bad, p.stream);
            throw;
        }
        exec::cuda::check(cudaFreeAsync(bad, p.stream), "cudaFreeAsync");
        if (host_bad >= 0) {
            throw ShapeError("segment_sum (exec::Cuda): id " + std::to_string(host_bad) +
                             " is not below the number of segments (" + std::to_string(segments) + ")");
        }
    }

    template <class T>
    static void backward(const exec::Cuda& p, const T* values, std::size_t m, std::size_t channels, const T* weights,
                         const std::int32_t* ids, std::size_t segments, const T* out_grad, T* values_grad,
                         T* weights_grad) {
        if (m == 0) return;
        cuda_kernels::segment_sum_backward<T><<<exec::cuda::grid_size(m), exec::cuda::block_size, 0, p.stream>>>(
            values, m, channels, weights, ids, segments, out_grad, values_grad, weights_grad);
        exec::cuda::check_launch("segment_sum_backward");
    }
};

} // namespace diffbio::soft::backend
