#pragma once
// CNVSegmentation: differentiable segmentation of coverage log-ratios y [n] (one chromosome, in
// genome order) into K copy-number states, a soft hidden-Markov segmentation.
//
// Scores (learnable: the state means μ [K], the log noise scale log σ, the switch penalty λ):
//   emission   e_t(k) = −(y_t − μ_k)²/(2σ²)            (Gaussian log-likelihood up to a constant)
//   transition 0 to stay in a state, −λ to switch (the boundary penalty)
// A segmentation is a state path z; its score S(z) = Σ_t e_t(z_t) − λ·#switches. With
// temperature τ > 0 the pipeline computes, by forward-backward in log space on scores/τ,
//   F = τ·log Σ_z exp(S(z)/τ)                       (the smoothed best score)
//   posteriors γ_t(k) = P_τ(z_t = k)  [n × K]         (rows sum to 1; γ = ∂F/∂e)
//   boundaries b_t = P_τ(z_{t−1} ≠ z_t)  [n]          (b_0 = 0)
//   smoothed ŷ_t = Σ_k γ_t(k)·μ_k  [n]
// At τ = 1 these are the exact posteriors of the HMM with those scores; as τ → 0, F → the Viterbi
// score and γ → the one-hot Viterbi path (viterbi(), the classic hard segmentation, checked in
// tests/ops/test_cnv.cpp), so a trained model hardens to a plain segmentation.
// Difference from DiffBio's DifferentiableCNVSegmentation (attention boundaries and free
// segment centroids, which have no hard limit): this is a segmental model whose τ → 0 limit is
// a classic algorithm.
// Scalars: double, float, ad::Dual, ad::Var (parameters through Binder<T>, y plain or T).
// double, float and Dual run the recursion in ordinary generic arithmetic (apply_generic), in
// score units with τ-soft maxima m + τ·log Σ exp((x − m)/τ) (soft::smooth_max) and
// soft::softmax, so that nothing overflows as τ → 0.
// Both paths normalise γ_t and the pair marginals behind b_t per position, which keeps every row
// a distribution at any τ (dividing by the global Z instead would carry a rounding error of
// |score|·ε/τ into the exponent). Finite for every τ > 0 in double (τ below 1.2e-38 computes as
// 1.2e-38, already the hard limit); in float F = τ·log Z overflows once it exceeds 3.4e38.
// ad::Var records ONE tape node for all outputs (F, γ, b, ŷ): values from the forward-backward
// in double; its backward pushes the output adjoints into μ, log σ, λ and y analytically:
//   F̄:  ∂F/∂e_t(k) = γ_t(k), ∂F/∂λ = −Σ_t b_t
//   ŷ̄:  γ̄_t(k) += ŷ̄_t·μ_k, μ̄_k += Σ_t ŷ̄_t·γ_t(k)
//   γ̄, b̄: γ and b are the gradient of log Z with respect to the scaled emissions a = e/τ and
//        the per-step switch scores w_t = −λ/τ, so their pull-back is the Hessian of log Z
//        times (γ̄, b̄); the Hessian is symmetric, so this is the directional derivative of
//        (γ, b) along (γ̄, b̄): one forward-mode (Dual<double>) pass of the same recursion.
// τ is a fixed number (not learnable): no adjoint goes to it. apply_generic keeps the plain
// recursion on the tape (O(n·K) records: each soft max and softmax is one node of its own) as
// the reference the fused node is tested against.
// Cost O(n·K²) time for apply_generic; the fused node's recursion is O(n·K) (the stay/switch
// transition structure: Σ_{j≠k} e^{α(j)} = S − e^{α(k)}), its backward about twice that; O(n·K)
// memory.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>
#include <diffbio/soft/smooth_max.hpp>
#include <diffbio/soft/softmax.hpp>

