#pragma once
// QualityFilter: the smooth replacement of a Phred cutoff.
//
//   w_{i,l} = σ((q_{i,l} − θ)/s)        per-base retention weight (0 in padding)
//   seq'_{i,l,a} = seq_{i,l,a} · w_{i,l} quality is passed through unchanged
//
// θ (the threshold) is a learnable Parameter, default 20; s (softness) is a fixed positive
// constant, default 1 (DiffBio's value). As s → 0, w becomes the hard mask [q > θ].
// Gradients: ∂w/∂θ = −σ'(z)/s, ∂w/∂q = σ'(z)/s with z = (q − θ)/s; ∂seq'/∂seq = w.
// O(N·L). For Var the weights are one fused node (soft::soft_threshold) and the masking one
// more (a row scaling node), whatever N·L is. Bad config values throw InvalidArgument.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
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
    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    QualityFilterResult<promote_t<T, S>> apply(ad::Binder<T>& bind, const ReadsView<S, Q>& reads, const P& policy = {}) const {
        using R = promote_t<T, S>;
        reads.validate("QualityFilter");
        const T theta = bind(theta_)[0];
        const double s = cfg_.softness;
        QualityFilterResult<R> out;
        // Weights for every position (padding included), then zero the padding.
        const auto w = soft::soft_threshold(policy, reads.quality, theta, s);
        out.weights = mask_padding<R>(w, reads);
        out.seq = scale_rows(policy, reads.seq, std::span<const R>(out.weights), 4);
        return out;
    }

private:
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
