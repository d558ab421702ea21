#pragma once
// ErrorCorrection: a learned, soft per-base correction of reads (spec §2.4, SoftErrorCorrection).
//
// For base l of read i (reads padded to L; lengths[i] is the true length):
//   x_l    = the window of W positions p = l − ⌊W/2⌋ .. l + ⌊W/2⌋, each as [seq_p (4), q_p/40]
//            (or [seq_p] without quality), zeros where p < 0 or p ≥ lengths[i]; flattened, W·C
//   logits = Linear_out(MLP[h × num_layers](relu → relu)(x_l))           (4 logits; no backbone
//            when num_layers = 0)
//   probs  = softmax(logits/T),   λ = σ(β)
//   c_l    = m_l·λ·probs + (1 − λ)·seq_l,   m_l = Σ_a seq_l,a  (the row's input mass)
// Positions l ≥ lengths[i] are padding: their output rows are 0 and pass no gradient; their
// inputs are never read.
//
// Difference from DiffBio (deliberate): DiffBio computes c = λ·probs + (1 − λ)·seq and then
// renormalises c/(Σc + 1e-8), which undoes any upstream soft masking (a quality-filtered base
// with mass 0.2 comes back with mass 1). Here each row keeps its input mass m_l instead. For a
// one-hot (or any unit-mass) row, m_l = 1 and both formulas agree up to DiffBio's 1e-8.
//
// Learnable parameters: the MLP's and the output layer's weights and biases, β ("blend", init
// blend_init; confidence() = σ(β)), and, when learnable_temperature, log T: T is stored as its
// logarithm so that it stays > 0 under any gradient step (DiffBio uses a raw T with no positivity
// constraint). Otherwise T is the constant config.temperature. 1/T is capped at e^700 (e^80 in
// float) so that no temperature, however small, makes a NaN (beyond the cap log T gets no gradient).
//
// Gradients (per row, ḡ = ∂L/∂c, p = probs, u = logits/T, ⟨·,·⟩ over the 4 bases):
//   ∂L/∂logits = p ⊙ (m·λ·ḡ − ⟨m·λ·ḡ, p⟩)/T,      ∂L/∂log T = −Σ_a (∂L/∂logits)_a·logits_a
//   ∂L/∂β = σ'(β)·Σ_a ḡ_a(m·p_a − seq_a),           ∂L/∂seq_l,a += (1 − λ)ḡ_a + λ⟨ḡ, p⟩
// plus, through the window features, ∂L/∂seq and ∂L/∂q of every base in the window.
//
// Cost: all windows of all reads form ONE batched matrix of Σ lengths rows × W·C columns, so the
// work is a few GEMMs: O(Σ lengths · (W·C·h + (num_layers − 1)·h² + 4h)). It is processed in
// blocks of whole reads (about 1024 rows): a block's window matrix is gathered once, run through
// every layer (Eigen GEMMs, bias + ReLU fused) and blended, so nothing of size rows × W·C is
// ever stored and float/double keep no rows × h intermediate beyond the block. For Var the whole
// network and the blend are ONE fused node (inputs: reads, qualities, every parameter; outputs:
// the corrected reads): the layers' outputs are kept in the tape's arena (rows × Σ widths, not
// as tape variables), and the backward runs block by block: blend backward, then per layer
// W̄ = Aᵀ Z̄, b̄ = Σ Z̄, Ā = Z̄ Wᵀ ⊙ [A > 0] as GEMMs, the window gradient scattered back onto the
// bases. config.float_gradient runs those GEMMs in float (the blend and the gradient sums stay
// in double). Dual builds the window matrix and runs the generic layers (the backbone has no
// dropout). exec::CpuParallel splits the blocks of whole reads across OpenMP threads
// (partial parameter gradients are added in thread order: deterministic for a thread count).
// logits() keeps the layer-by-layer path: [window gather + first Linear + ReLU] node, one node per
// further layer.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
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
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/nn/activation.hpp>
#include <diffbio/nn/init.hpp>
#include <diffbio/nn/linear.hpp>
#include <diffbio/nn/mlp.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct ErrorCorrectionConfig {
    std::size_t window_size = 11;     ///< W: odd, ≥ 1
    std::size_t hidden_dim = 64;      ///< h: width of the backbone layers, ≥ 1
    std::size_t num_layers = 2;       ///< backbone depth (0: the output layer sees the window directly)
    bool use_quality = true;          ///< append q/40 to each window position
    double temperature = 1.0;         ///< T of the softmax, finite and > 0
    bool learnable_temperature = true;///< learn log T
    double blend_init = 0.5;          ///< initial β (λ = σ(β))
    std::uint64_t seed = 0;           ///< weight initialisation
    /// Reverse mode (Var) only: run the network's GEMMs (forward and backward) in float instead
    /// of double — inputs, weights and the saved activations rounded to float, the softmax/blend
    /// and the gradient sums in double. About twice as fast; outputs and gradients agree with the
    /// double path to float rounding (relative ~1e-6 on the outputs, ~1e-5 on the gradients).
    /// Off by default. Plain float forward (Binder<float>) always computes in float.
    bool float_gradient = false;

    void validate() const {
        const char* where = "ErrorCorrectionConfig";
        if (window_size == 0 || window_size % 2 == 0) {
            throw InvalidArgument(std::string(where) + ": 'window_size' must be odd and >= 1, got " +
                                  std::to_string(window_size));
        }
        if (hidden_dim == 0) throw InvalidArgument(std::string(where) + ": 'hidden_dim' must be >= 1, got 0");
        check_temperature(temperature, where, "temperature");
        check_finite(blend_init, where, "blend_init");
    }
};

