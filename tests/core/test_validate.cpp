#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

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
}

TEST_CASE("check_size and check_finite name the problem", "[core][validate]") {
    CHECK_NOTHROW(diffbio::check_size(3, 3, "op", "x"));
    CHECK_THROWS_AS(diffbio::check_size(2, 3, "op", "x"), diffbio::ShapeError);
    CHECK_THROWS_WITH(diffbio::check_size(2, 3, "op", "weights"), Contains("weights has size 2, expected 3"));
    CHECK_THROWS_WITH(diffbio::check_finite(std::nan(""), "op", "theta"), Contains("'theta'"));
    CHECK_THROWS_AS(diffbio::check_positive(0.0, "op", "lr"), diffbio::InvalidArgument);
}
