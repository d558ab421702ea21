#pragma once
// Readers of single-cell count matrices into a CountMatrix (sparse cells × genes, CSR).
//
//   read_mtx(path, layout[, max_cells])  a Matrix Market 'coordinate' file (plain, gzip or BGZF)
//   read_10x_mtx(folder[, max_cells])    a 10x Genomics folder: matrix.mtx[.gz] (genes × cells),
//                                  features.tsv[.gz] or genes.tsv[.gz] (id, name[, type]),
//                                  barcodes.tsv[.gz]
//   read_dense_counts(path, opts)  a dense TSV/CSV table with a header line of column names and a
//                                  row name in the first field of every line (R's write.table
//                                  layout, whose header has one field fewer than the rows, and
//                                  the layout with a corner field are both accepted)
//
// The layout argument says what the rows of the file are: MatrixLayout::GenesByCells (10x and
// most R exports) or MatrixLayout::CellsByGenes; the result is always cells × genes.
//
// Accepted Matrix Market input: the banner `%%MatrixMarket matrix coordinate <field> general`
// (keywords in any case) with field integer, real, double or pattern (pattern entries count 1);
// '%' comment lines and blank lines anywhere before or between entries; a size line
// `rows cols entries`; then exactly `entries` lines `i j [value]` (1-based, spaces or tabs).
// Explicit zeros are dropped. Counts are stored as float (integers exact up to 2^24).
//
// Errors: diffbio::Error naming the path and the system's reason when a file cannot be opened;
// diffbio::ParseError (file, line, what) for malformed input: a missing or unsupported banner
// (array, complex, symmetric ... are refused with what was found), a bad size line, an index
// outside the declared size, a size line declaring more cells than max_cells (default
// default_max_cells, 2^28: the CSR row index takes 8 bytes per declared cell, empty or not, so a
// damaged size line could otherwise ask for any amount of memory), a wrong number of fields, a value that is not a number or is
// negative or not finite, a duplicate (i, j) (both lines named), more or fewer entries than
// declared, names files whose line count differs from the matrix, empty names, ragged rows.

#include <algorithm>
#include <cerrno>
#include <initializer_list>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/io/line_reader.hpp>