namespace diffbio::ops {

namespace detail {

/// log(e^x + e^y) for scalars of one type (max-shifted on the primal).
template <class R>
R cnv_lse2(const R& x, const R& y) {
    using std::exp;
    using std::log;
    const double m = std::max(primal(x), primal(y));
    return passive<R>(m) + log(exp(x - passive<R>(m)) + exp(y - passive<R>(m)));
}

/// log(p + c·o) where p = e^{x−m} (x ≤ m), c = e^{w}, o ≥ 1: the plain form, or when it
/// underflows (c and p both below the double range: τ → 0 with a large λ) the log-space form.
template <class R>
R cnv_log_mix(const R& p, const R& c, const R& o, const R& x_minus_m, const R& w) {
    using std::log;
    const R v = p + c * o;
    if (primal(v) > 1e-300) return log(v);
    return cnv_lse2(x_minus_m, w + log(o));
}

/// Forward-backward of the stay/switch chain on scaled scores, in log space, O(n·K):
///   a [n×K] emission scores (already divided by τ), w [n] switch scores (w[0] unused),
///   α_t(k) = a_t(k) + log(e^{α_{t−1}(k)} + e^{w_t}·Σ_{j≠k} e^{α_{t−1}(j)}),
///   β_t(j) = log(e^{u(j)} + e^{w_{t+1}}·Σ_{k≠j} e^{u(k)}), u(k) = a_{t+1}(k) + β_{t+1}(k).
/// Writes γ [n×K] and b [n] and returns log Z. γ_t and the pair marginal behind b_t are normalised
/// per position (γ_t(k) = e^{α_t(k) + β_t(k)} / Σ_j e^{α_t(j) + β_t(j)}; b_0 = 0, b_t = the switch
/// terms e^{α_{t−1}(j) + w_t + a_t(k) + β_t(k)}, j ≠ k, over all terms, summed in log space, exact
/// for tiny b): in exact arithmetic the same as dividing by Z, but with scores ~1/τ the rounding of
/// α + β − log Z grows as 1/τ, and per position the rows still sum to 1 at any τ. R: double, or
/// Dual<double> (the backward's Hessian-vector product). Scratch: alpha and beta [n×K].
template <class R>
R cnv_forward_backward(std::span<const R> a, std::span<const R> w, std::size_t K, std::span<R> alpha,
                       std::span<R> beta, std::span<R> gamma, std::span<R> bnd) {
    using std::exp;
    const std::size_t n = w.size();
    std::vector<R> p(K), xm(K);
    // p_j = e^{x_j − m} and Σ_j p_j for one row x; returns m.
    auto shifted = [&](const R* x, R& S) {
        double m = primal(x[0]);
        for (std::size_t j = 1; j < K; ++j) m = std::max(m, primal(x[j]));
        S = passive<R>(0.0);
        for (std::size_t j = 0; j < K; ++j) {
            xm[j] = x[j] - passive<R>(m);
            p[j] = exp(xm[j]);
            S = S + p[j];
        }
        return m;
    };
    for (std::size_t k = 0; k < K; ++k) alpha[k] = a[k];
    R S{};
    for (std::size_t t = 1; t < n; ++t) {
        const double m = shifted(&alpha[(t - 1) * K], S);
        const R c = exp(w[t]);
        for (std::size_t k = 0; k < K; ++k) {
            alpha[t * K + k] = a[t * K + k] + passive<R>(m) + cnv_log_mix(p[k], c, R(S - p[k]), xm[k], w[t]);
        }
    }
    for (std::size_t k = 0; k < K; ++k) beta[(n - 1) * K + k] = passive<R>(0.0);
    std::vector<R> u(K);
    for (std::size_t t = n - 1; t-- > 0;) {
        for (std::size_t k = 0; k < K; ++k) u[k] = a[(t + 1) * K + k] + beta[(t + 1) * K + k];
        const double m = shifted(u.data(), S);
        const R c = exp(w[t + 1]);
        for (std::size_t j = 0; j < K; ++j) {
            beta[t * K + j] = passive<R>(m) + cnv_log_mix(p[j], c, R(S - p[j]), xm[j], w[t + 1]);
        }
    }
    const double mz = shifted(&alpha[(n - 1) * K], S);
    using std::log;
    const R logz = passive<R>(mz) + log(S);
    for (std::size_t t = 0; t < n; ++t) {
        for (std::size_t k = 0; k < K; ++k) u[k] = alpha[t * K + k] + beta[t * K + k];
        shifted(u.data(), S);
        for (std::size_t k = 0; k < K; ++k) gamma[t * K + k] = p[k] / S;
    }
    bnd[0] = passive<R>(0.0);
    std::vector<R> stay(K), sw(K);
    std::vector<bool> has_sw(K);
    for (std::size_t t = 1; t < n; ++t) {
        shifted(&alpha[(t - 1) * K], S); // p_k = e^{α_{t−1}(k) − m}, xm_k = α_{t−1}(k) − m
        double top = -std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < K; ++k) {
            const R uk = a[t * K + k] + beta[t * K + k];
            stay[k] = xm[k] + uk;
            const R o = S - p[k]; // Σ_{j≠k} e^{α_{t−1}(j) − m} ≥ 1 unless k is the only maximum
            has_sw[k] = primal(o) > 0.0;
            if (has_sw[k]) sw[k] = w[t] + log(o) + uk;
            top = std::max({top, primal(stay[k]), has_sw[k] ? primal(sw[k]) : top});
        }
        R st = passive<R>(0.0), sv = passive<R>(0.0);
        for (std::size_t k = 0; k < K; ++k) {
            st = st + exp(stay[k] - passive<R>(top));
            if (has_sw[k]) sv = sv + exp(sw[k] - passive<R>(top));
        }
        bnd[t] = sv / (st + sv);
    }
    return logz;
}

} // namespace detail

