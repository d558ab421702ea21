#pragma once
// Weighted segment sums: the differentiable replacement of integer counting (a pileup column
// counts bases by reference position; here each base contributes its weight).
//
//   out[s, c] = Σ_{m : ids[m] = s} w[m]·values[m, c]      values: M × C row-major, ids: M, out: S × C
//
// ids[m] < 0 marks an entry to skip (padding); ids[m] ≥ S is an error (ShapeError). Empty
// weights mean w = 1. out is overwritten. With one-hot values and weights in {0, 1} the result is
// exactly the integer count table (the τ → 0 limit of soft weights).
// Gradient (a gather): values̄[m, c] = w[m]·ō[ids[m], c];  w̄[m] = Σ_c values[m, c]·ō[ids[m], c].
// O(M·C) time. Backends: Cpu; CpuParallel (per-thread partial tables of S × C, reduced in thread
// order, so results are deterministic for a fixed thread count); Cuda (atomics) with
// <diffbio/soft/cuda/segment_sum.cuh>. For Var the call records ONE fused node whose backward is
// the backend's gather.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::soft {

namespace backend {

/// Kernels of segment_sum on float/double, one specialisation per policy. Pointers hold memory of
/// the policy's kind; weights, values_grad and weights_grad may be null. Gradients accumulate.
template <class Policy>
struct SegmentSum {
    static_assert(exec::dependent_false<Policy>,
                  "segment_sum: no backend for this policy. For exec::Cuda, "
                  "#include <diffbio/soft/cuda/segment_sum.cuh> and compile with nvcc.");
};

namespace detail {
template <class T>
void segment_sum_range(const T* values, std::size_t lo, std::size_t hi, std::size_t channels, const T* weights,
                       const std::int32_t* ids, T* out) {
    for (std::size_t m = lo; m < hi; ++m) {
        const std::int32_t s = ids[m];
        if (s < 0) continue;
        const T w = weights != nullptr ? weights[m] : T(1);
        const T* v = values + m * channels;
        T* o = out + static_cast<std::size_t>(s) * channels;
        for (std::size_t c = 0; c < channels; ++c) o[c] += w * v[c];
    }
}
template <class T>
DIFFBIO_ONE_COPY void segment_sum_backward_range(const T* values, std::size_t lo, std::size_t hi,
                                                 std::size_t channels, const T* weights, const std::int32_t* ids,
                                                 const T* out_grad, T* values_grad, T* weights_grad) {
    for (std::size_t m = lo; m < hi; ++m) {
        const std::int32_t s = ids[m];
        if (s < 0) continue;
        const T* g = out_grad + static_cast<std::size_t>(s) * channels;
        if (values_grad != nullptr) {
            const T w = weights != nullptr ? weights[m] : T(1);
            T* vg = values_grad + m * channels;
            for (std::size_t c = 0; c < channels; ++c) vg[c] += w * g[c];
        }
        if (weights_grad != nullptr) {
            const T* v = values + m * channels;
            T acc = 0;
            for (std::size_t c = 0; c < channels; ++c) acc += v[c] * g[c];
            weights_grad[m] += acc;
        }
    }
}
} // namespace detail

template <>
struct SegmentSum<exec::Cpu> {
    template <class T>
    static void forward(const exec::Cpu&, const T* values, std::size_t m, std::size_t channels, const T* weights,
                        const std::int32_t* ids, std::size_t segments, T* out) {
        for (std::size_t i = 0; i < segments * channels; ++i) out[i] = T(0);
        detail::segment_sum_range(values, 0, m, channels, weights, ids, out);
    }
    template <class T>
    static void backward(const exec::Cpu&, const T* values, std::size_t m, std::size_t channels, const T* weights,
                         const std::int32_t* ids, std::size_t, const T* out_grad, T* values_grad, T* weights_grad) {
        detail::segment_sum_backward_range(values, 0, m, channels, weights, ids, out_grad, values_grad, weights_grad);
    }
};

template <>
struct SegmentSum<exec::CpuParallel> {
    template <class T>
    static void forward(const exec::CpuParallel& p, const T* values, std::size_t m, std::size_t channels,
                        const T* weights, const std::int32_t* ids, std::size_t segments, T* out) {
        const int threads = exec::thread_count(p);
        const std::size_t table = segments * channels;
        if (threads <= 1) {
            SegmentSum<exec::Cpu>::forward(exec::Cpu{}, values, m, channels, weights, ids, segments, out);
            return;
        }
        // Thread 0 accumulates into out itself, the others into private tables added in order.
        std::vector<T> partial(static_cast<std::size_t>(threads - 1) * table, T(0));
        for (std::size_t i = 0; i < table; ++i) out[i] = T(0);
        DIFFBIO_OMP(parallel num_threads(threads))
        {
            const exec::Range r = exec::this_thread_range(m);
            const std::size_t tid = exec::this_thread_index();
            T* dst = tid == 0 ? out : partial.data() + (tid - 1) * table;
            detail::segment_sum_range(values, r.lo, r.hi, channels, weights, ids, dst);
        }
        const auto tt = static_cast<std::ptrdiff_t>(table);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t i = 0; i < tt; ++i) {
            T acc = out[i];
            for (int k = 0; k + 1 < threads; ++k) acc += partial[static_cast<std::size_t>(k) * table + static_cast<std::size_t>(i)];
            out[i] = acc;
        }
    }
    template <class T>
    static void backward(const exec::CpuParallel& p, const T* values, std::size_t m, std::size_t channels,
                         const T* weights, const std::int32_t* ids, std::size_t, const T* out_grad, T* values_grad,
                         T* weights_grad) {
        const auto mm = static_cast<std::ptrdiff_t>(m);
        [[maybe_unused]] const int threads = exec::thread_count(p);
        constexpr std::ptrdiff_t block = 4096;
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t b = 0; b < mm; b += block) {
            const std::size_t lo = static_cast<std::size_t>(b);
            const std::size_t hi = static_cast<std::size_t>(b + block < mm ? b + block : mm);
            detail::segment_sum_backward_range(values, lo, hi, channels, weights, ids, out_grad, values_grad,
                                               weights_grad);
        }
    }
};

} // namespace backend

