#pragma once
// Soft thresholds: the smooth replacement of a hard cutoff.
//
//   soft_threshold(x, t, τ) = σ((x − t)/τ)        → step(x > t) as τ → 0
//   soft_greater(x, y, τ)   = σ((x − y)/τ)        soft [x > y]
//   soft_less(x, y, τ)      = σ((y − x)/τ)        soft [x < y]
//   sum_sigmoid_threshold(x, t, τ) = Σ_i σ((x_i − t)/τ)   a soft count of x_i above t
//
// Gradients, with z = (x − t)/τ and g = σ'(z)/τ = σ(z)σ(−z)/τ:  ∂/∂x = g, ∂/∂t = −g, ∂/∂τ = −g·z.
// The backward kernels recompute σ'(z) from x (one exp) rather than from the stored σ, because
// σ(1 − σ) from a rounded σ loses its relative accuracy where σ saturates.
// Generic in the scalar (float, double, Dual, Var; arguments may mix a plain number with an AD
// type). τ must be finite and > 0 (InvalidArgument otherwise). σ is evaluated without overflow,
// so values and gradients stay finite for any finite x and τ.
//
// The array forms take a device policy. float/double run the policy's kernel (Cpu, CpuParallel,
// or Cuda with <diffbio/soft/cuda/soft_threshold.cuh>); Var records ONE fused tape node whose
// backward is the same kernel's backward; other AD scalars run elementwise on the host.

#include <cstddef>
#include <span>
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

namespace diffbio::soft {

/// σ((x − t)/τ). O(1).
template <class X, class Th, class Tau>
promote_t<X, Th, Tau> soft_threshold(const X& x, const Th& t, const Tau& tau) {
    check_temperature(tau, "soft_threshold");
    using diffbio::sigmoid;
    return sigmoid((x - t) / tau);
}

/// Soft [x > y] = σ((x − y)/τ).
template <class X, class Y, class Tau>
promote_t<X, Y, Tau> soft_greater(const X& x, const Y& y, const Tau& tau) {
    check_temperature(tau, "soft_greater");
    using diffbio::sigmoid;
    return sigmoid((x - y) / tau);
}

/// Soft [x < y] = σ((y − x)/τ) = 1 − soft_greater(x, y, τ).
template <class X, class Y, class Tau>
promote_t<X, Y, Tau> soft_less(const X& x, const Y& y, const Tau& tau) {
    check_temperature(tau, "soft_less");
    using diffbio::sigmoid;
    return sigmoid((y - x) / tau);
}

namespace backend {

/// Kernels of the array soft threshold on float/double, one specialisation per policy.
///   forward:  out[i] = σ((x[i] − t)/τ)
///   backward: with g_i = gy[i]·σ'((x[i] − t)/τ)/τ:
///             x_grad[i] += g_i (x_grad may be null), *t_grad += −Σ g_i, *tau_grad += −Σ g_i (x_i − t)/τ
///             (t_grad / tau_grad are host pointers and may be null; the sums accumulate in double)
template <class Policy>
struct SoftThreshold {
    static_assert(exec::dependent_false<Policy>,
                  "soft_threshold: no backend for this policy. For exec::Cuda, "
                  "#include <diffbio/soft/cuda/soft_threshold.cuh> and compile with nvcc.");
};

namespace detail {
/// x_grad[i] += g_i on [lo, hi), and the two sums Σ g_i and Σ g_i (x_i − t) in double.
template <class T>
inline void soft_threshold_backward_range(const T* x, const T* gy, std::size_t lo, std::size_t hi, T t, T tau,
                                          T* x_grad, double& sum_g, double& sum_gz) {
    const T inv = T(1) / tau;
    for (std::size_t i = lo; i < hi; ++i) {
        const T g = gy[i] * diffbio::sigmoid_derivative((x[i] - t) / tau) * inv;
        if (x_grad != nullptr) x_grad[i] += g;
        sum_g += g;
        sum_gz += g * (x[i] - t);
    }
}
template <class T>
inline void soft_threshold_finish(double sum_g, double sum_gz, T tau, T* t_grad, T* tau_grad) {
    if (t_grad != nullptr) *t_grad -= static_cast<T>(sum_g);
    if (tau_grad != nullptr) *tau_grad -= static_cast<T>(sum_gz / static_cast<double>(tau));
}
} // namespace detail

template <>
struct SoftThreshold<exec::Cpu> {
    template <class T>
    static void forward(const exec::Cpu&, const T* x, std::size_t n, T t, T tau, T* out) {
        for (std::size_t i = 0; i < n; ++i) out[i] = diffbio::sigmoid((x[i] - t) / tau);
    }
    template <class T>
    static void backward(const exec::Cpu&, const T* x, const T* gy, std::size_t n, T t, T tau, T* x_grad, T* t_grad,
                         T* tau_grad) {
        double sum_g = 0, sum_gz = 0; // double accumulators also for float data
        detail::soft_threshold_backward_range(x, gy, 0, n, t, tau, x_grad, sum_g, sum_gz);
        detail::soft_threshold_finish(sum_g, sum_gz, tau, t_grad, tau_grad);
    }
};

template <>
struct SoftThreshold<exec::CpuParallel> {
    template <class T>
    static void forward(const exec::CpuParallel& p, const T* x, std::size_t n, T t, T tau, T* out) {
        const auto nn = static_cast<std::ptrdiff_t>(n);
        [[maybe_unused]] const int threads = exec::thread_count(p);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t i = 0; i < nn; ++i) out[i] = diffbio::sigmoid((x[i] - t) / tau);
    }
    template <class T>
    static void backward(const exec::CpuParallel& p, const T* x, const T* gy, std::size_t n, T t, T tau, T* x_grad,
                         T* t_grad, T* tau_grad) {
        double sum_g = 0, sum_gz = 0;
        [[maybe_unused]] const int threads = exec::thread_count(p);
        DIFFBIO_OMP(parallel num_threads(threads) reduction(+ : sum_g, sum_gz))
        {
            const exec::Range r = exec::this_thread_range(n);
            detail::soft_threshold_backward_range(x, gy, r.lo, r.hi, t, tau, x_grad, sum_g, sum_gz);
        }
        detail::soft_threshold_finish(sum_g, sum_gz, tau, t_grad, tau_grad);
    }
};

} // namespace backend

