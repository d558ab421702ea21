#pragma once
// Linear (fully connected) layer: y = f(x·W + b), Flax/DiffBio convention (spec §0).
//
//   x  [rows × in]   row-major, plain data (float/double) or the layer's scalar
//   W  [in × out]    row-major, LeCun-normal init (truncated normal, variance 1/in)
//   b  [out]         zero init
//   f                an optional fused activation (nn::Activation), none by default
//
// Gradient, with Z = xW + b and Z̄ = Ȳ ⊙ f'(Z):  x̄ += Z̄ Wᵀ,  W̄ += xᵀ Z̄,  b̄ += Σ_rows Z̄.
// Cost O(rows·in·out). float/double run Eigen GEMMs on Eigen::Map views (no copies when x has
// the layer's type). Var records ONE fused node per call (inputs: x if Var, W, b; outputs the
// rows × out block) whose backward is three Eigen GEMM/reductions over the node's contiguous
// adjoint blocks; f' is recovered from the node's output values, so nothing else is stored
// (a plain-number x is copied once into the tape's arena). Dual runs plain loops.
// Policies: exec::Cpu runs Eigen's GEMM on the calling thread; exec::CpuParallel{n} splits the
// rows into n blocks (at least 64 rows each) on OpenMP threads, each a single-threaded GEMM;
// the backward adds the blocks' W̄, b̄ in block order, so results are deterministic for a given
// thread count. (The diffbio::diffbio target defines EIGEN_DONT_PARALLELIZE, so Eigen never starts
// threads of its own: the policy alone decides.)

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/nn/activation.hpp>
#include <diffbio/nn/init.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::nn {

