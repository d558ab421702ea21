#pragma once
// ProfileHmm: a Plan7-like profile hidden Markov model with learnable, softmax-parametrised
// emissions and transitions, scored by a tempered forward algorithm, with full forward-backward
// posteriors, a Viterbi alignment, and a fused reverse-mode node for a whole batch.
//
// The model (M match positions, K letters; nodes k = 0..M−1 here, HMMER's 1..M):
//   S → N → B → M_k → … → E → C → T     one local hit per sequence (hmmsearch's unihit local mode)
//   core:  M_k → {M_{k+1}, I_k, D_{k+1}}   I_k → {M_{k+1}, I_k}   D_k → {M_{k+1}, D_{k+1}}
//          inserts I_0..I_{M−2}, deletes D_1..D_{M−2} (a delete needs a match on each side)
//   entry: B → M_k with probability softmax(entry_logits)_k (uniform at start, learnable)
//   exit:  M_k → E with probability 1 (HMMER3's "implicit" local exit: every end is free)
//   flanks: N and C emit background letters, loop with L/(L+2), move on with 2/(L+2) (HMMER's
//          single-hit length model for a target of length L)
//   null:  one state emitting background letters, looping with L/(L+1)
// Parameters (ad::Parameter, logits; probabilities are their softmax):
//   match_logits       [M × K]        e_M(k, a)
//   insert_logits      [(M−1) × K]    e_I(k, a) (absent with tie_insert_emissions: inserts emit the
//                                     background, log-odds 0, as in HMMER's search profiles)
//   transition_logits  [(M−1) × 7]    row k = node k's [MM MI MD | IM II | DM DD], softmax over
//                                     each group (row 0's DM DD are unused: there is no D_0; MD of
//                                     row M−2 leads to no state, its mass is lost)
//   entry_logits       [M]            B → M_k
//   log_temperature    [1]            log τ (learnable only with learnable_temperature)
//
// Scores are log-odds against the null model, in nats: a path π (entry k at residue s, core
// states, exit at residue t) scores s(π) = log P(x, π | model) − log P(x | null), which is the sum
// of its emission log-odds log p(a)/bg(a) (0 for flank letters), core transition log-probs,
// log entry, (L − #core residues)·log(L/(L+2)) + 2·log(2/(L+2)) for the flanks, minus the null
// length term L·log(L/(L+1)) + log(1/(L+1)). The operator's score is the tempered forward value
//   F_τ(x) = τ · log Σ_π exp(s(π)/τ)                                                (*)
// computed by the forward recursion with every log-sum-exp tempered, LSE_τ(v) = max v +
// τ log Σ exp((v − max v)/τ): τ = 1 is the forward log-odds (log P(x|model) − log P(x|null));
// τ → 0 the Viterbi score max_π s(π) (0 ≤ F_τ − max ≤ τ log #paths). bits = F_τ / ln 2 and
// log_likelihood = F_τ + log P(x | null) are returned too.
//
// Gradients: ∂F_τ/∂(any additive score term) = its expected count under the tempered path
// posterior q(π) ∝ exp(s(π)/τ). So ∂F/∂log p_M(k, a) = Σ_i q(residue i at M_k)·[x_i = a],
// ∂F/∂log t = expected transition counts (delete transitions included: unlike DiffBio, whose
// delete states are never updated, every delete transition carries gradient), ∂F/∂log entry_k =
// P(entry at k), then the softmax chain ∂/∂logit_j = g_j − p_j Σ g; and ∂F/∂τ = (F − E_q[s])/τ.
// The Var path records ONE tape node for the whole batch whose backward recomputes the forward
// matrices and runs the hand-derived adjoint (posterior) sweep; double, float and Dual run the
// forward recursion in the scalar.
//
// Sequences: integer codes (SequenceBatch, alphabet.hpp; code K = ambiguous letter, log-odds 0
// everywhere) or soft rows (SoftSequences: [L × K] non-negative likelihood weights x_i; emission
// log-odds log Σ_a x_ia p(a) − log Σ_a x_ia bg(a), differentiable in x).
//
// Complexity: O(L·M) time per sequence for the forward, ~2× that for the backward; memory O(M)
// for the forward, O(L·M) for the backward, posteriors and Viterbi. CpuParallel spreads sequences
// over threads. Numerics: no −∞ anywhere (unreachable cells are left out of the recursion), every
// LSE shifted by its max, so values and gradients stay finite for τ ∈ [1e-4, 1e4] and long
// sequences (tested at L = 10,000).
//
// Building from an alignment (from_msa): columns where at least symfrac (50%) of the sequences
// have a residue are match columns (hmmbuild's --symfrac rule); each sequence's path runs from its
// first to its last residue in a match column (leading and trailing deletions are local entry and
// exit, not counted; Plan7 has no D→I or I→D, such steps are not counted either); emission and
// transition counts (position-based sequence weights, Henikoff & Henikoff 1994) plus Dirichlet
// pseudocounts (α·background for emissions, fixed priors for each transition group) give the
// probabilities, whose logs are the initial logits. Insert emissions start at the background.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
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
#include <diffbio/ops/alignment/alphabet.hpp>
#include <diffbio/ops/alignment/msa.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct ProfileHmmConfig {
    SequenceAlphabet alphabet = SequenceAlphabet::protein;
    std::size_t length = 100;           ///< M, match positions (from_msa sets it from the alignment)
    double temperature = 1.0;           ///< τ of the tempered forward (1: the likelihood)
    bool learnable_temperature = false; ///< log τ in parameters() and differentiated
    bool learnable_entry = true;        ///< entry logits in parameters()
    bool tie_insert_emissions = false;  ///< inserts emit the background (no insert parameters)
    std::vector<double> background{};   ///< K null-model frequencies (normalised); empty: default_background
    double init_noise = 0.1;            ///< σ of the N(0, σ²) noise on the initial match logits (log bg)
    std::uint64_t seed = 0;             ///< of that noise

    void validate() const {
        if (length < 1) throw InvalidArgument("ProfileHmmConfig: 'length' (match positions) must be >= 1, got 0");
        check_temperature(temperature, "ProfileHmmConfig", "temperature");
        if (!background.empty()) {
            check_size(background.size(), alphabet_size(alphabet), "ProfileHmmConfig", "'background'");
            for (double b : background) check_positive(b, "ProfileHmmConfig", "background");
        }
        if (!(init_noise >= 0.0) || !std::isfinite(init_noise)) {
            throw InvalidArgument("ProfileHmmConfig: 'init_noise' must be finite and >= 0, got " +
                                  diffbio::detail::format_value(init_noise));
        }
    }
};

/// How from_msa turns counts into probabilities.
struct MsaProfileOptions {
    double symfrac = 0.5;            ///< match column: ≥ this fraction of the sequences has a residue there
    bool position_weights = true;    ///< Henikoff position-based sequence weights (else 1 per sequence)
    double effective_sequences = 0;  ///< total sequence weight; 0: the number of sequences
    double emission_pseudocount = 1.0; ///< α: p(a) = (c_a + α·bg_a) / (Σc + α)
    bool insert_emissions_from_counts = false; ///< else inserts emit the background
    std::array<double, 3> match_transition_prior{0.7, 0.03, 0.03}; ///< MM MI MD pseudocounts
    std::array<double, 2> insert_transition_prior{0.5, 0.4};       ///< IM II
    std::array<double, 2> delete_transition_prior{0.6, 0.3};       ///< DM DD

    void validate() const {
        if (!(symfrac > 0.0 && symfrac <= 1.0)) {
            throw InvalidArgument("MsaProfileOptions: 'symfrac' must be in (0, 1], got " +
                                  diffbio::detail::format_value(symfrac));
        }
        if (!(effective_sequences >= 0.0) || !std::isfinite(effective_sequences)) {
            throw InvalidArgument("MsaProfileOptions: 'effective_sequences' must be finite and >= 0");
        }
        check_positive(emission_pseudocount, "MsaProfileOptions", "emission_pseudocount");
        for (double a : match_transition_prior) check_positive(a, "MsaProfileOptions", "match_transition_prior");
        for (double a : insert_transition_prior) check_positive(a, "MsaProfileOptions", "insert_transition_prior");
        for (double a : delete_transition_prior) check_positive(a, "MsaProfileOptions", "delete_transition_prior");
    }
};

/// Scores of a batch (one entry per sequence).
template <class R>
struct ProfileHmmScores {
    std::vector<R> score;               ///< F_τ, log-odds in nats
    std::vector<R> bits;                ///< F_τ / ln 2
    std::vector<R> log_likelihood;      ///< F_τ + null_log_likelihood (at τ = 1: log P(x | model))
    std::vector<R> null_log_likelihood; ///< log P(x | null)
};

enum class HmmState : std::uint8_t { match, insert, del };

/// One core state of an alignment: node k, and the residue it emits (match, insert) or, for a
/// delete, the last residue emitted before it.
struct HmmStep {
    HmmState state;
    std::uint32_t node;
    std::uint32_t residue;
    friend bool operator==(const HmmStep&, const HmmStep&) = default;
};

/// The best path: its score (log-odds, nats), the residues [begin, end] its core emits, its steps.
struct HmmViterbi {
    double score = 0.0;
    std::size_t begin = 0;
    std::size_t end = 0;
    std::vector<HmmStep> steps;
};

