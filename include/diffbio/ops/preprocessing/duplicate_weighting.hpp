#pragma once
// DuplicateWeighting: soft duplicate clusters from read embeddings.
//
// Embedding of read i (length n):
//   c_{t,e} = relu(Σ_{k<W} Σ_a seq_{t+k,a} K_{k,a,e}),  t = 0..n−W     (valid 1-D convolution)
//   e_i = mean_t c_t,  ê_i = e_i/(‖e_i‖ + 1e-8)                          (0 for reads shorter than W;
//                                                                          DiffBio returns NaN there)
// Weights over the batch:
//   S_ij = ê_iᵀ ê_j,  M_ij = σ((S_ij − τ_s)/T),  size_i = Σ_j M_ij (self included)
//   raw_i = 1/max(size_i, 1),  w_i = raw_i / mean(raw)
// so a read in a cluster of k near-identical reads gets weight ∝ 1/k and the weights average 1.
// Learnable: K (init N(0, 1)·0.1, seeded), τ_s, T (stored as log T).
//
// Cost: the embedding's forward is a direct convolution over each read's nonzero inputs, in
// registers (O(N·L·W·m·E) with m ≤ 4 the most nonzero bases at a position of the read: m = 1 for
// one-hot reads, also when scaled or masked, a quarter of the dense work). The backward recomputes
// the pre-activations by the same convolution (only their signs are needed, the ReLU mask: the
// forward's, bit for bit) and runs the kernel's gradient as ONE GEMM per chunk of reads (about
// 4096 windows): the reads are contiguous, so the windows of a chunk are a strided view of the
// reads (row stride 4, 4W columns, overlapping rows; rows straddling two reads get a zero
// adjoint) — no im2col copy; the reads' gradient, when asked for, as a second GEMM. The weights
// are exact O(N²·E), computed in tiles of rows × columns so memory stays O(N·E + block²): the
// N × N matrix is never stored; the forward computes only the tiles on and above the diagonal
// (S is symmetric), σ vectorised with simd::exp, in float for Binder<float>. The backward recomputes
// each tile (S, σ') instead of storing it, again only the tiles on and above the diagonal
// (H = ∂L/∂S is symmetric too), in float with float_gradient. For Var: two
// fused nodes (embedding; weights); float/double run the same kernels without a tape (the
// embedding in the binder's precision: float for Binder<float>; for Var in float when
// config.float_gradient); Dual uses the direct formulas (small batches). CpuParallel splits
// both over chunks/rows.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/simd.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct DuplicateWeightingConfig {
    std::size_t embedding_dim = 32;
    std::size_t kernel_width = 7;
    double similarity_threshold = 0.9;
    double temperature = 1.0;
    bool learnable_temperature = true;
    std::uint64_t seed = 0;
    std::size_t block_size = 512;
    /// Reverse mode (Var) only: run the embedding's convolution (forward and backward) and the
    /// N × N similarity tiles (the cluster sizes and their backward) in float instead of double, as
    /// a Binder<float> forward does. Values and gradients agree with the double path to float
    /// rounding. Off by default.
    bool float_gradient = false;

    void validate() const {
        if (embedding_dim == 0) throw InvalidArgument("DuplicateWeightingConfig: 'embedding_dim' must be >= 1");
        if (kernel_width == 0) throw InvalidArgument("DuplicateWeightingConfig: 'kernel_width' must be >= 1");
        check_finite(similarity_threshold, "DuplicateWeightingConfig", "similarity_threshold");
        check_temperature(temperature, "DuplicateWeightingConfig", "temperature");
        if (block_size == 0) throw InvalidArgument("DuplicateWeightingConfig: 'block_size' must be >= 1");
    }
};

template <class T>
struct DuplicateWeightingResult {
    std::vector<T> weights;    ///< [N] w_i, mean 1
    std::vector<T> embeddings; ///< [N × E] normalised embeddings
};

namespace detail {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class V>
using RowMatrixOf = Eigen::Matrix<V, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Reads per chunk of the batched convolution (about 4096 window rows).
inline std::size_t embed_chunk_reads(std::size_t L) { return std::max<std::size_t>(1, 4096 / std::max<std::size_t>(L, 1)); }

/// Nonzero inputs of one read in m slots per position (m = the most nonzero bases at any position:
/// 1 for one-hot reads, scaled or masked ones; up to 4 for soft reads): slot (p, s) holds
/// off = a·E (the row of base a in a kernel tap) and val = seq[p, a] for its s-th nonzero base a,
/// or off = 0, val = 0 when position p has fewer (adding 0·K changes nothing).
template <class V>
struct ReadNonzeros {
    std::size_t m = 0;
    std::vector<std::uint32_t> off;
    std::vector<V> val;