namespace diffbio::io {

/// What the rows of a file on disk are. The CountMatrix read from it is always cells × genes.
enum class MatrixLayout { GenesByCells, CellsByGenes };

/// The most cells a Matrix Market size line may declare unless the caller allows more: 2^28
/// (268 million cells, a 2 GiB row index), five times the largest single-cell atlases.
inline constexpr std::uint64_t default_max_cells = std::uint64_t{1} << 28;

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

/// Splits on runs of spaces and tabs into at most `max` tokens (the count of all tokens is
/// returned, so callers can tell too many from the right number).
inline std::size_t split_ws(std::string_view s, std::string_view* out, std::size_t max) {
    std::size_t n = 0, i = 0;
    while (i < s.size()) {
        while (i < s.size() && is_blank(s[i])) ++i;
        if (i == s.size()) break;
        const std::size_t start = i;
        while (i < s.size() && !is_blank(s[i])) ++i;
        if (n < max) out[n] = s.substr(start, i - start);
        ++n;
    }
    return n;
}

inline std::string shown(std::string_view s) {
    constexpr std::size_t cap = 40;
    std::string out = "'"; // appended, not "'" + …: GCC 12 warns falsely (-Wrestrict) on that form
    out.append(s.substr(0, cap));
    out.append(s.size() > cap ? "...'" : "'");
    return out;
}

inline bool parse_u64(std::string_view s, std::uint64_t& v) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

inline bool parse_double(std::string_view s, double& v) {
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// A count from a field: a finite number >= 0 (what: the words for the message).
inline float parse_count(std::string_view field, const LineReader& in, const std::string& what) {
    double v = 0.0;
    if (!parse_double(field, v)) {
        throw ParseError(in.path(), static_cast<long>(in.line()), what + " " + shown(field) + " is not a number");
    }
    if (!std::isfinite(v) || v < 0.0) {
        throw ParseError(in.path(), static_cast<long>(in.line()),
                         what + " " + shown(field) + " is not a count: it must be finite and >= 0");
    }
    return static_cast<float>(v);
}

/// Every line of a names file (barcodes, features): its tab-separated fields.
inline std::vector<std::vector<std::string>> read_name_lines(const std::string& path) {
    LineReader in(path);
    std::vector<std::vector<std::string>> rows;
    std::string_view line;
    while (in.next(line)) {
        if (line.empty()) {
            // Empty lines are tolerated only at the very end of the file.
            const std::size_t blank = in.line();
            std::string_view rest;
            bool more = false;
            while (in.next(rest)) {
                if (!rest.empty()) {
                    more = true;
                    break;
                }
            }
            if (more) throw ParseError(path, static_cast<long>(blank), "empty line among the names");
            break;
        }
        std::vector<std::string> fields;
        std::size_t start = 0;
        for (;;) {
            const std::size_t tab = line.find('\t', start);
            fields.emplace_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
            if (tab == std::string_view::npos) break;
            start = tab + 1;
        }
        if (fields.front().empty()) {
            throw ParseError(path, static_cast<long>(in.line()), "the first field (the name) is empty");
        }
        rows.push_back(std::move(fields));
    }
    return rows;
}

/// The first of `names` that exists in `folder`, or "" (then `tried` lists them).
inline std::string first_existing(const std::filesystem::path& folder, std::initializer_list<const char*> names,
                                  std::string& tried) {
    tried.clear();
    for (const char* n : names) {
        const std::filesystem::path p = folder / n;
        std::error_code ec;
        if (std::filesystem::is_regular_file(p, ec)) return p.string();
        if (!tried.empty()) tried += ", ";
        tried += n;
    }
    return "";
}

/// Rescans a Matrix Market file for the first (i, j) seen twice and throws a ParseError naming
/// both lines (only called once a duplicate is known to exist).
[[noreturn]] inline void report_duplicate(const std::string& path) {
    LineReader in(path);
    std::string_view line, tok[3];
    std::unordered_map<std::uint64_t, std::size_t> seen;
    bool size_seen = false;
    while (in.next(line)) {
        if (line.empty() || line.front() == '%') continue;
        if (!size_seen) {
            size_seen = true;
            continue;
        }
        if (split_ws(line, tok, 3) < 2) continue;
        std::uint64_t i = 0, j = 0;
        if (!parse_u64(tok[0], i) || !parse_u64(tok[1], j)) continue;
        const std::uint64_t key = (i << 32) ^ j;
        const auto [it, fresh] = seen.emplace(key, in.line());
        if (!fresh) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "duplicate entry (" + std::to_string(i) + ", " + std::to_string(j) +
                                 "): already given at line " + std::to_string(it->second));
        }
    }
    throw ParseError(path, static_cast<long>(in.line()), "duplicate entries");
}

} // namespace detail

