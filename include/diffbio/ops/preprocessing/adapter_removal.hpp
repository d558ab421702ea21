#pragma once
// AdapterRemoval: soft 3' adapter trimming with a proper "no adapter" outcome.
//
// For read i of length n and each start p with overlap ov = min(n − p, La) ≥ min_overlap:
//   s_p = Σ_{k<ov} seq_{p+k}ᵀ S A_k / (m·ov)        gap-free match score of the adapter prefix
//                                                     (A: adapter one-hot La×4, S: 4×4 scores,
//                                                     m: the match score, so a perfect match is 1)
//   z_p = (m·ov·s_p − θ(ov))/T,  a_p = σ(z_p)        soft "the adapter starts at p"
//   θ(ov) = max(τ_m·m·ov, min_score)                  threshold score (see "The decision rule")
// z_p is the raw alignment score minus the threshold score θ(ov), in score units over T: the
// evidence grows with the overlap, so T = 1 (one score point) is sharp enough that the ~L random
// positions of a read without adapter do not add up to a trim (with DiffBio's z = (s − τ_m)/T and
// s ∈ [−0.5, 1], every position would carry a ~30% chance of a trim at T = 1).
// The trim position is the FIRST adapter start, so
//   P(trim = p) = a_p Π_{q<p}(1 − a_q),  P(no adapter) = Π_q (1 − a_q)
// and the retention of base l is the probability that no adapter starts at or before l:
//   r_l = Π_{q≤l} (1 − a_q) = exp(Σ_{q≤l} log σ(−z_q))            (0 in padding)
//   trim_position = E[trim] = Σ_l r_l                                (= n when no adapter)
//   seq'_l = seq_l·r_l,  quality'_l = q_l·r_l
// A read without adapter keeps r ≈ 1 everywhere (DiffBio's softmax over positions instead pulls
// every trim toward the middle of the read, spec §2.2). As T → 0 this is exactly hard trimming at
// the first start whose raw score exceeds θ(ov) (trimmed_lengths()).
//
// The decision rule. A start p is accepted when its raw gap-free score R_p = m·ov·s_p exceeds
//   θ(ov) = max(τ_m·m·ov, min_score).
// The fraction term τ_m·m·ov alone (min_score = −∞, the default, DiffBio's rule) scales with the
// overlap, so a short overlap needs almost no evidence: with min_overlap = 1 a single 3' 'A' would
// be an adapter in a quarter of all reads, and min_overlap = 6 instead misses every insert that
// leaves 1–5 adapter bases. min_score is an absolute floor in score units, the log-likelihood-
// ratio view of the decision: with S close to log-odds scores (a match ≈ log 4(1−ε), a mismatch
// ≈ log(4ε/3), i.e. mismatch ≈ −3 matches for ε ≈ 1%), R_p is the evidence that the adapter starts
// at p against a random read base, and a constant floor bounds the chance that random sequence
// reaches it (≈ 4^(−min_score/m) for exact matches) the same at every overlap, so short overlaps
// need exact matches and long ones tolerate mismatches. The fraction term still caps the
// mismatch share on long overlaps. With min_score set, min_overlap can be 1: the floor decides.
// Recommended for Illumina adapters (examples/adapter_truth.cpp): match 1, mismatch −3,
// τ_m = 0.3, min_score = 3.5, min_overlap = 1: accepts 4 exact adapter bases at the 3' end (a
// random 3' tail matches with probability 4^−4 ≈ 0.4%), 8 bases with one mismatch, 12 with two.
// On seqprep's simSeq_1 (R1 only) this trims 97.98% of reads to exactly the true length (the
// fraction rule at the defaults: 96.14%); no single-end rule can do much better there, because
// inserts of 97–99 bp leave 1–3 adapter bases that are indistinguishable from a genuine read end
// (≈ 1.5% of the reads; paired-end tools find them from the mate overlap instead).
// min_score is a constant, so ∂θ/∂τ_m = m·ov on the fraction branch and 0 on the floor branch
// (the forward, the backward and trimmed_lengths() take the same branch; ties take the fraction).
//
// Learnable: A (init one-hot of the adapter; N = 0.25), S (init match/mismatch), τ_m, and T
// (stored as log T so it stays > 0) unless learnable_temperature is false.
// Gradient: a hand-derived reverse sweep (suffix sums of r̄·r, then through z to s, S, A, τ_m, T
// and the reads). O(N·L·La·4) forward and backward; one fused tape node for Var.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