    void build(const V* x, std::size_t len, std::size_t E) {
        m = 1;
        for (std::size_t p = 0; p < len; ++p) {
            std::size_t c = 0;
            for (std::size_t a = 0; a < 4; ++a) c += x[p * 4 + a] != V(0);
            m = std::max(m, c);
        }
        off.resize(len * m);
        val.resize(len * m);
        if (m == 1) { // branch-free: the lone nonzero value is the sum, its base the weighted count
            for (std::size_t p = 0; p < len; ++p) {
                const V* xp = x + p * 4;
                off[p] = static_cast<std::uint32_t>(E * (static_cast<std::size_t>(xp[1] != V(0)) + 2 * static_cast<std::size_t>(xp[2] != V(0)) +
                                                         3 * static_cast<std::size_t>(xp[3] != V(0))));
                val[p] = ((xp[0] + xp[1]) + xp[2]) + xp[3];
            }
            return;
        }
        std::fill(off.begin(), off.end(), 0u);
        std::fill(val.begin(), val.end(), V(0));
        for (std::size_t p = 0; p < len; ++p) {
            std::size_t s = 0;
            for (std::size_t a = 0; a < 4; ++a) {
                const V v = x[p * 4 + a];
                if (v == V(0)) continue;
                off[p * m + s] = static_cast<std::uint32_t>(a * E);
                val[p * m + s] = v;
                ++s;
            }
        }
    }
};

/// One read's convolution, window by window: a_t[f] = Σ_{k<W} Σ_s val[(t+k)·M + s]·K[k·4E + off[..] + f]
/// for t < nt over its M nonzero slots per position (zeros contribute nothing, so a one-hot read
/// costs W·E multiply-adds per window instead of 4·W·E), summed in the order of the dense product
/// (tap k, then base a), in registers, and handed to the sink feature block by feature block:
/// features in packs of one hardware register (packs of two measured slower), G = 8 windows at a
/// time (independent dependency chains), sink.begin(f0), sink.pack(t, a) per window, sink.end(f0);
/// tail features one at a time: sink.begin1(f), sink.one(t, a), sink.end1(f). The sink is taken by
/// value (its accumulators stay in registers; it writes through its pointers). The forward and the
/// backward run the same sums, so the backward's ReLU mask is the forward's bit for bit.
template <class V, std::size_t M, class Sink>
void conv_windows_m(const std::uint32_t* off, const V* val, std::size_t nt, const V* K, std::size_t W, std::size_t E, Sink sink) {
    const std::size_t tap = 4 * E; // stride of one kernel tap
    std::size_t f0 = 0;
#if DIFFBIO_HAVE_VECTOR_EXT
    constexpr int PW = simd::native_lanes<V>;
    constexpr std::size_t G = 8;
    using P = simd::pack<V, PW>;
    const P zero = P::broadcast(V(0));
    for (; f0 + PW <= E; f0 += PW) {
        const V* Kf = K + f0;
        sink.begin(f0);
        std::size_t t = 0;
        for (; t + G <= nt; t += G) {
            P a[G];
            DIFFBIO_SIMD_UNROLL for (std::size_t w = 0; w < G; ++w) a[w] = zero;
            for (std::size_t k = 0; k < W; ++k) {
                const V* Kk = Kf + k * tap;
                const std::size_t p0 = (t + k) * M;
                DIFFBIO_SIMD_UNROLL for (std::size_t w = 0; w < G; ++w) {
                    DIFFBIO_SIMD_UNROLL for (std::size_t s = 0; s < M; ++s) {
                        const std::size_t j = p0 + w * M + s;
                        a[w] += P::broadcast(val[j]) * P::load(Kk + off[j]);
                    }
                }
            }
            DIFFBIO_SIMD_UNROLL for (std::size_t w = 0; w < G; ++w) sink.pack(t + w, a[w]);
        }
        for (; t < nt; ++t) {
            P a = zero;
            for (std::size_t k = 0; k < W; ++k) {
                DIFFBIO_SIMD_UNROLL for (std::size_t s = 0; s < M; ++s) {
                    const std::size_t j = (t + k) * M + s;
                    a += P::broadcast(val[j]) * P::load(Kf + k * tap + off[j]);
                }
            }
            sink.pack(t, a);
        }
        sink.end(f0);
    }
#endif
    for (std::size_t f = f0; f < E; ++f) {
        sink.begin1(f);
        for (std::size_t t = 0; t < nt; ++t) {
            V a = V(0);
            for (std::size_t k = 0; k < W; ++k) {
                for (std::size_t s = 0; s < M; ++s) {
                    const std::size_t j = (t + k) * M + s;
                    a += val[j] * K[k * tap + off[j] + f];
                }
            }
            sink.one(t, a);
        }
        sink.end1(f);
    }
}

/// conv_windows_m for the read's slot count (1..4).
template <class V, class Sink>
void conv_windows(const ReadNonzeros<V>& nz, std::size_t nt, const V* K, std::size_t W, std::size_t E, const Sink& sink) {
    const std::uint32_t* off = nz.off.data();
    const V* val = nz.val.data();
    switch (nz.m) {
    case 1: conv_windows_m<V, 1>(off, val, nt, K, W, E, sink); break;
    case 2: conv_windows_m<V, 2>(off, val, nt, K, W, E, sink); break;
    case 3: conv_windows_m<V, 3>(off, val, nt, K, W, E, sink); break;
    default: conv_windows_m<V, 4>(off, val, nt, K, W, E, sink); break;
    }
}

/// Forward sink: acc[f] = Σ_t max(0, a_t[f]) (the read's summed ReLU features).
template <class V>
struct ReluSumsSink {
    V* acc;
    V one_sum = V(0);
#if DIFFBIO_HAVE_VECTOR_EXT
    using P = simd::pack<V, simd::native_lanes<V>>;
    P col = P::broadcast(V(0));
    void begin(std::size_t) { col = P::broadcast(V(0)); }
    void pack(std::size_t, const P& a) { col += simd::max(a, P::broadcast(V(0))); }
    void end(std::size_t f0) { col.store(acc + f0); }
#endif
    void begin1(std::size_t) { one_sum = V(0); }
    void one(std::size_t, V a) { one_sum += std::max(a, V(0)); }
    void end1(std::size_t f) { acc[f] = one_sum; }
};

/// Backward sink: c[t·E + f] = a_t[f] > 0 ? v[f] : 0 (C̄ of the read's windows: the ReLU mask times
/// the feature's adjoint).
template <class V>
struct ReluMaskSink {
    const V* v;
    V* c;
    std::size_t E;
    std::size_t f1 = 0;
#if DIFFBIO_HAVE_VECTOR_EXT
    using P = simd::pack<V, simd::native_lanes<V>>;
    P vf = P::broadcast(V(0));
    std::size_t f0 = 0;
    void begin(std::size_t f) { f0 = f, vf = P::load(v + f); }
    void pack(std::size_t t, const P& a) { simd::select(a > P::broadcast(V(0)), vf, P::broadcast(V(0))).store(c + t * E + f0); }
    void end(std::size_t) {}
#endif
    void begin1(std::size_t f) { f1 = f; }
    void one(std::size_t t, V a) { c[t * E + f1] = a > V(0) ? v[f1] : V(0); }
    void end1(std::size_t) {}
};

/// Embeddings ê [E] (double) of reads i0..i1 into emb + i·E and the norms ‖e‖ into norms[i]
/// (0 for reads shorter than W: ê = 0), by the direct convolution over each read's nonzero inputs
/// (conv_windows, ReluSumsSink).
template <class V>
void embed_chunk(const V* seq, const std::uint32_t* lens, std::size_t i0, std::size_t i1, std::size_t L, const V* K,
                 std::size_t W, std::size_t E, double* emb, double* norms, ReadNonzeros<V>& nz, std::vector<V>& acc) {
    acc.resize(E);
    for (std::size_t i = i0; i < i1; ++i) {
        double* e = emb + i * E;
        const std::size_t len = lens[i];
        if (len < W) {
            for (std::size_t f = 0; f < E; ++f) e[f] = 0.0;
            norms[i] = 0.0;
            continue;
        }
        const std::size_t nt = len - W + 1;
        nz.build(seq + i * L * 4, len, E);
        ReluSumsSink<V> sink{acc.data()};
        conv_windows(nz, nt, K, W, E, sink);
        double norm2 = 0.0;
        for (std::size_t f = 0; f < E; ++f) {
            e[f] = static_cast<double>(acc[f]) / static_cast<double>(nt);
            norm2 += e[f] * e[f];
        }
        const double norm = std::sqrt(norm2);
        for (std::size_t f = 0; f < E; ++f) e[f] /= norm + 1e-8;
        norms[i] = norm;
    }
}

/// Backward of embed_chunk for reads i0..i1, given ō = ∂L/∂ê (obar, [N × E]) and the forward's ê
/// and norms: C̄[t, f] = [a_t[f] > 0]·ē_f/nt with ē = ō/(‖e‖+ε) − e (eᵀō)/(‖e‖ (‖e‖+ε)²), the
/// pre-activations a recomputed by the forward's direct convolution (ReluMaskSink); then adds the
/// kernel's gradient colsᵀ·C̄ into kbar (double, [4W × E]) as ONE GEMM over the chunk (the reads
/// are contiguous, so the windows of the chunk are a strided view of them: row stride 4, 4W
/// columns, overlapping rows; the rows that straddle two reads, or lie past a read's end, have
/// C̄ = 0) and, when seq_grad is not null, C̄·Kᵀ scattered onto the overlapping windows of seq_grad
/// ([N × L × 4], double).
template <class V>
void embed_chunk_backward(const V* seq, const std::uint32_t* lens, std::size_t i0, std::size_t i1, std::size_t L,
                          const V* K, std::size_t W, std::size_t E, const double* emb, const double* norms,
                          const double* obar, double* kbar, double* seq_grad, ReadNonzeros<V>& nz, RowMatrixOf<V>& cbar,
                          RowMatrixOf<V>& kb, RowMatrixOf<V>& colbar) {
    if ((i1 - i0) * L < W) return; // no full window in the chunk
    const auto rows = static_cast<Eigen::Index>((i1 - i0) * L - W + 1);
    cbar.resize(rows, static_cast<Eigen::Index>(E));
    std::vector<double> ebar(E);
    std::vector<V> ebar_v(E);
    bool any = false;
    for (std::size_t i = i0; i < i1; ++i) {
        const std::size_t len = lens[i];
        const double norm = norms[i];
        const std::size_t r0 = (i - i0) * L, r_end = std::min(r0 + L, static_cast<std::size_t>(rows));
        std::size_t nt = 0; // rows r0 + nt .. r_end − 1 get C̄ = 0
        if (len >= W && norm != 0.0) {
            any = true;
            nt = len - W + 1;
            const double d = norm + 1e-8;
            double dot = 0.0;
            for (std::size_t f = 0; f < E; ++f) dot += emb[i * E + f] * d * obar[i * E + f];
            for (std::size_t f = 0; f < E; ++f) {
                ebar[f] = (obar[i * E + f] / d - emb[i * E + f] * d * dot / (norm * d * d)) / static_cast<double>(nt);
            }
            for (std::size_t f = 0; f < E; ++f) ebar_v[f] = static_cast<V>(ebar[f]);
            nz.build(seq + i * L * 4, len, E);
            ReluMaskSink<V> sink{ebar_v.data(), cbar.data() + r0 * E, E};
            conv_windows(nz, nt, K, W, E, sink);
        }
        if (r0 + nt < r_end) std::fill(cbar.data() + (r0 + nt) * E, cbar.data() + r_end * E, V(0));
    }
    if (!any) return;
    const Eigen::Map<const RowMatrixOf<V>, 0, Eigen::OuterStride<>> cols(seq + i0 * L * 4, rows, static_cast<Eigen::Index>(W * 4),
                                                                          Eigen::OuterStride<>(4));
    kb.noalias() = cols.transpose() * cbar;
    for (std::size_t k = 0; k < W * 4 * E; ++k) kbar[k] += static_cast<double>(kb.data()[k]);
    if (seq_grad == nullptr) return;
    const Eigen::Map<const RowMatrixOf<V>> Km(K, static_cast<Eigen::Index>(W * 4), static_cast<Eigen::Index>(E));
    colbar.noalias() = cbar * Km.transpose(); // [rows × 4W]
    double* g = seq_grad + i0 * L * 4;
    for (std::size_t i = i0; i < i1; ++i) {
        const std::size_t len = lens[i];
        if (len < W || norms[i] == 0.0) continue;
        for (std::size_t t = 0; t + W <= len; ++t) {
            const std::size_t r = (i - i0) * L + t;
            const V* cb = colbar.data() + r * W * 4;
            double* gr = g + r * 4;
            for (std::size_t j = 0; j < W * 4; ++j) gr[j] += static_cast<double>(cb[j]);
        }
    }
}

/// Embeddings of all reads (V kernels), chunks of reads in parallel for CpuParallel.
template <class V, class P>
void embed_all_reads(const P& policy, const V* seq, const std::uint32_t* lens, std::size_t n, std::size_t L, const V* K,
                     std::size_t W, std::size_t E, double* emb, double* norms) {
    const std::size_t per = embed_chunk_reads(L);
    const auto nc = static_cast<std::ptrdiff_t>((n + per - 1) / per);
    [[maybe_unused]] const int threads = exec::thread_count(policy);
    DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
    {
        ReadNonzeros<V> nz;
        std::vector<V> acc;
        DIFFBIO_OMP(for schedule(dynamic, 1))
        for (std::ptrdiff_t c = 0; c < nc; ++c) {
            const std::size_t i0 = static_cast<std::size_t>(c) * per, i1 = std::min(n, i0 + per);
            embed_chunk(seq, lens, i0, i1, L, K, W, E, emb, norms, nz, acc);
        }
    }
}

/// In place: x[c] ← σ((x[c] − τ)·inv_t) for c < m (vectorised: simd::exp on packs of one hardware
/// register); returns Σ_c of the new values (in double) and, when colsum is not null, adds them to
/// colsum[c].
template <class V>
double sigmoid_row_sums(V* x, std::size_t m, V tau, V inv_t, V* colsum) {
    std::size_t c = 0;
    double total = 0.0;
#if DIFFBIO_HAVE_VECTOR_EXT
    constexpr int NL = simd::native_lanes<V>;
    using P = simd::pack<V, NL>;
    const P one = P::broadcast(V(1));
    P acc = P::broadcast(V(0));
    for (; c + NL <= m; c += NL) {
        const P z = (P::load(x + c) - tau) * inv_t;
        const P sg = one / (one + simd::exp(-z));
        sg.store(x + c);
        acc += sg;
        if (colsum != nullptr) (P::load(colsum + c) + sg).store(colsum + c);
    }
    for (int l = 0; l < NL; ++l) total += static_cast<double>(acc[l]);
#endif
    for (; c < m; ++c) {
        const V sg = static_cast<V>(diffbio::sigmoid(static_cast<double>((x[c] - tau) * inv_t)));
        x[c] = sg;
        total += static_cast<double>(sg);
        if (colsum != nullptr) colsum[c] += sg;
    }
    return total;
}

/// Tile pair q of the tiles of ts rows on and above the diagonal of an n × n matrix, row by row:
/// rows i0..i0 + ni against columns j0..j0 + nj (block row bi ≤ block column bj).
struct UpperTile {
    std::size_t bi = 0, bj = 0, i0 = 0, j0 = 0;
    Eigen::Index ni = 0, nj = 0;
};
inline UpperTile upper_tile(std::size_t q, std::size_t ts, std::size_t n) {
    const std::size_t nt = (n + ts - 1) / ts;
    UpperTile t;
    while (q >= nt - t.bi) q -= nt - t.bi++;
    t.bj = t.bi + q;
    t.i0 = t.bi * ts;
    t.j0 = t.bj * ts;
    t.ni = static_cast<Eigen::Index>(std::min(ts, n - t.i0));
    t.nj = static_cast<Eigen::Index>(std::min(ts, n - t.j0));
    return t;
}

/// In place over one row i of a tile of S: x[c] = S_ij ← h_ij = (s̄_i + s̄_j)·σ'(z_ij)/T with
/// z = (S − τ)/T, σ'(z) = e/(1 + e)², e = e^{−|z|} (vectorised: simd::exp on packs of one hardware
/// register); adds Σ_c h to sum_h and Σ_c h·z to sum_hz.
template <class V>
void sigmoid_grad_row(V* x, const V* sbar_j, std::size_t m, V sbar_i, V tau, V inv_t, double& sum_h, double& sum_hz) {
    std::size_t c = 0;
#if DIFFBIO_HAVE_VECTOR_EXT
    constexpr int NL = simd::native_lanes<V>;
    using P = simd::pack<V, NL>;
    const P one = P::broadcast(V(1));
    P ah = P::broadcast(V(0)), ahz = ah;
    for (; c + NL <= m; c += NL) {
        const P z = (P::load(x + c) - tau) * inv_t;
        const P e = simd::exp_nonpos(simd::neg_abs(z));
        const P r = one / (one + e);
        const P h = (P::load(sbar_j + c) + sbar_i) * (e * r * r * inv_t);
        h.store(x + c);
        ah += h;
        ahz += h * z;
    }
    for (int l = 0; l < NL; ++l) {
        sum_h += static_cast<double>(ah[l]);
        sum_hz += static_cast<double>(ahz[l]);
    }
#endif
    for (; c < m; ++c) {
        const V z = (x[c] - tau) * inv_t;
        const V e = std::exp(-std::fabs(z));
        const V r = V(1) / (V(1) + e);
        const V h = (sbar_j[c] + sbar_i) * (e * r * r * inv_t);
        x[c] = h;
        sum_h += static_cast<double>(h);
        sum_hz += static_cast<double>(h * z);
    }
}

} // namespace detail

