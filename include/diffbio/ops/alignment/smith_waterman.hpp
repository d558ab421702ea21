#pragma once
// SmithWaterman: smooth local (Smith-Waterman) and global (Needleman-Wunsch) pairwise alignment,
// differentiable in the substitution matrix, the gap penalties, the temperature and soft inputs.
//
// Cell scores. Query x (m rows) and target y (n rows), each integer codes or one-hot/soft rows
// over the matrix's alphabet of A letters: s_ij = x_iᵀ S y_j (codes: S[a_i, b_j]).
//
// Conventions. Gap penalties are non-negative numbers that are SUBTRACTED; a gap of length k scores
// −(open + (k − 1)·extend) (parasail's convention: GapOpen{o}, GapExtend{e} are parasail_sw's
// `open` and `gap` unchanged; see scoring.hpp for BLAST and DiffBio). smax_τ(c) = τ·log Σ_k e^{c_k/τ},
// computed max-shifted (every exponent ≤ 0) over the finite candidates; −∞ means "no path" and a
// cell whose candidates are all −∞ stays −∞. Cells are 1-based, i ≤ m, j ≤ n.
//
//   Affine (Gotoh, default): three states, M (ends with x_i aligned to y_j), X (ends with x_i
//   against a gap, CIGAR 'I'), Y (ends with y_j against a gap, CIGAR 'D'):
//     M_ij = s_ij + smax_τ([local: 0], M_{i−1,j−1}, X_{i−1,j−1}, Y_{i−1,j−1})
//     X_ij = smax_τ(M_{i−1,j} − o, X_{i−1,j} − e, Y_{i−1,j} − o)
//     Y_ij = smax_τ(M_{i,j−1} − o, Y_{i,j−1} − e, X_{i,j−1} − o)
//   with M_00 = 0 (global) or −∞ (local) and every other border state −∞ unless the recursion
//   reaches it (global: X_i0 = −o − (i−1)e, Y_0j = −o − (j−1)e).
//   Linear: one state, every gap position costs e (open is unused; its gradient is 0):
//     M_ij = s_ij + [local: smax_τ(0, P_{i−1,j−1})] [global: P_{i−1,j−1}]
//     P_ij = smax_τ(M_ij, P_{i−1,j} − e, P_{i,j−1} − e),   P_00 = 0 (global) or −∞ (local)
//   Linear equals affine with open = extend, soft values included (P = smax(M, X, Y)).
//   Score:  local  F = smax_τ(0, {M_ij}): a proper soft max over every alignment that starts and ends
//                  with an aligned pair, plus the empty alignment (score 0, classic SW's floor), so
//                  F → the classic Smith-Waterman score as τ → 0, and ∂F/∂s_ij is the posterior
//                  probability that x_i is aligned with y_j (SMURF-style; DiffBio instead takes a hard
//                  max over cells);
//           global F = smax_τ(M_mn, X_mn, Y_mn) (linear: P_mn): the classic Needleman-Wunsch score
//                  as τ → 0.
//   Gaps of both kinds may follow each other (X→Y and Y→X cost an open), as in parasail; this
//   keeps the model symmetric in the two sequences. (SMURF forbids one of the two turns; with
//   hard max the scores are the same.)
//   diffbio_compat (DiffBio's SmoothSmithWaterman, spec §3.2; local, linear only): g = open + extend,
//     H_ij = smax_τ(0, H_{i−1,j−1} + s_ij, H_{i−1,j} − g, H_{i,j−1} − g), border H = 0,
//     F = smax_τ(0, max_ij H_ij) with a HARD max (its gradient split equally among ties). With the
//     spec's g_o = −10, g_e = −1 use GapOpen{10}, GapExtend{1}: ACGT/ACGT at τ = 1 scores 8.1457.
//   hard = true replaces every smax_τ by max (the classic DP exactly; gradients are those of the
//   first maximum: restart, then M, X, Y in the order written above; the empty alignment wins ties).
//
// Gradients. One fused tape node per batch: its backward reruns the forward of the pairs into a DP
// table and sweeps it in reverse (i = m..0, j = n..0): a state v = smax_τ(c) with adjoint v̄ sends
// v̄·w_k to candidate k (w = softmax(c/τ), recomputed from the table), v̄·(−Σ w log w) to τ
// (∂smax/∂τ = its entropy), and −v̄·w_k to the open/extend penalty inside candidate k. The adjoint of
// M_ij is ∂F/∂s_ij; it maps to S̄ += x_i y_jᵀ·s̄_ij, x̄_i += s̄_ij·S y_j, ȳ_j += s̄_ij·Sᵀ x_i.
// value_and_grad<F> gives the same gradients without a tape, computed in F (float or double).
//
// Kernels. double and float forwards, the Var node's forward values, its backward for code pairs
// and value_and_grad run the batched SIMD kernels of sw_simd.hpp: each vector lane is one pair,
// pairs sorted by size into lane groups (CpuParallel: lane groups across threads); pairs too few
// to fill the lanes (a single pair) run the anti-diagonal wavefront of sw_wavefront.hpp instead,
// the SIMD width across one pair (forward, and backward with its full table when that is no
// larger than the lane group's, checkpointed or not). The scalar
// per-pair kernels of sw_kernel.hpp remain the reference they are tested against (and serve
// posteriors, tracebacks and the profile-pair backward); Dual (forward mode) runs the naive
// reference recursion (sw_reference.hpp).
//
// Complexity and memory. O(m·n) time per pair forward (O(m·n·A) more for soft profiles) and about
// three times that for forward + backward. Score only: O(min(m, n)) memory per lane (each pair is
// oriented so that the rows run along its shorter sequence). Backward: per thread, the lane group's
// full table, K·(M+1)·(N+1) values per lane (K = 1 soft linear, 2 hard linear, 3 affine, 1 compat;
// M, N the group's largest lengths), or with `checkpoint` = k > 0 (config and SwGradOptions) every
// k-th row plus one recomputed block: (M/k + k + 4)·(N+1)·K values per lane, k ≈ √M giving
// O(√M·N), for one more forward pass. Nothing of size m·n stays on the tape.
// Numerics: finite values and gradients for τ ∈ [1e-4, 1e4], lengths up to 10⁴ and cell scores up
// to ±1e4, in float and double.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/scoring.hpp>
#include <diffbio/ops/alignment/sw_kernel.hpp>
#include <diffbio/ops/alignment/sw_reference.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

enum class AlignmentMode { Local, Global };
enum class GapModel { Linear, Affine };