/// Array form: out[i] = σ((x[i] − t)/τ). O(n). See the header comment for the backends.
template <exec::Policy P, class X, class Th, class Tau, class R>
void soft_threshold(const P& policy, std::span<const X> x, const Th& t, const Tau& tau, std::span<R> out) {
    static_assert(std::is_same_v<R, promote_t<X, Th, Tau>>,
                  "soft_threshold: the output scalar must be the promoted type of x, t and tau");
    check_temperature(tau, "soft_threshold");
    check_size(out.size(), x.size(), "soft_threshold", "output");
    if constexpr (std::is_floating_point_v<R>) {
        if constexpr (std::is_same_v<X, R>) {
            backend::SoftThreshold<P>::forward(policy, x.data(), x.size(), static_cast<R>(t), static_cast<R>(tau),
                                               out.data());
        } else {
            static_assert(exec::HostPolicy<P>, "soft_threshold: on a device, x must have the output's floating type");
            const std::vector<R> xr(x.begin(), x.end()); // e.g. float data with double parameters
            backend::SoftThreshold<P>::forward(policy, xr.data(), xr.size(), static_cast<R>(t), static_cast<R>(tau),
                                               out.data());
        }
    } else if constexpr (soft::detail::is_var_v<R>) {
        static_assert(exec::HostPolicy<P>, "soft_threshold: Var lives on the host tape; use exec::Cpu or CpuParallel");
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = soft::detail::saved_values(tape, x);
        const double tv = soft::detail::primal_scalar(t);
        const double sv = soft::detail::primal_scalar(tau);
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(x), soft::detail::node_input(t), soft::detail::node_input(tau)}, x.size(),
            [policy, saved, tv, sv](const ad::NodeGrad& g) {
                const auto xv = soft::detail::input_values<X>(g, 0, saved);
                const auto gx = g.in_adjoint(0);
                double gt = 0.0, gs = 0.0;
                backend::SoftThreshold<P>::backward(policy, xv.data(), g.out_adjoint().data(), xv.size(), tv, sv,
                                                    gx.empty() ? nullptr : gx.data(), &gt, &gs);
                if (!g.in_adjoint(1).empty()) g.in_adjoint(1)[0] += gt;
                if (!g.in_adjoint(2).empty()) g.in_adjoint(2)[0] += gs;
            });
        const auto xv = soft::detail::forward_values(tape, x, saved);
        backend::SoftThreshold<P>::forward(policy, xv.data(), xv.size(), tv, sv, tape.values_of(y).data());
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else {
        static_assert(exec::HostPolicy<P>, "soft_threshold: AD scalars run on the host; use exec::Cpu or CpuParallel");
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = soft_threshold(x[i], t, tau);
    }
}