/// Forward-backward results of one sequence under the tempered path posterior q (exact posteriors
/// at τ = 1). Per-residue arrays are [L × M] (row i, column k); insert column M−1 and delete
/// columns 0 and M−1 are 0 (no such states). For every residue i,
///   Σ_k match(i, k) + Σ_k insert(i, k) + n_flank(i) + c_flank(i) = 1.
/// The expected counts are the gradients of `score` with respect to the log-probabilities.
struct ProfileHmmPosterior {
    std::size_t length = 0;             ///< L
    std::size_t nodes = 0;              ///< M
    double score = 0.0;                 ///< F_τ
    double expected_score = 0.0;        ///< E_q[s(π)] (= score at τ → 0)
    std::vector<double> match;          ///< P(residue i emitted by M_k)
    std::vector<double> insert;         ///< P(residue i emitted by I_k)
    std::vector<double> del;            ///< P(the path visits D_k right after residue i)
    std::vector<double> n_flank;        ///< [L] P(residue i emitted by N)
    std::vector<double> c_flank;        ///< [L] P(residue i emitted by C)
    std::vector<double> match_counts;   ///< [M × K] expected emission counts
    std::vector<double> insert_counts;  ///< [(M−1) × K]
    std::vector<double> transition_counts; ///< [(M−1) × 7] as transition_logits
    std::vector<double> entry_counts;   ///< [M] P(entry at M_k); sums to 1
};

namespace detail {

inline constexpr std::size_t hmm_mm = 0, hmm_mi = 1, hmm_md = 2, hmm_im = 3, hmm_ii = 4, hmm_dm = 5, hmm_dd = 6;
inline constexpr std::size_t hmm_nt = 7;

/// The null model's length term: L·log(L/(L+1)) + log(1/(L+1)).
inline double hmm_null_length(std::size_t L) {
    const double l = static_cast<double>(L);
    return l * (std::log(l) - std::log(l + 1.0)) - std::log(l + 1.0);
}

/// Flank scores for a target of length L: N/C loop log(L/(L+2)), N → B move log(2/(L+2)), and
/// what every path adds at its end: the C → T move minus the null model's length term.
struct HmmFlank {
    double loop;
    double move;
    double finish;
    explicit HmmFlank(std::size_t L) {
        const double l = static_cast<double>(L);
        loop = std::log(l) - std::log(l + 2.0);
        move = std::log(2.0) - std::log(l + 2.0);
        finish = move - hmm_null_length(L);
    }
};

/// out[j] = x[j] − logsumexp(x) (U → R).
template <class R, class U>
void hmm_log_softmax(const U* x, std::size_t n, R* out) {
    std::vector<R> v(n);
    for (std::size_t j = 0; j < n; ++j) v[j] = static_cast<R>(x[j]);
    const R lse = logsumexp(std::span<const R>(v));
    for (std::size_t j = 0; j < n; ++j) out[j] = v[j] - lse;
}

/// ∂/∂x of Σ_j g_j·log_softmax(x)_j: gx_j += g_j − p_j Σ g (p = e^{lp}).
inline void hmm_log_softmax_backward(const double* lp, const double* g, std::size_t n, double* gx) {
    double s = 0.0;
    for (std::size_t j = 0; j < n; ++j) s += g[j];
    for (std::size_t j = 0; j < n; ++j) gx[j] += g[j] - std::exp(lp[j]) * s;
}

/// The model's log-probabilities and emission log-odds tables in scalar R.
template <class R>
struct HmmTables {
    std::vector<R> match_lp;   ///< [M × K]
    std::vector<R> insert_lp;  ///< [(M−1) × K], empty when tied
    std::vector<R> match_tab;  ///< [(K+1) × M] log-odds by code (row K: 0)
    std::vector<R> insert_tab; ///< [(K+1) × M] (column M−1 and all of it when tied: 0)
    std::vector<R> trans;      ///< [(M−1) × 7] log-probabilities
    std::vector<R> entry;      ///< [M] log-probabilities
};

template <class R, class U>
HmmTables<R> hmm_tables(std::span<const U> match, std::span<const U> insert, std::span<const U> trans,
                        std::span<const U> entry, std::size_t M, std::size_t K, std::span<const double> log_bg) {
    HmmTables<R> t;
    const R zero = passive<R>(0.0);
    t.match_lp.resize(M * K);
    t.match_tab.assign((K + 1) * M, zero);
    t.insert_tab.assign((K + 1) * M, zero);
    for (std::size_t k = 0; k < M; ++k) {
        hmm_log_softmax<R>(match.data() + k * K, K, t.match_lp.data() + k * K);
        for (std::size_t a = 0; a < K; ++a) t.match_tab[a * M + k] = t.match_lp[k * K + a] - passive<R>(log_bg[a]);
    }
    if (!insert.empty()) {
        t.insert_lp.resize((M - 1) * K);
        for (std::size_t k = 0; k + 1 < M; ++k) {
            hmm_log_softmax<R>(insert.data() + k * K, K, t.insert_lp.data() + k * K);
            for (std::size_t a = 0; a < K; ++a)
                t.insert_tab[a * M + k] = t.insert_lp[k * K + a] - passive<R>(log_bg[a]);
        }
    }
    t.trans.resize((M - 1) * hmm_nt);
    for (std::size_t k = 0; k + 1 < M; ++k) {
        const U* x = trans.data() + k * hmm_nt;
        R* y = t.trans.data() + k * hmm_nt;
        hmm_log_softmax<R>(x, 3, y);
        hmm_log_softmax<R>(x + 3, 2, y + 3);
        hmm_log_softmax<R>(x + 5, 2, y + 5);
    }
    t.entry.resize(M);
    hmm_log_softmax<R>(entry.data(), M, t.entry.data());
    return t;
}

/// Emission log-odds rows of one sequence: match row m(i) and insert row ins(i), M entries each,
/// looked up by code (codes != null: tables [(K+1) × M]) or dense ([L × M]).
template <class R>
struct HmmEmissions {
    const R* match;
    const R* insert;
    const std::uint8_t* codes;
    std::size_t M;
    const R* m(std::size_t i) const { return match + (codes != nullptr ? codes[i] : i) * M; }
    const R* ins(std::size_t i) const { return insert + (codes != nullptr ? codes[i] : i) * M; }
};

/// Where the backward adds the emission adjoints (same addressing as HmmEmissions).
struct HmmEmissionAdjoints {
    double* match;
    double* insert;
    const std::uint8_t* codes;
    std::size_t M;
    double* m(std::size_t i) const { return match + (codes != nullptr ? codes[i] : i) * M; }
    double* ins(std::size_t i) const { return insert + (codes != nullptr ? codes[i] : i) * M; }
};

/// LSE_τ(x[0..n)) = max + τ·log Σ exp((x − max)/τ), shifted by the passive max (n ≥ 1).
template <class R>
R hmm_lse(const R* x, std::size_t n, const R& tau, const R& inv_tau) {
    using std::exp;
    using std::log;
    if constexpr (std::is_floating_point_v<R>) {
        // plain numbers: the max term contributes exactly 1, so one exp fewer (and none for n = 1)
        std::size_t jm = 0;
        for (std::size_t j = 1; j < n; ++j) jm = x[j] > x[jm] ? j : jm;
        R s = R(0);
        for (std::size_t j = 0; j < n; ++j) s += j == jm ? R(0) : exp((x[j] - x[jm]) * inv_tau);
        return x[jm] + tau * log(R(1) + s);
    }
    double m = primal(x[0]);
    for (std::size_t j = 1; j < n; ++j) {
        const double v = primal(x[j]);
        m = v > m ? v : m;
    }
    const R mt = passive<R>(m);
    R s = exp((x[0] - mt) * inv_tau);
    for (std::size_t j = 1; j < n; ++j) s = s + exp((x[j] - mt) * inv_tau);
    return mt + tau * log(s);
}

/// The tempered forward recursion (*) of one sequence of length L ≥ 1. Row i of the DP is
/// [M(i, 0..M) | I(i, 0..M) | D(i, 0..M)]; with `store` (L·3M entries) every row is kept (for the
/// backward), else two rolling rows. z_out (L entries, optional) receives the exit terms
/// z_i = LSE_τ_k M(i, k) + (L−1−i)·loop. Returns F_τ.
template <class R>
R hmm_forward(const HmmEmissions<R>& e, std::size_t L, const R* trans, const R* entry, const R& tau, const HmmFlank& fl,
              R* store, R* z_out) {
    const std::size_t M = e.M, W = 3 * M;
    const R inv_tau = passive<R>(1.0) / tau;
    const R zero = passive<R>(0.0);
    std::vector<R> roll(store != nullptr ? 0 : 2 * W, zero);
    std::vector<R> zbuf(z_out != nullptr ? 0 : L);
    R* z = z_out != nullptr ? z_out : zbuf.data();
    const R* prev = nullptr;
    std::array<R, 4> t{};
    for (std::size_t i = 0; i < L; ++i) {
        R* Mc = store != nullptr ? store + i * W : roll.data() + (i & 1) * W;
        R* Ic = Mc + M;
        R* Dc = Mc + 2 * M;
        const R* em = e.m(i);
        const R* ei = e.ins(i);
        const R bsc = passive<R>(static_cast<double>(i) * fl.loop + fl.move);
        for (std::size_t k = 0; k < M; ++k) {
            std::size_t n = 0;
            t[n++] = entry[k] + bsc;
            if (prev != nullptr && k > 0) {
                const R* tr = trans + (k - 1) * hmm_nt;
                t[n++] = prev[k - 1] + tr[hmm_mm];
                if (i >= 2) t[n++] = prev[M + k - 1] + tr[hmm_im];
                if (k >= 2) t[n++] = prev[2 * M + k - 1] + tr[hmm_dm];
            }
            Mc[k] = em[k] + hmm_lse(t.data(), n, tau, inv_tau);
        }
        Dc[0] = zero;
        Dc[M - 1] = zero;
        for (std::size_t k = 1; k + 1 < M; ++k) {
            const R* tr = trans + (k - 1) * hmm_nt;
            std::size_t n = 0;
            t[n++] = Mc[k - 1] + tr[hmm_md];
            if (k >= 2) t[n++] = Dc[k - 1] + tr[hmm_dd];
            Dc[k] = hmm_lse(t.data(), n, tau, inv_tau);
        }
        Ic[M - 1] = zero;
        for (std::size_t k = 0; k + 1 < M; ++k) {
            if (prev == nullptr) {
                Ic[k] = zero; // no insert before the first residue of a hit: never read
                continue;
            }
            const R* tr = trans + k * hmm_nt;
            std::size_t n = 0;
            t[n++] = prev[k] + tr[hmm_mi];
            if (i >= 2) t[n++] = prev[M + k] + tr[hmm_ii];
            Ic[k] = ei[k] + hmm_lse(t.data(), n, tau, inv_tau);
        }
        z[i] = hmm_lse(Mc, M, tau, inv_tau) + passive<R>(static_cast<double>(L - 1 - i) * fl.loop);
        prev = Mc;
    }
    return passive<R>(fl.finish) + hmm_lse(z, L, tau, inv_tau);
}

/// What the backward adds into (adjoints scaled by the score's adjoint). Optional arrays may be null.
struct HmmSinks {
    HmmEmissionAdjoints emit;
    double* trans;            ///< [(M−1) × 7]
    double* entry;            ///< [M]
    double* del = nullptr;    ///< [L × M] delete occupancy
    double* begin = nullptr;  ///< [L] P(the hit's first residue is i)
    double* end = nullptr;    ///< [L] P(the hit's last residue is i)
};

/// Workspace of hmm_backward, reused across sequences.
struct HmmWork {
    std::vector<double> store, z, adj, endw, cand;
};

/// The weights of a τ-soft max over candidates c[0..n) (−∞ allowed, one finite at least), scaled
/// to sum to `total`: total·exp((c_j − max c)/τ) / Σ_k exp((c_k − max c)/τ). Shifting by the
/// largest candidate and normalising keeps the weights a distribution at any τ: the forward's cell
/// value itself cannot serve as the shift once τ·log 2 falls below its rounding (two tied
/// candidates would each get weight 1, and the adjoint mass double at every tie).
inline void hmm_soft_weights(double* c, std::size_t n, double inv, double total) {
    double m = c[0];
    for (std::size_t j = 1; j < n; ++j) m = std::max(m, c[j]);
    double sum = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
        c[j] = std::exp((c[j] - m) * inv);
        sum += c[j];
    }
    const double k = total / sum;
    for (std::size_t j = 0; j < n; ++j) c[j] *= k;
}

