#pragma once
// huge_page_hint(p, bytes): on Linux, marks the whole pages inside a large (>= 64 MiB), not yet
// touched allocation for transparent huge pages (madvise MADV_HUGEPAGE). Only a hint: it changes
// nothing else and does nothing where THP is off or on other systems. A gigabyte array then takes
// 512 times fewer page faults when it is first written, which on a virtual machine cost several
// times the computation that fills it (the tape's arrays, the single-cell operators' n × K outputs).

#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__linux__) && __has_include(<sys/mman.h>) && __has_include(<unistd.h>)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace diffbio::detail {

inline constexpr std::size_t huge_page_hint_min_bytes = std::size_t{64} << 20;

inline void huge_page_hint([[maybe_unused]] const void* p, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p == nullptr || bytes < huge_page_hint_min_bytes) return;
    const long page_size = ::sysconf(_SC_PAGESIZE);
    if (page_size <= 0) return;
    const auto page = static_cast<std::uintptr_t>(page_size);
    const auto begin = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t lo = (begin + page - 1) / page * page, hi = (begin + bytes) / page * page;
    if (hi > lo) (void)::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
}

/// v.reserve(n), the new storage hinted as above when the capacity grows (call it before the
/// resize that first touches the elements).
template <class T>
void reserve_hinted(std::vector<T>& v, std::size_t n) {
    if (n <= v.capacity()) return;
    v.reserve(n);
    huge_page_hint(v.data(), n * sizeof(T));
}

} // namespace diffbio::detail
