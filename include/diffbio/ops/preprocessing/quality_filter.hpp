#pragma once
// QualityFilter: the smooth replacement of a Phred cutoff.
//
//   w_{i,l} = σ((q_{i,l} − θ)/s)        per-base retention weight (0 in padding)
//   seq'_{i,l,a} = seq_{i,l,a} · w_{i,l} quality is passed through unchanged
//
// θ (the threshold) is a learnable Parameter, default 20; s (softness) is a fixed positive
// constant, default 1 (DiffBio's value). As s → 0, w becomes the hard mask [q > θ].
// Gradients: ∂w/∂θ = −σ'(z)/s, ∂w/∂q = σ'(z)/s with z = (q − θ)/s; ∂seq'/∂seq = w.
// O(N·L). For Var the weights and the masked reads are ONE fused node whatever N·L is (its forward
// computes σ and σ' in double SIMD registers, its backward is one pass over the bases, from σ'(z)
// kept by the forward); float and double run one fused
// pass per read, float with σ in SIMD registers (core/simd.hpp); Dual goes elementwise. Bad config
// values throw InvalidArgument.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/simd.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>
#include <diffbio/soft/threshold.hpp>

namespace diffbio::ops {

struct QualityFilterConfig {
    double initial_threshold = 20.0;
    double softness = 1.0;
    void validate() const {
        check_finite(initial_threshold, "QualityFilterConfig", "initial_threshold");
        check_temperature(softness, "QualityFilterConfig", "softness");
    }
};

template <class T>
struct QualityFilterResult {
    std::vector<T> seq;     ///< [N × L × 4] masked reads
    std::vector<T> weights; ///< [N × L] retention weights (0 in padding)
};

class QualityFilter {
public:
    explicit QualityFilter(QualityFilterConfig cfg = {}) : cfg_((cfg.validate(), cfg)), theta_("quality_threshold", cfg.initial_threshold) {}

    const QualityFilterConfig& config() const noexcept { return cfg_; }
    ad::Parameter& threshold() noexcept { return theta_; }
    const ad::Parameter& threshold() const noexcept { return theta_; }
    std::vector<ad::Parameter*> parameters() { return {&theta_}; }

