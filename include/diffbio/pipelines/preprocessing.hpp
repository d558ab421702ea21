#pragma once
// PreprocessingPipeline: quality filter → adapter removal → duplicate weighting → error
// correction, each stage differentiable, as in DiffBio's preprocessing pipeline (spec §2.5).
//
// Stages on reads R [N×L×4] and qualities Q [N×L]:
//   1. quality filter (always on):  w_q = σ((Q − θ)/s);  R ← R·w_q            (Q unchanged)
//   2. adapter removal (optional):  r = first-occurrence survival;  R ← R·r, Q ← Q·r
//   3. duplicate weighting (opt.):  w = DuplicateWeighting(R);  read_weights = w / max(w)
//   4. error correction (optional): R ← ErrorCorrection(R, Q)
// retention = w_q·r is the combined per-base retention (what a base keeps of its signal).
// A disabled stage is not run (its parameters stay out of parameters()).
//
// harden() turns the current parameters into hard decisions per read (adapter cut, 3' quality
// trim, low-quality base masking, drop below min_length, duplicate flag): what a classic trimmer
// does, learned. harden_pair() does the same for read pairs, with the adapter cut of both mates
// taken from the mate overlap (ops::MateOverlap: the insert length, found from the overlap of the
// mates and both adapters), which also finds inserts that leave only 1–3 adapter bases. Writing the
// result as FASTQ is left to the io layer (see examples/).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/duplicate_weighting.hpp>
#include <diffbio/ops/preprocessing/error_correction.hpp>
#include <diffbio/ops/preprocessing/mate_overlap.hpp>
#include <diffbio/ops/preprocessing/quality_filter.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>

namespace diffbio::pipelines {

struct PreprocessingPipelineConfig {
    std::size_t read_length = 150; ///< expected read length (informative; reads of any length work)
    double quality_threshold = 20.0;
    std::string adapter_sequence = "AGATCGGAAGAG";
    std::string adapter_sequence2 = {}; ///< mate 2's adapter for harden_pair() ("": adapter_sequence)
    double adapter_match_threshold = 0.8;
    double adapter_match_score = 2.0;  ///< the adapter scores' initial match and mismatch values
    double adapter_mismatch_score = -1.0;
    double adapter_min_score = -std::numeric_limits<double>::infinity(); ///< AdapterRemovalConfig::min_score
    double adapter_temperature = 1.0;
    double duplicate_similarity_threshold = 0.95;
    std::size_t error_correction_window = 11;
    std::size_t error_correction_hidden_dim = 64;
    bool enable_adapter_removal = true;
    bool enable_duplicate_weighting = true;
    bool enable_error_correction = true;
    double quality_softness = 1.0;     ///< s of the quality filter
    std::size_t adapter_min_overlap = 6;
    std::size_t min_length = 15;       ///< harden(): reads shorter than this after trimming are dropped
    bool mask_low_quality = true;      ///< harden(): bases with q ≤ θ inside the kept part become N
    std::uint64_t seed = 0;            ///< initialisation of the duplicate kernel and the MLP
    /// Reverse mode (Binder<Var>): run the heavy kernels' matrix products in float instead of
    /// double (error correction's network: ErrorCorrectionConfig::float_gradient; duplicate
    /// weighting's embedding and the backward of its similarities:
    /// DuplicateWeightingConfig::float_gradient). About twice as fast; values and gradients
    /// agree with the double path to float rounding. Off by default.
    /// (A Binder<float> forward always computes in float.)
    bool float_gradient = false;

