// Count-matrix readers on real data from Debian's r-cran-seurat (tests/testdata of Seurat: a 10x
// folder of 240 genes x 80 PBMC cells, a Cell Ranger 3 folder; extdata/pbmc_raw.txt: the same
// cells as a dense genes x cells table). Each case WARNs and passes when the package is absent.
//
// Checks: our Matrix Market reader against Eigen's independent loadMarket (entry by entry); the
// 10x folder against the dense table (every gene row of the matrix equals the table's row of the
// same name, barcodes equal up to the "-1" suffix).

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/SparseCore>
#include <unsupported/Eigen/SparseExtra>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/io/count_matrix.hpp>
#include <diffbio/io/line_reader.hpp>

#include "io_fixtures.hpp"

#ifndef DIFFBIO_SEURAT_TESTDATA_DIR
#define DIFFBIO_SEURAT_TESTDATA_DIR "/usr/share/doc/r-cran-seurat/tests/testdata"
#endif
#ifndef DIFFBIO_SEURAT_EXTDATA_DIR
#define DIFFBIO_SEURAT_EXTDATA_DIR "/usr/lib/R/site-library/Seurat/extdata"
#endif

namespace fs = std::filesystem;
using diffbio::CountMatrix;

namespace {

bool have(const std::string& path) {
    if (fs::exists(path)) return true;
    WARN("skipped: " << path << " not found (Debian package r-cran-seurat; scripts/test.sh installs it)");
    return false;
}

const std::string testdata = DIFFBIO_SEURAT_TESTDATA_DIR;
const std::string pbmc_raw = std::string(DIFFBIO_SEURAT_EXTDATA_DIR) + "/pbmc_raw.txt";

} // namespace

TEST_CASE("Seurat testdata: 10x folder, 240 genes x 80 cells, equal to Eigen's loadMarket", "[io][count_matrix][data]") {
    if (!have(testdata + "/matrix.mtx.gz")) return;
    const CountMatrix m = diffbio::io::read_10x_mtx(testdata);
    REQUIRE(m.n_cells() == 80);
    REQUIRE(m.n_genes() == 240);
    CHECK(m.nnz() == 4814);
    CHECK(m.barcodes.front() == "ATGCCAGAACGACT-1");
    CHECK(m.gene_names.front() == "MS4A1");
    CHECK(m.gene_ids.front() == "ENSGXXXXXX");
    CHECK_NOTHROW(m.validate());

    // Eigen reads plain files only: decompress through our LineReader into a scratch file.
    diffbio::test::ScratchFile plain("seurat_matrix.mtx");
    {
        diffbio::io::LineReader in(testdata + "/matrix.mtx.gz");
        std::ofstream out(plain.path());
        std::string_view line;
        while (in.next(line)) out << line << '\n';
        REQUIRE(out.good());
    }
    Eigen::SparseMatrix<double> e; // genes x cells
    REQUIRE(Eigen::loadMarket(e, plain.path()));
    REQUIRE(e.rows() == 240);
    REQUIRE(e.cols() == 80);
    CHECK(static_cast<std::size_t>(e.nonZeros()) == m.nnz());
    std::size_t mismatches = 0;
    double total = 0.0;
    for (int k = 0; k < e.outerSize(); ++k) {
        for (Eigen::SparseMatrix<double>::InnerIterator it(e, k); it; ++it) {
            total += it.value();
            if (m.at(static_cast<std::size_t>(it.col()), static_cast<std::size_t>(it.row())) != it.value()) ++mismatches;
        }
    }
    CHECK(mismatches == 0);
    double ours = 0.0;
    for (double t : m.cell_totals()) ours += t;
    CHECK(ours == total);
    CHECK(total == 23110.0);
}

TEST_CASE("Seurat testdata: the 10x folder equals the dense pbmc_raw.txt table", "[io][count_matrix][data]") {
    if (!have(testdata + "/matrix.mtx.gz") || !have(pbmc_raw)) return;
    const CountMatrix m = diffbio::io::read_10x_mtx(testdata);
    const CountMatrix d = diffbio::io::read_dense_counts(pbmc_raw); // genes x cells, header without corner
    REQUIRE(d.n_cells() == 80);
    REQUIRE(d.n_genes() == 230);
    CHECK(d.nnz() > 0);
    REQUIRE(d.barcodes.size() == 80);
    for (std::size_t c = 0; c < 80; ++c) CHECK(m.barcodes[c] == d.barcodes[c] + "-1");
    std::map<std::string, std::size_t> dense_gene;
    for (std::size_t g = 0; g < d.n_genes(); ++g) dense_gene[d.gene_names[g]] = g;
    // The 10x list has 240 rows: the 230 genes of the table, 10 of them twice.
    std::size_t found = 0, mismatches = 0;
    for (std::size_t g = 0; g < m.n_genes(); ++g) {
        const auto it = dense_gene.find(m.gene_names[g]);
        if (it == dense_gene.end()) continue;
        ++found;
        for (std::size_t c = 0; c < 80; ++c) {
            if (m.at(c, g) != d.at(c, it->second)) ++mismatches;
        }
    }
    CHECK(found == 240);
    CHECK(mismatches == 0);
}

TEST_CASE("Seurat testdata: Cell Ranger 3 folder (features.tsv.gz)", "[io][count_matrix][data]") {
    const std::string cr3 = testdata + "/cr3.0";
    if (!have(cr3 + "/matrix.mtx.gz")) return;
    const CountMatrix m = diffbio::io::read_10x_mtx(cr3);
    REQUIRE(m.n_cells() == 5);
    REQUIRE(m.n_genes() == 5);
    CHECK(m.nnz() == 8);
    CHECK(m.gene_ids.front() == "ENSG00000243485");
    CHECK(m.gene_names.front() == "RP11-34P13.3");
    CHECK(m.barcodes.front() == "AAAGTAGCACAGTCGC-1");
    CHECK(m.at(0, 0) == 110.0f);
}
