#pragma once
// Intra-pair SIMD forward and backward of the smooth Smith-Waterman / Needleman-Wunsch DP
// (internal): one pair at a time across the whole SIMD width, by anti-diagonal wavefront.
// smith_waterman.hpp states the recursions and the API; sw_kernel.hpp holds the scalar reference
// kernels; sw_simd.hpp the batched inter-pair kernels (one pair per lane), whose score and
// gradient drivers call this one for the pairs of a batch too few to fill their lanes (a single
// pair above all).
//
// Wavefront. The cells (i, j) of anti-diagonal d = i + j depend only on diagonals d − 1 (up
// (i − 1, j), left (i, j − 1)) and d − 2 (diagonal (i − 1, j − 1)), so a diagonal's cells are
// independent: the kernel walks d = 0..m + n and, on each, runs packs of L consecutive rows i
// (cell (i, d − i); L = sw_wave_lanes_linear/affine<F>). A diagonal is stored by row index i, so
// the three neighbours of the cells i..i+L−1 are the contiguous packs at i − 1 and i of the two
// previous diagonals (three rotating diagonals per state, O(m) memory).
//
// Cell scores along a diagonal. Codes: the target is stored reversed (r_k = t_{n−1−k}), so the
// target letters of cells i..i+L−1 of diagonal d are the contiguous r_{n−d+i..}; with a query
// profile P_b[i] = S[q_{i−1}, b] (A ≤ 8 letters) a pack of scores is A selects on those codes.
// Larger alphabets and profiles fill the diagonal's scores one by one first.
//
// Ragged ends. Rows lo..hi of diagonal d are cells of the pair (lo = max(1, d − n), hi = min(m,
// d − 1)); the last pack runs past hi. Outside the pair the cell score is the sentinel
// sw_none<F> (query profile rows past m, target code A past the ends), so those lanes' M values
// are ≈ none: they add exactly 0 to the local end sum and never win a hard max (as in
// sw_simd.hpp). After each diagonal its lanes past hi are reset to none and the border cells
// (row 0 at position 0, column 0 at position d) are written, so cells of the pair read only
// cells of the pair, borders or none.
//
// States. Linear keeps P. Affine keeps the three soft maxes each cell feeds (sw_vaffine_out):
// g1 (X of the cell below), g2 (Y of the cell to the right), g3 (M of the diagonal cell minus its
// score), so a cell reads g3 at i − 1 on d − 2, g1 at i − 1 and g2 at i on d − 1; the global score
// is g3 at (m, n) (smax(M, X, Y)). Border cells are computed by the scalar kernel's formulas.
//
// Results equal the scalar kernel (sw_kernel.hpp) exactly when hard (the same max of the same
// candidates in F) and to rounding when soft. The local end soft max runs per lane (lane 0 holds
// the empty alignment's 1, the other lanes start empty) and the lanes are combined at the end.
//
// Backward (sw_wavefront_value_and_grad_codes): the forward keeps every diagonal (the full table,
// K·(m + 1)(n + 1) values), then a reverse wavefront pulls the adjoints (see "backward" below);
// the same gradients as sw_kernel.hpp's sw_backward (exactly when hard with integer weights).
//
// Speed (float, AVX-512, one 1000 × 1000 local pair, one core of a loaded machine): forward
// linear 450-530, affine 350-390 M cells/s (the scalar kernel: 26, 16); forward + backward
// 143-147 and 102 (the inter-pair kernel with one lane used: 3.8, 2.1).
//
// Memory: score only 3·K·(m + 1 + 2L) values (K = 1 linear, 3 affine), the query profile
// A·(m + 1 + 2L) and the reversed target n + 2L; backward the full table and 9·(m + 2L + 9)
// adjoints. Compat (DiffBio's model) is not covered: its drivers keep the inter-pair or scalar
// kernels.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/core/simd.hpp>
#include <diffbio/ops/alignment/sw_kernel.hpp>
#include <diffbio/ops/alignment/sw_simd.hpp>