/// Reads a Matrix Market coordinate file (see the header comment for what is accepted).
/// layout GenesByCells (the 10x convention): file rows are genes, columns cells.
/// The result has no names. Complexity: O(bytes + nnz + cells), memory O(nnz + cells) (triplets,
/// then CSR). A size line declaring more than max_cells cells is refused before anything is
/// allocated for them.
/// Errors: see the header comment.
inline CountMatrix read_mtx(const std::string& path, MatrixLayout layout = MatrixLayout::GenesByCells,
                            std::uint64_t max_cells = default_max_cells) {
    LineReader in(path);
    std::string_view line;
    if (!in.next(line)) throw ParseError(path, 0, "empty file: expected a '%%MatrixMarket' banner");
    std::string_view tok[6];
    const std::size_t nt = detail::split_ws(line, tok, 6);
    if (nt == 0 || !detail::iequals(tok[0], "%%MatrixMarket")) {
        throw ParseError(path, 1, "not a Matrix Market file: the first line must start with '%%MatrixMarket', got " +
                                      detail::shown(line));
    }
    if (nt != 5 || !detail::iequals(tok[1], "matrix")) {
        throw ParseError(path, 1, "the banner must read '%%MatrixMarket matrix coordinate <field> general', got " +
                                      detail::shown(line));
    }
    if (!detail::iequals(tok[2], "coordinate")) {
        throw ParseError(path, 1, "format " + detail::shown(tok[2]) + " is not supported: only sparse 'coordinate'");
    }
    enum class Field { Integer, Real, Pattern } field;
    if (detail::iequals(tok[3], "integer")) {
        field = Field::Integer;
    } else if (detail::iequals(tok[3], "real") || detail::iequals(tok[3], "double")) {
        field = Field::Real;
    } else if (detail::iequals(tok[3], "pattern")) {
        field = Field::Pattern;
    } else {
        throw ParseError(path, 1, "field " + detail::shown(tok[3]) +
                                      " is not supported: counts are 'integer', 'real' or 'pattern'");
    }
    if (!detail::iequals(tok[4], "general")) {
        throw ParseError(path, 1, "symmetry " + detail::shown(tok[4]) +
                                      " is not supported: a count matrix is 'general'");
    }

    // Size line.
    for (;;) {
        if (!in.next(line)) {
            throw ParseError(path, static_cast<long>(in.line()), "no size line ('rows cols entries') after the banner");
        }
        if (!line.empty() && line.front() != '%' && !detail::trim(line).empty()) break;
    }
    std::uint64_t rows = 0, cols = 0, entries = 0;
    if (detail::split_ws(line, tok, 4) != 3 || !detail::parse_u64(tok[0], rows) || !detail::parse_u64(tok[1], cols) ||
        !detail::parse_u64(tok[2], entries)) {
        throw ParseError(path, static_cast<long>(in.line()),
                         "the size line must be three non-negative integers 'rows cols entries', got " +
                             detail::shown(line));
    }
    constexpr std::uint64_t max_dim = std::numeric_limits<std::uint32_t>::max();
    if (rows > max_dim || cols > max_dim) {
        throw ParseError(path, static_cast<long>(in.line()), "matrix of " + std::to_string(rows) + " x " +
                                                                  std::to_string(cols) + " is too large (at most 2^32 - 1 per side)");
    }
    if (entries > rows * cols) { // both sides < 2^32 (checked above): the product fits in 64 bits
        throw ParseError(path, static_cast<long>(in.line()), std::to_string(entries) + " entries do not fit a " +
                                                                  std::to_string(rows) + " x " + std::to_string(cols) +
                                                                  " matrix");
    }
    const bool genes_rows = layout == MatrixLayout::GenesByCells;
    if ((genes_rows ? cols : rows) > max_cells) {
        const double gib = static_cast<double>((genes_rows ? cols : rows) + 1) * 8.0 / double(1 << 30);
        throw ParseError(path, static_cast<long>(in.line()),
                         "the size line declares " + std::to_string(genes_rows ? cols : rows) + " cells (" +
                             (genes_rows ? "columns" : "rows") + "), more than max_cells = " +
                             std::to_string(max_cells) + "; their row index alone would take " +
                             std::to_string(static_cast<long long>(std::ceil(gib))) +
                             " GiB. A damaged size line? Pass a larger max_cells to read it as it is");
    }
    const std::size_t n_cells = static_cast<std::size_t>(genes_rows ? cols : rows);
    const std::size_t n_genes = static_cast<std::size_t>(genes_rows ? rows : cols);

    std::vector<CountTriplet> triplets;
    // reserved up to 2^20 triplets (12 MiB) from the size line; beyond, the vector grows with what
    // the file holds (a damaged size line cannot reserve more)
    triplets.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(entries, std::uint64_t{1} << 20)));
    const std::size_t want = field == Field::Pattern ? 2 : 3;
    while (in.next(line)) {
        if (line.empty() || line.front() == '%') continue;
        const std::size_t got = detail::split_ws(line, tok, 3);
        if (got == 0) continue;
        if (triplets.size() == entries) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "more entries than the " + std::to_string(entries) + " declared on the size line");
        }
        if (got != want) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "an entry must have " + std::to_string(want) + " fields (" +
                                 (want == 2 ? "i j" : "i j value") + "), got " + std::to_string(got) + ": " +
                                 detail::shown(line));
        }
        std::uint64_t i = 0, j = 0;
        if (!detail::parse_u64(tok[0], i) || !detail::parse_u64(tok[1], j)) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "row and column must be positive integers, got " + detail::shown(line));
        }
        if (i < 1 || i > rows || j < 1 || j > cols) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "entry (" + std::to_string(i) + ", " + std::to_string(j) + ") is outside the " +
                                 std::to_string(rows) + " x " + std::to_string(cols) + " matrix (indices are 1-based)");
        }
        float v = 1.0f;
        if (field != Field::Pattern) {
            v = detail::parse_count(tok[2], in, "value");
            if (field == Field::Integer && std::floor(v) != v) {
                throw ParseError(path, static_cast<long>(in.line()),
                                 "value " + detail::shown(tok[2]) + " is not an integer in an 'integer' matrix");
            }
        }
        const auto r = static_cast<std::uint32_t>(i - 1), c = static_cast<std::uint32_t>(j - 1);
        triplets.push_back(genes_rows ? CountTriplet{c, r, v} : CountTriplet{r, c, v});
    }
    if (triplets.size() != entries) {
        throw ParseError(path, static_cast<long>(in.line()),
                         "the size line declares " + std::to_string(entries) + " entries, the file holds " +
                             std::to_string(triplets.size()));
    }
    CountMatrix m;
    try {
        m = CountMatrix::from_triplets(n_cells, n_genes, triplets, DuplicatePolicy::Error, /*keep_zeros=*/true);
    } catch (const InvalidArgument&) {
        detail::report_duplicate(path);
    }
    m.prune_zeros();
    return m;
}