/// Forward, then the adjoint sweep of one sequence: every adjoint is `scale` times the tempered
/// posterior of its state or edge. Returns {F_τ, scale·E_q[s]}. O(L·M) time, O(L·M) memory.
/// Each adjoint is split among the candidates of its soft max by hmm_soft_weights.
inline std::pair<double, double> hmm_backward(const HmmEmissions<double>& e, std::size_t L, const double* trans,
                                              const double* entry, double tau, const HmmFlank& fl, double scale,
                                              HmmWork& w, const HmmSinks& out) {
    constexpr double ninf = -std::numeric_limits<double>::infinity();
    const std::size_t M = e.M, W = 3 * M;
    w.store.resize(L * W);
    w.z.resize(L);
    const double F = hmm_forward<double>(e, L, trans, entry, tau, fl, w.store.data(), w.z.data());
    const double inv = 1.0 / tau;
    w.adj.assign(2 * W, 0.0);
    double* a = w.adj.data();     // adjoints of row i
    double* b = w.adj.data() + W; // adjoints of row i − 1
    // the exit: the hit's last residue i, weights of the soft max over z_i
    w.endw.assign(w.z.begin(), w.z.end());
    hmm_soft_weights(w.endw.data(), L, inv, scale);
    w.cand.resize(M);
    double es = 0.0;
    double c[4];
    for (std::size_t i = L; i-- > 0;) {
        const double* Mc = w.store.data() + i * W;
        const double* Dc = Mc + 2 * M;
        const double* prev = i > 0 ? Mc - W : nullptr;
        double* aM = a;
        double* aI = a + M;
        double* aD = a + 2 * M;
        // exit after residue i, from the match states of row i
        const double tail = static_cast<double>(L - 1 - i) * fl.loop;
        const double aend = w.endw[i];
        if (out.end != nullptr) out.end[i] += aend;
        es += aend * (tail + fl.finish);
        if (aend != 0.0) {
            std::copy(Mc, Mc + M, w.cand.begin());
            hmm_soft_weights(w.cand.data(), M, inv, aend);
            for (std::size_t k = 0; k < M; ++k) aM[k] += w.cand[k];
        }
        // deletes of row i, right to left (D(i, k) feeds D(i, k + 1) and M(i + 1, k + 1)); D(i, k)
        // comes from M(i, k − 1) and, for k ≥ 2, D(i, k − 1)
        for (std::size_t k = M >= 2 ? M - 2 : 0; k >= 1; --k) {
            const double ad = aD[k];
            if (out.del != nullptr) out.del[i * M + k] += ad;
            if (ad == 0.0) continue;
            const double* tr = trans + (k - 1) * hmm_nt;
            double* gt = out.trans + (k - 1) * hmm_nt;
            c[0] = Mc[k - 1] + tr[hmm_md];
            c[1] = k >= 2 ? Dc[k - 1] + tr[hmm_dd] : ninf;
            hmm_soft_weights(c, 2, inv, ad);
            aM[k - 1] += c[0];
            gt[hmm_md] += c[0];
            es += c[0] * tr[hmm_md];
            if (k >= 2) {
                aD[k - 1] += c[1];
                gt[hmm_dd] += c[1];
                es += c[1] * tr[hmm_dd];
            }
        }
        // matches of row i: M(i, k) comes from the entry and, for i, k ≥ 1, M, I (i ≥ 2) and D (k ≥ 2)
        const double bsc = static_cast<double>(i) * fl.loop + fl.move;
        const double* em = e.m(i);
        double* gm = out.emit.m(i);
        double begin_i = 0.0;
        double* bM = b;
        double* bI = b + M;
        double* bD = b + 2 * M;
        for (std::size_t k = 0; k < M; ++k) {
            const double am = aM[k];
            if (am == 0.0) continue;
            gm[k] += am;
            es += am * em[k];
            const bool inner = prev != nullptr && k > 0;
            const double* tr = inner ? trans + (k - 1) * hmm_nt : nullptr;
            c[0] = entry[k] + bsc;
            c[1] = inner ? prev[k - 1] + tr[hmm_mm] : ninf;
            c[2] = inner && i >= 2 ? prev[M + k - 1] + tr[hmm_im] : ninf;
            c[3] = inner && k >= 2 ? prev[2 * M + k - 1] + tr[hmm_dm] : ninf;
            hmm_soft_weights(c, 4, inv, am);
            out.entry[k] += c[0];
            begin_i += c[0];
            es += c[0] * (entry[k] + bsc);
            if (!inner) continue;
            double* gt = out.trans + (k - 1) * hmm_nt;
            bM[k - 1] += c[1];
            gt[hmm_mm] += c[1];
            es += c[1] * tr[hmm_mm];
            if (i >= 2) {
                bI[k - 1] += c[2];
                gt[hmm_im] += c[2];
                es += c[2] * tr[hmm_im];
            }
            if (k >= 2) {
                bD[k - 1] += c[3];
                gt[hmm_dm] += c[3];
                es += c[3] * tr[hmm_dm];
            }
        }
        if (out.begin != nullptr) out.begin[i] += begin_i;
        // inserts of row i (i ≥ 1): I(i, k) comes from M(i − 1, k) and, for i ≥ 2, I(i − 1, k)
        if (prev != nullptr) {
            const double* ei = e.ins(i);
            double* gi = out.emit.ins(i);
            for (std::size_t k = 0; k + 1 < M; ++k) {
                const double ai = aI[k];
                if (ai == 0.0) continue;
                gi[k] += ai;
                es += ai * ei[k];
                const double* tr = trans + k * hmm_nt;
                double* gt = out.trans + k * hmm_nt;
                c[0] = prev[k] + tr[hmm_mi];
                c[1] = i >= 2 ? prev[M + k] + tr[hmm_ii] : ninf;
                hmm_soft_weights(c, 2, inv, ai);
                bM[k] += c[0];
                gt[hmm_mi] += c[0];
                es += c[0] * tr[hmm_mi];
                if (i >= 2) {
                    bI[k] += c[1];
                    gt[hmm_ii] += c[1];
                    es += c[1] * tr[hmm_ii];
                }
            }
        }
        std::swap(a, b);
        std::fill(b, b + W, 0.0);
    }
    return {F, es};
}

