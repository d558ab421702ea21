#include <catch2/catch.hpp>

#include <string>

#include <diffbio/core/error.hpp>

TEST_CASE("error hierarchy and ParseError location", "[core][error]") {
    const diffbio::ParseError e("reads.fq", 12, "quality length 3 differs from sequence length 4");
    CHECK(e.file() == "reads.fq");
    CHECK(e.line() == 12);
    CHECK(std::string(e.what()) == "reads.fq:12: quality length 3 differs from sequence length 4");
    CHECK_THROWS_AS(throw diffbio::ShapeError("x"), diffbio::InvalidArgument);
    CHECK_THROWS_AS(throw diffbio::AdError("x"), diffbio::Error);
}