/// Array form returning a new vector (host policies).
template <exec::HostPolicy P, class X, class Th, class Tau>
std::vector<promote_t<X, Th, Tau>> soft_threshold(const P& policy, std::span<const X> x, const Th& t,
                                                  const Tau& tau) {
    std::vector<promote_t<X, Th, Tau>> out(x.size());
    soft_threshold(policy, x, t, tau, std::span<promote_t<X, Th, Tau>>(out));
    return out;
}

/// Backward of the float/double array form for any policy (memory of the policy's kind): given
/// gy = ∂L/∂out, accumulates ∂L/∂x into x_grad (may be empty) and returns ∂L/∂t and ∂L/∂τ.
/// Recomputes σ' from x, so it needs no saved forward output.
struct SoftThresholdGrad {
    double t = 0.0;
    double tau = 0.0;
};
template <exec::Policy P, class T>
    requires std::is_floating_point_v<T>
SoftThresholdGrad soft_threshold_backward(const P& policy, std::span<const T> x, T t, T tau, std::span<const T> gy,
                                          std::span<T> x_grad) {
    check_temperature(tau, "soft_threshold_backward");
    check_size(gy.size(), x.size(), "soft_threshold_backward", "output gradient");
    if (!x_grad.empty()) check_size(x_grad.size(), x.size(), "soft_threshold_backward", "x gradient");
    T gt = 0, gs = 0;
    backend::SoftThreshold<P>::backward(policy, x.data(), gy.data(), x.size(), t, tau,
                                        x_grad.empty() ? nullptr : x_grad.data(), &gt, &gs);
    return {static_cast<double>(gt), static_cast<double>(gs)};
}

/// Σ_i σ((x_i − t)/τ): a soft count of the x_i above t. O(n). For Var it records ONE node
/// (inputs: x if Var, t, τ; output: the sum) whose backward recomputes σ instead of storing it.
template <class X, class Th, class Tau>
promote_t<X, Th, Tau> sum_sigmoid_threshold(std::span<const X> x, const Th& t, const Tau& tau) {
    using R = promote_t<X, Th, Tau>;
    check_temperature(tau, "sum_sigmoid_threshold");
    if constexpr (soft::detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const std::span<const double> saved = soft::detail::saved_values(tape, x);
        const double tv = soft::detail::primal_scalar(t);
        const double sv = soft::detail::primal_scalar(tau);
        double sum = 0.0;
        for (const double v : soft::detail::forward_values(tape, x, saved)) sum += diffbio::sigmoid((v - tv) / sv);
        const double total[1] = {sum};
        auto y = tape.record_node(
            {soft::detail::node_inputs(x), soft::detail::node_input(t), soft::detail::node_input(tau)}, total,
            [saved, tv, sv](const ad::NodeGrad& g) {
                const auto xv = soft::detail::input_values<X>(g, 0, saved);
                const double gy = g.out_adjoint()[0];
                const double inv = 1.0 / sv;
                const auto gx = g.in_adjoint(0);
                double sum_g = 0.0, sum_gz = 0.0;
                for (std::size_t i = 0; i < xv.size(); ++i) {
                    const double z = xv[i] - tv;
                    const double gi = gy * diffbio::sigmoid_derivative(z / sv) * inv;
                    if (!gx.empty()) gx[i] += gi;
                    sum_g += gi;
                    sum_gz += gi * z;
                }
                if (!g.in_adjoint(1).empty()) g.in_adjoint(1)[0] -= sum_g;
                if (!g.in_adjoint(2).empty()) g.in_adjoint(2)[0] -= sum_gz * inv;
            });
        return y[0];
    } else {
        R sum = R(0.0);
        for (const X& v : x) sum = sum + soft_threshold(v, t, tau);
        return sum;
    }
}

} // namespace diffbio::soft