struct CNVSegmentationConfig {
    /// Initial state means (log2 ratios); default loss / neutral / gain of one copy in a diploid.
    std::vector<double> state_means{-1.0, 0.0, 0.58496250072115619};
    double noise_sd = 0.2;         ///< initial σ
    double switch_penalty = 10.0;  ///< initial λ (in units of the emission log-likelihood)
    double temperature = 1.0;      ///< τ

    void validate() const {
        const char* where = "CNVSegmentationConfig";
        if (state_means.size() < 2) {
            throw InvalidArgument(std::string(where) + ": 'state_means' needs at least 2 states, got " +
                                  std::to_string(state_means.size()));
        }
        for (double m : state_means) check_finite(m, where, "state_means");
        check_temperature(noise_sd, where, "noise_sd");
        check_finite(switch_penalty, where, "switch_penalty");
        if (switch_penalty < 0.0) throw InvalidArgument(std::string(where) + ": 'switch_penalty' must be >= 0");
        check_temperature(temperature, where, "temperature");
    }
};

template <class T>
struct CNVSegmentationResult {
    T log_partition{};          ///< F
    std::vector<T> posteriors;  ///< [n × K]
    std::vector<T> boundaries;  ///< [n]
    std::vector<T> smoothed;    ///< [n]
    std::size_t states = 0;
};

/// A run of positions [start, end) in one state (from a hard path).
struct CNVSegment {
    std::size_t start = 0;
    std::size_t end = 0;
    std::size_t state = 0;
    double mean = 0.0; ///< mean of y over the run
};

class CNVSegmentation {
public:
    explicit CNVSegmentation(CNVSegmentationConfig cfg = {})
        : cfg_((cfg.validate(), std::move(cfg))), means_("cnv_state_means", cfg_.state_means),
          log_sd_("cnv_log_noise_sd", std::log(cfg_.noise_sd)), penalty_("cnv_switch_penalty", cfg_.switch_penalty) {}

    const CNVSegmentationConfig& config() const noexcept { return cfg_; }
    std::size_t num_states() const noexcept { return cfg_.state_means.size(); }
    ad::Parameter& state_means() noexcept { return means_; }
    ad::Parameter& log_noise_sd() noexcept { return log_sd_; }
    ad::Parameter& switch_penalty() noexcept { return penalty_; }
    const ad::Parameter& state_means() const noexcept { return means_; }
    const ad::Parameter& log_noise_sd() const noexcept { return log_sd_; }
    const ad::Parameter& switch_penalty() const noexcept { return penalty_; }
    std::vector<ad::Parameter*> parameters() { return {&means_, &log_sd_, &penalty_}; }