namespace detail::ec {

/// Rows of the batched window matrix: the valid positions of all reads, read by read, in
/// blocks of whole reads (so that blocks' windows never share a base).
struct WindowLayout {
    std::size_t n = 0;      ///< reads
    std::size_t length = 0; ///< padded length L
    std::size_t window = 1; ///< W
    std::size_t channels = 5;
    std::vector<std::size_t> row_offset;  ///< [n + 1]: first row of each read
    std::vector<std::size_t> block_start; ///< [blocks + 1]: first read of each block

    std::size_t rows() const noexcept { return row_offset.back(); }
    std::size_t dim() const noexcept { return window * channels; }
    std::size_t blocks() const noexcept { return block_start.size() - 1; }
    std::size_t read_length(std::size_t i) const noexcept { return row_offset[i + 1] - row_offset[i]; }

    static constexpr std::size_t block_rows = 1024;

    static WindowLayout make(std::span<const std::uint32_t> lengths, std::size_t n, std::size_t length,
                             std::size_t window, std::size_t channels) {
        WindowLayout w;
        w.n = n;
        w.length = length;
        w.window = window;
        w.channels = channels;
        w.row_offset.assign(n + 1, 0);
        for (std::size_t i = 0; i < n; ++i) w.row_offset[i + 1] = w.row_offset[i] + lengths[i];
        w.block_start.push_back(0);
        std::size_t rows_in_block = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (rows_in_block > 0 && rows_in_block + lengths[i] > block_rows) {
                w.block_start.push_back(i);
                rows_in_block = 0;
            }
            rows_in_block += lengths[i];
        }
        if (w.block_start.back() != n || n == 0) w.block_start.push_back(n);
        return w;
    }
};

/// Window features of base l of read i into f[0 .. W·C): [seq_p, q_p/40] or zeros off the read.
template <class V, class SV>
void fill_window(const SV* seq, const SV* qual, const WindowLayout& lay, std::size_t i, std::size_t l, V* f) {
    const std::size_t len = lay.read_length(i);
    const std::size_t half = lay.window / 2;
    const std::size_t c = lay.channels;
    for (std::size_t o = 0; o < lay.window; ++o) {
        V* fo = f + o * c;
        const bool inside = l + o >= half && l + o - half < len;
        if (inside) {
            const std::size_t p = i * lay.length + l + o - half;
            for (std::size_t a = 0; a < 4; ++a) fo[a] = V(seq[p * 4 + a]);
            if (c == 5) fo[4] = V(qual[p]) / V(40.0);
        } else {
            for (std::size_t a = 0; a < c; ++a) fo[a] = V(0.0);
        }
    }
}

/// Window rows of reads i0..i1 (the block's rows r0.. of the layout) into x [rows × W·C].
template <class V, class SV>
void gather_block(const SV* seq, const SV* qual, const WindowLayout& lay, std::size_t i0, std::size_t i1, V* x) {
    const std::size_t d = lay.dim(), r0 = lay.row_offset[i0];
    for (std::size_t i = i0; i < i1; ++i) {
        for (std::size_t l = 0; l < lay.read_length(i); ++l) fill_window(seq, qual, lay, i, l, x + (lay.row_offset[i] + l - r0) * d);
    }
}

/// Adds ∂L/∂x of the block's window rows onto the bases of each window: seq (4 per position)
/// and, with quality, q̄ += x̄/40.
template <class V>
void scatter_window_grad(const V* gx, const WindowLayout& lay, std::size_t i0, std::size_t i1, double* gseq, double* gqual) {
    const std::size_t d = lay.dim(), c = lay.channels, half = lay.window / 2, r0 = lay.row_offset[i0];
    for (std::size_t i = i0; i < i1; ++i) {
        const std::size_t len = lay.read_length(i);
        for (std::size_t l = 0; l < len; ++l) {
            const V* g = gx + (lay.row_offset[i] + l - r0) * d;
            for (std::size_t o = 0; o < lay.window; ++o) {
                if (l + o < half || l + o - half >= len) continue;
                const std::size_t pos = i * lay.length + l + o - half;
                if (gseq != nullptr) {
                    for (std::size_t a = 0; a < 4; ++a) gseq[pos * 4 + a] += static_cast<double>(g[o * c + a]);
                }
                if (gqual != nullptr && c == 5) gqual[pos] += static_cast<double>(g[o * c + 4]) / 40.0;
            }
        }
    }
}

/// f(block, thread) for every block: serially (exec::Cpu) or in static OpenMP blocks.
template <class P, class F>
void for_blocks(const P& policy, std::size_t nblocks, F&& f) {
    if constexpr (std::is_same_v<P, exec::CpuParallel>) {
        const auto nb = static_cast<std::ptrdiff_t>(nblocks);
        [[maybe_unused]] const int threads = exec::thread_count(policy);
        DIFFBIO_OMP(parallel for schedule(static) num_threads(threads))
        for (std::ptrdiff_t b = 0; b < nb; ++b) f(static_cast<std::size_t>(b), exec::this_thread_index());
    } else {
        (void)policy;
        for (std::size_t b = 0; b < nblocks; ++b) f(b, 0);
    }
}

/// Block b of a layout: reads i0..i1, i.e. rows r0 .. r0 + nr of the window matrix.
struct ReadBlock {
    std::size_t i0, i1, r0, nr;
};

/// f(block, thread) for every block of the layout that has rows (see for_blocks).
template <class P, class F>
void for_read_blocks(const P& policy, const WindowLayout& lay, F&& f) {
    for_blocks(policy, lay.blocks(), [&](std::size_t b, std::size_t t) {
        const std::size_t i0 = lay.block_start[b], i1 = lay.block_start[b + 1];
        const std::size_t r0 = lay.row_offset[i0], nr = lay.row_offset[i1] - r0;
        if (nr != 0) f(ReadBlock{i0, i1, r0, nr}, t);
    });
}

