#pragma once
// The warp operations that the warp-per-item kernels (Smith-Waterman: one pair per warp; adapter
// removal: one read per warp) are written against, so that the same per-warp programs run on the
// device with DeviceWarp and in tests on a host emulation of a warp (tests/support/host_warp.hpp:
// 32 cooperative contexts, exchanges at a barrier). nvcc only.
//
// Semantics are those of the full-mask __shfl_*_sync intrinsics: every one of the 32 lanes calls each
// operation, in the same order.
//   lane()          this lane's index, 0..31
//   up(v, d)        lane l gets lane l − d's v (lanes l < d keep their own), d = 1 by default
//   down(v, d)      lane l gets lane l + d's v (lanes l + d > 31 keep their own)
//   flip(v, m)      lane l gets lane (l ^ m)'s v
//   from(v, src)    every lane gets lane src's v (a broadcast)
//   sync()          __syncwarp: the lanes' earlier memory writes are visible to each other after it

#include <diffbio/config.hpp>

namespace diffbio::exec::cuda {

struct DeviceWarp {
    static constexpr unsigned full_mask = 0xffffffffu;

    DIFFBIO_HD unsigned lane() const {
#if defined(__CUDA_ARCH__)
        return threadIdx.x & 31u;
#else
        return 0;
#endif
    }
    template <class V>
    DIFFBIO_HD V up(V v, unsigned delta = 1) const {
#if defined(__CUDA_ARCH__)
        return __shfl_up_sync(full_mask, v, delta);
#else
        (void)delta;
        return v;
#endif
    }
    template <class V>
    DIFFBIO_HD V down(V v, unsigned delta = 1) const {
#if defined(__CUDA_ARCH__)
        return __shfl_down_sync(full_mask, v, delta);
#else
        (void)delta;
        return v;
#endif
    }
    template <class V>
    DIFFBIO_HD V flip(V v, unsigned mask) const {
#if defined(__CUDA_ARCH__)
        return __shfl_xor_sync(full_mask, v, static_cast<int>(mask));
#else
        (void)mask;
        return v;
#endif
    }
    template <class V>
    DIFFBIO_HD V from(V v, unsigned src) const {
#if defined(__CUDA_ARCH__)
        return __shfl_sync(full_mask, v, static_cast<int>(src));
#else
        (void)src;
        return v;
#endif
    }
    DIFFBIO_HD void sync() const {
#if defined(__CUDA_ARCH__)
        __syncwarp();
#endif
    }
};

/// Σ_{j ≤ lane} x_j (Hillis–Steele, 5 steps).
template <class T, class W>
DIFFBIO_HD T warp_inclusive_scan(const W& w, T x) {
    const unsigned lane = w.lane();
    for (unsigned off = 1; off < 32; off <<= 1) {
        const T y = w.up(x, off);
        if (lane >= off) x += y;
    }
    return x;
}

/// Σ_{j ≥ lane} x_j.
template <class T, class W>
DIFFBIO_HD T warp_suffix_scan(const W& w, T x) {
    const unsigned lane = w.lane();
    for (unsigned off = 1; off < 32; off <<= 1) {
        const T y = w.down(x, off);
        if (lane + off < 32) x += y;
    }
    return x;
}

/// Σ_j x_j on every lane (butterfly).
template <class T, class W>
DIFFBIO_HD T warp_sum(const W& w, T x) {
    for (unsigned off = 16; off > 0; off >>= 1) x += w.flip(x, off);
    return x;
}

} // namespace diffbio::exec::cuda
