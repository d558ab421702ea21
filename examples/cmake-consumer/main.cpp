// A minimal downstream project: finds diffbio (find_package or add_subdirectory), includes the
// umbrella header and differentiates a soft threshold in both AD modes.
#include <cmath>
#include <cstdio>
#include <vector>

#include <diffbio/diffbio.hpp>

int main() {
    namespace ad = diffbio::ad;
    auto f = [](auto x) { return diffbio::soft::soft_threshold(x[0], x[1], x[2]); };
    const std::vector<double> point{25.0, 20.0, 5.0};
    const auto reverse = ad::value_and_grad(f, point);
    const auto forward = ad::value_and_grad(f, point, ad::Forward{});
    // σ(1) and ∂/∂x = σ(1)σ(−1)/5
    const double s = 1.0 / (1.0 + std::exp(-1.0));
    const bool ok = std::fabs(reverse.value - s) < 1e-15 && std::fabs(reverse.grad[0] - s * (1 - s) / 5) < 1e-15 &&
                    std::fabs(forward.grad[2] - reverse.grad[2]) < 1e-15;
    std::printf("diffbio %d.%d.%d: value %.6f, d/dx %.6f, d/dt %.6f, d/dtau %.6f: %s\n", DIFFBIO_VERSION_MAJOR,
                DIFFBIO_VERSION_MINOR, DIFFBIO_VERSION_PATCH, reverse.value, reverse.grad[0], reverse.grad[1],
                reverse.grad[2], ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
