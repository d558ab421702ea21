#pragma once
// MateOverlap: adapter trimming of read pairs from the overlap of the two mates.
//
// A pair sequenced from a fragment (insert) of length I shorter than the reads reads through into
// the adapters: mate 1 is fragment + adapter 1, mate 2 is revcomp(fragment) + adapter 2, so
// mate 1's base k is the complement of mate 2's base I − 1 − k for every k < I. Single-end
// trimming sees only the adapter bases after the insert, which for I close to the read length are
// too few to tell from a genuine read end (AdapterRemoval's header); the mate overlap adds the I
// bases of the insert itself as evidence.
//
// For a pair (mate lengths n1, n2) and each candidate insert length p < P = max(n1, n2):
//   E_p = Σ_{k ∈ K_p} x1_kᵀ S c(x2_{p−1−k})        overlap: K_p = [max(0, p − n2), min(p, n1))
//       + Σ_{k < ov1} x1_{p+k}ᵀ S A1_k              adapter 1 after the insert (p < n1), ov1 = min(n1 − p, La1)
//       + Σ_{k < ov2} x2_{p+k}ᵀ S A2_k              adapter 2 after the insert (p < n2), ov2 = min(n2 − p, La2)
//   z_p = (E_p − θ_p)/T,  a_p = σ(z_p),  θ_p = max(τ_m·m·w_p, min_score),  w_p = |K_p| + ov1 + ov2
// where c(x)_b = x_{3−b} is the complement of a base (A↔T, C↔G in A,C,G,T order), S the 4×4
// scores (match m), A1/A2 the adapters' one-hot rows. E_p is the gap-free alignment score of
// "the insert is p bases long", θ_p the same decision rule as AdapterRemoval (a fraction of the
// best possible score, with an absolute floor). The insert is the FIRST accepted p:
//   P(insert = p) = a_p Π_{q<p}(1 − a_q),   retention R_l = Π_{q≤l}(1 − a_q)
// both mates keep base l with probability R_l (0 in padding), and the expected insert length is
// Σ_{l<P} R_l (= P when no p is accepted). As T → 0 this is hard trimming of both mates to the
// first accepted p (insert_lengths()); reads whose insert is at least the read length are kept.
//
// Learnable: A1, A2 (one-hot init, N = 0.25), S (match/mismatch init), τ_m, and T as log T
// unless learnable_temperature is false. Gradients: one fused tape node for Var with a
// hand-derived reverse sweep (as in AdapterRemoval); double, float and Dual run the forward
// formula in the scalar. O(P²) per pair forward and backward (the overlap sums), so the soft
// operator is for training samples; the hard decision exits each candidate as soon as it cannot
// reach θ_p, which on real pairs costs a few bases per candidate.
//
// Defaults: match 1, mismatch −3, τ_m 0.3, min_score 3.5 (AdapterRemoval's recommended rule), both
// adapters AGATCGGAAGAG (the common prefix of the TruSeq adapters of both mates).

#include <algorithm>
#include <array>
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
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct MateOverlapConfig {
    std::string adapter1 = "AGATCGGAAGAG"; ///< read through after the insert in mate 1
    std::string adapter2 = "AGATCGGAAGAG"; ///< read through after the insert in mate 2
    double temperature = 1.0;
    bool learnable_temperature = true;
    double match_threshold = 0.3;
    double match_score = 1.0;
    double mismatch_score = -3.0;
    double min_score = 3.5; ///< absolute floor on E_p (score units); −∞ leaves the fraction rule

    void validate() const {
        check_adapter_sequence(adapter1, "MateOverlapConfig", "adapter1");
        check_adapter_sequence(adapter2, "MateOverlapConfig", "adapter2");
        check_temperature(temperature, "MateOverlapConfig", "temperature");
        check_finite(match_threshold, "MateOverlapConfig", "match_threshold");
        check_positive(match_score, "MateOverlapConfig", "match_score");
        check_finite(mismatch_score, "MateOverlapConfig", "mismatch_score");
        if (std::isnan(min_score) || min_score == std::numeric_limits<double>::infinity()) {
            throw InvalidArgument("MateOverlapConfig: 'min_score' must be finite or -infinity");
        }
    }
};