namespace detail {
inline void check_segment_ids(std::span<const std::int32_t> ids, std::size_t segments, const char* where) {
    for (std::size_t m = 0; m < ids.size(); ++m) {
        if (ids[m] >= 0 && static_cast<std::size_t>(ids[m]) >= segments) {
            throw ShapeError(std::string(where) + ": ids[" + std::to_string(m) + "] = " + std::to_string(ids[m]) +
                             " is not below the number of segments (" + std::to_string(segments) + ")");
        }
    }
}
inline void check_segment_shapes(std::size_t values, std::size_t channels, std::size_t weights, std::size_t ids,
                                 std::size_t segments, std::size_t out, const char* where) {
    if (channels == 0) throw InvalidArgument(std::string(where) + ": channels must be > 0");
    if (values % channels != 0) {
        throw ShapeError(std::string(where) + ": values has size " + std::to_string(values) +
                         ", not a multiple of channels = " + std::to_string(channels));
    }
    check_size(ids, values / channels, where, "ids");
    if (weights != 0) check_size(weights, ids, where, "weights");
    check_size(out, segments * channels, where, "output (segments x channels)");
}
} // namespace detail

/// out[s, c] = Σ_{ids[m] = s} w[m]·values[m, c]. See the header comment. On exec::Cuda the ids
/// are validated on the device.
template <exec::Policy P, class V, class W, class R>
void segment_sum(const P& policy, std::span<const V> values, std::size_t channels, std::span<const W> weights,
                 std::span<const std::int32_t> ids, std::size_t segments, std::span<R> out) {
    static_assert(std::is_same_v<R, promote_t<V, W>>, "segment_sum: output scalar must be the promoted type of values and weights");
    detail::check_segment_shapes(values.size(), channels, weights.size(), ids.size(), segments, out.size(), "segment_sum");
    const std::size_t m = ids.size();
    if constexpr (std::is_floating_point_v<R>) {
        static_assert(std::is_same_v<V, R> && std::is_same_v<W, R>, "segment_sum: values and weights must share the output's floating type");
        if constexpr (exec::HostPolicy<P>) detail::check_segment_ids(ids, segments, "segment_sum");
        backend::SegmentSum<P>::forward(policy, values.data(), m, channels, weights.empty() ? nullptr : weights.data(),
                                        ids.data(), segments, out.data());
    } else if constexpr (detail::is_var_v<R>) {
        static_assert(exec::HostPolicy<P>, "segment_sum: Var lives on the host tape; use exec::Cpu or CpuParallel");
        detail::check_segment_ids(ids, segments, "segment_sum");
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved_v = detail::saved_values(tape, values);
        const std::span<const double> saved_w = detail::saved_values(tape, weights);
        std::span<std::int32_t> id_copy = tape.allocate<std::int32_t>(m);
        for (std::size_t i = 0; i < m; ++i) id_copy[i] = ids[i];
        const bool weighted = !weights.empty();
        auto y = tape.record_node_uninitialised(
            {detail::node_inputs(values), detail::node_inputs(weights)}, segments * channels,
            [policy, saved_v, saved_w, weighted, id_copy, channels, segments](const ad::NodeGrad& g) {
                const auto vv = detail::input_values<V>(g, 0, saved_v);
                const auto wv = detail::input_values<W>(g, 1, saved_w);
                const auto gv = g.in_adjoint(0);
                const auto gw = g.in_adjoint(1);
                backend::SegmentSum<P>::backward(policy, vv.data(), id_copy.size(), channels,
                                                 weighted ? wv.data() : nullptr, id_copy.data(), segments,
                                                 g.out_adjoint().data(), gv.empty() ? nullptr : gv.data(),
                                                 gw.empty() ? nullptr : gw.data());
            });
        const auto vv = detail::forward_values(tape, values, saved_v);
        const auto wv = detail::forward_values(tape, weights, saved_w);
        backend::SegmentSum<P>::forward(policy, vv.data(), m, channels, weighted ? wv.data() : nullptr, id_copy.data(),
                                        segments, tape.values_of(y).data());
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else {
        static_assert(exec::HostPolicy<P>, "segment_sum: AD scalars run on the host; use exec::Cpu or CpuParallel");
        detail::check_segment_ids(ids, segments, "segment_sum");
        for (auto& o : out) o = passive<R>(0.0);
        for (std::size_t i = 0; i < m; ++i) {
            if (ids[i] < 0) continue;
            const std::size_t s = static_cast<std::size_t>(ids[i]);
            for (std::size_t c = 0; c < channels; ++c) {
                const auto& v = values[i * channels + c];
                out[s * channels + c] = out[s * channels + c] + (weights.empty() ? R(v) : R(weights[i] * v));
            }
        }
    }
}

/// As above, returning a new S × C vector (host policies).
template <exec::HostPolicy P, class V, class W>
std::vector<promote_t<V, W>> segment_sum(const P& policy, std::span<const V> values, std::size_t channels,
                                         std::span<const W> weights, std::span<const std::int32_t> ids,
                                         std::size_t segments) {
    std::vector<promote_t<V, W>> out(segments * channels);
    segment_sum(policy, values, channels, weights, ids, segments, std::span<promote_t<V, W>>(out));
    return out;
}

/// Backward of the float/double form for any policy: accumulates values̄ and w̄ (either may be
/// empty to skip it) from ō = out_grad.
template <exec::Policy P, class T>
    requires std::is_floating_point_v<T>
void segment_sum_backward(const P& policy, std::span<const T> values, std::size_t channels, std::span<const T> weights,
                          std::span<const std::int32_t> ids, std::size_t segments, std::span<const T> out_grad,
                          std::span<T> values_grad, std::span<T> weights_grad) {
    detail::check_segment_shapes(values.size(), channels, weights.size(), ids.size(), segments, out_grad.size(),
                                 "segment_sum_backward");
    if (!values_grad.empty()) check_size(values_grad.size(), values.size(), "segment_sum_backward", "values gradient");
    if (!weights_grad.empty()) check_size(weights_grad.size(), ids.size(), "segment_sum_backward", "weights gradient");
    if constexpr (exec::HostPolicy<P>) detail::check_segment_ids(ids, segments, "segment_sum_backward");
    backend::SegmentSum<P>::backward(policy, values.data(), ids.size(), channels,
                                     weights.empty() ? nullptr : weights.data(), ids.data(), segments, out_grad.data(),
                                     values_grad.empty() ? nullptr : values_grad.data(),
                                     weights_grad.empty() ? nullptr : weights_grad.data());
}

} // namespace diffbio::soft