    /// Weights and masked reads for reads `seq` [N×L×4] with qualities [N×L] (padding beyond
    /// lengths[i] gets weight 0). S is the scalar of the incoming reads (plain data or AD).
    /// ShapeError for inconsistent shapes; InvalidArgument naming the read and position of a NaN or
    /// ±inf base or quality (padding included), thrown before anything is recorded on a tape.
    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    QualityFilterResult<promote_t<T, S>> apply(ad::Binder<T>& bind, const ReadsView<S, Q>& reads, const P& policy = {}) const {
        using R = promote_t<T, S>;
        reads.validate_shapes("QualityFilter");
        const T theta = bind(theta_)[0];
        const double s = cfg_.softness;
        if constexpr (std::is_floating_point_v<R> && std::is_arithmetic_v<Q>) {
            return apply_plain<R>(static_cast<R>(theta), reads, policy); // checks the values read by read
        } else {
            reads.check_values("QualityFilter");
            if constexpr (soft::detail::is_var_v<R> && (std::is_arithmetic_v<Q> || soft::detail::is_var_v<Q>)) {
                return apply_var(theta, reads, policy);
            } else {
                QualityFilterResult<R> out;
                // Weights for every position (padding included), then zero the padding.
                const auto w = soft::soft_threshold(policy, reads.quality, theta, s);
                out.weights = mask_padding<R>(w, reads);
                out.seq = scale_rows(policy, reads.seq, std::span<const R>(out.weights), 4);
                return out;
            }
        }
    }

private:
    /// float/double without AD: weights and masking in one pass per read (no temporaries); float
    /// evaluates σ in SIMD registers (simd::sigmoid, ≤ 1.2e-7 absolute from the exact value). NaN
    /// and ±inf are looked for after each group of 8 reads, while its data is in cache: in the
    /// qualities, and in the masked bases y = x·w, which are finite exactly where x is (w is in
    /// [0, 1] for a finite q, and ∞·0 is NaN), so the data is not read a second time from memory;
    /// a group that has one makes check_values throw after the loop.
    template <class R, class S, class Q, class P>
    QualityFilterResult<R> apply_plain(R theta, const ReadsView<S, Q>& reads, const P& policy) const {
        const std::size_t n = reads.n, L = reads.length;
        QualityFilterResult<R> out;
        out.weights.assign(n * L, R(0));
        out.seq.assign(n * L * 4, R(0));
        const R soft = clamp_temperature(static_cast<R>(cfg_.softness)); // the hard step, 0.5 at q = θ, below R's range
        auto one_read = [&](std::size_t i) {
            const std::size_t len = reads.lengths[i];
            const Q* q = reads.quality.data() + i * L;
            R* w = out.weights.data() + i * L;
            std::size_t l = 0;
#if DIFFBIO_HAVE_VECTOR_EXT
            if constexpr (std::is_same_v<R, float> && std::is_same_v<Q, float>) {
                const simd::vf t = simd::broadcast(theta), k = simd::broadcast(soft);
                for (; l + simd::lanes <= len; l += simd::lanes) simd::store(w + l, simd::sigmoid((simd::load(q + l) - t) / k));
            }
#endif
            for (; l < len; ++l) w[l] = diffbio::sigmoid((static_cast<R>(q[l]) - theta) / soft);
            const S* x = reads.seq.data() + i * L * 4;
            R* y = out.seq.data() + i * L * 4;
            for (std::size_t j = 0; j < len; ++j) {
                for (std::size_t a = 0; a < 4; ++a) y[j * 4 + a] = static_cast<R>(x[j * 4 + a]) * w[j];
            }
            // the padding's bases are not multiplied: looked at here
            return first_nonfinite(std::span<const S>(x + len * 4, (L - len) * 4)) != (L - len) * 4;
        };
        constexpr std::size_t group = 8;
        // 1 when a read of group k holds a NaN or ±inf (padding included)
        const auto one_group = [&](std::size_t k) {
            const std::size_t i0 = k * group, m = std::min(n, i0 + group) - i0;
            bool bad = false;
            for (std::size_t i = i0; i < i0 + m; ++i) bad = one_read(i) || bad;
            bad = bad || first_nonfinite(reads.quality.subspan(i0 * L, m * L)) != m * L ||
                  first_nonfinite(std::span<const R>(out.seq).subspan(i0 * L * 4, m * L * 4)) != m * L * 4;
            return bad ? 1 : 0;
        };
        const std::size_t groups = (n + group - 1) / group;
        int bad = 0; // no exception may leave an OpenMP region: count, then throw after it
        if constexpr (std::is_same_v<P, exec::CpuParallel>) {
            [[maybe_unused]] const int threads = exec::thread_count(policy);
            const auto ng = static_cast<std::ptrdiff_t>(groups);
            DIFFBIO_OMP(parallel for schedule(static) reduction(+ : bad) num_threads(threads))
            for (std::ptrdiff_t k = 0; k < ng; ++k) bad += one_group(static_cast<std::size_t>(k));
        } else {
            for (std::size_t k = 0; k < groups; ++k) bad += one_group(k);
        }
        if (bad > 0) reads.check_values("QualityFilter");
        return out;
    }

