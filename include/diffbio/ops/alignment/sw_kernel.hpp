#pragma once
// Per-pair kernels of the smooth Smith-Waterman / Needleman-Wunsch DP on raw arrays (internal).
// smith_waterman.hpp states the recursions, the conventions and the public API; this header holds
//   sw_forward     the forward DP for one pair, any of float/double, either into two rolling rows
//                  (O(n) memory, score only) or into the full (m+1)×(n+1) table of every state
//   sw_score       the forward with O(min(m, n)) memory (the DP is symmetric: it transposes)
//   sw_backward    the reverse sweep over a full table (double): per-cell softmax weights push the
//                  adjoints back; gives ∂F/∂s_ij (the posterior, through a sink), ∂F/∂open,
//                  ∂F/∂extend and ∂F/∂τ
//   sw_traceback   the hard (max) path through a full hard table, as M/I/D operations
// Each works on one pair through a cell-score functor s(i, j) (0-based i < m, j < n). The batched
// SIMD kernels (sw_simd.hpp) run the operator's float/double paths; these scalar kernels are their
// reference (tests, benchmark baseline) and serve posteriors, tracebacks and profile gradients.
//
// Tables: plane k of state k (affine: M, X, Y; linear and compat: H) is (m+1)×(n+1) row-major,
// row i, column j at k·(m+1)(n+1) + i·(n+1) + j. −∞ marks "no path" (borders of local DPs); every
// soft max skips −∞ candidates and a cell whose candidates are all −∞ stays −∞, so no NaN arises.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace diffbio::ops::detail {

enum class SwKind : std::uint8_t {
    Linear, ///< one state, every gap position costs `extend`
    Affine, ///< Gotoh: match M, query gap X (consumes a query letter), target gap Y
    Compat  ///< DiffBio's recursion: linear gap open + extend, restart 0 in every cell, hard max at the end
};

struct SwModel {
    SwKind kind = SwKind::Affine;
    bool local = true;
    bool hard = false; ///< exact max in every cell (τ unused)
    /// Gradients include ∂/∂τ. false: the SIMD backwards skip its entropy terms (a log per cell
    /// linear, three affine) and the drivers report 0 for it.
    bool dtau = true;
    std::size_t states() const noexcept { return kind == SwKind::Affine ? 3 : 1; }
};

/// Gap penalties (subtracted) and the temperature.
template <class F>
struct SwScalars {
    F open;
    F extend;
    F tau;
};

/// ∂F/∂open, ∂F/∂extend, ∂F/∂τ accumulated by sw_backward.
struct SwGrads {
    double open = 0.0;
    double extend = 0.0;
    double tau = 0.0;
};

template <class F>
inline constexpr F sw_ninf = -std::numeric_limits<F>::infinity();

/// τ·log Σ_k e^{c_k/τ} = m + τ·log(1 + Σ_{k ≠ k*} e^{(c_k − m)/τ}), m = c_{k*} the first max
/// (every exponent ≤ 0; the max's own term is the 1, so one exp fewer); −∞ candidates add nothing,
/// all −∞ gives −∞. Hard: the max. (log(1 + r) rather than log1p: r ∈ [0, K − 1], the absolute error
/// is the same τ·ε, and glibc's log is ~1.5× faster.)
template <class F, std::size_t K>
inline F sw_smax(const std::array<F, K>& c, F tau, F inv_tau, bool hard) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < K; ++k) best = c[k] > c[best] ? k : best;
    const F m = c[best];
    if (hard || m == sw_ninf<F>) return m;
    F rest = F(0);
    for (std::size_t k = 0; k < K; ++k) {
        if (k != best) rest += std::exp((c[k] - m) * inv_tau);
    }
    return m + tau * std::log(F(1) + rest);
}

/// Index of the first maximum (the tie rule of the hard DP, its gradient and its traceback).
template <std::size_t K>
inline std::size_t sw_argmax(const std::array<double, K>& c) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < K; ++k) best = c[k] > c[best] ? k : best;
    return best;
}