/// An adapter must be non-empty and spelled with A, C, G, T or N (either case).
inline void check_adapter_sequence(const std::string& seq, const char* where, const char* field) {
    if (seq.empty()) throw InvalidArgument(std::string(where) + ": '" + field + "' is empty");
    for (char c : seq) {
        if (base_index(c) < 0 && c != 'N' && c != 'n') {
            throw InvalidArgument(std::string(where) + ": '" + field + "' has a character that is not A, C, G, T or N: '" +
                                  c + "'");
        }
    }
}

struct AdapterRemovalConfig {
    std::string adapter_sequence = "AGATCGGAAGAG";
    double temperature = 1.0;
    bool learnable_temperature = true;
    double match_threshold = 0.5;
    std::size_t min_overlap = 6;
    double match_score = 2.0;
    double mismatch_score = -1.0;
    /// Absolute floor on the raw alignment score (score units, m per match): a start is accepted
    /// only when its raw score exceeds max(τ_m·m·ov, min_score). −∞ (the default) turns it off,
    /// leaving the pure fraction rule. See the header comment for the recommended setting.
    double min_score = -std::numeric_limits<double>::infinity();

    void validate() const {
        check_adapter_sequence(adapter_sequence, "AdapterRemovalConfig", "adapter_sequence");
        check_temperature(temperature, "AdapterRemovalConfig", "temperature");
        check_finite(match_threshold, "AdapterRemovalConfig", "match_threshold");
        if (min_overlap == 0) throw InvalidArgument("AdapterRemovalConfig: 'min_overlap' must be >= 1");
        check_positive(match_score, "AdapterRemovalConfig", "match_score");
        check_finite(mismatch_score, "AdapterRemovalConfig", "mismatch_score");
        if (std::isnan(min_score) || min_score == std::numeric_limits<double>::infinity()) {
            throw InvalidArgument("AdapterRemovalConfig: 'min_score' must be finite or -infinity");
        }
    }
};

template <class T>
struct AdapterRemovalResult {
    std::vector<T> seq;           ///< [N × L × 4] reads times retention
    std::vector<T> quality;       ///< [N × L] qualities times retention
    std::vector<T> retention;     ///< [N × L] r_l (0 in padding)
    std::vector<T> trim_position; ///< [N] expected trim position Σ_l r_l
};

