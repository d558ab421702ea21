#include <catch2/catch.hpp>

#include <cstdint>

#include <diffbio/ad/pod_buffer.hpp>

using diffbio::ad::detail::PodBuffer;

TEST_CASE("PodBuffer grows, keeps its contents and never shrinks its memory", "[ad][pod-buffer]") {
    PodBuffer<std::uint32_t> b;
    CHECK(b.empty());
    for (std::uint32_t i = 0; i < 5000; ++i) b.push_back(i * 3);
    REQUIRE(b.size() == 5000);
    for (std::uint32_t i = 0; i < 5000; ++i) REQUIRE(b[i] == i * 3);
    const std::size_t cap = b.capacity();
    CHECK(cap >= 5000);
    b.truncate(10);
    CHECK(b.size() == 10);
    CHECK(b.capacity() == cap);
    CHECK(b.back() == 27);
    b.truncate(20); // truncating upwards is a no-op
    CHECK(b.size() == 10);
}

TEST_CASE("PodBuffer resize, assign and unchecked push", "[ad][pod-buffer]") {
    PodBuffer<double> b;
    b.resize(4, 1.5);
    b.resize(6, -2.0);
    CHECK(b[3] == 1.5);
    CHECK(b[5] == -2.0);
    b.assign(3, 0.0);
    CHECK(b.size() == 3);
    CHECK(b[0] == 0.0);
    b.reserve(b.size() + 2);
    b.push_unchecked(7.0);
    b.push_unchecked(8.0);
    CHECK(b.size() == 5);
    CHECK(b[4] == 8.0);
    b.resize_uninitialised(100);
    CHECK(b.size() == 100);
    CHECK(b[3] == 7.0); // old contents survive growth
}