/// w = ∂smax/∂c (softmax weights summing to 1; one-hot at the first max when hard; all 0 when every
/// candidate is −∞). Returns ∂smax/∂τ = (smax − Σ w_k c_k)/τ = −Σ w_k log w_k (0 when hard).
template <std::size_t K>
inline double sw_weights(const std::array<double, K>& c, double inv_tau, bool hard, std::array<double, K>& w) {
    const std::size_t best = sw_argmax(c);
    const double m = c[best];
    w.fill(0.0);
    if (m == sw_ninf<double>) return 0.0;
    if (hard) {
        w[best] = 1.0;
        return 0.0;
    }
    std::array<double, K> t{};
    double rest = 0.0;
    for (std::size_t k = 0; k < K; ++k) {
        if (k == best) continue;
        t[k] = (c[k] - m) * inv_tau;
        w[k] = std::exp(t[k]);
        rest += w[k];
    }
    w[best] = 1.0;
    const double inv_z = 1.0 / (1.0 + rest);
    double wt = 0.0;
    for (std::size_t k = 0; k < K; ++k) {
        w[k] *= inv_z;
        if (w[k] > 0.0) wt += w[k] * t[k];
    }
    return std::log(1.0 + rest) - wt; // log w_k = t_k − log z, z = 1 + rest
}

/// Online τ·log(1 + Σ e^{v/τ}): the local end score over every cell plus the empty alignment (0).
template <class F>
struct SwEndSum {
    F tau;
    F inv_tau;
    bool hard;
    F max = F(0); // the empty alignment
    F sum = F(1);
    void add(F v) {
        if (hard) {
            max = v > max ? v : max;
        } else if (v <= max) {
            sum += std::exp((v - max) * inv_tau);
        } else {
            sum = sum * std::exp((max - v) * inv_tau) + F(1);
            max = v;
        }
    }
    F value() const { return hard ? max : max + tau * std::log(sum); }
};

/// Row pointers into the full table (full = true) or into two rolling rows per state.
template <class F>
struct SwRows {
    F* base;
    std::size_t plane; // elements per state
    std::size_t width; // n + 1
    bool full;
    F* row(std::size_t state, std::size_t i) const { return base + state * plane + (full ? i : (i & 1U)) * width; }
};

template <class F, class Cell>
F sw_forward_linear(bool local, bool hard, const SwScalars<F>& p, std::size_t m, std::size_t n, const Cell& cell,
                    const SwRows<F>& rows) {
    const F ninf = sw_ninf<F>, e = p.extend, tau = p.tau, inv = F(1) / tau;
    F* P0 = rows.row(0, 0);
    P0[0] = local ? ninf : F(0);
    for (std::size_t j = 1; j <= n; ++j) P0[j] = P0[j - 1] - e; // local: −∞ stays −∞
    SwEndSum<F> end{tau, inv, hard};
    for (std::size_t i = 1; i <= m; ++i) {
        F* P = rows.row(0, i);
        const F* Pu = rows.row(0, i - 1);
        P[0] = Pu[0] - e;
        for (std::size_t j = 1; j <= n; ++j) {
            const F s = cell(i - 1, j - 1);
            const F M = local ? s + sw_smax<F, 2>({F(0), Pu[j - 1]}, tau, inv, hard) : s + Pu[j - 1];
            P[j] = sw_smax<F, 3>({M, Pu[j] - e, P[j - 1] - e}, tau, inv, hard);
            if (local) end.add(M);
        }
    }
    return local ? end.value() : rows.row(0, m)[n];
}