namespace detail {

/// One-hot rows [La × 4] of an adapter sequence (N: 0.25 each).
inline std::vector<double> adapter_one_hot(const std::string& a) {
    std::vector<double> v(a.size() * 4, 0.0);
    for (std::size_t k = 0; k < a.size(); ++k) {
        const int b = base_index(a[k]);
        for (int c = 0; c < 4; ++c) v[k * 4 + static_cast<std::size_t>(c)] = b < 0 ? 0.25 : (c == b ? 1.0 : 0.0);
    }
    return v;
}

/// A 4×4 substitution matrix with `match` on the diagonal and `mismatch` elsewhere.
inline std::vector<double> match_mismatch_scores(double match, double mismatch) {
    std::vector<double> v(16);
    for (std::size_t a = 0; a < 4; ++a) {
        for (std::size_t b = 0; b < 4; ++b) v[a * 4 + b] = a == b ? match : mismatch;
    }
    return v;
}

/// B_k = S A_k for any scalar: B[k, a] = Σ_b S[a, b] A[k, b].
template <class U>
std::vector<U> times_scores(std::span<const U> A, std::span<const U> S, std::size_t la) {
    std::vector<U> B(la * 4, passive<U>(0.0));
    for (std::size_t k = 0; k < la; ++k) {
        for (std::size_t a = 0; a < 4; ++a) {
            for (std::size_t b = 0; b < 4; ++b) B[k * 4 + a] = B[k * 4 + a] + S[a * 4 + b] * A[k * 4 + b];
        }
    }
    return B;
}

/// The adjoint of times_scores: Ā[k, b] += Σ_a B̄[k, a] S[a, b], S̄[a, b] += Σ_k B̄[k, a] A[k, b].
inline void times_scores_backward(std::span<const double> A, std::span<const double> S, std::span<const double> Bbar,
                                  std::size_t la, std::span<double> Abar, std::span<double> Sbar) {
    for (std::size_t k = 0; k < la; ++k) {
        for (std::size_t a = 0; a < 4; ++a) {
            for (std::size_t b = 0; b < 4; ++b) {
                if (!Sbar.empty()) Sbar[a * 4 + b] += Bbar[k * 4 + a] * A[k * 4 + b];
                if (!Abar.empty()) Abar[k * 4 + b] += Bbar[k * 4 + a] * S[a * 4 + b];
            }
        }
    }
}

/// Threshold score of a start with overlap ov: θ = max(τ_m·w, min_score), w = m·ov (raw score units).
/// Ties (τ_m·w == min_score) take the fraction branch, in the forward and the backward alike.
template <class U>
U adapter_threshold(const U& tau_m, double w, double min_score) {
    const U frac = tau_m * w;
    if (primal(frac) >= min_score) return frac;
    return passive<U>(min_score);
}

/// Forward of one read for any scalar U (double for the fused node, Dual for forward mode).
/// seq: [len × 4] (stride 4), B: [La × 4] with B_k = S A_k, out r: [len], returns Σ r.
template <class U, class SeqT>
U adapter_read_forward(const SeqT* seq, std::size_t len, const U* B, std::size_t la,
                       std::size_t min_overlap, double norm, double min_score, const U& tau_m, const U& temp, U* r) {
    using diffbio::log_sigmoid;
    using std::exp;
    U c = passive<U>(0.0);
    U total = passive<U>(0.0);
    for (std::size_t p = 0; p < len; ++p) {
        const std::size_t ov = std::min(len - p, la);
        if (ov >= min_overlap) {
            U s = passive<U>(0.0);
            for (std::size_t k = 0; k < ov; ++k) {
                for (std::size_t a = 0; a < 4; ++a) s = s + seq[(p + k) * 4 + a] * B[k * 4 + a];
            }
            const double w = norm * static_cast<double>(ov);
            c = c + log_sigmoid(-((s - adapter_threshold<U>(tau_m, w, min_score)) / temp));
        }
        r[p] = exp(c);
        total = total + r[p];
    }
    return total;
}

/// Hand-derived backward of one read (double). rbar: ∂L/∂r [len] (pos̄ already added).
/// Accumulates into seq_grad (may be null), Bbar [La × 4], tau_bar, temp_bar.
inline void adapter_read_backward(const double* seq, std::size_t len, const double* B, std::size_t la,
                                  std::size_t min_overlap, double norm, double min_score, double tau_m, double temp,
                                  const double* r,
                                  const double* rbar, double* seq_grad, double* Bbar, double& tau_bar, double& temp_bar) {
    // ū_q = Σ_{l ≥ q} r̄_l r_l
    double suffix = 0.0;
    for (std::size_t pp = len; pp-- > 0;) {
        suffix += rbar[pp] * r[pp];
        const std::size_t p = pp;
        const std::size_t ov = std::min(len - p, la);
        if (ov < min_overlap) continue;
        const double w = norm * static_cast<double>(ov);
        double s = 0.0;
        for (std::size_t k = 0; k < ov; ++k) {
            for (std::size_t a = 0; a < 4; ++a) s += seq[(p + k) * 4 + a] * B[k * 4 + a];
        }
        const bool fraction = tau_m * w >= min_score; // θ = τ_m·w (else the constant min_score)
        const double z = (s - (fraction ? tau_m * w : min_score)) / temp;
        const double zbar = -suffix * diffbio::sigmoid(z); // d log σ(−z)/dz = −σ(z)
        if (fraction) tau_bar -= zbar * w / temp;
        temp_bar -= zbar * z / temp;
        const double g = zbar / temp; // ∂z/∂(raw score) = 1/T
        for (std::size_t k = 0; k < ov; ++k) {
            for (std::size_t a = 0; a < 4; ++a) {
                if (seq_grad != nullptr) seq_grad[(p + k) * 4 + a] += g * B[k * 4 + a];
                Bbar[k * 4 + a] += g * seq[(p + k) * 4 + a];
            }
        }
    }
}

} // namespace detail

