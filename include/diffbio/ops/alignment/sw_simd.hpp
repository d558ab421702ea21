#pragma once
// Batched inter-pair SIMD kernels of the smooth Smith-Waterman / Needleman-Wunsch DP (internal).
// smith_waterman.hpp states the recursions and the API; sw_kernel.hpp holds the scalar per-pair
// kernels these are tested against (and which remain the reference for gradients).
//
// Lanes. A lane group is L pairs (L = sw_simd_lanes<F>: up to four hardware registers of F, so
// that independent dependency chains interleave and hide the latency of exp/log); lane l of every
// simd::pack is pair l. The group runs the DP over M × N cells, M = max m_l, N = max n_l (pairs
// sorted by size so that lanes have similar shapes). Cells outside a lane's own (m_l, n_l) get the
// cell score "none" (below): the DP only flows towards larger i and j, so they never feed the cells
// of the pair; their M values are ≈ none, so they add exactly 0 to the local end sum (e^(none/τ)
// underflows to 0) and never win a hard max. Global: lane l's score is captured at (m_l, n_l).
// Compat (whose H ≥ 0 everywhere) masks its max over H with i ≤ m_l, j ≤ n_l explicitly.
//
// "No path". The scalar kernels use −∞; here the sentinel none = −1e30 (float) / −1e300 (double)
// keeps every operation finite (no ∞ − ∞): sums of a few sentinels stay far from overflow, a soft
// max whose candidates include a sentinel gets exactly 0 weight from it (the exponent is below the
// flush bound of simd::exp), and a sentinel never beats a finite value, so hard results equal the
// scalar kernel's exactly. Values ≤ none/2 read back as −∞.
//
// Soft max with the maximum factored out: smax(c) = m + τ·log(1 + Σ_{k≠k*} e^{(c_k − m)/τ}) where
// the K − 1 non-maxima come from a min/max network (2 candidates: min; 3: min(a, b), min(max(a, b), c);
// 4: min(a, b), min(c, d), min(max(a, b), max(c, d))), so K − 1 exps and one log per soft max.
// Soft affine forwards compute at each cell the three soft maxes it feeds (sw_vaffine_out) with
// one shared normalisation, 3 exps (local 4, + 1 for the end sum) instead of 7 (8) per cell.
// Soft linear forwards without the backward's M plane (sw_vlinear_soft_rows) run two rows at once
// (two independent chains per lane group; double packs of ≥ 4 registers one row) and, local, fold
// M into one soft max of 4 (3 exps, 1 log) with the end sum taken per row against the row's
// maximum (+ 1 exp), instead of 4 exps and 2 logs.
//
// Few pairs. Score drivers run lane groups too empty for the inter-pair kernel pair by pair
// (sw_simd_worth_it): large pairs by the intra-pair anti-diagonal wavefront of sw_wavefront.hpp
// (one pair across the whole SIMD width; a lone pair above all), small ones by the scalar kernel.
//
// Memory. Score only: two rows of K packs per state ((N + 1)·K·L values) and one row of cell
// scores; the batch driver orients each pair so that N runs along its shorter sequence
// (O(min(m, n)) per lane). Backward: the full table, K·(M + 1)·(N + 1) packs per group, or with
// checkpointing every k-th row plus one block of k rows (see sw_simd_backward).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <diffbio/config.hpp>
#include <diffbio/core/huge_pages.hpp>
#include <diffbio/core/simd.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/sw_kernel.hpp>

namespace diffbio::ops::detail {

/// The "no path" sentinel of the SIMD kernels.
template <class F>
inline constexpr F sw_none = sizeof(F) == 4 ? F(-1e30f) : F(-1e300);

/// The range the sentinel serves. A soft max gives a sentinel candidate exactly 0 weight only while
/// (none − m)/τ stays below simd::exp's flush bound (float −87.3, double −708.3) for every maximum
/// m > none/2, i.e. τ < |none|/175 (float) or |none|/1417 (double): above it the masked cells would
/// count as paths (a float 4 × 4 pair at τ = 1e30 scored 35 times its value). And every real cell
/// value must stay above none/2: a sum of at most m + n + 2 scores, each at most 1e20 (float) or
/// 1e290 (double) in magnitude, does for any pair shorter than a billion.
template <class F>
inline constexpr double sw_simd_max_temperature = sizeof(F) == 4 ? 1e27 : 1e296;
template <class F>
inline constexpr double sw_simd_max_score = sizeof(F) == 4 ? 1e20 : 1e290;

/// Throws InvalidArgument when τ, or the largest magnitude of a substitution score or gap penalty,
/// is above what the F kernels (CPU SIMD, wavefront, CUDA) compute.
template <class F>
void check_sw_kernel_range(double tau, double max_abs_score, const char* where) {
    constexpr bool f32 = sizeof(F) == 4;
    const auto fmt = [](double v) { return diffbio::detail::format_value(v); };
    const std::string why = std::string(" (their 'no path' sentinel ") + fmt(static_cast<double>(sw_none<F>)) +
                            " must stay below every path and get weight 0 in every soft max)" +
                            (f32 ? "; compute in double" : "");
    if (tau > sw_simd_max_temperature<F>) {
        throw InvalidArgument(std::string(where) + ": temperature " + fmt(tau) + " is above the " +
                              (f32 ? "float" : "double") + " kernels' limit of " + fmt(sw_simd_max_temperature<F>) +
                              why);
    }
    if (max_abs_score > sw_simd_max_score<F>) {
        throw InvalidArgument(std::string(where) + ": a substitution score (profile weights included) or gap penalty of magnitude " +
                              fmt(max_abs_score) + " is above the " + (f32 ? "float" : "double") +
                              " kernels' limit of " + fmt(sw_simd_max_score<F>) + why);
    }
}

/// Pairs per lane group: four hardware registers of F (four independent dependency chains per
/// step hide the latency of exp/log), at most 32 (so that batches of 64 pairs still form two
/// groups for two threads).
template <class F>
inline constexpr int sw_simd_lanes = 4 * simd::native_lanes<F> < 32 ? 4 * simd::native_lanes<F> : 32;

/// Temperature constants of a soft max in packs.
template <class V>
struct SwSoft {
    V tau;
    V inv;
};

template <bool Hard, class V>
DIFFBIO_FORCE_INLINE V sw_vsmax2(const V& a, const V& b, const SwSoft<V>& t) {
    const V mx = simd::max(a, b);
    if constexpr (Hard) {
        return mx;
    } else {
        const V r = simd::exp_nonpos((simd::min(a, b) - mx) * t.inv);
        return mx + t.tau * simd::log_normal(r + typename V::value_type(1));
    }
}

template <bool Hard, class V>
DIFFBIO_FORCE_INLINE V sw_vsmax3(const V& a, const V& b, const V& c, const SwSoft<V>& t) {
    const V ab = simd::max(a, b);
    const V mx = simd::max(ab, c);
    if constexpr (Hard) {
        return mx;
    } else {
        const V r = simd::exp_nonpos((simd::min(a, b) - mx) * t.inv) + simd::exp_nonpos((simd::min(ab, c) - mx) * t.inv);
        return mx + t.tau * simd::log_normal(r + typename V::value_type(1));
    }
}

template <bool Hard, class V>
DIFFBIO_FORCE_INLINE V sw_vsmax4(const V& a, const V& b, const V& c, const V& d, const SwSoft<V>& t) {
    const V ab = simd::max(a, b), cd = simd::max(c, d);
    const V mx = simd::max(ab, cd);
    if constexpr (Hard) {
        return mx;
    } else {
        const V r = simd::exp_nonpos((simd::min(a, b) - mx) * t.inv) + simd::exp_nonpos((simd::min(c, d) - mx) * t.inv) +
                    simd::exp_nonpos((simd::min(ab, cd) - mx) * t.inv);
        return mx + t.tau * simd::log_normal(r + typename V::value_type(1));
    }
}

/// The three soft maxes an affine cell (M, X, Y) feeds ("outgoing" form: computed once at the
/// source cell instead of at each destination):
///   g1 = smax(M − o, X − e, Y − o)    = X of the cell below
///   g2 = smax(M − o, Y − e, X − o)    = Y of the cell to the right
///   g3 = smax([local: 0], M, X, Y)    M of the diagonal cell = s + g3
/// Fast (soft only, |o − e|/τ ≤ sw_affine_fast_range<F>): the three share one normalisation. With
/// m = max(M, X, Y), a_c = e^{(c − m)/τ} (≤ 1, the maximum's is 1), p = min(o, e),
/// k_o = e^{−(o − p)/τ}, k_e = e^{−(e − p)/τ} (one of them 1, the other ≥ e^{−range}):
///   g1 = m − p + τ·log(k_o·(a_M + a_Y) + k_e·a_X),  g2 = m − p + τ·log(k_o·(a_M + a_X) + k_e·a_Y),
///   g3 = m + τ·log(a_M + a_X + a_Y)   (local: max(m, 0) + τ·log of the same sum with e^{−|m|/τ}
///                                      for the 0 candidate, on the scale of the larger of m and 0)
/// so 3 exps (4 local) and 3 logs per cell instead of 7 (8) and 3. Every log argument is ≥ the
/// smaller k (≥ e^{−50} float, e^{−600} double): normal, and terms flushed below the smallest normal
/// are < 1e-21 of it. The exact (per-candidate, max-shifted) soft maxes otherwise, and hard max.
template <class F>
inline constexpr F sw_affine_fast_range = sizeof(F) == 4 ? F(50) : F(600);

template <class V>
struct SwAffineOut {
    using F = typename V::value_type;
    SwSoft<V> t;
    V o, e, p, ko, ke;
    SwAffineOut(F open, F extend, F tau)
        : t{V::broadcast(tau), V::broadcast(F(1) / tau)}, o(V::broadcast(open)), e(V::broadcast(extend)),
          p(V::broadcast(std::min(open, extend))), ko(V::broadcast(std::exp(-(open - std::min(open, extend)) / tau))),
          ke(V::broadcast(std::exp(-(extend - std::min(open, extend)) / tau))) {}
};

template <bool Hard, bool Local, bool Fast, class V>
DIFFBIO_FORCE_INLINE void sw_vaffine_out(const V& M, const V& X, const V& Y, const SwAffineOut<V>& c, V& g1, V& g2, V& g3) {
    using F = typename V::value_type;
    const V zero = V::broadcast(F(0));
    if constexpr (Hard || !Fast) {
        g1 = sw_vsmax3<Hard>(M - c.o, X - c.e, Y - c.o, c.t);
        g2 = sw_vsmax3<Hard>(M - c.o, Y - c.e, X - c.o, c.t);
        if constexpr (Local) {
            g3 = sw_vsmax4<Hard>(zero, M, X, Y, c.t);
        } else {
            g3 = sw_vsmax3<Hard>(M, X, Y, c.t);
        }
    } else {
        const V mx = simd::max(simd::max(M, X), Y);
        const V aM = simd::exp_nonpos((M - mx) * c.t.inv), aX = simd::exp_nonpos((X - mx) * c.t.inv),
                aY = simd::exp_nonpos((Y - mx) * c.t.inv);
        const V mp = mx - c.p, sMX = aM + aX;
        g1 = mp + c.t.tau * simd::log_normal(c.ko * (aM + aY) + c.ke * aX);
        g2 = mp + c.t.tau * simd::log_normal(c.ko * sMX + c.ke * aY);
        const V S = sMX + aY;
        if constexpr (Local) {
            const V z = simd::exp_nonpos(simd::neg_abs(mx) * c.t.inv);
            const V arg = simd::select(mx >= zero, S + z, z * S + F(1));
            g3 = simd::max(mx, zero) + c.t.tau * simd::log_normal(arg);
        } else {
            g3 = mx + c.t.tau * simd::log_normal(S);
        }
    }
}

/// Online τ·log(1 + Σ e^{v/τ}) per lane (the local end score, as SwEndSum).
template <bool Hard, class V>
struct SwVEnd {
    using F = typename V::value_type;
    V max = V::broadcast(F(0));
    V sum = V::broadcast(F(1));
    DIFFBIO_FORCE_INLINE void add(const V& v, const SwSoft<V>& t) {
        if constexpr (Hard) {
            max = simd::max(max, v);
        } else {
            const V d = v - max;
            const V ex = simd::exp_nonpos(simd::neg_abs(d) * t.inv);
            sum = simd::select(d <= V::broadcast(F(0)), sum + ex, sum * ex + F(1));
            max = simd::max(max, v);
        }
    }
    V value(const SwSoft<V>& t) const {
        if constexpr (Hard) {
            return max;
        } else {
            return max + t.tau * simd::log(sum);
        }
    }
};

/// The shape of one lane group: lane l runs a pair of m[l] × n[l] cells (unused lanes: 0 × 0).
template <int L>
struct SwGroupShape {
    std::size_t M = 0, N = 0;
    std::array<std::size_t, L> m{}, n{};
};

/// Row storage of a group's forward: the full table (K planes of (M+1)×(N+1) packs), two rolling
/// rows, checkpoints (every k-th row in `ck`, the others in two rolling rows) or one block of rows
/// first..first+k (the backward's recomputation).
template <class V>
struct SwVRows {
    enum class Mode : std::uint8_t { Full, Rolling, Checkpoint, Block };
    V* base = nullptr;
    std::size_t plane = 0;
    std::size_t width = 0;
    Mode mode = Mode::Full;
    V* ck = nullptr;
    std::size_t ck_plane = 0;
    std::size_t k = 1;
    std::size_t first = 0;
    /// Linear keeps M_ij (its second plane) where the backward reads it.
    bool keeps_m() const { return mode == Mode::Full || mode == Mode::Block; }
    V* row(std::size_t state, std::size_t i) const {
        switch (mode) {
        case Mode::Full: return base + state * plane + i * width;
        case Mode::Rolling: return base + state * plane + (i & 1U) * width;
        case Mode::Checkpoint:
            return i % k == 0 ? ck + state * ck_plane + (i / k) * width : base + state * plane + (i & 1U) * width;
        case Mode::Block: return base + state * plane + (i - first) * width;
        }
        return base;
    }
};

/// Per-lane facts the backward needs besides the table, gathered by the forward: local hard, the
/// first maximum of M in row-major order and its cell (bi, bj) (0, 0: the empty alignment wins);
/// compat, the max over the in-range H and how many cells tie with it.
/// Soft local linear: row_max[i] = max_j (s_ij + max(P_i−1,j−1, 0)), the bound on row i's M that
/// lets the backward skip rows whose end weights are all 0 (when not null: the forward writes it).
template <class V>
struct SwVExtra {
    V best, bi, bj, mx, ties;
    V* row_max = nullptr;
};

/// The rows a forward pass computes: lo = 0 from the borders (with the scores); lo > 0 rows lo..hi
/// from row lo − 1 already in storage (a recomputation: no scores).
struct SwRowRange {
    std::size_t lo = 0;
    std::size_t hi = static_cast<std::size_t>(-1);
};

/// Scalar view of a lane value: the sentinel reads back as −∞.
template <class F>
inline F sw_unnone(F v) {
    return v <= sw_none<F> / F(2) ? sw_ninf<F> : v;
}

/// The local hard end cell, tracked in row-major order (strict >: the first maximum wins).
template <class V>
DIFFBIO_FORCE_INLINE void sw_vtrack_best(SwVExtra<V>& ex, const V& Mv, const V& iv, std::size_t j) {
    using F = typename V::value_type;
    const auto up = Mv > ex.best;
    ex.best = simd::select(up, Mv, ex.best);
    ex.bi = simd::select(up, iv, ex.bi);
    ex.bj = simd::select(up, V::broadcast(static_cast<F>(j)), ex.bj);
}

// ---- forward kernels of one group ------------------------------------------------------------
// fill(i, buf) writes the cell scores of row i (0-based) of every lane: buf[j·L + l] for j < N.
// out (L scores) is null in a recomputation; ex (null: not needed) receives SwVExtra.

/// One soft local linear cell, P = smax(s, s + pd, pu − e, pl − e) with M = smax(s, s + pd) folded
/// in (see sw_vlinear_soft_rows); also gives mM = s + max(pd, 0) and aM = 1 + e^{−|pd|/τ}
/// (M = mM + τ·log aM). −|x − y| is taken as min(x, y) − max(x, y) (the same rounding, no abs).
template <class V>
DIFFBIO_FORCE_INLINE V sw_vlinear_local_cell(const V& s, const V& pd, const V& pu, const V& pl, const V& e, const SwSoft<V>& t,
                               V& mM, V& aM) {
    using F = typename V::value_type;
    const V zero = V::broadcast(F(0)), one = V::broadcast(F(1));
    mM = s + simd::max(pd, zero);
    aM = one + simd::exp_nonpos(simd::neg_abs(pd) * t.inv);
    const V hi = simd::max(pu, pl);
    const V mG = hi - e, mx = simd::max(mM, mG); // max(pu − e, pl − e)
    const V aG = one + simd::exp_nonpos((simd::min(pu, pl) - hi) * t.inv);
    const V q = simd::exp_nonpos((simd::min(mM, mG) - mx) * t.inv);
    const V sum = simd::select(mM >= mG, aM + q * aG, q * aM + aG);
    return mx + t.tau * simd::log_normal(sum);
}

/// Soft linear rows first..last without the M plane (score-only rolling rows, checkpoints), rows
/// i and i + 1 interleaved: cell (i + 1, j − 1) needs only (i, j − 2), (i, j − 1) and (i + 1, j − 2),
/// all done when (i, j) is, so the two rows' soft-max chains along j are independent and hide
/// each other's exp/log latency. Row i + 1 may share storage with row i − 1 (rolling rows): its
/// column j − 1 is written after row i has read column j − 1 of row i − 1 for the last time.
/// Local: P = smax(s, s + P↖, P↑ − e, P← − e) (M = smax(s, s + P↖) folded in: 3 exps, 1 log) as
/// mM = s + max(P↖, 0), rM = e^{−|P↖|/τ} (M = mM + τ·log(1 + rM)), mG = max(P↑, P←) − e,
/// rG = e^{−|P↑ − P←|/τ}, q = e^{−|mM − mG|/τ}: P = max(mM, mG) + τ·log((1 + rM) + q·(1 + rG)) (or
/// q·(1 + rM) + (1 + rG) where mG wins). The local end sum takes e^{(M − R)/τ} = e^{(mM − R)/τ}·(1 + rM)
/// with R = the row's max of mM, in a second sweep over the row (no dependency chain), then merges
/// the row into the running (max, sum) once per row.
template <bool Local, class F, int L, class Fill>
void sw_vlinear_soft_rows(const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill, F* sbuf,
                          const SwVRows<simd::pack<F, L>>& rows, F* out, std::size_t first, std::size_t last,
                          simd::pack<F, L>* row_max = nullptr) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V e = V::broadcast(p.extend), zero = V::broadcast(F(0)), one = V::broadcast(F(1));
    const std::size_t N = g.N;
    const bool scoring = out != nullptr;
    F* sbuf2 = sbuf + std::max<std::size_t>(N, 1) * L;
    std::vector<V> ebuf; // local scoring: per row slot, mM and 1 + rM of every column
    V* eM[2] = {nullptr, nullptr};
    V* eA[2] = {nullptr, nullptr};
    if (Local && scoring) {
        ebuf.resize(4 * (N + 1));
        for (int r = 0; r < 2; ++r) eM[r] = ebuf.data() + r * (N + 1), eA[r] = ebuf.data() + (2 + r) * (N + 1);
    }
    V rmax[2];
    V gmax = zero, gsum = one; // the running end sum: τ·log(1 + Σ e^{M/τ}) = gmax + τ·log(gsum)
    // one cell: P from s, P↖ (pd), P↑ (pu), P← (pl); local scoring also records mM, 1 + rM in slot r
    auto cell = [&](const V& s, const V& pd, const V& pu, const V& pl, int r, std::size_t j) DIFFBIO_INLINE_LAMBDA {
        if constexpr (Local) {
            V mM, aM;
            const V c = sw_vlinear_local_cell(s, pd, pu, pl, e, t, mM, aM);
            if (scoring) {
                eM[r][j] = mM;
                eA[r][j] = aM;
                rmax[r] = simd::max(rmax[r], mM);
            }
            return c;
        } else {
            (void)r;
            (void)j;
            return sw_vsmax3<false>(s + pd, pu - e, pl - e, t);
        }
    };
    // the end sum of row slot r, row i (local scoring)
    auto end_row = [&](int r, std::size_t i) {
        if constexpr (Local) {
            if (!scoring) return;
            const V R = rmax[r];
            if (row_max != nullptr) row_max[i] = R;
            V acc = zero;
            for (std::size_t j = 1; j <= N; ++j) acc += simd::exp_nonpos((eM[r][j] - R) * t.inv) * eA[r][j];
            const V d = R - gmax;
            const V ex = simd::exp_nonpos(simd::neg_abs(d) * t.inv);
            gsum = simd::select(d <= zero, gsum + acc * ex, gsum * ex + acc);
            gmax = simd::max(gmax, R);
        } else {
            (void)r;
            (void)i;
        }
    };
    auto capture = [&](std::size_t i, const V* P) {
        if constexpr (!Local) {
            if (!scoring) return;
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i) out[l] = P[g.n[l]][l];
            }
        } else {
            (void)i;
            (void)P;
        }
    };
    const V none = V::broadcast(sw_none<F>);
    std::size_t i = first;
    // double packs of four or more registers run one row at a time: their own registers already
    // give enough independent chains, and two rows' worth spilled (AVX-512, 32 lanes: forward
    // 309 -> 326-333 M cells/s; AVX2, 16 lanes: +1-4%)
    constexpr bool two_rows = !(sizeof(F) == 8 && V::G >= 4);
    for (; two_rows && i + 1 <= last; i += 2) { // rows a = i, b = i + 1
        fill(i - 1, sbuf);
        fill(i, sbuf2);
        V* Pa = rows.row(0, i);
        V* Pb = rows.row(0, i + 1);
        const V* Pu = rows.row(0, i - 1);
        rmax[0] = rmax[1] = none;
        const V pu0 = Pu[0];
        V al = pu0 - e, ad = pu0;
        Pa[0] = al;
        V bl = al - e, bd = al;
        Pb[0] = bl; // may overwrite Pu[0]: read above
        if (N >= 1) {
            const V pu = Pu[1];
            const V ac = cell(V::load(sbuf), ad, pu, al, 0, 1);
            Pa[1] = ac;
            ad = pu;
            al = ac;
        }
        for (std::size_t j = 2; j <= N; ++j) {
            const V pu = Pu[j], apu = al;
            const V ac = cell(V::load(sbuf + (j - 1) * L), ad, pu, al, 0, j);
            const V bc = cell(V::load(sbuf2 + (j - 2) * L), bd, apu, bl, 1, j - 1);
            Pa[j] = ac;
            Pb[j - 1] = bc;
            ad = pu;
            al = ac;
            bd = apu;
            bl = bc;
        }
        if (N >= 1) Pb[N] = cell(V::load(sbuf2 + (N - 1) * L), bd, al, bl, 1, N);
        end_row(0, i);
        end_row(1, i + 1);
        capture(i, Pa);
        capture(i + 1, Pb);
    }
    for (; i <= last; ++i) { // one row alone: the last of an odd count, or every row (above)
        fill(i - 1, sbuf);
        V* P = rows.row(0, i);
        const V* Pu = rows.row(0, i - 1);
        rmax[0] = none;
        V pl = Pu[0] - e, pd = Pu[0];
        P[0] = pl;
        for (std::size_t j = 1; j <= N; ++j) {
            const V pu = Pu[j];
            const V c = cell(V::load(sbuf + (j - 1) * L), pd, pu, pl, 0, j);
            P[j] = c;
            pl = c;
            pd = pu;
        }
        end_row(0, i);
        capture(i, P);
    }
    if constexpr (Local) {
        if (scoring) {
            const V v = gmax + t.tau * simd::log(gsum);
            for (int l = 0; l < L; ++l) out[l] = v[l];
        }
    }
}