template <class F, class Cell>
F sw_forward_affine(bool local, bool hard, const SwScalars<F>& p, std::size_t m, std::size_t n, const Cell& cell,
                    const SwRows<F>& rows) {
    const F ninf = sw_ninf<F>, o = p.open, e = p.extend, tau = p.tau, inv = F(1) / tau;
    const F restart = local ? F(0) : ninf;
    {
        F* M = rows.row(0, 0);
        F* X = rows.row(1, 0);
        F* Y = rows.row(2, 0);
        M[0] = local ? ninf : F(0);
        X[0] = Y[0] = ninf;
        for (std::size_t j = 1; j <= n; ++j) {
            M[j] = X[j] = ninf;
            Y[j] = sw_smax<F, 3>({M[j - 1] - o, Y[j - 1] - e, X[j - 1] - o}, tau, inv, hard);
        }
    }
    SwEndSum<F> end{tau, inv, hard};
    for (std::size_t i = 1; i <= m; ++i) {
        F* M = rows.row(0, i);
        F* X = rows.row(1, i);
        F* Y = rows.row(2, i);
        const F* Mu = rows.row(0, i - 1);
        const F* Xu = rows.row(1, i - 1);
        const F* Yu = rows.row(2, i - 1);
        M[0] = Y[0] = ninf;
        X[0] = sw_smax<F, 3>({Mu[0] - o, Xu[0] - e, Yu[0] - o}, tau, inv, hard);
        for (std::size_t j = 1; j <= n; ++j) {
            M[j] = cell(i - 1, j - 1) + sw_smax<F, 4>({restart, Mu[j - 1], Xu[j - 1], Yu[j - 1]}, tau, inv, hard);
            X[j] = sw_smax<F, 3>({Mu[j] - o, Xu[j] - e, Yu[j] - o}, tau, inv, hard);
            Y[j] = sw_smax<F, 3>({M[j - 1] - o, Y[j - 1] - e, X[j - 1] - o}, tau, inv, hard);
            if (local) end.add(M[j]);
        }
    }
    if (local) return end.value();
    return sw_smax<F, 3>({rows.row(0, m)[n], rows.row(1, m)[n], rows.row(2, m)[n]}, tau, inv, hard);
}

template <class F, class Cell>
F sw_forward_compat(bool hard, const SwScalars<F>& p, std::size_t m, std::size_t n, const Cell& cell,
                    const SwRows<F>& rows) {
    const F g = p.open + p.extend, tau = p.tau, inv = F(1) / tau;
    F* H0 = rows.row(0, 0);
    for (std::size_t j = 0; j <= n; ++j) H0[j] = F(0);
    F mx = F(0); // DiffBio: the max over all of H, border zeros included
    for (std::size_t i = 1; i <= m; ++i) {
        F* H = rows.row(0, i);
        const F* Hu = rows.row(0, i - 1);
        H[0] = F(0);
        for (std::size_t j = 1; j <= n; ++j) {
            H[j] = sw_smax<F, 4>({F(0), Hu[j - 1] + cell(i - 1, j - 1), Hu[j] - g, H[j - 1] - g}, tau, inv, hard);
            mx = H[j] > mx ? H[j] : mx;
        }
    }
    return sw_smax<F, 2>({F(0), mx}, tau, inv, hard);
}

/// Forward DP of one pair: returns the score F. store (K·(m+1)·(n+1) values, K = model.states())
/// receives the full table when non-null; otherwise two rolling rows live in scratch (O(n)).
template <class F, class Cell>
F sw_forward(const SwModel& model, const SwScalars<F>& p, std::size_t m, std::size_t n, const Cell& cell, F* store,
             std::vector<F>& scratch) {
    const std::size_t w = n + 1;
    SwRows<F> rows{store, (m + 1) * w, w, true};
    if (store == nullptr) {
        scratch.resize(model.states() * 2 * w);
        rows = {scratch.data(), 2 * w, w, false};
    }
    switch (model.kind) {
    case SwKind::Linear: return sw_forward_linear(model.local, model.hard, p, m, n, cell, rows);
    case SwKind::Affine: return sw_forward_affine(model.local, model.hard, p, m, n, cell, rows);
    case SwKind::Compat: return sw_forward_compat(model.hard, p, m, n, cell, rows);
    }
    return F(0);
}

/// s'(i, j) = s(j, i): the same DP with the two sequences swapped.
template <class Cell>
struct SwTransposed {
    const Cell& cell;
    auto operator()(std::size_t i, std::size_t j) const { return cell(j, i); }
};

/// The score with O(min(m, n)) memory. Every model is symmetric in the two sequences (swapping
/// them transposes the DP, exchanges X and Y, and keeps the score), so the rolling rows run along
/// the shorter one.
template <class F, class Cell>
F sw_score(const SwModel& model, const SwScalars<F>& p, std::size_t m, std::size_t n, const Cell& cell,
           std::vector<F>& scratch) {
    if (n > m) return sw_forward(model, p, n, m, SwTransposed<Cell>{cell}, static_cast<F*>(nullptr), scratch);
    return sw_forward(model, p, m, n, cell, static_cast<F*>(nullptr), scratch);
}