template <class T>
struct MateOverlapResult {
    std::vector<T> seq1, seq2;           ///< [N × L1 × 4], [N × L2 × 4] reads times retention
    std::vector<T> quality1, quality2;   ///< [N × L1], [N × L2] qualities times retention
    std::vector<T> retention1, retention2; ///< R_l per mate (0 in padding)
    std::vector<T> insert_length;        ///< [N] expected insert length Σ_{l<P} R_l
};

namespace detail {

/// One mate of a pair inside the kernels: rows [n × 4] (stride 4).
template <class X>
struct MateRows {
    const X* rows;
    std::size_t n;
};

/// The pieces of E_p that depend on p only: overlap range [k0, k1), adapter overlaps, w_p.
struct MateCandidate {
    std::size_t k0, k1, ov1, ov2;
    double w;
    MateCandidate(std::size_t p, std::size_t n1, std::size_t n2, std::size_t la1, std::size_t la2, double m)
        : k0(p > n2 ? p - n2 : 0), k1(std::min(p, n1)), ov1(p < n1 ? std::min(n1 - p, la1) : 0),
          ov2(p < n2 ? std::min(n2 - p, la2) : 0),
          w(m * static_cast<double>((k1 - k0) + ov1 + ov2)) {}
};

/// E_p for any scalar U: the overlap and both adapter terms.
template <class U, class X1, class X2>
U mate_evidence(const MateCandidate& c, std::size_t p, MateRows<X1> m1, MateRows<X2> m2, const U* S, const U* B1,
                const U* B2) {
    U e = passive<U>(0.0);
    for (std::size_t k = c.k0; k < c.k1; ++k) {
        const X1* x = m1.rows + k * 4;
        const X2* y = m2.rows + (p - 1 - k) * 4;
        for (std::size_t a = 0; a < 4; ++a) {
            for (std::size_t b = 0; b < 4; ++b) e = e + x[a] * S[a * 4 + b] * y[3 - b];
        }
    }
    for (std::size_t k = 0; k < c.ov1; ++k) {
        for (std::size_t a = 0; a < 4; ++a) e = e + m1.rows[(p + k) * 4 + a] * B1[k * 4 + a];
    }
    for (std::size_t k = 0; k < c.ov2; ++k) {
        for (std::size_t a = 0; a < 4; ++a) e = e + m2.rows[(p + k) * 4 + a] * B2[k * 4 + a];
    }
    return e;
}

/// Forward of one pair: R [P] (P = max(n1, n2)), returns Σ R.
template <class U, class X1, class X2>
U mate_pair_forward(MateRows<X1> m1, MateRows<X2> m2, const U* S, const U* B1, std::size_t la1, const U* B2,
                    std::size_t la2, double match, double min_score, const U& tau_m, const U& temp, U* R) {
    using diffbio::log_sigmoid;
    using std::exp;
    const std::size_t P = std::max(m1.n, m2.n);
    U c = passive<U>(0.0);
    U total = passive<U>(0.0);
    for (std::size_t p = 0; p < P; ++p) {
        const MateCandidate cand(p, m1.n, m2.n, la1, la2, match);
        const U e = mate_evidence<U>(cand, p, m1, m2, S, B1, B2);
        c = c + log_sigmoid(-((e - adapter_threshold<U>(tau_m, cand.w, min_score)) / temp));
        R[p] = exp(c);
        total = total + R[p];
    }
    return total;
}

/// Adjoints a pair's backward accumulates into (per thread).
struct MateGrads {
    double* seq1 = nullptr; ///< [n1 × 4] or null
    double* seq2 = nullptr; ///< [n2 × 4] or null
    double* S;              ///< [16]
    double* B1;             ///< [La1 × 4]
    double* B2;             ///< [La2 × 4]
    double tau = 0.0;
    double temp = 0.0;
};

/// Hand-derived backward of one pair. Rbar: ∂L/∂R_p [P] (the insert length's adjoint included).
inline void mate_pair_backward(MateRows<double> m1, MateRows<double> m2, const double* S, const double* B1,
                               std::size_t la1, const double* B2, std::size_t la2, double match, double min_score,
                               double tau_m, double temp, const double* R, const double* Rbar, MateGrads& g) {
    const std::size_t P = std::max(m1.n, m2.n);
    double suffix = 0.0; // Σ_{l ≥ p} R̄_l R_l
    for (std::size_t p = P; p-- > 0;) {
        suffix += Rbar[p] * R[p];
        const MateCandidate cand(p, m1.n, m2.n, la1, la2, match);
        const double e = mate_evidence<double>(cand, p, m1, m2, S, B1, B2);
        const bool fraction = tau_m * cand.w >= min_score;
        const double z = (e - (fraction ? tau_m * cand.w : min_score)) / temp;
        const double zbar = -suffix * diffbio::sigmoid(z); // d log σ(−z)/dz = −σ(z)
        if (fraction) g.tau -= zbar * cand.w / temp;
        g.temp -= zbar * z / temp;
        const double ebar = zbar / temp;
        for (std::size_t k = cand.k0; k < cand.k1; ++k) {
            const std::size_t j = p - 1 - k;
            const double* x = m1.rows + k * 4;
            const double* y = m2.rows + j * 4;
            for (std::size_t a = 0; a < 4; ++a) {
                for (std::size_t b = 0; b < 4; ++b) {
                    const double s = S[a * 4 + b];
                    if (g.seq1 != nullptr) g.seq1[k * 4 + a] += ebar * s * y[3 - b];
                    if (g.seq2 != nullptr) g.seq2[j * 4 + 3 - b] += ebar * x[a] * s;
                    g.S[a * 4 + b] += ebar * x[a] * y[3 - b];
                }
            }
        }
        for (std::size_t k = 0; k < cand.ov1; ++k) {
            for (std::size_t a = 0; a < 4; ++a) {
                if (g.seq1 != nullptr) g.seq1[(p + k) * 4 + a] += ebar * B1[k * 4 + a];
                g.B1[k * 4 + a] += ebar * m1.rows[(p + k) * 4 + a];
            }
        }
        for (std::size_t k = 0; k < cand.ov2; ++k) {
            for (std::size_t a = 0; a < 4; ++a) {
                if (g.seq2 != nullptr) g.seq2[(p + k) * 4 + a] += ebar * B2[k * 4 + a];
                g.B2[k * 4 + a] += ebar * m2.rows[(p + k) * 4 + a];
            }
        }
    }
}

} // namespace detail

