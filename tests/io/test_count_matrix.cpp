// Count-matrix readers on small hand-written fixtures (tests/data/count_*, err_mtx_*, err_dense_*):
// 10x folders (Cell Ranger 2 and 3 layouts), Matrix Market files, dense TSV/CSV, and every kind of
// malformed input with its file, line and message.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/io/count_matrix.hpp>

#include "io_fixtures.hpp"

using diffbio::CountMatrix;
using diffbio::io::MatrixLayout;
using diffbio::test::data_file;
using diffbio::test::require_parse_error;

namespace {

// The fixtures hold this 3 cells x 4 genes matrix (10x files store its transpose):
//   AAAC-1: G2 = 1, G4 = 3
//   AAAG-1: G1 = 2, G4 = 1
//   AAAT-1: G3 = 7
const std::vector<float> expected_dense = {0, 1, 0, 3, 2, 0, 0, 1, 0, 0, 7, 0};
const std::vector<std::string> expected_ids = {"ENSG01", "ENSG02", "ENSG03", "ENSG04"};
const std::vector<std::string> expected_names = {"G1", "G2", "G3", "G4"};
const std::vector<std::string> expected_barcodes = {"AAAC-1", "AAAG-1", "AAAT-1"};

void check_fixture_matrix(const CountMatrix& m) {
    REQUIRE(m.n_cells() == 3);
    REQUIRE(m.n_genes() == 4);
    CHECK(m.nnz() == 5);
    CHECK(m.to_dense() == expected_dense);
    CHECK_NOTHROW(m.validate());
}

} // namespace

TEST_CASE("read_10x_mtx: Cell Ranger 2 folder (plain files, genes.tsv, explicit zero, blank line)",
          "[io][count_matrix]") {
    const CountMatrix m = diffbio::io::read_10x_mtx(data_file("count_10x_v2"));
    check_fixture_matrix(m);
    CHECK(m.gene_ids == expected_ids);
    CHECK(m.gene_names == expected_names);
    CHECK(m.barcodes == expected_barcodes);
}

TEST_CASE("read_10x_mtx: Cell Ranger 3 folder (gzipped, features.tsv.gz with a type column)", "[io][count_matrix]") {
    const CountMatrix m = diffbio::io::read_10x_mtx(data_file("count_10x_v3"));
    check_fixture_matrix(m);
    CHECK(m.gene_ids == expected_ids);
    CHECK(m.gene_names == expected_names);
    CHECK(m.barcodes == expected_barcodes);
}

TEST_CASE("read_10x_mtx: missing folder, missing file, names that do not match the matrix", "[io][count_matrix]") {
    CHECK_THROWS_WITH(diffbio::io::read_10x_mtx(data_file("no_such_folder")), Catch::Contains("is not a folder"));
    CHECK_THROWS_WITH(diffbio::io::read_10x_mtx(data_file("count_10x_missing")),
                      Catch::Contains("no gene list") && Catch::Contains("features.tsv.gz, features.tsv, genes.tsv.gz, genes.tsv"));
    const std::string bc = data_file("count_10x_bad_barcodes") + "/barcodes.tsv";
    require_parse_error([] { diffbio::io::read_10x_mtx(data_file("count_10x_bad_barcodes")); }, bc, 2,
                        "has 2 lines, the matrix");
}

TEST_CASE("read_mtx: both layouts, pattern and real fields", "[io][count_matrix]") {
    const CountMatrix g = diffbio::io::read_mtx(data_file("count_10x_v2/matrix.mtx"), MatrixLayout::GenesByCells);
    check_fixture_matrix(g);
    CHECK(g.gene_ids.empty());
    CHECK(g.barcodes.empty());
    // The same file read the other way is the transpose: 4 cells x 3 genes.
    const CountMatrix c = diffbio::io::read_mtx(data_file("count_10x_v2/matrix.mtx"), MatrixLayout::CellsByGenes);
    REQUIRE(c.n_cells() == 4);
    REQUIRE(c.n_genes() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 4; ++j) CHECK(c.at(j, i) == g.at(i, j));
    }

    const CountMatrix p = diffbio::io::read_mtx(data_file("count_pattern.mtx"));
    REQUIRE(p.n_cells() == 2);
    REQUIRE(p.n_genes() == 3);
    CHECK(p.to_dense() == std::vector<float>{1, 0, 1, 0, 1, 0});

    const CountMatrix r = diffbio::io::read_mtx(data_file("count_real_cells_by_genes.mtx"), MatrixLayout::CellsByGenes);
    REQUIRE(r.n_cells() == 2);
    REQUIRE(r.n_genes() == 3);
    CHECK(r.to_dense() == std::vector<float>{0.5f, 2.25f, 0.0f, 0.0f, 0.0f, 100.0f});
}

