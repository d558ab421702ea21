#pragma once
// Smooth maximum and minimum: the temperature-controlled replacement of max/min.
//
//   smooth_max(x, τ) = τ·log Σ_i e^{x_i/τ}  computed as m + τ·log Σ_i e^{(x_i − m)/τ}, m = max x
//   smooth_min(x, τ) = −smooth_max(−x, τ)
//
// max(x) ≤ smooth_max ≤ max(x) + τ·log n, so it recovers max as τ → 0.
// Gradient: ∂/∂x_i = p_i = softmax(x/τ)_i;  ∂/∂τ = (smooth_max − Σ_i p_i x_i)/τ.
// O(n). The shift by the (passive) max keeps every exponent ≤ 0: no overflow for any finite x
// and τ > 0. For Var the span forms record ONE fused node. Empty input: InvalidArgument.

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::soft {

namespace detail {
/// Smooth max of doubles and the softmax weights p (written to p when non-null).
inline double smooth_max_kernel(std::span<const double> x, double tau, double* p) {
    double m = x[0];
    for (const double v : x) m = v > m ? v : m;
    const double inv = 1.0 / tau;
    double z = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double e = std::exp((x[i] - m) * inv);
        if (p != nullptr) p[i] = e;
        z += e;
    }
    if (p != nullptr) {
        for (std::size_t i = 0; i < x.size(); ++i) p[i] /= z;
    }
    return m + tau * std::log(z);
}
} // namespace detail

/// τ·log Σ e^{x_i/τ}. See the header comment for gradient and numerics.
template <class X, class Tau>
promote_t<X, Tau> smooth_max(std::span<const X> x, const Tau& tau) {
    using R = promote_t<X, Tau>;
    check_temperature(tau, "smooth_max");
    if (x.empty()) throw InvalidArgument("smooth_max: input is empty");
    if constexpr (detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = detail::saved_values(tape, x);
        const double sv = detail::primal_scalar(tau);
        const double y[1] = {detail::smooth_max_kernel(detail::forward_values(tape, x, saved), sv, nullptr)};
        auto out = tape.record_node({detail::node_inputs(x), detail::node_input(tau)}, y,
                                    [saved, sv](const ad::NodeGrad& g) {
                                        const auto xv = detail::input_values<X>(g, 0, saved);
                                        const double gy = g.out_adjoint()[0];
                                        const double ym = g.out_value()[0];
                                        // p_i = e^{(x_i − y)/τ}: the softmax weights, from the output.
                                        const auto gx = g.in_adjoint(0);
                                        const double inv = 1.0 / sv;
                                        double px = 0.0;
                                        for (std::size_t i = 0; i < xv.size(); ++i) {
                                            const double p = std::exp((xv[i] - ym) * inv);
                                            if (!gx.empty()) gx[i] += gy * p;
                                            px += p * (xv[i] - ym);
                                        }
                                        // ∂y/∂τ = (y − Σ p_i x_i)/τ = −Σ p_i (x_i − y)/τ
                                        if (!g.in_adjoint(1).empty()) g.in_adjoint(1)[0] -= gy * px * inv;
                                    });
        return out[0];
    } else {
        using std::exp;
        using std::log;
        double m = primal(x[0]);
        for (const X& v : x) m = primal(v) > m ? primal(v) : m;
        const R mt = passive<R>(m);
        R z = passive<R>(0.0);
        for (const X& v : x) z = z + exp((v - mt) / tau);
        return mt + tau * log(z);
    }
}

template <class X, class Tau>
promote_t<X, Tau> smooth_max(const std::vector<X>& x, const Tau& tau) {
    return smooth_max(std::span<const X>(x), tau);
}

/// −τ·log Σ e^{−x_i/τ} → min(x) as τ → 0; min(x) − τ·log n ≤ smooth_min ≤ min(x).
template <class X, class Tau>
promote_t<X, Tau> smooth_min(std::span<const X> x, const Tau& tau) {
    using R = promote_t<X, Tau>;
    check_temperature(tau, "smooth_min");
    if (x.empty()) throw InvalidArgument("smooth_min: input is empty");
    std::vector<R> neg;
    neg.reserve(x.size());
    for (const X& v : x) neg.push_back(-v);
    return -smooth_max(std::span<const R>(neg), tau);
}

template <class X, class Tau>
promote_t<X, Tau> smooth_min(const std::vector<X>& x, const Tau& tau) {
    return smooth_min(std::span<const X>(x), tau);
}

/// Two-argument smooth max: τ·log(e^{a/τ} + e^{b/τ}).
template <class A, class B, class Tau>
promote_t<A, B, Tau> smooth_max(const A& a, const B& b, const Tau& tau) {
    check_temperature(tau, "smooth_max");
    using R = promote_t<A, B, Tau>;
    using diffbio::logaddexp;
    return tau * logaddexp(R(a / tau), R(b / tau));
}

/// Two-argument smooth min: −τ·log(e^{−a/τ} + e^{−b/τ}).
template <class A, class B, class Tau>
promote_t<A, B, Tau> smooth_min(const A& a, const B& b, const Tau& tau) {
    check_temperature(tau, "smooth_min");
    using R = promote_t<A, B, Tau>;
    using diffbio::logaddexp;
    return -(tau * logaddexp(R(-a / tau), R(-b / tau)));
}

} // namespace diffbio::soft