template <bool Hard, bool Local, class F, int L, class Fill>
void sw_vforward_linear(const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill, F* sbuf,
                        const SwVRows<simd::pack<F, L>>& rows, F* out, SwRowRange rr, SwVExtra<simd::pack<F, L>>* ex) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V e = V::broadcast(p.extend), none = V::broadcast(sw_none<F>);
    const std::size_t N = g.N, M = std::min(g.M, rr.hi);
    const bool keep_m = Hard && rows.keeps_m(), scoring = out != nullptr, track = Local && Hard && ex != nullptr;
    if (rr.lo == 0) {
        V* P0 = rows.row(0, 0);
        P0[0] = Local ? none : V::broadcast(F(0));
        for (std::size_t j = 1; j <= N; ++j) P0[j] = P0[j - 1] - e;
        if (keep_m) {
            V* M0 = rows.row(1, 0);
            for (std::size_t j = 0; j <= N; ++j) M0[j] = none;
        }
        if constexpr (!Local) {
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == 0 && scoring) out[l] = P0[g.n[l]][l];
            }
        }
    }
    if (track) ex->best = ex->bi = ex->bj = V::broadcast(F(0));
    if constexpr (!Hard) { // soft: no M plane, two rows at a time
        sw_vlinear_soft_rows<Local, F, L>(p, g, fill, sbuf, rows, out, std::max<std::size_t>(rr.lo, 1), M,
                                          ex != nullptr ? ex->row_max : nullptr);
        return;
    }
    SwVEnd<Hard, V> end;
    for (std::size_t i = std::max<std::size_t>(rr.lo, 1); i <= M; ++i) {
        fill(i - 1, sbuf);
        V* P = rows.row(0, i);
        const V* Pu = rows.row(0, i - 1);
        V* Ms = keep_m ? rows.row(1, i) : nullptr; // the backward's tables keep M
        P[0] = Pu[0] - e;
        if (keep_m) Ms[0] = none;
        V pl = P[0], pd = Pu[0];
        const V iv = V::broadcast(static_cast<F>(i));
        for (std::size_t j = 1; j <= N; ++j) {
            const V s = V::load(sbuf + (j - 1) * L);
            const V pu = Pu[j];
            const V Mv = Local ? sw_vsmax2<Hard>(s, s + pd, t) : s + pd;
            const V c = sw_vsmax3<Hard>(Mv, pu - e, pl - e, t);
            if constexpr (Local) {
                if (scoring) end.add(Mv, t);
            }
            if (track) sw_vtrack_best(*ex, Mv, iv, j);
            if (keep_m) Ms[j] = Mv;
            P[j] = c;
            pl = c;
            pd = pu;
        }
        if constexpr (!Local) {
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i && scoring) out[l] = P[g.n[l]][l];
            }
        }
    }
    if constexpr (Local) {
        if (scoring) {
            const V v = end.value(t);
            for (int l = 0; l < L; ++l) out[l] = v[l];
        }
    }
}