class MateOverlap {
public:
    explicit MateOverlap(MateOverlapConfig cfg = {})
        : cfg_((cfg.validate(), std::move(cfg))), adapter1_("mate1_adapter_one_hot", detail::adapter_one_hot(cfg_.adapter1)),
          adapter2_("mate2_adapter_one_hot", detail::adapter_one_hot(cfg_.adapter2)),
          scores_("mate_overlap_scores", detail::match_mismatch_scores(cfg_.match_score, cfg_.mismatch_score)),
          threshold_("mate_overlap_match_threshold", cfg_.match_threshold),
          log_temperature_("mate_overlap_log_temperature", std::log(cfg_.temperature)) {}

    const MateOverlapConfig& config() const noexcept { return cfg_; }
    ad::Parameter& adapter1() noexcept { return adapter1_; }
    ad::Parameter& adapter2() noexcept { return adapter2_; }
    ad::Parameter& scores() noexcept { return scores_; }
    ad::Parameter& match_threshold() noexcept { return threshold_; }
    ad::Parameter& log_temperature() noexcept { return log_temperature_; }
    double temperature() const { return std::exp(log_temperature_.values()[0]); }

    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&adapter1_, &adapter2_, &scores_, &threshold_};
        if (cfg_.learnable_temperature) p.push_back(&log_temperature_);
        return p;
    }

    /// Soft trimming of N pairs: mate1 [N × L1], mate2 [N × L2] (pair i = read i of both views).
    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    MateOverlapResult<promote_t<T, S, Q>> apply(ad::Binder<T>& bind, const ReadsView<S, Q>& mate1,
                                                const ReadsView<S, Q>& mate2, const P& policy = {}) const {
        using R = promote_t<T, S, Q>;
        validate_pair(mate1, mate2, "MateOverlap");
        MateOverlapResult<R> out;
        std::vector<R> joint; // [N × P_max]: R_l of each pair
        if constexpr (soft::detail::is_var_v<R>) {
            joint = retention_var(bind, mate1, mate2, policy, out.insert_length);
        } else {
            joint = retention_generic<R>(bind, mate1, mate2, out.insert_length);
        }
        const std::size_t width = std::max(mate1.length, mate2.length);
        out.retention1 = per_mate(joint, width, mate1);
        out.retention2 = per_mate(joint, width, mate2);
        out.seq1 = scale_rows(policy, mate1.seq, std::span<const R>(out.retention1), 4);
        out.seq2 = scale_rows(policy, mate2.seq, std::span<const R>(out.retention2), 4);
        out.quality1 = scale_rows(policy, mate1.quality, std::span<const R>(out.retention1), 1);
        out.quality2 = scale_rows(policy, mate2.quality, std::span<const R>(out.retention2), 1);
        return out;
    }

    /// Hard decision with the current parameters: the insert length of each pair (the first p with
    /// E_p > θ_p), or max(n1, n2) when none is accepted. Trim mate m of pair i to
    /// min(insert[i], length of the mate). O(P) candidates per pair, each abandoned as soon as it
    /// can no longer exceed θ_p.
    template <class S, class Q>
    std::vector<std::uint32_t> insert_lengths(const ReadsView<S, Q>& mate1, const ReadsView<S, Q>& mate2) const {
        validate_pair(mate1, mate2, "MateOverlap::insert_lengths");
        const std::size_t la1 = cfg_.adapter1.size(), la2 = cfg_.adapter2.size();
        const std::vector<double> B1 = detail::times_scores<double>(adapter1_.values(), scores_.values(), la1);
        const std::vector<double> B2 = detail::times_scores<double>(adapter2_.values(), scores_.values(), la2);
        const std::span<const double> scores = scores_.values();
        const double tau_m = threshold_.values()[0];
        // Upper bounds of what a base (non-negative entries, mass ≤ 1) can add: max(0, max entry).
        double s_best = 0.0;
        for (double v : scores) s_best = std::max(s_best, v);
        const std::vector<double> best1 = best_suffix(B1, la1), best2 = best_suffix(B2, la2);
        std::vector<std::uint32_t> out(mate1.n);
        // Overlap scores of two exact bases: C[a·4 + b] = S[a, 3 − b] (mate 2's base complemented).
        std::array<double, 16> comp_scores{};
        for (std::size_t a = 0; a < 4; ++a) {
            for (std::size_t b = 0; b < 4; ++b) comp_scores[a * 4 + b] = scores[a * 4 + 3 - b];
        }
        std::vector<double> r1, r2;
        std::vector<std::int8_t> c1, c2; // base codes of one-hot rows, −1 otherwise
        for (std::size_t i = 0; i < mate1.n; ++i) {
            const std::size_t n1 = mate1.lengths[i], n2 = mate2.lengths[i];
            const bool bounded1 = copy_rows(mate1, i, r1, c1);
            const bool bounded = copy_rows(mate2, i, r2, c2) && bounded1;
            const std::size_t P = std::max(n1, n2);
            out[i] = static_cast<std::uint32_t>(P);
            // What base k of a mate adds against adapter row j, and the overlap of bases k (mate 1), j (mate 2).
            auto adapter_term = [](const std::vector<double>& r, const std::vector<std::int8_t>& c, std::size_t k,
                                   const std::vector<double>& B, std::size_t j) {
                return c[k] >= 0 ? B[j * 4 + static_cast<std::size_t>(c[k])] : dot4(r.data() + k * 4, B.data() + j * 4);
            };
            auto overlap = [&](std::size_t k, std::size_t j) {
                if (c1[k] >= 0 && c2[j] >= 0) return comp_scores[static_cast<std::size_t>(c1[k] * 4 + c2[j])];
                return overlap_term(r1.data() + k * 4, r2.data() + j * 4, scores);
            };
            for (std::size_t p = 0; p < P; ++p) {
                const detail::MateCandidate c(p, n1, n2, la1, la2, cfg_.match_score);
                const double theta = detail::adapter_threshold<double>(tau_m, c.w, cfg_.min_score);
                // rest: the most the terms not yet added can contribute
                double rest = (best1[0] - best1[c.ov1]) + (best2[0] - best2[c.ov2]) +
                              s_best * static_cast<double>(c.k1 - c.k0);
                double e = 0.0;
                bool dead = false;
                auto add = [&](double v, double bound) {
                    e += v;
                    rest -= bound;
                    dead = bounded && e + rest <= theta;
                };
                for (std::size_t k = 0; k < c.ov1 && !dead; ++k) add(adapter_term(r1, c1, p + k, B1, k), best1[k] - best1[k + 1]);
                for (std::size_t k = 0; k < c.ov2 && !dead; ++k) add(adapter_term(r2, c2, p + k, B2, k), best2[k] - best2[k + 1]);
                for (std::size_t k = c.k1; k-- > c.k0 && !dead;) add(overlap(k, p - 1 - k), s_best); // junction inwards
                if (!dead && e > theta) {
                    out[i] = static_cast<std::uint32_t>(p);
                    break;
                }
            }
        }
        return out;
    }

