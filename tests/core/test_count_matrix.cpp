// CountMatrix: CSR assembly from triplets and dense arrays, accessors, totals, invariants.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>

using diffbio::CountMatrix;
using diffbio::CountTriplet;
using diffbio::DuplicatePolicy;

namespace {
// 3 cells x 4 genes:
//   c0: 0 1 0 3
//   c1: 2 0 0 1
//   c2: 0 0 7 0
const std::vector<float> dense = {0, 1, 0, 3, 2, 0, 0, 1, 0, 0, 7, 0};
} // namespace

TEST_CASE("CountMatrix::from_triplets sorts rows and columns into CSR", "[count_matrix]") {
    const std::vector<CountTriplet> t = {{2, 2, 7.0f}, {0, 3, 3.0f}, {1, 3, 1.0f}, {0, 1, 1.0f}, {1, 0, 2.0f}};
    const CountMatrix m = CountMatrix::from_triplets(3, 4, t);
    REQUIRE(m.n_cells() == 3);
    REQUIRE(m.n_genes() == 4);
    REQUIRE(m.nnz() == 5);
    CHECK(std::vector<std::size_t>(m.indptr().begin(), m.indptr().end()) == std::vector<std::size_t>{0, 2, 4, 5});
    CHECK(std::vector<std::uint32_t>(m.indices().begin(), m.indices().end()) ==
          std::vector<std::uint32_t>{1, 3, 0, 3, 2});
    CHECK(std::vector<float>(m.values().begin(), m.values().end()) == std::vector<float>{1, 3, 2, 1, 7});
    CHECK(m.to_dense() == dense);
    CHECK(m.at(0, 3) == 3.0f);
    CHECK(m.at(0, 0) == 0.0f);
    CHECK(m.at(2, 2) == 7.0f);
    const auto r = m.row(1);
    REQUIRE(r.genes.size() == 2);
    CHECK(r.genes[0] == 0);
    CHECK(r.counts[1] == 1.0f);
    CHECK(m.cell_totals() == std::vector<double>{4, 3, 7});
    CHECK(m.gene_totals() == std::vector<double>{2, 1, 7, 4});
    CHECK_NOTHROW(m.validate());
}

TEST_CASE("CountMatrix::from_triplets sums or refuses duplicates and drops zeros", "[count_matrix]") {
    const std::vector<CountTriplet> t = {{0, 1, 1.0f}, {0, 1, 2.5f}, {1, 0, 0.0f}, {1, 2, 4.0f}};
    const CountMatrix s = CountMatrix::from_triplets(2, 3, t);
    CHECK(s.nnz() == 2);
    CHECK(s.at(0, 1) == 3.5f);
    CHECK(s.at(1, 0) == 0.0f);
    const CountMatrix z = CountMatrix::from_triplets(2, 3, t, DuplicatePolicy::Sum, /*keep_zeros=*/true);
    CHECK(z.nnz() == 3);
    CountMatrix pruned = z;
    pruned.prune_zeros();
    CHECK(pruned.nnz() == 2);
    CHECK(pruned.to_dense() == s.to_dense());
    CHECK_NOTHROW(pruned.validate());
    CHECK_THROWS_WITH(CountMatrix::from_triplets(2, 3, t, DuplicatePolicy::Error),
                      Catch::Contains("duplicate entry for cell 0, gene 1"));
}

TEST_CASE("CountMatrix::prune_zeros keeps every row's own entries", "[count_matrix]") {
    // Explicit zeros in the first and a middle row; every row after a pruned one starts with a
    // non-zero entry, so a row that borrowed its neighbour's first entry would show.
    //   c0: 0* 0 5      c1: 3 0* 0      c2: 0 4 0      (* stored zero)
    const std::vector<CountTriplet> t = {{0, 0, 0.0f}, {0, 2, 5.0f}, {1, 0, 3.0f}, {1, 1, 0.0f}, {2, 1, 4.0f}};
    CountMatrix m = CountMatrix::from_triplets(3, 3, t, DuplicatePolicy::Sum, /*keep_zeros=*/true);
    REQUIRE(m.nnz() == 5);
    m.prune_zeros();
    CHECK(std::vector<std::size_t>(m.indptr().begin(), m.indptr().end()) == std::vector<std::size_t>{0, 1, 2, 3});
    CHECK(std::vector<std::uint32_t>(m.indices().begin(), m.indices().end()) == std::vector<std::uint32_t>{2, 0, 1});
    CHECK(std::vector<float>(m.values().begin(), m.values().end()) == std::vector<float>{5, 3, 4});
    CHECK_NOTHROW(m.validate());
}

