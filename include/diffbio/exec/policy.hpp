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
// Host helpers: thread_count(policy); this_thread_range(n) and this_thread_index() inside an
// OpenMP region; for_each_range(policy, n, body), a body over contiguous per-thread ranges.

#include <cstddef>
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

/// Inside an OpenMP parallel region: the calling thread's share [lo, hi) of n items, in
/// contiguous static blocks (outside a region, or without OpenMP: [0, n)).
struct Range {
    std::size_t lo;
    std::size_t hi;
};
inline Range this_thread_range(std::size_t n) {
#if defined(_OPENMP)
    const auto tid = static_cast<std::size_t>(omp_get_thread_num());
    const auto nt = static_cast<std::size_t>(omp_get_num_threads());
    return {n * tid / nt, n * (tid + 1) / nt};
#else
    return {0, n};
#endif
}

/// Inside an OpenMP parallel region: the calling thread's number (0 outside, or without OpenMP).
inline std::size_t this_thread_index() {
#if defined(_OPENMP)
    return static_cast<std::size_t>(omp_get_thread_num());
#else
    return 0;
#endif
}

/// Runs body(lo, hi) over [0, n) in contiguous ranges: with CpuParallel (more than one thread and
/// one item), once per thread of an OpenMP region on its share (this_thread_range; empty shares
/// skipped); otherwise once, on [0, n). body must be safe to run at once on disjoint ranges and
/// must not throw (an exception cannot leave an OpenMP region).
template <class P, class Body>
    requires HostPolicy<P>
void for_each_range(const P& policy, std::size_t n, Body&& body) {
    if constexpr (std::is_same_v<std::remove_cvref_t<P>, CpuParallel>) {
        const int threads = thread_count(policy);
        if (threads > 1 && n > 1) {
            DIFFBIO_OMP(parallel num_threads(threads))
            {
                const Range r = this_thread_range(n);
                if (r.hi > r.lo) body(r.lo, r.hi);
            }
            return;
        }
    }
    (void)policy;
    body(std::size_t{0}, n);
}

/// For static_assert in a backend's primary template: false, but only once instantiated.
template <class...>
inline constexpr bool dependent_false = false;

} // namespace diffbio::exec
