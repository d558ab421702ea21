// Must NOT compile: exec::Cuda without its backend header. The static_assert message must name
// the header to include; a ctest checks the compiler output for it.
#include <span>
#include <vector>

#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/threshold.hpp>

int main() {
    std::vector<float> x(4), out(4);
    diffbio::soft::soft_threshold(diffbio::exec::Cuda{}, std::span<const float>(x), 0.0f, 1.0f, std::span<float>(out));
}