class AdapterRemoval {
public:
    explicit AdapterRemoval(AdapterRemovalConfig cfg = {})
        : cfg_((cfg.validate(), std::move(cfg))), adapter_("adapter_one_hot", detail::adapter_one_hot(cfg_.adapter_sequence)),
          scores_("adapter_scores", detail::match_mismatch_scores(cfg_.match_score, cfg_.mismatch_score)),
          threshold_("adapter_match_threshold", cfg_.match_threshold),
          log_temperature_("adapter_log_temperature", std::log(cfg_.temperature)) {}

    const AdapterRemovalConfig& config() const noexcept { return cfg_; }
    std::size_t adapter_length() const noexcept { return cfg_.adapter_sequence.size(); }
    ad::Parameter& adapter() noexcept { return adapter_; }
    ad::Parameter& scores() noexcept { return scores_; }
    ad::Parameter& match_threshold() noexcept { return threshold_; }
    ad::Parameter& log_temperature() noexcept { return log_temperature_; }
    const ad::Parameter& adapter() const noexcept { return adapter_; }
    const ad::Parameter& scores() const noexcept { return scores_; }
    const ad::Parameter& match_threshold() const noexcept { return threshold_; }
    const ad::Parameter& log_temperature() const noexcept { return log_temperature_; }
    double temperature() const { return std::exp(log_temperature_.values()[0]); }

    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&adapter_, &scores_, &threshold_};
        if (cfg_.learnable_temperature) p.push_back(&log_temperature_);
        return p;
    }

    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    AdapterRemovalResult<promote_t<T, S, Q>> apply(ad::Binder<T>& bind, const ReadsView<S, Q>& reads,
                                                   const P& policy = {}) const {
        using R = promote_t<T, S, Q>;
        reads.validate("AdapterRemoval");
        AdapterRemovalResult<R> out;
        if constexpr (soft::detail::is_var_v<R>) {
            out.retention = retention_var(bind, reads, policy, out.trim_position);
        } else {
            out.retention = retention_generic<R>(bind, reads, out.trim_position);
        }
        out.seq = scale_rows(policy, reads.seq, std::span<const R>(out.retention), 4);
        out.quality = scale_rows(policy, reads.quality, std::span<const R>(out.retention), 1);
        return out;
    }

    /// Hard decision with the current parameters: the trimmed length of each read (the first start
    /// whose score exceeds τ_m, or the full length). O(N·L·La).
    template <class S, class Q>
    std::vector<std::uint32_t> trimmed_lengths(const ReadsView<S, Q>& reads) const {
        reads.validate("AdapterRemoval::trimmed_lengths");
        const std::vector<double> B = adapter_times_scores();
        const std::size_t la = adapter_length();
        const double tau_m = threshold_.values()[0];
        // best[k] = max(0, max_a B[k, a]): the most a base with non-negative entries summing to at
        // most 1 (one-hot, N = 0.25 each, or soft-masked) can add at adapter offset k. With the
        // suffix sums of best, a start is abandoned as soon as it can no longer reach θ(ov).
        std::vector<double> best_suffix(la + 1, 0.0);
        for (std::size_t k = la; k-- > 0;) {
            double m = 0.0;
            for (std::size_t a = 0; a < 4; ++a) m = std::max(m, B[k * 4 + a]);
            best_suffix[k] = best_suffix[k + 1] + m;
        }
        std::vector<std::uint32_t> out(reads.n);
        std::vector<double> row(reads.length * 4);
        for (std::size_t i = 0; i < reads.n; ++i) {
            const std::size_t len = reads.lengths[i];
            const auto* seq = reads.seq.data() + i * reads.length * 4;
            bool bounded = true; // every row non-negative with mass ≤ 1: the early exit is exact
            for (std::size_t j = 0; j < len * 4; j += 4) {
                double mass = 0.0;
                for (std::size_t a = 0; a < 4; ++a) {
                    row[j + a] = primal(seq[j + a]);
                    bounded = bounded && row[j + a] >= 0.0;
                    mass += row[j + a];
                }
                bounded = bounded && mass <= 1.0 + 1e-12;
            }
            out[i] = static_cast<std::uint32_t>(len);
            for (std::size_t p = 0; p < len; ++p) {
                const std::size_t ov = std::min(len - p, la);
                if (ov < cfg_.min_overlap) break;
                const double theta = detail::adapter_threshold<double>(tau_m, cfg_.match_score * static_cast<double>(ov),
                                                                       cfg_.min_score);
                const double tail = best_suffix[ov]; // what offsets ≥ ov could have added
                double s = 0.0;
                std::size_t k = 0;
                for (; k < ov; ++k) {
                    const double* r = row.data() + (p + k) * 4;
                    s += r[0] * B[k * 4] + r[1] * B[k * 4 + 1] + r[2] * B[k * 4 + 2] + r[3] * B[k * 4 + 3];
                    if (bounded && s + (best_suffix[k + 1] - tail) <= theta) break; // cannot exceed θ any more
                }
                if (k == ov && s > theta) {
                    out[i] = static_cast<std::uint32_t>(p);
                    break;
                }
            }
        }
        return out;
    }