class DuplicateWeighting {
public:
    explicit DuplicateWeighting(DuplicateWeightingConfig cfg = {})
        : cfg_((cfg.validate(), cfg)), kernel_("duplicate_kernel", initial_kernel(cfg)),
          threshold_("duplicate_similarity_threshold", cfg.similarity_threshold),
          log_temperature_("duplicate_log_temperature", std::log(cfg.temperature)) {}

    const DuplicateWeightingConfig& config() const noexcept { return cfg_; }
    ad::Parameter& kernel() noexcept { return kernel_; }
    ad::Parameter& similarity_threshold() noexcept { return threshold_; }
    ad::Parameter& log_temperature() noexcept { return log_temperature_; }
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p{&kernel_, &threshold_};
        if (cfg_.learnable_temperature) p.push_back(&log_temperature_);
        return p;
    }

    template <class T, class S, class Q, exec::HostPolicy P = exec::Cpu>
    DuplicateWeightingResult<promote_t<T, S>> apply(ad::Binder<T>& bind, const ReadsView<S, Q>& reads,
                                                    const P& policy = {}) const {
        using R = promote_t<T, S>;
        reads.validate("DuplicateWeighting");
        DuplicateWeightingResult<R> out;
        if (reads.n == 0) return out;
        if constexpr (soft::detail::is_var_v<R>) {
            out.embeddings = embeddings_var(bind, reads, policy);
            out.weights = weights_var(bind, out.embeddings, reads.n, policy);
        } else if constexpr (std::is_floating_point_v<R>) {
            apply_plain(bind, reads, policy, out);
        } else {
            out.embeddings = embeddings_generic<R>(bind, reads);
            out.weights = weights_generic<R>(bind, out.embeddings, reads.n);
        }
        return out;
    }

    /// Hard decision with the current parameters: read i is a duplicate when an earlier read j < i
    /// has similarity S_ij > τ_s. O(N²·E) in blocks.
    template <class S, class Q>
    std::vector<bool> duplicate_flags(const ReadsView<S, Q>& reads) const {
        reads.validate("DuplicateWeighting::duplicate_flags");
        const std::size_t n = reads.n, E = cfg_.embedding_dim;
        const detail::RowMatrix emb = embed_all(reads);
        const double tau = threshold_.values()[0];
        std::vector<bool> dup(n, false);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < i && !dup[i]; ++j) {
                double s = 0.0;
                for (std::size_t e = 0; e < E; ++e) s += emb(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(e)) * emb(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(e));
                if (s > tau) dup[i] = true;
            }
        }
        return dup;
    }