/// Soft affine forward in the outgoing form (sw_vaffine_out, Fast): each cell's (M, X, Y) gives
/// g1 (X of the cell below), g2 (Y of the next cell, carried) and g3 (M of the diagonal cell minus
/// its score) with shared exps; one row of g1 and g3, updated in place. M, X, Y are still stored
/// where the rows are kept (the backward's table, checkpoints, blocks); score-only (rolling) rows
/// skip them, and the global score is g3 = smax(M, X, Y) at (m_l, n_l).
template <bool Local, class F, int L, class Fill>
void sw_vforward_affine_out(const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill, F* sbuf,
                            const SwVRows<simd::pack<F, L>>& rows, F* out, SwRowRange rr) {
    using V = simd::pack<F, L>;
    const SwAffineOut<V> c(p.open, p.extend, p.tau);
    const V none = V::broadcast(sw_none<F>), zero = V::broadcast(F(0));
    const std::size_t N = g.N, M = std::min(g.M, rr.hi);
    const bool scoring = out != nullptr, store = rows.mode != SwVRows<V>::Mode::Rolling;
    std::vector<V> gbuf; // resize, not the size constructor (nvcc rejects initializer_list<pack>)
    gbuf.resize(2 * (N + 1));
    V* g1 = gbuf.data();
    V* g3 = g1 + (N + 1);
    auto capture = [&](std::size_t i) {
        if constexpr (!Local) {
            if (!scoring) return;
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i) out[l] = sw_unnone(g3[g.n[l]][l]);
            }
        } else {
            (void)i;
        }
    };
    std::size_t first = 0;
    if (rr.lo == 0) { // row 0: M_00 (0 global, none local), Y_0j = g2 of (0, j − 1), the rest none
        V* M0 = rows.row(0, 0);
        V* X0 = rows.row(1, 0);
        V* Y0 = rows.row(2, 0);
        V Mv = Local ? none : zero, Yv = none, g2 = none;
        for (std::size_t j = 0; j <= N; ++j) {
            if (j > 0) Mv = none, Yv = g2;
            if (store) M0[j] = Mv, X0[j] = none, Y0[j] = Yv;
            sw_vaffine_out<false, Local, true>(Mv, none, Yv, c, g1[j], g2, g3[j]);
        }
        capture(0);
        first = 1;
    } else { // a recomputation from the stored row lo − 1
        first = rr.lo;
        const V* Mu = rows.row(0, rr.lo - 1);
        const V* Xu = rows.row(1, rr.lo - 1);
        const V* Yu = rows.row(2, rr.lo - 1);
        V g2;
        for (std::size_t j = 0; j <= N; ++j) {
            sw_vaffine_out<false, Local, true>(Mu[j], Xu[j], Yu[j], c, g1[j], g2, g3[j]);
        }
    }
    SwVEnd<false, V> end;
    for (std::size_t i = first; i <= M; ++i) {
        fill(i - 1, sbuf);
        V* Mr = rows.row(0, i);
        V* Xr = rows.row(1, i);
        V* Yr = rows.row(2, i);
        // column 0: M = Y = none, X = g1 of (i − 1, 0)
        V g2, g3d = g3[0];
        const V x0 = g1[0];
        if (store) Mr[0] = none, Xr[0] = x0, Yr[0] = none;
        sw_vaffine_out<false, Local, true>(none, x0, none, c, g1[0], g2, g3[0]);
        for (std::size_t j = 1; j <= N; ++j) {
            const V s = V::load(sbuf + (j - 1) * L);
            const V Mv = s + g3d, Xv = g1[j], Yv = g2;
            g3d = g3[j];
            if constexpr (Local) {
                if (scoring) end.add(Mv, c.t);
            }
            if (store) Mr[j] = Mv, Xr[j] = Xv, Yr[j] = Yv;
            sw_vaffine_out<false, Local, true>(Mv, Xv, Yv, c, g1[j], g2, g3[j]);
        }
        capture(i);
    }
    if constexpr (Local) {
        if (scoring) {
            const V v = end.value(c.t);
            for (int l = 0; l < L; ++l) out[l] = v[l];
        }
    }
}

template <bool Hard, bool Local, class F, int L, class Fill>
void sw_vforward_affine(const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill, F* sbuf,
                        const SwVRows<simd::pack<F, L>>& rows, F* out, SwRowRange rr, SwVExtra<simd::pack<F, L>>* ex) {
    using V = simd::pack<F, L>;
    if constexpr (!Hard) { // soft: the outgoing form with shared exps where the penalties allow it
        if (std::fabs(p.open - p.extend) / p.tau <= sw_affine_fast_range<F>) {
            sw_vforward_affine_out<Local>(p, g, fill, sbuf, rows, out, rr);
            return;
        }
    }
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V o = V::broadcast(p.open), e = V::broadcast(p.extend), none = V::broadcast(sw_none<F>),
            zero = V::broadcast(F(0));
    const std::size_t N = g.N, M = std::min(g.M, rr.hi);
    const bool scoring = out != nullptr, track = Local && Hard && ex != nullptr;
    auto capture = [&](std::size_t i) {
        if constexpr (!Local) {
            if (!scoring) return;
            const V* Mr = rows.row(0, i);
            const V* Xr = rows.row(1, i);
            const V* Yr = rows.row(2, i);
            for (int l = 0; l < L; ++l) {
                if (g.m[l] != i) continue;
                const std::size_t j = g.n[l];
                out[l] = sw_smax<F, 3>({sw_unnone(Mr[j][l]), sw_unnone(Xr[j][l]), sw_unnone(Yr[j][l])}, p.tau,
                                       F(1) / p.tau, Hard);
            }
        } else {
            (void)i;
        }
    };
    if (rr.lo == 0) {
        V* M0 = rows.row(0, 0);
        V* X0 = rows.row(1, 0);
        V* Y0 = rows.row(2, 0);
        M0[0] = Local ? none : zero;
        X0[0] = Y0[0] = none;
        for (std::size_t j = 1; j <= N; ++j) {
            M0[j] = X0[j] = none;
            Y0[j] = sw_vsmax3<Hard>(M0[j - 1] - o, Y0[j - 1] - e, X0[j - 1] - o, t);
        }
        capture(0);
    }
    if (track) ex->best = ex->bi = ex->bj = zero;
    SwVEnd<Hard, V> end;
    for (std::size_t i = std::max<std::size_t>(rr.lo, 1); i <= M; ++i) {
        fill(i - 1, sbuf);
        V* Mr = rows.row(0, i);
        V* Xr = rows.row(1, i);
        V* Yr = rows.row(2, i);
        const V* Mu = rows.row(0, i - 1);
        const V* Xu = rows.row(1, i - 1);
        const V* Yu = rows.row(2, i - 1);
        Mr[0] = Yr[0] = none;
        Xr[0] = sw_vsmax3<Hard>(Mu[0] - o, Xu[0] - e, Yu[0] - o, t);
        V ml = Mr[0], xl = Xr[0], yl = Yr[0], md = Mu[0], xd = Xu[0], yd = Yu[0];
        const V iv = V::broadcast(static_cast<F>(i));
        for (std::size_t j = 1; j <= N; ++j) {
            const V s = V::load(sbuf + (j - 1) * L);
            const V mu = Mu[j], xu = Xu[j], yu = Yu[j];
            const V Mv = s + (Local ? sw_vsmax4<Hard>(zero, md, xd, yd, t) : sw_vsmax3<Hard>(md, xd, yd, t));
            const V Xv = sw_vsmax3<Hard>(mu - o, xu - e, yu - o, t);
            const V Yv = sw_vsmax3<Hard>(ml - o, yl - e, xl - o, t);
            if constexpr (Local) {
                if (scoring) end.add(Mv, t);
            }
            if (track) sw_vtrack_best(*ex, Mv, iv, j);
            Mr[j] = Mv;
            Xr[j] = Xv;
            Yr[j] = Yv;
            ml = Mv, xl = Xv, yl = Yv;
            md = mu, xd = xu, yd = yu;
        }
        capture(i);
    }
    if constexpr (Local) {
        if (scoring) {
            const V v = end.value(t);
            for (int l = 0; l < L; ++l) out[l] = v[l];
        }
    }
}

template <bool Hard, class F, int L, class Fill>
void sw_vforward_compat(const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill, F* sbuf,
                        const SwVRows<simd::pack<F, L>>& rows, F* out, SwRowRange rr, SwVExtra<simd::pack<F, L>>* ex) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V gap = V::broadcast(p.open + p.extend), zero = V::broadcast(F(0)), one = V::broadcast(F(1));
    const std::size_t N = g.N, M = std::min(g.M, rr.hi);
    const bool scoring = out != nullptr;
    V mrow, ncol; // lane bounds as values (exact: lengths < 2^24)
    for (int l = 0; l < L; ++l) mrow.set(l, static_cast<F>(g.m[l])), ncol.set(l, static_cast<F>(g.n[l]));
    if (rr.lo == 0) {
        V* H0 = rows.row(0, 0);
        for (std::size_t j = 0; j <= N; ++j) H0[j] = zero;
    }
    V mx = zero, ties = zero; // DiffBio's hard max over H and how many cells reach it
    for (std::size_t i = std::max<std::size_t>(rr.lo, 1); i <= M; ++i) {
        fill(i - 1, sbuf);
        V* H = rows.row(0, i);
        const V* Hu = rows.row(0, i - 1);
        H[0] = zero;
        const auto row_in = V::broadcast(static_cast<F>(i)) <= mrow;
        V hl = zero, hd = Hu[0];
        for (std::size_t j = 1; j <= N; ++j) {
            const V s = V::load(sbuf + (j - 1) * L);
            const V hu = Hu[j];
            const V h = sw_vsmax4<Hard>(zero, hd + s, hu - gap, hl - gap, t);
            if (scoring) {
                const auto in = row_in & (V::broadcast(static_cast<F>(j)) <= ncol);
                const auto gt = in & (h > mx);
                ties = simd::select(gt, one, simd::select(in & (h == mx), ties + one, ties));
                mx = simd::select(gt, h, mx);
            }
            H[j] = h;
            hl = h;
            hd = hu;
        }
    }
    if (!scoring) return;
    for (int l = 0; l < L; ++l) out[l] = sw_smax<F, 2>({F(0), mx[l]}, p.tau, F(1) / p.tau, Hard);
    if (ex != nullptr) ex->mx = mx, ex->ties = ties;
}

/// Planes of the backward's table of a group: linear P and M, affine M, X, Y, compat H.
inline std::size_t sw_vtable_states(const SwModel& md) {
    if (md.kind == SwKind::Linear) return md.hard ? 2 : 1; // soft: the backward recomputes M from P↖
    return md.states();
}

/// Rolling rows for a score-only forward (in buf).
template <class V>
SwVRows<V> sw_vrows_rolling(const SwModel& md, std::size_t N, std::vector<V>& buf) {
    const std::size_t w = N + 1;
    buf.resize(sw_vtable_states(md) * 2 * w);
    SwVRows<V> r;
    r.base = buf.data();
    r.plane = 2 * w;
    r.width = w;
    r.mode = SwVRows<V>::Mode::Rolling;
    return r;
}

/// Calls fn(std::bool_constant<hard>{}, std::bool_constant<local>{}) for the model's run-time
/// flags: the kernels take them as template parameters so their inner loops carry no branches.
template <class Fn>
void sw_with_model_flags(const SwModel& md, Fn&& fn) {
    if (md.hard) {
        md.local ? fn(std::true_type{}, std::true_type{}) : fn(std::true_type{}, std::false_type{});
    } else {
        md.local ? fn(std::false_type{}, std::true_type{}) : fn(std::false_type{}, std::false_type{});
    }
}

/// Forward DP of one lane group over `rows`: out[l] = lane l's score (see the kernels above).
template <class F, int L, class Fill>
void sw_vforward(const SwModel& md, const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill,
                 const SwVRows<simd::pack<F, L>>& r, std::vector<F>& sbuf, F* out, SwRowRange rr = {},
                 SwVExtra<simd::pack<F, L>>* ex = nullptr) {
    sbuf.resize((md.kind == SwKind::Linear ? 2 : 1) * std::max<std::size_t>(g.N, 1) * L); // linear: two rows
    F* sb = sbuf.data();
    switch (md.kind) {
    case SwKind::Linear:
        sw_with_model_flags(md, [&](auto hard, auto local) {
            sw_vforward_linear<decltype(hard)::value, decltype(local)::value>(p, g, fill, sb, r, out, rr, ex);
        });
        break;
    case SwKind::Affine:
        sw_with_model_flags(md, [&](auto hard, auto local) {
            sw_vforward_affine<decltype(hard)::value, decltype(local)::value>(p, g, fill, sb, r, out, rr, ex);
        });
        break;
    case SwKind::Compat:
        md.hard ? sw_vforward_compat<true>(p, g, fill, sb, r, out, rr, ex)
                : sw_vforward_compat<false>(p, g, fill, sb, r, out, rr, ex);
        break;
    }
}

// ---- backward of one group ---------------------------------------------------------------------
// The reverse sweep of sw_kernel.hpp's sw_backward over the full table of a group, every lane at
// once: each state's softmax weights are recomputed from the stored candidates, max-shifted
// (w_k = e^{(c_k − m)/τ} / Σ e^{(c_l − m)/τ}, the maximum's own term exactly 1, so stored-value
// rounding does not scale the weights), its τ-derivative −Σ w log w = log z − Σ w_k t_k. Hard: one-hot
// at the first maximum (the scalar kernels' tie rule). Adjoints live in two rolling rows per state.
// The per-lane result adjoints fbar[l] seed the roots (local: the end soft max over the in-range
// cells; global: cell (m_l, n_l)); cells outside a lane's shape get exactly zero adjoint.

/// ∂F/∂(open, extend, τ) per lane, summed over the cells of a group.
template <class V>
struct SwVGrads {
    using F = typename V::value_type;
    V open = V::broadcast(F(0));
    V extend = V::broadcast(F(0));
    V tau = V::broadcast(F(0));
    bool dtau = true; ///< false: tau stays 0 (SwModel::dtau)
};

