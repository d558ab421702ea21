#pragma once
// Internal helpers for the fused tape nodes of the soft primitives: an argument that may be a
// plain number or a Var, seen as (double values, Vars to record as node inputs).
//
// Values flow in three ways:
//   saved_values    what a node's backward must keep: a copy (in the tape's arena) of plain-number
//                   inputs, since the backward may run after the caller's buffers are gone; nothing
//                   for Vars, whose values the backward reads from NodeGrad::in_value
//   saved_plain     the same copy in the input's own type (float data: half the bytes, exact),
//                   for backwards that read it element by element (input_at) rather than hand
//                   a double span to a kernel
//   forward_values  the values for the forward kernel: the saved copy, or a view into the tape for
//                   a contiguous block of Vars (valid until the next record), or an arena copy
//   input_values    inside the backward: NodeGrad::in_value(k) for Vars, else the saved copy

#include <algorithm>
#include <cstddef>
#include <span>
#include <type_traits>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>

namespace diffbio::soft::detail {

template <class T>
inline constexpr bool is_var_v = std::is_same_v<std::remove_cvref_t<T>, ad::Var>;

template <class X>
std::span<const double> saved_values(ad::Tape& tape, std::span<const X> x) {
    if constexpr (is_var_v<X>) {
        (void)tape;
        return {};
    } else {
        std::span<double> v = tape.allocate<double>(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) v[i] = static_cast<double>(x[i]);
        return v;
    }
}

/// The type saved_plain keeps: the plain input's own, or double (unused) for Vars.
template <class X>
using saved_t = std::conditional_t<is_var_v<X>, double, std::remove_cv_t<X>>;

template <class X>
std::span<const saved_t<X>> saved_plain(ad::Tape& tape, std::span<const X> x) {
    if constexpr (is_var_v<X>) {
        (void)tape;
        return {};
    } else {
        const std::span<saved_t<X>> v = tape.allocate<saved_t<X>>(x.size());
        std::copy(x.begin(), x.end(), v.begin());
        return v;
    }
}

/// Inside the backward: entry i of input k as a double, from NodeGrad::in_value for Vars, else
/// from saved_plain's copy.
template <class X>
double input_at(const ad::NodeGrad& g, std::size_t k, std::span<const saved_t<X>> saved, std::size_t i) {
    if constexpr (is_var_v<X>) {
        (void)saved;
        return g.in_value(k)[i];
    } else {
        return static_cast<double>(saved[i]);
    }
}

template <class X>
std::span<const double> forward_values(ad::Tape& tape, std::span<const X> x, std::span<const double> saved) {
    if constexpr (is_var_v<X>) {
        (void)saved;
        if (const auto view = tape.contiguous_values(x); view.size() == x.size()) return view;
        std::span<double> v = tape.allocate<double>(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) v[i] = tape.value(x[i]);
        return v;
    } else {
        (void)tape;
        return saved;
    }
}

template <class X>
std::span<const double> input_values(const ad::NodeGrad& g, std::size_t k, std::span<const double> saved) {
    if constexpr (is_var_v<X>) {
        return g.in_value(k);
    } else {
        return saved;
    }
}

/// The node inputs of a block: the Vars themselves, or nothing for plain numbers.
template <class X>
std::span<const ad::Var> node_inputs(std::span<const X> x) {
    if constexpr (is_var_v<X>) {
        return x;
    } else {
        return {};
    }
}

template <class X>
double primal_scalar(const X& x) {
    if constexpr (is_var_v<X>) {
        return x.value();
    } else {
        return static_cast<double>(x);
    }
}

template <class X>
std::span<const ad::Var> node_input(const X& x) {
    if constexpr (is_var_v<X>) {
        return {&x, 1};
    } else {
        return {};
    }
}

} // namespace diffbio::soft::detail