namespace diffbio::ops::detail {

/// Rows per pack of the wavefront (measured, AVX-512, 1000 × 1000): linear four hardware
/// registers of F (independent chains hide the latency of exp/log; +30-45% over one register),
/// affine one (its three states and shared exps already fill the registers: wider packs spill
/// and run 15-25% slower).
template <class F>
inline constexpr int sw_wave_lanes_linear = 4 * simd::native_lanes<F>;
template <class F>
inline constexpr int sw_wave_lanes_affine = simd::native_lanes<F>;

/// Per-thread buffers of the wavefront kernels.
template <class F>
struct SwWaveWork {
    std::vector<F> diag;            ///< score only: 3 diagonals × K states, each (m + 1 + 2L) values
    std::vector<F> table;           ///< backward: every diagonal, K planes of (m + 1)(n + 1) + 4L values
    std::vector<std::size_t> off;   ///< backward: where diagonal d starts in a plane
    std::vector<F> adj;             ///< backward: 3 diagonals × 3 adjoint arrays
    std::vector<F> prof;            ///< query profile A × (m + 1 + 2L), or one diagonal's scores
    std::vector<F> codes;           ///< the reversed target codes (F), n + 2L
    std::vector<F> top, left;       ///< border cells: stored states (and affine M, X, Y), per cell
    std::vector<F> scratch;         ///< the scalar kernel's rows (empty pairs)
    std::vector<F> B;               ///< profiles: B_j = S y_j [n × A]
};

/// Whether the wavefront covers the model (every model but compat).
inline bool sw_wavefront_supports(const SwModel& md) { return md.kind != SwKind::Compat; }

/// Whether a pair of the score drivers' pair-by-pair path (lane groups too empty for the
/// inter-pair kernel) runs the wavefront rather than the scalar kernel: from 4 × 64 cells on (its
/// short diagonals waste lanes, yet it runs 16 × 16 and 300 × 7 pairs 2-4× faster than the scalar
/// kernel, float, AVX-512).
inline bool sw_wave_worth_it(const SwModel& md, std::size_t m, std::size_t n) {
    return sw_wavefront_supports(md) && std::min(m, n) >= 4 && m * n >= 256;
}

/// Code cells, A ≤ 8: query profile rows and the reversed target codes (see the header comment).
template <class F, int L>
struct SwWaveCodeSelect {
    using V = simd::pack<F, L>;
    std::size_t A = 0, n = 0;
    std::array<const F*, 8> P{}; // P[b] + i: profile row of letter b at position i
    const F* codes = nullptr;    // codes[k] = code of t_{n−1−k} (A outside 0..n−1), k ≥ 0
    std::ptrdiff_t shift = 0;    // n − d for the current diagonal
    void diagonal(std::size_t d, std::size_t, std::size_t, std::size_t) {
        shift = static_cast<std::ptrdiff_t>(n) - static_cast<std::ptrdiff_t>(d);
    }
    V at(std::size_t i) const {
        const V c = V::load(codes + (shift + static_cast<std::ptrdiff_t>(i)));
        V s = V::broadcast(sw_none<F>);
        for (std::size_t b = 0; b < A; ++b) {
            s = simd::select(c == V::broadcast(static_cast<F>(b)), V::load(P[b] + i), s);
        }
        return s;
    }
};

/// Cells from a functor cell(i, j) (0-based), one diagonal at a time into buf (indexed by row).
template <class F, int L, class Cell>
struct SwWaveCellFill {
    using V = simd::pack<F, L>;
    const Cell& cell;
    F* buf; // buf[i], rows 0..m + 2L (offset by L by the caller)
    void diagonal(std::size_t d, std::size_t lo, std::size_t hi, std::size_t end) const {
        for (std::size_t i = lo; i <= hi; ++i) buf[i] = cell(i - 1, d - i - 1);
        for (std::size_t i = hi + 1; i < end; ++i) buf[i] = sw_none<F>;
    }
    V at(std::size_t i) const { return V::load(buf + i); }
};

/// Score only: three rotating diagonals per state; at(d, k) points at position 0 of diagonal d's
/// state k (positions −L..m + L exist).
template <class F>
struct SwWaveRolling {
    F* base;
    std::size_t width; // m + 1 + 2L
    std::size_t states;
    std::size_t pad;   // L
    F* at(std::size_t d, std::size_t state) const { return base + ((d % 3) * states + state) * width + pad; }
};

/// Backward: every diagonal of the pair, stored by position i = p_lo(d)..p_hi(d) (p_lo = max(0,
/// d − n), p_hi = min(m, d), borders included), one after the other in each state's plane. A pack
/// past p_hi(d) writes into the next diagonal's room, which that diagonal overwrites later.
template <class F>
struct SwWaveTable {
    F* base;          // plane 0, offset by the front pad
    std::size_t plane;
    const std::size_t* off;
    std::size_t n;
    F* at(std::size_t d, std::size_t state) const {
        const std::size_t lo = d > n ? d - n : 0;
        return base + state * plane + off[d] - lo;
    }
};

/// Local hard: the first maximum of M in row-major order, per lane (value, row, column; (0, 0, 0)
/// is the empty alignment, which wins ties).
template <class V>
struct SwWaveBest {
    V v, i, j;
    void update(const V& Mv, const V& iv, const V& jv) {
        const auto better = (Mv > v) | ((Mv == v) & ((iv < i) | ((iv == i) & (jv < j))));
        v = simd::select(better, Mv, v);
        i = simd::select(better, iv, i);
        j = simd::select(better, jv, j);
    }
    /// The lanes combined: (row, column) of the end cell, (0, 0) for the empty alignment.
    std::pair<std::size_t, std::size_t> cell() const {
        using F = typename V::value_type;
        F bv = F(0), bi = F(0), bj = F(0);
        for (int l = 0; l < V::size; ++l) {
            if (v[l] > bv || (v[l] == bv && (i[l] < bi || (i[l] == bi && j[l] < bj)))) bv = v[l], bi = i[l], bj = j[l];
        }
        return {static_cast<std::size_t>(bi), static_cast<std::size_t>(bj)};
    }
};

template <class V>
V sw_wave_iota() {
    using F = typename V::value_type;
    V r;
    for (int l = 0; l < V::size; ++l) r.set(l, static_cast<F>(l));
    return r;
}

/// The lanes' local end sums combined: τ·log(Σ_l sum_l·e^{(max_l − max)/τ}) + max.
template <bool Hard, class V>
typename V::value_type sw_wave_end_value(const SwVEnd<Hard, V>& end, typename V::value_type tau) {
    using F = typename V::value_type;
    F mx = end.max[0];
    for (int l = 1; l < V::size; ++l) mx = std::max(mx, end.max[l]);
    if constexpr (Hard) {
        return mx;
    } else {
        F sum = F(0);
        for (int l = 0; l < V::size; ++l) {
            if (end.sum[l] > F(0)) sum += end.sum[l] * std::exp((end.max[l] - mx) / tau);
        }
        return mx + tau * std::log(sum);
    }
}

/// Lane 0 holds the empty alignment (max 0, sum 1); the others start empty (sum 0).
template <bool Hard, class V>
SwVEnd<Hard, V> sw_wave_end_init() {
    using F = typename V::value_type;
    SwVEnd<Hard, V> end;
    end.sum = V::broadcast(F(0));
    end.sum.set(0, F(1));
    return end;
}

inline std::size_t sw_wave_round_up(std::size_t lo, std::size_t hi, std::size_t L) {
    return lo + (hi - lo + L) / L * L; // lo + ⌈(hi − lo + 1)/L⌉·L
}

template <class F>
inline F sw_wave_to_none(F v) {
    return v == sw_ninf<F> ? sw_none<F> : v;
}

/// Border cells by the scalar kernel's formulas (−∞ as none). Linear: top[j] = P_0j, left[i] = P_i0.
/// Affine: 6 values per cell, the states it feeds (g1, g2, g3) then its own M, X, Y.
template <bool Hard, bool Local, class F>
void sw_wave_borders(SwKind kind, const SwScalars<F>& p, std::size_t m, std::size_t n, SwWaveWork<F>& w) {
    const F ninf = sw_ninf<F>, o = p.open, e = p.extend, tau = p.tau, inv = F(1) / tau;
    if (kind == SwKind::Linear) {
        w.top.resize(n + 1);
        w.left.resize(m + 1);
        F v = Local ? ninf : F(0);
        w.top[0] = v;
        for (std::size_t j = 1; j <= n; ++j) w.top[j] = (v = v - e);
        v = w.top[0];
        w.left[0] = v;
        for (std::size_t i = 1; i <= m; ++i) w.left[i] = (v = v - e);
        for (F& x : w.top) x = sw_wave_to_none(x);
        for (F& x : w.left) x = sw_wave_to_none(x);
        return;
    }
    w.top.resize(6 * (n + 1));
    w.left.resize(6 * (m + 1));
    auto feed = [&](F M, F X, F Y, F* out) {
        out[0] = sw_smax<F, 3>({M - o, X - e, Y - o}, tau, inv, Hard);
        out[1] = sw_smax<F, 3>({M - o, Y - e, X - o}, tau, inv, Hard);
        out[2] = Local ? sw_smax<F, 4>({F(0), M, X, Y}, tau, inv, Hard) : sw_smax<F, 3>({M, X, Y}, tau, inv, Hard);
        out[3] = M, out[4] = X, out[5] = Y;
        for (int k = 0; k < 6; ++k) out[k] = sw_wave_to_none(out[k]);
    };
    const F M00 = Local ? ninf : F(0);
    F M = M00, X = ninf, Y = ninf;
    feed(M, X, Y, w.top.data());
    for (std::size_t j = 1; j <= n; ++j) {
        const F Yn = sw_smax<F, 3>({M - o, Y - e, X - o}, tau, inv, Hard);
        M = X = ninf;
        Y = Yn;
        feed(M, X, Y, w.top.data() + 6 * j);
    }
    M = M00, X = ninf, Y = ninf;
    std::copy(w.top.begin(), w.top.begin() + 6, w.left.begin());
    for (std::size_t i = 1; i <= m; ++i) {
        const F Xn = sw_smax<F, 3>({M - o, X - e, Y - o}, tau, inv, Hard);
        M = Y = ninf;
        X = Xn;
        feed(M, X, Y, w.left.data() + 6 * i);
    }
}

/// Linear forward over the diagonals `dg` (SwWaveRolling or SwWaveTable, filled with none); best
/// (local hard, may be null) tracks the end cell.
template <bool Hard, bool Local, class F, int L, class Cells, class Diags>
F sw_wave_linear(const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells, const SwWaveWork<F>& w,
                 const Diags& dg, SwWaveBest<simd::pack<F, L>>* best) {
    using V = simd::pack<F, L>;
    const F none = sw_none<F>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V e = V::broadcast(p.extend), zero = V::broadcast(F(0)), iota = sw_wave_iota<V>();
    SwVEnd<Hard, V> end = sw_wave_end_init<Hard, V>();
    [[maybe_unused]] F global = F(0);
    for (std::size_t d = 0; d <= m + n; ++d) {
        F* P = dg.at(d, 0);
        if (d >= 2) {
            const F* Pu = dg.at(d - 1, 0);
            const F* Pd = dg.at(d - 2, 0);
            const std::size_t lo = d > n ? d - n : 1, hi = std::min(m, d - 1);
            if (lo <= hi) {
                const std::size_t stop = sw_wave_round_up(lo, hi, L);
                cells.diagonal(d, lo, hi, stop);
                for (std::size_t i = lo; i < stop; i += L) {
                    const V s = cells.at(i);
                    const V pd = V::load(Pd + i - 1);
                    const V Mv = Local ? s + sw_vsmax2<Hard>(zero, pd, t) : s + pd;
                    const V c = sw_vsmax3<Hard>(Mv, V::load(Pu + i - 1) - e, V::load(Pu + i) - e, t);
                    if constexpr (Local) end.add(Mv, t);
                    if constexpr (Local && Hard) {
                        if (best != nullptr) {
                            const V iv = iota + static_cast<F>(i);
                            best->update(Mv, iv, static_cast<F>(d) - iv);
                        }
                    }
                    c.store(P + i);
                }
                std::fill(P + hi + 1, P + stop, none);
            }
        }
        if (d <= n) P[0] = w.top[d];
        if (d <= m) P[d] = w.left[d];
        if (!Local && d == m + n) global = P[m];
    }
    if constexpr (Local) {
        return sw_wave_end_value<Hard>(end, p.tau);
    } else {
        return global;
    }
}

/// Affine forward (the states each cell feeds, see the header comment) over `dg`.
template <bool Hard, bool Local, bool Fast, class F, int L, class Cells, class Diags>
F sw_wave_affine(const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells, const SwWaveWork<F>& w,
                 const Diags& dg, SwWaveBest<simd::pack<F, L>>* best) {
    using V = simd::pack<F, L>;
    const F none = sw_none<F>;
    const SwAffineOut<V> c(p.open, p.extend, p.tau);
    const V iota = sw_wave_iota<V>();
    SwVEnd<Hard, V> end = sw_wave_end_init<Hard, V>();
    [[maybe_unused]] F global = F(0);
    for (std::size_t d = 0; d <= m + n; ++d) {
        F* G1 = dg.at(d, 0);
        F* G2 = dg.at(d, 1);
        F* G3 = dg.at(d, 2);
        if (d >= 2) {
            const F* U1 = dg.at(d - 1, 0);
            const F* U2 = dg.at(d - 1, 1);
            const F* D3 = dg.at(d - 2, 2);
            const std::size_t lo = d > n ? d - n : 1, hi = std::min(m, d - 1);
            if (lo <= hi) {
                const std::size_t stop = sw_wave_round_up(lo, hi, L);
                cells.diagonal(d, lo, hi, stop);
                for (std::size_t i = lo; i < stop; i += L) {
                    const V Mv = cells.at(i) + V::load(D3 + i - 1);
                    const V Xv = V::load(U1 + i - 1);
                    const V Yv = V::load(U2 + i);
                    if constexpr (Local) end.add(Mv, c.t);
                    if constexpr (Local && Hard) {
                        if (best != nullptr) {
                            const V iv = iota + static_cast<F>(i);
                            best->update(Mv, iv, static_cast<F>(d) - iv);
                        }
                    }
                    V g1, g2, g3;
                    sw_vaffine_out<Hard, Local, Fast>(Mv, Xv, Yv, c, g1, g2, g3);
                    g1.store(G1 + i);
                    g2.store(G2 + i);
                    g3.store(G3 + i);
                }
                std::fill(G1 + hi + 1, G1 + stop, none);
                std::fill(G2 + hi + 1, G2 + stop, none);
                std::fill(G3 + hi + 1, G3 + stop, none);
            }
        }
        if (d <= n) G1[0] = w.top[6 * d], G2[0] = w.top[6 * d + 1], G3[0] = w.top[6 * d + 2];
        if (d <= m) G1[d] = w.left[6 * d], G2[d] = w.left[6 * d + 1], G3[d] = w.left[6 * d + 2];
        if (!Local && d == m + n) global = G3[m];
    }
    if constexpr (Local) {
        return sw_wave_end_value<Hard>(end, p.tau);
    } else {
        return global;
    }
}

/// Whether the affine kernels use the shared-normalisation form (soft, |o − e|/τ in range).
template <class F>
bool sw_wave_fast(const SwModel& md, const SwScalars<F>& p) {
    return !md.hard && std::fabs(p.open - p.extend) / p.tau <= sw_affine_fast_range<F>;
}

/// Calls fn(hard, local, fast) (std::bool_constant each) for the model's flags.
template <class F, class Fn>
void sw_wave_with_flags(const SwModel& md, const SwScalars<F>& p, Fn&& fn) {
    const bool fast = md.kind == SwKind::Affine && sw_wave_fast(md, p);
    sw_with_model_flags(md, [&](auto hard, auto local) {
        fast ? fn(hard, local, std::true_type{}) : fn(hard, local, std::false_type{});
    });
}

/// The score-only forward of one pair (m, n ≥ 1) over `cells`, for the model's flags.
template <class F, int L, class Cells>
F sw_wave_forward(const SwModel& md, const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells,
                  SwWaveWork<F>& w) {
    const std::size_t K = md.states(), width = m + 1 + 2 * static_cast<std::size_t>(L);
    w.diag.assign(3 * K * width, sw_none<F>);
    const SwWaveRolling<F> dg{w.diag.data(), width, K, static_cast<std::size_t>(L)};
    F out = F(0);
    sw_wave_with_flags(md, p, [&](auto hard, auto local, auto fast) {
        constexpr bool H = decltype(hard)::value, Lc = decltype(local)::value, Fs = decltype(fast)::value;
        sw_wave_borders<H, Lc>(md.kind, p, m, n, w);
        if (md.kind == SwKind::Linear) {
            out = sw_wave_linear<H, Lc, F, L>(p, m, n, cells, w, dg, nullptr);
        } else {
            out = sw_wave_affine<H, Lc, Fs, F, L>(p, m, n, cells, w, dg, nullptr);
        }
    });
    return out;
}

// ---- backward ------------------------------------------------------------------------------
// Reverse wavefront d = m + n..0 over the full table of the forward (SwWaveTable), pulling
// adjoints from the successors (three rotating diagonals of adjoints; everything outside a
// diagonal's cells reads 0). Affine: a cell's (M, X, Y) adjoints are the adjoints of the states it
// feeds — X̄ of the cell below for g1, Ȳ of the cell to the right for g2, M̄ of the diagonal cell
// for g3 — times the weights of those soft maxes (recomputed from the cell's own M, X, Y, the same
// candidates in the same order as the scalar kernel, hence the same first-maximum rule when hard),
// plus the local end weight; the global score is g3 of (m, n), seeded as a virtual successor.
// Linear: each cell stores what it passes to its up, left and diagonal predecessors (P̄·w_up,
// P̄·w_left, M̄·w_P), which they pull. M̄ is ∂F/∂s_ij; open, extend and τ collect −w and the
// entropies as in sw_kernel.hpp. Border cells run in scalar code (double), with their M, X, Y.

/// Where adjoint diagonal d (rotating slot) of array k starts: positions −L − 4..m + L + 4.
template <class F>
struct SwWaveAdj {
    F* base;
    std::size_t width, pad;
    F* at(std::size_t d, std::size_t k) const { return base + ((d % 3) * 3 + k) * width + pad; }
    /// Zeroes the positions around diagonal d's cells (p_lo..p_hi) that later diagonals may read.
    void clear_margins(std::size_t d, std::size_t plo, std::size_t phi, std::size_t L) const {
        for (std::size_t k = 0; k < 3; ++k) {
            F* a = at(d, k);
            a[static_cast<std::ptrdiff_t>(plo) - 1] = F(0);
            a[static_cast<std::ptrdiff_t>(plo) - 2] = F(0);
            std::fill(a + phi + 1, a + phi + L + 3, F(0));
        }
    }
};

template <bool Hard, bool Local, bool Fast, class F, int L, class Cells, class Sink>
void sw_wave_affine_backward(const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells, SwWaveWork<F>& w,
                             const SwWaveTable<F>& tab, F score, F fbar, std::pair<std::size_t, std::size_t> best,
                             Sink& sink, SwVGrads<simd::pack<F, L>>& acc, SwGrads& gb) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V o = V::broadcast(p.open), e = V::broadcast(p.extend), zero = V::broadcast(F(0)),
            fb = V::broadcast(fbar), Fv = V::broadcast(score), iota = sw_wave_iota<V>(),
            bi = V::broadcast(static_cast<F>(best.first)), bj = V::broadcast(static_cast<F>(best.second));
    const double od = p.open, ed = p.extend, invd = 1.0 / static_cast<double>(p.tau);
    const SwAffinePull<Local, V> pull(p.open, p.extend, p.tau);
    const std::size_t pad = static_cast<std::size_t>(L) + 4, width = m + 1 + 2 * pad;
    w.adj.assign(9 * width, F(0));
    const SwWaveAdj<F> adj{w.adj.data(), width, pad};
    if (!Local) adj.at(m + n + 2, 0)[m + 1] = fbar; // F = g3(m, n): M̄ of a virtual diagonal successor
    V ent = zero;
    // a border cell (stored M, X, Y), scalar in double
    auto border = [&](std::size_t d, std::size_t pos, const F* v) {
        const double gX = adj.at(d + 1, 1)[pos + 1], gY = adj.at(d + 1, 2)[pos], gM = adj.at(d + 2, 0)[pos + 1];
        const double M = sw_unnone(v[3]), X = sw_unnone(v[4]), Y = sw_unnone(v[5]);
        std::array<double, 3> w1{}, w2{}, w3{};
        std::array<double, 4> w4{};
        const double h1 = sw_weights<3>({M - od, X - ed, Y - od}, invd, Hard, w1);
        const double h2 = sw_weights<3>({M - od, Y - ed, X - od}, invd, Hard, w2);
        double aM = gX * w1[0] + gY * w2[0], aX = gX * w1[1] + gY * w2[2], aY = gX * w1[2] + gY * w2[1], h3 = 0.0;
        if constexpr (Local) {
            h3 = sw_weights<4>({0.0, M, X, Y}, invd, Hard, w4);
            aM += gM * w4[1], aX += gM * w4[2], aY += gM * w4[3];
        } else {
            h3 = sw_weights<3>({M, X, Y}, invd, Hard, w3);
            aM += gM * w3[0], aX += gM * w3[1], aY += gM * w3[2];
        }
        gb.tau += gX * h1 + gY * h2 + gM * h3;
        gb.open -= gX * (w1[0] + w1[2]) + gY * (w2[0] + w2[2]);
        gb.extend -= gX * w1[1] + gY * w2[1];
        adj.at(d, 0)[pos] = static_cast<F>(aM);
        adj.at(d, 1)[pos] = static_cast<F>(aX);
        adj.at(d, 2)[pos] = static_cast<F>(aY);
    };
    for (std::size_t d = m + n + 1; d-- > 0;) {
        F* aM = adj.at(d, 0);
        F* aX = adj.at(d, 1);
        F* aY = adj.at(d, 2);
        const F* nX = adj.at(d + 1, 1);
        const F* nY = adj.at(d + 1, 2);
        const F* nM = adj.at(d + 2, 0);
        if (d >= 2) {
            const std::size_t lo = d > n ? d - n : 1, hi = std::min(m, d - 1);
            if (lo <= hi) {
                const std::size_t stop = sw_wave_round_up(lo, hi, L);
                cells.diagonal(d, lo, hi, stop);
                const F* U1 = tab.at(d - 1, 0);
                const F* U2 = tab.at(d - 1, 1);
                const F* D3 = tab.at(d - 2, 2);
                const V hiv = V::broadcast(static_cast<F>(hi));
                for (std::size_t i = lo; i < stop; i += L) {
                    // lanes past hi read 0 (the first of them sits on the border cell (d, 0), whose
                    // successors' adjoints are not this lane's)
                    const auto in = iota + static_cast<F>(i) <= hiv;
                    const V gX = simd::select(in, V::load(nX + i + 1), zero), gY = simd::select(in, V::load(nY + i), zero),
                            gM = simd::select(in, V::load(nM + i + 1), zero);
                    const V Mv = cells.at(i) + V::load(D3 + i - 1), Xv = V::load(U1 + i - 1), Yv = V::load(U2 + i);
                    if constexpr (!Hard && Fast) { // the forward's shared exps (SwAffinePull)
                        V am, ax, ay;
                        pull(Mv, Xv, Yv, gX, gY, gM, acc, am, ax, ay);
                        if constexpr (Local) {
                            const V tt = (Mv - Fv) * t.inv, ws = simd::exp(tt);
                            if (acc.dtau) ent -= ws * tt;
                            am += fb * ws;
                        }
                        am.store(aM + i);
                        ax.store(aX + i);
                        ay.store(aY + i);
                        continue;
                    }
                    std::array<V, 3> w1, w2;
                    const V h1 = sw_vweights<Hard, 3>({Mv - o, Xv - e, Yv - o}, t, w1, acc.dtau);
                    const V h2 = sw_vweights<Hard, 3>({Mv - o, Yv - e, Xv - o}, t, w2, acc.dtau);
                    V am = gX * w1[0] + gY * w2[0], ax = gX * w1[1] + gY * w2[2], ay = gX * w1[2] + gY * w2[1], h3;
                    if constexpr (Local) {
                        std::array<V, 4> w3;
                        h3 = sw_vweights<Hard, 4>({zero, Mv, Xv, Yv}, t, w3, acc.dtau);
                        am += gM * w3[1], ax += gM * w3[2], ay += gM * w3[3];
                        if constexpr (Hard) {
                            const V iv = iota + static_cast<F>(i);
                            am += simd::select((iv == bi) & ((static_cast<F>(d) - iv) == bj), fb, zero);
                        } else {
                            const V tt = (Mv - Fv) * t.inv, ws = simd::exp(tt);
                            if (acc.dtau) ent -= ws * tt;
                            am += fb * ws;
                        }
                    } else {
                        std::array<V, 3> w3;
                        h3 = sw_vweights<Hard, 3>({Mv, Xv, Yv}, t, w3, acc.dtau);
                        am += gM * w3[0], ax += gM * w3[1], ay += gM * w3[2];
                    }
                    acc.tau += gX * h1 + gY * h2 + gM * h3;
                    acc.open -= gX * (w1[0] + w1[2]) + gY * (w2[0] + w2[2]);
                    acc.extend -= gX * w1[1] + gY * w2[1];
                    am.store(aM + i);
                    ax.store(aX + i);
                    ay.store(aY + i);
                }
                for (std::size_t i = lo; i <= hi; ++i) sink(i - 1, d - i - 1, aM[i]);
            }
        }
        if (d <= n) border(d, 0, w.top.data() + 6 * d);
        if (d <= m && d > 0) border(d, d, w.left.data() + 6 * d);
        adj.clear_margins(d, d > n ? d - n : 0, std::min(m, d), static_cast<std::size_t>(L));
    }
    if constexpr (Local && !Hard) {
        if (acc.dtau) acc.tau += fb * ent;
        gb.tau += static_cast<double>(fbar) * std::exp(-score * invd) * score * invd; // −w₀ log w₀, the empty alignment
    }
}

