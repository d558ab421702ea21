#pragma once
// Reads in flight through the preprocessing operators, and the row scaling they share.
//
// ReadsView<S, Q> is a non-owning view of N reads padded to length L: seq [N×L×4] (one-hot or
// soft, scalar S), quality [N×L] (scalar Q), lengths [N] (positions ≥ lengths[i] are padding).
// Operators take a view and return owning vectors of the promoted scalar; ReadsView::of(batch)
// views a ReadBatch (float data).
//
// scale_rows(policy, x [M×C], w [M], C) = x[m, c]·w[m]: how a retention weight masks a base.
// For Var it records ONE fused node (x̄ += ȳ·w, w̄ += Σ_c ȳ·x).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

namespace detail {

[[noreturn]] inline void read_value_not_finite(const char* where, const char* what, std::size_t entry, std::size_t length,
                                               std::size_t channel, double v) {
    std::string msg = std::string(where) + ": " + what + " at read " + std::to_string(entry / length) + ", position " +
                      std::to_string(entry % length);
    if (channel < 4) msg += std::string(", channel ") + "ACGT"[channel];
    throw InvalidArgument(msg + " is not finite (" + diffbio::detail::format_value(v) + ")");
}

/// Checks the shapes of N reads padded to `length`: lengths [N] (each ≤ length), seq
/// [N × length × 4] and, when `with_quality`, quality [N × length] (ShapeError).
template <class S, class Q>
void check_read_shapes(const char* where, std::span<const S> seq, std::span<const Q> quality, bool with_quality,
                       std::span<const std::uint32_t> lengths, std::size_t n, std::size_t length) {
    check_size(lengths.size(), n, where, "lengths");
    check_size(seq.size(), n * length * 4, where, "reads (N x L x 4)");
    if (with_quality) check_size(quality.size(), n * length, where, "quality (N x L)");
    for (std::size_t i = 0; i < n; ++i) {
        if (lengths[i] > length) {
            throw ShapeError(std::string(where) + ": read " + std::to_string(i) + " has length " + std::to_string(lengths[i]) +
                             " > padded length " + std::to_string(length));
        }
    }
}

/// Every base and quality value finite, padding included (InvalidArgument naming the read,
/// position and channel of the first NaN or ±inf; one pass over the data).
template <class S, class Q>
void check_read_values(const char* where, std::span<const S> seq, std::span<const Q> quality, std::size_t length) {
    if (const std::size_t i = first_nonfinite(seq); i != seq.size()) {
        read_value_not_finite(where, "base value", i / 4, length, i % 4, primal(seq[i]));
    }
    if (const std::size_t i = first_nonfinite(quality); i != quality.size()) {
        read_value_not_finite(where, "quality", i, length, 4, primal(quality[i]));
    }
}

} // namespace detail

template <class S, class Q = S>
struct ReadsView {
    std::span<const S> seq;
    std::span<const Q> quality;
    std::span<const std::uint32_t> lengths;
    std::size_t n = 0;
    std::size_t length = 0;

    /// Shapes, lengths ≤ length, and every value finite (NaN and ±inf throw, naming the read).
    void validate(const char* where) const {
        validate_shapes(where);
        check_values(where);
    }
    /// The shapes and lengths alone (ShapeError).
    void validate_shapes(const char* where) const { detail::check_read_shapes(where, seq, quality, true, lengths, n, length); }
    /// Every base and quality value finite, padding included (InvalidArgument).
    void check_values(const char* where) const { detail::check_read_values(where, seq, quality, length); }
};

/// A view of a ReadBatch's float data.
inline ReadsView<float, float> view_of(const ReadBatch& b) {
    return {b.one_hot, b.quality, b.lengths, b.num_reads, b.length};
}

/// x[m, c]·w[m] for m < M = w.size(), c < C. O(M·C).
template <exec::HostPolicy P, class X, class W>
std::vector<promote_t<X, W>> scale_rows(const P& policy, std::span<const X> x, std::span<const W> w, std::size_t c) {
    using R = promote_t<X, W>;
    check_size(x.size(), w.size() * c, "scale_rows", "x (rows x channels)");
    const std::size_t m = w.size();
    std::vector<R> out(x.size());
    if constexpr (soft::detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const auto saved_x = soft::detail::saved_values(tape, x);
        const auto saved_w = soft::detail::saved_values(tape, w);
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(x), soft::detail::node_inputs(w)}, x.size(),
            [saved_x, saved_w, m, c](const ad::NodeGrad& g) {
                const auto xv = soft::detail::input_values<X>(g, 0, saved_x);
                const auto wv = soft::detail::input_values<W>(g, 1, saved_w);
                const auto gy = g.out_adjoint();
                const auto gx = g.in_adjoint(0);
                const auto gw = g.in_adjoint(1);
                for (std::size_t i = 0; i < m; ++i) {
                    double acc = 0.0;
                    for (std::size_t k = 0; k < c; ++k) {
                        if (!gx.empty()) gx[i * c + k] += gy[i * c + k] * wv[i];
                        acc += gy[i * c + k] * xv[i * c + k];
                    }
                    if (!gw.empty()) gw[i] += acc;
                }
            });
        const auto xv = soft::detail::forward_values(tape, x, saved_x);
        const auto wv = soft::detail::forward_values(tape, w, saved_w);
        auto yv = tape.values_of(y);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t k = 0; k < c; ++k) yv[i * c + k] = xv[i * c + k] * wv[i];
        }
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else {
        const auto mm = static_cast<std::ptrdiff_t>(m);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        if constexpr (std::is_floating_point_v<R> && std::is_same_v<P, exec::CpuParallel>) {
            DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
            for (std::ptrdiff_t i = 0; i < mm; ++i) {
                for (std::size_t k = 0; k < c; ++k) {
                    const auto j = static_cast<std::size_t>(i) * c + k;
                    out[j] = x[j] * w[static_cast<std::size_t>(i)];
                }
            }
        } else {
            for (std::size_t i = 0; i < m; ++i) {
                for (std::size_t k = 0; k < c; ++k) out[i * c + k] = x[i * c + k] * w[i];
            }
        }
    }
    return out;
}

} // namespace diffbio::ops
