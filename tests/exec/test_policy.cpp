#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/exec/policy.hpp>

namespace exec = diffbio::exec;

static_assert(std::is_trivially_copyable_v<exec::Cpu>);
static_assert(std::is_trivially_copyable_v<exec::CpuParallel>);
static_assert(std::is_trivially_copyable_v<exec::Cuda>);
static_assert(exec::Policy<exec::Cuda>);
static_assert(exec::HostPolicy<exec::CpuParallel>);
static_assert(!exec::HostPolicy<exec::Cuda>);
static_assert(!exec::Policy<int>);

TEST_CASE("thread counts of the host policies", "[exec][policy]") {
    CHECK(exec::thread_count(exec::Cpu{}) == 1);
    CHECK(exec::thread_count(exec::CpuParallel{3}) >= 1);
#if defined(_OPENMP)
    CHECK(exec::thread_count(exec::CpuParallel{3}) == 3);
    CHECK(exec::thread_count(exec::CpuParallel{}) >= 1);
#endif
    CHECK(exec::Cuda{}.stream == nullptr);
}

TEST_CASE("for_each_range covers [0, n) once in contiguous ranges", "[exec][policy]") {
    // Each call records its range (under a lock: the calls may run at once); the checks run after
    // the region, as Catch2's assertions are not thread-safe. Every index must be covered once,
    // and the number of calls tells whether the work was split.
    const auto run = [](const auto& policy, std::size_t n) {
        std::mutex lock;
        std::vector<std::pair<std::size_t, std::size_t>> ranges;
        exec::for_each_range(policy, n, [&](std::size_t lo, std::size_t hi) {
            const std::lock_guard<std::mutex> guard(lock);
            ranges.emplace_back(lo, hi);
        });
        std::vector<int> hits(n, 0);
        for (const auto& [lo, hi] : ranges) {
            CHECK(lo < hi);
            CHECK(hi <= n);
            for (std::size_t i = lo; i < std::min(hi, n); ++i) ++hits[i];
        }
        for (std::size_t i = 0; i < n; ++i) CHECK(hits[i] == 1);
        return ranges.size();
    };
    CHECK(run(exec::Cpu{}, 1000) == 1U);
    CHECK(run(exec::CpuParallel{1}, 1000) == 1U);
    CHECK(run(exec::CpuParallel{3}, 1) == 1U);
#if defined(_OPENMP)
    CHECK(run(exec::CpuParallel{3}, 1000) == 3U);
    CHECK(run(exec::CpuParallel{4}, 3) == 3U); // a thread with an empty share is not called
#endif
    // n = 0: a single call, on the empty range [0, 0)
    std::size_t seen_lo = 1, seen_hi = 1;
    exec::for_each_range(exec::CpuParallel{2}, 0, [&](std::size_t lo, std::size_t hi) { seen_lo = lo, seen_hi = hi; });
    CHECK(seen_lo == 0);
    CHECK(seen_hi == 0);
}
