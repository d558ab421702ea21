#pragma once
// Losses, generic in the scalar (float, double, Dual, Var; predictions and targets may mix a
// plain number with an AD type). Every loss is a MEAN (over elements, or over rows for the
// cross-entropies) and throws InvalidArgument on empty input, ShapeError on mismatched sizes.
//
//   mse(p, y)                                   (1/n) Σ (p_i − y_i)²
//       p̄_i = 2(p_i − y_i)/n,  ȳ_i = −p̄_i
//   binary_cross_entropy_with_logits(z, y)      (1/n) Σ softplus(z_i) − y_i z_i
//       = −[y log σ(z) + (1 − y) log σ(−z)], stable for every finite z (no log of a rounded σ)
//       z̄_i = (σ(z_i) − y_i)/n,  ȳ_i = −z_i/n
//   cross_entropy_with_logits(z, y, R, C)       (1/R) Σ_r [ (Σ_c y_rc)·LSE(z_r) − Σ_c y_rc z_rc ]
//       = −(1/R) Σ_r Σ_c y_rc log softmax(z_r)_c for soft (or one-hot) targets y, LSE max-shifted
//       z̄_rc = ((Σ_k y_rk)·p_rc − y_rc)/R,  ȳ_rc = (LSE(z_r) − z_rc)/R
//   cross_entropy_with_labels(z, labels, R, C)  the same with integer class labels (one-hot y)
//
// All O(n). For Var each loss records ONE fused node (a single output) whose backward is the
// elementwise formula above; sums accumulate in double.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::nn {

namespace detail {

inline void check_loss_sizes(std::size_t np, std::size_t ny, const char* where) {
    if (np == 0) throw InvalidArgument(std::string(where) + ": empty input (the mean of nothing)");
    if (np != ny) {
        throw ShapeError(std::string(where) + ": predictions have " + std::to_string(np) + " elements but targets " +
                         std::to_string(ny));
    }
}

inline void check_rows(std::size_t n, std::size_t rows, std::size_t cols, const char* where) {
    if (rows == 0 || cols == 0) throw InvalidArgument(std::string(where) + ": empty input (rows and cols must be >= 1)");
    if (n != rows * cols) {
        throw ShapeError(std::string(where) + ": logits have " + std::to_string(n) + " elements, expected rows × cols = " +
                         std::to_string(rows) + " × " + std::to_string(cols) + " = " + std::to_string(rows * cols));
    }
}

/// Max-shifted log Σ_c e^{z_c} of a row of doubles.
inline double row_lse(const double* z, std::size_t cols) {
    double m = z[0];
    for (std::size_t c = 1; c < cols; ++c) m = z[c] > m ? z[c] : m;
    double s = 0.0;
    for (std::size_t c = 0; c < cols; ++c) s += std::exp(z[c] - m);
    return m + std::log(s);
}

/// Generic max-shifted log-sum-exp of a row (shift by the passive max).
template <class Z>
Z row_lse_generic(const Z* z, std::size_t cols) {
    using std::exp;
    using std::log;
    double m = primal(z[0]);
    for (std::size_t c = 1; c < cols; ++c) m = primal(z[c]) > m ? primal(z[c]) : m;
    const Z mt = passive<Z>(m);
    Z s = exp(z[0] - mt);
    for (std::size_t c = 1; c < cols; ++c) s = s + exp(z[c] - mt);
    return mt + log(s);
}

/// A one-output node over (a, b): value v; backward(gy, av, bv, ga, gb) fills the input adjoints.
template <class A, class B, class F>
ad::Var scalar_node(std::span<const A> a, std::span<const B> b, double v, F backward) {
    ad::Tape& tape = ad::Tape::active();
    const auto saved_a = soft::detail::saved_values(tape, a);
    const auto saved_b = soft::detail::saved_values(tape, b);
    const double out[1] = {v};
    auto y = tape.record_node({soft::detail::node_inputs(a), soft::detail::node_inputs(b)}, out,
                              [saved_a, saved_b, backward](const ad::NodeGrad& g) {
                                  backward(g.out_adjoint()[0], soft::detail::input_values<A>(g, 0, saved_a),
                                           soft::detail::input_values<B>(g, 1, saved_b), g.in_adjoint(0),
                                           g.in_adjoint(1));
                              });
    return y[0];
}

template <class X>
std::span<const double> values_now(std::span<const X> x, std::vector<double>& buf) {
    buf.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) buf[i] = soft::detail::primal_scalar(x[i]);
    return buf;
}

} // namespace detail

/// Mean squared error (1/n) Σ (p_i − y_i)². Var: one node.
template <class P, class Y>
promote_t<P, Y> mse(std::span<const P> pred, std::span<const Y> target) {
    using R = promote_t<P, Y>;
    detail::check_loss_sizes(pred.size(), target.size(), "mse");
    const double inv_n = 1.0 / static_cast<double>(pred.size());
    if constexpr (soft::detail::is_var_v<R>) {
        std::vector<double> pb, yb;
        const auto pv = detail::values_now(pred, pb);
        const auto yv = detail::values_now(target, yb);
        double s = 0.0;
        for (std::size_t i = 0; i < pv.size(); ++i) s += (pv[i] - yv[i]) * (pv[i] - yv[i]);
        return detail::scalar_node(pred, target, s * inv_n,
                                   [inv_n](double gy, auto p, auto y, std::span<double> gp, std::span<double> gt) {
                                       for (std::size_t i = 0; i < p.size(); ++i) {
                                           const double d = 2.0 * gy * (p[i] - y[i]) * inv_n;
                                           if (!gp.empty()) gp[i] += d;
                                           if (!gt.empty()) gt[i] -= d;
                                       }
                                   });
    } else {
        R s = passive<R>(0.0);
        for (std::size_t i = 0; i < pred.size(); ++i) {
            const R d = pred[i] - target[i];
            s = s + d * d;
        }
        return s * static_cast<typename ScalarTraits<R>::value_type>(inv_n);
    }
}

