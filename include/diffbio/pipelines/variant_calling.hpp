#pragma once
// VariantCallingPipeline: quality filter → pileup → per-position features → VariantClassifier,
// each stage differentiable, DiffBio's variant-calling pipeline (spec §4.7) on aligned reads.
//
// On an AlignedBatch (core/aligned_batch.hpp) and the reference bases of a region [start, end)
// of one contig (codes 0..3 = A C G T, 4 = other; L = end − start):
//   1. quality filter, per base m of the batch:  g_m = σ((Q_m − θ)/s)       θ learnable (default 20)
//   2. pileup (ops::DifferentiablePileup) with the gates g: counts n[p, c], coverage, deletions,
//      insertions, quality sums; base weights q(Q) = 1 − 10^{−(aQ + b)/10} when
//      use_quality_weights (a, b learnable), else 1
//   3. features x[p] [F = 8], reference-aware (ref base r = reference[p], S = Σ_c n[p, c],
//      κ = pseudocount):
//        x0 = n_r/(S + κ)                       reference-allele fraction (0 when r is not ACGT)
//        x1 ≥ x2 ≥ x3 = n_a/(S + κ)             the other bases' fractions, in decreasing order
//                                               (the order is taken by value; ties: ACGT order)
//        x4 = coverage/c̄                        c̄ = coverage_scale, or the region's mean raw depth
//                                               (aligned bases / L, unweighted: no parameter moves it)
//        x5 = D/(coverage + D + κ), x6 = I/(coverage + D + κ)   deletion and insertion fractions
//        x7 = quality_sum/(coverage + κ)/40     mean base quality, scaled
//   4. VariantClassifier over windows of W positions of x (edge padding): logits and
//      probabilities of ref / het / hom-alt per position.
// Differences from DiffBio: the classifier sees the reference (DiffBio's pileup-only windows
// cannot tell a reference column from a homozygous-alternative one); the pileup has no softmax
// (DiffBio's default flattens a pure column to 0.475); dropout acts on hidden layers only.
//
// call_variants() hardens the calls with the current parameters and dropout off: a SNV at every
// position whose most probable class is het or hom-alt and whose reference base is ACGT, with
// the most frequent non-reference base as its alternate allele (the VCF writer is in io; see
// examples/variant_calling.cpp). Only SNVs are called.
// Scalars: double, float, ad::Dual, ad::Var for the parameters (Binder<T>). For Var: the gates
// are one fused node, the pileup two, the features ordinary tape arithmetic (O(L)), the
// classifier one node per layer. The batch must outlive the tape's backward pass.
// Cost O(M + aligned bases in the region + L·(W·F·H + H² + H·C)).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/variant/classifier.hpp>
#include <diffbio/ops/variant/pileup.hpp>
#include <diffbio/soft/threshold.hpp>

namespace diffbio::pipelines {

/// Number of per-position features the pipeline feeds its classifier.
inline constexpr std::size_t variant_features = 8;

struct VariantCallingPipelineConfig {
    ops::PileupRegion region{};      ///< the reference region [start, end) of one contig
    double quality_threshold = 20.0; ///< initial θ of the quality filter
    double quality_softness = 1.0;   ///< s of the quality filter
    std::size_t window = 11;         ///< W, positions per classifier window (odd)
    std::size_t hidden_dim = 64;
    std::size_t num_layers = 2;
    std::size_t num_classes = 3;     ///< ref / het / hom-alt
    double dropout_rate = 0.1;
    bool use_quality_weights = true; ///< pileup weights q(Q) with learnable a, b
    double missing_quality = 30.0;   ///< Phred score of bases without quality (255)
    double pseudocount = 0.5;        ///< κ of the feature denominators
    double coverage_scale = 0.0;     ///< c̄; 0 = the region's mean raw depth in each call (at least 1)
    std::uint64_t seed = 0;          ///< classifier initialisation