/// Viterbi (max-plus) recursion of the same model with a traceback. O(L·M) time, O(L·M) bytes.
inline HmmViterbi hmm_viterbi(const HmmEmissions<double>& e, std::size_t L, const double* trans, const double* entry,
                              const HmmFlank& fl) {
    constexpr double ninf = -std::numeric_limits<double>::infinity();
    const std::size_t M = e.M, W = 3 * M;
    std::vector<double> rows(2 * W, ninf);
    std::vector<std::uint8_t> from(L * W, 0); // M: 0 entry, 1 M, 2 I, 3 D; I: 1 M, 2 I; D: 1 M, 3 D
    double best = ninf;
    std::size_t best_i = 0, best_k = 0;
    const double* prev = nullptr;
    for (std::size_t i = 0; i < L; ++i) {
        double* Mc = rows.data() + (i & 1) * W;
        double* Ic = Mc + M;
        double* Dc = Mc + 2 * M;
        std::uint8_t* fr = from.data() + i * W;
        const double* em = e.m(i);
        const double* ei = e.ins(i);
        const double bsc = static_cast<double>(i) * fl.loop + fl.move;
        for (std::size_t k = 0; k < M; ++k) {
            double v = entry[k] + bsc;
            std::uint8_t f = 0;
            if (prev != nullptr && k > 0) {
                const double* tr = trans + (k - 1) * hmm_nt;
                const double cand[3] = {prev[k - 1] + tr[hmm_mm], i >= 2 ? prev[M + k - 1] + tr[hmm_im] : ninf,
                                        k >= 2 ? prev[2 * M + k - 1] + tr[hmm_dm] : ninf};
                for (std::uint8_t c = 0; c < 3; ++c) {
                    if (cand[c] > v) {
                        v = cand[c];
                        f = static_cast<std::uint8_t>(c + 1);
                    }
                }
            }
            Mc[k] = v + em[k];
            fr[k] = f;
            const double end = Mc[k] + static_cast<double>(L - 1 - i) * fl.loop;
            if (end > best) {
                best = end;
                best_i = i;
                best_k = k;
            }
        }
        for (std::size_t k = 0; k < M; ++k) Dc[k] = ninf;
        for (std::size_t k = 1; k + 1 < M; ++k) {
            const double* tr = trans + (k - 1) * hmm_nt;
            const double vm = Mc[k - 1] + tr[hmm_md];
            const double vd = k >= 2 ? Dc[k - 1] + tr[hmm_dd] : ninf;
            Dc[k] = vd > vm ? vd : vm;
            fr[2 * M + k] = vd > vm ? 3 : 1;
        }
        for (std::size_t k = 0; k < M; ++k) Ic[k] = ninf;
        if (prev != nullptr) {
            for (std::size_t k = 0; k + 1 < M; ++k) {
                const double* tr = trans + k * hmm_nt;
                const double vm = prev[k] + tr[hmm_mi];
                const double vi = i >= 2 ? prev[M + k] + tr[hmm_ii] : ninf;
                Ic[k] = (vi > vm ? vi : vm) + ei[k];
                fr[M + k] = vi > vm ? 2 : 1;
            }
        }
        prev = Mc;
    }
    HmmViterbi out;
    out.score = best + fl.finish;
    out.end = best_i;
    std::size_t i = best_i, k = best_k;
    HmmState s = HmmState::match;
    for (;;) {
        out.steps.push_back({s, static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(i)});
        const std::uint8_t f = from[i * W + (s == HmmState::match ? 0 : s == HmmState::insert ? M : 2 * M) + k];
        if (s == HmmState::match) {
            if (f == 0) break;
            --i;
            --k;
            s = f == 1 ? HmmState::match : f == 2 ? HmmState::insert : HmmState::del;
        } else if (s == HmmState::insert) {
            --i;
            s = f == 1 ? HmmState::match : HmmState::insert;
        } else {
            --k;
            s = f == 1 ? HmmState::match : HmmState::del;
        }
    }
    std::reverse(out.steps.begin(), out.steps.end());
    out.begin = out.steps.front().residue;
    return out;
}

/// Dense soft-row emissions of one sequence: em[i·M + k] = log Σ_a x_ia p_M(k, a) − log Σ_a x_ia bg_a
/// (and ei for inserts, 0 when tied or in column M−1). Returns Σ_i log Σ_a x_ia bg_a.
template <class R, class X>
R hmm_soft_emissions(const std::vector<R>& pM, const std::vector<R>& pI, const X* rows, std::size_t L, std::size_t M,
                     std::size_t K, std::span<const double> bg, R* em, R* ei) {
    using std::log;
    const R zero = passive<R>(0.0);
    R total = zero;
    for (std::size_t i = 0; i < L; ++i) {
        const X* x = rows + i * K;
        R sb = zero;
        for (std::size_t a = 0; a < K; ++a) sb = sb + static_cast<R>(x[a]) * passive<R>(bg[a]);
        const R nul = log(sb);
        total = total + nul;
        for (std::size_t k = 0; k < M; ++k) {
            R s = zero;
            for (std::size_t a = 0; a < K; ++a) s = s + static_cast<R>(x[a]) * pM[k * K + a];
            em[i * M + k] = log(s) - nul;
        }
        for (std::size_t k = 0; k < M; ++k) {
            if (pI.empty() || k + 1 == M) {
                ei[i * M + k] = zero;
                continue;
            }
            R s = zero;
            for (std::size_t a = 0; a < K; ++a) s = s + static_cast<R>(x[a]) * pI[k * K + a];
            ei[i * M + k] = log(s) - nul;
        }
    }
    return total;
}

/// The row scalar of a soft input (double for integer codes).
template <class I>
struct HmmRow {
    using type = double;
};
template <class S>
struct HmmRow<SoftSequences<S>> {
    using type = S;
};

/// Standard normal numbers from a seeded 64-bit Mersenne twister (Box–Muller): the same on every
/// platform, unlike std::normal_distribution.
class HmmNormal {
public:
    explicit HmmNormal(std::uint64_t seed) : rng_(seed) {}
    double operator()() {
        const double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }

private:
    double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }
    std::mt19937_64 rng_;
};

} // namespace detail

class ProfileHmm {
public:
    explicit ProfileHmm(ProfileHmmConfig cfg = {})
        : cfg_((cfg.validate(), std::move(cfg))), M_(cfg_.length), K_(ops::alphabet_size(cfg_.alphabet)),
          bg_(normalised_background(cfg_)), match_("profile_hmm_match_logits", std::vector<double>(M_ * K_)),
          insert_("profile_hmm_insert_logits", std::vector<double>(cfg_.tie_insert_emissions ? 0 : (M_ - 1) * K_)),
          trans_("profile_hmm_transition_logits", std::vector<double>((M_ - 1) * detail::hmm_nt)),
          entry_("profile_hmm_entry_logits", std::vector<double>(M_, 0.0)),
          log_temperature_("profile_hmm_log_temperature", std::log(cfg_.temperature)) {
        for (double b : bg_) log_bg_.push_back(std::log(b));
        detail::HmmNormal normal(cfg_.seed);
        for (std::size_t k = 0; k < M_; ++k) {
            for (std::size_t a = 0; a < K_; ++a) match_.values()[k * K_ + a] = log_bg_[a] + cfg_.init_noise * normal();
        }
        for (std::size_t k = 0; k + 1 < M_ && !cfg_.tie_insert_emissions; ++k) {
            for (std::size_t a = 0; a < K_; ++a) insert_.values()[k * K_ + a] = log_bg_[a];
        }
        // DiffBio's initial transition logits (without its noise): MM 2, IM 1, DM 1, others 0.
        for (std::size_t k = 0; k + 1 < M_; ++k) {
            double* t = trans_.values().data() + k * detail::hmm_nt;
            t[detail::hmm_mm] = 2.0;
            t[detail::hmm_im] = 1.0;
            t[detail::hmm_dm] = 1.0;
        }
    }

    /// A model whose match states are the alignment's columns where at least opt.symfrac of the
    /// sequences have a residue (cfg.length is replaced by their number), initialised from weighted counts and
    /// pseudocounts (see the top of this header). Throws InvalidArgument for an empty alignment,
    /// a letter outside cfg.alphabet, or no match column.
    static ProfileHmm from_msa(const Msa& msa, ProfileHmmConfig cfg = {}, const MsaProfileOptions& opt = {});

    const ProfileHmmConfig& config() const noexcept { return cfg_; }
    std::size_t length() const noexcept { return M_; }
    std::size_t alphabet_size() const noexcept { return K_; }
    std::span<const double> background() const noexcept { return bg_; }
    /// For a model from from_msa: the alignment column of each match state (else empty).
    std::span<const std::size_t> match_columns() const noexcept { return columns_; }

