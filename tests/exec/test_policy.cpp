#include <catch2/catch.hpp>

#include <type_traits>

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