struct SmithWatermanConfig {
    AlignmentMode mode = AlignmentMode::Local;
    GapModel gaps = GapModel::Affine;
    GapOpen gap_open{10.0};     ///< initial value of the learnable open penalty
    GapExtend gap_extend{1.0};  ///< initial value of the learnable extend penalty
    double temperature = 1.0;   ///< τ (initial value when learnable)
    bool learnable_temperature = false;
    bool hard = false;          ///< exact max instead of smax_τ (the classic DP)
    bool diffbio_compat = false; ///< DiffBio's recursion and score (local, linear only)
    /// Backward memory: 0 keeps each lane group's full DP table; k > 0 keeps every k-th row and
    /// recomputes blocks of k rows in the backward (about √m rows: O(√m·n) instead of O(m·n)).
    std::size_t checkpoint = 0;
    /// Backward tables the operator keeps between its own calls (value_and_grad without an
    /// SwWorkspace, and the reverse pass of tape nodes over code pairs): each thread's lane-group
    /// DP table stays for the next call as long as all of them together hold at most this many
    /// bytes, so that a training loop neither allocates nor first-touches them again (the kernel
    /// zeroes every fresh page: on long pairs, two threads doing so at once share the memory
    /// bandwidth). A call whose tables exceed it frees them at its end; 0 keeps nothing. The
    /// default 2 GiB holds two threads' tables of 32 pairs of 1,000 × 1,000 in any float model
    /// and in double with linear gaps. See SmithWaterman::cached_table_bytes() and
    /// release_cached_tables().
    std::size_t table_cache_bytes = std::size_t{2} << 30;

    void validate() const {
        check_temperature(temperature, "SmithWatermanConfig", "temperature");
        check_finite(gap_open.value, "SmithWatermanConfig", "gap_open");
        check_finite(gap_extend.value, "SmithWatermanConfig", "gap_extend");
        if (diffbio_compat && (mode != AlignmentMode::Local || gaps != GapModel::Linear)) {
            throw InvalidArgument("SmithWatermanConfig: 'diffbio_compat' reproduces DiffBio's local alignment with "
                                  "linear gaps (open + extend per position): set mode = Local and gaps = Linear");
        }
    }
};

/// One pair of integer-coded sequences (codes < the alphabet size).
struct CodePair {
    std::span<const std::uint8_t> query;
    std::span<const std::uint8_t> target;
};

/// One pair of profiles: rows of A values (one-hot or soft), [m × A] and [n × A] row-major.
template <class X>
struct ProfilePair {
    std::span<const X> query;
    std::span<const X> target;
};

struct AlignOptions {
    bool posterior = false; ///< also return ∂score/∂s_ij per pair (the expected alignment matrix)
};

template <class T>
struct AlignmentScores {
    std::vector<T> score;                        ///< one per pair
    std::vector<std::vector<double>> posterior;  ///< per pair [m × n] when requested, else empty
};

/// What value_and_grad keeps between calls when SwGradOptions::workspace points here: each
/// thread's lane-group DP table, the largest one any call needed (float and double apart); the
/// memory stays until release() or destruction, whatever its size. One value_and_grad call at a
/// time per workspace. Without one, the operator keeps its tables in its own cache up to
/// SmithWatermanConfig::table_cache_bytes (2 GiB by default); a call finding that cache in use by
/// another thread, or tables above the limit, allocates and first-touches its own: 128 MB per
/// thread for 32 pairs of 1,000 × 1,000 in float with soft linear gaps, three times that with
/// affine gaps (64 such pairs forward+backward on fresh tables: 11-20% slower on one thread, and
/// 1.54-1.81x instead of 1.91-2.01x on two).
class SwWorkspace {
public:
    /// Bytes held.
    std::size_t bytes() const noexcept { return bytes_of(f32_) + bytes_of(f64_); }
    /// Frees the tables.
    void release() noexcept {
        f32_ = {};
        f64_ = {};
    }

private:
    friend class SmithWaterman;
    template <class F>
    detail::SwTablePool<F>& pool() noexcept {
        if constexpr (std::is_same_v<F, float>) {
            return f32_;
        } else {
            return f64_;
        }
    }
    template <class Pool>
    static std::size_t bytes_of(const Pool& pool) noexcept {
        std::size_t b = 0;
        for (const auto& t : pool) b += t.capacity() * sizeof(typename Pool::value_type::value_type);
        return b;
    }
    detail::SwTablePool<float> f32_;
    detail::SwTablePool<double> f64_;
};

namespace detail {

/// A SmithWaterman's own backward tables between its calls (SmithWatermanConfig::
/// table_cache_bytes). Copies of an operator share it; one call uses it at a time, and a call that
/// finds it in use allocates its own tables, as with table_cache_bytes = 0.
struct SwTableCache {
    std::mutex mutex;
    SwWorkspace tables;
};

} // namespace detail

/// Options of SmithWaterman::value_and_grad.
struct SwGradOptions {
    /// 0: each lane group's full DP table (K·(M+1)·(N+1) values per lane, K = 1 soft linear (the
    /// backward recomputes M), 2 hard linear, 3 affine, 1 compat); k > 0: only every k-th row is
    /// kept and each block of k rows is recomputed from its checkpoint in the backward
    /// ((M/k + k + 4)·(N+1)·K values per lane; k ≈ √M is the minimum, about 2√M rows), for about
    /// one more forward pass of time.
    std::size_t checkpoint = 0;
    /// Not null: the lane groups' tables are kept in (and taken from) this workspace across calls.
    SwWorkspace* workspace = nullptr;
    /// Also ∂/∂τ (SwGradResult::temperature) when the temperature is not learnable. The gradient of
    /// τ is the entropy of every cell's soft max, a log per cell more in the linear backward and
    /// three in the affine one (10-20% of forward+backward), so it is computed only where asked
    /// for: here, or by SmithWatermanConfig::learnable_temperature.
    bool temperature_gradient = false;
};

/// Scores and gradients of a batch, in F: ∂/∂S row-major A×A, and the scalar parameters.
template <class F>
struct SwGradResult {
    std::vector<F> score;
    std::vector<F> substitution;
    F gap_open{};
    F gap_extend{};
    F temperature{}; ///< 0 unless learnable_temperature or SwGradOptions::temperature_gradient
};

/// A hard alignment (the classic DP's best path with the current parameters).
struct Alignment {
    double score = 0.0;
    std::string cigar;            ///< run-length M (aligned pair), I (query letter vs gap), D (target letter vs gap)
    std::size_t query_begin = 0;  ///< half-open ranges of the aligned parts (global: the whole sequences)
    std::size_t query_end = 0;
    std::size_t target_begin = 0;
    std::size_t target_end = 0;
};

namespace detail {

template <class R>
struct SwCodeCell {
    const R* S;
    std::size_t A;
    const std::uint8_t* q;
    const std::uint8_t* t;
    R operator()(std::size_t i, std::size_t j) const { return S[q[i] * A + t[j]]; }
};

/// s_ij = x_i · B_j with B_j = S y_j precomputed ([n × A]).
template <class R, class X>
struct SwProfileCell {
    const X* x;
    const R* B;
    std::size_t A;
    R operator()(std::size_t i, std::size_t j) const {
        R s = R(0);
        for (std::size_t a = 0; a < A; ++a) s += static_cast<R>(x[i * A + a]) * B[j * A + a];
        return s;
    }
};

struct SwDenseCell {
    const double* s;
    std::size_t n;
    double operator()(std::size_t i, std::size_t j) const { return s[i * n + j]; }
};

/// B[j, a] = Σ_b S[a, b]·y[j, b] for rows j < n.
template <class R, class X>
void sw_times_matrix(const R* S, std::size_t A, const X* y, std::size_t n, std::vector<R>& B) {
    B.assign(n * A, R(0));
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t a = 0; a < A; ++a) {
            R acc = R(0);
            for (std::size_t b = 0; b < A; ++b) acc += S[a * A + b] * static_cast<R>(y[j * A + b]);
            B[j * A + a] = acc;
        }
    }
}