    void validate() const {
        const char* where = "VariantCallingPipelineConfig";
        check_finite(quality_threshold, where, "quality_threshold");
        check_temperature(quality_softness, where, "quality_softness");
        check_temperature(pseudocount, where, "pseudocount");
        check_finite(coverage_scale, where, "coverage_scale");
        if (coverage_scale < 0.0) throw InvalidArgument(std::string(where) + ": 'coverage_scale' must be >= 0 (0: automatic)");
        if (num_classes != 3) {
            throw InvalidArgument(std::string(where) + ": 'num_classes' must be 3 (ref / het / hom-alt), got " +
                                  std::to_string(num_classes));
        }
        if (region.end <= region.start || region.start < 0) {
            throw InvalidArgument(std::string(where) + ": 'region' [" + std::to_string(region.start) + ", " +
                                  std::to_string(region.end) + ") must be a non-empty range with start >= 0");
        }
    }
};

template <class T>
struct VariantCallingResult {
    std::vector<T> gates;                  ///< [M] quality-filter weight of every base of the batch
    ops::PileupResult<T> pileup;           ///< the region's pileup
    std::vector<T> features;               ///< [L × 8]
    ops::VariantClassifierResult<T> calls; ///< logits and probabilities [L × 3]
    std::size_t length() const noexcept { return pileup.length(); }
};

/// One hardened SNV call (see call_variants).
struct VariantCall {
    std::int32_t contig = 0;
    std::int64_t pos = 0;       ///< 0-based reference position
    std::uint8_t ref = 0;       ///< base codes 0..3
    std::uint8_t alt = 0;
    int genotype = 1;           ///< alternate alleles: 1 het, 2 hom-alt
    std::array<double, 3> probabilities{}; ///< ref, het, hom-alt
    double quality = 0.0;       ///< −10 log10 P(ref), capped at 999
    double depth = 0.0;         ///< pileup coverage (weighted)
};

class VariantCallingPipeline {
public:
    explicit VariantCallingPipeline(VariantCallingPipelineConfig cfg)
        : cfg_((cfg.validate(), std::move(cfg))),
          filter_theta_("quality_threshold", cfg_.quality_threshold),
          pileup_(ops::PileupConfig{.use_quality_weights = cfg_.use_quality_weights,
                                    .missing_quality = cfg_.missing_quality}),
          classifier_(ops::VariantClassifierConfig{.num_classes = cfg_.num_classes,
                                                   .features = variant_features,
                                                   .window = cfg_.window,
                                                   .hidden_dim = cfg_.hidden_dim,
                                                   .num_layers = cfg_.num_layers,
                                                   .dropout_rate = cfg_.dropout_rate,
                                                   .seed = cfg_.seed}) {}

    const VariantCallingPipelineConfig& config() const noexcept { return cfg_; }
    ad::Parameter& quality_threshold() noexcept { return filter_theta_; }
    ops::DifferentiablePileup& pileup() noexcept { return pileup_; }
    ops::VariantClassifier& classifier() noexcept { return classifier_; }
    const ops::VariantClassifier& classifier() const noexcept { return classifier_; }

    /// θ, the pileup's a and b (when quality weights are on) and the classifier's weights.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&filter_theta_};
        for (auto* q : pileup_.parameters()) p.push_back(q);
        for (auto* q : classifier_.parameters()) p.push_back(q);
        return p;
    }

    void train(bool on = true) noexcept { classifier_.train(on); }
    void eval() noexcept { classifier_.eval(); }
    bool training() const noexcept { return classifier_.training(); }
    void set_dropout_seed(std::uint64_t seed) noexcept { classifier_.set_dropout_seed(seed); }

    /// The stages on `batch` over config().region with its reference bases `reference` [L].
    /// Errors: ShapeError when reference.size() != L; the pileup's InvalidArgument for a region
    /// outside the batch's contigs.
    template <class T, exec::HostPolicy P = exec::Cpu>
    VariantCallingResult<T> apply(ad::Binder<T>& bind, const AlignedBatch& batch, std::span<const std::uint8_t> reference,
                                  const P& policy = {}) const {
        const std::size_t L = cfg_.region.length();
        check_size(reference.size(), L, "VariantCallingPipeline", "reference (region length L)");
        VariantCallingResult<T> out;
        // 1. quality gates per base (255 = missing → missing_quality)
        std::vector<double> q(batch.num_bases());
        for (std::size_t m = 0; m < q.size(); ++m) {
            const std::uint8_t v = batch.qualities[m];
            q[m] = v == missing_quality ? cfg_.missing_quality : static_cast<double>(v);
        }
        const T theta = bind(filter_theta_)[0];
        out.gates = soft::soft_threshold(policy, std::span<const double>(q), theta, cfg_.quality_softness);
        // 2. pileup
        ops::PileupInputs<double, T, double> in;
        in.gates = std::span<const T>(out.gates);
        pileup_.apply_into(bind, batch, cfg_.region, in, out.pileup, policy);
        // 3. features
        const double scale = cfg_.coverage_scale > 0.0 ? cfg_.coverage_scale : std::max(1.0, mean_depth(batch, cfg_.region));
        out.features = features(out.pileup, reference, scale);
        // 4. classifier
        out.calls = classifier_.apply(bind, std::span<const T>(out.features), L, policy);
        return out;
    }

    /// Hard SNV calls with the current parameters, dropout off (see the header comment), in
    /// position order.
    template <exec::HostPolicy P = exec::Cpu>
    std::vector<VariantCall> call_variants(const AlignedBatch& batch, std::span<const std::uint8_t> reference,
                                           const P& policy = {}) {
        const bool was_training = classifier_.training();
        classifier_.eval();
        ad::Binder<double> bind;
        VariantCallingResult<double> r;
        try {
            r = apply(bind, batch, reference, policy);
        } catch (...) {
            classifier_.train(was_training);
            throw;
        }
        classifier_.train(was_training);
        return harden(r, reference);
    }