    ad::Parameter& match_logits() noexcept { return match_; }
    ad::Parameter& insert_logits() noexcept { return insert_; }
    ad::Parameter& transition_logits() noexcept { return trans_; }
    ad::Parameter& entry_logits() noexcept { return entry_; }
    ad::Parameter& log_temperature() noexcept { return log_temperature_; }
    const ad::Parameter& match_logits() const noexcept { return match_; }
    const ad::Parameter& insert_logits() const noexcept { return insert_; }
    const ad::Parameter& transition_logits() const noexcept { return trans_; }
    const ad::Parameter& entry_logits() const noexcept { return entry_; }
    const ad::Parameter& log_temperature() const noexcept { return log_temperature_; }

    double temperature() const { return std::exp(log_temperature_.values()[0]); }
    void set_temperature(double tau) {
        check_temperature(tau, "ProfileHmm::set_temperature", "tau");
        log_temperature_.values()[0] = std::log(tau);
    }

    /// The parameters an optimizer trains: match, insert (unless tied), transition logits, and the
    /// entry logits and log τ when learnable.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&match_};
        if (!cfg_.tie_insert_emissions) p.push_back(&insert_);
        p.push_back(&trans_);
        if (cfg_.learnable_entry) p.push_back(&entry_);
        if (cfg_.learnable_temperature) p.push_back(&log_temperature_);
        return p;
    }

    /// Tempered forward scores of a batch of integer-coded sequences (see the top of this header).
    /// T = Var records one node for the whole batch. O(Σ L·M).
    template <class T, exec::HostPolicy P = exec::Cpu>
    ProfileHmmScores<T> apply(ad::Binder<T>& bind, const SequenceBatch& seqs, const P& policy = {}) const {
        check_batch(seqs);
        check_parameters();
        const std::size_t N = seqs.size();
        std::vector<double> nul(N);
        for (std::size_t n = 0; n < N; ++n) {
            double s = detail::hmm_null_length(seqs.length(n));
            for (std::uint8_t c : seqs.sequence(n)) s += c < K_ ? log_bg_[c] : 0.0;
            nul[n] = s;
        }
        ProfileHmmScores<T> out;
        if (N == 0) return out;
        if constexpr (soft::detail::is_var_v<T>) {
            out.score = fused(bind, seqs, policy);
        } else {
            const detail::HmmTables<T> tabs = tables<T>(bind);
            const T tau = bound_temperature<T>(bind);
            out.score.assign(N, passive<T>(0.0));
            [[maybe_unused]] const int threads = exec::thread_count(policy);
            constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
            const auto nn = static_cast<std::ptrdiff_t>(N);
            DIFFBIO_OMP(parallel for schedule(dynamic, 1) num_threads(threads) if (parallel))
            for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                const auto n = static_cast<std::size_t>(ii);
                const detail::HmmEmissions<T> e{tabs.match_tab.data(), tabs.insert_tab.data(),
                                                seqs.codes.data() + seqs.offsets[n], M_};
                out.score[n] = detail::hmm_forward<T>(e, seqs.length(n), tabs.trans.data(), tabs.entry.data(), tau,
                                                      detail::HmmFlank(seqs.length(n)), nullptr, nullptr);
            }
        }
        for (std::size_t n = 0; n < N; ++n) out.null_log_likelihood.push_back(passive<T>(nul[n]));
        finish(out, temperature());
        return out;
    }

    /// The same for soft sequences (rows [Σ L × K] of non-negative weights); differentiable in the
    /// rows. With Var rows, bind the parameters with a Binder<Var> too.
    template <class T, class S, exec::HostPolicy P = exec::Cpu>
    ProfileHmmScores<promote_t<T, S>> apply(ad::Binder<T>& bind, const SoftSequences<S>& seqs,
                                            const P& policy = {}) const {
        using R = promote_t<T, S>;
        static_assert(!soft::detail::is_var_v<R> || soft::detail::is_var_v<T>,
                      "ProfileHmm::apply: Var sequences need the parameters bound with an ad::Binder<ad::Var>");
        const std::vector<std::size_t> off = check_soft(seqs);
        check_parameters();
        const std::size_t N = seqs.lengths.size();
        ProfileHmmScores<R> out;
        if (N == 0) return out;
        if constexpr (soft::detail::is_var_v<R>) {
            std::vector<ad::Var> y = fused(bind, seqs, policy);
            out.score.assign(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(N));
            out.null_log_likelihood.assign(y.begin() + static_cast<std::ptrdiff_t>(N), y.end());
        } else {
            using std::exp;
            const detail::HmmTables<R> tabs = tables<R>(bind);
            const R tau = bound_temperature<R>(bind);
            std::vector<R> pM(tabs.match_lp.size()), pI(tabs.insert_lp.size());
            for (std::size_t j = 0; j < pM.size(); ++j) pM[j] = exp(tabs.match_lp[j]);
            for (std::size_t j = 0; j < pI.size(); ++j) pI[j] = exp(tabs.insert_lp[j]);
            out.score.assign(N, passive<R>(0.0));
            out.null_log_likelihood.assign(N, passive<R>(0.0));
            [[maybe_unused]] const int threads = exec::thread_count(policy);
            constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
            const auto nn = static_cast<std::ptrdiff_t>(N);
            DIFFBIO_OMP(parallel num_threads(threads) if (parallel))
            {
                std::vector<R> em, ei;
                DIFFBIO_OMP(for schedule(dynamic, 1))
                for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                    const auto n = static_cast<std::size_t>(ii);
                    const std::size_t L = seqs.lengths[n];
                    em.resize(L * M_);
                    ei.resize(L * M_);
                    const R nul = detail::hmm_soft_emissions<R>(pM, pI, seqs.rows.data() + off[n] * K_, L, M_, K_, bg_,
                                                                em.data(), ei.data());
                    const detail::HmmEmissions<R> e{em.data(), ei.data(), nullptr, M_};
                    out.score[n] = detail::hmm_forward<R>(e, L, tabs.trans.data(), tabs.entry.data(), tau,
                                                          detail::HmmFlank(L), nullptr, nullptr);
                    out.null_log_likelihood[n] = nul + passive<R>(detail::hmm_null_length(L));
                }
            }
        }
        finish(out, temperature());
        return out;
    }

    /// Forward-backward of every sequence with the current parameters (see ProfileHmmPosterior).
    template <exec::HostPolicy P = exec::Cpu>
    std::vector<ProfileHmmPosterior> posteriors(const SequenceBatch& seqs, const P& policy = {}) const {
        check_batch(seqs);
        check_parameters();
        const std::size_t N = seqs.size(), M = M_, K = K_;
        const detail::HmmTables<double> tabs = plain_tables();
        const double tau = temperature();
        std::vector<ProfileHmmPosterior> out(N);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
        const auto nn = static_cast<std::ptrdiff_t>(N);
        DIFFBIO_OMP(parallel num_threads(threads) if (parallel))
        {
            detail::HmmWork work;
            std::vector<double> begin, end;
            DIFFBIO_OMP(for schedule(dynamic, 1))
            for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                const auto n = static_cast<std::size_t>(ii);
                const std::size_t L = seqs.length(n);
                const std::uint8_t* x = seqs.codes.data() + seqs.offsets[n];
                ProfileHmmPosterior& p = out[n];
                p.length = L;
                p.nodes = M;
                p.match.assign(L * M, 0.0);
                p.insert.assign(L * M, 0.0);
                p.del.assign(L * M, 0.0);
                p.transition_counts.assign((M - 1) * detail::hmm_nt, 0.0);
                p.entry_counts.assign(M, 0.0);
                begin.assign(L, 0.0);
                end.assign(L, 0.0);
                const detail::HmmEmissions<double> e{tabs.match_tab.data(), tabs.insert_tab.data(), x, M};
                const detail::HmmSinks sinks{{p.match.data(), p.insert.data(), nullptr, M},
                                             p.transition_counts.data(),
                                             p.entry_counts.data(),
                                             p.del.data(),
                                             begin.data(),
                                             end.data()};
                const auto [F, es] = detail::hmm_backward(e, L, tabs.trans.data(), tabs.entry.data(), tau,
                                                          detail::HmmFlank(L), 1.0, work, sinks);
                p.score = F;
                p.expected_score = es;
                p.n_flank.assign(L, 0.0);
                p.c_flank.assign(L, 0.0);
                for (std::size_t i = L - 1; i-- > 0;) p.n_flank[i] = p.n_flank[i + 1] + begin[i + 1];
                for (std::size_t i = 1; i < L; ++i) p.c_flank[i] = p.c_flank[i - 1] + end[i - 1];
                // Expected emission counts; an ambiguous residue is letter a with probability p(a).
                p.match_counts.assign(M * K, 0.0);
                p.insert_counts.assign((M - 1) * K, 0.0);
                for (std::size_t i = 0; i < L; ++i) {
                    for (std::size_t k = 0; k < M; ++k) {
                        add_counts(p.match_counts.data() + k * K, x[i], p.match[i * M + k],
                                   tabs.match_lp.data() + k * K);
                        if (k + 1 < M) {
                            add_counts(p.insert_counts.data() + k * K, x[i], p.insert[i * M + k],
                                       tabs.insert_lp.empty() ? nullptr : tabs.insert_lp.data() + k * K);
                        }
                    }
                }
            }
        }
        return out;
    }

    /// The best path of every sequence (the τ → 0 limit of the score) with the current parameters.
    template <exec::HostPolicy P = exec::Cpu>
    std::vector<HmmViterbi> viterbi(const SequenceBatch& seqs, const P& policy = {}) const {
        check_batch(seqs);
        check_parameters();
        const detail::HmmTables<double> tabs = plain_tables();
        const std::size_t N = seqs.size();
        std::vector<HmmViterbi> out(N);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
        const auto nn = static_cast<std::ptrdiff_t>(N);
        DIFFBIO_OMP(parallel for schedule(dynamic, 1) num_threads(threads) if (parallel))
        for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
            const auto n = static_cast<std::size_t>(ii);
            const detail::HmmEmissions<double> e{tabs.match_tab.data(), tabs.insert_tab.data(),
                                                 seqs.codes.data() + seqs.offsets[n], M_};
            out[n] = detail::hmm_viterbi(e, seqs.length(n), tabs.trans.data(), tabs.entry.data(),
                                         detail::HmmFlank(seqs.length(n)));
        }
        return out;
    }