/// Soft weights of K ∈ {2, 3, 4} candidates by a tournament: pairs (c0, c1), (c2, c3) and then
/// their winners meet, so each match's loser gets e^{(loser − m)/τ}, m = the overall maximum, and
/// the maximum gets exactly 1 (K − 1 exps instead of K). u[k] unnormalised (≤ 1), returns
/// Σ u_k·(c_k − m)/τ (the maximum's term is 0) and sets z = Σ u_k.
template <int K, class V>
DIFFBIO_FORCE_INLINE V sw_vtournament(const std::array<V, K>& c, const SwSoft<V>& t, std::array<V, K>& u, V& z) {
    static_assert(K >= 2 && K <= 4);
    using F = typename V::value_type;
    const V one = V::broadcast(F(1));
    // a match: the winner's value, the loser's scaled gap x ≤ 0 and its e^x
    auto match = [&](const V& a, const V& b, const V& m, V& x) DIFFBIO_INLINE_LAMBDA {
        x = (simd::min(a, b) - m) * t.inv;
        return simd::exp_nonpos(x);
    };
    if constexpr (K == 2) {
        const V m = simd::max(c[0], c[1]);
        V x;
        const V r = match(c[0], c[1], m, x);
        const auto p = c[0] >= c[1];
        u[0] = simd::select(p, one, r);
        u[1] = simd::select(p, r, one);
        z = one + r;
        return r * x;
    } else {
        const V ab = simd::max(c[0], c[1]);
        const V cd = K == 4 ? simd::max(c[2], c[3]) : c[2];
        const V m = simd::max(ab, cd);
        V x1, x3;
        const V e1 = match(c[0], c[1], m, x1); // the loser of (c0, c1)
        const V e3 = match(ab, cd, m, x3);     // the loser of the final
        const auto pa = c[0] >= c[1], q = ab >= cd;
        const V uab = simd::select(q, one, e3), ucd = simd::select(q, e3, one);
        u[0] = simd::select(pa, uab, e1);
        u[1] = simd::select(pa, e1, uab);
        if constexpr (K == 4) {
            V x2;
            const V e2 = match(c[2], c[3], m, x2);
            const auto pc = c[2] >= c[3];
            u[2] = simd::select(pc, ucd, e2);
            u[3] = simd::select(pc, e2, ucd);
            z = (one + e3) + (e1 + e2);
            return e1 * x1 + e2 * x2 + e3 * x3;
        } else {
            u[2] = ucd;
            z = (one + e3) + e1;
            return e1 * x1 + e3 * x3;
        }
    }
}

/// Softmax weights of K candidates (w[k]) and the entropy −Σ w log w (0 when hard, or when not
/// `entropy`: ∂/∂τ not wanted, its log skipped).
template <bool Hard, int K, class V>
DIFFBIO_FORCE_INLINE V sw_vweights(const std::array<V, K>& c, const SwSoft<V>& t, std::array<V, K>& w, bool entropy) {
    using F = typename V::value_type;
    const V one = V::broadcast(F(1)), zero = V::broadcast(F(0));
    if constexpr (Hard) {
        V m = c[0];
        for (int k = 1; k < K; ++k) m = simd::max(m, c[k]);
        auto taken = c[0] == m;
        w[0] = simd::select(taken, one, zero);
        for (int k = 1; k < K; ++k) {
            const auto hit = (c[k] == m) & !taken;
            w[k] = simd::select(hit, one, zero);
            taken = taken | hit;
        }
        return zero;
    } else {
        V z;
        const V ut = sw_vtournament<K>(c, t, w, z);
        const V iz = one / z;
        for (int k = 0; k < K; ++k) w[k] *= iz;
        return entropy ? simd::log_normal(z) - ut * iz : zero;
    }
}

/// One cell of the soft local linear backward, P = smax(M, gu, gl) with M = s + smax(0, P↖) and
/// the gap candidates gu, gl (P↑ − e, P← − e), given a = ∂/∂P and the local end's F and f̄. The
/// weights come from a tournament on (mM, gu, gl), mM = s + max(0, P↖), whose M mass is scaled by
/// 1 + r, r = e^{−|P↖|/τ}, so M itself (a log) is never formed. The τ adjoint takes the entropy of
/// the flat 4-way choice (0 or P↖ inside M, gu, gl), which is P's entropy plus w_M times M's (the
/// chain rule of entropy); in the end term's entropy log(1 + r) cancels likewise: one log per cell.
/// Gives am = ∂/∂M (end weight included), the gap weights wu, wl and wd, P↖'s weight inside M;
/// where dtau, adds to tau (a · entropy) and ent (the end distribution's entropy, times f̄ later).
template <class V>
DIFFBIO_FORCE_INLINE void sw_vlinear_local_back(const V& a, const V& s, const V& pd, const V& gu, const V& gl,
                                                const V& Fv, const V& fb, const SwSoft<V>& t, bool dtau, V& tau,
                                                V& ent, V& am, V& wu, V& wl, V& wd) {
    using F = typename V::value_type;
    const V zero = V::broadcast(F(0)), one = V::broadcast(F(1));
    const V x2 = simd::neg_abs(pd) * t.inv;
    const V r2 = simd::exp_nonpos(x2);
    const V z2 = one + r2;
    const V mM = s + simd::max(pd, zero);
    std::array<V, 3> u;
    V z;
    const V ut = sw_vtournament<3>({mM, gu, gl}, t, u, z); // u[k] = e^{(c_k − max)/τ}
    const V xM = (mM - simd::max(mM, simd::max(gu, gl))) * t.inv;
    const V uB = u[0] * r2; // the P↖ branch's extra mass
    const V Z = z + uB;
    const V iZ = one / Z, iz2 = one / z2;
    if (dtau) tau += a * (simd::log_normal(Z) - (ut + uB * (xM + x2)) * iZ);
    wu = u[1] * iZ;
    wl = u[2] * iZ;
    // the end weight e^{(M − F)/τ} and its entropy term, less M's own (in the τ part above)
    const V te = (mM - Fv) * t.inv;
    const V ws = simd::exp(te) * z2;
    const V wb = r2 * iz2; // weight of the smaller of (0, P↖) inside M
    if (dtau) ent -= ws * (wb * x2 + te);
    am = a * ((u[0] + uB) * iZ) + fb * ws;
    wd = simd::select(pd >= zero, iz2, wb);
}

/// One row i of the soft local linear reverse sweep (sw_vlinear_local_back per cell), one hardware
/// register of lanes at a time: the lanes are independent pairs, and the sweep's only chain along
/// the row is a ← cur[j − 1] + a·wl (one multiply-add), so a single register has parallelism
/// enough, where a whole L-lane pack (two to four registers) kept ~25 packs live and spilled them to
/// the stack. The chain and the two contributions to each prev[j] are carried in registers: every
/// prev[j] (row i − 1's adjoints, j = 0..N) is stored once, never loaded, so prev needs no zeroing.
/// cur[j] enters with row i + 1's contributions; arow gets ∂/∂M of the row (for the sink).
template <class F, int L>
DIFFBIO_FORCE_INLINE void sw_vlinear_local_back_row(const SwSoft<simd::pack<F, L>>& t, const simd::pack<F, L>& e, std::size_t N,
                                                    const simd::pack<F, L>* Pi, const simd::pack<F, L>* Pu, const F* sbuf,
                                                    const simd::pack<F, L>& Fv, const simd::pack<F, L>& fb,
                                                    const simd::pack<F, L>* row_max, simd::pack<F, L>* cur, simd::pack<F, L>* prev, simd::pack<F, L>* arow,
                                                    SwVGrads<simd::pack<F, L>>& acc, simd::pack<F, L>& ent) {
    using V = simd::pack<F, L>;
    constexpr int W = V::W;
    using H = simd::pack<F, W>;
    const auto part = [](const V& v, int h) {
        H r;
        r.v[0] = v.v[h];
        return r;
    };
    for (int h = 0; h < V::G; ++h) {
        const std::size_t o = static_cast<std::size_t>(h) * W;
        const auto ld = [o](const V* q) DIFFBIO_INLINE_LAMBDA { return H::load(reinterpret_cast<const F*>(q) + o); };
        const auto st = [o](V* q, const H& x) DIFFBIO_INLINE_LAMBDA { x.store(reinterpret_cast<F*>(q) + o); };
        const SwSoft<H> th{part(t.tau, h), part(t.inv, h)};
        const H eh = part(e, h), Fh = part(Fv, h), fbh = part(fb, h);
        H tau = part(acc.tau, h), en = part(ent, h), ext = part(acc.extend, h);
        const H zero = H::broadcast(F(0)), flush = H::broadcast(simd::exp_zero_below<F>);
        // A cell whose adjoint is 0 and whose end weight e^{(M − F)/τ} is 0 in every lane (far from
        // every lane's alignments: the posteriors underflowed) adds exactly 0 everywhere: skip it.
        // Where the row's largest M (from the forward) gives every lane an end weight of 0, the
        // adjoint alone decides, and skipped cells read nothing from the table; elsewhere the
        // cell's own te (sw_vlinear_local_back's, bit for bit) is tested.
        const bool far = row_max != nullptr && !simd::any(!((part(*row_max, h) - Fh) * th.inv < flush));
        H a = ld(cur + N);
        H pend = zero; // aM·wd of cell j + 1, for prev[j]
        for (std::size_t j = N; j > 0; --j) {
            const auto skip = [&]() DIFFBIO_INLINE_LAMBDA {
                st(prev + j, pend);
                pend = zero;
                st(arow + j - 1, zero);
                a = ld(cur + j - 1);
            };
            if (far && !simd::any(a != zero)) {
                skip();
                continue;
            }
            const H pd = ld(Pu + j - 1);
            const H s = H::load(sbuf + (j - 1) * L + o);
            if (!far && !simd::any((a != zero) | !((s + simd::max(pd, zero) - Fh) * th.inv < flush))) {
                skip();
                continue;
            }
            H aM, wu, wl, wd;
            sw_vlinear_local_back(a, s, pd, ld(Pu + j) - eh, ld(Pi + j - 1) - eh, Fh, fbh, th, acc.dtau, tau, en, aM, wu, wl, wd);
            st(prev + j, pend + a * wu);
            ext -= a * (wu + wl);
            pend = aM * wd;
            st(arow + j - 1, aM);
            a = ld(cur + j - 1) + a * wl;
        }
        // column 0: P_i0 = P_{i−1,0} − e
        st(prev, pend + a);
        ext -= a;
        acc.tau.v[h] = tau.v[0];
        ent.v[h] = en.v[0];
        acc.extend.v[h] = ext.v[0];
    }
}

/// Linear reverse sweep. Hard reads M from the table; soft local takes M = s + smax(0, P↖) from the
/// cell's score and P↖ (the forward keeps P only) without its log (sw_vlinear_local_back); soft
/// global M = s + P↖.
template <bool Hard, bool Local, class F, int L, class Tab, class Fill, class SinkRow>
void sw_vbackward_linear(const SwScalars<F>& p, const SwGroupShape<L>& g, Tab& tab, const F* score, const F* fbar,
                         const SwVExtra<simd::pack<F, L>>& ex, const Fill& fill, std::vector<F>& sbuf,
                         SinkRow&& sink_row, SwVGrads<simd::pack<F, L>>& acc, std::vector<simd::pack<F, L>>& adj) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V e = V::broadcast(p.extend), zero = V::broadcast(F(0));
    const std::size_t M = g.M, N = g.N, w = N + 1;
    adj.assign(3 * w, zero);
    V* cur = adj.data();
    V* prev = cur + w;
    V* arow = prev + w; // the adjoints of M in this row, for the sink
    if constexpr (!Hard) sbuf.resize(std::max<std::size_t>(N, 1) * L);
    V Fv, fb;
    for (int l = 0; l < L; ++l) Fv.set(l, score[l]), fb.set(l, fbar[l]);
    const V bi = ex.bi, bj = ex.bj;
    V ent = zero;
    if constexpr (Local && !Hard) ent = simd::exp(-Fv * t.inv) * Fv * t.inv; // −w₀ log w₀ of the empty alignment
    std::array<V, 3> w3;
    std::array<V, 2> w2;
    for (std::size_t i = M + 1; i-- > 0;) {
        if constexpr (!Local) {
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i) cur[g.n[l]].set(l, cur[g.n[l]][l] + fbar[l]);
            }
        }
        tab.prepare(i);
        const V* Pi = tab.row(0, i);
        if (i == 0) { // border row: P_0j = P_0,j−1 − e
            for (std::size_t j = N; j > 0; --j) {
                cur[j - 1] += cur[j];
                acc.extend -= cur[j];
            }
            break;
        }
        const V* Pu = tab.row(0, i - 1);
        const V* Mi = Hard ? tab.row(1, i) : nullptr;
        if constexpr (!Hard) fill(i - 1, sbuf.data());
        if constexpr (Local && !Hard) {
            sw_vlinear_local_back_row(t, e, N, Pi, Pu, sbuf.data(), Fv, fb, ex.row_max != nullptr ? ex.row_max + i : nullptr, cur, prev,
                                      arow, acc, ent);
            sink_row(i - 1, arow);
            std::swap(cur, prev); // every entry of the new prev is written before it is read
            continue;
        }
        const V iv = V::broadcast(static_cast<F>(i));
        for (std::size_t j = N; j > 0; --j) {
            const V a = cur[j];
            // a cell whose adjoint is 0 in every lane (and, local hard, no lane's end cell) adds
            // exactly 0 everywhere: off the hard paths almost every cell, and far from the soft
            // global alignments, where the posteriors underflowed
            if (!simd::any(a != zero)) {
                if (!Local || !simd::any((bi == iv) & (bj == V::broadcast(static_cast<F>(j))))) {
                    arow[j - 1] = zero;
                    continue;
                }
            }
            const V pd = Pu[j - 1];
            V Mv;
            if constexpr (Hard) {
                Mv = Mi[j];
            } else {
                Mv = V::load(sbuf.data() + (j - 1) * L) + pd;
            }
            acc.tau += a * sw_vweights<Hard, 3>({Mv, Pu[j] - e, Pi[j - 1] - e}, t, w3, acc.dtau);
            V aM = a * w3[0];
            prev[j] += a * w3[1];
            cur[j - 1] += a * w3[2];
            acc.extend -= a * (w3[1] + w3[2]);
            if constexpr (Local) {
                aM += simd::select((bi == iv) & (bj == V::broadcast(static_cast<F>(j))), fb, zero);
                // M = s + max(0, P_d): the first maximum takes it
                (void)sw_vweights<Hard, 2>({zero, pd}, t, w2, false);
                prev[j - 1] += aM * w2[1];
            } else {
                prev[j - 1] += aM;
            }
            arow[j - 1] = aM;
        }
        // column 0: P_i0 = P_{i−1,0} − e
        prev[0] += cur[0];
        acc.extend -= cur[0];
        sink_row(i - 1, arow);
        std::swap(cur, prev);
        std::fill(prev, prev + w, zero);
    }
    if (acc.dtau) acc.tau += fb * ent;
}

