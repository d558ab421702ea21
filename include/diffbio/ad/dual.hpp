#pragma once
// Forward-mode dual numbers.
//
// Dual<T> is a plain struct (value, tangent) with direct operator overloads and ADL math; no
// expression templates. Every function f maps (v, t) to (f(v), f'(v)·t). T may itself be a Dual,
// so Dual<Dual<double>> carries second derivatives (seed both tangents, read tangent.tangent).
// Comparisons compare values only. All functions are DIFFBIO_HD and usable in CUDA kernels for
// T = float or double.

#include <cmath>
#include <type_traits>

#include <diffbio/config.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>

namespace diffbio::ad {

template <class T>
struct Dual {
    T value{};
    T tangent{};

    constexpr Dual() = default;
    DIFFBIO_HD constexpr Dual(const T& v, const T& t) : value(v), tangent(t) {}
    /// A constant: value v, zero tangent. Implicit so that generic code can write `T x = 1.0;`.
    template <class U>
        requires std::is_arithmetic_v<U> || std::is_same_v<U, T>
    DIFFBIO_HD constexpr Dual(const U& v) : value(static_cast<T>(v)), tangent(0) {} // NOLINT

    DIFFBIO_HD Dual& operator+=(const Dual& o) { value += o.value; tangent += o.tangent; return *this; }
    DIFFBIO_HD Dual& operator-=(const Dual& o) { value -= o.value; tangent -= o.tangent; return *this; }
    DIFFBIO_HD Dual& operator*=(const Dual& o) { return *this = *this * o; }
    DIFFBIO_HD Dual& operator/=(const Dual& o) { return *this = *this / o; }

    // Friend definitions so that mixed arguments (Dual<T> op double) convert implicitly.
    DIFFBIO_HD friend Dual operator+(const Dual& a, const Dual& b) {
        return {a.value + b.value, a.tangent + b.tangent};
    }
    DIFFBIO_HD friend Dual operator-(const Dual& a, const Dual& b) {
        return {a.value - b.value, a.tangent - b.tangent};
    }
    DIFFBIO_HD friend Dual operator*(const Dual& a, const Dual& b) {
        return {a.value * b.value, a.tangent * b.value + a.value * b.tangent};
    }
    DIFFBIO_HD friend Dual operator/(const Dual& a, const Dual& b) {
        const T q = a.value / b.value;
        return {q, (a.tangent - q * b.tangent) / b.value};
    }
    DIFFBIO_HD friend Dual operator-(const Dual& a) { return {-a.value, -a.tangent}; }
    DIFFBIO_HD friend Dual operator+(const Dual& a) { return a; }

