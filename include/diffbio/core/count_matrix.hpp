#pragma once
// CountMatrix: a sparse cells × genes matrix of counts in compressed sparse row (CSR) form, with
// the names that come with single-cell data (gene ids, gene names, cell barcodes).
//
//   row c (a cell) holds the entries indptr[c] .. indptr[c+1]−1 of `indices` (gene numbers,
//   strictly increasing within the row) and `values` (the counts, > 0 unless explicitly stored
//   zeros were asked for). Values are float: every integer up to 2^24 = 16,777,216 is exact.
//
//   CountMatrix::from_triplets(cells, genes, triplets)  any order, duplicates summed or refused
//   CountMatrix::from_dense(cells, genes, values)       row-major cells × genes, zeros dropped
//   m.row(c)             the genes and counts of cell c (spans)
//   m.at(c, g)           one entry, O(log nnz of the row)
//   m.to_dense()         row-major cells × genes (O(cells·genes) memory)
//   m.cell_totals()      Σ_g x_cg per cell (library sizes); m.gene_totals() Σ_c x_cg per gene
//   m.validate()         checks every invariant; throws diffbio::ShapeError / InvalidArgument
//
// Names: gene_ids and gene_names are empty or have n_genes entries, barcodes empty or n_cells.
// An Eigen view is not part of this header (core does not depend on Eigen); the arrays are
// exactly Eigen's compressed row-major layout, so Eigen::Map<const Eigen::SparseMatrix<float,
// Eigen::RowMajor, std::int64_t>> can wrap them (indices must then be converted to the index type).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <diffbio/core/error.hpp>

namespace diffbio {

/// One entry of a matrix being assembled: (cell, gene, value), 0-based.
struct CountTriplet {
    std::uint32_t cell = 0;
    std::uint32_t gene = 0;
    float value = 0.0f;
};

/// What from_triplets does with several triplets for the same (cell, gene).
enum class DuplicatePolicy { Sum, Error };

class CountMatrix {
public:
    /// An empty 0 × 0 matrix.
    CountMatrix() : indptr_(1, 0) {}

    /// An all-zero n_cells × n_genes matrix.
    /// Errors: InvalidArgument when n_genes does not fit the 32-bit gene index.
    CountMatrix(std::size_t n_cells, std::size_t n_genes) : n_cells_(n_cells), n_genes_(n_genes), indptr_(n_cells + 1, 0) {
        check_gene_count(n_genes);
    }

    /// Builds the CSR arrays from (cell, gene, value) triplets in any order: a counting sort by
    /// cell (stable), then a sort of each row by gene. Triplets whose value is 0 are dropped
    /// unless keep_zeros. Duplicates (same cell and gene) are summed, or refused with
    /// DuplicatePolicy::Error.
    /// Complexity: O(nnz + cells + Σ_rows r log r) time, O(nnz + cells) extra memory.
    /// Errors: InvalidArgument naming the triplet for a cell or gene out of range, a value that
    /// is negative, NaN or infinite, or a duplicate under DuplicatePolicy::Error.
    static CountMatrix from_triplets(std::size_t n_cells, std::size_t n_genes, std::span<const CountTriplet> triplets,
                                     DuplicatePolicy duplicates = DuplicatePolicy::Sum, bool keep_zeros = false) {
        CountMatrix m(n_cells, n_genes);
        for (std::size_t t = 0; t < triplets.size(); ++t) {
            const CountTriplet& e = triplets[t];
            if (e.cell >= n_cells || e.gene >= n_genes) {
                throw InvalidArgument("CountMatrix::from_triplets: triplet " + std::to_string(t) + " (cell " +
                                      std::to_string(e.cell) + ", gene " + std::to_string(e.gene) +
                                      ") is outside the " + std::to_string(n_cells) + " x " + std::to_string(n_genes) +
                                      " matrix");
            }
            check_value(e.value, "CountMatrix::from_triplets", t);
            if (e.value != 0.0f || keep_zeros) ++m.indptr_[e.cell + 1];
        }
        for (std::size_t c = 0; c < n_cells; ++c) m.indptr_[c + 1] += m.indptr_[c];
        const std::size_t nnz = m.indptr_[n_cells];
        m.indices_.resize(nnz);
        m.values_.resize(nnz);
        std::vector<std::size_t> next(m.indptr_.begin(), m.indptr_.end() - 1);
        for (const CountTriplet& e : triplets) {
            if (e.value == 0.0f && !keep_zeros) continue;
            const std::size_t at = next[e.cell]++;
            m.indices_[at] = e.gene;
            m.values_[at] = e.value;
        }
        // Sort each row by gene, then merge duplicates in place.
        std::vector<std::pair<std::uint32_t, float>> row;
        std::size_t out = 0;
        for (std::size_t c = 0; c < n_cells; ++c) {
            const std::size_t lo = m.indptr_[c], hi = m.indptr_[c + 1];
            row.clear();
            for (std::size_t k = lo; k < hi; ++k) row.emplace_back(m.indices_[k], m.values_[k]);
            std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            m.indptr_[c] = out;
            for (std::size_t k = 0; k < row.size(); ++k) {
                if (k > 0 && row[k].first == row[k - 1].first) {
                    if (duplicates == DuplicatePolicy::Error) {
                        throw InvalidArgument("CountMatrix::from_triplets: duplicate entry for cell " + std::to_string(c) +
                                              ", gene " + std::to_string(row[k].first));
                    }
                    m.values_[out - 1] += row[k].second;
                    continue;
                }
                m.indices_[out] = row[k].first;
                m.values_[out] = row[k].second;
                ++out;
            }
        }
        m.indptr_[n_cells] = out;
        m.indices_.resize(out);
        m.values_.resize(out);
        return m;
    }