template <bool Hard, bool Local, class F, int L, class Tab, class SinkRow>
void sw_vbackward_affine(const SwScalars<F>& p, const SwGroupShape<L>& g, Tab& tab, const F* score, const F* fbar,
                         const SwVExtra<simd::pack<F, L>>& ex, SinkRow&& sink_row, SwVGrads<simd::pack<F, L>>& acc,
                         std::vector<simd::pack<F, L>>& adj) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V o = V::broadcast(p.open), e = V::broadcast(p.extend), zero = V::broadcast(F(0));
    const std::size_t M = g.M, N = g.N, w = N + 1;
    adj.assign(7 * w, zero);
    V* cM = adj.data();
    V* cX = cM + w;
    V* cY = cX + w;
    V* pM = cY + w;
    V* pX = pM + w;
    V* pY = pX + w;
    V* arow = pY + w;
    V Fv, fb;
    for (int l = 0; l < L; ++l) Fv.set(l, score[l]), fb.set(l, fbar[l]);
    const V bi = ex.bi, bj = ex.bj;
    V ent = zero;
    if constexpr (Local && !Hard) ent = simd::exp(-Fv * t.inv) * Fv * t.inv;
    std::array<V, 3> w3;
    std::array<V, 4> w4;
    for (std::size_t i = M + 1; i-- > 0;) {
        tab.prepare(i);
        const V* Mi = tab.row(0, i);
        const V* Xi = tab.row(1, i);
        const V* Yi = tab.row(2, i);
        const V* Mu = i > 0 ? tab.row(0, i - 1) : nullptr; // the row above (diagonal and up candidates)
        const V* Xu = i > 0 ? tab.row(1, i - 1) : nullptr;
        const V* Yu = i > 0 ? tab.row(2, i - 1) : nullptr;
        if constexpr (!Local) { // F = smax(M, X, Y) at (m_l, n_l)
            for (int l = 0; l < L; ++l) {
                if (g.m[l] != i) continue;
                const std::size_t j = g.n[l];
                std::array<double, 3> c{sw_unnone(Mi[j][l]), sw_unnone(Xi[j][l]), sw_unnone(Yi[j][l])}, ww{};
                if (i == 0 && j == 0) continue; // the empty global alignment: constant 0
                const double h = sw_weights<3>(c, 1.0 / static_cast<double>(p.tau), Hard, ww);
                acc.tau.set(l, acc.tau[l] + static_cast<F>(fbar[l] * h));
                cM[j].set(l, cM[j][l] + static_cast<F>(fbar[l] * ww[0]));
                cX[j].set(l, cX[j][l] + static_cast<F>(fbar[l] * ww[1]));
                cY[j].set(l, cY[j][l] + static_cast<F>(fbar[l] * ww[2]));
            }
        }
        const V iv = V::broadcast(static_cast<F>(i));
        for (std::size_t j = N + 1; j-- > 0;) {
            if (i == 0 && j == 0) break;
            V aM = cM[j];
            const V aX = cX[j], aY = cY[j];
            if (i > 0 && j > 0) {
                if constexpr (Local) {
                    if constexpr (Hard) {
                        aM += simd::select((bi == iv) & (bj == V::broadcast(static_cast<F>(j))), fb, zero);
                    } else {
                        const V tt = (Mi[j] - Fv) * t.inv;
                        const V ws = simd::exp(tt);
                        if (acc.dtau) ent -= ws * tt;
                        aM += fb * ws;
                    }
                }
                arow[j - 1] = aM;
                if constexpr (Local) {
                    acc.tau += aM * sw_vweights<Hard, 4>({zero, Mu[j - 1], Xu[j - 1], Yu[j - 1]}, t, w4, acc.dtau);
                    pM[j - 1] += aM * w4[1];
                    pX[j - 1] += aM * w4[2];
                    pY[j - 1] += aM * w4[3];
                } else {
                    acc.tau += aM * sw_vweights<Hard, 3>({Mu[j - 1], Xu[j - 1], Yu[j - 1]}, t, w3, acc.dtau);
                    pM[j - 1] += aM * w3[0];
                    pX[j - 1] += aM * w3[1];
                    pY[j - 1] += aM * w3[2];
                }
            }
            if (i > 0) {
                acc.tau += aX * sw_vweights<Hard, 3>({Mu[j] - o, Xu[j] - e, Yu[j] - o}, t, w3, acc.dtau);
                pM[j] += aX * w3[0];
                pX[j] += aX * w3[1];
                pY[j] += aX * w3[2];
                acc.open -= aX * (w3[0] + w3[2]);
                acc.extend -= aX * w3[1];
            }
            if (j > 0) {
                acc.tau += aY * sw_vweights<Hard, 3>({Mi[j - 1] - o, Yi[j - 1] - e, Xi[j - 1] - o}, t, w3, acc.dtau);
                cM[j - 1] += aY * w3[0];
                cY[j - 1] += aY * w3[1];
                cX[j - 1] += aY * w3[2];
                acc.open -= aY * (w3[0] + w3[2]);
                acc.extend -= aY * w3[1];
            }
        }
        if (i > 0) sink_row(i - 1, arow);
        std::swap(cM, pM);
        std::swap(cX, pX);
        std::swap(cY, pY);
        std::fill(pM, pM + w, zero);
        std::fill(pX, pX + w, zero);
        std::fill(pY, pY + w, zero);
    }
    if (acc.dtau) acc.tau += fb * ent;
}

/// The adjoints of one soft affine cell in the pull form of sw_vaffine_out (Fast): the cell's
/// (M, X, Y) fed g1 (X of the cell below), g2 (Y of the cell to the right) and g3 (M of the
/// diagonal cell, less its score) through one set of exps, so it takes its adjoints from those
/// three successors with the forward's 3 exps (4 local) instead of a tournament per soft max (7
/// exps). With X̄↓, Ȳ→, M̄↘ the successors' adjoints, a_c = e^{(c − m)/τ} and the normalisers
/// Z1 = k_o(a_M + a_Y) + k_e·a_X, Z2 = k_o(a_M + a_X) + k_e·a_Y, D3 = S = a_M + a_X + a_Y (local:
/// S + z where m ≥ 0, else 1 + z·S, z = e^{−|m|/τ}, f3 = 1 or z; global f3 = 1):
///   u1 = X̄↓/Z1, u2 = Ȳ→/Z2, u3 = f3·M̄↘/D3
///   M̄ = a_M·(k_o(u1 + u2) + u3), X̄ = a_X·(k_e·u1 + k_o·u2 + u3), Ȳ = a_Y·(k_o·u1 + k_e·u2 + u3)
/// (the local end weight is the caller's). Where acc.dtau, each soft max adds its adjoint times
/// ∂g/∂τ = log Z − Σ_c w_c·(c' − base)/τ: three logs per cell.
template <bool Local, class V>
struct SwAffinePull {
    using F = typename V::value_type;
    SwAffineOut<V> c;
    V lko, lke; // log k_o, log k_e
    SwAffinePull(F open, F extend, F tau)
        : c(open, extend, tau), lko(V::broadcast(-(open - std::min(open, extend)) / tau)),
          lke(V::broadcast(-(extend - std::min(open, extend)) / tau)) {}
    /// xd, yr, gM by value: ybar may alias yr (a row's Ȳ carried from cell to cell).
    DIFFBIO_FORCE_INLINE void operator()(const V& Mv, const V& Xv, const V& Yv, const V xd, const V yr, const V gM,
                                         SwVGrads<V>& acc, V& mbar, V& xbar, V& ybar) const {
        const V zero = V::broadcast(F(0)), one = V::broadcast(F(1));
        const V m = simd::max(simd::max(Mv, Xv), Yv);
        const V xM = (Mv - m) * c.t.inv, xX = (Xv - m) * c.t.inv, xY = (Yv - m) * c.t.inv;
        const V aM = simd::exp_nonpos(xM), aX = simd::exp_nonpos(xX), aY = simd::exp_nonpos(xY);
        const V Z1 = c.ko * (aM + aY) + c.ke * aX, Z2 = c.ko * (aM + aX) + c.ke * aY, S = aM + aX + aY;
        V D3 = S, f3 = one, x0 = zero; // local: x0 = the 0 candidate's term of ∂g3/∂τ
        if constexpr (Local) {
            const V nm = simd::neg_abs(m) * c.t.inv;
            const V z = simd::exp_nonpos(nm);
            const auto pos = m >= zero;
            D3 = simd::select(pos, S + z, z * S + one);
            f3 = simd::select(pos, one, z);
            x0 = simd::select(pos, z, S) * nm;
        }
        const V u1 = xd / Z1, u2 = yr / Z2, u3 = gM * f3 / D3;
        mbar = aM * (c.ko * (u1 + u2) + u3);
        xbar = aX * (c.ke * u1 + c.ko * u2 + u3);
        ybar = aY * (c.ko * u1 + c.ke * u2 + u3);
        acc.open -= c.ko * (u1 * (aM + aY) + u2 * (aM + aX));
        acc.extend -= c.ke * (u1 * aX + u2 * aY);
        if (acc.dtau) {
            const V eM = aM * (xM + lko), eXo = aX * (xX + lko), eYo = aY * (xY + lko), eXe = aX * (xX + lke),
                    eYe = aY * (xY + lke), T = aM * xM + aX * xX + aY * xY;
            acc.tau += (xd * simd::log_normal(Z1) - u1 * (c.ko * (eM + eYo) + c.ke * eXe)) +
                       (yr * simd::log_normal(Z2) - u2 * (c.ko * (eM + eXo) + c.ke * eYe)) +
                       (gM * simd::log_normal(D3) - u3 * (T + x0));
        }
    }
};

/// Soft affine reverse sweep by SwAffinePull, every cell of the table (row 0 and column 0 feed the
/// global model's leading gaps), rows bottom-up, each right to left. The global F = g3 at
/// (m_l, n_l) adds f̄ to M̄↘ there; local cells add f̄·e^{(M − F)/τ} to M̄.
template <bool Local, class F, int L, class Tab, class SinkRow>
void sw_vbackward_affine_fast(const SwScalars<F>& p, const SwGroupShape<L>& g, Tab& tab, const F* score,
                              const F* fbar, SinkRow&& sink_row, SwVGrads<simd::pack<F, L>>& acc,
                              std::vector<simd::pack<F, L>>& adj) {
    using V = simd::pack<F, L>;
    const SwAffinePull<Local, V> pull(p.open, p.extend, p.tau);
    const V zero = V::broadcast(F(0)), inv = pull.c.t.inv, flush = V::broadcast(simd::exp_zero_below<F>);
    const std::size_t M = g.M, N = g.N, w = N + 2;
    adj.assign(5 * w, zero);
    V* dX = adj.data(); // X̄ and M̄ of the row below (column N + 1: 0)
    V* dM = dX + w;
    V* nX = dM + w; // this row's
    V* nM = nX + w;
    V* fin = nM + w; // global: f̄ joining M̄↘ at (m_l, n_l) of this row
    V Fv, fb;
    for (int l = 0; l < L; ++l) Fv.set(l, score[l]), fb.set(l, fbar[l]);
    V ent = zero;
    if (Local && acc.dtau) ent = simd::exp(-Fv * inv) * Fv * inv; // −w₀ log w₀ of the empty alignment
    for (std::size_t i = M + 1; i-- > 0;) {
        tab.prepare(i);
        const V* Mi = tab.row(0, i);
        const V* Xi = tab.row(1, i);
        const V* Yi = tab.row(2, i);
        if constexpr (!Local) {
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i) fin[g.n[l]].set(l, fbar[l]);
            }
        }
        V ybar = zero; // Ȳ of (i, j + 1)
        for (std::size_t j = N + 1; j-- > 0;) {
            const V xd = dX[j], gM = Local ? dM[j + 1] : dM[j + 1] + fin[j];
            // a cell whose incoming adjoints (and, local, end weight) are 0 in every lane adds
            // exactly 0 everywhere (far from every lane's alignments): skip it, and the X and Y
            // planes' reads
            auto live = (xd != zero) | (ybar != zero) | (gM != zero);
            V tt;
            if constexpr (Local) {
                tt = (Mi[j] - Fv) * inv;
                live = live | !(tt < flush);
            }
            if (!simd::any(live)) {
                nM[j] = zero;
                nX[j] = zero;
                continue; // (Ȳ stays 0)
            }
            V mbar, xbar;
            pull(Mi[j], Xi[j], Yi[j], xd, ybar, gM, acc, mbar, xbar, ybar);
            if constexpr (Local) {
                const V ws = simd::exp(tt);
                if (acc.dtau) ent -= ws * tt;
                mbar += fb * ws;
            }
            nM[j] = mbar;
            nX[j] = xbar;
        }
        if (i > 0) sink_row(i - 1, nM + 1); // s̄_ij = M̄_ij, j ≥ 1
        std::swap(dX, nX);
        std::swap(dM, nM);
        if constexpr (!Local) {
            for (int l = 0; l < L; ++l) {
                if (g.m[l] == i) fin[g.n[l]].set(l, F(0));
            }
        }
    }
    if (Local && acc.dtau) acc.tau += fb * ent;
}