/// First layer fused with the window gather: out [rows × h] = act(X·W0 + b0), X the window
/// matrix, built block by block (plain floating types).
template <class V, class SV, class P>
void window_linear_forward(const P& policy, const SV* seq, const SV* qual, const WindowLayout& lay, const V* w0,
                           const V* b0, std::size_t h, const nn::detail::ActivationOp& op, V* out) {
    const std::size_t d = lay.dim();
    std::vector<std::vector<V>> fbuf(static_cast<std::size_t>(exec::thread_count(policy)));
    nn::detail::SerialGemm serial;
    for_read_blocks(policy, lay, [&](ReadBlock blk, std::size_t t) {
        const auto [i0, i1, r0, nr] = blk;
        std::vector<V>& f = fbuf[t];
        f.resize(nr * d);
        gather_block(seq, qual, lay, i0, i1, f.data());
        nn::detail::linear_forward_rows(f.data(), w0, b0, nr, d, h, op, out + r0 * h);
    });
}

/// Backward of window_linear_forward (double): with Z̄ = Ȳ ⊙ f'(Y),
///   gw0 += Xᵀ Z̄, gb0 += Σ_rows Z̄, and, when gseq/gqual are given, X̄ = Z̄ W0ᵀ scattered back
///   onto the bases of each window (q̄ gets X̄/40).
template <class P>
void window_linear_backward(const P& policy, const double* seq, const double* qual, const WindowLayout& lay,
                            const double* w0, std::size_t h, const nn::detail::ActivationOp& op, const double* y,
                            const double* gy, double* gseq, double* gqual, double* gw0, double* gb0) {
    const std::size_t d = lay.dim();
    const auto nthreads = static_cast<std::size_t>(exec::thread_count(policy));
    // Per-thread partial sums of gw0 and gb0, reduced in thread order (deterministic for a
    // fixed thread count).
    std::vector<std::vector<double>> part(nthreads, std::vector<double>(d * h + h, 0.0));
    std::vector<std::vector<double>> fbuf(nthreads), gzbuf(nthreads), gfbuf(nthreads);
    const bool want_input = gseq != nullptr || gqual != nullptr;
    nn::detail::SerialGemm serial;
    for_read_blocks(policy, lay, [&](ReadBlock blk, std::size_t t) {
        const auto [i0, i1, r0, nr] = blk;
        std::vector<double>& f = fbuf[t];
        f.resize(nr * d);
        gather_block(seq, qual, lay, i0, i1, f.data());
        const double* gz = gy + r0 * h;
        if (op.kind != nn::Activation::none) {
            std::vector<double>& z = gzbuf[t];
            z.resize(nr * h);
            for (std::size_t k = 0; k < nr * h; ++k) z[k] = gy[r0 * h + k] * op.derivative_from_output(y[r0 * h + k]);
            gz = z.data();
        }
        std::vector<double>* gf = nullptr;
        if (want_input) {
            gf = &gfbuf[t];
            gf->assign(nr * d, 0.0);
        }
        nn::detail::linear_backward_rows(f.data(), w0, gz, nr, d, h, gf != nullptr ? gf->data() : nullptr,
                                           part[t].data(), part[t].data() + d * h);
        if (gf != nullptr) scatter_window_grad(gf->data(), lay, i0, i1, gseq, gqual);
    });
    for (const auto& pt : part) {
        if (gw0 != nullptr) {
            for (std::size_t k = 0; k < d * h; ++k) gw0[k] += pt[k];
        }
        if (gb0 != nullptr) {
            for (std::size_t k = 0; k < h; ++k) gb0[k] += pt[d * h + k];
        }
    }
}

/// c = m·λ·softmax(z·inv_t) + (1 − λ)·s for one row of 4 (generic scalar; m = Σ s).
template <class R, class Z, class S, class L, class I>
void correct_row(const Z* z, const S* s, const L& lambda, const I& inv_t, R* c) {
    using std::exp;
    double m = primal(z[0]);
    for (std::size_t a = 1; a < 4; ++a) m = primal(z[a]) > m ? primal(z[a]) : m;
    const R mt = passive<R>(m);
    R e[4];
    R sum = passive<R>(0.0);
    for (std::size_t a = 0; a < 4; ++a) {
        e[a] = exp((R(z[a]) - mt) * inv_t);
        sum = sum + e[a];
    }
    const R mass = R(s[0]) + R(s[1]) + R(s[2]) + R(s[3]);
    const R keep = R(1.0) - R(lambda);
    for (std::size_t a = 0; a < 4; ++a) c[a] = mass * lambda * (e[a] / sum) + keep * R(s[a]);
}

/// correct_row for every base of read i: z holds the logits of the rows from r0 on [· × 4], s and
/// c are [N × L × 4].
template <class R, class Z, class S, class L, class I>
void correct_read(const Z* z, std::size_t r0, const S* s, const WindowLayout& lay, std::size_t i, const L& lambda,
                  const I& inv_t, R* c) {
    for (std::size_t l = 0; l < lay.read_length(i); ++l) {
        const std::size_t p = (i * lay.length + l) * 4;
        correct_row(z + (lay.row_offset[i] + l - r0) * 4, s + p, lambda, inv_t, c + p);
    }
}

/// The whole network (backbone layers, then the output layer) as flat layers: layer k maps
/// dims[k] → dims[k+1] with activation ops[k]; in one flat parameter array its weight
/// [dims[k] × dims[k+1]] starts at w_off[k] and its bias at b_off[k].
struct Net {
    std::vector<std::size_t> dims;
    std::vector<nn::detail::ActivationOp> ops;
    std::vector<std::size_t> w_off, b_off;
    std::size_t num_params = 0;

    std::size_t layers() const noexcept { return ops.size(); }
    std::size_t out_width() const noexcept { return dims.back(); }

    void add(std::size_t in, std::size_t out, nn::detail::ActivationOp op) {
        if (dims.empty()) dims.push_back(in);
        dims.push_back(out);
        ops.push_back(op);
        w_off.push_back(num_params);
        b_off.push_back(num_params + in * out);
        num_params += in * out + out;
    }
};