template <bool Hard, bool Local, class F, int L, class Cells, class Sink>
void sw_wave_linear_backward(const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells, SwWaveWork<F>& w,
                             const SwWaveTable<F>& tab, F score, F fbar, std::pair<std::size_t, std::size_t> best,
                             Sink& sink, SwVGrads<simd::pack<F, L>>& acc, SwGrads& gb) {
    using V = simd::pack<F, L>;
    const SwSoft<V> t{V::broadcast(p.tau), V::broadcast(F(1) / p.tau)};
    const V e = V::broadcast(p.extend), zero = V::broadcast(F(0)), fb = V::broadcast(fbar),
            Fv = V::broadcast(score), iota = sw_wave_iota<V>(), bi = V::broadcast(static_cast<F>(best.first)),
            bj = V::broadcast(static_cast<F>(best.second));
    const double invd = 1.0 / static_cast<double>(p.tau);
    const std::size_t pad = static_cast<std::size_t>(L) + 4, width = m + 1 + 2 * pad;
    w.adj.assign(10 * width, F(0)); // 3 slots × (to up, to left, to diagonal) + this diagonal's M̄
    const SwWaveAdj<F> adj{w.adj.data(), width, pad};
    F* am_row = w.adj.data() + 9 * width + pad;
    if (!Local) adj.at(m + n + 1, 0)[m + 1] = fbar; // F = P_mn: passed up by a virtual cell (m + 1, n)
    V ent = zero;
    for (std::size_t d = m + n + 1; d-- > 0;) {
        F* cu = adj.at(d, 0);
        F* cl = adj.at(d, 1);
        F* cd = adj.at(d, 2);
        const F* nU = adj.at(d + 1, 0);
        const F* nL = adj.at(d + 1, 1);
        const F* nD = adj.at(d + 2, 2);
        if (d >= 2) {
            const std::size_t lo = d > n ? d - n : 1, hi = std::min(m, d - 1);
            if (lo <= hi) {
                const std::size_t stop = sw_wave_round_up(lo, hi, L);
                cells.diagonal(d, lo, hi, stop);
                const F* Pu = tab.at(d - 1, 0);
                const F* Pd = tab.at(d - 2, 0);
                const V hiv = V::broadcast(static_cast<F>(hi));
                for (std::size_t i = lo; i < stop; i += L) {
                    // lanes past hi pull 0 (the first of them sits on the border cell (d, 0))
                    const V Pbar = simd::select(iota + static_cast<F>(i) <= hiv,
                                                V::load(nU + i + 1) + V::load(nL + i) + V::load(nD + i + 1), zero);
                    const V pd = V::load(Pd + i - 1), s = cells.at(i);
                    const V gu = V::load(Pu + i - 1) - e, gl = V::load(Pu + i) - e;
                    V am;
                    if constexpr (Local && !Hard) {
                        V wu, wl, wd;
                        sw_vlinear_local_back(Pbar, s, pd, gu, gl, Fv, fb, t, acc.dtau, acc.tau, ent, am, wu, wl, wd);
                        acc.extend -= Pbar * (wu + wl);
                        (Pbar * wu).store(cu + i);
                        (Pbar * wl).store(cl + i);
                        (am * wd).store(cd + i);
                    } else {
                        const V Mv = Local ? s + sw_vsmax2<Hard>(zero, pd, t) : s + pd;
                        std::array<V, 3> w3;
                        const V h = sw_vweights<Hard, 3>({Mv, gu, gl}, t, w3, acc.dtau);
                        am = Pbar * w3[0];
                        acc.tau += Pbar * h;
                        acc.extend -= Pbar * (w3[1] + w3[2]);
                        (Pbar * w3[1]).store(cu + i);
                        (Pbar * w3[2]).store(cl + i);
                        if constexpr (Local) { // hard: the end cell takes f̄
                            const V iv = iota + static_cast<F>(i);
                            am += simd::select((iv == bi) & ((static_cast<F>(d) - iv) == bj), fb, zero);
                            std::array<V, 2> w2;
                            acc.tau += am * sw_vweights<Hard, 2>({zero, pd}, t, w2, acc.dtau);
                            (am * w2[1]).store(cd + i);
                        } else {
                            am.store(cd + i);
                        }
                    }
                    am.store(am_row + i);
                }
                for (std::size_t i = lo; i <= hi; ++i) sink(i - 1, d - i - 1, am_row[i]);
            }
        }
        // borders: P_0j = P_0,j−1 − e passes everything left, P_i0 = P_i−1,0 − e up
        auto pulled = [&](std::size_t pos) {
            return static_cast<double>(nU[pos + 1]) + static_cast<double>(nL[pos]) + static_cast<double>(nD[pos + 1]);
        };
        if (d <= n) {
            const double a = d > 0 ? pulled(0) : 0.0;
            cu[0] = F(0), cl[0] = static_cast<F>(a), cd[0] = F(0);
            gb.extend -= a;
        }
        if (d <= m && d > 0) {
            const double a = pulled(d);
            cu[d] = static_cast<F>(a), cl[d] = F(0), cd[d] = F(0);
            gb.extend -= a;
        }
        adj.clear_margins(d, d > n ? d - n : 0, std::min(m, d), static_cast<std::size_t>(L));
    }
    if constexpr (Local && !Hard) {
        if (acc.dtau) acc.tau += fb * ent;
        gb.tau += static_cast<double>(fbar) * std::exp(-score * invd) * score * invd;
    }
}

