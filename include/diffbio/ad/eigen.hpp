#pragma once
// Eigen adapter: Eigen::Matrix<ad::Dual<T>, ...> and Eigen::Matrix<ad::Var, ...> work with the
// usual expressions (products, reductions, coefficient-wise math). Mixed products with double
// matrices work through ScalarBinaryOpTraits. With Var, Eigen expressions record one tape
// variable per scalar operation: fine for glue, but hot paths should use fused nodes (nn::Linear
// runs Eigen GEMMs on plain doubles inside one node instead).

#include <Eigen/Core>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/var.hpp>

namespace Eigen {

template <class T>
struct NumTraits<diffbio::ad::Dual<T>> : NumTraits<T> {
    using Real = diffbio::ad::Dual<T>;
    using NonInteger = diffbio::ad::Dual<T>;
    using Nested = diffbio::ad::Dual<T>;
    using Literal = diffbio::ad::Dual<T>;
    enum {
        IsComplex = 0,
        IsInteger = 0,
        IsSigned = 1,
        RequireInitialization = 1,
        ReadCost = 2 * NumTraits<T>::ReadCost,
        AddCost = 2 * NumTraits<T>::AddCost,
        MulCost = 3 * NumTraits<T>::MulCost + NumTraits<T>::AddCost
    };
};

template <>
struct NumTraits<diffbio::ad::Var> : NumTraits<double> {
    using Real = diffbio::ad::Var;
    using NonInteger = diffbio::ad::Var;
    using Nested = diffbio::ad::Var;
    using Literal = diffbio::ad::Var;
    enum {
        IsComplex = 0,
        IsInteger = 0,
        IsSigned = 1,
        RequireInitialization = 1,
        ReadCost = 1,
        AddCost = 8,
        MulCost = 8
    };
};

template <class T, class BinaryOp>
struct ScalarBinaryOpTraits<diffbio::ad::Dual<T>, T, BinaryOp> {
    using ReturnType = diffbio::ad::Dual<T>;
};
template <class T, class BinaryOp>
struct ScalarBinaryOpTraits<T, diffbio::ad::Dual<T>, BinaryOp> {
    using ReturnType = diffbio::ad::Dual<T>;
};
template <class BinaryOp>
struct ScalarBinaryOpTraits<diffbio::ad::Var, double, BinaryOp> {
    using ReturnType = diffbio::ad::Var;
};
template <class BinaryOp>
struct ScalarBinaryOpTraits<double, diffbio::ad::Var, BinaryOp> {
    using ReturnType = diffbio::ad::Var;
};

} // namespace Eigen

namespace diffbio::ad {
// Eigen looks these up by ADL for real scalars.
template <class T>
Dual<T> conj(const Dual<T>& x) { return x; }
template <class T>
Dual<T> real(const Dual<T>& x) { return x; }
template <class T>
Dual<T> imag(const Dual<T>&) { return Dual<T>(0.0); }
template <class T>
Dual<T> abs2(const Dual<T>& x) { return x * x; }
inline Var conj(Var x) { return x; }
inline Var real(Var x) { return x; }
inline Var imag(Var) { return Var(0.0); }
inline Var abs2(Var x) { return x * x; }
} // namespace diffbio::ad
