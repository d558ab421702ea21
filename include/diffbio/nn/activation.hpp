#pragma once
// Array activations for neural-network layers, generic in the scalar (float, double, Dual, Var).
//
//   relu(x)_i              = max(x_i, 0)                      d = [x_i > 0]
//   leaky_relu(x, a)_i     = x_i > 0 ? x_i : a·x_i  (a ≥ 0)     d = x_i > 0 ? 1 : a
//   sigmoid(x)_i           = σ(x_i)                           d = σ(x_i)σ(−x_i)
//   tanh(x)_i              = tanh x_i                         d = 1 − tanh² x_i
//   softmax_rows(x, R, C, τ)  row-wise softmax(x_r/τ) of a row-major R × C matrix
//
// At x = 0 the (leaky) ReLU takes the left derivative (0, resp. a) in every mode. All are O(n).
// For Var each call records ONE fused node (no operands): its backward is an elementwise kernel
// (the row-wise softmax vector-Jacobian product for softmax_rows). Policies: exec::Cpu, or
// exec::CpuParallel which splits elements (rows) across OpenMP threads; results do not depend
// on the thread count. σ is evaluated without overflow; softmax shifts each row by its maximum,
// so every exponent is ≤ 0.

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>
#include <diffbio/soft/softmax.hpp>

namespace diffbio::nn {

/// The activations an MLP can put between its layers.
enum class Activation { none, relu, leaky_relu, sigmoid, tanh };

inline const char* activation_name(Activation a) noexcept {
    switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    }
    return "?";
}

namespace detail {

/// f(i) for i in [0, n): serially for exec::Cpu, in static OpenMP blocks for exec::CpuParallel.
template <class P, class F>
void parallel_for(const P& policy, std::size_t n, F&& f) {
    if constexpr (std::is_same_v<std::remove_cvref_t<P>, exec::CpuParallel>) {
        const auto nn = static_cast<std::ptrdiff_t>(n);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t i = 0; i < nn; ++i) f(static_cast<std::size_t>(i));
    } else {
        (void)policy;
        for (std::size_t i = 0; i < n; ++i) f(i);
    }
}

inline void check_negative_slope(double a, const char* where) {
    if (!(a >= 0.0) || !std::isfinite(a)) {
        throw InvalidArgument(std::string(where) + ": 'negative_slope' must be finite and >= 0, got " +
                              diffbio::detail::format_value(a));
    }
}

/// One activation: its generic value, and its derivative from the input z or from the output y.
/// (The derivative from the output is what a fused Linear + activation node uses: for a slope
/// a ≥ 0, y > 0 exactly when z > 0.)
struct ActivationOp {
    Activation kind = Activation::none;
    double slope = 0.0;

    template <class T>
    T operator()(const T& z) const {
        switch (kind) {
        case Activation::relu: return primal(z) > 0.0 ? z : passive<T>(0.0);
        case Activation::leaky_relu: return primal(z) > 0.0 ? z : z * static_cast<typename ScalarTraits<T>::value_type>(slope);
        case Activation::sigmoid: {
            using diffbio::sigmoid;
            return sigmoid(z);
        }
        case Activation::tanh: {
            using std::tanh;
            return tanh(z);
        }
        case Activation::none: break;
        }
        return z;
    }
    double derivative(double z) const {
        switch (kind) {
        case Activation::relu: return z > 0.0 ? 1.0 : 0.0;
        case Activation::leaky_relu: return z > 0.0 ? 1.0 : slope;
        case Activation::sigmoid: return diffbio::sigmoid_derivative(z);
        case Activation::tanh: {
            const double t = std::tanh(z);
            return 1.0 - t * t;
        }
        case Activation::none: break;
        }
        return 1.0;
    }
    double derivative_from_output(double y) const {
        switch (kind) {
        case Activation::relu: return y > 0.0 ? 1.0 : 0.0;
        case Activation::leaky_relu: return y > 0.0 ? 1.0 : slope;
        case Activation::sigmoid: return y * (1.0 - y);
        case Activation::tanh: return 1.0 - y * y;
        case Activation::none: break;
        }
        return 1.0;
    }
};

inline ActivationOp make_activation(Activation a, double negative_slope, const char* where) {
    if (a == Activation::leaky_relu) check_negative_slope(negative_slope, where);
    return {a, a == Activation::leaky_relu ? negative_slope : 0.0};
}

/// y_i = op(x_i). Var: one node whose backward is x̄_i += ȳ_i·op'(x_i).
template <class X, class P>
std::vector<X> elementwise(std::span<const X> x, const ActivationOp op, const P& policy) {
    static_assert(exec::HostPolicy<P>, "nn activations run on the host: use exec::Cpu or exec::CpuParallel");
    std::vector<X> out(x.size());
    if (op.kind == Activation::none || x.empty()) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
        return out;
    }
    if constexpr (soft::detail::is_var_v<X>) {
        ad::Tape& tape = ad::Tape::active();
        auto y = tape.record_node_uninitialised({std::span<const ad::Var>(x)}, x.size(), [op, policy](const ad::NodeGrad& g) {
            const auto xv = g.in_value(0);
            const auto gy = g.out_adjoint();
            const auto gx = g.in_adjoint(0);
            parallel_for(policy, xv.size(), [&](std::size_t i) { gx[i] += gy[i] * op.derivative(xv[i]); });
        });
        const auto xv = soft::detail::forward_values(tape, x, {});
        const auto yv = tape.values_of(y);
        parallel_for(policy, x.size(), [&](std::size_t i) { yv[i] = op(xv[i]); });
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else if constexpr (std::is_floating_point_v<X>) {
        parallel_for(policy, x.size(), [&](std::size_t i) { out[i] = op(x[i]); });
    } else {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = op(x[i]);
    }
    return out;
}

} // namespace detail