    void validate() const {
        if (read_length == 0) throw InvalidArgument("PreprocessingPipelineConfig: 'read_length' must be >= 1");
        check_finite(quality_threshold, "PreprocessingPipelineConfig", "quality_threshold");
        check_temperature(adapter_temperature, "PreprocessingPipelineConfig", "adapter_temperature");
        check_finite(adapter_match_threshold, "PreprocessingPipelineConfig", "adapter_match_threshold");
        if (!adapter_sequence2.empty()) ops::check_adapter_sequence(adapter_sequence2, "PreprocessingPipelineConfig", "adapter_sequence2");
        check_finite(duplicate_similarity_threshold, "PreprocessingPipelineConfig", "duplicate_similarity_threshold");
        check_temperature(quality_softness, "PreprocessingPipelineConfig", "quality_softness");
    }
};

template <class T>
struct PreprocessingResult {
    std::vector<T> preprocessed_reads;   ///< [N × L × 4]
    std::vector<T> preprocessed_quality; ///< [N × L]
    std::vector<T> read_weights;         ///< [N], in (0, 1] (all 1 without duplicate weighting)
    std::vector<T> quality_weights;      ///< [N × L] σ((q − θ)/s), 0 in padding
    std::vector<T> retention;            ///< [N × L] quality weight × adapter retention
    std::vector<T> trim_position;        ///< [N] expected adapter trim (empty when disabled)
};

/// Hard decisions for every read of a batch (see PreprocessingPipeline::harden).
struct HardenedReads {
    std::vector<std::uint32_t> adapter_cut;  ///< length before the first adapter start
    std::vector<std::uint32_t> kept_length;  ///< after the adapter cut and the 3' quality trim
    std::vector<std::uint8_t> dropped;       ///< 1: kept_length < min_length
    std::vector<std::uint8_t> duplicate;     ///< 1: similar to an earlier read (0 when disabled)
    std::vector<std::uint8_t> masked;        ///< [N × L] 1: base inside the kept part with q ≤ θ
    std::size_t length = 0;                  ///< L of the batch
};

class PreprocessingPipeline {
public:
    explicit PreprocessingPipeline(PreprocessingPipelineConfig cfg = {})
        : cfg_((cfg.validate(), std::move(cfg))),
          quality_filter_({.initial_threshold = cfg_.quality_threshold, .softness = cfg_.quality_softness}),
          adapter_removal_({.adapter_sequence = cfg_.adapter_sequence,
                            .temperature = cfg_.adapter_temperature,
                            .match_threshold = cfg_.adapter_match_threshold,
                            .min_overlap = cfg_.adapter_min_overlap,
                            .match_score = cfg_.adapter_match_score,
                            .mismatch_score = cfg_.adapter_mismatch_score,
                            .min_score = cfg_.adapter_min_score}),
          mate_overlap_({.adapter1 = cfg_.adapter_sequence,
                         .adapter2 = cfg_.adapter_sequence2.empty() ? cfg_.adapter_sequence : cfg_.adapter_sequence2}),
          duplicate_weighting_({.similarity_threshold = cfg_.duplicate_similarity_threshold,
                                 .seed = cfg_.seed,
                                 .float_gradient = cfg_.float_gradient}),
          error_correction_({.window_size = cfg_.error_correction_window,
                             .hidden_dim = cfg_.error_correction_hidden_dim,
                             .seed = cfg_.seed + 1,
                             .float_gradient = cfg_.float_gradient}) {}

    const PreprocessingPipelineConfig& config() const noexcept { return cfg_; }
    ops::QualityFilter& quality_filter() noexcept { return quality_filter_; }
    ops::AdapterRemoval& adapter_removal() noexcept { return adapter_removal_; }
    ops::DuplicateWeighting& duplicate_weighting() noexcept { return duplicate_weighting_; }
    /// The pair trimmer of harden_pair() (its rule: MateOverlapConfig's defaults; not trained by
    /// parameters(), which holds the single-read stages).
    ops::MateOverlap& mate_overlap() noexcept { return mate_overlap_; }
    ops::ErrorCorrection& error_correction() noexcept { return error_correction_; }

    /// The learnable parameters of the enabled stages, for an optimizer.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p = quality_filter_.parameters();
        auto add = [&p](std::vector<ad::Parameter*> q) { p.insert(p.end(), q.begin(), q.end()); };
        if (cfg_.enable_adapter_removal) add(adapter_removal_.parameters());
        if (cfg_.enable_duplicate_weighting) add(duplicate_weighting_.parameters());
        if (cfg_.enable_error_correction) add(error_correction_.parameters());
        return p;
    }