// ---- backward ------------------------------------------------------------------------------------
// Reverse sweep i = m..0, j = n..0: when cell (i, j) is reached every successor has pushed its
// adjoint into it, so two rolling rows of adjoints suffice. For a state v = smax_τ(c) with adjoint
// v̄ and weights w = softmax(c/τ): c̄_k += v̄·w_k, τ̄ += v̄·(−Σ w log w); a candidate c = u − open
// also sends −v̄·w_k to open (likewise extend). A match state's adjoint is ∂F/∂s_ij, the posterior
// probability (times F̄) that query letter i is aligned with target letter j.

template <class Cell, class Sink>
void sw_backward_linear(bool local, bool hard, const SwScalars<double>& p, std::size_t m, std::size_t n,
                        const Cell& cell, const double* H, double F, double fbar, Sink& sink, SwGrads& g,
                        std::vector<double>& scratch) {
    const double ninf = sw_ninf<double>, e = p.extend, tau = p.tau, inv = 1.0 / tau;
    const std::size_t w = n + 1;
    scratch.assign(2 * w, 0.0);
    double* cur = scratch.data();
    double* prev = cur + w;
    auto P = [&](std::size_t i) { return H + i * w; };
    auto match = [&](std::size_t i, std::size_t j) { // M_ij, recomputed exactly as in the forward
        const double s = cell(i - 1, j - 1);
        return local ? s + sw_smax<double, 2>({0.0, P(i - 1)[j - 1]}, tau, inv, hard) : s + P(i - 1)[j - 1];
    };
    // Local: F = smax(0, {M_ij}); hard picks the first maximum in row-major order, the empty
    // alignment (0) winning ties.
    std::size_t best_i = 0, best_j = 0;
    if (local && hard) {
        double best = 0.0;
        for (std::size_t i = 1; i <= m; ++i) {
            for (std::size_t j = 1; j <= n; ++j) {
                const double v = match(i, j);
                if (v > best) best = v, best_i = i, best_j = j;
            }
        }
    }
    if (!local) cur[n] = fbar; // F = P_mn (m is the current row)
    double end_entropy = local && !hard ? std::exp(-F * inv) * F * inv : 0.0; // −w₀ log w₀ of the empty alignment
    std::array<double, 3> w3{};
    std::array<double, 2> w2{};
    for (std::size_t i = m + 1; i-- > 0;) {
        const double* Pi = P(i);
        for (std::size_t j = n + 1; j-- > 0;) {
            if (i == 0 && j == 0) continue;
            const double a = cur[j];
            const bool inner = i > 0 && j > 0;
            const double M = inner ? match(i, j) : ninf;
            double aM = 0.0;
            if (a != 0.0) {
                g.tau += a * sw_weights<3>({M, i > 0 ? P(i - 1)[j] - e : ninf, j > 0 ? Pi[j - 1] - e : ninf}, inv,
                                           hard, w3);
                aM += a * w3[0];
                prev[j] += a * w3[1];
                if (j > 0) cur[j - 1] += a * w3[2];
                g.extend -= a * (w3[1] + w3[2]);
            }
            if (local && inner) {
                double ws = 0.0;
                if (hard) {
                    ws = i == best_i && j == best_j ? 1.0 : 0.0;
                } else {
                    const double t = (M - F) * inv;
                    ws = std::exp(t);
                    if (ws > 0.0) end_entropy -= ws * t;
                }
                aM += fbar * ws;
            }
            if (inner && aM != 0.0) {
                sink(i - 1, j - 1, aM);
                if (local) {
                    g.tau += aM * sw_weights<2>({0.0, P(i - 1)[j - 1]}, inv, hard, w2);
                    prev[j - 1] += aM * w2[1];
                } else {
                    prev[j - 1] += aM;
                }
            }
        }
        std::swap(cur, prev);
        std::fill(prev, prev + w, 0.0);
    }
    g.tau += fbar * end_entropy;
}

