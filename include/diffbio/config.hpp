#pragma once
// The only macro header of diffbio.
//
//   DIFFBIO_HD          marks a function callable from host and device code (empty without nvcc)
//   DIFFBIO_HAS_CUDA    1 when compiled by nvcc (the CUDA backends are available), else 0
//   DIFFBIO_ASSERT(c)   internal invariant check; active unless NDEBUG (never used for user input,
//                       which is validated with exceptions)
//   DIFFBIO_OMP(args)   `#pragma omp args` when compiled with OpenMP, nothing otherwise
//   DIFFBIO_FORCE_INLINE  `inline` that GCC and Clang must honour (always_inline): the per-cell
//                       helpers of the SIMD kernels (soft max, exp, log), which GCC's growth limits
//                       would otherwise leave out of line in large loops
//   DIFFBIO_VERSION_*   library version

#include <cassert>

#define DIFFBIO_VERSION_MAJOR 0
#define DIFFBIO_VERSION_MINOR 1
#define DIFFBIO_VERSION_PATCH 0

#if defined(__CUDACC__)
#define DIFFBIO_HAS_CUDA 1
#define DIFFBIO_HD __host__ __device__
#else
#define DIFFBIO_HAS_CUDA 0
#define DIFFBIO_HD
#endif

#define DIFFBIO_ASSERT(cond) assert(cond)

#define DIFFBIO_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP)
#define DIFFBIO_OMP(args) DIFFBIO_PRAGMA(omp args)
#else
#define DIFFBIO_OMP(args)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DIFFBIO_FORCE_INLINE inline __attribute__((always_inline))
#else
#define DIFFBIO_FORCE_INLINE inline
#endif
/// The same for a lambda, written after its parameter list: [&](int x) DIFFBIO_INLINE_LAMBDA { … }.
/// GCC may otherwise keep a hot per-cell lambda out of line, its packs passed through memory.
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define DIFFBIO_INLINE_LAMBDA __attribute__((always_inline))
#else
#define DIFFBIO_INLINE_LAMBDA
#endif
/// One compiled copy of a function that several execution policies call (never inlined or cloned
/// into a caller): with -march=native GCC contracts a·b + c into an FMA differently in different
/// inlined copies, and Cpu and CpuParallel would then differ in the last bit.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define DIFFBIO_ONE_COPY __attribute__((noipa))
#elif defined(__GNUC__) || defined(__clang__)
#define DIFFBIO_ONE_COPY __attribute__((noinline))
#else
#define DIFFBIO_ONE_COPY
#endif