private:
    template <class S, class Q>
    static void validate_pair(const ReadsView<S, Q>& m1, const ReadsView<S, Q>& m2, const char* where) {
        m1.validate((std::string(where) + " (mate 1)").c_str());
        m2.validate((std::string(where) + " (mate 2)").c_str());
        if (m1.n != m2.n) {
            throw ShapeError(std::string(where) + ": mate 1 has " + std::to_string(m1.n) + " reads but mate 2 has " +
                             std::to_string(m2.n));
        }
    }

    static std::vector<double> best_suffix(const std::vector<double>& B, std::size_t la) {
        std::vector<double> best(la + 1, 0.0);
        for (std::size_t k = la; k-- > 0;) {
            double m = 0.0;
            for (std::size_t a = 0; a < 4; ++a) m = std::max(m, B[k * 4 + a]);
            best[k] = best[k + 1] + m;
        }
        return best;
    }

    static double dot4(const double* x, const double* b) { return x[0] * b[0] + x[1] * b[1] + x[2] * b[2] + x[3] * b[3]; }

    /// xᵀ S c(y) with c(y)_b = y_{3−b}.
    static double overlap_term(const double* x, const double* y, std::span<const double> S) {
        double e = 0.0;
        for (std::size_t a = 0; a < 4; ++a) {
            if (x[a] == 0.0) continue;
            e += x[a] * (S[a * 4] * y[3] + S[a * 4 + 1] * y[2] + S[a * 4 + 2] * y[1] + S[a * 4 + 3] * y[0]);
        }
        return e;
    }

    /// Read i's rows as doubles and base codes (the base of a one-hot row, −1 for any other row);
    /// true when every row is non-negative with mass ≤ 1.
    template <class S, class Q>
    static bool copy_rows(const ReadsView<S, Q>& v, std::size_t i, std::vector<double>& rows,
                          std::vector<std::int8_t>& codes) {
        const std::size_t len = v.lengths[i];
        rows.resize(len * 4);
        codes.assign(len, -1);
        bool bounded = true;
        const auto* seq = v.seq.data() + i * v.length * 4;
        for (std::size_t j = 0; j < len; ++j) {
            double mass = 0.0;
            int ones = 0, zeros = 0, code = -1;
            for (std::size_t a = 0; a < 4; ++a) {
                const double x = primal(seq[j * 4 + a]);
                rows[j * 4 + a] = x;
                bounded = bounded && x >= 0.0;
                mass += x;
                if (x == 1.0) {
                    ++ones;
                    code = static_cast<int>(a);
                } else if (x == 0.0) {
                    ++zeros;
                }
            }
            bounded = bounded && mass <= 1.0 + 1e-12;
            if (ones == 1 && zeros == 3) codes[j] = static_cast<std::int8_t>(code);
        }
        return bounded;
    }

    /// A mate's retention [N × L] from the joint one [N × width] (0 in the mate's padding).
    template <class R, class S, class Q>
    static std::vector<R> per_mate(const std::vector<R>& joint, std::size_t width, const ReadsView<S, Q>& m) {
        std::vector<R> r(m.n * m.length, passive<R>(0.0));
        for (std::size_t i = 0; i < m.n; ++i) {
            for (std::size_t l = 0; l < m.lengths[i]; ++l) r[i * m.length + l] = joint[i * width + l];
        }
        return r;
    }

    template <class R, class T, class S, class Q>
    std::vector<R> retention_generic(ad::Binder<T>& bind, const ReadsView<S, Q>& m1, const ReadsView<S, Q>& m2,
                                     std::vector<R>& insert) const {
        using std::exp;
        const std::size_t la1 = cfg_.adapter1.size(), la2 = cfg_.adapter2.size();
        const auto A1 = bind(adapter1_), A2 = bind(adapter2_), Sm = bind(scores_);
        const std::vector<R> A1r(A1.begin(), A1.end()), A2r(A2.begin(), A2.end()), Sr(Sm.begin(), Sm.end());
        const std::vector<R> B1 = detail::times_scores<R>(A1r, Sr, la1), B2 = detail::times_scores<R>(A2r, Sr, la2);
        const R tau_m = bind(threshold_)[0];
        const R temp = cfg_.learnable_temperature ? R(exp(bind(log_temperature_)[0])) : passive<R>(temperature());
        const std::size_t width = std::max(m1.length, m2.length);
        std::vector<R> joint(m1.n * width, passive<R>(0.0));
        insert.assign(m1.n, passive<R>(0.0));
        for (std::size_t i = 0; i < m1.n; ++i) {
            insert[i] = detail::mate_pair_forward<R>(
                detail::MateRows<S>{m1.seq.data() + i * m1.length * 4, m1.lengths[i]},
                detail::MateRows<S>{m2.seq.data() + i * m2.length * 4, m2.lengths[i]}, Sr.data(), B1.data(), la1,
                B2.data(), la2, cfg_.match_score, cfg_.min_score, tau_m, temp, joint.data() + i * width);
        }
        return joint;
    }

    /// Var: one fused node with outputs [joint R (N × width), insert length (N)].
    template <class S, class Q, class P>
    std::vector<ad::Var> retention_var(ad::Binder<ad::Var>& bind, const ReadsView<S, Q>& m1,
                                       const ReadsView<S, Q>& m2, const P& policy, std::vector<ad::Var>& insert) const {
        ad::Tape& tape = ad::Tape::active();
        const std::size_t n = m1.n, L1 = m1.length, L2 = m2.length, width = std::max(L1, L2);
        const std::size_t la1 = cfg_.adapter1.size(), la2 = cfg_.adapter2.size();
        const double match = cfg_.match_score, min_score = cfg_.min_score, fixed_temp = temperature();
        const bool learn_t = cfg_.learnable_temperature;
        const auto A1 = bind(adapter1_), A2 = bind(adapter2_), Sm = bind(scores_), tau = bind(threshold_);
        const std::span<const ad::Var> logt = learn_t ? bind(log_temperature_) : std::span<const ad::Var>();
        const auto saved1 = soft::detail::saved_values(tape, m1.seq);
        const auto saved2 = soft::detail::saved_values(tape, m2.seq);
        const std::span<std::uint32_t> lens = tape.allocate<std::uint32_t>(2 * n);
        std::copy(m1.lengths.begin(), m1.lengths.end(), lens.begin());
        std::copy(m2.lengths.begin(), m2.lengths.end(), lens.begin() + static_cast<std::ptrdiff_t>(n));
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(m1.seq), soft::detail::node_inputs(m2.seq), A1, A2, Sm, tau, logt},
            n * width + n, [=](const ad::NodeGrad& g) {
                const auto seq1 = soft::detail::input_values<S>(g, 0, saved1);
                const auto seq2 = soft::detail::input_values<S>(g, 1, saved2);
                const auto A1v = g.in_value(2), A2v = g.in_value(3), Sv = g.in_value(4);
                const double tau_m = g.in_value(5)[0];
                const double temp = learn_t ? std::exp(g.in_value(6)[0]) : fixed_temp;
                const std::vector<double> B1 = detail::times_scores<double>(A1v, Sv, la1);
                const std::vector<double> B2 = detail::times_scores<double>(A2v, Sv, la2);
                const auto Rv = g.out_value();
                const auto ybar = g.out_adjoint();
                const auto g1 = g.in_adjoint(0), g2 = g.in_adjoint(1);
                std::vector<double> Sbar(16, 0.0), B1bar(la1 * 4, 0.0), B2bar(la2 * 4, 0.0);
                double tau_bar = 0.0, temp_bar = 0.0;
                const auto nn = static_cast<std::ptrdiff_t>(n);
                DIFFBIO_OMP(parallel num_threads(threads) if (parallel))
                {
                    std::vector<double> S_t(16, 0.0), B1_t(la1 * 4, 0.0), B2_t(la2 * 4, 0.0), Rbar(width);
                    detail::MateGrads mg{nullptr, nullptr, S_t.data(), B1_t.data(), B2_t.data()};
                    DIFFBIO_OMP(for schedule(dynamic, 16))
                    for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                        const auto i = static_cast<std::size_t>(ii);
                        const std::size_t n1 = lens[i], n2 = lens[n + i], Pn = std::max(n1, n2);
                        for (std::size_t l = 0; l < Pn; ++l) Rbar[l] = ybar[i * width + l] + ybar[n * width + i];
                        mg.seq1 = g1.empty() ? nullptr : g1.data() + i * L1 * 4;
                        mg.seq2 = g2.empty() ? nullptr : g2.data() + i * L2 * 4;
                        detail::mate_pair_backward(detail::MateRows<double>{seq1.data() + i * L1 * 4, n1},
                                                   detail::MateRows<double>{seq2.data() + i * L2 * 4, n2}, Sv.data(),
                                                   B1.data(), la1, B2.data(), la2, match, min_score, tau_m, temp,
                                                   Rv.data() + i * width, Rbar.data(), mg);
                    }
                    DIFFBIO_OMP(critical)
                    {
                        for (std::size_t k = 0; k < 16; ++k) Sbar[k] += S_t[k];
                        for (std::size_t k = 0; k < B1bar.size(); ++k) B1bar[k] += B1_t[k];
                        for (std::size_t k = 0; k < B2bar.size(); ++k) B2bar[k] += B2_t[k];
                        tau_bar += mg.tau;
                        temp_bar += mg.temp;
                    }
                }
                const auto A1bar = g.in_adjoint(2), A2bar = g.in_adjoint(3), Sgrad = g.in_adjoint(4);
                for (std::size_t k = 0; k < 16; ++k) Sgrad[k] += Sbar[k];
                detail::times_scores_backward(A1v, Sv, B1bar, la1, A1bar, Sgrad);
                detail::times_scores_backward(A2v, Sv, B2bar, la2, A2bar, Sgrad);
                g.in_adjoint(5)[0] += tau_bar;
                if (learn_t) g.in_adjoint(6)[0] += temp_bar * temp; // dT/d log T = T
            });
        // Forward (no records until the loop ends).
        const auto seq1 = soft::detail::forward_values(tape, m1.seq, saved1);
        const auto seq2 = soft::detail::forward_values(tape, m2.seq, saved2);
        const auto values = [&](std::span<const ad::Var> v) {
            std::vector<double> out(v.size());
            for (std::size_t k = 0; k < v.size(); ++k) out[k] = tape.value(v[k]);
            return out;
        };
        const std::vector<double> A1v = values(A1), A2v = values(A2), Sv = values(Sm);
        const std::vector<double> B1 = detail::times_scores<double>(A1v, Sv, la1);
        const std::vector<double> B2 = detail::times_scores<double>(A2v, Sv, la2);
        const double tau_m = tape.value(tau[0]);
        const double temp = learn_t ? std::exp(tape.value(logt[0])) : fixed_temp;
        auto yv = tape.values_of(y);
        const auto nn = static_cast<std::ptrdiff_t>(n);
        DIFFBIO_OMP(parallel for schedule(dynamic, 16) num_threads(threads) if (parallel))
        for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
            const auto i = static_cast<std::size_t>(ii);
            double* R = yv.data() + i * width;
            for (std::size_t l = 0; l < width; ++l) R[l] = 0.0;
            yv[n * width + i] = detail::mate_pair_forward<double>(
                detail::MateRows<double>{seq1.data() + i * L1 * 4, lens[i]},
                detail::MateRows<double>{seq2.data() + i * L2 * 4, lens[n + i]}, Sv.data(), B1.data(), la1, B2.data(),
                la2, match, min_score, tau_m, temp, R);
        }
        insert.assign(y.begin() + static_cast<std::ptrdiff_t>(n * width), y.end());
        return {y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n * width)};
    }

    MateOverlapConfig cfg_;
    ad::Parameter adapter1_;
    ad::Parameter adapter2_;
    ad::Parameter scores_;
    ad::Parameter threshold_;
    ad::Parameter log_temperature_;
};

} // namespace diffbio::ops
