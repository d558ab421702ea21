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
// work is a few GEMMs: O(Σ lengths · (W·C·h + (num_layers − 1)·h² + 4h)). For Var the call records
// num_layers + 2 fused nodes: [window gather + first Linear + ReLU] (the window matrix is built in
// blocks of reads and never stored: the backward rebuilds it), one node per further Linear + ReLU
// layer, and [softmax + blend] for the output. float/double run the same kernels without a tape;
// Dual builds the window matrix and runs the generic layers. exec::CpuParallel splits blocks of
// whole reads (and GEMMs) across OpenMP threads.

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

/// First layer fused with the window gather: out [rows × h] = act(X·W0 + b0), X the window
/// matrix, built block by block (plain floating types).
template <class V, class SV, class P>
void window_linear_forward(const P& policy, const SV* seq, const SV* qual, const WindowLayout& lay, const V* w0,
                           const V* b0, std::size_t h, const nn::detail::ActivationOp& op, V* out) {
    const std::size_t d = lay.dim();
    std::vector<std::vector<V>> fbuf(static_cast<std::size_t>(exec::thread_count(policy)));
    nn::detail::SerialGemm serial;
    for_blocks(policy, lay.blocks(), [&](std::size_t b, std::size_t t) {
        const std::size_t i0 = lay.block_start[b], i1 = lay.block_start[b + 1];
        const std::size_t r0 = lay.row_offset[i0], nr = lay.row_offset[i1] - r0;
        if (nr == 0) return;
        std::vector<V>& f = fbuf[t];
        f.resize(nr * d);
        for (std::size_t i = i0; i < i1; ++i) {
            for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                fill_window(seq, qual, lay, i, l, f.data() + (lay.row_offset[i] + l - r0) * d);
            }
        }
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
    const std::size_t c = lay.channels;
    const std::size_t half = lay.window / 2;
    const auto nthreads = static_cast<std::size_t>(exec::thread_count(policy));
    // Per-thread partial sums of gw0 and gb0, reduced in thread order (deterministic for a
    // fixed thread count).
    std::vector<std::vector<double>> part(nthreads, std::vector<double>(d * h + h, 0.0));
    std::vector<std::vector<double>> fbuf(nthreads), gzbuf(nthreads), gfbuf(nthreads);
    const bool want_input = gseq != nullptr || gqual != nullptr;
    nn::detail::SerialGemm serial;
    for_blocks(policy, lay.blocks(), [&](std::size_t b, std::size_t t) {
        const std::size_t i0 = lay.block_start[b], i1 = lay.block_start[b + 1];
        const std::size_t r0 = lay.row_offset[i0], nr = lay.row_offset[i1] - r0;
        if (nr == 0) return;
        std::vector<double>& f = fbuf[t];
        f.resize(nr * d);
        for (std::size_t i = i0; i < i1; ++i) {
            for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                fill_window(seq, qual, lay, i, l, f.data() + (lay.row_offset[i] + l - r0) * d);
            }
        }
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
        if (gf == nullptr) return;
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t len = lay.read_length(i);
            for (std::size_t l = 0; l < len; ++l) {
                const double* g = gf->data() + (lay.row_offset[i] + l - r0) * d;
                for (std::size_t o = 0; o < lay.window; ++o) {
                    if (l + o < half || l + o - half >= len) continue;
                    const std::size_t p = i * lay.length + l + o - half;
                    if (gseq != nullptr) {
                        for (std::size_t a = 0; a < 4; ++a) gseq[p * 4 + a] += g[o * c + a];
                    }
                    if (gqual != nullptr && c == 5) gqual[p] += g[o * c + 4] / 40.0;
                }
            }
        }
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
        validate_inputs(seq, quality, lengths, n_reads, length);
        const auto lay = detail::ec::WindowLayout::make(lengths, n_reads, length, cfg_.window_size, channels());
        std::vector<T> out(n_reads * length * 4);
        if (out.empty()) return out;
        if (lay.rows() == 0) {
            const T zero = passive<T>(0.0);
            for (T& v : out) v = zero;
            return out;
        }
        const std::vector<T> z = compact_logits(bind, seq, quality, lay, policy);
        const T beta = bind(beta_)[0];
        if constexpr (soft::detail::is_var_v<T>) {
            blend_var(bind, seq, lay, std::span<const ad::Var>(z), beta, policy, out);
        } else {
            const T inv_t = inverse_temperature(bind);
            using diffbio::sigmoid;
            const T lambda = sigmoid(beta);
            const T zero = passive<T>(0.0);
            for (T& v : out) v = zero;
            const auto row = [&](std::size_t i) {
                for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                    const std::size_t r = lay.row_offset[i] + l;
                    const std::size_t p = (i * length + l) * 4;
                    detail::ec::correct_row(z.data() + r * 4, seq.data() + p, lambda, inv_t, out.data() + p);
                }
            };
            if constexpr (std::is_floating_point_v<T>) {
                nn::detail::parallel_for(policy, n_reads, row);
            } else {
                for (std::size_t i = 0; i < n_reads; ++i) row(i);
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
        validate_inputs(seq, quality, lengths, n_reads, length);
        const auto lay = detail::ec::WindowLayout::make(lengths, n_reads, length, cfg_.window_size, channels());
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
        validate_inputs(seq, quality, lengths, n_reads, length);
        const auto lay = detail::ec::WindowLayout::make(lengths, n_reads, length, cfg_.window_size, channels());
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
        const char* where = "ErrorCorrection";
        check_size(lengths.size(), n, where, "lengths");
        check_size(seq.size(), n * length * 4, where, "reads (N x L x 4)");
        if (cfg_.use_quality || !quality.empty()) check_size(quality.size(), n * length, where, "quality (N x L)");
        for (std::size_t i = 0; i < n; ++i) {
            if (lengths[i] > length) {
                throw ShapeError(std::string(where) + ": read " + std::to_string(i) + " has length " +
                                 std::to_string(lengths[i]) + " > padded length " + std::to_string(length));
            }
        }
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
            for (std::size_t i = 0; i < lay.n; ++i) {
                for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                    detail::ec::fill_window(seq.data(), qual, lay, i, l, f.data() + (lay.row_offset[i] + l) * lay.dim());
                }
            }
            h0 = first.forward(bind, std::span<const T>(f), rows, first_activation(), 0.01, policy);
        }
        if (!backbone_) return h0;
        const std::vector<T> hb = backbone_->forward_layers(1, bind, std::span<const T>(h0), rows, policy);
        return output_.forward(bind, std::span<const T>(hb), rows, policy);
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

    /// Var: the fused [softmax + blend] node over all N·L·4 outputs (padding rows 0, no gradient).
    template <class S, class P>
    void blend_var(ad::Binder<ad::Var>& bind, std::span<const S> seq, const detail::ec::WindowLayout& lay,
                   std::span<const ad::Var> z, ad::Var beta, const P& policy, std::vector<ad::Var>& out) const {
        ad::Tape& tape = ad::Tape::active();
        ad::Var log_t{};
        bool learn_t = false; // log T is a node input: learnable and not capped
        double inv_t = std::min(1.0 / cfg_.temperature, std::exp(max_log_inv_t));
        if (cfg_.learnable_temperature) {
            log_t = bind(log_temperature_)[0];
            const double neg = -tape.value(log_t);
            learn_t = neg <= max_log_inv_t;
            inv_t = std::exp(learn_t ? neg : max_log_inv_t);
        }
        const double bv = tape.value(beta);
        const double lambda = diffbio::sigmoid(bv);
        const double dlambda = diffbio::sigmoid_derivative(bv);
        const auto saved_seq = soft::detail::saved_values(tape, seq);
        const std::size_t n = lay.n, length = lay.length;
        const std::span<const ad::Var> beta_in(&beta, 1);
        const std::span<const ad::Var> logt_in = learn_t ? std::span<const ad::Var>(&log_t, 1) : std::span<const ad::Var>{};
        auto y = tape.record_node_uninitialised(
            {z, soft::detail::node_inputs(seq), beta_in, logt_in}, n * length * 4,
            [lay, saved_seq, inv_t, lambda, dlambda, policy](const ad::NodeGrad& g) {
                const auto zv = g.in_value(0);
                const auto sv = soft::detail::input_values<S>(g, 1, saved_seq);
                const auto gz = g.in_adjoint(0);
                const auto gs = g.in_adjoint(1);
                const auto gy = g.out_adjoint();
                std::vector<double> g_lambda(lay.n, 0.0), g_logt(lay.n, 0.0);
                nn::detail::parallel_for(policy, lay.n, [&](std::size_t i) {
                    double gl = 0.0, gt = 0.0;
                    for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                        const double* zr = zv.data() + (lay.row_offset[i] + l) * 4;
                        const std::size_t o = (i * lay.length + l) * 4;
                        const double* s = sv.data() + o;
                        const double* gc = gy.data() + o;
                        double m = zr[0];
                        for (std::size_t a = 1; a < 4; ++a) m = zr[a] > m ? zr[a] : m;
                        double p[4], sum = 0.0;
                        for (std::size_t a = 0; a < 4; ++a) {
                            p[a] = std::exp((zr[a] - m) * inv_t);
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
                            gz[(lay.row_offset[i] + l) * 4 + a] += gu * inv_t;
                            gt -= gu * (zr[a] - m) * inv_t;
                            gl += gc[a] * (mass * p[a] - s[a]);
                        }
                        if (!gs.empty()) {
                            for (std::size_t a = 0; a < 4; ++a) gs[o + a] += (1.0 - lambda) * gc[a] + lambda * dot_gp;
                        }
                    }
                    g_lambda[i] = gl;
                    g_logt[i] = gt;
                });
                double gl = 0.0, gt = 0.0;
                for (std::size_t i = 0; i < lay.n; ++i) {
                    gl += g_lambda[i];
                    gt += g_logt[i];
                }
                g.in_adjoint(2)[0] += gl * dlambda;
                if (!g.in_adjoint(3).empty()) g.in_adjoint(3)[0] += gt;
            });
        const auto zv = soft::detail::forward_values(tape, z, {});
        const auto sv = soft::detail::forward_values(tape, seq, saved_seq);
        const auto yv = tape.values_of(y);
        std::fill(yv.begin(), yv.end(), 0.0);
        nn::detail::parallel_for(policy, n, [&](std::size_t i) {
            for (std::size_t l = 0; l < lay.read_length(i); ++l) {
                const std::size_t o = (i * length + l) * 4;
                detail::ec::correct_row(zv.data() + (lay.row_offset[i] + l) * 4, sv.data() + o, lambda, inv_t, yv.data() + o);
            }
        });
        for (std::size_t k = 0; k < y.size(); ++k) out[k] = y[k];
    }

    ErrorCorrectionConfig cfg_;
    std::optional<nn::MLP> backbone_;
    nn::Linear output_;
    ad::Parameter beta_;
    ad::Parameter log_temperature_;
};

} // namespace diffbio::ops