private:
    static std::vector<double> normalised_background(const ProfileHmmConfig& cfg) {
        std::vector<double> bg = cfg.background.empty() ? default_background(cfg.alphabet) : cfg.background;
        double s = 0.0;
        for (double b : bg) s += b;
        for (double& b : bg) b /= s;
        return bg;
    }

    /// counts[a] += post for a letter, post·p(a) for "any" (p = e^{lp}; null lp: background).
    void add_counts(double* counts, std::uint8_t code, double post, const double* lp) const {
        if (post == 0.0) return;
        if (code < K_) {
            counts[code] += post;
            return;
        }
        for (std::size_t a = 0; a < K_; ++a) counts[a] += post * (lp != nullptr ? std::exp(lp[a]) : bg_[a]);
    }

    void check_batch(const SequenceBatch& s) const {
        if (s.offsets.empty() || s.offsets.front() != 0 || s.offsets.back() != s.codes.size()) {
            throw ShapeError("ProfileHmm: SequenceBatch offsets must start at 0 and end at codes.size() (" +
                             std::to_string(s.codes.size()) + ")");
        }
        for (std::size_t n = 0; n < s.size(); ++n) {
            if (s.offsets[n + 1] < s.offsets[n])
                throw ShapeError("ProfileHmm: SequenceBatch offsets decrease at sequence " + std::to_string(n));
            if (s.offsets[n + 1] == s.offsets[n]) {
                throw InvalidArgument("ProfileHmm: sequence " + std::to_string(n) +
                                      " is empty (a hit needs >= 1 residue)");
            }
            for (std::size_t i = s.offsets[n]; i < s.offsets[n + 1]; ++i) {
                if (s.codes[i] > K_) {
                    throw InvalidArgument("ProfileHmm: sequence " + std::to_string(n) + ", position " +
                                          std::to_string(i - s.offsets[n]) + ": code " + std::to_string(s.codes[i]) +
                                          " is outside the " + alphabet_name(cfg_.alphabet) + " alphabet (0.." +
                                          std::to_string(K_) + ", " + std::to_string(K_) + " = ambiguous)");
                }
            }
        }
    }

    /// Shapes and values of soft rows; returns the row offset of each sequence.
    template <class S>
    std::vector<std::size_t> check_soft(const SoftSequences<S>& s) const {
        std::vector<std::size_t> off(s.lengths.size() + 1, 0);
        for (std::size_t n = 0; n < s.lengths.size(); ++n) {
            if (s.lengths[n] == 0) {
                throw InvalidArgument("ProfileHmm: sequence " + std::to_string(n) +
                                      " is empty (a hit needs >= 1 residue)");
            }
            off[n + 1] = off[n] + s.lengths[n];
        }
        check_size(s.rows.size(), off.back() * K_, "ProfileHmm", "the soft sequence rows (Σ lengths × K)");
        for (std::size_t n = 0; n < s.lengths.size(); ++n) {
            for (std::size_t i = 0; i < s.lengths[n]; ++i) {
                double mass = 0.0;
                for (std::size_t a = 0; a < K_; ++a) {
                    const double v = primal(s.rows[(off[n] + i) * K_ + a]);
                    if (!std::isfinite(v) || v < 0.0) {
                        throw InvalidArgument("ProfileHmm: sequence " + std::to_string(n) + ", position " +
                                              std::to_string(i) + ": soft row entries must be finite and >= 0, got " +
                                              diffbio::detail::format_value(v));
                    }
                    mass += v;
                }
                if (!(mass > 0.0)) {
                    throw InvalidArgument("ProfileHmm: sequence " + std::to_string(n) + ", position " +
                                          std::to_string(i) + ": soft row is all zero");
                }
            }
        }
        return off;
    }

    void check_parameters() const {
        for (const ad::Parameter* p : {&match_, &insert_, &trans_, &entry_}) {
            const auto v = p->values();
            for (std::size_t j = 0; j < v.size(); ++j) {
                if (!std::isfinite(v[j])) {
                    throw InvalidArgument("ProfileHmm: parameter '" + p->name() + "' has a non-finite value at index " +
                                          std::to_string(j) + " (" + diffbio::detail::format_value(v[j]) + ")");
                }
            }
        }
        check_temperature(temperature(), "ProfileHmm", "temperature");
    }

    template <class R, class T>
    detail::HmmTables<R> tables(ad::Binder<T>& bind) const {
        const std::span<const T> m = bind(match_);
        const std::span<const T> ins = cfg_.tie_insert_emissions ? std::span<const T>() : bind(insert_);
        const std::span<const T> tr = bind(trans_);
        const std::span<const T> en = bind(entry_);
        return detail::hmm_tables<R, T>(m, ins, tr, en, M_, K_, log_bg_);
    }

    detail::HmmTables<double> plain_tables() const {
        return detail::hmm_tables<double, double>(
            match_.values(), cfg_.tie_insert_emissions ? std::span<const double>() : insert_.values(), trans_.values(),
            entry_.values(), M_, K_, log_bg_);
    }

    template <class R, class T>
    R bound_temperature(ad::Binder<T>& bind) const {
        using std::exp;
        R t = cfg_.learnable_temperature ? static_cast<R>(exp(bind(log_temperature_)[0])) : passive<R>(temperature());
        if constexpr (std::is_floating_point_v<R>) t = clamp_temperature(t); // as a float, 1e-50 would be 0
        return t;
    }

    template <class R>
    static void finish(ProfileHmmScores<R>& out, double tau) {
        check_results_finite(std::span<const R>(out.score), tau, "ProfileHmm::apply", "score of sequence");
        const double inv_ln2 = 1.0 / std::numbers::ln2;
        for (std::size_t n = 0; n < out.score.size(); ++n) {
            out.bits.push_back(out.score[n] * inv_ln2);
            out.log_likelihood.push_back(out.score[n] + out.null_log_likelihood[n]);
        }
    }

    /// The Var path: one node with outputs [F_τ of every sequence] (integer codes) or
    /// [F_τ..., null log-likelihood...] (soft rows).
    template <class Input, class P>
    std::vector<ad::Var> fused(ad::Binder<ad::Var>& bind, const Input& in, const P& policy) const {
        constexpr bool is_soft = !std::is_same_v<Input, SequenceBatch>;
        using S = typename detail::HmmRow<Input>::type;
        ad::Tape& tape = bind.tape();
        const std::size_t M = M_, K = K_;
        const bool tied = cfg_.tie_insert_emissions, learn_t = cfg_.learnable_temperature;
        const double fixed_tau = temperature();
        const std::span<const ad::Var> mv = bind(match_);
        const std::span<const ad::Var> iv = tied ? std::span<const ad::Var>() : bind(insert_);
        const std::span<const ad::Var> tv = bind(trans_), ev = bind(entry_);
        const std::span<const ad::Var> lt = learn_t ? bind(log_temperature_) : std::span<const ad::Var>();
        const std::vector<double> log_bg = log_bg_, bg = bg_;
        std::size_t N = 0;
        std::span<std::size_t> off;
        std::span<std::uint8_t> codes;
        std::span<const double> saved;
        std::span<const ad::Var> xin;
        if constexpr (is_soft) {
            N = in.lengths.size();
            off = tape.allocate<std::size_t>(N + 1);
            off[0] = 0;
            for (std::size_t n = 0; n < N; ++n) off[n + 1] = off[n] + in.lengths[n];
            saved = soft::detail::saved_values(tape, in.rows);
            xin = soft::detail::node_inputs(in.rows);
            static_assert(std::is_same_v<S, double> || std::is_same_v<S, float> || std::is_same_v<S, ad::Var>,
                          "ProfileHmm: soft rows on the tape must be double, float or Var");
        } else {
            N = in.size();
            off = tape.allocate<std::size_t>(N + 1);
            std::copy(in.offsets.begin(), in.offsets.end(), off.begin());
            codes = tape.allocate<std::uint8_t>(in.codes.size());
            std::copy(in.codes.begin(), in.codes.end(), codes.begin());
        }
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        constexpr bool parallel = std::is_same_v<P, exec::CpuParallel>;
        const std::size_t n_out = is_soft ? 2 * N : N;
        auto y = tape.record_node_uninitialised(
            {mv, iv, tv, ev, lt, xin}, n_out, [=](const ad::NodeGrad& g) {
                const double tau = learn_t ? std::exp(g.in_value(4)[0]) : fixed_tau;
                const auto tabs = detail::hmm_tables<double, double>(g.in_value(0), g.in_value(1), g.in_value(2),
                                                                     g.in_value(3), M, K, log_bg);
                std::span<const double> X;
                std::span<double> Xbar;
                std::vector<double> pM, pI;
                if constexpr (is_soft) {
                    X = soft::detail::input_values<S>(g, 5, saved);
                    if constexpr (soft::detail::is_var_v<S>) Xbar = g.in_adjoint(5);
                    for (double v : tabs.match_lp) pM.push_back(std::exp(v));
                    for (double v : tabs.insert_lp) pI.push_back(std::exp(v));
                }
                const auto ybar = g.out_adjoint();
                const std::size_t tabn = (K + 1) * M;
                std::vector<double> gtabM(tabn, 0.0), gtabI(tabn, 0.0), gtr((M - 1) * detail::hmm_nt, 0.0),
                    gen(M, 0.0), glpM(M * K, 0.0), glpI((M - 1) * K, 0.0);
                double gtau = 0.0;
                const auto nn = static_cast<std::ptrdiff_t>(N);
                DIFFBIO_OMP(parallel num_threads(threads) if (parallel))
                {
                    std::vector<double> tM(tabn, 0.0), tI(tabn, 0.0), ttr(gtr.size(), 0.0), ten(M, 0.0),
                        tlpM(glpM.size(), 0.0), tlpI(glpI.size(), 0.0);
                    double ttau = 0.0;
                    detail::HmmWork work;
                    std::vector<double> em, ei, gem, gei;
                    DIFFBIO_OMP(for schedule(dynamic, 1))
                    for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                        const auto n = static_cast<std::size_t>(ii);
                        const std::size_t L = off[n + 1] - off[n];
                        const double sbar = ybar[n];
                        const double nbar = is_soft ? ybar[N + n] : 0.0;
                        if (sbar == 0.0 && nbar == 0.0) continue;
                        if constexpr (!is_soft) {
                            const std::uint8_t* x = codes.data() + off[n];
                            const detail::HmmEmissions<double> e{tabs.match_tab.data(), tabs.insert_tab.data(), x, M};
                            const detail::HmmSinks sinks{{tM.data(), tI.data(), x, M}, ttr.data(), ten.data()};
                            const auto [F, es] = detail::hmm_backward(e, L, tabs.trans.data(), tabs.entry.data(), tau,
                                                                      detail::HmmFlank(L), sbar, work, sinks);
                            ttau += (sbar * F - es) / tau;
                        } else {
                            const double* x = X.data() + off[n] * K;
                            em.resize(L * M);
                            ei.resize(L * M);
                            gem.assign(L * M, 0.0);
                            gei.assign(L * M, 0.0);
                            detail::hmm_soft_emissions<double>(pM, pI, x, L, M, K, bg, em.data(), ei.data());
                            if (sbar != 0.0) {
                                const detail::HmmEmissions<double> e{em.data(), ei.data(), nullptr, M};
                                const detail::HmmSinks sinks{
                                    {gem.data(), gei.data(), nullptr, M}, ttr.data(), ten.data()};
                                const auto [F, es] = detail::hmm_backward(e, L, tabs.trans.data(), tabs.entry.data(),
                                                                          tau, detail::HmmFlank(L), sbar, work, sinks);
                                ttau += (sbar * F - es) / tau;
                            }
                            double* xb = Xbar.empty() ? nullptr : Xbar.data() + off[n] * K;
                            soft_chain(x, L, M, K, bg, pM, pI, gem.data(), gei.data(), nbar, tlpM.data(), tlpI.data(),
                                       xb);
                        }
                    }
                    DIFFBIO_OMP(critical)
                    {
                        for (std::size_t j = 0; j < tabn; ++j) {
                            gtabM[j] += tM[j];
                            gtabI[j] += tI[j];
                        }
                        for (std::size_t j = 0; j < gtr.size(); ++j) gtr[j] += ttr[j];
                        for (std::size_t j = 0; j < M; ++j) gen[j] += ten[j];
                        for (std::size_t j = 0; j < glpM.size(); ++j) glpM[j] += tlpM[j];
                        for (std::size_t j = 0; j < glpI.size(); ++j) glpI[j] += tlpI[j];
                        gtau += ttau;
                    }
                }
                // Code tables → log-probabilities (the "any" row K is constant).
                for (std::size_t k = 0; k < M; ++k) {
                    for (std::size_t a = 0; a < K; ++a) {
                        glpM[k * K + a] += gtabM[a * M + k];
                        if (k + 1 < M && !tied) glpI[k * K + a] += gtabI[a * M + k];
                    }
                }
                // Log-probabilities → logits.
                const auto gm = g.in_adjoint(0);
                for (std::size_t k = 0; k < M; ++k) {
                    detail::hmm_log_softmax_backward(tabs.match_lp.data() + k * K, glpM.data() + k * K, K,
                                                     gm.data() + k * K);
                }
                if (!tied) {
                    const auto gi = g.in_adjoint(1);
                    for (std::size_t k = 0; k + 1 < M; ++k) {
                        detail::hmm_log_softmax_backward(tabs.insert_lp.data() + k * K, glpI.data() + k * K, K,
                                                         gi.data() + k * K);
                    }
                }
                const auto gt = g.in_adjoint(2);
                for (std::size_t k = 0; k + 1 < M; ++k) {
                    const std::size_t r = k * detail::hmm_nt;
                    detail::hmm_log_softmax_backward(tabs.trans.data() + r, gtr.data() + r, 3, gt.data() + r);
                    detail::hmm_log_softmax_backward(tabs.trans.data() + r + 3, gtr.data() + r + 3, 2,
                                                     gt.data() + r + 3);
                    detail::hmm_log_softmax_backward(tabs.trans.data() + r + 5, gtr.data() + r + 5, 2,
                                                     gt.data() + r + 5);
                }
                detail::hmm_log_softmax_backward(tabs.entry.data(), gen.data(), M, g.in_adjoint(3).data());
                if (learn_t) g.in_adjoint(4)[0] += gtau * tau; // dτ/d log τ = τ
            });
        // Forward (nothing is recorded until the outputs are written).
        const auto values = [&](std::span<const ad::Var> v) {
            std::vector<double> out(v.size());
            for (std::size_t k = 0; k < v.size(); ++k) out[k] = tape.value(v[k]);
            return out;
        };
        const std::vector<double> mval = values(mv), ival = values(iv), tval = values(tv), eval = values(ev);
        const double tau = learn_t ? std::exp(tape.value(lt[0])) : fixed_tau;
        const auto tabs = detail::hmm_tables<double, double>(mval, ival, tval, eval, M, K, log_bg);
        std::span<const double> X;
        std::vector<double> pM, pI;
        if constexpr (is_soft) {
            X = soft::detail::forward_values(tape, in.rows, saved);
            for (double v : tabs.match_lp) pM.push_back(std::exp(v));
            for (double v : tabs.insert_lp) pI.push_back(std::exp(v));
        }
        const std::span<double> yv = tape.values_of(y);
        const auto nn = static_cast<std::ptrdiff_t>(N);
        DIFFBIO_OMP(parallel num_threads(threads) if (parallel))
        {
            std::vector<double> em, ei;
            DIFFBIO_OMP(for schedule(dynamic, 1))
            for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
                const auto n = static_cast<std::size_t>(ii);
                const std::size_t L = off[n + 1] - off[n];
                if constexpr (!is_soft) {
                    const detail::HmmEmissions<double> e{tabs.match_tab.data(), tabs.insert_tab.data(),
                                                         codes.data() + off[n], M};
                    yv[n] = detail::hmm_forward<double>(e, L, tabs.trans.data(), tabs.entry.data(), tau,
                                                        detail::HmmFlank(L), nullptr, nullptr);
                } else {
                    em.resize(L * M);
                    ei.resize(L * M);
                    const double nul = detail::hmm_soft_emissions<double>(pM, pI, X.data() + off[n] * K, L, M, K, bg,
                                                                          em.data(), ei.data());
                    const detail::HmmEmissions<double> e{em.data(), ei.data(), nullptr, M};
                    yv[n] = detail::hmm_forward<double>(e, L, tabs.trans.data(), tabs.entry.data(), tau,
                                                        detail::HmmFlank(L), nullptr, nullptr);
                    yv[N + n] = nul + detail::hmm_null_length(L);
                }
            }
        }
        return {y.begin(), y.end()};
    }

    /// Soft rows: emission adjoints gem/gei [L × M] and the null's adjoint nbar → log-probability
    /// adjoints and row adjoints (xbar, may be null). em = log Σ_a x_a p(a) − log Σ_a x_a bg_a.
    static void soft_chain(const double* X, std::size_t L, std::size_t M, std::size_t K, const std::vector<double>& bg,
                           const std::vector<double>& pM, const std::vector<double>& pI, const double* gem,
                           const double* gei, double nbar, double* glpM, double* glpI, double* xbar) {
        for (std::size_t i = 0; i < L; ++i) {
            const double* x = X + i * K;
            double sb = 0.0;
            for (std::size_t a = 0; a < K; ++a) sb += x[a] * bg[a];
            double core = 0.0; // Σ of the adjoints of every emission that subtracts log Σ x bg
            // Adjoint gk of the emission log Σ_a x_a p_a of state k (probabilities p, their logs' adjoints glp).
            auto emission = [&](double gk, const double* p, double* glp) {
                if (gk == 0.0) return;
                core += gk;
                double s = 0.0;
                for (std::size_t a = 0; a < K; ++a) s += x[a] * p[a];
                const double c = gk / s;
                for (std::size_t a = 0; a < K; ++a) {
                    glp[a] += c * x[a] * p[a];
                    if (xbar != nullptr) xbar[i * K + a] += c * p[a];
                }
            };
            for (std::size_t k = 0; k < M; ++k) emission(gem[i * M + k], pM.data() + k * K, glpM + k * K);
            for (std::size_t k = 0; k + 1 < M && !pI.empty(); ++k) {
                emission(gei[i * M + k], pI.data() + k * K, glpI + k * K);
            }
            if (xbar != nullptr) {
                const double c = (nbar - core) / sb;
                for (std::size_t a = 0; a < K; ++a) xbar[i * K + a] += c * bg[a];
            }
        }
    }

    ProfileHmmConfig cfg_;
    std::size_t M_;
    std::size_t K_;
    std::vector<double> bg_;
    std::vector<double> log_bg_;
    std::vector<std::size_t> columns_;
    ad::Parameter match_;
    ad::Parameter insert_;
    ad::Parameter trans_;
    ad::Parameter entry_;
    ad::Parameter log_temperature_;
};

