#pragma once
// Smooth maximum and minimum: the temperature-controlled replacement of max/min.
//
//   smooth_max(x, τ) = τ·log Σ_i e^{x_i/τ}  computed as m + τ·log Σ_i e^{(x_i − m)/τ}, m = max x
//   smooth_min(x, τ) = −smooth_max(−x, τ)
//
// max(x) ≤ smooth_max ≤ max(x) + τ·log n, so it recovers max as τ → 0.
// Gradient: ∂/∂x_i = p_i = softmax(x/τ)_i;  ∂/∂τ = (smooth_max − Σ_i p_i x_i)/τ.
// O(n). The shift by the (passive) max keeps every exponent ≤ 0: no overflow for any finite x
// and τ > 0 on the way; only a result beyond its type's range (τ·log n past float's 3.4e38) throws
// InvalidArgument, as does empty input. For Var the span forms record ONE fused node.

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
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

namespace detail {
/// smooth_max of a non-empty span at a checked τ (a loop that checked them once calls this per
/// step); `where` names the public function (or operator) in messages, `what` the result and
/// `remedy` what to change when it leaves its type's range (check_result_finite).
template <class X, class Tau>
promote_t<X, Tau> smooth_max_checked_tau(std::span<const X> x, const Tau& tau, const char* where,
                                         const char* what = "the result",
                                         const char* remedy = "lower the temperature") {
    using R = promote_t<X, Tau>;
    if constexpr (detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = detail::saved_values(tape, x);
        const double sv = detail::primal_scalar(tau);
        const double y[1] = {detail::smooth_max_kernel(detail::forward_values(tape, x, saved), sv, nullptr)};
        check_result_finite(y[0], sv, where, what, remedy);
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
        const R y = mt + tau * log(z);
        check_result_finite(y, primal(tau), where, what, remedy);
        return y;
    }
}

/// smooth_max of a span with its checks: τ (check_temperature) and a non-empty x.
template <class X, class Tau>
promote_t<X, Tau> smooth_max_span(std::span<const X> x, const Tau& tau, const char* where) {
    check_temperature(tau, where);
    if (x.empty()) throw InvalidArgument(std::string(where) + ": input is empty");
    return smooth_max_checked_tau(x, tau, where);
}
} // namespace detail

/// τ·log Σ e^{x_i/τ}. See the header comment for gradient and numerics.
template <class X, class Tau>
promote_t<X, Tau> smooth_max(std::span<const X> x, const Tau& tau) {
    return detail::smooth_max_span(x, tau, "smooth_max");
}

template <class X, class Tau>
promote_t<X, Tau> smooth_max(const std::vector<X>& x, const Tau& tau) {
    return smooth_max(std::span<const X>(x), tau);
}

/// −τ·log Σ e^{−x_i/τ} → min(x) as τ → 0; min(x) − τ·log n ≤ smooth_min ≤ min(x).
template <class X, class Tau>
promote_t<X, Tau> smooth_min(std::span<const X> x, const Tau& tau) {
    using R = promote_t<X, Tau>;
    std::vector<R> neg;
    neg.reserve(x.size());
    for (const X& v : x) neg.push_back(-v);
    return -detail::smooth_max_span(std::span<const R>(neg), tau, "smooth_min");
}

template <class X, class Tau>
promote_t<X, Tau> smooth_min(const std::vector<X>& x, const Tau& tau) {
    return smooth_min(std::span<const X>(x), tau);
}

namespace detail {
/// max(a, b) + τ·log(1 + e^{−|a − b|/τ}), the larger picked on the primal: nothing is divided by
/// τ but the gap |a − b|, whose exponent is ≤ 0, so a/τ cannot overflow at a small τ (in float,
/// 100/1e-37 would be inf). Where e^{−|a − b|/τ} is below the smallest double (gap/τ < −745.2) the
/// result is the max, derivative 1 to it, as in exact arithmetic to every bit; the quotient, whose
/// value may overflow there (Dual<float>: −inf, and its tangent 0·∞), is not formed.
template <class R>
R smooth_max_pair(const R& a, const R& b, const R& tau) {
    using std::exp;
    using std::log1p;
    const bool a_top = primal(a) >= primal(b);
    const R& top = a_top ? a : b;
    const R gap = a_top ? b - a : a - b; // ≤ 0
    if (primal(gap) / primal(tau) < -745.2) return top;
    return top + tau * log1p(exp(gap / tau));
}
} // namespace detail

/// Two-argument smooth max: τ·log(e^{a/τ} + e^{b/τ}). InvalidArgument where the result exceeds
/// its type's range (a, b or τ near it).
template <class A, class B, class Tau>
promote_t<A, B, Tau> smooth_max(const A& a, const B& b, const Tau& tau) {
    check_temperature(tau, "smooth_max");
    using R = promote_t<A, B, Tau>;
    const R y = detail::smooth_max_pair(R(a), R(b), R(tau));
    check_result_finite(y, primal(tau), "smooth_max", "the result");
    return y;
}

/// Two-argument smooth min: −τ·log(e^{−a/τ} + e^{−b/τ}).
template <class A, class B, class Tau>
promote_t<A, B, Tau> smooth_min(const A& a, const B& b, const Tau& tau) {
    check_temperature(tau, "smooth_min");
    using R = promote_t<A, B, Tau>;
    const R y = -detail::smooth_max_pair(R(-a), R(-b), R(tau));
    check_result_finite(y, primal(tau), "smooth_min", "the result");
    return y;
}

} // namespace diffbio::soft