TEST_CASE("read_mtx: malformed files give ParseErrors with file, line and the problem", "[io][count_matrix]") {
    auto fails = [](const char* name, long line, const std::string& fragment) {
        const std::string f = data_file(name);
        INFO(name);
        require_parse_error([&] { diffbio::io::read_mtx(f); }, f, line, fragment);
    };
    fails("err_mtx_empty.mtx", 0, "empty file");
    fails("err_mtx_banner.mtx", 1, "not a Matrix Market file");
    fails("err_mtx_array.mtx", 1, "format 'array' is not supported");
    fails("err_mtx_symmetric.mtx", 1, "symmetry 'symmetric' is not supported");
    fails("err_mtx_size.mtx", 3, "size line must be three non-negative integers");
    fails("err_mtx_range.mtx", 4, "entry (3, 1) is outside the 2 x 3 matrix");
    fails("err_mtx_fields.mtx", 4, "an entry must have 3 fields (i j value), got 2");
    fails("err_mtx_negative.mtx", 4, "value '-4' is not a count");
    fails("err_mtx_fraction.mtx", 4, "'2.5' is not an integer in an 'integer' matrix");
    fails("err_mtx_value.mtx", 4, "value 'abc' is not a number");
    fails("err_mtx_duplicate.mtx", 6, "duplicate entry (1, 1): already given at line 4");
    fails("err_mtx_overfull.mtx", 2, "5 entries do not fit a 2 x 2 matrix");
    fails("err_mtx_short.mtx", 4, "declares 3 entries, the file holds 2");
    fails("err_mtx_long.mtx", 4, "more entries than the 1 declared");
    // a damaged size line: 1,459,355,972 cells would need an 11 GiB row index before any entry
    fails("err_mtx_huge.mtx", 3, "declares 1459355972 cells (columns), more than max_cells = 268435456");
    fails("err_mtx_huge.mtx", 3, "row index alone would take 11 GiB");
    // max_cells is the caller's: the fixture's 3 cells pass at 3 and fail at 2, in either layout
    // the bound applies to the cells (columns of a genes x cells file, rows of a cells x genes one)
    const std::string v2 = data_file("count_10x_v2/matrix.mtx");
    CHECK(diffbio::io::read_mtx(v2, MatrixLayout::GenesByCells, 3).n_cells() == 3);
    require_parse_error([&] { diffbio::io::read_mtx(v2, MatrixLayout::GenesByCells, 2); }, v2, 3,
                        "declares 3 cells (columns), more than max_cells = 2");
    CHECK(diffbio::io::read_mtx(v2, MatrixLayout::CellsByGenes, 4).n_cells() == 4);
    require_parse_error([&] { diffbio::io::read_mtx(v2, MatrixLayout::CellsByGenes, 3); }, v2, 3,
                        "declares 4 cells (rows), more than max_cells = 3");
    CHECK_THROWS_WITH(diffbio::io::read_10x_mtx(data_file("count_10x_v2"), 2), Catch::Contains("more than max_cells = 2"));
    CHECK(diffbio::io::read_10x_mtx(data_file("count_10x_v2"), 3).n_cells() == 3);
    CHECK_THROWS_WITH(diffbio::io::read_mtx(data_file("no_such.mtx")),
                      Catch::StartsWith("cannot open '" + data_file("no_such.mtx") + "'"));
}

TEST_CASE("read_dense_counts: genes x cells TSV (R layout) and cells x genes CSV (corner field, quotes, CRLF)",
          "[io][count_matrix]") {
    const CountMatrix g = diffbio::io::read_dense_counts(data_file("count_dense_genes.tsv"));
    check_fixture_matrix(g);
    CHECK(g.gene_names == expected_names);
    CHECK(g.gene_ids.empty());
    CHECK(g.barcodes == std::vector<std::string>{"c1", "c2", "c3"});

    const CountMatrix c = diffbio::io::read_dense_counts(data_file("count_dense_cells.csv"),
                                                         {.layout = MatrixLayout::CellsByGenes});
    check_fixture_matrix(c);
    CHECK(c.gene_names == expected_names);
    CHECK(c.barcodes == std::vector<std::string>{"c1", "c2", "c3"});

    // Forcing the wrong separator leaves one field per line: no values.
    require_parse_error([] { diffbio::io::read_dense_counts(data_file("count_dense_genes.tsv"), {.delimiter = ','}); },
                        data_file("count_dense_genes.tsv"), 2, "needs a row name and at least one value");
}

TEST_CASE("read_dense_counts: malformed tables", "[io][count_matrix]") {
    auto fails = [](const char* name, long line, const std::string& fragment) {
        const std::string f = data_file(name);
        INFO(name);
        require_parse_error([&] { diffbio::io::read_dense_counts(f); }, f, line, fragment);
    };
    fails("err_dense_ragged.tsv", 3, "this line has 3 fields, the first data line has 4");
    fails("err_dense_value.tsv", 3, "field 3 'NA' is not a number");
    fails("err_dense_header.tsv", 2, "this line has 4 values but the header names 2 columns");
    fails("err_dense_nodata.tsv", 1, "no data lines after the header");
    fails("empty.fq", 0, "empty file");
}

TEST_CASE("read_dense_counts: a table of one cell", "[io][count_matrix]") {
    diffbio::test::ScratchFile one("dense_one_cell.tsv");
    diffbio::test::spit(one.path(), "c1\nG1\t4\nG2\t0\nG3\t9\n");
    const CountMatrix m = diffbio::io::read_dense_counts(one.path());
    REQUIRE(m.n_cells() == 1);
    REQUIRE(m.n_genes() == 3);
    CHECK(m.to_dense() == std::vector<float>{4.0f, 0.0f, 9.0f});
    CHECK(m.barcodes == std::vector<std::string>{"c1"});
    CHECK(m.gene_names == std::vector<std::string>{"G1", "G2", "G3"});
}