    /// Run the enabled stages on a batch (data as read from a file). O(N·L·(La + W·hidden)) plus
    /// O(N²·E) for duplicate weighting.
    template <class T, exec::HostPolicy P = exec::Cpu>
    PreprocessingResult<promote_t<T, float>> apply(ad::Binder<T>& bind, const ReadBatch& batch, const P& policy = {}) const {
        return apply(bind, ops::view_of(batch), policy);
    }

    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    PreprocessingResult<promote_t<T, S, Q>> apply(ad::Binder<T>& bind, const ops::ReadsView<S, Q>& reads,
                                                  const P& policy = {}) const {
        using R = promote_t<T, S, Q>;
        reads.validate_shapes("PreprocessingPipeline"); // the values: by the quality filter, always the first stage
        PreprocessingResult<R> out;
        auto qf = quality_filter_.apply(bind, reads, policy);
        out.quality_weights = as_vector<R>(std::move(qf.weights));
        std::vector<R> seq = as_vector<R>(std::move(qf.seq));
        std::vector<R> qual; // stays empty (the data Q is used) until a stage changes the qualities
        out.retention = out.quality_weights;
        if (cfg_.enable_adapter_removal) {
            const ops::ReadsView<R, Q> v{seq, reads.quality, reads.lengths, reads.n, reads.length};
            auto ar = adapter_removal_.apply(bind, v, policy);
            seq = std::move(ar.seq);
            qual = std::move(ar.quality);
            out.retention = ops::scale_rows(policy, std::span<const R>(out.retention), std::span<const R>(ar.retention), 1);
            out.trim_position = std::move(ar.trim_position);
        } else {
            qual = constants_of<R>(reads.quality);
        }
        if (cfg_.enable_duplicate_weighting) {
            const ops::ReadsView<R, Q> v{seq, reads.quality, reads.lengths, reads.n, reads.length};
            auto dw = duplicate_weighting_.apply(bind, v, policy);
            // read_weights = w / max(w): the max is taken by value (a subgradient at ties).
            std::size_t arg = 0;
            for (std::size_t i = 1; i < dw.weights.size(); ++i) {
                if (primal(dw.weights[i]) > primal(dw.weights[arg])) arg = i;
            }
            out.read_weights.reserve(reads.n);
            for (std::size_t i = 0; i < dw.weights.size(); ++i) out.read_weights.push_back(R(dw.weights[i] / dw.weights[arg]));
        } else {
            out.read_weights.assign(reads.n, passive<R>(1.0));
        }
        if (cfg_.enable_error_correction) {
            auto ec = error_correction_.apply(bind, std::span<const R>(seq), std::span<const R>(qual), reads.lengths, reads.n,
                                              reads.length, policy);
            seq = as_vector<R>(std::move(ec));
        }
        out.preprocessed_reads = std::move(seq);
        out.preprocessed_quality = std::move(qual);
        return out;
    }

    /// Hard decisions with the current parameters (see HardenedReads). The 3' quality trim removes
    /// trailing bases with q ≤ θ; duplicates are flagged only when duplicate weighting is enabled
    /// (O(N²·E)). O(N·L·La) otherwise.
    HardenedReads harden(const ReadBatch& batch) const {
        const auto view = ops::view_of(batch);
        view.validate("PreprocessingPipeline::harden");
        return finish_hardening(batch, cfg_.enable_adapter_removal
                                           ? adapter_removal_.trimmed_lengths(view)
                                           : std::vector<std::uint32_t>(batch.lengths.begin(), batch.lengths.end()));
    }

