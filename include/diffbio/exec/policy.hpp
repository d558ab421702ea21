#pragma once
// Device policies: small trivially-copyable tags that pick the kernel of an operation.
//
//   exec::Cpu                  one thread, the reference backend
//   exec::CpuParallel{n}       n OpenMP threads (n = 0: OpenMP's default); serial without OpenMP
//   exec::Cuda{stream}         a CUDA stream (nullptr = the default stream); spans passed with this
//                              policy hold device memory. Its backends live in .cuh headers and
//                              need nvcc; using one without including its header fails to compile
//                              with a static_assert naming the header.
//
// Each operation has a backend template specialised per policy (Backend<exec::Cpu>, ...).

#include <type_traits>

#include <diffbio/config.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

struct CUstream_st; // the CUDA runtime's stream type (cudaStream_t is CUstream_st*)

namespace diffbio::exec {

struct Cpu {};

struct CpuParallel {
    int threads = 0;
};

struct Cuda {
    CUstream_st* stream = nullptr;
};

template <class P>
inline constexpr bool is_policy_v =
    std::is_same_v<P, Cpu> || std::is_same_v<P, CpuParallel> || std::is_same_v<P, Cuda>;

template <class P>
concept Policy = is_policy_v<std::remove_cvref_t<P>>;

template <class P>
concept HostPolicy = std::is_same_v<std::remove_cvref_t<P>, Cpu> || std::is_same_v<std::remove_cvref_t<P>, CpuParallel>;

/// Threads a CpuParallel region will use (1 without OpenMP).
inline int thread_count(const CpuParallel& p) {
#if defined(_OPENMP)
    return p.threads > 0 ? p.threads : omp_get_max_threads();
#else
    (void)p;
    return 1;
#endif
}
inline int thread_count(const Cpu&) { return 1; }

/// For static_assert in a backend's primary template: false, but only once instantiated.
template <class...>
inline constexpr bool dependent_false = false;

} // namespace diffbio::exec
