#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/soft/softplus.hpp>

#include "expect_ad.hpp"

using diffbio::test::expect_ad;
namespace soft = diffbio::soft;

TEST_CASE("tempered softplus: values, bounds and the relu limit", "[soft][softplus]") {
    CHECK(soft::softplus(0.0, 1.0) == Approx(std::log(2.0)).epsilon(1e-15));
    CHECK(soft::softplus(1.0, 0.5) == Approx(0.5 * std::log1p(std::exp(2.0))).epsilon(1e-15));
    for (double x : {-3.0, -0.1, 0.0, 0.2, 5.0}) {
        for (double tau : {1e-3, 0.1, 1.0}) {
            const double r = soft::softplus(x, tau);
            CHECK(r >= std::max(x, 0.0));
            CHECK(r <= std::max(x, 0.0) + tau * std::log(2.0) + 1e-15);
        }
        if (x != 0.0) CHECK(soft::softplus(x, 1e-6) == Approx(std::max(x, 0.0)).margin(1e-12));
    }
    CHECK(std::isfinite(soft::softplus(1e6, 1e-4)));
    CHECK(std::isfinite(soft::softplus(-1e6, 1e-4)));
    CHECK_THROWS_AS(soft::softplus(1.0, 0.0), diffbio::InvalidArgument);
}

TEST_CASE("tempered softplus passes expect_ad in x and tau", "[soft][softplus][ad]") {
    for (const std::vector<double>& p : {std::vector<double>{0.3, 1.0}, {-2.0, 0.5}, {4.0, 3.0}}) {
        expect_ad([](auto v) { return soft::softplus(v[0], v[1]); }, p);
    }
}