/// Mean binary cross-entropy on logits: (1/n) Σ softplus(z_i) − y_i z_i (targets y_i ∈ [0, 1]).
/// Var: one node.
template <class Z, class Y>
promote_t<Z, Y> binary_cross_entropy_with_logits(std::span<const Z> logits, std::span<const Y> targets) {
    using R = promote_t<Z, Y>;
    detail::check_loss_sizes(logits.size(), targets.size(), "binary_cross_entropy_with_logits");
    const double inv_n = 1.0 / static_cast<double>(logits.size());
    if constexpr (soft::detail::is_var_v<R>) {
        std::vector<double> zb, yb;
        const auto zv = detail::values_now(logits, zb);
        const auto yv = detail::values_now(targets, yb);
        double s = 0.0;
        for (std::size_t i = 0; i < zv.size(); ++i) s += diffbio::softplus(zv[i]) - yv[i] * zv[i];
        return detail::scalar_node(logits, targets, s * inv_n,
                                   [inv_n](double gy, auto z, auto y, std::span<double> gz, std::span<double> gt) {
                                       const double g = gy * inv_n;
                                       for (std::size_t i = 0; i < z.size(); ++i) {
                                           if (!gz.empty()) gz[i] += g * (diffbio::sigmoid(z[i]) - y[i]);
                                           if (!gt.empty()) gt[i] -= g * z[i];
                                       }
                                   });
    } else {
        using diffbio::softplus;
        R s = passive<R>(0.0);
        for (std::size_t i = 0; i < logits.size(); ++i) s = s + (softplus(R(logits[i])) - targets[i] * logits[i]);
        return s * static_cast<typename ScalarTraits<R>::value_type>(inv_n);
    }
}

/// Mean over rows of the cross-entropy between soft targets y [rows × cols] and softmax(z_r):
/// (1/R) Σ_r [(Σ_c y_rc)·LSE(z_r) − Σ_c y_rc z_rc]. Var: one node.
template <class Z, class Y>
promote_t<Z, Y> cross_entropy_with_logits(std::span<const Z> logits, std::span<const Y> targets, std::size_t rows,
                                          std::size_t cols) {
    using R = promote_t<Z, Y>;
    const char* where = "cross_entropy_with_logits";
    detail::check_rows(logits.size(), rows, cols, where);
    detail::check_loss_sizes(logits.size(), targets.size(), where);
    const double inv_r = 1.0 / static_cast<double>(rows);
    if constexpr (soft::detail::is_var_v<R>) {
        std::vector<double> zb, yb;
        const auto zv = detail::values_now(logits, zb);
        const auto yv = detail::values_now(targets, yb);
        double s = 0.0;
        for (std::size_t r = 0; r < rows; ++r) {
            const double lse = detail::row_lse(zv.data() + r * cols, cols);
            for (std::size_t c = 0; c < cols; ++c) s += yv[r * cols + c] * (lse - zv[r * cols + c]);
        }
        return detail::scalar_node(
            logits, targets, s * inv_r,
            [inv_r, rows, cols](double gy, auto z, auto y, std::span<double> gz, std::span<double> gt) {
                const double g = gy * inv_r;
                for (std::size_t r = 0; r < rows; ++r) {
                    const std::size_t o = r * cols;
                    const double lse = detail::row_lse(z.data() + o, cols);
                    double ysum = 0.0;
                    for (std::size_t c = 0; c < cols; ++c) ysum += y[o + c];
                    for (std::size_t c = 0; c < cols; ++c) {
                        if (!gz.empty()) gz[o + c] += g * (ysum * std::exp(z[o + c] - lse) - y[o + c]);
                        if (!gt.empty()) gt[o + c] += g * (lse - z[o + c]);
                    }
                }
            });
    } else {
        R s = passive<R>(0.0);
        for (std::size_t r = 0; r < rows; ++r) {
            const Z lse = detail::row_lse_generic(logits.data() + r * cols, cols);
            for (std::size_t c = 0; c < cols; ++c) s = s + targets[r * cols + c] * (lse - logits[r * cols + c]);
        }
        return s * static_cast<typename ScalarTraits<R>::value_type>(inv_r);
    }
}

/// Mean over rows of −log softmax(z_r)[labels[r]] (labels[r] < cols, else InvalidArgument).
/// Var: one node.
template <class Z>
Z cross_entropy_with_labels(std::span<const Z> logits, std::span<const std::uint32_t> labels, std::size_t rows,
                            std::size_t cols) {
    const char* where = "cross_entropy_with_labels";
    detail::check_rows(logits.size(), rows, cols, where);
    if (labels.size() != rows) {
        throw ShapeError(std::string(where) + ": " + std::to_string(labels.size()) + " labels for " +
                         std::to_string(rows) + " rows");
    }
    for (std::size_t r = 0; r < rows; ++r) {
        if (labels[r] >= cols) {
            throw InvalidArgument(std::string(where) + ": label " + std::to_string(labels[r]) + " of row " +
                                  std::to_string(r) + " is not < cols = " + std::to_string(cols));
        }
    }
    using Y = std::conditional_t<std::is_same_v<Z, float>, float, double>; // keeps promote_t<Z, Y> == Z
    std::vector<Y> onehot(rows * cols, Y(0));
    for (std::size_t r = 0; r < rows; ++r) onehot[r * cols + labels[r]] = Y(1);
    return cross_entropy_with_logits(logits, std::span<const Y>(onehot), rows, cols);
}

} // namespace diffbio::nn