    /// From a dense row-major cells × genes array; zeros are not stored.
    /// Complexity: O(cells·genes).
    /// Errors: ShapeError when values.size() != n_cells·n_genes; InvalidArgument for a negative
    /// or non-finite value (naming its cell and gene).
    static CountMatrix from_dense(std::size_t n_cells, std::size_t n_genes, std::span<const float> values) {
        if (values.size() != n_cells * n_genes) {
            throw ShapeError("CountMatrix::from_dense: expected " + std::to_string(n_cells) + " x " +
                             std::to_string(n_genes) + " = " + std::to_string(n_cells * n_genes) + " values, got " +
                             std::to_string(values.size()));
        }
        CountMatrix m(n_cells, n_genes);
        for (std::size_t c = 0; c < n_cells; ++c) {
            for (std::size_t g = 0; g < n_genes; ++g) {
                const float v = values[c * n_genes + g];
                if (!std::isfinite(v) || v < 0.0f) {
                    throw InvalidArgument("CountMatrix::from_dense: count of cell " + std::to_string(c) + ", gene " +
                                          std::to_string(g) + " must be finite and >= 0, got " + std::to_string(v));
                }
                if (v == 0.0f) continue;
                m.indices_.push_back(static_cast<std::uint32_t>(g));
                m.values_.push_back(v);
            }
            m.indptr_[c + 1] = m.indices_.size();
        }
        return m;
    }

    /// Adopts CSR arrays that are already built, then validate()s them.
    static CountMatrix from_csr(std::size_t n_cells, std::size_t n_genes, std::vector<std::size_t> indptr,
                                std::vector<std::uint32_t> indices, std::vector<float> values) {
        CountMatrix m;
        m.n_cells_ = n_cells;
        m.n_genes_ = n_genes;
        m.indptr_ = std::move(indptr);
        m.indices_ = std::move(indices);
        m.values_ = std::move(values);
        m.validate();
        return m;
    }

    std::size_t n_cells() const noexcept { return n_cells_; }
    std::size_t n_genes() const noexcept { return n_genes_; }
    std::size_t nnz() const noexcept { return values_.size(); }

    std::span<const std::size_t> indptr() const noexcept { return indptr_; }
    std::span<const std::uint32_t> indices() const noexcept { return indices_; }
    std::span<const float> values() const noexcept { return values_; }
    /// Mutable counts (the sparsity pattern stays fixed); callers keep them finite and >= 0.
    std::span<float> values() noexcept { return values_; }

    struct Row {
        std::span<const std::uint32_t> genes;
        std::span<const float> counts;
    };
    /// The stored entries of cell c. Errors: InvalidArgument when c >= n_cells.
    Row row(std::size_t c) const {
        check_cell(c, "CountMatrix::row");
        const std::size_t lo = indptr_[c], n = indptr_[c + 1] - lo;
        return Row{std::span<const std::uint32_t>(indices_).subspan(lo, n), std::span<const float>(values_).subspan(lo, n)};
    }

    /// x[c, g] (0 when not stored). O(log r). Errors: InvalidArgument when out of range.
    float at(std::size_t c, std::size_t g) const {
        check_cell(c, "CountMatrix::at");
        if (g >= n_genes_) {
            throw InvalidArgument("CountMatrix::at: gene " + std::to_string(g) + " out of range (n_genes = " +
                                  std::to_string(n_genes_) + ")");
        }
        const auto first = indices_.begin() + static_cast<std::ptrdiff_t>(indptr_[c]);
        const auto last = indices_.begin() + static_cast<std::ptrdiff_t>(indptr_[c + 1]);
        const auto it = std::lower_bound(first, last, static_cast<std::uint32_t>(g));
        return (it != last && *it == g) ? values_[static_cast<std::size_t>(it - indices_.begin())] : 0.0f;
    }

    /// Removes stored entries equal to 0 (explicit zeros). O(nnz).
    void prune_zeros() {
        std::size_t out = 0;
        std::size_t lo = 0;
        for (std::size_t c = 0; c < n_cells_; ++c) {
            const std::size_t hi = indptr_[c + 1];
            for (std::size_t k = lo; k < hi; ++k) {
                if (values_[k] == 0.0f) continue;
                indices_[out] = indices_[k];
                values_[out] = values_[k];
                ++out;
            }
            lo = hi;
            indptr_[c + 1] = out;
        }
        indices_.resize(out);
        values_.resize(out);
    }