template <bool Hard, class F, int L, class Tab, class Fill, class SinkRow>
void sw_vbackward_compat(const SwScalars<F>& p, const SwGroupShape<L>& g, Tab& tab, const F* fbar,
                         const SwVExtra<simd::pack<F, L>>& ex, const Fill& fill, std::vector<F>& sbuf,
                         SinkRow&& sink_row, SwVGrads<simd::pack<F, L>>& acc, std::vector<simd::pack<F, L>>& adj) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V gap = V::broadcast(p.open + p.extend), zero = V::broadcast(F(0));
    const std::size_t M = g.M, N = g.N, w = N + 1;
    V mrow, ncol;
    for (int l = 0; l < L; ++l) mrow.set(l, static_cast<F>(g.m[l])), ncol.set(l, static_cast<F>(g.n[l]));
    const V mx = ex.mx, ties = ex.ties; // the hard max over the in-range H and its ties (from the forward)
    V fb, mbar;
    for (int l = 0; l < L; ++l) fb.set(l, fbar[l]);
    std::array<V, 2> w2;
    acc.tau += fb * sw_vweights<Hard, 2>({zero, mx}, t, w2, acc.dtau);
    mbar = simd::select(ties > zero, fb * w2[1] / simd::max(ties, V::broadcast(F(1))), zero);
    adj.assign(3 * w, zero);
    V* cur = adj.data();
    V* prev = cur + w;
    V* arow = prev + w;
    sbuf.resize(std::max<std::size_t>(N, 1) * L);
    std::array<V, 4> w4;
    for (std::size_t i = M; i > 0; --i) {
        tab.prepare(i);
        fill(i - 1, sbuf.data());
        const V* Hi = tab.row(0, i);
        const V* Hu = tab.row(0, i - 1);
        const auto rin = V::broadcast(static_cast<F>(i)) <= mrow;
        for (std::size_t j = N; j > 0; --j) {
            const auto in = rin & (V::broadcast(static_cast<F>(j)) <= ncol);
            const V a = cur[j] + simd::select(in & (Hi[j] == mx), mbar, zero);
            const V s = V::load(sbuf.data() + (j - 1) * L);
            acc.tau += a * sw_vweights<Hard, 4>({zero, Hu[j - 1] + s, Hu[j] - gap, Hi[j - 1] - gap}, t, w4, acc.dtau);
            arow[j - 1] = a * w4[1];
            prev[j - 1] += a * w4[1];
            prev[j] += a * w4[2];
            cur[j - 1] += a * w4[3];
            acc.open -= a * (w4[2] + w4[3]);
            acc.extend -= a * (w4[2] + w4[3]);
        }
        sink_row(i - 1, arow);
        std::swap(cur, prev);
        std::fill(prev, prev + w, zero);
    }
}

/// Reverse sweep of a group over its table provider `tab` (prepare(i), row(state, i): rows i and
/// i − 1 as the forward of the same model, scalars and cells wrote them; score = its out, ex its
/// extra facts). sink_row(i, a) receives the adjoints of the match states of row i (0-based):
/// a[j] (j < N) holds lane l's ∂F/∂s_ij·fbar[l] in lane l (0 outside the pair).
template <class F, int L, class Tab, class Fill, class SinkRow>
void sw_vbackward(const SwModel& md, const SwScalars<F>& p, const SwGroupShape<L>& g, Tab& tab, const F* score,
                  const F* fbar, const SwVExtra<simd::pack<F, L>>& ex, const Fill& fill, std::vector<F>& sbuf,
                  SinkRow&& sink_row, SwVGrads<simd::pack<F, L>>& acc, std::vector<simd::pack<F, L>>& adj) {
    switch (md.kind) {
    case SwKind::Linear:
        sw_with_model_flags(md, [&](auto hard, auto local) {
            sw_vbackward_linear<decltype(hard)::value, decltype(local)::value>(p, g, tab, score, fbar, ex, fill, sbuf,
                                                                                sink_row, acc, adj);
        });
        break;
    case SwKind::Affine:
        if (!md.hard && std::fabs(p.open - p.extend) / p.tau <= sw_affine_fast_range<F>) { // as the forward
            md.local ? sw_vbackward_affine_fast<true>(p, g, tab, score, fbar, sink_row, acc, adj)
                     : sw_vbackward_affine_fast<false>(p, g, tab, score, fbar, sink_row, acc, adj);
            break;
        }
        sw_with_model_flags(md, [&](auto hard, auto local) {
            sw_vbackward_affine<decltype(hard)::value, decltype(local)::value>(p, g, tab, score, fbar, ex, sink_row, acc, adj);
        });
        break;
    case SwKind::Compat:
        md.hard ? sw_vbackward_compat<true>(p, g, tab, fbar, ex, fill, sbuf, sink_row, acc, adj)
                : sw_vbackward_compat<false>(p, g, tab, fbar, ex, fill, sbuf, sink_row, acc, adj);
        break;
    }
}

/// The full table as the backward's row provider.
template <class V>
struct SwVFullTab {
    SwVRows<V> rows;
    void prepare(std::size_t) const {}
    const V* row(std::size_t state, std::size_t i) const { return rows.row(state, i); }
};

/// Checkpointed rows as the backward's row provider: before rows i and i − 1 are read, the block
/// (c, c + k] holding them (c = the checkpoint row below) is recomputed from checkpoint c.
template <class V, class Recompute>
struct SwVCheckpointTab {
    SwVRows<V> ck;    // the forward's checkpoint rows (Mode::Checkpoint)
    SwVRows<V> block; // rows c..c+k (Mode::Block, first = c)
    std::size_t states, M;
    Recompute recompute; // recompute(block rows, lo, hi): the forward over rows lo..hi
    bool loaded = false;
    void prepare(std::size_t i) {
        const std::size_t c = i == 0 ? 0 : (i - 1) / ck.k * ck.k;
        if (loaded && block.first == c) return;
        block.first = c;
        for (std::size_t s = 0; s < states; ++s) {
            const V* from = ck.row(s, c);
            std::copy(from, from + ck.width, block.row(s, c));
        }
        if (c < M) recompute(block, c + 1, std::min(c + ck.k, M));
        loaded = true;
    }
    const V* row(std::size_t state, std::size_t i) const { return block.row(state, i); }
};

template <class F>
struct SwWaveWork; // sw_wavefront.hpp

template <class F, int L>
struct SwVGradWork {
    std::vector<simd::pack<F, L>> table, block, rows, adj, row_max;
    std::vector<F> sbuf;
    std::vector<double> Sbar;
    SwGrads g;
    SwWaveWork<F> wave; // lane groups run pair by pair (sw_wave_grad_worth_it)
    std::vector<simd::pack<F, L>>* kept = nullptr; // a caller's table (SwTablePool) swapped in for the call
};

/// Lane-group DP tables kept between calls, one per thread (SwWorkspace in smith_waterman.hpp).
template <class F>
using SwTablePool = std::vector<std::vector<simd::pack<F, sw_simd_lanes<F>>>>;

/// Forward and backward of one lane group: out[l] = lane l's score; sink_row and acc as in
/// sw_vbackward. checkpoint = 0 (or ≥ M): the full table, sw_vtable_states·(M+1)·(N+1) packs;
/// checkpoint = k: every k-th row ((⌊M/k⌋ + 1) rows), two rolling rows and one block of k + 1 rows,
/// i.e. (⌊M/k⌋ + k + 4)·(N+1)·sw_vtable_states packs, for one more forward pass over the rows.
template <class F, int L, class Fill, class SinkRow>
void sw_vgroup_value_and_grad(const SwModel& md, const SwScalars<F>& p, const SwGroupShape<L>& g, const Fill& fill,
                              const F* fbar, F* out, std::size_t checkpoint, SinkRow&& sink_row,
                              SwVGrads<simd::pack<F, L>>& acc, SwVGradWork<F, L>& w) {
    using V = simd::pack<F, L>;
    using Mode = typename SwVRows<V>::Mode;
    const std::size_t S = sw_vtable_states(md), W = g.N + 1;
    SwVExtra<V> ex{};
    if (md.kind == SwKind::Linear && md.local && !md.hard) {
        w.row_max.resize(g.M + 1);
        ex.row_max = w.row_max.data();
    }
    if (checkpoint == 0 || checkpoint >= g.M) {
        diffbio::detail::reserve_hinted(w.table, S * (g.M + 1) * W); // long pairs: 100s of MB, few page faults
        w.table.resize(S * (g.M + 1) * W);
        SwVRows<V> r;
        r.base = w.table.data();
        r.plane = (g.M + 1) * W;
        r.width = W;
        r.mode = Mode::Full;
        sw_vforward<F, L>(md, p, g, fill, r, w.sbuf, out, {}, &ex);
        SwVFullTab<V> tab{r};
        sw_vbackward<F, L>(md, p, g, tab, out, fbar, ex, fill, w.sbuf, sink_row, acc, w.adj);
        return;
    }
    const std::size_t k = checkpoint, nck = g.M / k + 1;
    w.table.resize(S * (nck + 2) * W);
    SwVRows<V> r;
    r.mode = Mode::Checkpoint;
    r.ck = w.table.data();
    r.ck_plane = nck * W;
    r.k = k;
    r.base = r.ck + S * nck * W;
    r.plane = 2 * W;
    r.width = W;
    sw_vforward<F, L>(md, p, g, fill, r, w.sbuf, out, {}, &ex);
    w.block.resize(S * (k + 1) * W);
    SwVRows<V> b;
    b.mode = Mode::Block;
    b.base = w.block.data();
    b.plane = (k + 1) * W;
    b.width = W;
    auto recompute = [&](const SwVRows<V>& rows, std::size_t lo, std::size_t hi) {
        sw_vforward<F, L>(md, p, g, fill, rows, w.sbuf, static_cast<F*>(nullptr), SwRowRange{lo, hi}, nullptr);
    };
    SwVCheckpointTab<V, decltype(recompute)> tab{r, b, S, g.M, recompute};
    sw_vbackward<F, L>(md, p, g, tab, out, fbar, ex, fill, w.sbuf, sink_row, acc, w.adj);
}

// ---- cell scores ------------------------------------------------------------------------------

/// Integer codes: lane l reads S_l[r_l[i]·A + c_l[j]] (S_l is S, or Sᵀ for a transposed lane).
/// Small alphabets (A ≤ 8, DNA/RNA): prepare() stores each column's target codes as a pack, and a
/// row is A selects per pack from the lanes' rows of S (vector work instead of L scalar gathers);
/// larger alphabets gather lane by lane.
template <class F, int L>
struct SwVCodeFill {
    using V = simd::pack<F, L>;
    std::size_t A = 0, N = 0;
    std::array<const F*, L> S{};
    std::array<const std::uint8_t*, L> r{}, c{};
    std::array<std::size_t, L> m{}, n{};
    std::vector<V> T; // column j's codes per lane (A: outside the lane's pair)

    bool vectorised() const { return A <= 8; }
    void prepare() {
        if (!vectorised()) return;
        T.assign(N, V::broadcast(static_cast<F>(A)));
        for (int l = 0; l < L; ++l) {
            for (std::size_t j = 0; j < n[l]; ++j) T[j].set(l, static_cast<F>(c[l][j]));
        }
    }
    void operator()(std::size_t i, F* buf) const {
        if (vectorised()) {
            std::array<V, 8> R;
            for (std::size_t a = 0; a < A; ++a) {
                for (int l = 0; l < L; ++l) {
                    R[a].set(l, i < m[l] ? S[l][static_cast<std::size_t>(r[l][i]) * A + a] : sw_none<F>);
                }
            }
            const V none = V::broadcast(sw_none<F>);
            for (std::size_t j = 0; j < N; ++j) {
                V s = none;
                for (std::size_t a = 0; a < A; ++a) s = simd::select(T[j] == V::broadcast(static_cast<F>(a)), R[a], s);
                s.store(buf + j * L);
            }
            return;
        }
        for (int l = 0; l < L; ++l) {
            std::size_t j = 0;
            if (i < m[l]) {
                const F* row = S[l] + static_cast<std::size_t>(r[l][i]) * A;
                const std::uint8_t* cl = c[l];
                for (; j < n[l]; ++j) buf[j * L + l] = row[cl[j]];
            }
            for (; j < N; ++j) buf[j * L + l] = sw_none<F>;
        }
    }
    /// Small alphabets: adds row i's match adjoints a[j] (lane l: ∂F/∂s_ij of its pair) to
    /// Sbar[r_l[i]·A + c_l[j]] (A × A, row-major) for every lane with i < m[l]: per code, a masked
    /// vector sum over the columns, in F over blocks of 8 columns (float) and in double across them.
    void sink_row(std::size_t i, const V* a, double* Sbar) const {
        constexpr std::size_t B = sizeof(F) == 4 ? 8 : std::size_t(-1);
        const V zero = V::broadcast(F(0));
        std::array<std::array<double, L>, 8> tot{};
        for (std::size_t j0 = 0; j0 < N;) {
            const std::size_t j1 = j0 + std::min(B, N - j0);
            // a block of adjoints that are all 0 (far from every lane's alignments) adds exactly 0
            auto nonzero = a[j0] != zero;
            for (std::size_t j = j0 + 1; j < j1; ++j) nonzero = nonzero | (a[j] != zero);
            if (!simd::any(nonzero)) {
                j0 = j1;
                continue;
            }
            std::array<V, 8> acc;
            for (std::size_t k = 0; k < A; ++k) acc[k] = zero;
            for (std::size_t j = j0; j < j1; ++j) {
                for (std::size_t k = 0; k < A; ++k) acc[k] += simd::select(T[j] == V::broadcast(static_cast<F>(k)), a[j], zero);
            }
            for (std::size_t k = 0; k < A; ++k) {
                alignas(64) std::array<F, L> part;
                acc[k].store(part.data());
                for (int l = 0; l < L; ++l) tot[k][l] += static_cast<double>(part[l]);
            }
            j0 = j1;
        }
        for (int l = 0; l < L; ++l) {
            if (i >= m[l]) continue;
            double* row = Sbar + static_cast<std::size_t>(r[l][i]) * A;
            for (std::size_t k = 0; k < A; ++k) row[k] += tot[k][l];
        }
    }
};