/// Forward into the full table and, for fbar ≠ 0, the backward of one pair (m, n ≥ 1): returns the
/// score; sink(i, j, ∂F/∂s_ij·fbar) per cell, fbar·∂F/∂(open, extend, τ) added into g.
template <class F, int L, class Cells, class Sink>
F sw_wave_value_and_grad(const SwModel& md, const SwScalars<F>& p, std::size_t m, std::size_t n, Cells& cells,
                         F fbar, Sink&& sink, SwGrads& g, SwWaveWork<F>& w) {
    using V = simd::pack<F, L>;
    const std::size_t K = md.states(), diags = m + n + 1, pad = 2 * static_cast<std::size_t>(L);
    w.off.resize(diags + 1);
    w.off[0] = 0;
    for (std::size_t d = 0; d < diags; ++d) w.off[d + 1] = w.off[d] + (std::min(m, d) - (d > n ? d - n : 0) + 1);
    const std::size_t plane = w.off[diags] + 2 * pad;
    diffbio::detail::reserve_hinted(w.table, K * plane); // sw_simd.hpp includes core/huge_pages.hpp
    w.table.assign(K * plane, sw_none<F>);
    const SwWaveTable<F> tab{w.table.data() + pad, plane, w.off.data(), n};
    F score = F(0);
    sw_wave_with_flags(md, p, [&](auto hard, auto local, auto fast) {
        constexpr bool H = decltype(hard)::value, Lc = decltype(local)::value, Fs = decltype(fast)::value;
        sw_wave_borders<H, Lc>(md.kind, p, m, n, w);
        SwWaveBest<V> best{V::broadcast(F(0)), V::broadcast(F(0)), V::broadcast(F(0))};
        SwWaveBest<V>* track = Lc && H ? &best : nullptr;
        if (md.kind == SwKind::Linear) {
            score = sw_wave_linear<H, Lc, F, L>(p, m, n, cells, w, tab, track);
        } else {
            score = sw_wave_affine<H, Lc, Fs, F, L>(p, m, n, cells, w, tab, track);
        }
        if (fbar == F(0)) return;
        const std::pair<std::size_t, std::size_t> end = track != nullptr ? best.cell() : std::pair<std::size_t, std::size_t>{};
        SwVGrads<V> acc;
        acc.dtau = md.dtau;
        if (md.kind == SwKind::Linear) {
            sw_wave_linear_backward<H, Lc, F, L>(p, m, n, cells, w, tab, score, fbar, end, sink, acc, g);
        } else {
            sw_wave_affine_backward<H, Lc, Fs, F, L>(p, m, n, cells, w, tab, score, fbar, end, sink, acc, g);
        }
        for (int l = 0; l < L; ++l) {
            g.open += static_cast<double>(acc.open[l]);
            g.extend += static_cast<double>(acc.extend[l]);
            g.tau += static_cast<double>(acc.tau[l]);
        }
    });
    return score;
}