TEST_CASE("CountMatrix::from_dense equals from_triplets", "[count_matrix]") {
    const CountMatrix m = CountMatrix::from_dense(3, 4, dense);
    CHECK(m.nnz() == 5);
    CHECK(m.to_dense() == dense);
    const std::vector<CountTriplet> t = {{0, 1, 1.0f}, {0, 3, 3.0f}, {1, 0, 2.0f}, {1, 3, 1.0f}, {2, 2, 7.0f}};
    const CountMatrix n = CountMatrix::from_triplets(3, 4, t);
    CHECK(std::vector<std::size_t>(m.indptr().begin(), m.indptr().end()) ==
          std::vector<std::size_t>(n.indptr().begin(), n.indptr().end()));
    CHECK(std::vector<std::uint32_t>(m.indices().begin(), m.indices().end()) ==
          std::vector<std::uint32_t>(n.indices().begin(), n.indices().end()));
}

TEST_CASE("CountMatrix: empty rows, empty matrices", "[count_matrix]") {
    const CountMatrix e;
    CHECK(e.n_cells() == 0);
    CHECK(e.n_genes() == 0);
    CHECK(e.to_dense().empty());
    const CountTriplet blank{};
    CHECK((blank.cell == 0 && blank.gene == 0 && blank.value == 0.0f));
    CHECK(e.nnz() == 0);
    CHECK_NOTHROW(e.validate());
    const CountMatrix z(4, 2);
    CHECK(z.nnz() == 0);
    CHECK(z.row(3).genes.empty());
    CHECK(z.cell_totals() == std::vector<double>(4, 0.0));
    CHECK_NOTHROW(z.validate());
}

TEST_CASE("CountMatrix: bad input raises diffbio errors naming the problem", "[count_matrix]") {
    const std::vector<CountTriplet> out_of_range = {{0, 4, 1.0f}};
    CHECK_THROWS_AS(CountMatrix::from_triplets(3, 4, out_of_range), diffbio::InvalidArgument);
    CHECK_THROWS_WITH(CountMatrix::from_triplets(3, 4, out_of_range), Catch::Contains("outside the 3 x 4 matrix"));
    const std::vector<CountTriplet> negative = {{0, 0, -1.0f}};
    CHECK_THROWS_WITH(CountMatrix::from_triplets(3, 4, negative), Catch::Contains("finite count >= 0"));
    const std::vector<float> nan_dense = {0, 1, std::numeric_limits<float>::quiet_NaN(), 2};
    CHECK_THROWS_WITH(CountMatrix::from_dense(2, 2, nan_dense), Catch::Contains("cell 1, gene 0"));
    CHECK_THROWS_AS(CountMatrix::from_dense(3, 3, dense), diffbio::ShapeError);

    const CountMatrix m = CountMatrix::from_dense(3, 4, dense);
    CHECK_THROWS_WITH(m.row(3), Catch::Contains("cell 3 out of range"));
    CHECK_THROWS_WITH(m.at(0, 4), Catch::Contains("gene 4 out of range"));

    CHECK_THROWS_AS(CountMatrix::from_csr(2, 3, {0, 2}, {0, 1}, {1.0f, 1.0f}), diffbio::ShapeError);
    CHECK_THROWS_WITH(CountMatrix::from_csr(2, 3, {0, 2, 2}, {1, 1}, {1.0f, 1.0f}),
                      Catch::Contains("not strictly increasing"));
    CHECK_THROWS_WITH(CountMatrix::from_csr(2, 3, {0, 1, 2}, {1, 3}, {1.0f, 1.0f}), Catch::Contains("out of range"));
    CHECK_THROWS_AS(CountMatrix::from_csr(2, 3, {0, 2, 1}, {1, 2}, {1.0f, 1.0f}), diffbio::ShapeError);
    CHECK_NOTHROW(CountMatrix::from_csr(2, 3, {0, 1, 2}, {1, 2}, {1.0f, 1.0f}));

    CountMatrix named = m;
    named.barcodes = {"a", "b"};
    CHECK_THROWS_WITH(named.validate(), Catch::Contains("barcodes has 2 entries, expected 0 or n_cells = 3"));
}