/// The network on nr rows x: act[k] [nr × dims[k+1]] receives layer k's output (after its
/// activation); act[layers − 1] holds the logits.
template <class V>
void net_forward_rows(const Net& net, const V* p, const V* x, std::size_t nr, V* const* act) {
    const V* in = x;
    for (std::size_t k = 0; k < net.layers(); ++k) {
        nn::detail::linear_forward_rows(in, p + net.w_off[k], p + net.b_off[k], nr, net.dims[k], net.dims[k + 1], net.ops[k],
                                        act[k]);
        in = act[k];
    }
}

/// Backward of net_forward_rows on nr rows: g [nr × dims.back()] holds ∂L/∂(last layer's output)
/// and is overwritten (used as scratch, with g2). Per layer, as GEMMs in V: Z̄ = Ā ⊙ f'(A),
/// W̄ = Aᵀ_in Z̄, b̄ = Σ_rows Z̄, Ā_in = Z̄ Wᵀ. Adds ∂L/∂params into gp (double, flat as Net), and
/// writes (=, not +=) ∂L/∂x into gx [nr × dims[0]] when not null. gw is scratch for one layer's
/// weight gradient.
template <class V>
void net_backward_rows(const Net& net, const V* p, const V* x, std::size_t nr, const V* const* act, std::vector<V>& g,
                       std::vector<V>& g2, std::vector<V>& gw, double* gp, V* gx) {
    using nn::detail::ConstMatrixMap;
    using nn::detail::MatrixMap;
    using nn::detail::eidx;
    for (std::size_t k = net.layers(); k-- > 0;) {
        const std::size_t in = net.dims[k], out = net.dims[k + 1];
        const nn::detail::ActivationOp& op = net.ops[k];
        V* __restrict gv = g.data();
        const V* __restrict a = act[k];
        if (op.kind == nn::Activation::relu) { // the ReLU mask, vectorised
            for (std::size_t e = 0; e < nr * out; ++e) gv[e] = a[e] > V(0) ? gv[e] : V(0);
        } else if (op.kind != nn::Activation::none) {
            for (std::size_t e = 0; e < nr * out; ++e) gv[e] *= static_cast<V>(op.derivative_from_output(static_cast<double>(a[e])));
        }
        const V* xin = k > 0 ? act[k - 1] : x;
        const ConstMatrixMap<V> G(g.data(), eidx(nr), eidx(out));
        const ConstMatrixMap<V> Wk(p + net.w_off[k], eidx(in), eidx(out));
        gw.resize(in * out + out);
        MatrixMap<V>(gw.data(), eidx(in), eidx(out)).noalias() = ConstMatrixMap<V>(xin, eidx(nr), eidx(in)).transpose() * G;
        nn::detail::RowVectorMap<V>(gw.data() + in * out, eidx(out)) = G.colwise().sum();
        V* gin = nullptr;
        if (k > 0) {
            g2.resize(nr * in);
            gin = g2.data();
        } else {
            gin = gx;
        }
        if (gin != nullptr) MatrixMap<V>(gin, eidx(nr), eidx(in)).noalias() = G * Wk.transpose();
        for (std::size_t e = 0; e < in * out; ++e) gp[net.w_off[k] + e] += static_cast<double>(gw[e]);
        for (std::size_t e = 0; e < out; ++e) gp[net.b_off[k] + e] += static_cast<double>(gw[in * out + e]);
        if (k > 0) g.swap(g2);
    }
}

/// Backward of c = m·λ·softmax(z·inv_t) + (1 − λ)·s for one row (double): writes ∂L/∂z into gz,
/// adds ∂L/∂λ·(…) to gl (as Σ ḡ(m·p − s)) and −Σ ū·u to gt (∂L/∂log T), and ∂L/∂s into gs (if not
/// null).
template <class V>
void blend_row_backward(const V* zr, const double* s, const double* gc, double lambda, double inv_t, V* gz, double& gl,
                        double& gt, double* gs) {
    double z[4];
    for (std::size_t a = 0; a < 4; ++a) z[a] = static_cast<double>(zr[a]);
    double m = z[0];
    for (std::size_t a = 1; a < 4; ++a) m = z[a] > m ? z[a] : m;
    double p[4], sum = 0.0;
    for (std::size_t a = 0; a < 4; ++a) {
        p[a] = std::exp((z[a] - m) * inv_t);
        sum += p[a];
    }
    const double mass = s[0] + s[1] + s[2] + s[3];
    double dot_gp = 0.0; // ⟨ḡ, p⟩
    for (std::size_t a = 0; a < 4; ++a) {
        p[a] /= sum;
        dot_gp += gc[a] * p[a];
    }
    // p̄ = m·λ·ḡ;  ū = p ⊙ (p̄ − ⟨p̄, p⟩)
    const double scale = mass * lambda;
    const double dot_p = scale * dot_gp;
    for (std::size_t a = 0; a < 4; ++a) {
        const double gu = p[a] * (scale * gc[a] - dot_p);
        gz[a] = static_cast<V>(gu * inv_t);
        gt -= gu * (z[a] - m) * inv_t;
        gl += gc[a] * (mass * p[a] - s[a]);
    }
    if (gs != nullptr) {
        for (std::size_t a = 0; a < 4; ++a) gs[a] += (1.0 - lambda) * gc[a] + lambda * dot_gp;
    }
}

} // namespace detail::ec

class ErrorCorrection {
public:
    explicit ErrorCorrection(ErrorCorrectionConfig cfg = {})
        : cfg_((cfg.validate(), cfg)),
          output_(cfg_.num_layers > 0 ? cfg_.hidden_dim : input_dim(), 4, nn::derive_seed(cfg_.seed, 1),
                  "error_correction.output"),
          beta_("error_correction.blend", cfg_.blend_init),
          log_temperature_("error_correction.log_temperature", std::log(cfg_.temperature)) {
        if (cfg_.num_layers > 0) {
            backbone_.emplace(input_dim(), std::vector<std::size_t>(cfg_.num_layers, cfg_.hidden_dim), nn::Activation::relu,
                              nn::Activation::relu, nn::derive_seed(cfg_.seed, 0), "error_correction.backbone");
        }
    }