/// Reads a 10x Genomics matrix folder (Cell Ranger 2: matrix.mtx, genes.tsv, barcodes.tsv;
/// Cell Ranger 3+: the same gzipped, features.tsv.gz). Each file may be plain or gzipped.
/// gene_ids and gene_names come from the first two columns of the features file (a one-column
/// file gives names equal to ids); barcodes from the first column of the barcodes file.
/// max_cells bounds the matrix's size line as in read_mtx.
/// Errors: diffbio::Error when `folder` is not a folder or a file is missing (naming the names
/// tried); ParseError for malformed files, or names files whose line count differs from the
/// matrix ("... has 239 lines, the matrix has 240 genes").
inline CountMatrix read_10x_mtx(const std::string& folder, std::uint64_t max_cells = default_max_cells) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) throw Error("read_10x_mtx: '" + folder + "' is not a folder");
    std::string tried;
    const std::string mtx = detail::first_existing(folder, {"matrix.mtx.gz", "matrix.mtx"}, tried);
    if (mtx.empty()) throw Error("read_10x_mtx: no matrix in '" + folder + "' (looked for " + tried + ")");
    const std::string feat = detail::first_existing(
        folder, {"features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"}, tried);
    if (feat.empty()) throw Error("read_10x_mtx: no gene list in '" + folder + "' (looked for " + tried + ")");
    const std::string bc = detail::first_existing(folder, {"barcodes.tsv.gz", "barcodes.tsv"}, tried);
    if (bc.empty()) throw Error("read_10x_mtx: no barcodes in '" + folder + "' (looked for " + tried + ")");

    CountMatrix m = read_mtx(mtx, MatrixLayout::GenesByCells, max_cells);
    auto features = detail::read_name_lines(feat);
    if (features.size() != m.n_genes()) {
        throw ParseError(feat, static_cast<long>(features.size()),
                         "has " + std::to_string(features.size()) + " lines, the matrix " + mtx + " has " +
                             std::to_string(m.n_genes()) + " genes (rows)");
    }
    auto barcodes = detail::read_name_lines(bc);
    if (barcodes.size() != m.n_cells()) {
        throw ParseError(bc, static_cast<long>(barcodes.size()),
                         "has " + std::to_string(barcodes.size()) + " lines, the matrix " + mtx + " has " +
                             std::to_string(m.n_cells()) + " cells (columns)");
    }
    m.gene_ids.reserve(features.size());
    m.gene_names.reserve(features.size());
    for (std::size_t g = 0; g < features.size(); ++g) {
        auto& f = features[g];
        if (f.size() >= 2 && f[1].empty()) {
            throw ParseError(feat, static_cast<long>(g + 1), "the gene name (second field) is empty");
        }
        m.gene_names.push_back(f.size() >= 2 ? f[1] : f[0]);
        m.gene_ids.push_back(std::move(f[0]));
    }
    m.barcodes.reserve(barcodes.size());
    for (auto& b : barcodes) m.barcodes.push_back(std::move(b[0]));
    return m;
}

struct DenseCountOptions {
    /// What the rows of the file are (R's Seurat examples: genes × cells).
    MatrixLayout layout = MatrixLayout::GenesByCells;
    /// Field separator; 0 picks it from the header line: a tab if it has one, else a comma if it
    /// has one, else a tab.
    char delimiter = 0;
};