private:
    static std::vector<double> initial_kernel(const DuplicateWeightingConfig& cfg) {
        std::mt19937_64 rng(cfg.seed);
        std::vector<double> k(cfg.kernel_width * 4 * cfg.embedding_dim);
        // Box–Muller on our own uniform draws: identical across standard libraries.
        auto uniform = [&rng] { return (static_cast<double>(rng() >> 11) + 0.5) / 9007199254740992.0; };
        for (std::size_t i = 0; i < k.size(); i += 2) {
            const double u1 = uniform(), u2 = uniform();
            const double rad = std::sqrt(-2.0 * std::log(u1));
            k[i] = 0.1 * rad * std::cos(2.0 * M_PI * u2);
            if (i + 1 < k.size()) k[i + 1] = 0.1 * rad * std::sin(2.0 * M_PI * u2);
        }
        return k;
    }

    template <class S, class Q>
    detail::RowMatrix embed_all(const ReadsView<S, Q>& reads) const {
        const std::size_t n = reads.n, L = reads.length, E = cfg_.embedding_dim;
        detail::RowMatrix emb(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(E));
        std::vector<double> seq(reads.seq.size()), norms(n);
        for (std::size_t j = 0; j < seq.size(); ++j) seq[j] = primal(reads.seq[j]);
        detail::embed_all_reads(exec::Cpu{}, seq.data(), reads.lengths.data(), n, L, kernel_.values().data(), cfg_.kernel_width, E,
                                emb.data(), norms.data());
        return emb;
    }

    /// The reads' values as V (a view when they already are V, else a converted copy in buf).
    template <class V, class S>
    static const V* values_as(std::span<const S> seq, std::vector<V>& buf) {
        if constexpr (std::is_same_v<S, V>) {
            return seq.data();
        } else {
            buf.resize(seq.size());
            for (std::size_t j = 0; j < seq.size(); ++j) buf[j] = static_cast<V>(primal(seq[j]));
            return buf.data();
        }
    }

    /// size_i = Σ_j σ((ê_iᵀê_j − τ)/T) for all rows, in tiles S_IJ = E_I E_Jᵀ (never the N × N
    /// matrix) in V (float for Binder<float>, else double). S is symmetric, so only the tiles
    /// I ≤ J are computed: one pass over each applies σ (vectorised) and adds its row sums to size_I
    /// and, off the diagonal, its column sums to size_J. Tiles are at most block_size (and 128) on
    /// a side; CpuParallel splits the tile pairs over threads, each into its own size array, added
    /// in thread order (deterministic for a fixed thread count).
    template <class V, class P>
    static void cluster_sizes(const V* embv, std::size_t n, std::size_t E, std::size_t bs, double tau_v, double temp,
                              const P& policy, double* out_size) {
        const Eigen::Map<const detail::RowMatrixOf<V>> Em(embv, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(E));
        const std::size_t ts = std::min<std::size_t>(bs, 128);
        const std::size_t nt = (n + ts - 1) / ts;
        const auto npairs = static_cast<std::ptrdiff_t>(nt * (nt + 1) / 2);
        const int threads = exec::thread_count(policy);
        std::vector<std::vector<double>> part(static_cast<std::size_t>(threads), std::vector<double>(n, 0.0));
        const V tau = static_cast<V>(tau_v), inv_t = static_cast<V>(1.0 / temp);
        DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        {
            detail::RowMatrixOf<V> blk;
            std::vector<V> colsum;
            double* size = part[exec::this_thread_index()].data();
            DIFFBIO_OMP(for schedule(static, 1))
            for (std::ptrdiff_t q = 0; q < npairs; ++q) {
                const auto [bi, bj, i0, j0, ni, nj] = detail::upper_tile(static_cast<std::size_t>(q), ts, n);
                blk.noalias() = Em.middleRows(static_cast<Eigen::Index>(i0), ni) *
                                Em.middleRows(static_cast<Eigen::Index>(j0), nj).transpose();
                const bool off_diag = bi != bj;
                colsum.assign(static_cast<std::size_t>(nj), V(0));
                for (Eigen::Index r = 0; r < ni; ++r) {
                    size[i0 + static_cast<std::size_t>(r)] +=
                        detail::sigmoid_row_sums(blk.data() + r * nj, static_cast<std::size_t>(nj), tau, inv_t,
                                                 off_diag ? colsum.data() : nullptr);
                }
                if (off_diag) {
                    for (Eigen::Index c = 0; c < nj; ++c) size[j0 + static_cast<std::size_t>(c)] += static_cast<double>(colsum[static_cast<std::size_t>(c)]);
                }
            }
        }
        for (std::size_t i = 0; i < n; ++i) out_size[i] = 0.0;
        for (const auto& pt : part) {
            for (std::size_t i = 0; i < n; ++i) out_size[i] += pt[i];
        }
    }

    /// Backward of the weights given s̄ = ∂L/∂size (sbar, [N]): with z_ij = (S_ij − τ)/T and
    /// H_ij = (s̄_i + s̄_j)·σ'(z_ij)/T over all ordered pairs (S is symmetric),
    ///   Ē_i += Σ_j H_ij ê_j,   τ̄ −= Σ_ij s̄_i σ'(z_ij)/T = ½ Σ_ij H_ij,   T̄ −= ½ Σ_ij H_ij z_ij
    /// (T̄ = ∂L/∂T). H is symmetric too, so only the tiles I ≤ J are computed, as in cluster_sizes:
    /// S_IJ = E_I E_Jᵀ, one fused pass turns it into H_IJ (sigmoid_grad_row), then Ē_I += H_IJ E_J
    /// and, off the diagonal, Ē_J += H_IJᵀ E_I; an off-diagonal tile holds both orders of its pairs
    /// (its sums count whole), a diagonal one each pair twice (half). Tiles in V (float with
    /// float_gradient), Ē summed per thread in double and added in thread order (deterministic for a
    /// fixed thread count).
    template <class V, class P>
    static void weights_backward(const V* embv, std::size_t n, std::size_t E, std::size_t bs, double tau_v, double temp,
                                 const double* sbar, const P& policy, double* ebar, double& tau_bar, double& temp_bar) {
        using Mat = detail::RowMatrixOf<V>;
        const Eigen::Map<const Mat> Em(embv, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(E));
        const std::size_t ts = std::min<std::size_t>(bs, 128);
        const std::size_t nt = (n + ts - 1) / ts;
        const auto npairs = static_cast<std::ptrdiff_t>(nt * (nt + 1) / 2);
        const int threads = exec::thread_count(policy);
        const std::vector<V> sb(sbar, sbar + n);
        std::vector<std::vector<double>> part(static_cast<std::size_t>(threads), std::vector<double>(n * E, 0.0));
        std::vector<double> part_h(static_cast<std::size_t>(threads), 0.0), part_hz(part_h);
        const V tau = static_cast<V>(tau_v), inv_t = static_cast<V>(1.0 / temp);
        DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
        {
            Mat blk, prod;
            const std::size_t me = exec::this_thread_index();
            double* acc = part[me].data();
            auto add_rows = [&](std::size_t r0) { // acc rows r0.. += prod
                for (Eigen::Index k = 0; k < prod.size(); ++k) acc[r0 * E + static_cast<std::size_t>(k)] += static_cast<double>(prod.data()[k]);
            };
            DIFFBIO_OMP(for schedule(static, 1))
            for (std::ptrdiff_t q = 0; q < npairs; ++q) {
                const auto [bi, bj, i0, j0, ni, nj] = detail::upper_tile(static_cast<std::size_t>(q), ts, n);
                const auto EI = Em.middleRows(static_cast<Eigen::Index>(i0), ni);
                const auto EJ = Em.middleRows(static_cast<Eigen::Index>(j0), nj);
                blk.noalias() = EI * EJ.transpose();
                double sh = 0.0, shz = 0.0;
                for (Eigen::Index r = 0; r < ni; ++r) {
                    detail::sigmoid_grad_row(blk.data() + r * nj, sb.data() + j0, static_cast<std::size_t>(nj),
                                             sb[i0 + static_cast<std::size_t>(r)], tau, inv_t, sh, shz);
                }
                const double f = bi == bj ? 0.5 : 1.0;
                part_h[me] += f * sh;
                part_hz[me] += f * shz;
                prod.noalias() = blk * EJ;
                add_rows(i0);
                if (bi != bj) {
                    prod.noalias() = blk.transpose() * EI;
                    add_rows(j0);
                }
            }
        }
        for (std::size_t t = 0; t < part.size(); ++t) {
            for (std::size_t k = 0; k < n * E; ++k) ebar[k] += part[t][k];
            tau_bar -= part_h[t];
            temp_bar -= part_hz[t];
        }
    }

    /// w_i = raw_i·N/Σ raw with raw_i = 1/max(size_i, 1).
    static void weights_from_sizes(const double* size, std::size_t n, double* w) {
        double raw_sum = 0.0;
        for (std::size_t i = 0; i < n; ++i) raw_sum += size[i] > 1.0 ? 1.0 / size[i] : 1.0;
        for (std::size_t i = 0; i < n; ++i) w[i] = (size[i] > 1.0 ? 1.0 / size[i] : 1.0) * static_cast<double>(n) / raw_sum;
    }

    /// float/double: the blocked kernels directly, no tape (the embedding GEMMs in R).
    template <class R, class T, class S, class Q, class P>
    void apply_plain(ad::Binder<T>& bind, const ReadsView<S, Q>& reads, const P& policy, DuplicateWeightingResult<R>& out) const {
        const std::size_t n = reads.n, L = reads.length, E = cfg_.embedding_dim, W = cfg_.kernel_width;
        const auto Kb = bind(kernel_);
        const std::vector<R> K(Kb.begin(), Kb.end());
        std::vector<R> seq_buf;
        const R* seq = values_as<R>(reads.seq, seq_buf);
        std::vector<double> emb(n * E), norms(n);
        detail::embed_all_reads(policy, seq, reads.lengths.data(), n, L, K.data(), W, E, emb.data(), norms.data());
        const double tau = static_cast<double>(bind(threshold_)[0]);
        const double temp = cfg_.learnable_temperature ? std::exp(static_cast<double>(bind(log_temperature_)[0])) : cfg_.temperature;
        std::vector<double> size(n), w(n);
        if constexpr (std::is_same_v<R, double>) {
            cluster_sizes(emb.data(), n, E, cfg_.block_size, tau, temp, policy, size.data());
        } else {
            const std::vector<R> emb_r(emb.begin(), emb.end());
            cluster_sizes(emb_r.data(), n, E, cfg_.block_size, tau, temp, policy, size.data());
        }
        weights_from_sizes(size.data(), n, w.data());
        out.embeddings.assign(emb.begin(), emb.end());
        out.weights.assign(w.begin(), w.end());
    }

    // ---- generic scalar (Dual): direct formulas, O(N²) without blocking ----------------------
    template <class R, class T, class S, class Q>
    std::vector<R> embeddings_generic(ad::Binder<T>& bind, const ReadsView<S, Q>& reads) const {
        using std::sqrt;
        const std::size_t n = reads.n, L = reads.length, W = cfg_.kernel_width, E = cfg_.embedding_dim;
        const auto K = bind(kernel_);
        std::vector<R> emb(n * E, passive<R>(0.0));
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t len = reads.lengths[i];
            if (len < W) continue;
            const std::size_t nt = len - W + 1;
            std::vector<R> e(E, passive<R>(0.0));
            for (std::size_t t = 0; t < nt; ++t) {
                for (std::size_t f = 0; f < E; ++f) {
                    R c = passive<R>(0.0);
                    for (std::size_t j = 0; j < W * 4; ++j) c = c + reads.seq[i * L * 4 + t * 4 + j] * K[j * E + f];
                    if (primal(c) > 0.0) e[f] = e[f] + c;
                }
            }
            R norm2 = passive<R>(0.0);
            for (std::size_t f = 0; f < E; ++f) {
                e[f] = e[f] / static_cast<double>(nt);
                norm2 = norm2 + e[f] * e[f];
            }
            const R denom = (primal(norm2) > 0.0 ? R(sqrt(norm2)) : passive<R>(0.0)) + 1e-8;
            for (std::size_t f = 0; f < E; ++f) emb[i * E + f] = e[f] / denom;
        }
        return emb;
    }

    template <class R, class T>
    std::vector<R> weights_generic(ad::Binder<T>& bind, const std::vector<R>& emb, std::size_t n) const {
        using diffbio::sigmoid;
        using std::exp;
        const std::size_t E = cfg_.embedding_dim;
        const R tau = bind(threshold_)[0];
        const R temp = cfg_.learnable_temperature ? R(exp(bind(log_temperature_)[0])) : passive<R>(cfg_.temperature);
        std::vector<R> raw(n);
        R mean = passive<R>(0.0);
        for (std::size_t i = 0; i < n; ++i) {
            R size = passive<R>(0.0);
            for (std::size_t j = 0; j < n; ++j) {
                R s = passive<R>(0.0);
                for (std::size_t f = 0; f < E; ++f) s = s + emb[i * E + f] * emb[j * E + f];
                size = size + sigmoid((s - tau) / temp);
            }
            raw[i] = primal(size) > 1.0 ? R(1.0 / size) : passive<R>(1.0);
            mean = mean + raw[i];
        }
        mean = mean / static_cast<double>(n);
        std::vector<R> w(n);
        for (std::size_t i = 0; i < n; ++i) w[i] = raw[i] / mean;
        return w;
    }

    // ---- Var: fused nodes --------------------------------------------------------------------
    template <class S, class Q, class P>
    std::vector<ad::Var> embeddings_var(ad::Binder<ad::Var>& bind, const ReadsView<S, Q>& reads, const P& policy) const {
        if (cfg_.float_gradient) return embeddings_var_in<float>(bind, reads, policy);
        return embeddings_var_in<double>(bind, reads, policy);
    }

    /// Var: one node for all embeddings; forward and backward run the convolution (and the
    /// backward's GEMMs) in V (float when config().float_gradient), gradient sums in double.
    template <class V, class S, class Q, class P>
    std::vector<ad::Var> embeddings_var_in(ad::Binder<ad::Var>& bind, const ReadsView<S, Q>& reads, const P& policy) const {
        ad::Tape& tape = ad::Tape::active();
        const std::size_t n = reads.n, L = reads.length, W = cfg_.kernel_width, E = cfg_.embedding_dim;
        const auto K = bind(kernel_);
        const std::span<const double> saved_seq = soft::detail::saved_values(tape, reads.seq);
        const std::span<std::uint32_t> lens = tape.allocate<std::uint32_t>(n);
        std::copy(reads.lengths.begin(), reads.lengths.end(), lens.begin());
        const std::span<double> norms = tape.allocate<double>(n);
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(reads.seq), K}, n * E, [=](const ad::NodeGrad& g) {
                const auto seqd = soft::detail::input_values<S>(g, 0, saved_seq);
                const auto Kd = g.in_value(1);
                const auto out = g.out_value();
                const auto obar = g.out_adjoint();
                const auto seq_grad = g.in_adjoint(0);
                const auto Kbar = g.in_adjoint(1);
                std::vector<V> seq_buf, Kv(Kd.begin(), Kd.end());
                const V* seq = values_as<V>(std::span<const double>(seqd), seq_buf);
                const std::size_t per = detail::embed_chunk_reads(L);
                const auto nc = static_cast<std::ptrdiff_t>((n + per - 1) / per);
                const int threads = exec::thread_count(policy);
                // per-thread K̄, added in thread order (deterministic for a fixed thread count)
                std::vector<std::vector<double>> kpart(static_cast<std::size_t>(threads), std::vector<double>(W * 4 * E, 0.0));
                DIFFBIO_OMP(parallel num_threads(threads) if (std::is_same_v<P, exec::CpuParallel>))
                {
                    detail::ReadNonzeros<V> nz;
                    detail::RowMatrixOf<V> cbar, kb, colbar;
                    double* kp = kpart[exec::this_thread_index()].data();
                    DIFFBIO_OMP(for schedule(static))
                    for (std::ptrdiff_t c = 0; c < nc; ++c) {
                        const std::size_t i0 = static_cast<std::size_t>(c) * per, i1 = std::min(n, i0 + per);
                        detail::embed_chunk_backward(seq, lens.data(), i0, i1, L, Kv.data(), W, E, out.data(), norms.data(),
                                                     obar.data(), kp, seq_grad.empty() ? nullptr : seq_grad.data(), nz, cbar,
                                                     kb, colbar);
                    }
                }
                for (const auto& kp : kpart) {
                    for (std::size_t k = 0; k < W * 4 * E; ++k) Kbar[k] += kp[k];
                }
            });
        const auto seqd = soft::detail::forward_values(tape, reads.seq, saved_seq);
        std::vector<V> Kv(K.size()), seq_buf;
        for (std::size_t k = 0; k < K.size(); ++k) Kv[k] = static_cast<V>(tape.value(K[k]));
        const V* seq = values_as<V>(std::span<const double>(seqd), seq_buf);
        auto yv = tape.values_of(y);
        detail::embed_all_reads(policy, seq, lens.data(), n, L, Kv.data(), W, E, yv.data(), norms.data());
        return {y.begin(), y.end()};
    }

    template <class P>
    std::vector<ad::Var> weights_var(ad::Binder<ad::Var>& bind, const std::vector<ad::Var>& emb, std::size_t n,
                                     const P& policy) const {
        ad::Tape& tape = ad::Tape::active();
        const std::size_t E = cfg_.embedding_dim, bs = cfg_.block_size;
        const bool learn_t = cfg_.learnable_temperature, use_float = cfg_.float_gradient;
        const double fixed_temp = cfg_.temperature;
        const auto tau = bind(threshold_);
        const std::span<const ad::Var> logt = learn_t ? bind(log_temperature_) : std::span<const ad::Var>();
        const std::span<double> size = tape.allocate<double>(n);
        auto y = tape.record_node_uninitialised(
            {std::span<const ad::Var>(emb), tau, logt}, n, [=](const ad::NodeGrad& g) {
                const auto embv = g.in_value(0);
                const double tau_v = g.in_value(1)[0];
                const double temp = learn_t ? std::exp(g.in_value(2)[0]) : fixed_temp;
                const auto w = g.out_value();
                const auto wbar = g.out_adjoint();
                // w_i = raw_i·N/Σraw:  raw̄_j = (w̄_j − Σ_i w̄_i w_i/N)·N/Σraw
                double raw_sum = 0.0, ww = 0.0;
                std::vector<double> raw(n), sbar(n);
                for (std::size_t i = 0; i < n; ++i) {
                    raw[i] = size[i] > 1.0 ? 1.0 / size[i] : 1.0;
                    raw_sum += raw[i];
                    ww += wbar[i] * w[i];
                }
                for (std::size_t i = 0; i < n; ++i) {
                    const double rawbar = (wbar[i] - ww / static_cast<double>(n)) * static_cast<double>(n) / raw_sum;
                    sbar[i] = size[i] > 1.0 ? -rawbar / (size[i] * size[i]) : 0.0;
                }
                // M̄_ij = s̄_i: Ē, τ̄ and T̄ from the tiles of S (weights_backward)
                double tau_bar = 0.0, temp_bar = 0.0;
                const auto Ebar = g.in_adjoint(0);
                if (use_float) {
                    const std::vector<float> embf(embv.begin(), embv.end());
                    weights_backward(embf.data(), n, E, bs, tau_v, temp, sbar.data(), policy, Ebar.data(), tau_bar, temp_bar);
                } else {
                    weights_backward(embv.data(), n, E, bs, tau_v, temp, sbar.data(), policy, Ebar.data(), tau_bar, temp_bar);
                }
                g.in_adjoint(1)[0] += tau_bar;
                if (learn_t) g.in_adjoint(2)[0] += temp_bar * temp;
            });
        std::vector<double> embv(emb.size());
        for (std::size_t k = 0; k < emb.size(); ++k) embv[k] = tape.value(emb[k]);
        const double tau_v = tape.value(tau[0]);
        const double temp = learn_t ? std::exp(tape.value(logt[0])) : fixed_temp;
        if (use_float) {
            const std::vector<float> embf(embv.begin(), embv.end());
            cluster_sizes(embf.data(), n, E, bs, tau_v, temp, policy, size.data());
        } else {
            cluster_sizes(embv.data(), n, E, bs, tau_v, temp, policy, size.data());
        }
        weights_from_sizes(size.data(), n, tape.values_of(y).data());
        return {y.begin(), y.end()};
    }

    DuplicateWeightingConfig cfg_;
    ad::Parameter kernel_;
    ad::Parameter threshold_;
    ad::Parameter log_temperature_;
};

} // namespace diffbio::ops
