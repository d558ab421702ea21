// Fuzz target: the count-matrix readers. The first byte picks the reader: Matrix Market
// (genes × cells or cells × genes), a dense table (tab, comma or detected delimiter, either
// layout), or a 10x folder (the rest split at NUL bytes into matrix.mtx, genes.tsv and
// barcodes.tsv); the rest is the file. The Matrix Market readers run with max_cells = 2^24 (a
// 128 MiB row index): a size line may legitimately declare up to the library's 2^28 cells, whose
// 2 GiB row index is what the format asks for and more than the fuzzer's memory limit.
#include <filesystem>
#include <fstream>

#include <diffbio/io/count_matrix.hpp>

#include "fuzz_common.hpp"

namespace {

constexpr std::uint64_t max_cells = std::uint64_t{1} << 24;

/// The 10x case: writes the parts into a scratch folder and reads it.
void read_10x(const std::uint8_t* data, std::size_t size) {
    const std::string folder = diffbio::fuzz::scratch_file(nullptr, 0, ".10x.unused") + ".d";
    std::filesystem::create_directories(folder);
    const char* names[] = {"matrix.mtx", "genes.tsv", "barcodes.tsv"};
    std::size_t begin = 0;
    for (int part = 0; part < 3; ++part) {
        std::size_t end = begin;
        while (end < size && (part == 2 || data[end] != 0)) ++end;
        std::ofstream(folder + "/" + names[part], std::ios::binary)
            .write(reinterpret_cast<const char*>(data + begin), static_cast<std::streamsize>(end - begin));
        begin = end < size ? end + 1 : size;
    }
    const auto m = diffbio::io::read_10x_mtx(folder, max_cells);
    if (m.gene_names.size() != m.n_genes() || m.barcodes.size() != m.n_cells()) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned pick = data[0];
    using diffbio::io::MatrixLayout;
    const MatrixLayout layout = (pick & 1) ? MatrixLayout::CellsByGenes : MatrixLayout::GenesByCells;
    try {
        if ((pick & 6) == 6) {
            read_10x(data + 1, size - 1);
        } else if ((pick & 2) == 0) {
            const std::string path = diffbio::fuzz::scratch_file(data + 1, size - 1, ".mtx");
            const auto m = diffbio::io::read_mtx(path, layout, max_cells);
            (void)m;
        } else {
            const std::string path = diffbio::fuzz::scratch_file(data + 1, size - 1, ".tsv");
            diffbio::io::DenseCountOptions o;
            o.layout = layout;
            o.delimiter = (pick & 8) ? ',' : ((pick & 16) ? '\t' : '\0');
            const auto m = diffbio::io::read_dense_counts(path, o);
            (void)m;
        }
    } catch (const diffbio::Error&) {
    }
    return 0;
}
