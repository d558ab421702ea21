#pragma once
// A host emulation of one CUDA warp for the plain-main CUDA test programs: 32 lanes run a per-warp
// device program written against the warp interface of <diffbio/exec/cuda/warp.cuh> (lane, up,
// down, flip, from, sync). The lanes are user-level contexts (ucontext) on ONE OS thread, switched
// cooperatively: every exchange or sync is a barrier at which a lane writes its value into a shared
// slot and yields; the driver resumes the lanes in turn, so between two barriers every lane runs
// once, and a lane reads the slots only after all lanes have written them. Two slot sets, used
// alternately, let a lane write its next value while later lanes still read the previous one. The
// order is deterministic and needs no scheduler, so the emulation is as fast on a loaded machine as
// on an idle one (32 OS threads meeting at a std::barrier took minutes where another process kept
// a core busy).
//
// This runs the device code paths of the per-warp programs (shuffle patterns, lane ownership,
// chunking) on any machine, without a GPU; it does not emulate the kernels' block-level parts
// (shared-memory staging, atomics). A program whose lanes pass different numbers of barriers (a
// bug; it would hang or misbehave on a device) still finishes here, with the values it exchanged.

#include <ucontext.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>

#include <diffbio/config.hpp>

namespace host_warp {

struct HostWarp;

struct WarpShared {
    static constexpr std::size_t lanes = 32;
    static constexpr std::size_t stack_bytes = std::size_t{1} << 20; // per lane (virtual; touched pages only)

    ucontext_t driver{};
    ucontext_t lane[lanes]{};
    bool done[lanes] = {};
    unsigned char slot[2][lanes][8] = {};
    const std::function<void(const HostWarp&)>* body = nullptr;
    std::exception_ptr error{};
};

/// One emulated lane.
struct HostWarp {
    WarpShared* sh;
    unsigned l;
    mutable unsigned parity = 0;

    DIFFBIO_HD unsigned lane() const { return l; }
    /// A barrier: back to the driver, which resumes this lane after every other lane reached it.
    DIFFBIO_HD void yield() const {
#if !defined(__CUDA_ARCH__)
        if (swapcontext(&sh->lane[l], &sh->driver) != 0) throw std::runtime_error("host_warp: swapcontext failed");
#endif
    }
    template <class V>
    DIFFBIO_HD V exchange(V v, unsigned src) const {
#if !defined(__CUDA_ARCH__)
        static_assert(sizeof(V) <= 8);
        std::memcpy(sh->slot[parity][l], &v, sizeof(V));
        yield();
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
    DIFFBIO_HD void sync() const { yield(); }
};

namespace detail {
inline thread_local WarpShared* running = nullptr;

/// A lane's entry point (makecontext passes int arguments only: the lane index; the warp is the
/// thread's running one). Exceptions stay inside the lane's context and are rethrown by run_warp.
inline void lane_main(int l) {
    WarpShared* sh = running;
    try {
        const HostWarp w{sh, static_cast<unsigned>(l)};
        (*sh->body)(w);
    } catch (...) {
        if (!sh->error) sh->error = std::current_exception();
    }
    sh->done[l] = true; // returning resumes uc_link, the driver
}

/// Sets up lane l's context to start in lane_main on its own stack and to return to the driver.
/// (A function of its own: getcontext returns twice, and a loop counter live across it draws
/// -Wclobbered.)
inline void make_lane(WarpShared& sh, const std::size_t l, unsigned char* const stack) {
    ucontext_t& c = sh.lane[l];
    if (getcontext(&c) != 0) throw std::runtime_error("host_warp: getcontext failed");
    c.uc_stack.ss_sp = stack;
    c.uc_stack.ss_size = WarpShared::stack_bytes;
    c.uc_link = &sh.driver;
    makecontext(&c, reinterpret_cast<void (*)()>(&lane_main), 1, static_cast<int>(l));
}
} // namespace detail

/// Runs body(warp) on the 32 lanes of an emulated warp until every lane has returned; rethrows the
/// first exception a lane threw.
inline void run_warp(const std::function<void(const HostWarp&)>& body) {
    auto sh = std::make_unique<WarpShared>();
    sh->body = &body;
    const std::unique_ptr<unsigned char[]> stacks(new unsigned char[WarpShared::lanes * WarpShared::stack_bytes]);
    WarpShared* const outer = detail::running;
    detail::running = sh.get();
    for (std::size_t l = 0; l < WarpShared::lanes; ++l) detail::make_lane(*sh, l, stacks.get() + l * WarpShared::stack_bytes);
    for (bool all_done = false; !all_done;) {
        all_done = true;
        for (std::size_t l = 0; l < WarpShared::lanes; ++l) {
            if (sh->done[l]) continue;
            if (swapcontext(&sh->driver, &sh->lane[l]) != 0) throw std::runtime_error("host_warp: swapcontext failed");
            all_done = all_done && sh->done[l];
        }
    }
    detail::running = outer;
    if (sh->error) std::rethrow_exception(sh->error);
}

} // namespace host_warp