/// Where a pair's sequences live in a concatenated batch (codes: letters; profiles: values).
struct SwPairDims {
    std::size_t q_off;
    std::size_t t_off;
    std::size_t m;
    std::size_t n;
};

/// Per-thread buffers of the backward.
struct SwWork {
    std::vector<double> table, scratch, s, sbar, B, C, T;
};

/// Forward into a full table, then the backward with fbar; returns the score.
template <class Cell, class Sink>
double sw_value_and_grad(const SwModel& md, const SwScalars<double>& p, std::size_t m, std::size_t n, const Cell& cell,
                         double fbar, Sink&& sink, SwGrads& g, SwWork& w) {
    w.table.resize(md.states() * (m + 1) * (n + 1));
    const double F = sw_forward<double>(md, p, m, n, cell, w.table.data(), w.scratch);
    if (fbar != 0.0) sw_backward(md, p, m, n, cell, w.table.data(), F, fbar, sink, g, w.scratch);
    return F;
}

inline void sw_profile_sbar_grad(const double* S, std::size_t A, const double* x, std::size_t m, const double* y,
                                 std::size_t n, const double* sbar, const double* B, double* Sbar, double* xbar,
                                 double* ybar, SwWork& w);

/// One profile pair's gradient: s̄ (posterior × fbar) into S̄, x̄, ȳ (x̄/ȳ may be null).
inline void sw_profile_pair_grad(const SwModel& md, const SwScalars<double>& p, const double* S, std::size_t A,
                                 const double* x, std::size_t m, const double* y, std::size_t n, double fbar,
                                 double* Sbar, double* xbar, double* ybar, SwGrads& g, SwWork& w) {
    sw_times_matrix<double, double>(S, A, y, n, w.B); // B_j = S y_j
    w.s.assign(m * n, 0.0);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            double acc = 0.0;
            for (std::size_t a = 0; a < A; ++a) acc += x[i * A + a] * w.B[j * A + a];
            w.s[i * n + j] = acc;
        }
    }
    w.sbar.assign(m * n, 0.0);
    double* sbar = w.sbar.data();
    sw_value_and_grad(md, p, m, n, SwDenseCell{w.s.data(), n}, fbar,
                      [sbar, n](std::size_t i, std::size_t j, double v) { sbar[i * n + j] += v; }, g, w);
    sw_profile_sbar_grad(S, A, x, m, y, n, sbar, w.B.data(), Sbar, xbar, ybar, w);
}

/// From a pair's s̄ = ∂F/∂s_ij [m × n] (B_j = S y_j [n × A]): S̄ += Xᵀ s̄ Y, x̄ += s̄ B, ȳ += s̄ᵀ X S
/// (x̄/ȳ may be null).
inline void sw_profile_sbar_grad(const double* S, std::size_t A, const double* x, std::size_t m, const double* y,
                                 std::size_t n, const double* sbar, const double* B, double* Sbar, double* xbar,
                                 double* ybar, SwWork& w) {
    // T = s̄ Y [m × A];  S̄ += Xᵀ T;  x̄ += s̄ B;  ȳ += s̄ᵀ C with C = X S.
    w.T.assign(m * A, 0.0);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            const double v = sbar[i * n + j];
            if (v == 0.0) continue;
            for (std::size_t b = 0; b < A; ++b) w.T[i * A + b] += v * y[j * A + b];
            if (xbar != nullptr) {
                for (std::size_t a = 0; a < A; ++a) xbar[i * A + a] += v * B[j * A + a];
            }
        }
    }
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t a = 0; a < A; ++a) {
            const double xa = x[i * A + a];
            if (xa == 0.0) continue;
            for (std::size_t b = 0; b < A; ++b) Sbar[a * A + b] += xa * w.T[i * A + b];
        }
    }
    if (ybar != nullptr) {
        w.C.assign(m * A, 0.0);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t a = 0; a < A; ++a) {
                const double xa = x[i * A + a];
                if (xa == 0.0) continue;
                for (std::size_t b = 0; b < A; ++b) w.C[i * A + b] += xa * S[a * A + b];
            }
        }
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                const double v = sbar[i * n + j];
                if (v == 0.0) continue;
                for (std::size_t b = 0; b < A; ++b) ybar[j * A + b] += v * w.C[i * A + b];
            }
        }
    }
}

} // namespace detail

class SmithWaterman {
public:
    SmithWaterman() : SmithWaterman(SmithWatermanConfig{}) {}
    explicit SmithWaterman(SmithWatermanConfig cfg, SubstitutionMatrix matrix = SubstitutionMatrix::dna())
        : cfg_((cfg.validate(), cfg)), matrix_(std::move(matrix)),
          substitution_("sw_substitution", std::vector<double>(matrix_.values().begin(), matrix_.values().end())),
          gap_open_("sw_gap_open", cfg_.gap_open.value), gap_extend_("sw_gap_extend", cfg_.gap_extend.value),
          temperature_("sw_temperature", cfg_.temperature) {}
    explicit SmithWaterman(SubstitutionMatrix matrix, SmithWatermanConfig cfg = {})
        : SmithWaterman(cfg, std::move(matrix)) {}

    const SmithWatermanConfig& config() const noexcept { return cfg_; }
    /// The alphabet and the INITIAL matrix (the learnable values are substitution()).
    const SubstitutionMatrix& matrix() const noexcept { return matrix_; }
    std::size_t alphabet_size() const noexcept { return matrix_.size(); }
    std::vector<std::uint8_t> encode(std::string_view seq) const { return matrix_.encode(seq); }

    ad::Parameter& substitution() noexcept { return substitution_; }
    const ad::Parameter& substitution() const noexcept { return substitution_; }
    ad::Parameter& gap_open() noexcept { return gap_open_; }
    const ad::Parameter& gap_open() const noexcept { return gap_open_; }
    ad::Parameter& gap_extend() noexcept { return gap_extend_; }
    const ad::Parameter& gap_extend() const noexcept { return gap_extend_; }
    ad::Parameter& temperature() noexcept { return temperature_; }
    const ad::Parameter& temperature() const noexcept { return temperature_; }

