#pragma once
// CUDA runtime errors become diffbio::BackendError exceptions naming the call that failed.
// nvcc only.

#include <string>

#include <cuda_runtime.h>

#include <diffbio/core/error.hpp>

namespace diffbio::exec::cuda {

inline void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        throw BackendError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                           cudaGetErrorString(status) + ")");
    }
}

/// Throws if the last kernel launch failed (bad configuration, missing device code, ...).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

/// True when at least one CUDA device is usable from this process.
inline bool device_available() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); // clear the sticky error of a machine without a driver/device
        return false;
    }
    return n > 0;
}

} // namespace diffbio::exec::cuda
