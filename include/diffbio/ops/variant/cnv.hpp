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
// Scalars: double, float, ad::Dual, ad::Var (parameters through Binder<T>, y plain or T); the
// recursion is ordinary generic arithmetic (Var: O(n·K²) tape operations).
// Cost O(n·K²) time, O(n·K) memory.

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
#include <diffbio/ad/parameter.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::ops {

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
    std::vector<ad::Parameter*> parameters() { return {&means_, &log_sd_, &penalty_}; }

    /// Soft segmentation of y (see the header comment). τ: the config's temperature, or `tau`
    /// when given (> 0). Errors: InvalidArgument for an empty or non-finite y or a bad τ.
    template <class T, class Y>
    CNVSegmentationResult<promote_t<T, Y>> apply(ad::Binder<T>& bind, std::span<const Y> y, double tau = 0.0) const {
        using R = promote_t<T, Y>;
        using std::exp;
        using std::log;
        const double t = tau > 0.0 ? tau : cfg_.temperature;
        check_temperature(t, "CNVSegmentation", "temperature");
        check_signal(y);
        const std::size_t n = y.size(), K = num_states();
        const auto mu = bind(means_);
        const T lsd = bind(log_sd_)[0];
        const T lam = bind(penalty_)[0];
        const R inv_t = passive<R>(1.0 / t);
        const R inv_2v = R(exp(T(-2.0) * lsd)) * passive<R>(0.5);
        const R sw = R(-lam) * inv_t; // switch score / τ
        // emissions / τ
        std::vector<R> s(n * K);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                const R d = R(y[i]) - R(mu[k]);
                s[i * K + k] = -(d * d) * inv_2v * inv_t;
            }
        }
        // forward: α_t(k) = s_t(k) + LSE(α_{t−1}(k), sw + LSE_{j≠k} α_{t−1}(j))
        std::vector<R> alpha(n * K), beta(n * K);
        for (std::size_t k = 0; k < K; ++k) alpha[k] = s[k];
        std::vector<R> tmp(K);
        for (std::size_t i = 1; i < n; ++i) {
            for (std::size_t k = 0; k < K; ++k) {
                for (std::size_t j = 0; j < K; ++j) tmp[j] = alpha[(i - 1) * K + j] + (j == k ? R(0) : sw);
                alpha[i * K + k] = s[i * K + k] + lse(tmp);
            }
        }
        // backward: β_t(j) = LSE_k(trans(j,k) + s_{t+1}(k) + β_{t+1}(k))
        for (std::size_t k = 0; k < K; ++k) beta[(n - 1) * K + k] = passive<R>(0.0);
        for (std::size_t i = n - 1; i-- > 0;) {
            for (std::size_t j = 0; j < K; ++j) {
                for (std::size_t k = 0; k < K; ++k) tmp[k] = s[(i + 1) * K + k] + beta[(i + 1) * K + k] + (j == k ? R(0) : sw);
                beta[i * K + j] = lse(tmp);
            }
        }
        for (std::size_t k = 0; k < K; ++k) tmp[k] = alpha[(n - 1) * K + k];
        const R logz = lse(tmp);
        CNVSegmentationResult<R> out;
        out.states = K;
        out.log_partition = logz * passive<R>(t);
        out.posteriors.resize(n * K);
        out.smoothed.resize(n);
        out.boundaries.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            R sm = passive<R>(0.0);
            for (std::size_t k = 0; k < K; ++k) {
                const R g = exp(alpha[i * K + k] + beta[i * K + k] - logz);
                out.posteriors[i * K + k] = g;
                sm = sm + g * R(mu[k]);
            }
            out.smoothed[i] = sm;
            if (i == 0) {
                out.boundaries[0] = passive<R>(0.0);
                continue;
            }
            // P(stay) = Σ_k exp(α_{t−1}(k) + s_t(k) + β_t(k) − log Z)
            R stay = passive<R>(0.0);
            for (std::size_t k = 0; k < K; ++k) stay = stay + exp(alpha[(i - 1) * K + k] + s[i * K + k] + beta[i * K + k] - logz);
            out.boundaries[i] = passive<R>(1.0) - stay;
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
    template <class Y>
    static void check_signal(std::span<const Y> y) {
        if (y.empty()) throw InvalidArgument("CNVSegmentation: empty signal");
        for (std::size_t i = 0; i < y.size(); ++i) {
            if (!std::isfinite(primal(y[i]))) {
                throw InvalidArgument("CNVSegmentation: y[" + std::to_string(i) + "] is not finite (mask missing probes first)");
            }
        }
    }

    /// Max-shifted log Σ exp.
    template <class R>
    static R lse(const std::vector<R>& v) {
        using std::exp;
        using std::log;
        double m = primal(v[0]);
        for (const R& x : v) m = std::max(m, primal(x));
        R s = passive<R>(0.0);
        for (const R& x : v) s = s + exp(x - passive<R>(m));
        return log(s) + passive<R>(m);
    }

    CNVSegmentationConfig cfg_;
    ad::Parameter means_;
    ad::Parameter log_sd_;
    ad::Parameter penalty_;
};

} // namespace diffbio::ops
