#pragma once
// Scalar traits: the one place where generic code learns what a scalar type is.
//
// diffbio code is written once for a scalar T in {float, double, ad::Dual<U>, ad::Var}.
// The ad layer specialises ScalarTraits for its types; core only knows arithmetic types.
//
//   primal(x)        the innermost plain double value of x (strips every AD level)
//   value_of(x)      one AD level stripped: Dual<U> -> U, Var -> double, double -> double
//   passive<T>(v)    a T holding the constant v (zero tangent, or a constant tape leaf)
//   promote_t<A...>  the scalar type of an expression mixing A... (e.g. double and Var -> Var)
//   is_ad_v<T>       true for Dual and Var

#include <concepts>
#include <type_traits>
#include <utility>

#include <diffbio/config.hpp>

namespace diffbio {

template <class T, class Enable = void>
struct ScalarTraits; // specialised for arithmetic types here and for AD types in diffbio/ad

template <class T>
struct ScalarTraits<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
    static constexpr bool is_ad = false;
    using value_type = T;
    DIFFBIO_HD static constexpr double primal(T x) noexcept { return static_cast<double>(x); }
    DIFFBIO_HD static constexpr T value(T x) noexcept { return x; }
};

template <class T>
concept Scalar = requires { ScalarTraits<std::remove_cvref_t<T>>::is_ad; };

template <class T>
inline constexpr bool is_ad_v = ScalarTraits<std::remove_cvref_t<T>>::is_ad;

// Host-and-device for the plain and Dual scalars; for host-only types (Var) nvcc must not
// check the device side (as passive below).
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class T>
DIFFBIO_HD constexpr double primal(const T& x) {
    return ScalarTraits<T>::primal(x);
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class T>
DIFFBIO_HD constexpr auto value_of(const T& x) {
    return ScalarTraits<T>::value(x);
}

/// A constant of type T (no derivative information attached). Host-and-device for the plain
/// and Dual scalars; for host-only types (Var) nvcc must not check the device side.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class T>
DIFFBIO_HD T passive(double v) {
    return T(static_cast<typename ScalarTraits<T>::value_type>(v));
}

template <class... Ts>
using promote_t = std::remove_cvref_t<decltype((std::declval<Ts>() + ...))>;

} // namespace diffbio