/// Reads a dense table of counts: a header line of column names, then one line per row: its
/// name, then one count per column. The header may also start with a corner field (then it has
/// as many fields as the rows). Names in double quotes are unquoted; spaces around numbers are
/// ignored. Zeros are not stored. Gene names go to gene_names (gene_ids stays empty), cell names
/// to barcodes.
/// Complexity: O(bytes + rows·cols); memory O(nnz) plus the names.
/// Errors: ParseError for an empty file, a header without data lines, a line whose field count
/// differs from the first data line, an empty row name, a field that is not a finite count >= 0.
inline CountMatrix read_dense_counts(const std::string& path, DenseCountOptions options = {}) {
    LineReader in(path);
    std::string_view line;
    if (!in.next(line)) throw ParseError(path, 0, "empty file: expected a header line of column names");
    char sep = options.delimiter;
    if (sep == 0) sep = line.find('\t') != std::string_view::npos ? '\t' : (line.find(',') != std::string_view::npos ? ',' : '\t');

    auto unquote = [](std::string_view s) {
        s = detail::trim(s);
        if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
        return std::string(s);
    };
    auto split = [sep](std::string_view s, std::vector<std::string_view>& out) {
        out.clear();
        std::size_t start = 0;
        for (;;) {
            const std::size_t p = s.find(sep, start);
            out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
            if (p == std::string_view::npos) break;
            start = p + 1;
        }
    };

    std::vector<std::string_view> fields;
    split(line, fields);
    std::vector<std::string> header;
    header.reserve(fields.size());
    for (auto f : fields) header.push_back(unquote(f));

    std::vector<std::string> row_names;
    std::vector<CountTriplet> triplets;
    std::size_t n_cols = 0;
    const bool genes_rows = options.layout == MatrixLayout::GenesByCells;
    while (in.next(line)) {
        if (detail::trim(line).empty()) continue;
        split(line, fields);
        if (row_names.empty()) {
            if (fields.size() < 2) {
                throw ParseError(path, static_cast<long>(in.line()),
                                 "a data line needs a row name and at least one value, got " + detail::shown(line));
            }
            n_cols = fields.size() - 1;
            if (header.size() == n_cols + 1) {
                header.erase(header.begin()); // a corner field
            } else if (header.size() != n_cols) {
                throw ParseError(path, static_cast<long>(in.line()),
                                 "this line has " + std::to_string(n_cols) + " values but the header names " +
                                     std::to_string(header.size()) + " columns");
            }
            for (std::size_t k = 0; k < header.size(); ++k) {
                if (header[k].empty()) {
                    throw ParseError(path, 1, "column name " + std::to_string(k + 1) + " of the header is empty");
                }
            }
        } else if (fields.size() != n_cols + 1) {
            throw ParseError(path, static_cast<long>(in.line()),
                             "this line has " + std::to_string(fields.size()) + " fields, the first data line has " +
                                 std::to_string(n_cols + 1));
        }
        std::string name = unquote(fields[0]);
        if (name.empty()) throw ParseError(path, static_cast<long>(in.line()), "the row name (first field) is empty");
        const auto r = static_cast<std::uint32_t>(row_names.size());
        row_names.push_back(std::move(name));
        for (std::size_t k = 0; k < n_cols; ++k) {
            const float v = detail::parse_count(detail::trim(fields[k + 1]), in, "field " + std::to_string(k + 2));
            if (v == 0.0f) continue;
            const auto c = static_cast<std::uint32_t>(k);
            triplets.push_back(genes_rows ? CountTriplet{c, r, v} : CountTriplet{r, c, v});
        }
    }
    if (row_names.empty()) throw ParseError(path, static_cast<long>(in.line()), "no data lines after the header");
    const std::size_t n_cells = genes_rows ? n_cols : row_names.size();
    const std::size_t n_genes = genes_rows ? row_names.size() : n_cols;
    CountMatrix m = CountMatrix::from_triplets(n_cells, n_genes, triplets);
    if (genes_rows) {
        m.gene_names = std::move(row_names);
        m.barcodes = std::move(header);
    } else {
        m.barcodes = std::move(row_names);
        m.gene_names = std::move(header);
    }
    return m;
}

} // namespace diffbio::io
