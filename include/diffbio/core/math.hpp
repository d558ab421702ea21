#pragma once
// Numerically stable scalar math shared by every layer.
//
// sigmoid, softplus (= log1pexp), log_sigmoid are defined here for float and double; the AD
// types provide their own overloads (found by ADL) with analytic partials. logaddexp and
// logsumexp are generic: they shift by the passive maximum, so for AD scalars the gradient is
// exactly the softmax weights and nothing overflows.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>

#include <diffbio/config.hpp>
#include <diffbio/core/scalar_traits.hpp>

namespace diffbio {

/// σ(x) = 1 / (1 + e^{-x}); derivative σ(1 − σ). Evaluated so that exp never overflows.
template <std::floating_point T>
DIFFBIO_HD inline T sigmoid(T x) {
    using std::exp;
    using std::fabs;
    // e = e^{-|x|} ≤ 1: branch-free (a select), so mixed-sign data does not mispredict.
    const T e = exp(-fabs(x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? r : e * r;
}

/// σ'(x) = σ(x)·σ(−x) = e^{−|x|}/(1 + e^{−|x|})², accurate to the last bits also where σ
/// saturates (σ(1 − σ) computed from a rounded σ loses all relative accuracy there).
template <std::floating_point T>
DIFFBIO_HD inline T sigmoid_derivative(T x) {
    using std::exp;
    using std::fabs;
    const T e = exp(-fabs(x));
    const T r = T(1) / (T(1) + e);
    return e * r * r;
}

/// σ(x) and σ'(x) from one exponential, the same bits as sigmoid(x) and sigmoid_derivative(x).
template <std::floating_point T>
DIFFBIO_HD inline void sigmoid_with_derivative(T x, T& sig, T& dsig) {
    using std::exp;
    using std::fabs;
    const T e = exp(-fabs(x));
    const T r = T(1) / (T(1) + e);
    sig = x >= T(0) ? r : e * r;
    dsig = e * r * r;
}

/// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}); derivative σ(x). Never overflows.
template <std::floating_point T>
DIFFBIO_HD inline T softplus(T x) {
    using std::exp;
    using std::fabs;
    using std::log1p;
    return (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x)));
}

/// log1pexp is another name for softplus.
template <std::floating_point T>
DIFFBIO_HD inline T log1pexp(T x) {
    return softplus(x);
}

/// log σ(x) = −softplus(−x); derivative 1 − σ(x). Finite for every finite x.
template <std::floating_point T>
DIFFBIO_HD inline T log_sigmoid(T x) {
    using std::exp;
    using std::fabs;
    using std::log1p;
    return (x < T(0) ? x : T(0)) - log1p(exp(-fabs(x)));
}

/// log(e^a + e^b), shifted by the passive max m: m + log(e^{a−m} + e^{b−m}).
/// Gradient (softmax weights) is exact also at a == b. Returns −inf when both are −inf.
template <class T>
T logaddexp(const T& a, const T& b) {
    using std::exp;
    using std::log;
    const double pa = primal(a);
    const double pb = primal(b);
    const double m = pa > pb ? pa : pb;
    if (m == -std::numeric_limits<double>::infinity()) {
        return a;
    }
    const T mt = passive<T>(m);
    return mt + log(exp(a - mt) + exp(b - mt));
}

/// log Σ_i e^{x_i}, shifted by the passive max. O(n). Returns −inf for an empty span or when every
/// entry is −inf. For tape scalars prefer soft::smooth_max, which records one fused node.
template <class T>
T logsumexp(std::span<const T> x) {
    using std::exp;
    using std::log;
    double m = -std::numeric_limits<double>::infinity();
    for (const T& v : x) {
        const double p = primal(v);
        m = p > m ? p : m;
    }
    if (x.empty() || m == -std::numeric_limits<double>::infinity()) {
        return passive<T>(-std::numeric_limits<double>::infinity());
    }
    const T mt = passive<T>(m);
    T s = exp(x[0] - mt);
    for (std::size_t i = 1; i < x.size(); ++i) {
        s = s + exp(x[i] - mt);
    }
    return mt + log(s);
}

} // namespace diffbio