namespace detail {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using RowVectorMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <class T>
using ConstRowVectorMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

inline Eigen::Index eidx(std::size_t n) noexcept { return static_cast<Eigen::Index>(n); }

/// For its lifetime, Eigen's GEMMs on the calling thread run on that thread only (the OpenMP
/// nthreads ICV, which Eigen reads, is set to 1 and restored afterwards). exec::CpuParallel
/// parallelises over blocks of rows instead (see for_row_chunks): for the tall, thin products of
/// a batched layer that scales better than Eigen's own parallel GEMM.
class SerialGemm {
public:
    SerialGemm() {
#if defined(_OPENMP)
        saved_ = omp_get_max_threads();
        omp_set_num_threads(1);
#endif
    }
    SerialGemm(const SerialGemm&) = delete;
    SerialGemm& operator=(const SerialGemm&) = delete;
    ~SerialGemm() {
#if defined(_OPENMP)
        omp_set_num_threads(saved_);
#endif
    }

private:
    [[maybe_unused]] int saved_ = 1;
};

/// Number of row chunks a policy splits `rows` into: 1 for exec::Cpu; for exec::CpuParallel one
/// per thread, but no chunk under 64 rows.
template <class P>
std::size_t row_chunks(const P& policy, std::size_t rows) {
    if constexpr (std::is_same_v<std::remove_cvref_t<P>, exec::CpuParallel>) {
        const auto threads = static_cast<std::size_t>(exec::thread_count(policy));
        const std::size_t by_size = rows / 64;
        return std::max<std::size_t>(1, std::min(threads, by_size));
    } else {
        (void)policy;
        (void)rows;
        return 1;
    }
}

/// f(first_row, n_rows, chunk) for `chunks` contiguous row ranges, in parallel for CpuParallel.
template <class P, class F>
void for_row_chunks(const P& policy, std::size_t rows, std::size_t chunks, F&& f) {
    const auto run = [&](std::size_t c) {
        const std::size_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
        f(r0, r1 - r0, c);
    };
    if (chunks == 1) {
        run(0);
        return;
    }
    parallel_for(policy, chunks, run);
}

/// y = op(x·W + b) for plain floating types on one thread (y: rows × out, overwritten).
template <class T>
void linear_forward_rows(const T* x, const T* w, const T* b, std::size_t rows, std::size_t in, std::size_t out,
                         const ActivationOp& op, T* y) {
    if (rows == 0) return;
    MatrixMap<T>(y, eidx(rows), eidx(out)).noalias() =
        ConstMatrixMap<T>(x, eidx(rows), eidx(in)) * ConstMatrixMap<T>(w, eidx(in), eidx(out));
    // Bias and activation in one pass over y.
    for (std::size_t r = 0; r < rows; ++r) {
        T* yr = y + r * out;
        switch (op.kind) {
        case Activation::none:
            for (std::size_t j = 0; j < out; ++j) yr[j] += b[j];
            break;
        case Activation::relu:
            for (std::size_t j = 0; j < out; ++j) {
                const T v = yr[j] + b[j];
                yr[j] = v > T(0) ? v : T(0);
            }
            break;
        default:
            for (std::size_t j = 0; j < out; ++j) yr[j] = op(T(yr[j] + b[j]));
            break;
        }
    }
}

/// Backward of linear_forward_rows on one thread, given gz = Z̄ (rows × out, the gradient at
/// the pre-activation): gx += Z̄ Wᵀ, gw += xᵀ Z̄, gb += column sums of Z̄ (each may be null).
/// T is float or double (the same kernel runs float GEMMs for float-precision gradients).
template <class T>
void linear_backward_rows(const T* x, const T* w, const T* gz, std::size_t rows, std::size_t in, std::size_t out, T* gx,
                          T* gw, T* gb) {
    if (rows == 0) return;
    const ConstMatrixMap<T> GZ(gz, eidx(rows), eidx(out));
    if (gx != nullptr) {
        MatrixMap<T>(gx, eidx(rows), eidx(in)).noalias() += GZ * ConstMatrixMap<T>(w, eidx(in), eidx(out)).transpose();
    }
    if (gw != nullptr) {
        MatrixMap<T>(gw, eidx(in), eidx(out)).noalias() += ConstMatrixMap<T>(x, eidx(rows), eidx(in)).transpose() * GZ;
    }
    if (gb != nullptr) RowVectorMap<T>(gb, eidx(out)) += GZ.colwise().sum();
}

/// Z̄ = Ȳ ⊙ f'(Z) from the outputs Y = f(Z) into buf; returns Ȳ itself when f is the identity.
inline const double* pre_activation_grad(const ActivationOp& op, const double* y, const double* gy, std::size_t n,
                                         std::vector<double>& buf) {
    if (op.kind == Activation::none) return gy;
    buf.resize(n);
    for (std::size_t i = 0; i < n; ++i) buf[i] = gy[i] * op.derivative_from_output(y[i]);
    return buf.data();
}

/// Forward over the policy's row chunks.
template <class P, class T>
void linear_forward_kernel(const P& policy, const T* x, const T* w, const T* b, std::size_t rows, std::size_t in,
                           std::size_t out, const ActivationOp& op, T* y) {
    SerialGemm serial;
    for_row_chunks(policy, rows, row_chunks(policy, rows), [&](std::size_t r0, std::size_t nr, std::size_t) {
        linear_forward_rows(x + r0 * in, w, b, nr, in, out, op, y + r0 * out);
    });
}

/// Backward over the policy's row chunks: x̄ rows are disjoint; W̄ and b̄ are summed per chunk
/// and added in chunk order (deterministic for a fixed thread count). Within a chunk, rows go
/// in sub-blocks of 2048 so that Z̄ = Ȳ ⊙ f'(Y) lives in a small, cache-resident buffer.
template <class P>
void linear_backward_kernel(const P& policy, const double* x, const double* w, const double* y, const double* gy,
                            std::size_t rows, std::size_t in, std::size_t out, const ActivationOp& op, double* gx,
                            double* gw, double* gb) {
    SerialGemm serial;
    const std::size_t chunks = row_chunks(policy, rows);
    constexpr std::size_t sub = 2048;
    const auto run = [&](std::size_t r0, std::size_t nr, double* gwc, double* gbc) {
        std::vector<double> buf;
        for (std::size_t s0 = r0; s0 < r0 + nr; s0 += sub) {
            const std::size_t ns = std::min(sub, r0 + nr - s0);
            const double* gz = pre_activation_grad(op, y + s0 * out, gy + s0 * out, ns * out, buf);
            linear_backward_rows(x + s0 * in, w, gz, ns, in, out, gx != nullptr ? gx + s0 * in : nullptr, gwc, gbc);
        }
    };
    if (chunks == 1) {
        run(0, rows, gw, gb);
        return;
    }
    std::vector<std::vector<double>> part(chunks, std::vector<double>(in * out + out, 0.0));
    for_row_chunks(policy, rows, chunks, [&](std::size_t r0, std::size_t nr, std::size_t c) {
        run(r0, nr, gw != nullptr ? part[c].data() : nullptr, gb != nullptr ? part[c].data() + in * out : nullptr);
    });
    for (const auto& p : part) {
        if (gw != nullptr) {
            for (std::size_t k = 0; k < in * out; ++k) gw[k] += p[k];
        }
        if (gb != nullptr) {
            for (std::size_t k = 0; k < out; ++k) gb[k] += p[in * out + k];
        }
    }
}

inline std::string shape_text(std::size_t a, std::size_t b) {
    return std::to_string(a) + " × " + std::to_string(b) + " = " + std::to_string(a * b);
}

inline void check_linear_shapes(std::size_t nx, std::size_t nw, std::size_t nb, std::size_t rows, std::size_t in,
                                std::size_t out, const std::string& where) {
    if (nx != rows * in) {
        throw ShapeError(where + ": x has " + std::to_string(nx) + " elements, expected rows × in = " + shape_text(rows, in));
    }
    if (nw != in * out) {
        throw ShapeError(where + ": weight has " + std::to_string(nw) + " elements, expected in × out = " + shape_text(in, out));
    }
    if (nb != out) {
        throw ShapeError(where + ": bias has " + std::to_string(nb) + " elements, expected out = " + std::to_string(out));
    }
}

template <class R, class X>
std::span<const R> as_scalar(std::span<const X> x, std::vector<R>& buf) {
    if constexpr (std::is_same_v<X, R>) {
        return x;
    } else {
        buf.assign(x.begin(), x.end());
        return buf;
    }
}

template <class X, class W, class P>
std::vector<promote_t<X, W>> linear_impl(std::span<const X> x, std::size_t rows, std::span<const W> weight,
                                         std::span<const W> bias, std::size_t in, std::size_t out,
                                         const ActivationOp op, const P& policy, const std::string& where) {
    using R = promote_t<X, W>;
    static_assert(exec::HostPolicy<P>, "nn::linear runs on the host: use exec::Cpu or exec::CpuParallel");
    check_linear_shapes(x.size(), weight.size(), bias.size(), rows, in, out, where);
    std::vector<R> y(rows * out);
    if (y.empty()) return y;
    if constexpr (std::is_floating_point_v<R>) {
        std::vector<R> xb, wb, bb;
        const auto xs = as_scalar<R>(x, xb);
        const auto ws = as_scalar<R>(weight, wb);
        const auto bs = as_scalar<R>(bias, bb);
        linear_forward_kernel(policy, xs.data(), ws.data(), bs.data(), rows, in, out, op, y.data());
    } else if constexpr (soft::detail::is_var_v<R>) {
        ad::Tape& tape = ad::Tape::active();
        const auto saved_x = soft::detail::saved_values(tape, x);
        const auto saved_w = soft::detail::saved_values(tape, weight);
        const auto saved_b = soft::detail::saved_values(tape, bias);
        auto yv = tape.record_node_uninitialised(
            {soft::detail::node_inputs(x), soft::detail::node_inputs(weight), soft::detail::node_inputs(bias)}, rows * out,
            [saved_x, saved_w, rows, in, out, op, policy](const ad::NodeGrad& g) {
                const auto xv = soft::detail::input_values<X>(g, 0, saved_x);
                const auto wv = soft::detail::input_values<W>(g, 1, saved_w);
                const auto gx = g.in_adjoint(0);
                const auto gw = g.in_adjoint(1);
                const auto gb = g.in_adjoint(2);
                linear_backward_kernel(policy, xv.data(), wv.data(), g.out_value().data(), g.out_adjoint().data(), rows, in,
                                       out, op, gx.empty() ? nullptr : gx.data(), gw.empty() ? nullptr : gw.data(),
                                       gb.empty() ? nullptr : gb.data());
            });
        const auto xv = soft::detail::forward_values(tape, x, saved_x);
        const auto wv = soft::detail::forward_values(tape, weight, saved_w);
        const auto bv = soft::detail::forward_values(tape, bias, saved_b);
        linear_forward_kernel(policy, xv.data(), wv.data(), bv.data(), rows, in, out, op, tape.values_of(yv).data());
        for (std::size_t i = 0; i < yv.size(); ++i) y[i] = yv[i];
    } else {
        // Forward-mode (and other) scalars: row by row, y_r = b + Σ_k x_rk W_k.
        for (std::size_t r = 0; r < rows; ++r) {
            R* yr = y.data() + r * out;
            for (std::size_t j = 0; j < out; ++j) yr[j] = R(bias[j]);
            for (std::size_t k = 0; k < in; ++k) {
                const R xk = R(x[r * in + k]);
                const W* wk = weight.data() + k * out;
                for (std::size_t j = 0; j < out; ++j) yr[j] = yr[j] + xk * wk[j];
            }
            for (std::size_t j = 0; j < out; ++j) yr[j] = op(yr[j]);
        }
    }
    return y;
}

} // namespace detail