/// max(x_i, 0) elementwise. Var: one node.
template <class X, exec::HostPolicy P = exec::Cpu>
std::vector<X> relu(std::span<const X> x, const P& policy = {}) {
    return detail::elementwise(x, detail::ActivationOp{Activation::relu, 0.0}, policy);
}

/// x_i > 0 ? x_i : a·x_i elementwise, a = negative_slope ≥ 0 (InvalidArgument otherwise). Var: one node.
template <class X, exec::HostPolicy P = exec::Cpu>
std::vector<X> leaky_relu(std::span<const X> x, double negative_slope = 0.01, const P& policy = {}) {
    return detail::elementwise(x, detail::make_activation(Activation::leaky_relu, negative_slope, "leaky_relu"), policy);
}

/// σ(x_i) elementwise (no overflow for any finite x). Var: one node.
template <class X, exec::HostPolicy P = exec::Cpu>
std::vector<X> sigmoid(std::span<const X> x, const P& policy = {}) {
    return detail::elementwise(x, detail::ActivationOp{Activation::sigmoid, 0.0}, policy);
}

/// tanh(x_i) elementwise. Var: one node.
template <class X, exec::HostPolicy P = exec::Cpu>
std::vector<X> tanh(std::span<const X> x, const P& policy = {}) {
    return detail::elementwise(x, detail::ActivationOp{Activation::tanh, 0.0}, policy);
}

/// The activation `a` elementwise (Activation::none copies x; negative_slope is used by leaky_relu only).
template <class X, exec::HostPolicy P = exec::Cpu>
std::vector<X> activate(std::span<const X> x, Activation a, double negative_slope = 0.01, const P& policy = {}) {
    return detail::elementwise(x, detail::make_activation(a, negative_slope, "activate"), policy);
}

/// Row-wise softmax of a row-major rows × cols matrix at temperature τ:
///   p[r, c] = e^{(x[r, c] − m_r)/τ} / Σ_k e^{(x[r, k] − m_r)/τ},  m_r = max_k x[r, k]
/// → one-hot row argmax as τ → 0 (ties split evenly). τ must be finite and > 0 (InvalidArgument).
/// Gradient per row, with g_c = p_c(ȳ_c − Σ_k ȳ_k p_k): x̄_c = g_c/τ, τ̄ −= Σ_c g_c (x_c − m)/τ².
/// O(rows·cols). Var: ONE node for the whole matrix (inputs x if Var, τ if Var).
template <class X, class Tau, exec::HostPolicy P = exec::Cpu>
std::vector<promote_t<X, Tau>> softmax_rows(std::span<const X> x, std::size_t rows, std::size_t cols, const Tau& tau,
                                            const P& policy = {}) {
    using R = promote_t<X, Tau>;
    check_temperature(tau, "softmax_rows");
    if (x.size() != rows * cols) {
        throw ShapeError("softmax_rows: x has " + std::to_string(x.size()) + " elements, expected rows × cols = " +
                         std::to_string(rows) + " × " + std::to_string(cols) + " = " + std::to_string(rows * cols));
    }
    if (cols == 0 && rows > 0) throw ShapeError("softmax_rows: rows of 0 columns have no softmax");
    std::vector<R> out(x.size());
    if (x.empty()) return out;
    if constexpr (soft::detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = soft::detail::saved_values(tape, x);
        const double sv = soft::detail::primal_scalar(tau);
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(x), soft::detail::node_input(tau)}, x.size(),
            [saved, sv, rows, cols, policy](const ad::NodeGrad& g) {
                const auto xv = soft::detail::input_values<X>(g, 0, saved);
                const auto p = g.out_value();
                const auto gy = g.out_adjoint();
                const auto gx = g.in_adjoint(0);
                const double inv = 1.0 / sv;
                std::vector<double> gtau_rows(rows, 0.0); // summed in row order: thread-count independent
                detail::parallel_for(policy, rows, [&](std::size_t r) {
                    const std::size_t o = r * cols;
                    double dot = 0.0;
                    double m = xv[o];
                    for (std::size_t c = 0; c < cols; ++c) {
                        dot += gy[o + c] * p[o + c];
                        m = xv[o + c] > m ? xv[o + c] : m;
                    }
                    double gt = 0.0;
                    for (std::size_t c = 0; c < cols; ++c) {
                        const double gi = p[o + c] * (gy[o + c] - dot);
                        if (!gx.empty()) gx[o + c] += gi * inv;
                        gt -= gi * (xv[o + c] - m);
                    }
                    gtau_rows[r] = gt;
                });
                if (!g.in_adjoint(1).empty()) {
                    double gt = 0.0;
                    for (const double v : gtau_rows) gt += v;
                    g.in_adjoint(1)[0] += gt * inv * inv;
                }
            });
        const auto xv = soft::detail::forward_values(tape, x, saved);
        double* yv = tape.values_of(y).data();
        detail::parallel_for(policy, rows, [&](std::size_t r) {
            soft::detail::softmax_kernel(xv.subspan(r * cols, cols), sv, yv + r * cols);
        });
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else if constexpr (std::is_floating_point_v<R>) {
        detail::parallel_for(policy, rows, [&](std::size_t r) {
            soft::softmax(x.subspan(r * cols, cols), tau, std::span<R>(out).subspan(r * cols, cols));
        });
    } else {
        for (std::size_t r = 0; r < rows; ++r) {
            soft::softmax(x.subspan(r * cols, cols), tau, std::span<R>(out).subspan(r * cols, cols));
        }
    }
    return out;
}

} // namespace diffbio::nn
