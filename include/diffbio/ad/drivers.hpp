#pragma once
// Drivers: differentiate a callable at a point.
//
//   derivative(f, x)        f: T -> T                       df/dx            (forward by default)
//   gradient(f, x)          f: std::span<const T> -> T      ∇f, size n       (reverse by default)
//   value_and_grad(f, x)    as gradient, also f(x)
//   jacobian(f, x)          f: std::span<const T> -> std::vector<T>  m×n row-major
//
// Write f once as a generic lambda (`[](auto x) { ... }`); the mode tag picks the scalar:
// Forward runs f on Dual<double> (one pass per input), Reverse on Var (one recording, one
// reverse sweep per output). Reverse drivers record on a private tape made active for the call,
// so they are safe to use from several threads at once.

#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::ad {

struct Forward {};
struct Reverse {};

struct ValueAndGrad {
    double value = 0.0;
    std::vector<double> grad;
};

/// A dense Jacobian, row-major: J(i, j) = ∂f_i/∂x_j.
struct Jacobian {
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::vector<double> data;
    double operator()(std::size_t i, std::size_t j) const { return data[i * cols + j]; }
};

/// df/dx of a scalar function at x (forward mode: one Dual evaluation).
template <class F>
double derivative(F&& f, double x, Forward = {}) {
    const Dual<double> y = f(Dual<double>(x, 1.0));
    return y.tangent;
}

/// df/dx of a scalar function at x (reverse mode: one recording, one sweep).
template <class F>
double derivative(F&& f, double x, Reverse) {
    Tape tape;
    ScopedTape scope(tape);
    const Var xv = tape.variable(x);
    const Var y = f(xv);
    tape.backward(y);
    return tape.adjoint(xv);
}

/// f(x) and ∇f(x) by reverse mode: cost ≈ one evaluation plus one sweep, for any n.
template <class F>
ValueAndGrad value_and_grad(F&& f, std::span<const double> x, Reverse = {}) {
    Tape tape;
    ScopedTape scope(tape);
    const std::span<const Var> xv = tape.variables(x);
    const Var y = f(xv);
    tape.backward(y);
    ValueAndGrad r;
    r.value = tape.value(y);
    r.grad.resize(x.size());
    tape.adjoints(xv, r.grad);
    return r;
}

/// f(x) and ∇f(x) by forward mode: n Dual evaluations.
template <class F>
ValueAndGrad value_and_grad(F&& f, std::span<const double> x, Forward) {
    ValueAndGrad r;
    r.grad.resize(x.size());
    std::vector<Dual<double>> xd(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) xd[i] = Dual<double>(x[i], 0.0);
    if (x.empty()) {
        r.value = f(std::span<const Dual<double>>(xd)).value;
        return r;
    }
    for (std::size_t j = 0; j < x.size(); ++j) {
        xd[j].tangent = 1.0;
        const Dual<double> y = f(std::span<const Dual<double>>(xd));
        xd[j].tangent = 0.0;
        r.value = y.value;
        r.grad[j] = y.tangent;
    }
    return r;
}

template <class F, class Mode = Reverse>
std::vector<double> gradient(F&& f, std::span<const double> x, Mode mode = {}) {
    return value_and_grad(std::forward<F>(f), x, mode).grad;
}

/// Jacobian of a vector function by reverse mode: one recording, one sweep per output.
template <class F>
Jacobian jacobian(F&& f, std::span<const double> x, Reverse = {}) {
    Tape tape;
    ScopedTape scope(tape);
    const std::span<const Var> xv = tape.variables(x);
    const std::vector<Var> y = f(xv);
    Jacobian J{y.size(), x.size(), std::vector<double>(y.size() * x.size())};
    for (std::size_t i = 0; i < y.size(); ++i) {
        tape.backward(y[i]);
        tape.adjoints(xv, std::span<double>(J.data.data() + i * x.size(), x.size()));
    }
    return J;
}

/// Jacobian of a vector function by forward mode: one Dual evaluation per input.
template <class F>
Jacobian jacobian(F&& f, std::span<const double> x, Forward) {
    std::vector<Dual<double>> xd(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) xd[i] = Dual<double>(x[i], 0.0);
    Jacobian J{0, x.size(), {}};
    for (std::size_t j = 0; j < x.size(); ++j) {
        xd[j].tangent = 1.0;
        const std::vector<Dual<double>> y = f(std::span<const Dual<double>>(xd));
        xd[j].tangent = 0.0;
        if (j == 0) {
            J.rows = y.size();
            J.data.assign(J.rows * J.cols, 0.0);
        } else if (y.size() != J.rows) {
            throw ShapeError("jacobian: the function returned outputs of different sizes");
        }
        for (std::size_t i = 0; i < y.size(); ++i) J.data[i * J.cols + j] = y[i].tangent;
    }
    return J;
}

} // namespace diffbio::ad