    /// harden() for read pairs (pair i = read i of both batches): the adapter cut of both mates is
    /// the insert length from the mate overlap (ops::MateOverlap::insert_lengths) when adapter
    /// removal is enabled; the quality trim, masking, min_length and duplicate flags are per mate.
    /// A caller writing pairs drops a pair when either mate is dropped. O(N·L²) in the worst case,
    /// a few bases per candidate insert length on real pairs.
    std::pair<HardenedReads, HardenedReads> harden_pair(const ReadBatch& mate1, const ReadBatch& mate2) const {
        if (mate1.num_reads != mate2.num_reads) {
            throw ShapeError("PreprocessingPipeline::harden_pair: mate 1 has " + std::to_string(mate1.num_reads) +
                             " reads but mate 2 has " + std::to_string(mate2.num_reads));
        }
        if (!cfg_.enable_adapter_removal) return {harden(mate1), harden(mate2)};
        const auto insert = mate_overlap_.insert_lengths(ops::view_of(mate1), ops::view_of(mate2));
        std::vector<std::uint32_t> cut1(insert.size()), cut2(insert.size());
        for (std::size_t i = 0; i < insert.size(); ++i) {
            cut1[i] = std::min(insert[i], mate1.lengths[i]);
            cut2[i] = std::min(insert[i], mate2.lengths[i]);
        }
        return {finish_hardening(mate1, std::move(cut1)), finish_hardening(mate2, std::move(cut2))};
    }

private:
    /// v as a vector of R: moved when it already is one (no copy of N·L·4 values), else converted.
    template <class R, class U>
    static std::vector<R> as_vector(std::vector<U>&& v) {
        if constexpr (std::is_same_v<R, U>) {
            return std::move(v);
        } else {
            return std::vector<R>(v.begin(), v.end());
        }
    }

    /// The data q as R (for Var: constant leaves recorded as one block on the active tape, not one
    /// record per entry).
    template <class R, class Q>
    static std::vector<R> constants_of(std::span<const Q> q) {
        if constexpr (std::is_same_v<R, ad::Var> && std::is_arithmetic_v<Q>) {
            std::span<const ad::Var> v;
            if constexpr (std::is_same_v<Q, float> || std::is_same_v<Q, double>) {
                v = ad::Tape::active().variables(q);
            } else {
                const std::vector<double> values(q.begin(), q.end());
                v = ad::Tape::active().variables(values);
            }
            return std::vector<R>(v.begin(), v.end());
        } else {
            return std::vector<R>(q.begin(), q.end());
        }
    }

    /// Everything after the adapter cut: 3' quality trim, masking, min_length, duplicate flags.
    HardenedReads finish_hardening(const ReadBatch& batch, std::vector<std::uint32_t> adapter_cut) const {
        const std::size_t n = batch.num_reads, L = batch.length;
        const double theta = quality_filter_.threshold().values()[0];
        HardenedReads h;
        h.length = L;
        h.adapter_cut = std::move(adapter_cut);
        h.kept_length.resize(n);
        h.dropped.assign(n, 0);
        h.masked.assign(n * L, 0);
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t keep = h.adapter_cut[i];
            while (keep > 0 && batch.quality[i * L + keep - 1] <= theta) --keep;
            h.kept_length[i] = keep;
            h.dropped[i] = keep < cfg_.min_length ? 1 : 0;
            if (cfg_.mask_low_quality) {
                for (std::uint32_t l = 0; l < keep; ++l) h.masked[i * L + l] = batch.quality[i * L + l] <= theta ? 1 : 0;
            }
        }
        h.duplicate.assign(n, 0);
        if (cfg_.enable_duplicate_weighting) {
            const auto flags = duplicate_weighting_.duplicate_flags(ops::view_of(batch));
            for (std::size_t i = 0; i < n; ++i) h.duplicate[i] = flags[i] ? 1 : 0;
        }
        return h;
    }

    PreprocessingPipelineConfig cfg_;
    ops::QualityFilter quality_filter_;
    ops::AdapterRemoval adapter_removal_;
    ops::MateOverlap mate_overlap_;
    ops::DuplicateWeighting duplicate_weighting_;
    ops::ErrorCorrection error_correction_;
};

} // namespace diffbio::pipelines
