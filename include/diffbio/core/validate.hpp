#pragma once
// Argument checks that throw diffbio::InvalidArgument / ShapeError with a message naming the
// function, the parameter and the bad value.

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>

#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>

namespace diffbio {

namespace detail {
inline std::string format_value(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}
} // namespace detail

/// Temperatures must be finite and strictly positive.
template <class T>
void check_temperature(const T& tau, const char* where, const char* name = "tau") {
    const double v = primal(tau);
    if (!(v > 0.0) || !std::isfinite(v)) {
        throw InvalidArgument(std::string(where) + ": temperature '" + name +
                              "' must be finite and > 0, got " + detail::format_value(v));
    }
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

/// Two extents that must agree.
inline void check_size(std::size_t got, std::size_t expected, const char* where, const char* what) {
    if (got != expected) {
        throw ShapeError(std::string(where) + ": " + what + " has size " + std::to_string(got) +
                         ", expected " + std::to_string(expected));
    }
}

} // namespace diffbio