/// Profiles: lane l's s_ij = x_l[i] · B_l[j] (rows of A values).
template <class F, class X, int L>
struct SwVProfileFill {
    std::size_t A = 0, N = 0;
    std::array<const X*, L> x{};
    std::array<const F*, L> B{};
    std::array<std::size_t, L> m{}, n{};
    void operator()(std::size_t i, F* buf) const {
        for (int l = 0; l < L; ++l) {
            std::size_t j = 0;
            if (i < m[l]) {
                const X* xi = x[l] + i * A;
                const F* Bl = B[l];
                for (; j < n[l]; ++j) {
                    F acc = F(0);
                    for (std::size_t a = 0; a < A; ++a) acc += static_cast<F>(xi[a]) * Bl[j * A + a];
                    buf[j * L + l] = acc;
                }
            }
            for (; j < N; ++j) buf[j * L + l] = sw_none<F>;
        }
    }
};

/// The order in which pairs fill lane groups: by (m, n) descending, so that lanes have similar
/// shapes and the biggest groups start first (dynamic scheduling balances the tail).
inline std::vector<std::size_t> sw_lane_order(std::span<const std::size_t> m, std::span<const std::size_t> n) {
    std::vector<std::size_t> idx(m.size());
    std::iota(idx.begin(), idx.end(), std::size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
        return m[a] != m[b] ? m[a] > m[b] : n[a] > n[b];
    });
    return idx;
}

/// While alive, this thread's SSE unit flushes subnormal results and inputs to zero (restored
/// after). Backward adjoints shrink geometrically along long pairs at high τ (weights ≈ 1/3 per
/// cell) and would otherwise crawl through the subnormal range, 10-100× slower per operation; values
/// below 1e-38 (float) / 1e-308 (double) are far below every tolerance of the results.
struct SwFlushSubnormals {
#if defined(__SSE__)
    unsigned saved = _mm_getcsr();
    SwFlushSubnormals() { _mm_setcsr(saved | 0x8040U); } // FTZ (bit 15) | DAZ (bit 6)
    ~SwFlushSubnormals() { _mm_setcsr(saved); }
#else
    SwFlushSubnormals() = default;
#endif
    SwFlushSubnormals(const SwFlushSubnormals&) = delete;
    SwFlushSubnormals& operator=(const SwFlushSubnormals&) = delete;
};

/// One pair of a batch as raw sequences (codes: letters; profiles: rows of A values).
template <class X>
struct SwSeqPair {
    const X* q;
    std::size_t m;
    const X* t;
    std::size_t n;
};

/// Runs fn(group_shape, lanes, used) over the lane groups of a batch whose pair k has (oriented)
/// shape m[k] × n[k]: lanes[l] is the pair of lane l (l < used). Groups are spread over `threads`
/// OpenMP threads (1: this thread), each with its own `Work` (default-constructed per thread).
/// finish(work) runs once per thread at the end, one thread at a time (reductions).
struct SwNoFinish {
    template <class W>
    void operator()(W&) const {}
};
template <int L, class Work, class Fn, class Finish = SwNoFinish>
void sw_for_lane_groups(std::span<const std::size_t> m, std::span<const std::size_t> n, int threads, Fn&& fn,
                        Finish&& finish = {}) {
    const std::vector<std::size_t> order = sw_lane_order(m, n);
    const std::size_t groups = (order.size() + L - 1) / L;
    const auto ng = static_cast<std::ptrdiff_t>(groups);
    [[maybe_unused]] const int nt = threads;
    DIFFBIO_OMP(parallel num_threads(nt) if (nt > 1))
    {
        const SwFlushSubnormals flush;
        Work work;
        DIFFBIO_OMP(for schedule(dynamic, 1))
        for (std::ptrdiff_t gi = 0; gi < ng; ++gi) {
            const std::size_t first = static_cast<std::size_t>(gi) * L;
            const int used = static_cast<int>(std::min<std::size_t>(L, order.size() - first));
            SwGroupShape<L> g;
            std::array<std::size_t, L> lanes{};
            for (int l = 0; l < used; ++l) {
                const std::size_t k = order[first + static_cast<std::size_t>(l)];
                lanes[l] = k;
                g.m[l] = m[k];
                g.n[l] = n[k];
                g.M = std::max(g.M, m[k]);
                g.N = std::max(g.N, n[k]);
            }
            fn(g, lanes, used, work);
        }
        DIFFBIO_OMP(critical(diffbio_sw_lane_groups))
        finish(work);
    }
}

// The intra-pair wavefront (sw_wavefront.hpp, included at the end of this header): the score
// drivers below run it for the pairs of lane groups too empty for the inter-pair kernel.
template <class F>
F sw_wavefront_score_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A, const std::uint8_t* q,
                           std::size_t m, const std::uint8_t* t, std::size_t n, SwWaveWork<F>& w);
template <class F, class X>
F sw_wavefront_score_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A, const X* x,
                              std::size_t m, const X* y, std::size_t n, SwWaveWork<F>& w);
template <class F, class X>
F sw_wavefront_value_and_grad_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                       const X* x, std::size_t m, const X* y, std::size_t n, F fbar, double* dense,
                                       SwGrads& g, SwWaveWork<F>& w);
inline bool sw_wave_worth_it(const SwModel& md, std::size_t m, std::size_t n);
template <class F>
F sw_wavefront_value_and_grad_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                    const std::uint8_t* q, std::size_t m, const std::uint8_t* t, std::size_t n,
                                    F fbar, double* Sbar, SwGrads& g, SwWaveWork<F>& w);

template <class F, int L>
struct SwVScoreWork {
    std::vector<simd::pack<F, L>> rows;
    std::vector<F> sbuf, B;
    SwWaveWork<F> wave;
};

/// Scores of a batch of code pairs (forward only, O(min(m, n)) memory per lane): each pair is
/// oriented so that its shorter sequence runs along the rows (a transposed pair reads Sᵀ; every
/// model is symmetric in its two sequences, so the score is the same).
/// A lane group whose pairs fill fewer than `min_lanes` lanes' worth of its M × N cells runs pair
/// by pair instead (one SIMD step costs about as much as 3-4 scalar cells; a single pair, or a long
/// pair grouped with short ones, is faster that way): large pairs by the intra-pair wavefront
/// (sw_wavefront.hpp, sw_wave_worth_it), small ones by the scalar kernel. A group of large pairs
/// (M·N ≥ 64k cells) also runs pair by pair, by the wavefront, when it fills less than half of its
/// L lanes (unless min_lanes = 0, which forces the inter-pair kernel): the wavefront runs one such
/// pair at 0.8-0.9 of the rate of a full group (float, AVX-512, one 1000 × 1000 pair: linear 640
/// against 820 M cells/s for full groups of 150 × 150, affine 490 against 540), so it would win up
/// to that fill; the threshold is still the half it was tuned to when the two rates were equal.
inline bool sw_simd_worth_it(const SwModel& md, int L, const std::size_t* m, const std::size_t* n, int used,
                             std::size_t M, std::size_t N, double min_lanes) {
    double cells = 0.0;
    for (int l = 0; l < used; ++l) cells += static_cast<double>(m[l]) * static_cast<double>(n[l]);
    const double MN = static_cast<double>(M) * static_cast<double>(N);
    if (cells < min_lanes * MN) return false;
    const bool large = MN >= 65536.0 && sw_wave_worth_it(md, M, N);
    return !(min_lanes > 0.0 && large && cells < 0.5 * static_cast<double>(L) * MN);
}

inline constexpr double sw_simd_min_lanes = 4.0;

/// The score-only paths run every pair with its longer sequence along the rows (the DP is
/// symmetric: a transposed pair swaps its sequences and uses Sᵀ), so the rolling rows are short.
template <class F>
struct SwOrientation {
    std::vector<F> ST;              ///< Sᵀ, the matrix of the transposed pairs
    std::vector<std::size_t> m, n;  ///< rows ≥ columns of each pair after orienting it
    std::vector<char> tr;           ///< 1 when pair k is transposed
};

template <class F, class X>
SwOrientation<F> sw_orient(const F* S, std::size_t A, std::span<const SwSeqPair<X>> pairs) {
    SwOrientation<F> o;
    o.ST.resize(A * A);
    for (std::size_t a = 0; a < A; ++a) {
        for (std::size_t b = 0; b < A; ++b) o.ST[b * A + a] = S[a * A + b];
    }
    const std::size_t K = pairs.size();
    o.m.resize(K);
    o.n.resize(K);
    o.tr.resize(K);
    for (std::size_t k = 0; k < K; ++k) {
        o.tr[k] = pairs[k].n > pairs[k].m ? 1 : 0;
        o.m[k] = o.tr[k] ? pairs[k].n : pairs[k].m;
        o.n[k] = o.tr[k] ? pairs[k].m : pairs[k].n;
    }
    return o;
}

template <class F>
void sw_simd_scores_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                          std::span<const SwSeqPair<std::uint8_t>> pairs, F* out, int threads,
                          double min_lanes = sw_simd_min_lanes) {
    constexpr int L = sw_simd_lanes<F>;
    const SwOrientation<F> o = sw_orient(S, A, pairs);
    const std::vector<F>& ST = o.ST;
    const std::vector<std::size_t>& m = o.m;
    const std::vector<std::size_t>& n = o.n;
    const std::vector<char>& tr = o.tr;
    sw_for_lane_groups<L, SwVScoreWork<F, L>>(
        m, n, threads,
        [&](const SwGroupShape<L>& g, const std::array<std::size_t, L>& lanes, int used, SwVScoreWork<F, L>& w) {
            if (!sw_simd_worth_it(md, L, g.m.data(), g.n.data(), used, g.M, g.N, min_lanes)) {
                // Too few pairs to fill the lanes: pair by pair, a large one by the intra-pair
                // wavefront (sw_wavefront.hpp, the whole SIMD width on one pair), a small one by
                // the scalar kernel.
                for (int l = 0; l < used; ++l) {
                    const std::size_t k = lanes[l];
                    const F* SS = tr[k] ? ST.data() : S;
                    const std::uint8_t* rr = tr[k] ? pairs[k].t : pairs[k].q;
                    const std::uint8_t* cc = tr[k] ? pairs[k].q : pairs[k].t;
                    if (sw_wave_worth_it(md, g.m[l], g.n[l])) {
                        out[k] = sw_wavefront_score_codes<F>(md, p, SS, A, rr, g.m[l], cc, g.n[l], w.wave);
                        continue;
                    }
                    auto cell = [SS, rr, cc, A](std::size_t i, std::size_t j) { return SS[rr[i] * A + cc[j]]; };
                    out[k] = sw_forward<F>(md, p, g.m[l], g.n[l], cell, static_cast<F*>(nullptr), w.sbuf);
                }
                return;
            }
            SwVCodeFill<F, L> fill;
            fill.A = A;
            fill.N = g.N;
            for (int l = 0; l < used; ++l) {
                const std::size_t k = lanes[l];
                const SwSeqPair<std::uint8_t>& pr = pairs[k];
                fill.S[l] = tr[k] ? ST.data() : S;
                fill.r[l] = tr[k] ? pr.t : pr.q;
                fill.c[l] = tr[k] ? pr.q : pr.t;
                fill.m[l] = g.m[l];
                fill.n[l] = g.n[l];
            }
            fill.prepare();
            std::array<F, L> res{};
            sw_vforward<F, L>(md, p, g, fill, sw_vrows_rolling(md, g.N, w.rows), w.sbuf, res.data());
            for (int l = 0; l < used; ++l) out[lanes[l]] = res[l];
        });
}