template <class Cell, class Sink>
void sw_backward_affine(bool local, bool hard, const SwScalars<double>& p, std::size_t m, std::size_t n,
                        const Cell& cell, const double* table, double F, double fbar, Sink& sink, SwGrads& g,
                        std::vector<double>& scratch) {
    (void)cell;
    const double ninf = sw_ninf<double>, o = p.open, e = p.extend, tau = p.tau, inv = 1.0 / tau;
    const double restart = local ? 0.0 : ninf;
    const std::size_t w = n + 1, plane = (m + 1) * w;
    const double* Mt = table;
    const double* Xt = table + plane;
    const double* Yt = table + 2 * plane;
    scratch.assign(6 * w, 0.0);
    double* cM = scratch.data();
    double* cX = cM + w;
    double* cY = cX + w;
    double* pM = cY + w;
    double* pX = pM + w;
    double* pY = pX + w;
    std::size_t best_i = 0, best_j = 0;
    if (local && hard) {
        double best = 0.0;
        for (std::size_t i = 1; i <= m; ++i) {
            for (std::size_t j = 1; j <= n; ++j) {
                if (Mt[i * w + j] > best) best = Mt[i * w + j], best_i = i, best_j = j;
            }
        }
    }
    std::array<double, 3> w3{};
    std::array<double, 4> w4{};
    if (!local && (m > 0 || n > 0)) { // F = smax(M_mn, X_mn, Y_mn)
        const std::size_t k = m * w + n;
        g.tau += fbar * sw_weights<3>({Mt[k], Xt[k], Yt[k]}, inv, hard, w3);
        cM[n] += fbar * w3[0];
        cX[n] += fbar * w3[1];
        cY[n] += fbar * w3[2];
    }
    double end_entropy = local && !hard ? std::exp(-F * inv) * F * inv : 0.0;
    for (std::size_t i = m + 1; i-- > 0;) {
        const double* M = Mt + i * w;
        const double* X = Xt + i * w;
        const double* Y = Yt + i * w;
        for (std::size_t j = n + 1; j-- > 0;) {
            if (i == 0 && j == 0) continue;
            double aM = cM[j];
            const double aX = cX[j], aY = cY[j];
            if (local && i > 0 && j > 0) {
                if (hard) {
                    aM += i == best_i && j == best_j ? fbar : 0.0;
                } else {
                    const double t = (M[j] - F) * inv, ws = std::exp(t);
                    if (ws > 0.0) end_entropy -= ws * t;
                    aM += fbar * ws;
                }
            }
            if (i > 0 && j > 0 && aM != 0.0) {
                sink(i - 1, j - 1, aM);
                const double* Md = M - w;
                const double* Xd = X - w;
                const double* Yd = Y - w;
                g.tau += aM * sw_weights<4>({restart, Md[j - 1], Xd[j - 1], Yd[j - 1]}, inv, hard, w4);
                pM[j - 1] += aM * w4[1];
                pX[j - 1] += aM * w4[2];
                pY[j - 1] += aM * w4[3];
            }
            if (i > 0 && aX != 0.0) {
                const double* Mu = M - w;
                const double* Xu = X - w;
                const double* Yu = Y - w;
                g.tau += aX * sw_weights<3>({Mu[j] - o, Xu[j] - e, Yu[j] - o}, inv, hard, w3);
                pM[j] += aX * w3[0];
                pX[j] += aX * w3[1];
                pY[j] += aX * w3[2];
                g.open -= aX * (w3[0] + w3[2]);
                g.extend -= aX * w3[1];
            }
            if (j > 0 && aY != 0.0) {
                g.tau += aY * sw_weights<3>({M[j - 1] - o, Y[j - 1] - e, X[j - 1] - o}, inv, hard, w3);
                cM[j - 1] += aY * w3[0];
                cY[j - 1] += aY * w3[1];
                cX[j - 1] += aY * w3[2];
                g.open -= aY * (w3[0] + w3[2]);
                g.extend -= aY * w3[1];
            }
        }
        std::swap(cM, pM);
        std::swap(cX, pX);
        std::swap(cY, pY);
        std::fill(pM, pM + w, 0.0);
        std::fill(pX, pX + w, 0.0);
        std::fill(pY, pY + w, 0.0);
    }
    g.tau += fbar * end_entropy;
}