/// y = f(x·W + b) on raw spans: x [rows × in], weight [in × out], bias [out], all row-major;
/// the result is [rows × out] of the promoted scalar. Shape mismatches throw ShapeError naming
/// the sizes; a NaN or ±inf in x, weight or bias throws InvalidArgument naming the entry. See the
/// header comment for gradients, cost and backends.
template <class X, class W, exec::HostPolicy P = exec::Cpu>
std::vector<promote_t<X, W>> linear(std::span<const X> x, std::size_t rows, std::span<const W> weight,
                                    std::span<const W> bias, std::size_t in, std::size_t out,
                                    Activation activation = Activation::none, double negative_slope = 0.01,
                                    const P& policy = {}) {
    check_all_finite(x, "linear", "x");
    check_all_finite(weight, "linear", "weight");
    check_all_finite(bias, "linear", "bias");
    return detail::linear_impl(x, rows, weight, bias, in, out, detail::make_activation(activation, negative_slope, "linear"),
                               policy, "linear");
}

/// A Linear layer owning its parameters: weight [in × out] (LeCun-normal, seeded) and bias [out]
/// (zeros), named "<name>.weight" and "<name>.bias".
class Linear {
public:
    Linear(std::size_t in, std::size_t out, std::uint64_t seed, std::string name = "linear")
        : in_(in), out_(out), name_(std::move(name)) {
        if (in == 0 || out == 0) {
            throw InvalidArgument("Linear '" + name_ + "': 'in' and 'out' must be >= 1, got " + std::to_string(in) +
                                  " and " + std::to_string(out));
        }
        std::vector<double> w(in * out);
        lecun_normal(std::span<double>(w), in, seed);
        weight_ = ad::Parameter(name_ + ".weight", std::move(w));
        bias_ = ad::Parameter(name_ + ".bias", std::vector<double>(out, 0.0));
    }

