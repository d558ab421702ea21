#pragma once
// Softmax and soft argmax: the smooth replacement of a one-hot argmax.
//
//   softmax(x, τ)_i = e^{(x_i − m)/τ} / Σ_j e^{(x_j − m)/τ},  m = max x   → one-hot argmax as τ → 0
//   soft_argmax(x, τ) = { index: Σ_i i·p_i, probabilities: p }             → argmax index as τ → 0
//
// Gradient (vector-Jacobian product), with g_i = p_i(ȳ_i − Σ_j ȳ_j p_j):
//   x̄_i = g_i/τ,   τ̄ = −Σ_i g_i (x_i − m)/τ²   (Σ g_i = 0, so any shift m gives the same value).
// O(n). Every exponent is ≤ 0: no overflow. Ties at τ → 0 split the mass evenly among the tied
// maxima (exactly like the limit). For Var the span forms record ONE fused node.

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::soft {

namespace detail {
inline void softmax_kernel(std::span<const double> x, double tau, double* p) {
    double m = x[0];
    for (const double v : x) m = v > m ? v : m;
    const double inv = 1.0 / tau;
    double z = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        p[i] = std::exp((x[i] - m) * inv);
        z += p[i];
    }
    const double iz = 1.0 / z;
    for (std::size_t i = 0; i < x.size(); ++i) p[i] *= iz;
}
} // namespace detail

namespace detail {
/// softmax(x/τ) into out for a non-empty x, an out of its size and a checked τ (a loop that
/// checked them once calls this per step).
template <class X, class Tau, class R>
void softmax_checked(std::span<const X> x, const Tau& tau, std::span<R> out) {
    if constexpr (detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = detail::saved_values(tape, x);
        const double sv = detail::primal_scalar(tau);
        auto y = tape.record_node_uninitialised(
            {detail::node_inputs(x), detail::node_input(tau)}, x.size(), [saved, sv](const ad::NodeGrad& g) {
                const auto xv = detail::input_values<X>(g, 0, saved);
                const auto p = g.out_value();
                const auto gy = g.out_adjoint();
                double dot = 0.0;
                double m = xv[0];
                for (std::size_t i = 0; i < p.size(); ++i) {
                    dot += gy[i] * p[i];
                    m = xv[i] > m ? xv[i] : m;
                }
                const auto gx = g.in_adjoint(0);
                const double inv = 1.0 / sv;
                double gtau = 0.0;
                for (std::size_t i = 0; i < p.size(); ++i) {
                    const double gi = p[i] * (gy[i] - dot);
                    if (!gx.empty()) gx[i] += gi * inv;
                    gtau -= gi * (xv[i] - m);
                }
                if (!g.in_adjoint(1).empty()) g.in_adjoint(1)[0] += gtau * inv * inv;
            });
        detail::softmax_kernel(detail::forward_values(tape, x, saved), sv, tape.values_of(y).data());
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else {
        using std::exp;
        double m = primal(x[0]);
        for (const X& v : x) m = primal(v) > m ? primal(v) : m;
        const R mt = passive<R>(m);
        R z = passive<R>(0.0);
        for (std::size_t i = 0; i < x.size(); ++i) {
            out[i] = exp((x[i] - mt) / tau);
            z = z + out[i];
        }
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = out[i] / z;
    }
}
} // namespace detail

/// softmax(x/τ) into out (same size as x).
template <class X, class Tau, class R>
void softmax(std::span<const X> x, const Tau& tau, std::span<R> out) {
    static_assert(std::is_same_v<R, promote_t<X, Tau>>, "softmax: output scalar must be the promoted type of x and tau");
    check_temperature(tau, "softmax");
    if (x.empty()) throw InvalidArgument("softmax: input is empty");
    check_size(out.size(), x.size(), "softmax", "output");
    detail::softmax_checked(x, tau, out);
}

/// softmax(x/τ) as a new vector.
template <class X, class Tau>
std::vector<promote_t<X, Tau>> softmax(std::span<const X> x, const Tau& tau) {
    std::vector<promote_t<X, Tau>> out(x.size());
    softmax(x, tau, std::span<promote_t<X, Tau>>(out));
    return out;
}
template <class X, class Tau>
std::vector<promote_t<X, Tau>> softmax(const std::vector<X>& x, const Tau& tau) {
    return softmax(std::span<const X>(x), tau);
}

template <class T>
struct SoftArgmax {
    T index;                      ///< expected index Σ_i i·p_i (0-based)
    std::vector<T> probabilities; ///< p = softmax(x/τ)
};

/// Soft argmax: the softmax probabilities and the expected index. O(n).
template <class X, class Tau>
SoftArgmax<promote_t<X, Tau>> soft_argmax(std::span<const X> x, const Tau& tau) {
    using R = promote_t<X, Tau>;
    std::vector<R> p = softmax(x, tau);
    R index = passive<R>(0.0);
    if constexpr (detail::is_var_v<R>) {
        std::vector<double> w(p.size());
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<double>(i);
        double v = 0.0;
        for (std::size_t i = 0; i < w.size(); ++i) v += w[i] * p[i].value();
        index = ad::Tape::active().push_nary(v, p, w);
    } else {
        for (std::size_t i = 1; i < p.size(); ++i) index = index + static_cast<double>(i) * p[i];
    }
    return {index, std::move(p)};
}
template <class X, class Tau>
SoftArgmax<promote_t<X, Tau>> soft_argmax(const std::vector<X>& x, const Tau& tau) {
    return soft_argmax(std::span<const X>(x), tau);
}

} // namespace diffbio::soft
