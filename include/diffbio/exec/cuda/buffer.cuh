#pragma once
// DeviceBuffer<T>: an owning, move-only array in device memory (cudaMalloc), with explicit
// host <-> device copies. nvcc only.

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/policy.hpp>

namespace diffbio::exec::cuda {

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t n) : size_(n) {
        if (n > 0) check(cudaMalloc(reinterpret_cast<void**>(&data_), n * sizeof(T)), "cudaMalloc");
    }
    /// Allocate and copy from host memory.
    explicit DeviceBuffer(std::span<const T> host) : DeviceBuffer(host.size()) { copy_from(host); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ~DeviceBuffer() { release(); }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    std::span<T> span() noexcept { return {data_, size_}; }
    std::span<const T> span() const noexcept { return {data_, size_}; }

    void copy_from(std::span<const T> host) {
        if (host.size() != size_) throw ShapeError("DeviceBuffer::copy_from: size differs from the buffer's");
        if (size_ > 0) check(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    }
    std::vector<T> to_host() const {
        std::vector<T> out(size_);
        if (size_ > 0) check(cudaMemcpy(out.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
        return out;
    }
    void fill_zero() {
        if (size_ > 0) check(cudaMemset(data_, 0, size_ * sizeof(T)), "cudaMemset");
    }

private:
    void release() noexcept {
        if (data_ != nullptr) (void)cudaFree(data_);
        data_ = nullptr;
        size_ = 0;
    }
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Stream-ordered copies on a policy's stream (pageable host memory): upload a host span into a
/// new buffer, a new zero-filled buffer, download a buffer (synchronises the stream).
template <class T>
DeviceBuffer<T> upload(const exec::Cuda& p, std::span<const T> host) {
    DeviceBuffer<T> d(host.size());
    if (!host.empty()) {
        check(cudaMemcpyAsync(d.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, p.stream),
                          "cudaMemcpyAsync H2D");
    }
    return d;
}
template <class T>
DeviceBuffer<T> zeros(const exec::Cuda& p, std::size_t n) {
    DeviceBuffer<T> d(n);
    if (n > 0) check(cudaMemsetAsync(d.data(), 0, n * sizeof(T), p.stream), "cudaMemsetAsync");
    return d;
}
/// Synchronises p.stream.
template <class T>
std::vector<T> download(const exec::Cuda& p, const DeviceBuffer<T>& d) {
    std::vector<T> out(d.size());
    if (!out.empty()) {
        check(cudaMemcpyAsync(out.data(), d.data(), out.size() * sizeof(T), cudaMemcpyDeviceToHost, p.stream),
                          "cudaMemcpyAsync D2H");
    }
    check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
    return out;
}

} // namespace diffbio::exec::cuda