/// The score of one pair of integer codes (S row-major A × A, codes < A) by the wavefront; linear
/// and affine, local and global, soft and hard (compat: see sw_wavefront_supports). Empty pairs
/// run the scalar kernel (borders only).
/// Runs fn(cells) with the code cells of one pair (m, n ≥ 1) for packs of L rows.
template <class F, int L, class Fn>
auto sw_wave_with_code_cells(const F* S, std::size_t A, const std::uint8_t* q, std::size_t m, const std::uint8_t* t,
                             std::size_t n, SwWaveWork<F>& w, Fn&& fn) {
    const std::size_t pad = static_cast<std::size_t>(L), width = m + 1 + 2 * pad;
    if (A <= 8) {
        SwWaveCodeSelect<F, L> cells;
        cells.A = A;
        cells.n = n;
        w.prof.assign(A * width, sw_none<F>);
        for (std::size_t b = 0; b < A; ++b) {
            F* Pb = w.prof.data() + b * width + pad;
            for (std::size_t i = 1; i <= m; ++i) Pb[i] = S[static_cast<std::size_t>(q[i - 1]) * A + b];
            cells.P[b] = Pb;
        }
        w.codes.assign(n + 2 * pad, static_cast<F>(A));
        for (std::size_t k = 0; k < n; ++k) w.codes[k] = static_cast<F>(t[n - 1 - k]);
        cells.codes = w.codes.data();
        return fn(cells);
    }
    w.prof.assign(width, sw_none<F>);
    auto cell = [S, A, q, t](std::size_t i, std::size_t j) { return S[static_cast<std::size_t>(q[i]) * A + t[j]]; };
    SwWaveCellFill<F, L, decltype(cell)> cells{cell, w.prof.data() + pad};
    return fn(cells);
}