    /// Row-major cells × genes copy. O(cells·genes).
    std::vector<float> to_dense() const {
        std::vector<float> out(n_cells_ * n_genes_, 0.0f);
        for (std::size_t c = 0; c < n_cells_; ++c) {
            for (std::size_t k = indptr_[c]; k < indptr_[c + 1]; ++k) out[c * n_genes_ + indices_[k]] = values_[k];
        }
        return out;
    }

    /// Σ_g x[c, g] per cell, accumulated in double. O(nnz).
    std::vector<double> cell_totals() const {
        std::vector<double> t(n_cells_, 0.0);
        for (std::size_t c = 0; c < n_cells_; ++c) {
            for (std::size_t k = indptr_[c]; k < indptr_[c + 1]; ++k) t[c] += values_[k];
        }
        return t;
    }

    /// Σ_c x[c, g] per gene, accumulated in double. O(nnz).
    std::vector<double> gene_totals() const {
        std::vector<double> t(n_genes_, 0.0);
        for (std::size_t k = 0; k < values_.size(); ++k) t[indices_[k]] += values_[k];
        return t;
    }

    /// Gene ids (e.g. Ensembl ids), gene names (symbols) and cell barcodes: empty or full length.
    std::vector<std::string> gene_ids;
    std::vector<std::string> gene_names;
    std::vector<std::string> barcodes;

    /// Checks every invariant: indptr has n_cells + 1 non-decreasing entries from 0 to nnz,
    /// gene indices are < n_genes and strictly increasing within each row, counts are finite and
    /// >= 0, name vectors are empty or of the right length. O(nnz + cells + genes).
    /// Errors: ShapeError for lengths that do not agree, InvalidArgument for a bad entry.
    void validate() const {
        check_gene_count(n_genes_);
        if (indptr_.size() != n_cells_ + 1) {
            throw ShapeError("CountMatrix: indptr has " + std::to_string(indptr_.size()) + " entries, expected n_cells + 1 = " +
                             std::to_string(n_cells_ + 1));
        }
        if (indices_.size() != values_.size()) {
            throw ShapeError("CountMatrix: " + std::to_string(indices_.size()) + " gene indices but " +
                             std::to_string(values_.size()) + " values");
        }
        if (indptr_.front() != 0 || indptr_.back() != values_.size()) {
            throw ShapeError("CountMatrix: indptr must run from 0 to nnz = " + std::to_string(values_.size()) + ", got " +
                             std::to_string(indptr_.front()) + " .. " + std::to_string(indptr_.back()));
        }
        for (std::size_t c = 0; c < n_cells_; ++c) {
            if (indptr_[c + 1] < indptr_[c]) {
                throw ShapeError("CountMatrix: indptr decreases at cell " + std::to_string(c));
            }
            for (std::size_t k = indptr_[c]; k < indptr_[c + 1]; ++k) {
                if (indices_[k] >= n_genes_) {
                    throw InvalidArgument("CountMatrix: gene index " + std::to_string(indices_[k]) + " of cell " +
                                          std::to_string(c) + " is out of range (n_genes = " + std::to_string(n_genes_) +
                                          ")");
                }
                if (k > indptr_[c] && indices_[k] <= indices_[k - 1]) {
                    throw InvalidArgument("CountMatrix: gene indices of cell " + std::to_string(c) +
                                          " are not strictly increasing (" + std::to_string(indices_[k - 1]) + " then " +
                                          std::to_string(indices_[k]) + ")");
                }
                check_value(values_[k], "CountMatrix", k);
            }
        }
        check_names(gene_ids, n_genes_, "gene_ids", "n_genes");
        check_names(gene_names, n_genes_, "gene_names", "n_genes");
        check_names(barcodes, n_cells_, "barcodes", "n_cells");
    }

private:
    static void check_gene_count(std::size_t n_genes) {
        if (n_genes > std::numeric_limits<std::uint32_t>::max()) {
            throw InvalidArgument("CountMatrix: n_genes = " + std::to_string(n_genes) +
                                  " does not fit the 32-bit gene index");
        }
    }
    static void check_value(float v, const char* where, std::size_t k) {
        if (!std::isfinite(v) || v < 0.0f) {
            throw InvalidArgument(std::string(where) + ": entry " + std::to_string(k) +
                                  " must be a finite count >= 0, got " + std::to_string(v));
        }
    }
    static void check_names(const std::vector<std::string>& names, std::size_t n, const char* what, const char* of) {
        if (!names.empty() && names.size() != n) {
            throw ShapeError(std::string("CountMatrix: ") + what + " has " + std::to_string(names.size()) +
                             " entries, expected 0 or " + of + " = " + std::to_string(n));
        }
    }
    void check_cell(std::size_t c, const char* where) const {
        if (c >= n_cells_) {
            throw InvalidArgument(std::string(where) + ": cell " + std::to_string(c) + " out of range (n_cells = " +
                                  std::to_string(n_cells_) + ")");
        }
    }

    std::size_t n_cells_ = 0;
    std::size_t n_genes_ = 0;
    std::vector<std::size_t> indptr_;
    std::vector<std::uint32_t> indices_;
    std::vector<float> values_;
};

} // namespace diffbio
