#pragma once
// Normalised mutual information of two labelings.
//
//   MI   = Σ_ij (n_ij/n) log(n·n_ij / (a_i b_j))        (natural log; clipped at 0)
//   H(a) = −Σ_i (a_i/n) log(a_i/n),  H(b) likewise
//   NMI  = MI / mean(H(a), H(b)),  mean: arithmetic (default, scikit-learn's default),
//          geometric, min or max
// Conventions as scikit-learn's normalized_mutual_info_score: both labelings with a single
// cluster (or no samples) → 1; MI = 0 otherwise → 0. In [0, 1]; O(n log n).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <diffbio/metrics/contingency.hpp>

namespace diffbio::metrics {

enum class NmiAverage { Arithmetic, Geometric, Min, Max };

/// Mutual information (nats) of a contingency table.
inline double mutual_information(const Contingency& t) {
    if (t.n == 0) return 0.0;
    const double n = static_cast<double>(t.n);
    double mi = 0.0;
    for (const auto& c : t.cells) {
        const double nij = static_cast<double>(c.count);
        mi += nij / n *
              (std::log(nij) + std::log(n) - std::log(static_cast<double>(t.rows[c.row])) -
               std::log(static_cast<double>(t.cols[c.col])));
    }
    return std::max(mi, 0.0);
}

/// Entropy (nats) of the cluster sizes `counts` of n samples.
inline double label_entropy(const std::vector<std::uint64_t>& counts, std::size_t n) {
    if (n == 0) return 0.0;
    double h = 0.0;
    const double nn = static_cast<double>(n);
    for (auto c : counts) {
        if (c == 0) continue;
        const double p = static_cast<double>(c) / nn;
        h -= p * std::log(p);
    }
    return h;
}

inline double normalized_mutual_information(const Contingency& t, NmiAverage average = NmiAverage::Arithmetic) {
    if (t.rows.size() == t.cols.size() && t.rows.size() <= 1) return 1.0;
    const double mi = mutual_information(t);
    if (mi == 0.0) return 0.0;
    const double ha = label_entropy(t.rows, t.n), hb = label_entropy(t.cols, t.n);
    double norm = 0.0;
    switch (average) {
    case NmiAverage::Arithmetic: norm = 0.5 * (ha + hb); break;
    case NmiAverage::Geometric: norm = std::sqrt(ha * hb); break;
    case NmiAverage::Min: norm = std::min(ha, hb); break;
    case NmiAverage::Max: norm = std::max(ha, hb); break;
    }
    return mi / std::max(norm, 1e-300);
}

/// NMI of two labelings (any integer labels). Errors: ShapeError for different lengths.
template <LabelRange A, LabelRange B>
double normalized_mutual_information(const A& truth, const B& predicted, NmiAverage average = NmiAverage::Arithmetic) {
    return normalized_mutual_information(contingency(truth, predicted, "normalized_mutual_information"), average);
}

} // namespace diffbio::metrics