    /// Hard SNV calls from a result computed in double.
    std::vector<VariantCall> harden(const VariantCallingResult<double>& r, std::span<const std::uint8_t> reference) const {
        std::vector<VariantCall> calls;
        const std::size_t L = r.length();
        for (std::size_t p = 0; p < L; ++p) {
            const std::size_t cls = r.calls.predicted(p);
            const std::uint8_t ref = reference[p];
            if (cls == 0 || ref > 3) continue;
            std::uint8_t alt = ref == 0 ? 1 : 0;
            for (std::uint8_t c = 0; c < 4; ++c) {
                if (c != ref && r.pileup.counts[4 * p + c] > r.pileup.counts[4 * p + alt]) alt = c;
            }
            VariantCall v;
            v.contig = r.pileup.region.contig;
            v.pos = r.pileup.region.start + static_cast<std::int64_t>(p);
            v.ref = ref;
            v.alt = alt;
            v.genotype = static_cast<int>(cls);
            for (std::size_t k = 0; k < 3; ++k) v.probabilities[k] = r.calls.probabilities[3 * p + k];
            v.quality = v.probabilities[0] > 0.0 ? std::min(999.0, -10.0 * std::log10(v.probabilities[0])) : 999.0;
            v.depth = r.pileup.coverage[p];
            calls.push_back(v);
        }
        return calls;
    }

    /// The features of step 3 from a pileup (exposed for tests and other callers).
    /// coverage_scale: c̄ (> 0).
    template <class T>
    std::vector<T> features(const ops::PileupResult<T>& pile, std::span<const std::uint8_t> reference,
                            double scale) const {
        const std::size_t L = pile.length();
        check_size(reference.size(), L, "VariantCallingPipeline::features", "reference (region length L)");
        check_temperature(scale, "VariantCallingPipeline::features", "scale");
        const double kappa = cfg_.pseudocount;
        const T inv_scale = passive<T>(1.0 / scale), k = passive<T>(kappa), inv40 = passive<T>(1.0 / 40.0);
        std::vector<T> x(L * variant_features);
        for (std::size_t p = 0; p < L; ++p) {
            const T* n = pile.counts.data() + 4 * p;
            T* o = x.data() + p * variant_features;
            const T inv = T(1) / (n[0] + n[1] + n[2] + n[3] + k);
            const std::uint8_t r = reference[p];
            std::array<std::size_t, 4> others{};
            std::size_t no = 0;
            for (std::size_t c = 0; c < 4; ++c) {
                if (c != r) others[no++] = c;
            }
            // decreasing by value, ties in ACGT order (stable)
            std::stable_sort(others.begin(), others.begin() + static_cast<std::ptrdiff_t>(no),
                             [&](std::size_t a, std::size_t b) { return primal(n[a]) > primal(n[b]); });
            o[0] = r < 4 ? T(n[r] * inv) : passive<T>(0.0);
            for (std::size_t j = 0; j < 3; ++j) o[1 + j] = n[others[j]] * inv;
            const T cov = pile.coverage[p], del = pile.deletions[p];
            const T inv_d = T(1) / (cov + del + k);
            o[4] = cov * inv_scale;
            o[5] = del * inv_d;
            o[6] = pile.insertions[p] * inv_d;
            o[7] = pile.quality_sum[p] / (cov + k) * inv40;
        }
        return x;
    }

    /// Aligned bases (CIGAR M = X) of mapped reads inside `region`, divided by its length: the
    /// unweighted mean depth. O(reads + CIGAR operations).
    static double mean_depth(const AlignedBatch& batch, const ops::PileupRegion& region) {
        double bases = 0.0;
        for (std::size_t i = 0; i < batch.num_reads(); ++i) {
            if (batch.unmapped(i) || batch.contig[i] != region.contig) continue;
            if (batch.ref_end[i] <= region.start || batch.ref_start[i] >= region.end) continue;
            batch.for_each_block(i, [&](const AlignedBlock& blk) {
                if (blk.op != CigarOp::Match && blk.op != CigarOp::SeqMatch && blk.op != CigarOp::SeqMismatch) return;
                const std::int64_t lo = std::max(blk.ref_start, region.start);
                const std::int64_t hi = std::min(blk.ref_start + static_cast<std::int64_t>(blk.length), region.end);
                if (hi > lo) bases += static_cast<double>(hi - lo);
            });
        }
        return bases / static_cast<double>(region.length());
    }

private:
    VariantCallingPipelineConfig cfg_;
    ad::Parameter filter_theta_;
    ops::DifferentiablePileup pileup_;
    ops::VariantClassifier classifier_;
};

} // namespace diffbio::pipelines