    /// Soft segmentation of y (see the header comment). τ: the config's temperature, or `tau`
    /// when given (> 0). ad::Var: one fused tape node; other scalars: apply_generic.
    /// Errors: InvalidArgument for an empty or non-finite y or a bad τ, or a log partition beyond
    /// the scalar's range (τ near float's largest value).
    template <class T, class Y>
    CNVSegmentationResult<promote_t<T, Y>> apply(ad::Binder<T>& bind, std::span<const Y> y, double tau = 0.0) const {
        using R = promote_t<T, Y>;
        if constexpr (soft::detail::is_var_v<R>) {
            return apply_fused(bind, y, tau);
        } else {
            return apply_generic(bind, y, tau);
        }
    }

    /// The same outputs by the plain recursion in generic arithmetic, O(n·K²) (for ad::Var:
    /// O(n·K²) tape records; the reference for the fused node).
    template <class T, class Y>
    CNVSegmentationResult<promote_t<T, Y>> apply_generic(ad::Binder<T>& bind, std::span<const Y> y,
                                                         double tau = 0.0) const {
        using R = promote_t<T, Y>;
        using std::exp;
        using std::log;
        const double t = effective_tau(tau);
        check_signal(y);
        const std::size_t n = y.size(), K = num_states();
        const auto mu = bind(means_);
        const T lsd = bind(log_sd_)[0];
        const T lam = bind(penalty_)[0];
        const R inv_2v = R(exp(T(-2.0) * lsd)) * passive<R>(0.5);
        const R sw = R(-lam); // switch score
        // Scores stay in their own units and every soft max is a τ-soft max, lse_τ(x) = m + τ·log Σ
        // exp((x − m)/τ) (tau_lse): nothing is scaled by 1/τ, so nothing overflows as τ → 0.
        const R tr = passive<R>(t);
        std::vector<R> s(n * K); // emissions
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                const R d = R(y[i]) - R(mu[k]);
                s[i * K + k] = -(d * d) * inv_2v;
            }
        }
        // forward: α_t(k) = s_t(k) + lse_τ(α_{t−1}(k), sw + α_{t−1}(j) for j ≠ k), in score units
        std::vector<R> alpha(n * K), beta(n * K);
        for (std::size_t k = 0; k < K; ++k) alpha[k] = s[k];
        std::vector<R> tmp(K);
        for (std::size_t i = 1; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                for (std::size_t j = 0; j < K; ++j) tmp[j] = alpha[(i - 1) * K + j] + (j == k ? R(0) : sw);
                alpha[i * K + k] = s[i * K + k] + tau_lse(tmp, tr);
            }
        }
        // backward: β_t(j) = lse_τ over k of trans(j,k) + s_{t+1}(k) + β_{t+1}(k)
        for (std::size_t k = 0; k < K; ++k) beta[(n - 1) * K + k] = passive<R>(0.0);
        for (std::size_t i = n - 1; i-- > 0;) {
            for (std::size_t j = 0; j < K; ++j) {
                for (std::size_t k = 0; k < K; ++k) tmp[k] = s[(i + 1) * K + k] + beta[(i + 1) * K + k] + (j == k ? R(0) : sw);
                beta[i * K + j] = tau_lse(tmp, tr);
            }
        }
        for (std::size_t k = 0; k < K; ++k) tmp[k] = alpha[(n - 1) * K + k];
        CNVSegmentationResult<R> out;
        out.states = K;
        out.log_partition = tau_lse(tmp, tr); // F = τ·log Z (finite, or tau_lse threw)
        out.posteriors.resize(n * K);
        out.smoothed.resize(n);
        out.boundaries.resize(n);
        // γ_t and the pair marginals are normalised per position: the same as dividing by Z in
        // exact arithmetic, and each row sums to 1 whatever the rounding of α + β at small τ
        std::vector<R> pair(K * K);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) tmp[k] = alpha[i * K + k] + beta[i * K + k];
            const std::vector<R> g = tau_softmax(tmp, tr);
            R sm = passive<R>(0.0);
            for (std::size_t k = 0; k < K; ++k) {
                out.posteriors[i * K + k] = g[k];
                sm = sm + g[k] * R(mu[k]);
            }
            out.smoothed[i] = sm;
            if (i == 0) {
                out.boundaries[0] = passive<R>(0.0);
                continue;
            }
            // P(z_{t−1} = j, z_t = k) ∝ exp((α_{t−1}(j) + trans(j,k) + s_t(k) + β_t(k))/τ); b_t: the j ≠ k share
            for (std::size_t j = 0; j < K; ++j) {
                for (std::size_t k = 0; k < K; ++k) {
                    pair[j * K + k] = alpha[(i - 1) * K + j] + (j == k ? R(0) : sw) + s[i * K + k] + beta[i * K + k];
                }
            }
            const std::vector<R> q = tau_softmax(pair, tr);
            R b = passive<R>(0.0);
            for (std::size_t j = 0; j < K; ++j) {
                for (std::size_t k = 0; k < K; ++k) {
                    if (j != k) b = b + q[j * K + k];
                }
            }
            out.boundaries[i] = b;
        }
        return out;
    }

    /// The classic hard segmentation with the current parameters: the Viterbi path (max-score
    /// state sequence; ties go to the lower state), by plain dynamic programming in double.
    template <class Y>
    std::vector<std::size_t> viterbi(std::span<const Y> y) const {
        check_signal(y);
        const std::size_t n = y.size(), K = num_states();
        const double v = std::exp(2.0 * log_sd_.values()[0]), lam = penalty_.values()[0];
        std::vector<double> score(K), next(K);
        std::vector<std::size_t> back(n * K, 0);
        auto emit = [&](std::size_t i, std::size_t k) {
            const double d = static_cast<double>(y[i]) - means_.values()[k];
            return -d * d / (2.0 * v);
        };
        for (std::size_t k = 0; k < K; ++k) score[k] = emit(0, k);
        for (std::size_t i = 1; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                double best = -std::numeric_limits<double>::infinity();
                std::size_t arg = 0;
                for (std::size_t j = 0; j < K; ++j) {
                    const double c = score[j] - (j == k ? 0.0 : lam);
                    if (c > best) {
                        best = c;
                        arg = j;
                    }
                }
                next[k] = best + emit(i, k);
                back[i * K + k] = arg;
            }
            score.swap(next);
        }
        std::vector<std::size_t> path(n);
        path[n - 1] = static_cast<std::size_t>(std::max_element(score.begin(), score.end()) - score.begin());
        for (std::size_t i = n - 1; i > 0; --i) path[i - 1] = back[i * K + path[i]];
        return path;
    }

    /// Runs of equal states of a hard path, with the mean of y over each.
    template <class Y>
    static std::vector<CNVSegment> segments(std::span<const std::size_t> path, std::span<const Y> y) {
        check_size(y.size(), path.size(), "CNVSegmentation::segments", "y");
        std::vector<CNVSegment> segs;
        for (std::size_t i = 0; i < path.size();) {
            std::size_t j = i;
            double sum = 0.0;
            while (j < path.size() && path[j] == path[i]) sum += static_cast<double>(y[j++]);
            segs.push_back({i, j, path[i], sum / static_cast<double>(j - i)});
            i = j;
        }
        return segs;
    }