/// The score of one pair of integer codes (S row-major A × A, codes < A) by the wavefront; linear
/// and affine, local and global, soft and hard (compat: see sw_wavefront_supports). Empty pairs
/// run the scalar kernel (borders only).
template <class F, int L>
F sw_wave_score_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A, const std::uint8_t* q,
                      std::size_t m, const std::uint8_t* t, std::size_t n, SwWaveWork<F>& w) {
    if (m == 0 || n == 0 || !sw_wavefront_supports(md)) {
        auto cell = [S, A, q, t](std::size_t i, std::size_t j) { return S[static_cast<std::size_t>(q[i]) * A + t[j]]; };
        return sw_forward<F>(md, p, m, n, cell, static_cast<F*>(nullptr), w.scratch);
    }
    return sw_wave_with_code_cells<F, L>(S, A, q, m, t, n, w,
                                         [&](auto& cells) { return sw_wave_forward<F, L>(md, p, m, n, cells, w); });
}

/// Score and gradients of one pair of integer codes (m, n ≥ 1; linear or affine) by the wavefront:
/// returns the score and adds fbar·∂F/∂S into Sbar (A × A, row-major) and fbar·∂F/∂(open, extend,
/// τ) into g. Memory: the full table, K·(m + 1)(n + 1) values of F (K = 1 linear, 3 affine).
template <class F>
F sw_wavefront_value_and_grad_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                    const std::uint8_t* q, std::size_t m, const std::uint8_t* t, std::size_t n,
                                    F fbar, double* Sbar, SwGrads& g, SwWaveWork<F>& w) {
    auto sink = [Sbar, A, q, t](std::size_t i, std::size_t j, F v) {
        Sbar[static_cast<std::size_t>(q[i]) * A + t[j]] += static_cast<double>(v);
    };
    auto run = [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        return sw_wave_with_code_cells<F, L>(S, A, q, m, t, n, w, [&](auto& cells) {
            return sw_wave_value_and_grad<F, L>(md, p, m, n, cells, fbar, sink, g, w);
        });
    };
    return md.kind == SwKind::Linear ? run(std::integral_constant<int, sw_wave_lanes_linear<F>>{})
                                     : run(std::integral_constant<int, sw_wave_lanes_affine<F>>{});
}