    /// The learnable parameters: S (A×A), open, extend, and τ when learnable_temperature.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&substitution_, &gap_open_, &gap_extend_};
        if (cfg_.learnable_temperature) p.push_back(&temperature_);
        return p;
    }

    /// Scores of a batch of integer-coded pairs. T = double/float: forward-only kernel in T;
    /// Dual: the reference recursion; Var: one fused tape node for the whole batch.
    /// Throws InvalidArgument for a code ≥ A or a non-finite parameter (τ must stay > 0).
    template <class T, exec::HostPolicy P = exec::Cpu>
    AlignmentScores<T> apply(ad::Binder<T>& bind, std::span<const CodePair> pairs, const AlignOptions& opt = {},
                             const P& policy = {}) const {
        check_parameters("SmithWaterman::apply");
        check_kernel_range<T>("SmithWaterman::apply");
        check_pairs(pairs, "SmithWaterman::apply");
        AlignmentScores<T> out;
        if constexpr (soft::detail::is_var_v<T>) {
            out.score = scores_var_codes(bind, pairs, policy);
        } else if constexpr (std::is_floating_point_v<T>) {
            out.score = scores_fast_codes<T>(bind, pairs, policy);
        } else {
            out.score.reserve(pairs.size());
            for (const CodePair& pr : pairs) out.score.push_back(reference(bind, pr).score);
        }
        check_results_finite(std::span<const T>(out.score), tau_value(), "SmithWaterman::apply", "score of pair");
        if (opt.posterior) out.posterior = posteriors(pairs, policy);
        return out;
    }

    /// Scores of a batch of profile pairs (rows of A values of scalar X, differentiable too).
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    AlignmentScores<promote_t<T, X>> apply(ad::Binder<T>& bind, std::span<const ProfilePair<X>> pairs,
                                           const AlignOptions& opt = {}, const P& policy = {}) const {
        using R = promote_t<T, X>;
        check_parameters("SmithWaterman::apply");
        check_pairs(pairs, "SmithWaterman::apply");
        check_kernel_range<R>("SmithWaterman::apply", profile_score_scale(pairs));
        AlignmentScores<R> out;
        if constexpr (soft::detail::is_var_v<R>) {
            out.score = scores_var_profiles(bind, pairs, policy);
        } else if constexpr (std::is_floating_point_v<R>) {
            out.score = scores_fast_profiles<R>(bind, pairs, policy);
        } else {
            out.score.reserve(pairs.size());
            for (const ProfilePair<X>& pr : pairs) out.score.push_back(reference(bind, pr).score);
        }
        check_results_finite(std::span<const R>(out.score), tau_value(), "SmithWaterman::apply", "score of pair");
        if (opt.posterior) out.posterior = posteriors(pairs, policy);
        return out;
    }

    template <class T, exec::HostPolicy P = exec::Cpu>
    AlignmentScores<T> apply(ad::Binder<T>& bind, const std::vector<CodePair>& pairs, const AlignOptions& opt = {},
                             const P& policy = {}) const {
        return apply(bind, std::span<const CodePair>(pairs), opt, policy);
    }
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    AlignmentScores<promote_t<T, X>> apply(ad::Binder<T>& bind, const std::vector<ProfilePair<X>>& pairs,
                                           const AlignOptions& opt = {}, const P& policy = {}) const {
        return apply(bind, std::span<const ProfilePair<X>>(pairs), opt, policy);
    }

    /// Scores and Σ_k w_k·∂score_k/∂(S, open, extend, τ) of a batch of code pairs without a tape
    /// (training loops: w = ∂loss/∂score; τ's only where learnable or asked for, see
    /// SwGradOptions::temperature_gradient). The batched SIMD forward and backward run entirely in F
    /// (float or double); the sums over cells and pairs accumulate in double. Throws ShapeError when
    /// weights and pairs differ in length, InvalidArgument for a non-finite weight.
    template <class F = double, class W = double, exec::HostPolicy P = exec::Cpu>
    SwGradResult<F> value_and_grad(std::span<const CodePair> pairs, std::span<const W> weights,
                                   const SwGradOptions& opt = {}, const P& policy = {}) const {
        static_assert(std::is_floating_point_v<F>, "SmithWaterman::value_and_grad computes in float or double");
        check_parameters("SmithWaterman::value_and_grad");
        check_kernel_range<F>("SmithWaterman::value_and_grad");
        check_pairs(pairs, "SmithWaterman::value_and_grad");
        if (weights.size() != pairs.size()) {
            throw ShapeError("SmithWaterman::value_and_grad: " + std::to_string(weights.size()) + " weights for " +
                             std::to_string(pairs.size()) + " pairs (one dloss/dscore per pair)");
        }
        std::vector<double> fbar(weights.size());
        for (std::size_t k = 0; k < weights.size(); ++k) {
            fbar[k] = static_cast<double>(weights[k]);
            if (!std::isfinite(fbar[k])) {
                throw InvalidArgument("SmithWaterman::value_and_grad: weight " + std::to_string(k) + " is not finite");
            }
        }
        const std::size_t A = alphabet_size();
        const std::vector<F> S(substitution_.values().begin(), substitution_.values().end());
        const detail::SwScalars<F> p{static_cast<F>(gap_open_.values()[0]), static_cast<F>(gap_extend_.values()[0]),
                                     clamp_temperature(static_cast<F>(tau_value()))}; // as a float, 1e-50 would be 0
        std::vector<detail::SwSeqPair<std::uint8_t>> raw(pairs.size());
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            raw[k] = {pairs[k].query.data(), pairs[k].query.size(), pairs[k].target.data(), pairs[k].target.size()};
        }
        SwGradResult<F> out;
        out.score.resize(pairs.size());
        detail::SwBatchGrads res;
        detail::SwModel md = model();
        md.dtau = md.dtau || opt.temperature_gradient;
        const TableLease<F> tables = lease_tables<F>(opt.workspace, cache_, cfg_.table_cache_bytes);
        detail::sw_simd_value_and_grad_codes<F, double>(md, p, S.data(), A,
                                                        std::span<const detail::SwSeqPair<std::uint8_t>>(raw),
                                                        fbar.data(), out.score.data(), res, threads_of(policy),
                                                        opt.checkpoint, tables.pool);
        check_results_finite(std::span<const F>(out.score), tau_value(), "SmithWaterman::value_and_grad",
                             "score of pair");
        out.substitution.assign(res.Sbar.begin(), res.Sbar.end());
        out.gap_open = static_cast<F>(res.g.open);
        out.gap_extend = static_cast<F>(res.g.extend);
        out.temperature = static_cast<F>(res.g.tau);
        return out;
    }
    template <class F = double, class W = double, exec::HostPolicy P = exec::Cpu>
    SwGradResult<F> value_and_grad(const std::vector<CodePair>& pairs, const std::vector<W>& weights,
                                   const SwGradOptions& opt = {}, const P& policy = {}) const {
        return value_and_grad<F, W, P>(std::span<const CodePair>(pairs), std::span<const W>(weights), opt, policy);
    }

    /// The score of two sequences (letters of the alphabet) with the current parameters.
    double score(std::string_view query, std::string_view target) const {
        const std::vector<std::uint8_t> q = encode(query), t = encode(target);
        const std::vector<CodePair> pr{{q, t}};
        ad::Binder<double> bind;
        return apply(bind, pr).score[0];
    }

    /// The naive reference recursion for one pair, with every table (sw_reference.hpp).
    template <class T>
    SwTables<T> reference(ad::Binder<T>& bind, const CodePair& pair) const {
        check_parameters("SmithWaterman::reference");
        check_pairs(std::span<const CodePair>(&pair, 1), "SmithWaterman::reference");
        const auto S = bind(substitution_);
        const std::size_t A = alphabet_size(), m = pair.query.size(), n = pair.target.size();
        std::vector<T> s;
        s.reserve(m * n);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) s.push_back(S[pair.query[i] * A + pair.target[j]]);
        }
        return sw_reference<T>(model(), bind(gap_open_)[0], bind(gap_extend_)[0], tau_of(bind), m, n, s);
    }

    template <class T, class X>
    SwTables<promote_t<T, X>> reference(ad::Binder<T>& bind, const ProfilePair<X>& pair) const {
        using R = promote_t<T, X>;
        check_parameters("SmithWaterman::reference");
        check_pairs(std::span<const ProfilePair<X>>(&pair, 1), "SmithWaterman::reference");
        const auto Sb = bind(substitution_);
        const std::size_t A = alphabet_size(), m = pair.query.size() / A, n = pair.target.size() / A;
        std::vector<R> S(Sb.begin(), Sb.end()), B;
        detail::sw_times_matrix<R, X>(S.data(), A, pair.target.data(), n, B);
        std::vector<R> s;
        s.reserve(m * n);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                R acc = passive<R>(0.0);
                for (std::size_t a = 0; a < A; ++a) acc = acc + pair.query[i * A + a] * B[j * A + a];
                s.push_back(acc);
            }
        }
        const R open = bind(gap_open_)[0], extend = bind(gap_extend_)[0], tau = tau_of(bind);
        return sw_reference<R>(model(), open, extend, tau, m, n, s);
    }

    /// The hard alignment (classic DP, exact max, whatever `hard` says) and its CIGAR with the
    /// current parameters. O(m·n) time and memory.
    Alignment traceback(const CodePair& pair) const {
        check_parameters("SmithWaterman::traceback");
        check_pairs(std::span<const CodePair>(&pair, 1), "SmithWaterman::traceback");
        const std::span<const double> S = substitution_.values();
        return traceback_cells(pair.query.size(), pair.target.size(),
                               detail::SwCodeCell<double>{S.data(), alphabet_size(), pair.query.data(),
                                                          pair.target.data()});
    }
    Alignment traceback(std::string_view query, std::string_view target) const {
        const std::vector<std::uint8_t> q = encode(query), t = encode(target);
        return traceback(CodePair{q, t});
    }
    template <class X>
    Alignment traceback(const ProfilePair<X>& pair) const {
        check_parameters("SmithWaterman::traceback");
        check_pairs(std::span<const ProfilePair<X>>(&pair, 1), "SmithWaterman::traceback");
        const std::size_t A = alphabet_size(), m = pair.query.size() / A, n = pair.target.size() / A;
        std::vector<double> x(m * A), y(n * A), B;
        for (std::size_t k = 0; k < x.size(); ++k) x[k] = primal(pair.query[k]);
        for (std::size_t k = 0; k < y.size(); ++k) y[k] = primal(pair.target[k]);
        detail::sw_times_matrix<double, double>(substitution_.values().data(), A, y.data(), n, B);
        return traceback_cells(m, n, detail::SwProfileCell<double, double>{x.data(), B.data(), A});
    }

    /// Bytes of backward tables this operator (and its copies) keeps for its next call
    /// (SmithWatermanConfig::table_cache_bytes); 0 while a call is using them.
    std::size_t cached_table_bytes() const {
        const std::unique_lock<std::mutex> lock(cache_->mutex, std::try_to_lock);
        return lock.owns_lock() ? cache_->tables.bytes() : 0;
    }
    /// Frees the kept backward tables (waits for a call that is using them).
    void release_cached_tables() const {
        const std::lock_guard<std::mutex> lock(cache_->mutex);
        cache_->tables.release();
    }

