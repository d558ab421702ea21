#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <diffbio/core/math.hpp>
#include <diffbio/core/simd.hpp>

#if DIFFBIO_HAVE_VECTOR_EXT
using namespace diffbio;

namespace {
/// Applies a lane function to every value (in blocks of simd::lanes) and returns the results.
template <class F>
std::vector<float> lanewise(const std::vector<float>& x, F f) {
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i + simd::lanes <= x.size(); i += simd::lanes) simd::store(out.data() + i, f(simd::load(x.data() + i)));
    return out;
}
} // namespace

TEST_CASE("simd::exp matches std::exp to 2.5e-7 relative over its whole range", "[core][simd]") {
    std::vector<float> x;
    for (int k = -873000; k <= 887000; k += 7) x.push_back(static_cast<float>(k) * 1e-4f);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int k = 0; k < 4096; ++k) x.push_back(u(rng));
    x.resize(x.size() / 8 * 8); // a multiple of the lane count (4 or 8)
    const auto y = lanewise(x, [](simd::vf v) { return simd::exp(v); });
    double worst = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double ref = std::exp(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(y[i] - ref) / ref);
    }
    INFO("worst relative error " << worst);
    CHECK(worst <= 2.5e-7);
}

TEST_CASE("simd::exp clamps instead of overflowing and keeps NaN", "[core][simd]") {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> x = {1e30f, -1e30f, inf, -inf, 88.7f, -87.3f, 0.0f, std::nanf("")};
    const auto y = lanewise(x, [](simd::vf v) { return simd::exp(v); });
    for (std::size_t i = 0; i < 7; ++i) CHECK(std::isfinite(y[i]));
    CHECK(y[0] == Approx(std::exp(static_cast<double>(88.7f))).epsilon(3e-7));
    CHECK(y[1] / std::exp(static_cast<double>(-87.3f)) == Approx(1.0).epsilon(3e-7));
    CHECK(y[6] == 1.0f);
    CHECK(std::isnan(y[7]));
}

TEST_CASE("simd::sigmoid matches the scalar sigmoid to 1.2e-7 absolute, in [0, 1]", "[core][simd]") {
    std::vector<float> x;
    for (int k = -200000; k < 200000; k += 3) x.push_back(static_cast<float>(k) * 1e-3f);
    for (float v : {1e4f, -1e4f, 1e30f, -1e30f, 1e-30f, -1e-30f, 0.0f, 17.0f}) x.push_back(v);
    x.resize(x.size() / 8 * 8); // a multiple of the lane count (4 or 8)
    const auto y = lanewise(x, [](simd::vf v) { return simd::sigmoid(v); });
    double worst = 0.0, worst_rel = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        REQUIRE(y[i] >= 0.0f);
        REQUIRE(y[i] <= 1.0f);
        const double ref = diffbio::sigmoid(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(y[i] - ref));
        if (x[i] >= -87.0f) worst_rel = std::max(worst_rel, std::fabs(y[i] - ref) / ref);
    }
    INFO("worst absolute error " << worst << ", worst relative error " << worst_rel);
    CHECK(worst <= 1.2e-7);
    CHECK(worst_rel <= 4e-7);
}
#endif
