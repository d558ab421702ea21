// Every smooth primitive, in every mode, at the extremes the library promises: τ ∈ [1e-4, 1e4],
// |x| ≤ 1e6 in double (1e4 in float): values and gradients are finite.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <diffbio/ad/drivers.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/segment_sum.hpp>
#include <diffbio/soft/smooth_max.hpp>
#include <diffbio/soft/softmax.hpp>
#include <diffbio/soft/softplus.hpp>
#include <diffbio/soft/threshold.hpp>

namespace ad = diffbio::ad;
namespace soft = diffbio::soft;
namespace exec = diffbio::exec;

namespace {

// All primitives as one vector function of (x0, x1, x2, tau).
template <class T>
std::vector<T> all_primitives(std::span<const T> v) {
    const auto x = v.first(3);
    const T& tau = v[3];
    std::vector<T> out;
    out.push_back(soft::soft_threshold(x[0], x[1], tau));
    out.push_back(soft::soft_greater(x[0], x[2], tau));
    out.push_back(soft::soft_less(x[1], x[2], tau));
    out.push_back(soft::softplus(x[0], tau));
    out.push_back(soft::smooth_max(x, tau));
    out.push_back(soft::smooth_min(x, tau));
    out.push_back(soft::smooth_max(x[0], x[1], tau));
    out.push_back(soft::smooth_min(x[1], x[2], tau));
    for (const T& p : soft::softmax(x, tau)) out.push_back(p);
    out.push_back(soft::soft_argmax(x, tau).index);
    out.push_back(soft::sum_sigmoid_threshold(x, x[1], tau));
    for (const T& p : soft::soft_threshold(exec::Cpu{}, x, x[2], tau)) out.push_back(p);
    const std::vector<std::int32_t> ids{1, 0, 1};
    for (const T& p : soft::segment_sum(exec::Cpu{}, x, 1, x, std::span<const std::int32_t>(ids), 2)) out.push_back(p);
    return out;
}

} // namespace

TEST_CASE("no NaN or Inf in values and gradients at extreme inputs and temperatures (double)",
          "[soft][numerics]") {
    const std::vector<std::vector<double>> xs{{1e6, -1e6, 0.0}, {1e6, 1e6, 1e6}, {-1e6, -1e6 + 1e-3, 5.0},
                                              {0.0, 1e-9, -1e-9}, {123.0, -45.0, 1e6}};
    for (double tau : {1e-4, 1e-2, 1.0, 1e2, 1e4}) {
        for (const auto& x : xs) {
            const std::vector<double> p{x[0], x[1], x[2], tau};
            const auto jr = ad::jacobian([](auto v) { return all_primitives(v); }, p);
            const auto jf = ad::jacobian([](auto v) { return all_primitives(v); }, p, ad::Forward{});
            const auto y = all_primitives(std::span<const double>(p));
            INFO("tau " << tau << " x " << x[0] << " " << x[1] << " " << x[2]);
            for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(std::isfinite(y[i]));
            for (std::size_t i = 0; i < jr.data.size(); ++i) {
                INFO("entry " << i);
                REQUIRE(std::isfinite(jr.data[i]));
                REQUIRE(std::isfinite(jf.data[i]));
            }
        }
    }
}

TEST_CASE("no NaN or Inf at extreme inputs and temperatures (float, Dual<float>)", "[soft][numerics]") {
    using DF = ad::Dual<float>;
    for (float tau : {1e-4f, 1.0f, 1e4f}) {
        for (const std::vector<float>& x : {std::vector<float>{1e4f, -1e4f, 0.0f}, {1e4f, 1e4f, 1e4f}, {-1e4f, 3.0f, 1e-3f}}) {
            for (std::size_t j = 0; j < 4; ++j) {
                std::vector<DF> v{DF(x[0], 0.f), DF(x[1], 0.f), DF(x[2], 0.f), DF(tau, 0.f)};
                v[j].tangent = 1.0f;
                const auto y = all_primitives(std::span<const DF>(v));
                for (const DF& d : y) {
                    INFO("tau " << tau << " seed " << j);
                    REQUIRE(std::isfinite(d.value));
                    REQUIRE(std::isfinite(d.tangent));
                }
            }
        }
    }
}
