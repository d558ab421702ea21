#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>

using Catch::Matchers::Contains;

TEST_CASE("check_temperature rejects tau <= 0, NaN and inf with a named message", "[core][validate]") {
    CHECK_NOTHROW(diffbio::check_temperature(1e-4, "f"));
    CHECK_THROWS_AS(diffbio::check_temperature(0.0, "f"), diffbio::InvalidArgument);
    CHECK_THROWS_WITH(diffbio::check_temperature(-1.0, "soft_threshold"),
                      Contains("soft_threshold") && Contains("'tau'") && Contains("-1"));
    CHECK_THROWS_WITH(diffbio::check_temperature(std::nan(""), "g", "temperature"),
                      Contains("'temperature'") && Contains("nan"));
    CHECK_THROWS_AS(diffbio::check_temperature(std::numeric_limits<double>::infinity(), "f"), diffbio::InvalidArgument);
    // subnormal: 1/τ would overflow
    CHECK_NOTHROW(diffbio::check_temperature(std::numeric_limits<double>::min(), "f"));
    CHECK_THROWS_WITH(diffbio::check_temperature(1e-320, "softmax"), Contains("smallest normal double") && Contains("got 1e-320"));
}

TEST_CASE("check_size and check_finite name the problem", "[core][validate]") {
    CHECK_NOTHROW(diffbio::check_size(3, 3, "op", "x"));
    CHECK_THROWS_AS(diffbio::check_size(2, 3, "op", "x"), diffbio::ShapeError);
    CHECK_THROWS_WITH(diffbio::check_size(2, 3, "op", "weights"), Contains("weights has size 2, expected 3"));
    CHECK_THROWS_WITH(diffbio::check_finite(std::nan(""), "op", "theta"), Contains("'theta'"));
    CHECK_THROWS_AS(diffbio::check_positive(0.0, "op", "lr"), diffbio::InvalidArgument);
}

TEMPLATE_TEST_CASE("first_nonfinite finds the first NaN or inf at every place of a block", "[core][validate]", float, double) {
    using T = TestType;
    constexpr T inf = std::numeric_limits<T>::infinity();
    // the largest finite value, the smallest subnormal, −0 and a huge negative are finite
    std::vector<T> v(9000, T(1));
    v[3] = std::numeric_limits<T>::max();
    v[4] = std::numeric_limits<T>::denorm_min();
    v[5] = T(-0.0);
    v[6] = std::numeric_limits<T>::lowest();
    CHECK(diffbio::first_nonfinite(std::span<const T>(v)) == v.size());
    CHECK(diffbio::first_nonfinite(std::span<const T>()) == 0);
    // every lane of the four unrolled registers (up to 4 × 16 floats) and one more round, the
    // edges of the blocks (4096) and the scalar tail
    std::vector<std::size_t> places(72);
    for (std::size_t k = 0; k < places.size(); ++k) places[k] = k;
    for (const std::size_t at : {4095, 4096, 4097, 4100, 4111, 4127, 8191, 8192, 8995, 8999}) places.push_back(at);
    for (const std::size_t at : places) {
        for (const T bad : {std::numeric_limits<T>::quiet_NaN(), inf, -inf}) {
            std::vector<T> w = v;
            w[at] = bad;
            CHECK(diffbio::first_nonfinite(std::span<const T>(w)) == at);
            if (at + 7 < w.size()) w[at + 7] = std::numeric_limits<T>::quiet_NaN(); // a later one is not reported
            CHECK(diffbio::first_nonfinite(std::span<const T>(w)) == at);
        }
    }
}

TEST_CASE("check_all_finite names the data, the entry and the value; integers are always finite", "[core][validate]") {
    std::vector<double> x{0.0, 1.5, -std::numeric_limits<double>::infinity(), std::nan("")};
    CHECK_THROWS_WITH(diffbio::check_all_finite(std::span<const double>(x), "op", "points"),
                      Contains("op: points entry 2 is not finite (-inf)"));
    CHECK_NOTHROW(diffbio::check_all_finite(std::span<const double>(x).first(2), "op", "points"));
    const std::vector<int> ints{1, 2, 3};
    CHECK(diffbio::first_nonfinite(std::span<const int>(ints)) == 3);
}
