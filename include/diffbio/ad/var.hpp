#pragma once
// Arithmetic and math for Var (reverse mode). Every function records one variable on the
// calling thread's active tape with its partial derivatives computed now, at forward time:
// binary ops store 2 operands, unary ops 1, mixed Var/double ops 1. Comparisons compare values
// and record nothing.

#include <cmath>
#include <limits>

#include <diffbio/ad/tape.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>

namespace diffbio::ad {

namespace detail {
inline double val(const Tape& t, Var v) {
    if (v.index >= t.num_vars()) [[unlikely]] return t.value(v); // throws a named AdError
    return t.value_unchecked(v);
}
/// Record f(a) with value fv and derivative dfv.
inline Var unary(Var a, double fv, double dfv) { return Tape::active().push_unary(fv, a, dfv); }
} // namespace detail

// ---- arithmetic ---------------------------------------------------------------------------
inline Var operator+(Var a, Var b) {
    Tape& t = Tape::active();
    return t.push_binary(detail::val(t, a) + detail::val(t, b), a, 1.0, b, 1.0);
}
inline Var operator-(Var a, Var b) {
    Tape& t = Tape::active();
    return t.push_binary(detail::val(t, a) - detail::val(t, b), a, 1.0, b, -1.0);
}
inline Var operator*(Var a, Var b) {
    Tape& t = Tape::active();
    const double va = detail::val(t, a);
    const double vb = detail::val(t, b);
    return t.push_binary(va * vb, a, vb, b, va);
}
inline Var operator/(Var a, Var b) {
    Tape& t = Tape::active();
    const double vb = detail::val(t, b);
    const double q = detail::val(t, a) / vb;
    return t.push_binary(q, a, 1.0 / vb, b, -q / vb);
}
inline Var operator+(Var a, double b) {
    Tape& t = Tape::active();
    return t.push_unary(detail::val(t, a) + b, a, 1.0);
}
inline Var operator+(double a, Var b) { return b + a; }
inline Var operator-(Var a, double b) {
    Tape& t = Tape::active();
    return t.push_unary(detail::val(t, a) - b, a, 1.0);
}
inline Var operator-(double a, Var b) {
    Tape& t = Tape::active();
    return t.push_unary(a - detail::val(t, b), b, -1.0);
}
inline Var operator*(Var a, double b) {
    Tape& t = Tape::active();
    return t.push_unary(detail::val(t, a) * b, a, b);
}
inline Var operator*(double a, Var b) { return b * a; }
inline Var operator/(Var a, double b) {
    Tape& t = Tape::active();
    return t.push_unary(detail::val(t, a) / b, a, 1.0 / b);
}
inline Var operator/(double a, Var b) {
    Tape& t = Tape::active();
    const double vb = detail::val(t, b);
    const double q = a / vb;
    return t.push_unary(q, b, -q / vb);
}
inline Var operator-(Var a) {
    Tape& t = Tape::active();
    return t.push_unary(-detail::val(t, a), a, -1.0);
}
inline Var operator+(Var a) { return a; }

inline Var& operator+=(Var& a, Var b) { return a = a + b; }
inline Var& operator-=(Var& a, Var b) { return a = a - b; }
inline Var& operator*=(Var& a, Var b) { return a = a * b; }
inline Var& operator/=(Var& a, Var b) { return a = a / b; }
inline Var& operator+=(Var& a, double b) { return a = a + b; }
inline Var& operator-=(Var& a, double b) { return a = a - b; }
inline Var& operator*=(Var& a, double b) { return a = a * b; }
inline Var& operator/=(Var& a, double b) { return a = a / b; }

// ---- comparisons (values only) --------------------------------------------------------------
#define DIFFBIO_VAR_COMPARISON(op)                                                               \
    inline bool operator op(Var a, Var b) { return a.value() op b.value(); }                     \
    inline bool operator op(Var a, double b) { return a.value() op b; }                          \
    inline bool operator op(double a, Var b) { return a op b.value(); }
DIFFBIO_VAR_COMPARISON(==)
DIFFBIO_VAR_COMPARISON(!=)
DIFFBIO_VAR_COMPARISON(<)
DIFFBIO_VAR_COMPARISON(<=)
DIFFBIO_VAR_COMPARISON(>)
DIFFBIO_VAR_COMPARISON(>=)
#undef DIFFBIO_VAR_COMPARISON

// ---- math ---------------------------------------------------------------------------------
/// e^x; d = e^x.
inline Var exp(Var x) {
    const double e = std::exp(x.value());
    return detail::unary(x, e, e);
}
/// log x; d = 1/x.
inline Var log(Var x) {
    const double v = x.value();
    return detail::unary(x, std::log(v), 1.0 / v);
}
/// log(1 + x); d = 1/(1 + x).
inline Var log1p(Var x) {
    const double v = x.value();
    return detail::unary(x, std::log1p(v), 1.0 / (1.0 + v));
}
/// e^x − 1; d = e^x.
inline Var expm1(Var x) {
    const double v = x.value();
    return detail::unary(x, std::expm1(v), std::exp(v));
}
/// √x; d = 1/(2√x).
inline Var sqrt(Var x) {
    const double s = std::sqrt(x.value());
    return detail::unary(x, s, 0.5 / s);
}
/// tanh x; d = 1 − tanh².
inline Var tanh(Var x) {
    const double t = std::tanh(x.value());
    return detail::unary(x, t, 1.0 - t * t);
}
/// |x|; d = sign(x), 0 at x = 0.
inline Var abs(Var x) {
    const double v = x.value();
    return detail::unary(x, std::fabs(v), v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : 0.0));
}
inline Var fabs(Var x) { return abs(x); }
/// σ(x); d = σ(x)σ(−x).
inline Var sigmoid(Var x) {
    Tape& t = Tape::active();
    const double v = detail::val(t, x);
    return t.push_unary(diffbio::sigmoid(v), x, diffbio::sigmoid_derivative(v));
}
/// softplus(x) = log(1 + e^x); d = σ(x).
inline Var softplus(Var x) {
    const double v = x.value();
    return detail::unary(x, diffbio::softplus(v), diffbio::sigmoid(v));
}
inline Var log1pexp(Var x) { return softplus(x); }
/// log σ(x); d = σ(−x).
inline Var log_sigmoid(Var x) {
    const double v = x.value();
    return detail::unary(x, diffbio::log_sigmoid(v), diffbio::sigmoid(-v));
}
/// x^p, constant p; d = p·x^{p−1}.
inline Var pow(Var x, double p) {
    const double v = x.value();
    return detail::unary(x, std::pow(v, p), p * std::pow(v, p - 1.0));
}
/// b^y, constant b; d = b^y·log b.
inline Var pow(double b, Var y) {
    const double v = std::pow(b, y.value());
    return detail::unary(y, v, v * std::log(b));
}
/// x^y; ∂x = y·x^{y−1}, ∂y = x^y·log x (0 at x = 0).
inline Var pow(Var x, Var y) {
    Tape& t = Tape::active();
    const double vx = detail::val(t, x);
    const double vy = detail::val(t, y);
    const double v = std::pow(vx, vy);
    return t.push_binary(v, x, vy * std::pow(vx, vy - 1.0), y, vx == 0.0 ? 0.0 : v * std::log(vx));
}
/// max/min pick a branch by value (ties: the first argument) and record nothing new.
inline Var max(Var a, Var b) { return a.value() >= b.value() ? a : b; }
inline Var min(Var a, Var b) { return a.value() <= b.value() ? a : b; }
inline Var max(Var a, double b) { return a.value() >= b ? a : Var(b); }
inline Var max(double a, Var b) { return a >= b.value() ? Var(a) : b; }
inline Var min(Var a, double b) { return a.value() <= b ? a : Var(b); }
inline Var min(double a, Var b) { return a <= b.value() ? Var(a) : b; }

inline bool isfinite(Var x) { return std::isfinite(x.value()); }
inline bool isnan(Var x) { return std::isnan(x.value()); }

} // namespace diffbio::ad

namespace diffbio {
template <>
struct ScalarTraits<ad::Var, void> {
    static constexpr bool is_ad = true;
    using value_type = double;
    static double primal(const ad::Var& x) { return x.value(); }
    static double value(const ad::Var& x) { return x.value(); }
};
} // namespace diffbio