template <class F>
F sw_wavefront_score_codes(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A, const std::uint8_t* q,
                           std::size_t m, const std::uint8_t* t, std::size_t n, SwWaveWork<F>& w) {
    return md.kind == SwKind::Linear ? sw_wave_score_codes<F, sw_wave_lanes_linear<F>>(md, p, S, A, q, m, t, n, w)
                                     : sw_wave_score_codes<F, sw_wave_lanes_affine<F>>(md, p, S, A, q, m, t, n, w);
}

/// Profile cells of one pair: B_j = S·y_j into w.B (n × A), then fn(cell) with the functor
/// cell(i, j) = x_i·B_j (0-based).
template <class F, class X, class Fn>
auto sw_wave_with_profile_cell(const F* S, std::size_t A, const X* x, const X* y, std::size_t n, SwWaveWork<F>& w,
                               Fn&& fn) {
    w.B.assign(std::max<std::size_t>(n, 1) * A, F(0));
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t a = 0; a < A; ++a) {
            F acc = F(0);
            for (std::size_t b = 0; b < A; ++b) acc += S[a * A + b] * static_cast<F>(y[j * A + b]);
            w.B[j * A + a] = acc;
        }
    }
    const F* B = w.B.data();
    auto cell = [x, B, A](std::size_t i, std::size_t j) {
        F acc = F(0);
        for (std::size_t a = 0; a < A; ++a) acc += static_cast<F>(x[i * A + a]) * B[j * A + a];
        return acc;
    };
    return fn(cell);
}

