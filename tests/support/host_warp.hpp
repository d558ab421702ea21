#pragma once
// A host emulation of one CUDA warp for the plain-main CUDA test programs: 32 std::threads play the
// 32 lanes and run a per-warp device program written against the warp interface of
// <diffbio/exec/cuda/warp.cuh> (lane, up, down, flip, from, sync). Every exchange goes through a
// shared slot per lane and one barrier (two slot sets, used alternately, so that a lane can write its
// next value while a slow lane still reads the previous one). This runs the device code paths of the
// per-warp programs (shuffle patterns, lane ownership, chunking) on any machine, without a GPU; it does
// not emulate the kernels' block-level parts (shared-memory staging, atomics).

#include <barrier>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <diffbio/config.hpp>

namespace host_warp {

struct WarpShared {
    std::barrier<> bar{32};
    unsigned char slot[2][32][8] = {};
};

/// One emulated lane.
struct HostWarp {
    WarpShared* sh;
    unsigned l;
    mutable unsigned parity = 0;

    DIFFBIO_HD unsigned lane() const { return l; }
    template <class V>
    DIFFBIO_HD V exchange(V v, unsigned src) const {
#if !defined(__CUDA_ARCH__)
        static_assert(sizeof(V) <= 8);
        std::memcpy(sh->slot[parity][l], &v, sizeof(V));
        sh->bar.arrive_and_wait();
        V r;
        std::memcpy(&r, sh->slot[parity][src], sizeof(V));
        parity ^= 1U;
        return r;
#else
        (void)src;
        return v;
#endif
    }
    template <class V>
    DIFFBIO_HD V up(V v, unsigned delta = 1) const {
        return exchange(v, l < delta ? l : l - delta);
    }
    template <class V>
    DIFFBIO_HD V down(V v, unsigned delta = 1) const {
        return exchange(v, l + delta > 31 ? l : l + delta);
    }
    template <class V>
    DIFFBIO_HD V flip(V v, unsigned mask) const {
        return exchange(v, l ^ mask);
    }
    template <class V>
    DIFFBIO_HD V from(V v, unsigned src) const {
        return exchange(v, src);
    }
    DIFFBIO_HD void sync() const {
#if !defined(__CUDA_ARCH__)
        sh->bar.arrive_and_wait();
#endif
    }
};

/// Runs body(warp) on 32 threads, one per lane, and joins them.
inline void run_warp(const std::function<void(const HostWarp&)>& body) {
    WarpShared sh;
    std::vector<std::thread> lanes;
    lanes.reserve(32);
    for (unsigned l = 0; l < 32; ++l) {
        lanes.emplace_back([&sh, &body, l] {
            const HostWarp w{&sh, l};
            body(w);
        });
    }
    for (auto& t : lanes) t.join();
}

} // namespace host_warp