private:
    std::vector<double> adapter_times_scores() const {
        return detail::times_scores<double>(adapter_.values(), scores_.values(), adapter_length());
    }

    /// double / float / Dual: the forward formula in the scalar itself.
    template <class R, class T, class S, class Q>
    std::vector<R> retention_generic(ad::Binder<T>& bind, const ReadsView<S, Q>& reads, std::vector<R>& pos) const {
        using std::exp;
        const std::size_t la = adapter_length();
        const auto A = bind(adapter_);
        const auto Sm = bind(scores_);
        const std::vector<R> Ar(A.begin(), A.end()), Sr(Sm.begin(), Sm.end());
        const std::vector<R> B = detail::times_scores<R>(Ar, Sr, la);
        const R tau_m = bind(threshold_)[0];
        const R temp = cfg_.learnable_temperature ? R(exp(bind(log_temperature_)[0])) : passive<R>(temperature());
        std::vector<R> r(reads.n * reads.length, passive<R>(0.0));
        pos.assign(reads.n, passive<R>(0.0));
        for (std::size_t i = 0; i < reads.n; ++i) {
            pos[i] = detail::adapter_read_forward<R>(reads.seq.data() + i * reads.length * 4, reads.lengths[i],
                                                     B.data(), la, cfg_.min_overlap, cfg_.match_score, cfg_.min_score,
                                                     tau_m, temp, r.data() + i * reads.length);
        }
        return r;
    }

    /// Var: one fused node with outputs [r (N×L), pos (N)].
    template <class S, class Q, class P>
    std::vector<ad::Var> retention_var(ad::Binder<ad::Var>& bind, const ReadsView<S, Q>& reads, const P& policy,
                                       std::vector<ad::Var>& pos) const {
        ad::Tape& tape = ad::Tape::active();
        const std::size_t n = reads.n, L = reads.length, la = adapter_length(), min_ov = cfg_.min_overlap;
        const double norm = cfg_.match_score, min_score = cfg_.min_score;
        const bool learn_t = cfg_.learnable_temperature;
        const auto A = bind(adapter_);
        const auto Sm = bind(scores_);
        const auto tau = bind(threshold_);
        const std::span<const ad::Var> logt = learn_t ? bind(log_temperature_) : std::span<const ad::Var>();
        const std::span<const double> saved_seq = soft::detail::saved_values(tape, reads.seq);
        const std::span<std::uint32_t> lens = tape.allocate<std::uint32_t>(n);
        std::copy(reads.lengths.begin(), reads.lengths.end(), lens.begin());
        const double fixed_temp = temperature();
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(reads.seq), A, Sm, tau, logt}, n * L + n,
            [=](const ad::NodeGrad& g) {
                const auto seq = soft::detail::input_values<S>(g, 0, saved_seq);
                const auto Av = g.in_value(1), Sv = g.in_value(2);
                const double tau_m = g.in_value(3)[0];
                const double temp = learn_t ? std::exp(g.in_value(4)[0]) : fixed_temp;
                const std::vector<double> B = detail::times_scores<double>(Av, Sv, la);
                const auto r = g.out_value();
                const auto ybar = g.out_adjoint();
                const auto seq_grad = g.in_adjoint(0);
                std::vector<double> Bbar(la * 4, 0.0);
                double tau_bar = 0.0, temp_bar = 0.0;
                [[maybe_unused]] const int threads = exec::thread_count(policy);
                const auto nn = static_cast<std::ptrdiff_t>(n);
                DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
                {
                    std::vector<double> Bbar_t(la * 4, 0.0), rbar(L);
                    double tau_t = 0.0, temp_t = 0.0;
                    DIFFBIO_OMP(for schedule(dynamic, 64))
                    for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                        const auto i = static_cast<std::size_t>(ii);
                        const std::size_t len = lens[i];
                        for (std::size_t l = 0; l < len; ++l) rbar[l] = ybar[i * L + l] + ybar[n * L + i];
                        detail::adapter_read_backward(seq.data() + i * L * 4, len,
                                                      B.data(), la, min_ov, norm, min_score, tau_m, temp,
                                                      r.data() + i * L, rbar.data(),
                                                      seq_grad.empty() ? nullptr : seq_grad.data() + i * L * 4,
                                                      Bbar_t.data(), tau_t, temp_t);
                    }
                    DIFFBIO_OMP(critical)
                    {
                        for (std::size_t k = 0; k < Bbar.size(); ++k) Bbar[k] += Bbar_t[k];
                        tau_bar += tau_t;
                        temp_bar += temp_t;
                    }
                }
                detail::times_scores_backward(Av, Sv, Bbar, la, g.in_adjoint(1), g.in_adjoint(2));
                g.in_adjoint(3)[0] += tau_bar;
                if (learn_t) g.in_adjoint(4)[0] += temp_bar * temp; // d T / d log T = T
            });
        // Forward (outputs are recorded; no more records until the loop ends).
        const auto seq = soft::detail::forward_values(tape, reads.seq, saved_seq);
        std::vector<double> Av(la * 4), Sv(16);
        for (std::size_t k = 0; k < Av.size(); ++k) Av[k] = tape.value(A[k]);
        for (std::size_t k = 0; k < 16; ++k) Sv[k] = tape.value(Sm[k]);
        const std::vector<double> B = detail::times_scores<double>(Av, Sv, la);
        const double tau_m = tape.value(tau[0]);
        const double temp = learn_t ? std::exp(tape.value(logt[0])) : fixed_temp;
        auto yv = tape.values_of(y);
        const auto nn = static_cast<std::ptrdiff_t>(n);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        DIFFBIO_OMP(parallel for schedule(dynamic, 64) num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
            const auto i = static_cast<std::size_t>(ii);
            double* r = yv.data() + i * L;
            for (std::size_t l = 0; l < L; ++l) r[l] = 0.0;
            yv[n * L + i] = detail::adapter_read_forward<double>(seq.data() + i * L * 4, lens[i], B.data(), la,
                                                                min_ov, norm, min_score, tau_m, temp, r);
        }
        std::vector<ad::Var> ret(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n * L));
        pos.assign(y.begin() + static_cast<std::ptrdiff_t>(n * L), y.end());
        return ret;
    }

    AdapterRemovalConfig cfg_;
    ad::Parameter adapter_;
    ad::Parameter scores_;
    ad::Parameter threshold_;
    ad::Parameter log_temperature_;
};

} // namespace diffbio::ops
