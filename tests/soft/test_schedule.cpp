#include <catch2/catch.hpp>

#include <cmath>

#include <diffbio/soft/schedule.hpp>

namespace soft = diffbio::soft;

TEST_CASE("exponential schedule decays to its floor", "[soft][schedule]") {
    const soft::ExponentialSchedule s(1.0, 0.01, 0.5);
    CHECK(s(0) == 1.0);
    CHECK(s(1) == 0.5);
    CHECK(s(3) == 0.125);
    CHECK(s(100) == 0.01);
    CHECK_THROWS_AS(soft::ExponentialSchedule(0.0, 0.1, 0.5), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::ExponentialSchedule(1.0, 0.1, 1.5), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::ExponentialSchedule(1.0, -0.1, 0.5), diffbio::InvalidArgument);
    // decay is in (0, 1]: 0 would jump to the floor at step 1, 1 holds tau0 (annealing off).
    CHECK_THROWS_WITH(soft::ExponentialSchedule(1.0, 0.1, 0.0), Catch::Contains("'decay' must be in (0, 1]"));
    CHECK_THROWS_AS(soft::ExponentialSchedule(1.0, 0.1, std::nan("")), diffbio::InvalidArgument);
    const soft::ExponentialSchedule hold(0.7, 0.1, 1.0);
    CHECK(hold(0) == 0.7);
    CHECK(hold(1000) == 0.7);
}

TEST_CASE("linear schedule interpolates and then holds", "[soft][schedule]") {
    const soft::LinearSchedule s(2.0, 0.1, 10);
    CHECK(s(0) == 2.0);
    CHECK(s(5) == Approx(1.05));
    CHECK(s(10) == Approx(0.1));
    CHECK(s(1000) == Approx(0.1));
    CHECK_THROWS_AS(soft::LinearSchedule(1.0, 0.1, 0), diffbio::InvalidArgument);
    CHECK_THROWS_AS(soft::LinearSchedule(1.0, std::nan(""), 3), diffbio::InvalidArgument);
}
