#pragma once
// Argument checks that throw diffbio::InvalidArgument / ShapeError with a message naming the
// function, the parameter and the bad value.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/simd.hpp>

namespace diffbio {

namespace detail {
/// v in the shortest form that reads back as the same double ("1e+28", "0.1", "nan", "-inf").
inline std::string format_value(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}
} // namespace detail

/// Temperatures must be finite and strictly positive, and not subnormal: from the smallest normal
/// double (2.2e-308) on, 1/τ is finite, so a kernel's (x − m)/τ at x = m stays 0 (not 0·∞).
template <class T>
void check_temperature(const T& tau, const char* where, const char* name = "tau") {
    const double v = primal(tau);
    if (!(v > 0.0) || !std::isfinite(v)) {
        throw InvalidArgument(std::string(where) + ": temperature '" + name +
                              "' must be finite and > 0, got " + detail::format_value(v));
    }
    if (v < std::numeric_limits<double>::min()) {
        throw InvalidArgument(std::string(where) + ": temperature '" + name + "' must be at least " +
                              detail::format_value(std::numeric_limits<double>::min()) +
                              " (the smallest normal double), got " + detail::format_value(v));
    }
}

/// The temperature a kernel in float or double computes with: τ, or F's smallest normal when τ is
/// below it (float: 1.2e-38), which is already the hard limit. A smaller τ would round to 0 (or to
/// a subnormal whose 1/τ overflows) and make (m − m)/τ = 0/0 = NaN.
template <class F>
F clamp_temperature(F tau) {
    static_assert(std::is_floating_point_v<F>, "clamp_temperature: F is float or double");
    return std::max(tau, std::numeric_limits<F>::min());
}

/// A value that must be finite (not NaN, not ±inf).
template <class T>
void check_finite(const T& x, const char* where, const char* name) {
    const double v = primal(x);
    if (!std::isfinite(v)) {
        throw InvalidArgument(std::string(where) + ": '" + name + "' must be finite, got " +
                              detail::format_value(v));
    }
}

/// A value that must be finite and > 0.
template <class T>
void check_positive(const T& x, const char* where, const char* name) {
    const double v = primal(x);
    if (!(v > 0.0) || !std::isfinite(v)) {
        throw InvalidArgument(std::string(where) + ": '" + name + "' must be finite and > 0, got " +
                              detail::format_value(v));
    }
}

/// The index of the first entry of v that is NaN or ±inf (for AD scalars: whose value is), or
/// v.size() when every entry is finite. float and double are scanned a block at a time in SIMD
/// registers, summing x − x (0 for a finite x, NaN for NaN and ±inf; four independent sums), and
/// only a block whose sum is not 0 is searched entry by entry: about the cost of reading v once.
template <class S>
std::size_t first_nonfinite(std::span<const S> v) {
    if constexpr (std::is_integral_v<S>) {
        return v.size();
    } else if constexpr (std::is_floating_point_v<S>) {
        constexpr std::size_t block = 4096;
        for (std::size_t b = 0; b < v.size(); b += block) {
            const std::size_t e = std::min(v.size(), b + block);
            std::size_t i = b;
            S sum = 0; // Σ (x − x): 0 while every x is finite, NaN from the first NaN or ±inf on
#if DIFFBIO_HAVE_VECTOR_EXT
            if constexpr (std::is_same_v<S, float> || std::is_same_v<S, double>) {
                using pk = simd::pack<S, simd::native_lanes<S>>; // one register
                constexpr auto W = static_cast<std::size_t>(pk::size);
                pk a0 = pk::broadcast(S(0)), a1 = a0, a2 = a0, a3 = a0; // four independent sums
                for (; i + 4 * W <= e; i += 4 * W) {
                    const S* p = v.data() + i;
                    const pk x0 = pk::load(p), x1 = pk::load(p + W), x2 = pk::load(p + 2 * W), x3 = pk::load(p + 3 * W);
                    a0 += x0 - x0;
                    a1 += x1 - x1;
                    a2 += x2 - x2;
                    a3 += x3 - x3;
                }
                for (; i + W <= e; i += W) {
                    const pk x = pk::load(v.data() + i);
                    a0 += x - x;
                }
                const pk a = (a0 + a1) + (a2 + a3);
                for (int l = 0; l < pk::size; ++l) sum += a[l];
            }
#endif
            for (; i < e; ++i) sum += v[i] - v[i];
            if (sum != S(0)) {
                for (i = b; i < e; ++i) {
                    if (!std::isfinite(v[i])) return i;
                }
            }
        }
        return v.size();
    } else {
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!std::isfinite(primal(v[i]))) return i;
        }
        return v.size();
    }
}

