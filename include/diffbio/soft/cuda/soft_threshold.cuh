#pragma once
// CUDA backend of the array soft threshold (see <diffbio/soft/threshold.hpp> for the maths).
// x, gy and x_grad are device pointers; t_grad and tau_grad are host pointers. forward is
// asynchronous on the policy's stream; backward synchronises the stream to return the two sums.
// Reductions accumulate in double (one atomicAdd per block). nvcc only.

#include <cstddef>

#include <cuda_runtime.h>

#include <diffbio/core/math.hpp>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/launch.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/threshold.hpp>

namespace diffbio::soft::backend {

namespace cuda_kernels {

template <class T>
__global__ void soft_threshold_forward(const T* __restrict__ x, std::size_t n, T t, T tau, T* __restrict__ out) {
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        out[i] = diffbio::sigmoid((x[i] - t) / tau);
    }
}

/// Block-wide sum of two doubles; thread 0 gets the totals. blockDim.x must be block_size.
__device__ inline void block_sum2(double& a, double& b) {
    __shared__ double sa[exec::cuda::block_size];
    __shared__ double sb[exec::cuda::block_size];
    sa[threadIdx.x] = a;
    sb[threadIdx.x] = b;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            sa[threadIdx.x] += sa[threadIdx.x + stride];
            sb[threadIdx.x] += sb[threadIdx.x + stride];
        }
        __syncthreads();
    }
    a = sa[0];
    b = sb[0];
}

template <class T>
__global__ void soft_threshold_backward(const T* __restrict__ x, const T* __restrict__ gy,
                                        std::size_t n, T t, T tau, T* __restrict__ x_grad, double* __restrict__ sums) {
    const T inv = T(1) / tau;
    double sum_g = 0, sum_gz = 0;
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        const T g = gy[i] * diffbio::sigmoid_derivative((x[i] - t) / tau) * inv;
        if (x_grad != nullptr) x_grad[i] += g;
        sum_g += g;
        sum_gz += static_cast<double>(g) * static_cast<double>(x[i] - t);
    }
    block_sum2(sum_g, sum_gz);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[0], sum_g);
        atomicAdd(&sums[1], sum_gz);
    }
}

} // namespace cuda_kernels

template <>
struct SoftThreshold<exec::Cuda> {
    template <class T>
    static void forward(const exec::Cuda& p, const T* x, std::size_t n, T t, T tau, T* out) {
        if (n == 0) return;
        cuda_kernels::soft_threshold_forward<T>
            <<<exec::cuda::grid_size(n), exec::cuda::block_size, 0, p.stream>>>(x, n, t, tau, out);
        exec::cuda::check_launch("soft_threshold_forward");
    }

    template <class T>
    static void backward(const exec::Cuda& p, const T* x, const T* gy, std::size_t n, T t, T tau,
                         T* x_grad, T* t_grad, T* tau_grad) {
        if (n == 0) return;
        double* sums = nullptr;
        exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&sums), 2 * sizeof(double), p.stream), "cudaMallocAsync");
        double host[2] = {0, 0};
        try {
            exec::cuda::check(cudaMemsetAsync(sums, 0, 2 * sizeof(double), p.stream), "cudaMemsetAsync");
            cuda_kernels::soft_threshold_backward<T>
                <<<exec::cuda::grid_size(n), exec::cuda::block_size, 0, p.stream>>>(x, gy, n, t, tau, x_grad, sums);
            exec::cuda::check_launch("soft_threshold_backward");
            exec::cuda::check(cudaMemcpyAsync(host, sums, sizeof(host), cudaMemcpyDeviceToHost, p.stream), "cudaMemcpyAsync");
            exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
        } catch (...) {
            (void)cudaFreeAsync(sums, p.stream);
            throw;
        }
        exec::cuda::check(cudaFreeAsync(sums, p.stream), "cudaFreeAsync");
        if (t_grad != nullptr) *t_grad -= static_cast<T>(host[0]);
        if (tau_grad != nullptr) *tau_grad -= static_cast<T>(host[1] / static_cast<double>(tau));
    }
};

} // namespace diffbio::soft::backend