template <class Cell, class Sink>
void sw_backward_compat(bool hard, const SwScalars<double>& p, std::size_t m, std::size_t n, const Cell& cell,
                        const double* H, double fbar, Sink& sink, SwGrads& g, std::vector<double>& scratch) {
    const double gap = p.open + p.extend, tau = p.tau, inv = 1.0 / tau;
    const std::size_t w = n + 1;
    // The hard max over H; its adjoint is split equally among tied cells (as JAX's max gradient).
    double mx = 0.0;
    std::size_t ties = 0;
    for (std::size_t i = 1; i <= m; ++i) {
        for (std::size_t j = 1; j <= n; ++j) mx = std::max(mx, H[i * w + j]);
    }
    for (std::size_t i = 1; i <= m; ++i) {
        for (std::size_t j = 1; j <= n; ++j) ties += H[i * w + j] == mx ? 1U : 0U;
    }
    std::array<double, 2> w2{};
    g.tau += fbar * sw_weights<2>({0.0, mx}, inv, hard, w2);
    const double mbar = ties > 0 ? fbar * w2[1] / static_cast<double>(ties) : 0.0;
    scratch.assign(2 * w, 0.0);
    double* cur = scratch.data();
    double* prev = cur + w;
    std::array<double, 4> w4{};
    for (std::size_t i = m; i > 0; --i) {
        const double* Hi = H + i * w;
        const double* Hu = Hi - w;
        for (std::size_t j = n; j > 0; --j) {
            const double a = cur[j] + (Hi[j] == mx ? mbar : 0.0);
            if (a == 0.0) continue;
            g.tau += a * sw_weights<4>({0.0, Hu[j - 1] + cell(i - 1, j - 1), Hu[j] - gap, Hi[j - 1] - gap}, inv, hard, w4);
            sink(i - 1, j - 1, a * w4[1]);
            prev[j - 1] += a * w4[1];
            prev[j] += a * w4[2];
            cur[j - 1] += a * w4[3];
            g.open -= a * (w4[2] + w4[3]);
            g.extend -= a * (w4[2] + w4[3]);
        }
        std::swap(cur, prev);
        std::fill(prev, prev + w, 0.0);
    }
}

/// Reverse sweep over a full table written by sw_forward (same model, scalars and cells) whose
/// score is F. Calls sink(i, j, ∂F/∂s_ij · fbar) for cells with a nonzero adjoint (0-based, each
/// cell at most once) and adds fbar·∂F/∂(open, extend, τ) into g. O(m·n) time, O(n) scratch.
template <class Cell, class Sink>
void sw_backward(const SwModel& model, const SwScalars<double>& p, std::size_t m, std::size_t n, const Cell& cell,
                 const double* table, double F, double fbar, Sink&& sink, SwGrads& g, std::vector<double>& scratch) {
    switch (model.kind) {
    case SwKind::Linear:
        sw_backward_linear(model.local, model.hard, p, m, n, cell, table, F, fbar, sink, g, scratch);
        break;
    case SwKind::Affine:
        sw_backward_affine(model.local, model.hard, p, m, n, cell, table, F, fbar, sink, g, scratch);
        break;
    case SwKind::Compat: sw_backward_compat(model.hard, p, m, n, cell, table, fbar, sink, g, scratch); break;
    }
}

// ---- traceback ------------------------------------------------------------------------------------

/// The hard path: its operations in order ('M' aligned pair, 'I' query letter against a gap,
/// 'D' target letter against a gap) and the half-open ranges it covers.
struct SwPath {
    double score = 0.0;
    std::string ops;
    std::size_t query_begin = 0, query_end = 0, target_begin = 0, target_end = 0;
};