/// Scores of a batch of profile pairs (rows of A values of X): lane l's cells s_ij = x_i · B_j with
/// B_j = S y_j computed per group (a transposed pair: rows y, B_j = Sᵀ x_j).
template <class F, class X>
void sw_simd_scores_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                             std::span<const SwSeqPair<X>> pairs, F* out, int threads,
                             double min_lanes = sw_simd_min_lanes) {
    constexpr int L = sw_simd_lanes<F>;
    const SwOrientation<F> o = sw_orient(S, A, pairs);
    const std::vector<F>& ST = o.ST;
    const std::vector<std::size_t>& m = o.m;
    const std::vector<std::size_t>& n = o.n;
    const std::vector<char>& tr = o.tr;
    sw_for_lane_groups<L, SwVScoreWork<F, L>>(
        m, n, threads,
        [&](const SwGroupShape<L>& g, const std::array<std::size_t, L>& lanes, int used, SwVScoreWork<F, L>& w) {
            SwVProfileFill<F, X, L> fill;
            fill.A = A;
            fill.N = g.N;
            w.B.assign(static_cast<std::size_t>(L) * std::max<std::size_t>(g.N, 1) * A, F(0));
            for (int l = 0; l < used; ++l) {
                const std::size_t k = lanes[l];
                const SwSeqPair<X>& pr = pairs[k];
                const X* rows = tr[k] ? pr.t : pr.q;
                const X* cols = tr[k] ? pr.q : pr.t;
                const F* SS = tr[k] ? ST.data() : S;
                F* Bl = w.B.data() + static_cast<std::size_t>(l) * g.N * A;
                for (std::size_t j = 0; j < g.n[l]; ++j) {
                    for (std::size_t a = 0; a < A; ++a) {
                        F acc = F(0);
                        for (std::size_t b = 0; b < A; ++b) acc += SS[a * A + b] * static_cast<F>(cols[j * A + b]);
                        Bl[j * A + a] = acc;
                    }
                }
                fill.x[l] = rows;
                fill.B[l] = Bl;
                fill.m[l] = g.m[l];
                fill.n[l] = g.n[l];
            }
            if (!sw_simd_worth_it(md, L, g.m.data(), g.n.data(), used, g.M, g.N, min_lanes)) {
                // Too few pairs to fill the lanes: pair by pair, a large one by the intra-pair
                // wavefront (sw_wavefront.hpp), a small one by the scalar kernel.
                for (int l = 0; l < used; ++l) {
                    if (sw_wave_worth_it(md, g.m[l], g.n[l])) {
                        const std::size_t k = lanes[l];
                        out[k] = sw_wavefront_score_profiles<F, X>(md, p, tr[k] ? ST.data() : S, A,
                                                                   tr[k] ? pairs[k].t : pairs[k].q, g.m[l],
                                                                   tr[k] ? pairs[k].q : pairs[k].t, g.n[l], w.wave);
                        continue;
                    }
                    const X* x = fill.x[l];
                    const F* B = fill.B[l];
                    auto cell = [x, B, A](std::size_t i, std::size_t j) {
                        F acc = F(0);
                        for (std::size_t a = 0; a < A; ++a) acc += static_cast<F>(x[i * A + a]) * B[j * A + a];
                        return acc;
                    };
                    out[lanes[l]] = sw_forward<F>(md, p, g.m[l], g.n[l], cell, static_cast<F*>(nullptr), w.sbuf);
                }
                return;
            }
            std::array<F, L> res{};
            sw_vforward<F, L>(md, p, g, fill, sw_vrows_rolling(md, g.N, w.rows), w.sbuf, res.data());
            for (int l = 0; l < used; ++l) out[lanes[l]] = res[l];
        });
}

/// Gradients of a batch of code pairs: Σ_k fbar[k]·∂F_k/∂(S, open, extend, τ) (S̄ row-major A×A).
/// The DP and its backward run in F; the sums over cells and pairs accumulate in double.
struct SwBatchGrads {
    std::vector<double> Sbar;
    SwGrads g;
};

/// Whether a lane group of the gradient driver runs pair by pair through the wavefront's forward
/// and backward (sw_wavefront.hpp): the score drivers' rule (sw_simd_worth_it), every pair large
/// enough for the wavefront, and each pair's full table ((m+1)(n+1) values per state) no larger
/// than the group's checkpointed table when `checkpoint` = k > 0 ((M/k + k + 4)(N+1) packs of L).
inline bool sw_wave_grad_worth_it(const SwModel& md, int L, const std::size_t* m, const std::size_t* n, int used,
                                  std::size_t M, std::size_t N, std::size_t checkpoint) {
    if (sw_simd_worth_it(md, L, m, n, used, M, N, sw_simd_min_lanes)) return false;
    for (int l = 0; l < used; ++l) {
        if (!sw_wave_worth_it(md, m[l], n[l])) return false;
        if (checkpoint > 0 && checkpoint < M &&
            static_cast<double>(m[l] + 1) * static_cast<double>(n[l] + 1) >
                static_cast<double>(M / checkpoint + checkpoint + 4) * static_cast<double>(N + 1) * L) {
            return false;
        }
    }
    return true;
}

/// Scores (out, every pair) and, for the pairs with fbar ≠ 0, the backward: each lane group runs
/// its forward into a full table (sw_vtable_states·(M+1)·(N+1) packs per thread) and sweeps it back.
/// Pairs keep their orientation (the hard tie rules depend on it). Lane groups too empty for the
/// lanes (a single pair above all) run pair by pair through the wavefront (sw_wave_grad_worth_it).
template <class F, class W>
void sw_simd_value_and_grad_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                  std::span<const SwSeqPair<std::uint8_t>> pairs, const W* fbar, F* out,
                                  SwBatchGrads& res, int threads, std::size_t checkpoint = 0,
                                  SwTablePool<F>* pool = nullptr) {
    constexpr int L = sw_simd_lanes<F>;
    using V = simd::pack<F, L>;
    const std::size_t K = pairs.size();
    std::vector<std::size_t> m(K), n(K);
    for (std::size_t k = 0; k < K; ++k) m[k] = pairs[k].m, n[k] = pairs[k].n;
    res.Sbar.assign(A * A, 0.0);
    res.g = {};
    if (pool != nullptr && pool->size() < static_cast<std::size_t>(std::max(threads, 1))) {
        pool->resize(static_cast<std::size_t>(std::max(threads, 1)));
    }
    using Work = SwVGradWork<F, L>;
    sw_for_lane_groups<L, Work>(
        m, n, threads,
        [&](const SwGroupShape<L>& g, const std::array<std::size_t, L>& lanes, int used, Work& w) {
            if (w.Sbar.empty()) w.Sbar.assign(A * A, 0.0);
            if (pool != nullptr && w.kept == nullptr) { // this thread's kept table, for the whole call
                w.kept = &(*pool)[exec::this_thread_index()];
                std::swap(w.table, *w.kept);
            }
            if (sw_wave_grad_worth_it(md, L, g.m.data(), g.n.data(), used, g.M, g.N, checkpoint)) {
                // Too few pairs to fill the lanes: pair by pair by the intra-pair wavefront.
                for (int l = 0; l < used; ++l) {
                    const std::size_t k = lanes[l];
                    const SwSeqPair<std::uint8_t>& pr = pairs[k];
                    const F fb = static_cast<F>(fbar[k]);
                    out[k] = fb == F(0) ? sw_wavefront_score_codes<F>(md, p, S, A, pr.q, pr.m, pr.t, pr.n, w.wave)
                                        : sw_wavefront_value_and_grad_codes<F>(md, p, S, A, pr.q, pr.m, pr.t, pr.n,
                                                                               fb, w.Sbar.data(), w.g, w.wave);
                }
                return;
            }
            SwVCodeFill<F, L> fill;
            fill.A = A;
            fill.N = g.N;
            std::array<F, L> fb{}, score{};
            bool any = false;
            for (int l = 0; l < used; ++l) {
                const SwSeqPair<std::uint8_t>& pr = pairs[lanes[l]];
                fill.S[l] = S;
                fill.r[l] = pr.q;
                fill.c[l] = pr.t;
                fill.m[l] = g.m[l];
                fill.n[l] = g.n[l];
                fb[l] = static_cast<F>(fbar[lanes[l]]);
                any = any || fb[l] != F(0);
            }
            fill.prepare();
            if (!any) {
                sw_vforward<F, L>(md, p, g, fill, sw_vrows_rolling(md, g.N, w.rows), w.sbuf, score.data());
            } else {
                SwVGrads<V> acc;
                acc.dtau = md.dtau;
                double* Sbar = w.Sbar.data();
                auto sink_row = [&](std::size_t i, const V* a) {
                    if (fill.vectorised()) return fill.sink_row(i, a, Sbar);
                    for (int l = 0; l < used; ++l) {
                        if (i >= g.m[l]) continue;
                        double* row = Sbar + static_cast<std::size_t>(pairs[lanes[l]].q[i]) * A;
                        const std::uint8_t* t = pairs[lanes[l]].t;
                        for (std::size_t j = 0; j < g.n[l]; ++j) row[t[j]] += static_cast<double>(a[j][l]);
                    }
                };
                sw_vgroup_value_and_grad<F, L>(md, p, g, fill, fb.data(), score.data(), checkpoint, sink_row, acc, w);
                for (int l = 0; l < used; ++l) {
                    w.g.open += static_cast<double>(acc.open[l]);
                    w.g.extend += static_cast<double>(acc.extend[l]);
                    w.g.tau += static_cast<double>(acc.tau[l]);
                }
            }
            for (int l = 0; l < used; ++l) out[lanes[l]] = score[l];
        },
        [&](Work& w) {
            for (std::size_t e = 0; e < w.Sbar.size(); ++e) res.Sbar[e] += w.Sbar[e];
            res.g.open += w.g.open;
            res.g.extend += w.g.extend;
            res.g.tau += md.dtau ? w.g.tau : 0.0; // the scalar paths still sum it
            if (w.kept != nullptr) std::swap(w.table, *w.kept); // back to the caller's pool
        });
}

/// Profile pairs: scores (out, every pair) and, for the pairs with fbar ≠ 0, the backward, whose
/// per-pair ∂F/∂s_ij·fbar (dense m × n, double) goes to pair_grad(k, sbar, B, Sbar, scratch) with
/// B_j = S y_j [n × A] in F and this thread's S̄ (A × A, double) and Scratch; the scalar
/// gradients go to g. Pairs keep their orientation.
template <class F, class X, class Scratch, class PairGrad>
void sw_simd_value_and_grad_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                     std::span<const SwSeqPair<X>> pairs, const double* fbar, F* out,
                                     SwBatchGrads& res, int threads, std::size_t checkpoint, PairGrad&& pair_grad) {
    constexpr int L = sw_simd_lanes<F>;
    using V = simd::pack<F, L>;
    const std::size_t K = pairs.size();
    std::vector<std::size_t> m(K), n(K);
    for (std::size_t k = 0; k < K; ++k) m[k] = pairs[k].m, n[k] = pairs[k].n;
    res.Sbar.assign(A * A, 0.0);
    res.g = {};
    struct Work : SwVGradWork<F, L> {
        std::vector<F> B;
        std::vector<double> dense;
        Scratch scratch;
    };
    sw_for_lane_groups<L, Work>(
        m, n, threads,
        [&](const SwGroupShape<L>& g, const std::array<std::size_t, L>& lanes, int used, Work& w) {
            if (w.Sbar.empty()) w.Sbar.assign(A * A, 0.0);
            if (sw_wave_grad_worth_it(md, L, g.m.data(), g.n.data(), used, g.M, g.N, checkpoint)) {
                // Too few pairs to fill the lanes: pair by pair by the intra-pair wavefront.
                for (int l = 0; l < used; ++l) {
                    const std::size_t k = lanes[l];
                    const SwSeqPair<X>& pr = pairs[k];
                    const F fb = static_cast<F>(fbar[k]);
                    if (fb == F(0)) {
                        out[k] = sw_wavefront_score_profiles<F, X>(md, p, S, A, pr.q, pr.m, pr.t, pr.n, w.wave);
                        continue;
                    }
                    w.dense.assign(pr.m * pr.n, 0.0);
                    out[k] = sw_wavefront_value_and_grad_profiles<F, X>(md, p, S, A, pr.q, pr.m, pr.t, pr.n, fb,
                                                                        w.dense.data(), w.g, w.wave);
                    pair_grad(k, w.dense.data(), w.wave.B.data(), w.Sbar.data(), w.scratch);
                }
                return;
            }
            SwVProfileFill<F, X, L> fill;
            fill.A = A;
            fill.N = g.N;
            w.B.assign(static_cast<std::size_t>(L) * std::max<std::size_t>(g.N, 1) * A, F(0));
            std::array<F, L> fb{}, score{};
            std::array<std::size_t, L + 1> off{};
            bool any = false;
            for (int l = 0; l < used; ++l) {
                const SwSeqPair<X>& pr = pairs[lanes[l]];
                F* Bl = w.B.data() + static_cast<std::size_t>(l) * g.N * A;
                for (std::size_t j = 0; j < pr.n; ++j) {
                    for (std::size_t a = 0; a < A; ++a) {
                        F acc = F(0);
                        for (std::size_t b = 0; b < A; ++b) acc += S[a * A + b] * static_cast<F>(pr.t[j * A + b]);
                        Bl[j * A + a] = acc;
                    }
                }
                fill.x[l] = pr.q;
                fill.B[l] = Bl;
                fill.m[l] = g.m[l];
                fill.n[l] = g.n[l];
                fb[l] = static_cast<F>(fbar[lanes[l]]);
                any = any || fb[l] != F(0);
                off[l + 1] = off[l] + pr.m * pr.n;
            }
            if (!any) {
                sw_vforward<F, L>(md, p, g, fill, sw_vrows_rolling(md, g.N, w.rows), w.sbuf, score.data());
            } else {
                w.dense.assign(off[used], 0.0);
                SwVGrads<V> acc;
                acc.dtau = md.dtau;
                auto sink_row = [&](std::size_t i, const V* a) {
                    for (int l = 0; l < used; ++l) {
                        if (i >= g.m[l]) continue;
                        double* row = w.dense.data() + off[l] + i * g.n[l];
                        for (std::size_t j = 0; j < g.n[l]; ++j) row[j] = static_cast<double>(a[j][l]);
                    }
                };
                sw_vgroup_value_and_grad<F, L>(md, p, g, fill, fb.data(), score.data(), checkpoint, sink_row, acc, w);
                for (int l = 0; l < used; ++l) {
                    w.g.open += static_cast<double>(acc.open[l]);
                    w.g.extend += static_cast<double>(acc.extend[l]);
                    w.g.tau += static_cast<double>(acc.tau[l]);
                    if (fb[l] != F(0)) {
                        pair_grad(lanes[l], w.dense.data() + off[l], w.B.data() + static_cast<std::size_t>(l) * g.N * A,
                                  w.Sbar.data(), w.scratch);
                    }
                }
            }
            for (int l = 0; l < used; ++l) out[lanes[l]] = score[l];
        },
        [&](Work& w) {
            for (std::size_t e = 0; e < w.Sbar.size(); ++e) res.Sbar[e] += w.Sbar[e];
            res.g.open += w.g.open;
            res.g.extend += w.g.extend;
            res.g.tau += md.dtau ? w.g.tau : 0.0; // the scalar paths still sum it
        });
}

} // namespace diffbio::ops::detail

// The wavefront kernels declared above (after this header's primitives, which they use).
#include <diffbio/ops/alignment/sw_wavefront.hpp>