/// Data that must be finite: throws InvalidArgument "<where>: <what> entry <i> is not finite
/// (<value>)" naming the first NaN or ±inf entry.
template <class S>
void check_all_finite(std::span<const S> v, const char* where, const char* what) {
    const std::size_t i = first_nonfinite(v);
    if (i != v.size()) {
        throw InvalidArgument(std::string(where) + ": " + what + " entry " + std::to_string(i) + " is not finite (" +
                              detail::format_value(primal(v[i])) + ")");
    }
}

namespace detail {
/// The plain type an AD scalar computes its values in: float for float (and Dual<float>),
/// double otherwise.
template <class S>
struct innermost_value {
    using V = typename ScalarTraits<S>::value_type;
    using type = typename std::conditional_t<std::is_same_v<V, S>, std::type_identity<S>, innermost_value<V>>::type;
};

template <class S>
[[noreturn]] void throw_result_overflow(const std::string& what, double value, double tau, const char* where,
                                        const char* remedy) {
    using V = typename innermost_value<S>::type;
    constexpr bool is_float = std::is_same_v<V, float>;
    throw InvalidArgument(std::string(where) + ": " + what + " is not finite (" + format_value(value) +
                          ") at temperature " + format_value(tau) + ": it exceeds the range of " +
                          (is_float ? "float" : "double") + " (largest " +
                          format_value(static_cast<double>(std::numeric_limits<V>::max())) + "); " +
                          (is_float ? "compute in double or " : "") + remedy);
}
} // namespace detail

/// A result computed from finite data that must itself be finite. A soft maximum τ·log Σ exp(x/τ)
/// exceeds the largest x by up to τ·log(number of terms), so at a temperature near its type's
/// largest value (float: 3.4e38) the result does not fit in it. Throws InvalidArgument
/// "<where>: <what> is not finite (inf) at temperature <τ>: it exceeds the range of float (largest
/// 3.4028234663852886e+38); compute in double or <remedy>" (default remedy: "lower the
/// temperature"; an operator whose data can overflow it too says so).
template <class S>
void check_result_finite(const S& y, double tau, const char* where, const char* what,
                         const char* remedy = "lower the temperature") {
    if (!std::isfinite(primal(y))) detail::throw_result_overflow<S>(what, primal(y), tau, where, remedy);
}

/// The same for a batch of results; the message names the first bad one: "<what> <i> is not finite ...".
template <class S>
void check_results_finite(std::span<const S> v, double tau, const char* where, const char* what,
                          const char* remedy = "lower the temperature") {
    const std::size_t i = first_nonfinite(v);
    if (i != v.size()) {
        detail::throw_result_overflow<S>(std::string(what) + " " + std::to_string(i), primal(v[i]), tau, where, remedy);
    }
}

/// Two extents that must agree.
inline void check_size(std::size_t got, std::size_t expected, const char* where, const char* what) {
    if (got != expected) {
        throw ShapeError(std::string(where) + ": " + what + " has size " + std::to_string(got) +
                         ", expected " + std::to_string(expected));
    }
}

} // namespace diffbio