/// Traceback through a full HARD table (model.hard must be true) with score F: from the end cell
/// back along the first maximum of every cell's candidates (the forward's tie rule).
template <class Cell>
SwPath sw_traceback(const SwModel& model, const SwScalars<double>& p, std::size_t m, std::size_t n, const Cell& cell,
                    const double* table, double F) {
    const double ninf = sw_ninf<double>, o = p.open, e = p.extend;
    const std::size_t w = n + 1, plane = (m + 1) * w;
    auto at = [&](std::size_t state, std::size_t i, std::size_t j) { return table[state * plane + i * w + j]; };
    SwPath path;
    path.score = F;
    std::size_t i = 0, j = 0, state = 0;
    // The end cell (local: the first maximum in row-major order; ≤ 0 means the empty alignment).
    if (model.local) {
        double best = 0.0;
        for (std::size_t a = 1; a <= m; ++a) {
            for (std::size_t b = 1; b <= n; ++b) {
                double v = 0.0;
                if (model.kind == SwKind::Linear) {
                    v = cell(a - 1, b - 1) + std::max(0.0, at(0, a - 1, b - 1));
                } else {
                    v = at(0, a, b); // affine M, compat H
                }
                if (v > best) best = v, i = a, j = b;
            }
        }
        if (i == 0) return path;
        state = model.kind == SwKind::Linear ? 3 : 0; // linear: start in its match part
    } else {
        i = m;
        j = n;
        if (model.kind == SwKind::Affine) state = sw_argmax<3>({at(0, m, n), at(1, m, n), at(2, m, n)});
    }
    path.query_end = i;
    path.target_end = j;
    auto emit = [&](char c) { path.ops.push_back(c); };
    while (i > 0 || j > 0) {
        if (model.kind == SwKind::Compat) {
            if (i == 0 || j == 0) break;
            const double g = o + e;
            const std::size_t k = sw_argmax<4>({0.0, at(0, i - 1, j - 1) + cell(i - 1, j - 1), at(0, i - 1, j) - g,
                                                at(0, i, j - 1) - g});
            if (k == 0) break;
            if (k == 1) emit('M'), --i, --j;
            if (k == 2) emit('I'), --i;
            if (k == 3) emit('D'), --j;
        } else if (model.kind == SwKind::Linear) {
            if (state == 3) { // the match part M_ij = s_ij + [local: max(0, P_d)] P_d
                emit('M');
                const bool stop = model.local && sw_argmax<2>({0.0, at(0, i - 1, j - 1)}) == 0;
                --i, --j;
                state = 0;
                if (stop) break;
                continue;
            }
            const double M = i > 0 && j > 0 ? cell(i - 1, j - 1) + (model.local ? std::max(0.0, at(0, i - 1, j - 1))
                                                                                  : at(0, i - 1, j - 1))
                                            : ninf;
            const std::size_t k =
                sw_argmax<3>({M, i > 0 ? at(0, i - 1, j) - e : ninf, j > 0 ? at(0, i, j - 1) - e : ninf});
            if (k == 0) state = 3;
            if (k == 1) emit('I'), --i;
            if (k == 2) emit('D'), --j;
        } else {
            if (state == 0) {
                emit('M');
                const std::size_t k = sw_argmax<4>({model.local ? 0.0 : ninf, at(0, i - 1, j - 1), at(1, i - 1, j - 1),
                                                    at(2, i - 1, j - 1)});
                --i, --j;
                if (k == 0) break;
                state = k - 1;
            } else if (state == 1) {
                emit('I');
                state = sw_argmax<3>({at(0, i - 1, j) - o, at(1, i - 1, j) - e, at(2, i - 1, j) - o});
                --i;
            } else {
                emit('D');
                const std::size_t k = sw_argmax<3>({at(0, i, j - 1) - o, at(2, i, j - 1) - e, at(1, i, j - 1) - o});
                state = k == 0 ? 0 : (k == 1 ? 2 : 1);
                --j;
            }
        }
    }
    path.query_begin = i;
    path.target_begin = j;
    std::reverse(path.ops.begin(), path.ops.end());
    return path;
}

/// Run-length CIGAR of an operation string ("MMMID" → "3M1I1D").
inline std::string sw_cigar(const std::string& ops) {
    std::string out;
    for (std::size_t k = 0; k < ops.size();) {
        std::size_t r = k;
        while (r < ops.size() && ops[r] == ops[k]) ++r;
        out += std::to_string(r - k);
        out += ops[k];
        k = r;
    }
    return out;
}

} // namespace diffbio::ops::detail