    ad::Parameter& weight() noexcept { return weight_; }
    const ad::Parameter& weight() const noexcept { return weight_; }
    ad::Parameter& bias() noexcept { return bias_; }
    const ad::Parameter& bias() const noexcept { return bias_; }
    std::vector<ad::Parameter*> parameters() { return {&weight_, &bias_}; }
    std::size_t in_features() const noexcept { return in_; }
    std::size_t out_features() const noexcept { return out_; }
    const std::string& name() const noexcept { return name_; }

    /// y = x·W + b for x [rows × in] (plain numbers, or T); returns [rows × out] of T.
    /// Var: one fused node. Throws ShapeError when x.size() != rows·in, InvalidArgument when an
    /// entry of x is NaN or ±inf.
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    std::vector<T> forward(ad::Binder<T>& bind, std::span<const X> x, std::size_t rows, const P& policy = {}) const {
        return forward(bind, x, rows, Activation::none, 0.01, policy);
    }

    /// y = f(x·W + b) with the activation fused into the same node (Var: still one node; f' is
    /// recovered from y in the backward pass).
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    std::vector<T> forward(ad::Binder<T>& bind, std::span<const X> x, std::size_t rows, Activation activation,
                           double negative_slope = 0.01, const P& policy = {}) const {
        if (first_nonfinite(x) != x.size()) check_all_finite(x, ("Linear '" + name_ + "'").c_str(), "input");
        return forward_unchecked(bind, x, rows, activation, negative_slope, policy);
    }

    /// forward() without the scan of x for NaN and ±inf: for x computed inside a network from
    /// checked data (a hidden layer's input), where the scan would cost a pass over the activations.
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    std::vector<T> forward_unchecked(ad::Binder<T>& bind, std::span<const X> x, std::size_t rows, Activation activation,
                                     double negative_slope = 0.01, const P& policy = {}) const {
        static_assert(std::is_arithmetic_v<X> || std::is_same_v<X, T>,
                      "Linear::forward: x must hold plain numbers or the binder's scalar T");
        const std::span<const T> w = bind(weight_);
        const std::span<const T> b = bind(bias_);
        return detail::linear_impl(x, rows, w, b, in_, out_,
                                   detail::make_activation(activation, negative_slope, "Linear::forward"), policy,
                                   "Linear '" + name_ + "'");
    }

private:
    std::size_t in_;
    std::size_t out_;
    std::string name_;
    ad::Parameter weight_;
    ad::Parameter bias_;
};

} // namespace diffbio::nn