private:
    /// Where a backward call's tables come from: the caller's workspace; else the operator's cache
    /// when it is enabled and free (held until the lease ends, which frees the tables when they
    /// exceed the limit); else nowhere (pool null: each thread allocates its own for the call).
    template <class F>
    struct TableLease {
        std::unique_lock<std::mutex> lock;
        detail::SwTablePool<F>* pool = nullptr;
        SwWorkspace* cache = nullptr;
        std::size_t limit = 0;
        TableLease() = default;
        TableLease(const TableLease&) = delete;
        TableLease& operator=(const TableLease&) = delete;
        TableLease(TableLease&&) noexcept = default;
        TableLease& operator=(TableLease&&) = delete;
        ~TableLease() {
            if (cache != nullptr && lock.owns_lock() && cache->bytes() > limit) cache->release();
        }
    };
    template <class F>
    static TableLease<F> lease_tables(SwWorkspace* caller, const std::shared_ptr<detail::SwTableCache>& cache,
                                      std::size_t limit) {
        TableLease<F> lease;
        if (caller != nullptr) {
            lease.pool = &caller->pool<F>();
        } else if (limit > 0 && cache != nullptr) {
            std::unique_lock<std::mutex> lock(cache->mutex, std::try_to_lock);
            if (lock.owns_lock()) {
                lease.lock = std::move(lock);
                lease.pool = &cache->tables.pool<F>();
                lease.cache = &cache->tables;
                lease.limit = limit;
            }
        }
        return lease;
    }

    detail::SwModel model() const {
        detail::SwModel md;
        md.kind = cfg_.diffbio_compat ? detail::SwKind::Compat
                                      : (cfg_.gaps == GapModel::Linear ? detail::SwKind::Linear : detail::SwKind::Affine);
        md.local = cfg_.mode == AlignmentMode::Local;
        md.hard = cfg_.hard;
        md.dtau = cfg_.learnable_temperature; // ∂/∂τ where τ is a parameter (value_and_grad: or on request)
        return md;
    }

    double tau_value() const { return temperature_.values()[0]; }

    template <class T>
    T tau_of(ad::Binder<T>& bind) const {
        if (cfg_.learnable_temperature) return bind(temperature_)[0];
        return passive<T>(tau_value());
    }

    detail::SwScalars<double> scalars() const {
        return {gap_open_.values()[0], gap_extend_.values()[0], tau_value()};
    }

    void check_parameters(const char* where) const {
        const std::size_t A = alphabet_size();
        if (substitution_.size() != A * A) {
            throw ShapeError(std::string(where) + ": the substitution matrix has " + std::to_string(substitution_.size()) +
                             " values, expected " + std::to_string(A * A));
        }
        for (std::size_t k = 0; k < substitution_.size(); ++k) {
            if (!std::isfinite(substitution_.values()[k])) {
                throw InvalidArgument(std::string(where) + ": substitution matrix entry (" + std::to_string(k / A) +
                                      ", " + std::to_string(k % A) + ") is not finite: " +
                                      diffbio::detail::format_value(substitution_.values()[k]));
            }
        }
        check_finite(gap_open_.values()[0], where, "gap_open");
        check_finite(gap_extend_.values()[0], where, "gap_extend");
        check_temperature(tau_value(), where, "temperature");
    }

    /// τ and the scores within what the kernels of R compute (sw_simd_max_temperature: float 1e27,
    /// double 1e296; sw_simd_max_score: 1e20, 1e290); Var runs the double kernels, Dual the
    /// reference recursion (any value). A cell's substitution score is at most max|S| times
    /// `score_scale` (profiles: (A · their largest magnitude)², see profile_score_scale).
    template <class R>
    void check_kernel_range(const char* where, double score_scale = 1.0) const {
        if constexpr (soft::detail::is_var_v<R> || std::is_floating_point_v<R>) {
            using F = std::conditional_t<std::is_same_v<R, float>, float, double>;
            double s_max = 0.0;
            for (const double v : substitution_.values()) s_max = std::max(s_max, std::fabs(v));
            const double big = std::max({std::fabs(gap_open_.values()[0]), std::fabs(gap_extend_.values()[0]),
                                         s_max * score_scale});
            detail::check_sw_kernel_range<F>(cfg_.hard ? 0.0 : tau_value(), big, where); // hard: no τ
        }
    }

    /// (A · max |profile value|)²: a profile cell's score Σ_ab x_a S_ab y_b is at most max|S| times it.
    template <class X>
    double profile_score_scale(std::span<const ProfilePair<X>> pairs) const {
        double v = 0.0;
        for (const ProfilePair<X>& pr : pairs) {
            for (const X& e : pr.query) v = std::max(v, std::fabs(primal(e)));
            for (const X& e : pr.target) v = std::max(v, std::fabs(primal(e)));
        }
        const double row = static_cast<double>(alphabet_size()) * v;
        return row * row;
    }

    void check_pairs(std::span<const CodePair> pairs, const char* where) const {
        const std::size_t A = alphabet_size();
        for (std::size_t p = 0; p < pairs.size(); ++p) {
            for (const auto& [seq, name] : {std::pair{pairs[p].query, "query"}, std::pair{pairs[p].target, "target"}}) {
                for (std::size_t i = 0; i < seq.size(); ++i) {
                    if (seq[i] >= A) {
                        throw InvalidArgument(std::string(where) + ": pair " + std::to_string(p) + ", " + name +
                                              " code " + std::to_string(seq[i]) + " at position " + std::to_string(i) +
                                              " is not < the alphabet size " + std::to_string(A) + " (\"" +
                                              matrix_.alphabet() + "\")");
                    }
                }
            }
        }
    }

    template <class X>
    void check_pairs(std::span<const ProfilePair<X>> pairs, const char* where) const {
        const std::size_t A = alphabet_size();
        for (std::size_t p = 0; p < pairs.size(); ++p) {
            // std::array, not a braced list: nvcc 13 rejects a braced range in a member template
            for (const auto& [seq, name] :
                 std::array{std::pair{pairs[p].query, "query"}, std::pair{pairs[p].target, "target"}}) {
                if (seq.size() % A != 0) {
                    throw ShapeError(std::string(where) + ": pair " + std::to_string(p) + ", " + name + " profile has " +
                                     std::to_string(seq.size()) + " values, not a multiple of the alphabet size " +
                                     std::to_string(A) + " (rows of A values over \"" + matrix_.alphabet() + "\")");
                }
                for (std::size_t k = 0; k < seq.size(); ++k) {
                    if (!std::isfinite(primal(seq[k]))) {
                        throw InvalidArgument(std::string(where) + ": pair " + std::to_string(p) + ", " + name +
                                              " profile value " + std::to_string(k) + " is not finite");
                    }
                }
            }
        }
    }

    template <class Cell>
    Alignment traceback_cells(std::size_t m, std::size_t n, const Cell& cell) const {
        detail::SwModel md = model();
        md.hard = true;
        const detail::SwScalars<double> p = scalars();
        std::vector<double> table(md.states() * (m + 1) * (n + 1)), scratch;
        const double F = detail::sw_forward<double>(md, p, m, n, cell, table.data(), scratch);
        const detail::SwPath path = detail::sw_traceback(md, p, m, n, cell, table.data(), F);
        return {path.score, detail::sw_cigar(path.ops), path.query_begin, path.query_end, path.target_begin,
                path.target_end};
    }

    // ---- double / float: the batched SIMD forward (sw_simd.hpp) -----------------------------------
    template <class R, class T>
    detail::SwScalars<R> bound_scalars(ad::Binder<T>& bind) const {
        return {static_cast<R>(bind(gap_open_)[0]), static_cast<R>(bind(gap_extend_)[0]), static_cast<R>(tau_of(bind))};
    }

    template <class R, class T, class P>
    std::vector<R> scores_fast_codes(ad::Binder<T>& bind, std::span<const CodePair> pairs, const P& policy) const {
        const auto Sb = bind(substitution_);
        const std::vector<R> S(Sb.begin(), Sb.end());
        std::vector<detail::SwSeqPair<std::uint8_t>> raw(pairs.size());
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            raw[k] = {pairs[k].query.data(), pairs[k].query.size(), pairs[k].target.data(), pairs[k].target.size()};
        }
        std::vector<R> out(pairs.size());
        detail::sw_simd_scores_codes<R>(model(), bound_scalars<R>(bind), S.data(), alphabet_size(),
                                        std::span<const detail::SwSeqPair<std::uint8_t>>(raw), out.data(),
                                        threads_of(policy));
        return out;
    }

    template <class R, class T, class X, class P>
    std::vector<R> scores_fast_profiles(ad::Binder<T>& bind, std::span<const ProfilePair<X>> pairs,
                                        const P& policy) const {
        const auto Sb = bind(substitution_);
        const std::vector<R> S(Sb.begin(), Sb.end());
        const std::size_t A = alphabet_size();
        std::vector<detail::SwSeqPair<X>> raw(pairs.size());
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            raw[k] = {pairs[k].query.data(), pairs[k].query.size() / A, pairs[k].target.data(),
                      pairs[k].target.size() / A};
        }
        std::vector<R> out(pairs.size());
        detail::sw_simd_scores_profiles<R, X>(model(), bound_scalars<R>(bind), S.data(), A,
                                              std::span<const detail::SwSeqPair<X>>(raw), out.data(),
                                              threads_of(policy));
        return out;
    }

    template <class P>
    static int threads_of(const P& policy) {
        if constexpr (std::is_same_v<P, exec::CpuParallel>) {
            return exec::thread_count(policy);
        } else {
            (void)policy;
            return 1;
        }
    }

    // ---- posterior: ∂score/∂s_ij with the current parameter values --------------------------------
    template <class P>
    std::vector<std::vector<double>> posteriors(std::span<const CodePair> pairs, const P& policy) const {
        const std::span<const double> S = substitution_.values();
        return posteriors_impl(pairs.size(), policy, [&](std::size_t k, detail::SwWork& w, std::vector<double>& post) {
            const CodePair& pr = pairs[k];
            const std::size_t m = pr.query.size(), n = pr.target.size();
            post.assign(m * n, 0.0);
            double* out = post.data();
            detail::SwGrads g;
            detail::sw_value_and_grad(model(), scalars(), m, n,
                                      detail::SwCodeCell<double>{S.data(), alphabet_size(), pr.query.data(),
                                                                 pr.target.data()},
                                      1.0, [out, n](std::size_t i, std::size_t j, double v) { out[i * n + j] += v; },
                                      g, w);
        });
    }

    template <class X, class P>
    std::vector<std::vector<double>> posteriors(std::span<const ProfilePair<X>> pairs, const P& policy) const {
        const std::span<const double> S = substitution_.values();
        const std::size_t A = alphabet_size();
        return posteriors_impl(pairs.size(), policy, [&](std::size_t k, detail::SwWork& w, std::vector<double>& post) {
            const ProfilePair<X>& pr = pairs[k];
            const std::size_t m = pr.query.size() / A, n = pr.target.size() / A;
            std::vector<double> x(m * A), y(n * A);
            for (std::size_t e = 0; e < x.size(); ++e) x[e] = primal(pr.query[e]);
            for (std::size_t e = 0; e < y.size(); ++e) y[e] = primal(pr.target[e]);
            std::vector<double> Sbar(A * A, 0.0);
            detail::SwGrads g;
            detail::sw_profile_pair_grad(model(), scalars(), S.data(), A, x.data(), m, y.data(), n, 1.0, Sbar.data(),
                                         nullptr, nullptr, g, w);
            post = w.sbar;
        });
    }

    template <class P, class F>
    std::vector<std::vector<double>> posteriors_impl(std::size_t count, const P& policy, F&& one) const {
        std::vector<std::vector<double>> out(count);
        const auto np = static_cast<std::ptrdiff_t>(count);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        {
            detail::SwWork w;
            DIFFBIO_OMP(for schedule(dynamic, 1))
            for (std::ptrdiff_t k = 0; k < np; ++k) one(static_cast<std::size_t>(k), w, out[static_cast<std::size_t>(k)]);
        }
        return out;
    }

    // ---- Var: one fused node for the batch --------------------------------------------------------
    /// The parameters as node inputs (Vars when T is Var, else nothing) and their current values.
    template <class T>
    struct NodeParams {
        std::span<const ad::Var> S, open, extend, tau;
        std::span<double> values; // [S (A²), open, extend, τ] in the tape's arena
    };

    template <class T>
    NodeParams<T> node_params(ad::Binder<T>& bind, ad::Tape& tape) const {
        NodeParams<T> np;
        const std::size_t A2 = alphabet_size() * alphabet_size();
        np.values = tape.allocate<double>(A2 + 3);
        for (std::size_t k = 0; k < A2; ++k) np.values[k] = substitution_.values()[k];
        np.values[A2] = gap_open_.values()[0];
        np.values[A2 + 1] = gap_extend_.values()[0];
        np.values[A2 + 2] = tau_value();
        if constexpr (soft::detail::is_var_v<T>) {
            np.S = bind(substitution_);
            np.open = bind(gap_open_);
            np.extend = bind(gap_extend_);
            if (cfg_.learnable_temperature) np.tau = bind(temperature_);
            // The values as bound on the tape (a Binder binds each parameter once per step).
            for (std::size_t k = 0; k < A2; ++k) np.values[k] = tape.value(np.S[k]);
            np.values[A2] = tape.value(np.open[0]);
            np.values[A2 + 1] = tape.value(np.extend[0]);
            if (!np.tau.empty()) np.values[A2 + 2] = tape.value(np.tau[0]);
        } else {
            (void)bind;
        }
        return np;
    }

    /// The reduction of per-thread gradients into the node's input adjoints.
    struct GradSum {
        std::vector<double> Sbar;
        detail::SwGrads g;
    };
    static void add_param_adjoints(const ad::NodeGrad& ng, const GradSum& sum, bool has_params, bool has_tau) {
        if (!has_params) return;
        const auto Sa = ng.in_adjoint(0);
        for (std::size_t k = 0; k < Sa.size(); ++k) Sa[k] += sum.Sbar[k];
        ng.in_adjoint(1)[0] += sum.g.open;
        ng.in_adjoint(2)[0] += sum.g.extend;
        if (has_tau) ng.in_adjoint(3)[0] += sum.g.tau;
    }

    template <class T, class P>
    std::vector<ad::Var> scores_var_codes(ad::Binder<T>& bind, std::span<const CodePair> pairs, const P& policy) const {
        ad::Tape& tape = ad::Tape::active();
        const NodeParams<T> np = node_params(bind, tape);
        const std::size_t N = pairs.size(), A = alphabet_size();
        std::size_t total = 0;
        for (const CodePair& pr : pairs) total += pr.query.size() + pr.target.size();
        const std::span<detail::SwPairDims> dims = tape.allocate<detail::SwPairDims>(N);
        const std::span<std::uint8_t> codes = tape.allocate<std::uint8_t>(total);
        std::size_t off = 0;
        for (std::size_t k = 0; k < N; ++k) {
            const CodePair& pr = pairs[k];
            dims[k] = {off, off + pr.query.size(), pr.query.size(), pr.target.size()};
            std::copy(pr.query.begin(), pr.query.end(), codes.begin() + static_cast<std::ptrdiff_t>(off));
            off += pr.query.size();
            std::copy(pr.target.begin(), pr.target.end(), codes.begin() + static_cast<std::ptrdiff_t>(off));
            off += pr.target.size();
        }
        const detail::SwModel md = model();
        const std::span<const double> pv = np.values;
        const bool has_params = !np.S.empty(), has_tau = !np.tau.empty();
        if (N == 0) return {};
        auto y = tape.record_node_uninitialised(
            {np.S, np.open, np.extend, np.tau}, N,
            [=, checkpoint = cfg_.checkpoint, cache = cache_, cache_limit = cfg_.table_cache_bytes](const ad::NodeGrad& ng) {
                const detail::SwScalars<double> p{pv[A * A], pv[A * A + 1], pv[A * A + 2]};
                const auto ybar = ng.out_adjoint();
                // the batched SIMD backward (sw_simd.hpp) over the pairs with a nonzero adjoint
                std::vector<detail::SwSeqPair<std::uint8_t>> raw;
                std::vector<double> fbar;
                for (std::size_t k = 0; k < N; ++k) {
                    if (ybar[k] == 0.0) continue;
                    raw.push_back({codes.data() + dims[k].q_off, dims[k].m, codes.data() + dims[k].t_off, dims[k].n});
                    fbar.push_back(ybar[k]);
                }
                std::vector<double> scores(raw.size());
                detail::SwBatchGrads res;
                const TableLease<double> tables = lease_tables<double>(nullptr, cache, cache_limit);
                detail::sw_simd_value_and_grad_codes<double, double>(
                    md, p, pv.data(), A, std::span<const detail::SwSeqPair<std::uint8_t>>(raw), fbar.data(),
                    scores.data(), res, threads_of(policy), checkpoint, tables.pool);
                const GradSum sum{std::move(res.Sbar), res.g};
                add_param_adjoints(ng, sum, has_params, has_tau);
            });
        const auto yv = tape.values_of(y);
        const detail::SwScalars<double> p{pv[A * A], pv[A * A + 1], pv[A * A + 2]};
        std::vector<detail::SwSeqPair<std::uint8_t>> raw(N);
        for (std::size_t k = 0; k < N; ++k) {
            raw[k] = {codes.data() + dims[k].q_off, dims[k].m, codes.data() + dims[k].t_off, dims[k].n};
        }
        std::vector<double> scores(N);
        detail::sw_simd_scores_codes<double>(md, p, pv.data(), A, std::span<const detail::SwSeqPair<std::uint8_t>>(raw),
                                             scores.data(), threads_of(policy));
        std::copy(scores.begin(), scores.end(), yv.begin());
        return std::vector<ad::Var>(y.begin(), y.end());
    }

    template <class T, class X, class P>
    std::vector<ad::Var> scores_var_profiles(ad::Binder<T>& bind, std::span<const ProfilePair<X>> pairs,
                                             const P& policy) const {
        constexpr bool x_var = soft::detail::is_var_v<X>;
        ad::Tape& tape = ad::Tape::active();
        const NodeParams<T> np = node_params(bind, tape);
        const std::size_t N = pairs.size(), A = alphabet_size();
        std::size_t total = 0;
        for (const ProfilePair<X>& pr : pairs) total += pr.query.size() + pr.target.size();
        const std::span<detail::SwPairDims> dims = tape.allocate<detail::SwPairDims>(N);
        // Profile values: saved in the arena for plain numbers; for Vars the node reads in_value(4).
        std::vector<ad::Var> prof_vars;
        std::span<double> saved;
        if constexpr (x_var) {
            prof_vars.reserve(total);
        } else {
            saved = tape.allocate<double>(total);
        }
        std::size_t off = 0;
        for (std::size_t k = 0; k < N; ++k) {
            const ProfilePair<X>& pr = pairs[k];
            dims[k] = {off, off + pr.query.size(), pr.query.size() / A, pr.target.size() / A};
            for (const auto& seq : std::array{pr.query, pr.target}) { // std::array: see check_pairs
                for (const X& v : seq) {
                    if constexpr (x_var) {
                        prof_vars.push_back(v);
                    } else {
                        saved[off] = static_cast<double>(v);
                    }
                    ++off;
                }
            }
        }
        const detail::SwModel md = model();
        const std::span<const double> pv = np.values;
        const bool has_params = !np.S.empty(), has_tau = !np.tau.empty();
        const std::span<const double> saved_c = saved;
        if (N == 0) return {};
        auto y = tape.record_node_uninitialised(
            {np.S, np.open, np.extend, np.tau, std::span<const ad::Var>(prof_vars)}, N,
            [=, checkpoint = cfg_.checkpoint](const ad::NodeGrad& ng) {
                const double* S = pv.data();
                const detail::SwScalars<double> p{pv[A * A], pv[A * A + 1], pv[A * A + 2]};
                const std::span<const double> prof = x_var ? ng.in_value(4) : saved_c;
                const std::span<double> prof_bar = x_var ? ng.in_adjoint(4) : std::span<double>();
                const auto ybar = ng.out_adjoint();
                // the batched SIMD backward (sw_simd.hpp) over the pairs with a nonzero adjoint; each
                // pair's s̄ then gives S̄, x̄, ȳ (each pair owns its profile slots: no two threads
                // write the same x̄)
                std::vector<detail::SwSeqPair<double>> raw;
                std::vector<std::size_t> which;
                std::vector<double> fbar;
                for (std::size_t k = 0; k < N; ++k) {
                    if (ybar[k] == 0.0) continue;
                    raw.push_back({prof.data() + dims[k].q_off, dims[k].m, prof.data() + dims[k].t_off, dims[k].n});
                    which.push_back(k);
                    fbar.push_back(ybar[k]);
                }
                std::vector<double> scores(raw.size());
                detail::SwBatchGrads res;
                detail::sw_simd_value_and_grad_profiles<double, double, detail::SwWork>(
                    md, p, S, A, std::span<const detail::SwSeqPair<double>>(raw), fbar.data(), scores.data(), res,
                    threads_of(policy), checkpoint,
                    [&](std::size_t r, const double* sbar, const double* B, double* Sbar, detail::SwWork& w) {
                        const detail::SwPairDims d = dims[which[r]];
                        detail::sw_profile_sbar_grad(S, A, prof.data() + d.q_off, d.m, prof.data() + d.t_off, d.n, sbar,
                                                     B, Sbar, prof_bar.empty() ? nullptr : prof_bar.data() + d.q_off,
                                                     prof_bar.empty() ? nullptr : prof_bar.data() + d.t_off, w);
                    });
                const GradSum sum{std::move(res.Sbar), res.g};
                add_param_adjoints(ng, sum, has_params, has_tau);
            });
        // Forward values (the profile values of Vars read from the tape now).
        std::vector<double> prof_now;
        if constexpr (x_var) {
            prof_now.resize(total);
            for (std::size_t e = 0; e < total; ++e) prof_now[e] = tape.value(prof_vars[e]);
        }
        const double* prof = x_var ? prof_now.data() : saved_c.data();
        const auto yv = tape.values_of(y);
        const detail::SwScalars<double> p{pv[A * A], pv[A * A + 1], pv[A * A + 2]};
        std::vector<detail::SwSeqPair<double>> raw(N);
        for (std::size_t k = 0; k < N; ++k) raw[k] = {prof + dims[k].q_off, dims[k].m, prof + dims[k].t_off, dims[k].n};
        std::vector<double> scores(N);
        detail::sw_simd_scores_profiles<double, double>(md, p, pv.data(), A,
                                                        std::span<const detail::SwSeqPair<double>>(raw), scores.data(),
                                                        threads_of(policy));
        std::copy(scores.begin(), scores.end(), yv.begin());
        return std::vector<ad::Var>(y.begin(), y.end());
    }

    SmithWatermanConfig cfg_;
    std::shared_ptr<detail::SwTableCache> cache_ = std::make_shared<detail::SwTableCache>();
    SubstitutionMatrix matrix_;
    ad::Parameter substitution_;
    ad::Parameter gap_open_;
    ad::Parameter gap_extend_;
    ad::Parameter temperature_;
};

} // namespace diffbio::ops