    const ErrorCorrectionConfig& config() const noexcept { return cfg_; }
    /// Values per window position: 4 bases (+ quality).
    std::size_t channels() const noexcept { return cfg_.use_quality ? 5 : 4; }
    /// Width of a flattened window: W·channels() (55 by default).
    std::size_t input_dim() const noexcept { return cfg_.window_size * channels(); }

    /// The backbone MLP (null when num_layers = 0), the output layer, β and log T.
    nn::MLP* backbone() noexcept { return backbone_ ? &*backbone_ : nullptr; }
    const nn::MLP* backbone() const noexcept { return backbone_ ? &*backbone_ : nullptr; }
    nn::Linear& output_layer() noexcept { return output_; }
    const nn::Linear& output_layer() const noexcept { return output_; }
    ad::Parameter& blend() noexcept { return beta_; }
    const ad::Parameter& blend() const noexcept { return beta_; }
    /// log T (a Parameter even when T is fixed; then it is not in parameters() and not read).
    ad::Parameter& log_temperature() noexcept { return log_temperature_; }
    const ad::Parameter& log_temperature() const noexcept { return log_temperature_; }

    /// Backbone weights and biases, output layer, β, and log T when learnable_temperature.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p;
        if (backbone_) p = backbone_->parameters();
        p.push_back(&output_.weight());
        p.push_back(&output_.bias());
        p.push_back(&beta_);
        if (cfg_.learnable_temperature) p.push_back(&log_temperature_);
        return p;
    }

    /// λ = σ(β): how much of the network's prediction enters the output.
    double confidence() const { return diffbio::sigmoid(beta_.scalar()); }
    /// The current softmax temperature T.
    double temperature() const { return cfg_.learnable_temperature ? std::exp(log_temperature_.scalar()) : cfg_.temperature; }

    /// Corrected reads [N×L×4] (padding rows 0) from reads seq [N×L×4] and Phred qualities
    /// [N×L] (quality may be empty when use_quality is false). S is the scalar of the incoming
    /// reads: plain numbers (float/double) or T itself (AD values from upstream operators).
    /// Throws ShapeError on inconsistent sizes or lengths[i] > length.
    template <class T, class S, exec::HostPolicy P = exec::Cpu>
    std::vector<T> apply(ad::Binder<T>& bind, std::span<const S> seq, std::span<const S> quality,
                         std::span<const std::uint32_t> lengths, std::size_t n_reads, std::size_t length,
                         const P& policy = {}) const {
        static_assert(std::is_arithmetic_v<S> || std::is_same_v<S, T>,
                      "ErrorCorrection::apply: reads must hold plain numbers or the binder's scalar T");
        const auto lay = checked_layout(seq, quality, lengths, n_reads, length);
        std::vector<T> out(n_reads * length * 4);
        if (out.empty()) return out;
        if (lay.rows() == 0) {
            const T zero = passive<T>(0.0);
            for (T& v : out) v = zero;
            return out;
        }
        if constexpr (soft::detail::is_var_v<T>) {
            // The fused path: the whole network and the blend, block by block (see header).
            if (cfg_.float_gradient) {
                fused_var<float>(bind, seq, quality, lay, policy, out);
            } else {
                fused_var<double>(bind, seq, quality, lay, policy, out);
            }
        } else if constexpr (std::is_floating_point_v<T>) {
            fused_plain(bind, seq, quality, lay, policy, out);
        } else {
            // Dual and other AD scalars: the window matrix, the generic layers, then the blend.
            const std::vector<T> z = compact_logits(bind, seq, quality, lay, policy);
            const T inv_t = inverse_temperature(bind);
            using diffbio::sigmoid;
            const T lambda = sigmoid(bind(beta_)[0]);
            const T zero = passive<T>(0.0);
            for (T& v : out) v = zero;
            for (std::size_t i = 0; i < n_reads; ++i) {
                detail::ec::correct_read(z.data(), 0, seq.data(), lay, i, lambda, inv_t, out.data());
            }
        }
        return out;
    }

    /// The network's logits [N×L×4] before the softmax (padding rows 0); same inputs as apply.
    template <class T, class S, exec::HostPolicy P = exec::Cpu>
    std::vector<T> logits(ad::Binder<T>& bind, std::span<const S> seq, std::span<const S> quality,
                          std::span<const std::uint32_t> lengths, std::size_t n_reads, std::size_t length,
                          const P& policy = {}) const {
        static_assert(std::is_arithmetic_v<S> || std::is_same_v<S, T>,
                      "ErrorCorrection::logits: reads must hold plain numbers or the binder's scalar T");
        const auto lay = checked_layout(seq, quality, lengths, n_reads, length);
        std::vector<T> out(n_reads * length * 4);
        if (out.empty()) return out;
        const T zero = passive<T>(0.0);
        for (T& v : out) v = zero;
        if (lay.rows() == 0) return out;
        const std::vector<T> z = compact_logits(bind, seq, quality, lay, policy);
        for (std::size_t i = 0; i < n_reads; ++i) {
            for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                for (std::size_t a = 0; a < 4; ++a) out[(i * length + l) * 4 + a] = z[(lay.row_offset[i] + l) * 4 + a];
            }
        }
        return out;
    }

    /// The window matrix [N·L × W·C] that the network sees (row i·L + l; padding rows 0), for
    /// inspection and tests (apply never stores it for float/double/Var).
    template <class S>
    std::vector<S> window_features(std::span<const S> seq, std::span<const S> quality,
                                   std::span<const std::uint32_t> lengths, std::size_t n_reads,
                                   std::size_t length) const {
        const auto lay = checked_layout(seq, quality, lengths, n_reads, length);
        const std::size_t d = lay.dim();
        std::vector<S> f(n_reads * length * d);
        if (f.empty()) return f;
        const S zero = passive<S>(0.0);
        for (S& v : f) v = zero;
        for (std::size_t i = 0; i < n_reads; ++i) {
            for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                detail::ec::fill_window(seq.data(), cfg_.use_quality ? quality.data() : seq.data(), lay, i, l,
                                    f.data() + (i * length + l) * d);
            }
        }
        return f;
    }

