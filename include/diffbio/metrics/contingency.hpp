#pragma once
// Label coding and the contingency table of two labelings, the basis of the pair-counting and
// information-theoretic clustering metrics (ARI, NMI).
//
//   encode_labels(labels)        dense codes 0..K−1 in the sorted order of the distinct labels
//   contingency(a, b)            n_ij = #{u : a_u = i, b_u = j}, stored sparsely (only n_ij > 0),
//                                with its row sums a_i and column sums b_j
//
// Labels are any integers (negative ones too: no "noise" label is special). A labeling is a
// random-access range of an integral type (std::vector<int>, std::span<const long>, ...).
// Complexity: O(n log n) time, O(n) memory, whatever the number of clusters.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/core/error.hpp>

namespace diffbio::metrics {

template <class R>
concept LabelRange = std::ranges::random_access_range<const R> &&
                     std::integral<std::remove_cvref_t<std::ranges::range_value_t<const R>>>;

struct LabelCodes {
    std::vector<std::uint32_t> code; ///< per sample, 0..n_labels−1
    std::size_t n_labels = 0;
};

/// Dense codes of a labeling: the smallest label gets 0, the next 1, ... O(n log n).
template <LabelRange R>
LabelCodes encode_labels(const R& labels) {
    const auto n = static_cast<std::size_t>(std::ranges::size(labels));
    std::vector<std::pair<long long, std::uint32_t>> s(n);
    for (std::size_t u = 0; u < n; ++u) {
        s[u] = {static_cast<long long>(std::ranges::begin(labels)[static_cast<std::ptrdiff_t>(u)]),
                static_cast<std::uint32_t>(u)};
    }
    std::sort(s.begin(), s.end());
    LabelCodes out;
    out.code.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
        if (k > 0 && s[k].first != s[k - 1].first) ++out.n_labels;
        out.code[s[k].second] = static_cast<std::uint32_t>(out.n_labels);
    }
    if (n > 0) ++out.n_labels;
    return out;
}

struct Contingency {
    struct Cell {
        std::uint32_t row = 0, col = 0;
        std::uint64_t count = 0;
    };
    std::size_t n = 0;                 ///< samples
    std::vector<std::uint64_t> rows;   ///< a_i, i = 0..K_a−1 (codes of the first labeling)
    std::vector<std::uint64_t> cols;   ///< b_j, j = 0..K_b−1
    std::vector<Cell> cells;           ///< the non-zero n_ij, sorted by (row, col)
};

/// The contingency table of two labelings of the same samples.
/// Errors: ShapeError when the sizes differ (naming `where`).
template <LabelRange A, LabelRange B>
Contingency contingency(const A& a, const B& b, const char* where = "contingency") {
    const auto n = static_cast<std::size_t>(std::ranges::size(a));
    if (static_cast<std::size_t>(std::ranges::size(b)) != n) {
        throw ShapeError(std::string(where) + ": the two labelings have " + std::to_string(n) + " and " +
                         std::to_string(std::ranges::size(b)) + " samples");
    }
    const LabelCodes ca = encode_labels(a), cb = encode_labels(b);
    Contingency t;
    t.n = n;
    t.rows.assign(ca.n_labels, 0);
    t.cols.assign(cb.n_labels, 0);
    std::vector<std::uint64_t> keys(n);
    for (std::size_t u = 0; u < n; ++u) {
        ++t.rows[ca.code[u]];
        ++t.cols[cb.code[u]];
        keys[u] = (static_cast<std::uint64_t>(ca.code[u]) << 32) | cb.code[u];
    }
    std::sort(keys.begin(), keys.end());
    for (std::size_t u = 0; u < n;) {
        std::size_t v = u;
        while (v < n && keys[v] == keys[u]) ++v;
        t.cells.push_back({static_cast<std::uint32_t>(keys[u] >> 32), static_cast<std::uint32_t>(keys[u] & 0xffffffffu),
                           static_cast<std::uint64_t>(v - u)});
        u = v;
    }
    return t;
}

} // namespace diffbio::metrics