/// fn(cells, lanes) with the diagonal filler of a cell functor, at the model's pack width
/// (lanes: std::integral_constant of L).
template <class F, class Cell, class Fn>
auto sw_wave_with_cell_fill(const SwModel& md, std::size_t m, const Cell& cell, SwWaveWork<F>& w, Fn&& fn) {
    auto run = [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        const std::size_t pad = static_cast<std::size_t>(L);
        w.prof.assign(m + 1 + 2 * pad, sw_none<F>);
        SwWaveCellFill<F, L, Cell> cells{cell, w.prof.data() + pad};
        return fn(cells, lanes);
    };
    return md.kind == SwKind::Linear ? run(std::integral_constant<int, sw_wave_lanes_linear<F>>{})
                                     : run(std::integral_constant<int, sw_wave_lanes_affine<F>>{});
}

/// The score of one pair of profiles (rows of A values of X: s_ij = x_i·S·y_j) by the wavefront.
template <class F, class X>
F sw_wavefront_score_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A, const X* x,
                              std::size_t m, const X* y, std::size_t n, SwWaveWork<F>& w) {
    return sw_wave_with_profile_cell<F>(S, A, x, y, n, w, [&](const auto& cell) {
        if (m == 0 || n == 0 || !sw_wavefront_supports(md)) {
            return sw_forward<F>(md, p, m, n, cell, static_cast<F*>(nullptr), w.scratch);
        }
        return sw_wave_with_cell_fill<F>(md, m, cell, w, [&](auto& cells, auto lanes) {
            return sw_wave_forward<F, decltype(lanes)::value>(md, p, m, n, cells, w);
        });
    });
}

/// Score and match adjoints of one pair of profiles (m, n ≥ 1; linear or affine) by the wavefront:
/// returns the score, writes dense[i·n + j] = fbar·∂F/∂s_ij (m × n, row-major) and adds
/// fbar·∂F/∂(open, extend, τ) into g; leaves B_j = S·y_j in w.B (n × A) for the chain rule to the
/// profiles and S. Memory: the full table, K·(m + 1)(n + 1) values of F, and the m × n adjoints.
template <class F, class X>
F sw_wavefront_value_and_grad_profiles(const SwModel& md, const SwScalars<F>& p, const F* S, std::size_t A,
                                       const X* x, std::size_t m, const X* y, std::size_t n, F fbar, double* dense,
                                       SwGrads& g, SwWaveWork<F>& w) {
    auto sink = [dense, n](std::size_t i, std::size_t j, F v) { dense[i * n + j] = static_cast<double>(v); };
    return sw_wave_with_profile_cell<F>(S, A, x, y, n, w, [&](const auto& cell) {
        return sw_wave_with_cell_fill<F>(md, m, cell, w, [&](auto& cells, auto lanes) {
            return sw_wave_value_and_grad<F, decltype(lanes)::value>(md, p, m, n, cells, fbar, sink, g, w);
        });
    });
}

} // namespace diffbio::ops::detail