    DIFFBIO_HD friend bool operator==(const Dual& a, const Dual& b) { return a.value == b.value; }
    DIFFBIO_HD friend bool operator!=(const Dual& a, const Dual& b) { return a.value != b.value; }
    DIFFBIO_HD friend bool operator<(const Dual& a, const Dual& b) { return a.value < b.value; }
    DIFFBIO_HD friend bool operator<=(const Dual& a, const Dual& b) { return a.value <= b.value; }
    DIFFBIO_HD friend bool operator>(const Dual& a, const Dual& b) { return a.value > b.value; }
    DIFFBIO_HD friend bool operator>=(const Dual& a, const Dual& b) { return a.value >= b.value; }
};

namespace detail {
/// Chain rule for a unary function: f(v) = fv, f'(v) = dfv.
template <class T>
DIFFBIO_HD Dual<T> chain(const Dual<T>& x, const T& fv, const T& dfv) {
    return {fv, dfv * x.tangent};
}
} // namespace detail

/// e^x; d = e^x.
template <class T>
DIFFBIO_HD Dual<T> exp(const Dual<T>& x) {
    using std::exp;
    const T e = exp(x.value);
    return detail::chain(x, e, e);
}
/// log x; d = 1/x.
template <class T>
DIFFBIO_HD Dual<T> log(const Dual<T>& x) {
    using std::log;
    return detail::chain(x, log(x.value), T(1) / x.value);
}
/// log(1 + x); d = 1/(1 + x).
template <class T>
DIFFBIO_HD Dual<T> log1p(const Dual<T>& x) {
    using std::log1p;
    return detail::chain(x, log1p(x.value), T(1) / (T(1) + x.value));
}
/// e^x − 1; d = e^x.
template <class T>
DIFFBIO_HD Dual<T> expm1(const Dual<T>& x) {
    using std::exp;
    using std::expm1;
    return detail::chain(x, expm1(x.value), exp(x.value));
}
/// √x; d = 1/(2√x) (infinite at 0, as the function's derivative is).
template <class T>
DIFFBIO_HD Dual<T> sqrt(const Dual<T>& x) {
    using std::sqrt;
    const T s = sqrt(x.value);
    return detail::chain(x, s, T(0.5) / s);
}
/// tanh x; d = 1 − tanh².
template <class T>
DIFFBIO_HD Dual<T> tanh(const Dual<T>& x) {
    using std::tanh;
    const T t = tanh(x.value);
    return detail::chain(x, t, T(1) - t * t);
}
/// |x|; d = sign(x), with d = 0 at x = 0 (the subgradient of minimum norm).
template <class T>
DIFFBIO_HD Dual<T> abs(const Dual<T>& x) {
    if (x.value > T(0)) return x;
    if (x.value < T(0)) return -x;
    return {x.value, T(0)};
}
template <class T>
DIFFBIO_HD Dual<T> fabs(const Dual<T>& x) {
    return abs(x);
}
/// σ(x); d = σ(x)σ(−x).
template <class T>
DIFFBIO_HD Dual<T> sigmoid(const Dual<T>& x) {
    using diffbio::sigmoid;
    using diffbio::sigmoid_derivative;
    return detail::chain(x, sigmoid(x.value), sigmoid_derivative(x.value));
}
/// softplus(x) = log(1 + e^x); d = σ(x).
template <class T>
DIFFBIO_HD Dual<T> softplus(const Dual<T>& x) {
    using diffbio::sigmoid;
    using diffbio::softplus;
    return detail::chain(x, softplus(x.value), sigmoid(x.value));
}
template <class T>
DIFFBIO_HD Dual<T> log1pexp(const Dual<T>& x) {
    return softplus(x);
}
/// log σ(x); d = 1 − σ(x) = σ(−x).
template <class T>
DIFFBIO_HD Dual<T> log_sigmoid(const Dual<T>& x) {
    using diffbio::log_sigmoid;
    using diffbio::sigmoid;
    return detail::chain(x, log_sigmoid(x.value), sigmoid(-x.value));
}
/// x^p for a constant exponent; d = p·x^{p−1}.
template <class T>
DIFFBIO_HD Dual<T> pow(const Dual<T>& x, const T& p) {
    using std::pow;
    return detail::chain(x, pow(x.value, p), p * pow(x.value, p - T(1)));
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> pow(const Dual<T>& x, U p) {
    return pow(x, T(p));
}
/// b^y for a constant base; d = b^y·log b.
template <class T>
DIFFBIO_HD Dual<T> pow(const T& b, const Dual<T>& y) {
    using std::log;
    using std::pow;
    const T v = pow(b, y.value);
    return detail::chain(y, v, v * log(b));
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> pow(U b, const Dual<T>& y) {
    return pow(T(b), y);
}
/// x^y; ∂/∂x = y·x^{y−1}, ∂/∂y = x^y·log x (0 when x = 0, the limit for y > 0).
template <class T>
DIFFBIO_HD Dual<T> pow(const Dual<T>& x, const Dual<T>& y) {
    using std::log;
    using std::pow;
    const T v = pow(x.value, y.value);
    const T dx = y.value * pow(x.value, y.value - T(1));
    const T dy = x.value == T(0) ? T(0) : v * log(x.value);
    return {v, dx * x.tangent + dy * y.tangent};
}
/// max/min choose a branch by value; ties take the first argument.
template <class T>
DIFFBIO_HD Dual<T> max(const Dual<T>& a, const Dual<T>& b) {
    return a.value >= b.value ? a : b;
}
template <class T>
DIFFBIO_HD Dual<T> min(const Dual<T>& a, const Dual<T>& b) {
    return a.value <= b.value ? a : b;
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> max(const Dual<T>& a, U b) {
    return max(a, Dual<T>(b));
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> max(U a, const Dual<T>& b) {
    return max(Dual<T>(a), b);
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> min(const Dual<T>& a, U b) {
    return min(a, Dual<T>(b));
}
template <class T, class U>
    requires std::is_arithmetic_v<U>
DIFFBIO_HD Dual<T> min(U a, const Dual<T>& b) {
    return min(Dual<T>(a), b);
}

template <class T>
DIFFBIO_HD bool isfinite(const Dual<T>& x) {
    using std::isfinite;
    return isfinite(x.value) && isfinite(x.tangent);
}
template <class T>
DIFFBIO_HD bool isnan(const Dual<T>& x) {
    using std::isnan;
    return isnan(x.value) || isnan(x.tangent);
}

/// A variable to differentiate with respect to: value v, tangent 1.
template <class T>
DIFFBIO_HD constexpr Dual<T> make_dual_variable(const T& v) {
    return {v, T(1)};
}

} // namespace diffbio::ad

namespace diffbio {
template <class T>
struct ScalarTraits<ad::Dual<T>, void> {
    static constexpr bool is_ad = true;
    using value_type = T;
    DIFFBIO_HD static constexpr double primal(const ad::Dual<T>& x) {
        return ScalarTraits<T>::primal(x.value);
    }
    DIFFBIO_HD static constexpr T value(const ad::Dual<T>& x) { return x.value; }
};
} // namespace diffbio