private:
    template <class S>
    void validate_inputs(std::span<const S> seq, std::span<const S> quality, std::span<const std::uint32_t> lengths,
                         std::size_t n, std::size_t length) const {
        detail::check_read_shapes("ErrorCorrection", seq, quality, cfg_.use_quality || !quality.empty(), lengths, n, length);
        detail::check_read_values("ErrorCorrection", seq, quality, length);
    }

    /// The window layout of the reads, after validate_inputs.
    template <class S>
    detail::ec::WindowLayout checked_layout(std::span<const S> seq, std::span<const S> quality,
                                            std::span<const std::uint32_t> lengths, std::size_t n,
                                            std::size_t length) const {
        validate_inputs(seq, quality, lengths, n, length);
        return detail::ec::WindowLayout::make(lengths, n, length, cfg_.window_size, channels());
    }

    /// 1/T is capped at e^700 (e^80 in float), before it would overflow to ∞ and make 0·∞ = NaN
    /// in the softmax; beyond the cap it is a constant (no gradient to log T).
    static constexpr double max_log_inv_t = 700.0;
    template <class T>
    static constexpr double log_inv_t_cap() {
        return std::is_same_v<typename ScalarTraits<T>::value_type, float> ? 80.0 : max_log_inv_t;
    }

    /// 1/T as the binder's scalar (a constant when T is not learnable, or capped).
    template <class T>
    T inverse_temperature(ad::Binder<T>& bind) const {
        constexpr double cap = log_inv_t_cap<T>();
        if (cfg_.learnable_temperature) {
            using std::exp;
            const T log_t = bind(log_temperature_)[0];
            if (-primal(log_t) > cap) return passive<T>(std::exp(cap));
            return exp(-log_t);
        }
        return passive<T>(std::min(1.0 / cfg_.temperature, std::exp(cap)));
    }

    /// Layer k of the whole network: the backbone's layers, then the output layer.
    const nn::Linear& net_layer(std::size_t k) const {
        const std::size_t nb = backbone_ ? backbone_->num_layers() : 0;
        return k < nb ? backbone_->layer(k) : output_;
    }

    detail::ec::Net net_shape() const {
        detail::ec::Net net;
        std::size_t in = input_dim();
        if (backbone_) {
            const double slope = backbone_->config().negative_slope;
            for (std::size_t k = 0; k < backbone_->num_layers(); ++k) {
                const nn::Activation a = backbone_->activation_of(k);
                const std::size_t out = backbone_->layer(k).out_features();
                net.add(in, out, nn::detail::ActivationOp{a, a == nn::Activation::leaky_relu ? slope : 0.0});
                in = out;
            }
        }
        net.add(in, 4, nn::detail::ActivationOp{nn::Activation::none, 0.0});
        return net;
    }

    /// float/double: the fused forward, no tape. Each block of whole reads is gathered, run
    /// through every layer and blended into out by one thread; nothing of size rows × h outlives
    /// its block.
    template <class T, class S, class P>
    void fused_plain(ad::Binder<T>& bind, std::span<const S> seq, std::span<const S> quality,
                     const detail::ec::WindowLayout& lay, const P& policy, std::vector<T>& out) const {
        const detail::ec::Net net = net_shape();
        std::vector<T> params(net.num_params);
        for (std::size_t k = 0; k < net.layers(); ++k) {
            const auto w = bind(net_layer(k).weight());
            const auto b = bind(net_layer(k).bias());
            std::copy(w.begin(), w.end(), params.begin() + static_cast<std::ptrdiff_t>(net.w_off[k]));
            std::copy(b.begin(), b.end(), params.begin() + static_cast<std::ptrdiff_t>(net.b_off[k]));
        }
        const T inv_t = inverse_temperature(bind);
        using diffbio::sigmoid;
        const T lambda = sigmoid(bind(beta_)[0]);
        std::fill(out.begin(), out.end(), T(0));
        const S* qual = cfg_.use_quality ? quality.data() : seq.data(); // not read without quality
        const std::size_t d = lay.dim();
        struct Scratch {
            std::vector<T> x;
            std::vector<std::vector<T>> act;
            std::vector<T*> ptr;
        };
        std::vector<Scratch> scratch(static_cast<std::size_t>(exec::thread_count(policy)));
        nn::detail::SerialGemm serial;
        detail::ec::for_read_blocks(policy, lay, [&](detail::ec::ReadBlock blk, std::size_t t) {
            const auto [i0, i1, r0, nr] = blk;
            Scratch& sc = scratch[t];
            sc.x.resize(nr * d);
            detail::ec::gather_block(seq.data(), qual, lay, i0, i1, sc.x.data());
            sc.act.resize(net.layers());
            sc.ptr.resize(net.layers());
            for (std::size_t k = 0; k < net.layers(); ++k) {
                sc.act[k].resize(nr * net.dims[k + 1]);
                sc.ptr[k] = sc.act[k].data();
            }
            detail::ec::net_forward_rows(net, params.data(), sc.x.data(), nr, sc.ptr.data());
            const T* z = sc.ptr.back();
            for (std::size_t i = i0; i < i1; ++i) detail::ec::correct_read(z, r0, seq.data(), lay, i, lambda, inv_t, out.data());
        });
    }

    /// Var: ONE node for the whole network and the blend (inputs: reads, qualities, every
    /// parameter; outputs: the N·L·4 corrected reads). The layers' outputs are kept in the tape's
    /// arena as V (rows × Σ widths); the backward runs block by block: blend backward, then each
    /// layer's W̄ = Aᵀ Z̄, b̄, Ā = Z̄ Wᵀ ⊙ f' as GEMMs in V, the window gradient scattered back onto the
    /// bases. V = float when config().float_gradient (parameter gradients summed in double per block).
    template <class V, class S, class P>
    void fused_var(ad::Binder<ad::Var>& bind, std::span<const S> seq, std::span<const S> quality,
                   const detail::ec::WindowLayout& lay, const P& policy, std::vector<ad::Var>& out) const {
        ad::Tape& tape = ad::Tape::active();
        const detail::ec::Net net = net_shape();
        const std::size_t np = net.num_params;
        std::vector<ad::Var> pvars;
        pvars.reserve(np + 2);
        for (std::size_t k = 0; k < net.layers(); ++k) {
            const auto w = bind(net_layer(k).weight());
            const auto b = bind(net_layer(k).bias());
            pvars.insert(pvars.end(), w.begin(), w.end());
            pvars.insert(pvars.end(), b.begin(), b.end());
        }
        const ad::Var beta = bind(beta_)[0];
        pvars.push_back(beta);
        bool learn_t = false; // log T is a node input: learnable and not capped
        double inv_t = std::min(1.0 / cfg_.temperature, std::exp(max_log_inv_t));
        if (cfg_.learnable_temperature) {
            const ad::Var log_t = bind(log_temperature_)[0];
            const double neg = -tape.value(log_t);
            learn_t = neg <= max_log_inv_t;
            inv_t = std::exp(learn_t ? neg : max_log_inv_t);
            if (learn_t) pvars.push_back(log_t);
        }
        const double bv = tape.value(beta);
        const double lambda = diffbio::sigmoid(bv);
        const double dlambda = diffbio::sigmoid_derivative(bv);
        const std::span<const S> q = cfg_.use_quality ? quality : std::span<const S>{};
        const auto saved_seq = soft::detail::saved_values(tape, seq);
        const auto saved_q = soft::detail::saved_values(tape, q);
        std::vector<V*> act_base(net.layers());
        for (std::size_t k = 0; k < net.layers(); ++k) act_base[k] = tape.allocate<V>(lay.rows() * net.dims[k + 1]).data();
        const std::size_t nthreads = static_cast<std::size_t>(exec::thread_count(policy));
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(seq), soft::detail::node_inputs(q), std::span<const ad::Var>(pvars)},
            lay.n * lay.length * 4,
            [lay, net, np, saved_seq, saved_q, act_base, inv_t, lambda, dlambda, learn_t, nthreads, policy](const ad::NodeGrad& g) {
                const auto sv = soft::detail::input_values<S>(g, 0, saved_seq);
                const auto qv = soft::detail::input_values<S>(g, 1, saved_q);
                const auto gs = g.in_adjoint(0);
                const auto gq = g.in_adjoint(1);
                const auto pv = g.in_value(2);
                const auto gp = g.in_adjoint(2);
                const auto gy = g.out_adjoint();
                const double* qual = qv.empty() ? sv.data() : qv.data();
                const bool want_input = !gs.empty() || !gq.empty();
                std::vector<V> params(np);
                for (std::size_t j = 0; j < np; ++j) params[j] = static_cast<V>(pv[j]);
                struct Scratch {
                    std::vector<double> part; // ∂L/∂params, then Σ ḡ(m·p − s), then ∂L/∂log T
                    std::vector<V> x, g, g2, gw, gx;
                    std::vector<const V*> act;
                };
                std::vector<Scratch> scratch(nthreads);
                for (Scratch& sc : scratch) sc.part.assign(np + 2, 0.0);
                const std::size_t d = lay.dim(), length = lay.length;
                nn::detail::SerialGemm serial;
                detail::ec::for_read_blocks(policy, lay, [&](detail::ec::ReadBlock blk, std::size_t t) {
                    const auto [i0, i1, r0, nr] = blk;
                    Scratch& sc = scratch[t];
                    sc.x.resize(nr * d);
                    detail::ec::gather_block(sv.data(), qual, lay, i0, i1, sc.x.data());
                    sc.act.resize(net.layers());
                    for (std::size_t k = 0; k < net.layers(); ++k) sc.act[k] = act_base[k] + r0 * net.dims[k + 1];
                    const V* z = sc.act.back();
                    sc.g.assign(nr * 4, V(0));
                    double gl = 0.0, gt = 0.0;
                    for (std::size_t i = i0; i < i1; ++i) {
                        for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                            const std::size_t r = lay.row_offset[i] + l - r0;
                            const std::size_t o = (i * length + l) * 4;
                            detail::ec::blend_row_backward(z + r * 4, sv.data() + o, gy.data() + o, lambda, inv_t,
                                                           sc.g.data() + r * 4, gl, gt, gs.empty() ? nullptr : gs.data() + o);
                        }
                    }
                    sc.part[np] += gl;
                    sc.part[np + 1] += gt;
                    if (want_input) sc.gx.resize(nr * d);
                    detail::ec::net_backward_rows(net, params.data(), sc.x.data(), nr, sc.act.data(), sc.g, sc.g2, sc.gw,
                                                  sc.part.data(), want_input ? sc.gx.data() : nullptr);
                    if (want_input) {
                        detail::ec::scatter_window_grad(sc.gx.data(), lay, i0, i1, gs.empty() ? nullptr : gs.data(),
                                                        gq.empty() ? nullptr : gq.data());
                    }
                });
                // Reduce in thread order (deterministic for a fixed thread count).
                for (const Scratch& sc : scratch) {
                    for (std::size_t j = 0; j < np; ++j) gp[j] += sc.part[j];
                    gp[np] += sc.part[np] * dlambda;
                    if (learn_t) gp[np + 1] += sc.part[np + 1];
                }
            });
        const auto sv = soft::detail::forward_values(tape, seq, saved_seq);
        const auto qv = soft::detail::forward_values(tape, q, saved_q);
        std::vector<V> params(np);
        for (std::size_t j = 0; j < np; ++j) params[j] = static_cast<V>(tape.value(pvars[j]));
        const auto yv = tape.values_of(y);
        std::fill(yv.begin(), yv.end(), 0.0);
        const double* qual = qv.empty() ? sv.data() : qv.data();
        const std::size_t d = lay.dim();
        std::vector<std::vector<V>> xbuf(nthreads);
        std::vector<std::vector<V*>> ptrs(nthreads);
        nn::detail::SerialGemm serial;
        detail::ec::for_read_blocks(policy, lay, [&](detail::ec::ReadBlock blk, std::size_t t) {
            const auto [i0, i1, r0, nr] = blk;
            std::vector<V>& x = xbuf[t];
            x.resize(nr * d);
            detail::ec::gather_block(sv.data(), qual, lay, i0, i1, x.data());
            std::vector<V*>& act = ptrs[t];
            act.resize(net.layers());
            for (std::size_t k = 0; k < net.layers(); ++k) act[k] = act_base[k] + r0 * net.dims[k + 1];
            detail::ec::net_forward_rows(net, params.data(), x.data(), nr, act.data());
            const V* z = act.back();
            for (std::size_t i = i0; i < i1; ++i) detail::ec::correct_read(z, r0, sv.data(), lay, i, lambda, inv_t, yv.data());
        });
        for (std::size_t k = 0; k < y.size(); ++k) out[k] = y[k];
    }

    /// Activation of the first (window) layer, and the Linear it uses.
    const nn::Linear& first_layer() const { return backbone_ ? backbone_->layer(0) : output_; }
    nn::Activation first_activation() const { return backbone_ ? backbone_->activation_of(0) : nn::Activation::none; }

    /// Logits of the valid rows only [rows × 4].
    template <class T, class S, class P>
    std::vector<T> compact_logits(ad::Binder<T>& bind, std::span<const S> seq, std::span<const S> quality,
                                  const detail::ec::WindowLayout& lay, const P& policy) const {
        const nn::Linear& first = first_layer();
        const std::size_t rows = lay.rows();
        const std::size_t h = first.out_features();
        const auto op = nn::detail::ActivationOp{first_activation(), 0.0};
        const S* qual = cfg_.use_quality ? quality.data() : seq.data(); // not read without quality
        std::vector<T> h0(rows * h);
        if constexpr (std::is_floating_point_v<T>) {
            const auto w = bind(first.weight());
            const auto b = bind(first.bias());
            detail::ec::window_linear_forward(policy, seq.data(), qual, lay, w.data(), b.data(), h, op, h0.data());
        } else if constexpr (soft::detail::is_var_v<T>) {
            h0 = window_linear_var(bind, first, seq, quality, lay, op, policy);
        } else {
            std::vector<T> f(rows * lay.dim());
            detail::ec::gather_block(seq.data(), qual, lay, 0, lay.n, f.data());
            h0 = first.forward_unchecked(bind, std::span<const T>(f), rows, first_activation(), 0.01, policy);
        }
        if (!backbone_) return h0;
        const std::vector<T> hb = backbone_->forward_layers(1, bind, std::span<const T>(h0), rows, policy);
        return output_.forward_unchecked(bind, std::span<const T>(hb), rows, nn::Activation::none, 0.01, policy);
    }

    /// Var: the fused [window gather + first Linear + activation] node.
    template <class S, class P>
    std::vector<ad::Var> window_linear_var(ad::Binder<ad::Var>& bind, const nn::Linear& first, std::span<const S> seq,
                                           std::span<const S> quality, const detail::ec::WindowLayout& lay,
                                           const nn::detail::ActivationOp op, const P& policy) const {
        ad::Tape& tape = ad::Tape::active();
        const auto w = bind(first.weight());
        const auto b = bind(first.bias());
        const std::size_t h = first.out_features();
        const std::span<const S> q = cfg_.use_quality ? quality : std::span<const S>{};
        const auto saved_seq = soft::detail::saved_values(tape, seq);
        const auto saved_q = soft::detail::saved_values(tape, q);
        auto y = tape.record_node_uninitialised(
            {soft::detail::node_inputs(seq), soft::detail::node_inputs(q), w, b}, lay.rows() * h,
            [lay, saved_seq, saved_q, h, op, policy](const ad::NodeGrad& g) {
                const auto sv = soft::detail::input_values<S>(g, 0, saved_seq);
                const auto qv = soft::detail::input_values<S>(g, 1, saved_q);
                const auto gs = g.in_adjoint(0);
                const auto gq = g.in_adjoint(1);
                detail::ec::window_linear_backward(policy, sv.data(), qv.empty() ? sv.data() : qv.data(), lay,
                                               g.in_value(2).data(), h, op, g.out_value().data(),
                                               g.out_adjoint().data(), gs.empty() ? nullptr : gs.data(),
                                               gq.empty() ? nullptr : gq.data(), g.in_adjoint(2).data(),
                                               g.in_adjoint(3).data());
            });
        const auto sv = soft::detail::forward_values(tape, seq, saved_seq);
        const auto qv = soft::detail::forward_values(tape, q, saved_q);
        const auto wv = soft::detail::forward_values(tape, w, {});
        const auto bv = soft::detail::forward_values(tape, b, {});
        detail::ec::window_linear_forward(policy, sv.data(), qv.empty() ? sv.data() : qv.data(), lay, wv.data(), bv.data(),
                                      h, op, tape.values_of(y).data());
        return {y.begin(), y.end()};
    }

    ErrorCorrectionConfig cfg_;
    std::optional<nn::MLP> backbone_;
    nn::Linear output_;
    ad::Parameter beta_;
    ad::Parameter log_temperature_;
};

} // namespace diffbio::ops