inline ProfileHmm ProfileHmm::from_msa(const Msa& msa, ProfileHmmConfig cfg, const MsaProfileOptions& opt) {
    opt.validate();
    const std::size_t N = msa.size(), C = msa.columns();
    if (N == 0 || C == 0) throw InvalidArgument("ProfileHmm::from_msa: the alignment is empty");
    const std::size_t K = ops::alphabet_size(cfg.alphabet);
    // codes: −1 gap, 0..K−1 letter, K ambiguous
    std::vector<int> code(N * C);
    for (std::size_t n = 0; n < N; ++n) {
        if (msa.rows[n].size() != C) {
            throw ShapeError("ProfileHmm::from_msa: row " + std::to_string(n) + " ('" + msa.names.at(n) + "') has " +
                             std::to_string(msa.rows[n].size()) + " columns, expected " + std::to_string(C));
        }
        for (std::size_t c = 0; c < C; ++c) {
            const char ch = msa.rows[n][c];
            const int v = is_gap_character(ch) ? -1 : alphabet_code(cfg.alphabet, ch);
            if (v < 0 && !is_gap_character(ch)) {
                throw InvalidArgument("ProfileHmm::from_msa: letter '" + std::string(1, ch) + "' in column " +
                                      std::to_string(c) + " of sequence '" + msa.names.at(n) + "' is not in the " +
                                      alphabet_name(cfg.alphabet) + " alphabet");
            }
            code[n * C + c] = v;
        }
    }
    std::vector<std::size_t> cols;
    for (std::size_t c = 0; c < C; ++c) {
        std::size_t residues = 0;
        for (std::size_t n = 0; n < N; ++n) residues += code[n * C + c] >= 0 ? 1 : 0;
        if (static_cast<double>(residues) >= opt.symfrac * static_cast<double>(N)) cols.push_back(c);
    }
    if (cols.empty()) {
        throw InvalidArgument("ProfileHmm::from_msa: no column has residues in at least " +
                              diffbio::detail::format_value(100.0 * opt.symfrac) + "% of the sequences");
    }
    const std::size_t M = cols.size();
    cfg.length = M;
    ProfileHmm hmm(cfg);
    hmm.columns_ = cols;
    const std::vector<double>& bg = hmm.bg_;
    // Sequence weights: position-based over the match columns, scaled to the effective number.
    std::vector<double> w(N, 1.0);
    if (opt.position_weights) {
        std::fill(w.begin(), w.end(), 0.0);
        std::vector<double> count(K + 1);
        for (std::size_t c : cols) {
            std::fill(count.begin(), count.end(), 0.0);
            for (std::size_t n = 0; n < N; ++n) {
                if (code[n * C + c] >= 0) count[static_cast<std::size_t>(code[n * C + c])] += 1.0;
            }
            double types = 0.0;
            for (double v : count) types += v > 0.0 ? 1.0 : 0.0;
            for (std::size_t n = 0; n < N; ++n) {
                if (code[n * C + c] >= 0) w[n] += 1.0 / (types * count[static_cast<std::size_t>(code[n * C + c])]);
            }
        }
        double s = 0.0;
        for (double v : w) s += v;
        for (double& v : w) v = s > 0.0 ? v * static_cast<double>(N) / s : 1.0;
    }
    if (opt.effective_sequences > 0.0) {
        double s = 0.0;
        for (double v : w) s += v;
        for (double& v : w) v *= opt.effective_sequences / s;
    }
    // Counts along each sequence's path from its first to its last match-column residue.
    std::vector<double> cM(M * K, 0.0), cI((M - 1) * K, 0.0), cT((M - 1) * detail::hmm_nt, 0.0);
    const auto add_letter = [&](double* counts, int v, double weight) {
        if (v < static_cast<int>(K)) {
            counts[v] += weight;
        } else {
            for (std::size_t a = 0; a < K; ++a) counts[a] += weight * bg[a];
        }
    };
    struct Visit {
        HmmState s;
        std::size_t k;
        int v;
    };
    std::vector<Visit> path;
    for (std::size_t n = 0; n < N; ++n) {
        path.clear();
        std::size_t next = 0; // match columns passed
        for (std::size_t c = 0; c < C; ++c) {
            const int v = code[n * C + c];
            if (next < M && cols[next] == c) {
                path.push_back({v >= 0 ? HmmState::match : HmmState::del, next, v});
                ++next;
            } else if (v >= 0 && next >= 1 && next < M) {
                path.push_back({HmmState::insert, next - 1, v});
            }
        }
        std::size_t first = path.size(), last = 0;
        for (std::size_t j = 0; j < path.size(); ++j) {
            if (path[j].s != HmmState::match) continue;
            first = std::min(first, j);
            last = j;
        }
        if (first == path.size()) continue; // no residue in a match column
        for (std::size_t j = first; j <= last; ++j) {
            const Visit& p = path[j];
            if (p.s == HmmState::match) add_letter(cM.data() + p.k * K, p.v, w[n]);
            if (p.s == HmmState::insert) add_letter(cI.data() + p.k * K, p.v, w[n]);
            if (j == last) break;
            const Visit& q = path[j + 1];
            double* t = cT.data() + p.k * detail::hmm_nt;
            if (p.s == HmmState::match) {
                t[q.s == HmmState::match    ? detail::hmm_mm
                  : q.s == HmmState::insert ? detail::hmm_mi
                                            : detail::hmm_md] += w[n];
            } else if (p.s == HmmState::insert) {
                if (q.s != HmmState::del) t[q.s == HmmState::match ? detail::hmm_im : detail::hmm_ii] += w[n];
            } else if (q.s != HmmState::insert) {
                t[q.s == HmmState::match ? detail::hmm_dm : detail::hmm_dd] += w[n]; // Plan7 has no D→I, I→D
            }
        }
    }
    // Probabilities → logits (the logs themselves: their softmax is the distribution).
    const auto set_dist = [](const double* counts, const double* prior, std::size_t n, double* logits) {
        double s = 0.0;
        for (std::size_t j = 0; j < n; ++j) s += counts[j] + prior[j];
        for (std::size_t j = 0; j < n; ++j) logits[j] = std::log((counts[j] + prior[j]) / s);
    };
    std::vector<double> prior(K);
    for (std::size_t a = 0; a < K; ++a) prior[a] = opt.emission_pseudocount * bg[a];
    for (std::size_t k = 0; k < M; ++k)
        set_dist(cM.data() + k * K, prior.data(), K, hmm.match_.values().data() + k * K);
    if (!cfg.tie_insert_emissions) {
        for (std::size_t k = 0; k + 1 < M; ++k) {
            double* logits = hmm.insert_.values().data() + k * K;
            if (opt.insert_emissions_from_counts) {
                set_dist(cI.data() + k * K, prior.data(), K, logits);
            } else {
                for (std::size_t a = 0; a < K; ++a) logits[a] = hmm.log_bg_[a];
            }
        }
    }
    for (std::size_t k = 0; k + 1 < M; ++k) {
        const double* c = cT.data() + k * detail::hmm_nt;
        double* t = hmm.trans_.values().data() + k * detail::hmm_nt;
        set_dist(c, opt.match_transition_prior.data(), 3, t);
        set_dist(c + 3, opt.insert_transition_prior.data(), 2, t + 3);
        set_dist(c + 5, opt.delete_transition_prior.data(), 2, t + 5);
    }
    std::fill(hmm.entry_.values().begin(), hmm.entry_.values().end(), 0.0);
    return hmm;
}

} // namespace diffbio::ops