    /// Var: ONE node with outputs [w (N×L), seq' (N×L×4)] and inputs seq and quality (when they are
    /// Var) and θ (when it is). The forward keeps σ'(z) per base (N·L doubles in the tape's arena) for
    /// the backward, which is one pass: w̄ = ∂L/∂w + Σ_a ∂L/∂seq'_a·seq_a, g = w̄·σ'(z)/s,
    /// q̄ += g, θ̄ −= Σ g, seq̄ += ∂L/∂seq'·w (padding: w = 0, no q/θ gradient). CpuParallel splits
    /// both passes over reads.
    template <class T, class S, class Q, class P>
    QualityFilterResult<ad::Var> apply_var(const T& theta, const ReadsView<S, Q>& reads, const P& policy) const {
        namespace sd = soft::detail;
        ad::Tape& tape = ad::Tape::active();
        const std::size_t n = reads.n, L = reads.length, nl = n * L;
        const double soft = cfg_.softness, tv = sd::primal_scalar(theta);
        // plain reads kept in their own type for the backward (float: half a double copy's bytes)
        const auto saved_x = sd::saved_plain(tape, reads.seq);
        const std::span<std::uint32_t> lens = tape.allocate<std::uint32_t>(n);
        std::copy(reads.lengths.begin(), reads.lengths.end(), lens.begin());
        const std::span<double> dsig = tape.allocate<double>(nl); // σ'(z)/s, 0 in padding
        // The handles go straight into the result: weights first, then the masked reads.
        QualityFilterResult<ad::Var> out;
        out.weights.resize(nl);
        out.seq.resize(nl * 4);
        const std::span<double> yv = tape.record_node_into(
            {sd::node_inputs(reads.seq), sd::node_inputs(reads.quality), sd::node_input(theta)},
            {std::span<ad::Var>(out.weights), std::span<ad::Var>(out.seq)}, [=](const ad::NodeGrad& g) {
                const auto w = g.out_value();
                const auto ybar = g.out_adjoint();
                const auto gx = g.in_adjoint(0), gq = g.in_adjoint(1);
                double theta_bar = 0.0;
                const auto nn = static_cast<std::ptrdiff_t>(n);
                [[maybe_unused]] const int threads = exec::thread_count(policy);
                DIFFBIO_OMP(parallel for schedule(static) reduction(+ : theta_bar) num_threads(threads)
                                if (std::is_same_v<P, exec::CpuParallel>))
                for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                    const std::size_t i = static_cast<std::size_t>(ii), len = lens[i];
                    for (std::size_t l = 0; l < len; ++l) {
                        const std::size_t b = i * L + l;
                        const double* sbar = ybar.data() + nl + b * 4;
                        double wbar = ybar[b];
                        for (std::size_t a = 0; a < 4; ++a) {
                            wbar += sbar[a] * sd::input_at<S>(g, 0, saved_x, b * 4 + a);
                            if (!gx.empty()) gx[b * 4 + a] += sbar[a] * w[b];
                        }
                        const double gb = wbar * dsig[b];
                        if (!gq.empty()) gq[b] += gb;
                        theta_bar -= gb;
                    }
                }
                if (!g.in_adjoint(2).empty()) g.in_adjoint(2)[0] += theta_bar;
            });
        std::span<const double> x_var;
        if constexpr (sd::is_var_v<S>) x_var = sd::forward_values(tape, reads.seq, {});
        // The qualities serve the forward only (the backward has σ'): the data, or the Vars' values.
        std::span<const double> q_var;
        if constexpr (sd::is_var_v<Q>) q_var = sd::forward_values(tape, reads.quality, {});
        const auto quality_at = [&](std::size_t b) {
            if constexpr (sd::is_var_v<Q>) {
                return q_var[b];
            } else {
                return static_cast<double>(reads.quality[b]);
            }
        };
        const auto nn = static_cast<std::ptrdiff_t>(n);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
            const std::size_t i = static_cast<std::size_t>(ii), len = lens[i];
            double* w = yv.data() + i * L;
            double* d = dsig.data() + i * L;
            // z into w first, then σ(z) and σ'(z)/s over the read in place (SIMD where built with it)
            for (std::size_t l = 0; l < len; ++l) w[l] = (quality_at(i * L + l) - tv) / soft;
            std::size_t l = 0;
#if DIFFBIO_HAVE_VECTOR_EXT
            using pd = simd::pack<double, simd::native_lanes<double>>;
            for (; l + pd::size <= len; l += pd::size) {
                pd sig, ds;
                simd::sigmoid_with_derivative(pd::load(w + l), sig, ds);
                sig.store(w + l);
                (ds / pd::broadcast(soft)).store(d + l);
            }
#endif
            for (; l < len; ++l) {
                diffbio::sigmoid_with_derivative(w[l], w[l], d[l]);
                d[l] /= soft;
            }
            std::fill(w + len, w + L, 0.0);
            std::fill(d + len, d + L, 0.0);
            double* y = yv.data() + nl + i * L * 4;
            // one base (4 channels) per step: the compiler vectorises this form, not y[j] = x[j]·w[j/4]
            const auto scale = [&](const auto* x) {
                for (std::size_t l2 = 0; l2 < L; ++l2) {
                    for (std::size_t a = 0; a < 4; ++a) y[l2 * 4 + a] = static_cast<double>(x[l2 * 4 + a]) * w[l2];
                }
            };
            if constexpr (sd::is_var_v<S>) {
                scale(x_var.data() + i * L * 4);
            } else {
                scale(reads.seq.data() + i * L * 4);
            }
        }
        return out;
    }

    template <class R, class W, class S, class Q>
    static std::vector<R> mask_padding(const std::vector<W>& w, const ReadsView<S, Q>& reads) {
        std::vector<R> out;
        out.reserve(w.size());
        for (std::size_t i = 0; i < reads.n; ++i) {
            for (std::size_t l = 0; l < reads.length; ++l) {
                out.push_back(l < reads.lengths[i] ? R(w[i * reads.length + l]) : passive<R>(0.0));
            }
        }
        return out;
    }

    QualityFilterConfig cfg_;
    ad::Parameter theta_;
};

} // namespace diffbio::ops