private:
    /// The Var path: one node with outputs [F, γ (n×K), b (n), ŷ (n)].
    template <class T, class Y>
    CNVSegmentationResult<ad::Var> apply_fused(ad::Binder<T>& bind, std::span<const Y> y, double tau) const {
        namespace sd = soft::detail;
        const double t = effective_tau(tau);
        check_signal(y);
        ad::Tape* tp = nullptr;
        if constexpr (sd::is_var_v<T>) {
            tp = &bind.tape();
        } else {
            tp = &ad::Tape::active();
        }
        ad::Tape& tape = *tp;
        const std::size_t n = y.size(), K = num_states();
        const std::span<const T> mu = bind(means_), lsd = bind(log_sd_), lam = bind(penalty_);
        const std::span<const double> saved_mu = sd::saved_values(tape, mu), saved_lsd = sd::saved_values(tape, lsd),
                                      saved_lam = sd::saved_values(tape, lam), saved_y = sd::saved_values(tape, y);
        const std::size_t n_out = 1 + n * K + 2 * n;
        auto outs = tape.record_node_uninitialised(
            {sd::node_inputs(mu), sd::node_inputs(lsd), sd::node_inputs(lam), sd::node_inputs(y)}, n_out,
            [=](const ad::NodeGrad& g) {
                const auto muv = sd::input_values<T>(g, 0, saved_mu);
                const double ls = sd::input_values<T>(g, 1, saved_lsd)[0];
                const double lm = sd::input_values<T>(g, 2, saved_lam)[0];
                const auto yv = sd::input_values<Y>(g, 3, saved_y);
                const auto ybar = g.out_adjoint();
                const auto val = g.out_value();
                const double Fbar = ybar[0];
                const double* gbar = ybar.data() + 1;
                const double* bbar = gbar + n * K;
                const double* sbar = bbar + n;
                const double* gam = val.data() + 1;
                const double* bnd = gam + n * K;
                const double iv = std::exp(-2.0 * ls) / t; // 1/(σ²τ)
                std::vector<double> mubar(K, 0.0);
                // direction of the Hessian-vector product: (γ̄ + ŷ̄·μ, b̄)
                using D = ad::Dual<double>;
                std::vector<D> a(n * K), w(n), alpha(n * K), beta(n * K), gd(n * K), bd(n);
                bool any = false;
                for (std::size_t i = 0; i < n; ++i) {
                    for (std::size_t k = 0; k < K; ++k) {
                        const double d = yv[i] - muv[k];
                        const double dir = gbar[i * K + k] + sbar[i] * muv[k];
                        any = any || dir != 0.0;
                        a[i * K + k] = D(-0.5 * d * d * iv, dir);
                        mubar[k] += sbar[i] * gam[i * K + k];
                    }
                    const double dir = i > 0 ? bbar[i] : 0.0;
                    any = any || dir != 0.0;
                    w[i] = D(-lm / t, dir);
                }
                std::vector<double> abar(n * K), wbar(n, 0.0);
                if (any) {
                    detail::cnv_forward_backward<D>(a, w, K, alpha, beta, gd, bd);
                    for (std::size_t i = 0; i < n * K; ++i) abar[i] = gd[i].tangent;
                    for (std::size_t i = 1; i < n; ++i) wbar[i] = bd[i].tangent;
                }
                // F = τ·log Z: ∂F/∂a = τ·γ, ∂F/∂w_t = τ·b_t
                for (std::size_t i = 0; i < n * K; ++i) abar[i] += t * Fbar * gam[i];
                for (std::size_t i = 1; i < n; ++i) wbar[i] += t * Fbar * bnd[i];
                // a_t(k) = −(y_t − μ_k)²/(2σ²τ), w_t = −λ/τ
                const auto ybar_in = g.in_adjoint(3);
                double lsbar = 0.0, lambar = 0.0;
                for (std::size_t i = 0; i < n; ++i) {
                    double yb = 0.0;
                    for (std::size_t k = 0; k < K; ++k) {
                        const double d = yv[i] - muv[k];
                        const double ab = abar[i * K + k];
                        mubar[k] += ab * d * iv;
                        yb -= ab * d * iv;
                        lsbar += ab * d * d * iv; // ∂a/∂ log σ = −2a = d²/(σ²τ)
                    }
                    if (!ybar_in.empty()) ybar_in[i] += yb;
                    lambar -= wbar[i] / t;
                }
                if (const auto m = g.in_adjoint(0); !m.empty()) {
                    for (std::size_t k = 0; k < K; ++k) m[k] += mubar[k];
                }
                if (const auto l = g.in_adjoint(1); !l.empty()) l[0] += lsbar;
                if (const auto l = g.in_adjoint(2); !l.empty()) l[0] += lambar;
            });
        // Forward in double (nothing is recorded until the outputs are written).
        const auto muv = sd::forward_values(tape, mu, saved_mu);
        const double ls = sd::forward_values(tape, lsd, saved_lsd)[0];
        const double lm = sd::forward_values(tape, lam, saved_lam)[0];
        const std::vector<double> yv = [&] {
            const auto v = sd::forward_values(tape, y, saved_y);
            return std::vector<double>(v.begin(), v.end());
        }();
        const std::vector<double> mus(muv.begin(), muv.end());
        const double iv = std::exp(-2.0 * ls) / t;
        std::vector<double> a(n * K), w(n, -lm / t), alpha(n * K), beta(n * K);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                const double d = yv[i] - mus[k];
                a[i * K + k] = -0.5 * d * d * iv;
            }
        }
        const std::span<double> ov = tape.values_of(outs);
        const std::span<double> gam = ov.subspan(1, n * K), bnd = ov.subspan(1 + n * K, n),
                                sm = ov.subspan(1 + n * K + n, n);
        const double logz = detail::cnv_forward_backward<double>(a, w, K, alpha, beta, gam, bnd);
        ov[0] = t * logz;
        check_result_finite(ov[0], t, "CNVSegmentation", "the log partition τ·log Z",
                            "lower the temperature or the signal's scale");
        for (std::size_t i = 0; i < n; ++i) {
            double s = 0.0;
            for (std::size_t k = 0; k < K; ++k) s += gam[i * K + k] * mus[k];
            sm[i] = s;
        }
        CNVSegmentationResult<ad::Var> out;
        out.states = K;
        out.log_partition = outs[0];
        out.posteriors.assign(outs.begin() + 1, outs.begin() + 1 + static_cast<std::ptrdiff_t>(n * K));
        out.boundaries.assign(outs.begin() + 1 + static_cast<std::ptrdiff_t>(n * K),
                              outs.begin() + 1 + static_cast<std::ptrdiff_t>(n * K + n));
        out.smoothed.assign(outs.begin() + 1 + static_cast<std::ptrdiff_t>(n * K + n), outs.end());
        return out;
    }

    /// τ of a call (`tau` when > 0, else the config's), checked; below float's smallest normal
    /// (1.2e-38) it computes as that, which is already the hard limit: a smaller τ would round to 0
    /// in float ((m − m)/τ = 0/0), and in the fused node's scaled scores e/τ overflow.
    double effective_tau(double tau) const {
        const double t = tau > 0.0 ? tau : cfg_.temperature;
        check_temperature(t, "CNVSegmentation", "temperature");
        return std::max(t, static_cast<double>(std::numeric_limits<float>::min()));
    }

    template <class Y>
    static void check_signal(std::span<const Y> y) {
        if (y.empty()) throw InvalidArgument("CNVSegmentation: empty signal");
        if (const std::size_t i = first_nonfinite(y); i != y.size()) {
            throw InvalidArgument("CNVSegmentation: y[" + std::to_string(i) + "] is not finite (mask missing probes first)");
        }
    }

    /// τ-soft max of v, m + τ·log Σ exp((x − m)/τ) with m the largest (soft::smooth_max without
    /// its per-call checks: τ was checked once, v has K ≥ 1 entries); a value past the scalar's
    /// range names the temperature and the signal's scale.
    template <class R>
    static R tau_lse(const std::vector<R>& v, const R& tau) {
        return soft::detail::smooth_max_checked_tau(std::span<const R>(v), tau, "CNVSegmentation",
                                                    "a soft maximum of the recursion",
                                                    "lower the temperature or the signal's scale");
    }

    /// softmax((x − m)/τ) of v (soft::softmax without its per-call checks, as tau_lse).
    template <class R>
    static std::vector<R> tau_softmax(const std::vector<R>& v, const R& tau) {
        std::vector<R> out(v.size());
        soft::detail::softmax_checked(std::span<const R>(v), tau, std::span<R>(out));
        return out;
    }

    CNVSegmentationConfig cfg_;
    ad::Parameter means_;
    ad::Parameter log_sd_;
    ad::Parameter penalty_;
};

} // namespace diffbio::ops
