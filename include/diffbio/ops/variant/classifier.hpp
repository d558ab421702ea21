#pragma once
// VariantClassifier: an MLP over a window of per-position pileup features that gives, per
// reference position, logits and probabilities of the genotype classes (by default 3: ref / het /
// hom-alt), DiffBio's VariantClassifier (spec §4.3) with its quirks fixed.
//
// Per position r of a region of L positions with F features each (x [L × F], row-major), the
// window of W (odd) positions centred on r, padded at the region's ends with copies of the first
// and last rows ("edge" padding, as DiffBio's pipeline does), is flattened to w_r [W·F]; then
//
//   h_1 = relu(w_r·W_1 + b_1),  h_k = relu(h_{k−1}·W_k + b_k)  (k = 2..num_layers, width hidden_dim)
//   each h_k ← dropout(h_k) in training mode (inverted dropout, rate p)
//   logits_r = h_m·W_out + b_out    [C];   probabilities_r = softmax(logits_r)
//
// Differences from DiffBio: dropout is applied after the hidden layers only (never to the
// logits); train()/eval() is an explicit switch, and the masks are a pure function of an explicit
// seed (set_dropout_seed) and the element index, so a forward pass is reproducible and identical
// in every scalar type. The network is generic in its per-position features: the variant-calling
// pipeline feeds reference-aware features (a window of base frequencies alone cannot tell a
// reference column from a homozygous-alternative one).
//
// Scalars: double, float, ad::Dual, ad::Var for the parameters (Binder<T>) and the features
// (plain numbers or T). For Var: the first layer over the windows is ONE fused node on the
// feature block [L × F] (the windows are built in a buffer inside the kernel, never on the tape;
// its backward scatters the window gradients back to the features), every further layer one
// fused nn::Linear node, dropout one node per layer, the softmax one node.
// Backends: exec::Cpu, exec::CpuParallel (row blocks of the GEMMs, nn::Linear's scheme).
// Cost O(L·(W·F·H + (m−1)·H² + H·C)).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
#include <diffbio/nn/activation.hpp>
#include <diffbio/nn/init.hpp>
#include <diffbio/nn/linear.hpp>
#include <diffbio/nn/mlp.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct VariantClassifierConfig {
    std::size_t num_classes = 3;  ///< C (ref / het / hom-alt)
    std::size_t features = 4;     ///< F per position
    std::size_t window = 11;      ///< W positions per window (odd)
    std::size_t hidden_dim = 64;  ///< H
    std::size_t num_layers = 2;   ///< hidden layers m (>= 1)
    double dropout_rate = 0.1;    ///< p in [0, 1), after every hidden layer in training mode
    std::uint64_t seed = 0;       ///< weight initialisation
    std::uint64_t dropout_seed = 0;
    std::string name = "variant_classifier";

    void validate() const {
        const std::string where = "VariantClassifierConfig";
        if (num_classes < 2) throw InvalidArgument(where + ": 'num_classes' must be >= 2, got " + std::to_string(num_classes));
        if (features == 0) throw InvalidArgument(where + ": 'features' must be >= 1, got 0");
        if (window == 0 || window % 2 == 0) {
            throw InvalidArgument(where + ": 'window' must be odd and >= 1 (centred on a position), got " +
                                  std::to_string(window));
        }
        if (hidden_dim == 0) throw InvalidArgument(where + ": 'hidden_dim' must be >= 1, got 0");
        if (num_layers == 0) throw InvalidArgument(where + ": 'num_layers' must be >= 1, got 0");
        if (!(dropout_rate >= 0.0 && dropout_rate < 1.0)) {
            throw InvalidArgument(where + ": 'dropout_rate' must be in [0, 1), got " +
                                  diffbio::detail::format_value(dropout_rate));
        }
    }
};

template <class T>
struct VariantClassifierResult {
    std::vector<T> logits;        ///< [rows × C]
    std::vector<T> probabilities; ///< [rows × C], rows sum to 1
    std::size_t rows = 0;
    std::size_t classes = 0;
    /// argmax of row r (by value; the first of ties).
    std::size_t predicted(std::size_t r) const {
        std::size_t best = 0;
        for (std::size_t c = 1; c < classes; ++c) {
            if (primal(logits[r * classes + c]) > primal(logits[r * classes + best])) best = c;
        }
        return best;
    }
};

namespace classifier_detail {

/// Windows [L × W·F] of x [L × F] with edge padding (row r of the result: rows r − W/2 .. r + W/2
/// of x, clamped to [0, L − 1]). Any element type (plain, Dual, Var handles).
template <class Out, class X>
void build_windows(const X* x, std::size_t L, std::size_t F, std::size_t W, std::size_t r0, std::size_t nr, Out* out) {
    const std::size_t half = W / 2;
    for (std::size_t r = r0; r < r0 + nr; ++r) {
        Out* o = out + (r - r0) * W * F;
        for (std::size_t k = 0; k < W; ++k) {
            const std::ptrdiff_t src = static_cast<std::ptrdiff_t>(r + k) - static_cast<std::ptrdiff_t>(half);
            const std::size_t s = static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(src, 0, static_cast<std::ptrdiff_t>(L) - 1));
            for (std::size_t f = 0; f < F; ++f) o[k * F + f] = static_cast<Out>(x[s * F + f]);
        }
    }
}

/// gx[s] += gcols of every window slot that copied row s (the transpose of build_windows).
inline void scatter_windows(const double* gcols, std::size_t L, std::size_t F, std::size_t W, std::size_t r0,
                            std::size_t nr, double* gx) {
    const std::size_t half = W / 2;
    for (std::size_t r = r0; r < r0 + nr; ++r) {
        const double* g = gcols + (r - r0) * W * F;
        for (std::size_t k = 0; k < W; ++k) {
            const std::ptrdiff_t src = static_cast<std::ptrdiff_t>(r + k) - static_cast<std::ptrdiff_t>(half);
            const std::size_t s = static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(src, 0, static_cast<std::ptrdiff_t>(L) - 1));
            for (std::size_t f = 0; f < F; ++f) gx[s * F + f] += g[k * F + f];
        }
    }
}

/// Rows per block of the fused window layer (its window buffer is block × W·F doubles).
inline constexpr std::size_t window_block = 2048;

/// Softmax of each row of z [rows × C] (max-shifted), into p.
template <class T>
void softmax_rows(const T* z, std::size_t rows, std::size_t C, T* p) {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* zr = z + r * C;
        T* pr = p + r * C;
        T m = zr[0];
        for (std::size_t c = 1; c < C; ++c) m = zr[c] > m ? zr[c] : m;
        T s = T(0);
        for (std::size_t c = 0; c < C; ++c) {
            using std::exp;
            pr[c] = exp(zr[c] - m);
            s += pr[c];
        }
        for (std::size_t c = 0; c < C; ++c) pr[c] /= s;
    }
}

} // namespace classifier_detail

class VariantClassifier {
public:
    explicit VariantClassifier(VariantClassifierConfig cfg = {}) : cfg_((cfg.validate(), std::move(cfg))) {
        std::size_t in = cfg_.window * cfg_.features;
        for (std::size_t i = 0; i < cfg_.num_layers; ++i) {
            hidden_.emplace_back(in, cfg_.hidden_dim, nn::derive_seed(cfg_.seed, i), cfg_.name + ".hidden" + std::to_string(i));
            in = cfg_.hidden_dim;
        }
        output_.emplace_back(in, cfg_.num_classes, nn::derive_seed(cfg_.seed, cfg_.num_layers), cfg_.name + ".output");
    }

    const VariantClassifierConfig& config() const noexcept { return cfg_; }
    std::size_t input_width() const noexcept { return cfg_.window * cfg_.features; }
    nn::Linear& hidden_layer(std::size_t i) { return hidden_.at(i); }
    nn::Linear& output_layer() { return output_.front(); }

    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p;
        for (nn::Linear& l : hidden_) {
            p.push_back(&l.weight());
            p.push_back(&l.bias());
        }
        p.push_back(&output_.front().weight());
        p.push_back(&output_.front().bias());
        return p;
    }

    // ---- train / eval --------------------------------------------------------------------
    /// Training mode: dropout active (when rate > 0). A new classifier starts in training mode.
    void train(bool on = true) noexcept { training_ = on; }
    /// Evaluation mode: no dropout (deterministic, the form for calling variants).
    void eval() noexcept { training_ = false; }
    bool training() const noexcept { return training_; }
    /// Seed of the dropout masks; change it every training step for fresh masks.
    void set_dropout_seed(std::uint64_t seed) noexcept { cfg_.dropout_seed = seed; }
    std::uint64_t dropout_seed() const noexcept { return cfg_.dropout_seed; }
    bool dropout_active() const noexcept { return training_ && cfg_.dropout_rate > 0.0; }

    /// Per-position classification of features x [L × F] (plain numbers or T): windows with edge
    /// padding, see the header comment. Errors: ShapeError when x.size() != L·F, InvalidArgument
    /// for L = 0.
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    VariantClassifierResult<T> apply(ad::Binder<T>& bind, std::span<const X> x, std::size_t L, const P& policy = {}) const {
        static_assert(std::is_arithmetic_v<X> || std::is_same_v<X, T>,
                      "VariantClassifier::apply: features must be plain numbers or the binder's scalar T");
        const std::size_t F = cfg_.features, W = cfg_.window;
        if (L == 0) throw InvalidArgument("VariantClassifier: no positions (L = 0)");
        if (x.size() != L * F) {
            throw ShapeError("VariantClassifier: features have " + std::to_string(x.size()) + " elements, expected L × F = " +
                             std::to_string(L) + " × " + std::to_string(F) + " = " + std::to_string(L * F));
        }
        check_all_finite(x, "VariantClassifier", "features");
        std::vector<T> h;
        if constexpr (soft::detail::is_var_v<T>) {
            h = window_layer_var(bind, x, L, policy);
        } else {
            std::vector<X> windows(L * W * F);
            classifier_detail::build_windows(x.data(), L, F, W, 0, L, windows.data());
            h = hidden_[0].forward_unchecked(bind, std::span<const X>(windows), L, nn::Activation::relu, 0.01, policy);
        }
        return finish(bind, std::move(h), L, policy);
    }

    /// Classification of ready-made windows [rows × W·F] (one row per window).
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    VariantClassifierResult<T> classify(ad::Binder<T>& bind, std::span<const X> windows, std::size_t rows,
                                        const P& policy = {}) const {
        if (rows == 0) throw InvalidArgument("VariantClassifier: no windows (rows = 0)");
        if (windows.size() != rows * input_width()) {
            throw ShapeError("VariantClassifier: windows have " + std::to_string(windows.size()) +
                             " elements, expected rows × W·F = " + std::to_string(rows) + " × " +
                             std::to_string(input_width()) + " = " + std::to_string(rows * input_width()));
        }
        check_all_finite(windows, "VariantClassifier", "windows");
        std::vector<T> h = hidden_[0].forward_unchecked(bind, windows, rows, nn::Activation::relu, 0.01, policy);
        return finish(bind, std::move(h), rows, policy);
    }

private:
    template <class T, class P>
    VariantClassifierResult<T> finish(ad::Binder<T>& bind, std::vector<T> h, std::size_t rows, const P& policy) const {
        if (dropout_active()) h = nn::detail::dropout(std::span<const T>(h), cfg_.dropout_rate, cfg_.dropout_seed, 0, policy);
        for (std::size_t i = 1; i < hidden_.size(); ++i) {
            h = hidden_[i].forward_unchecked(bind, std::span<const T>(h), rows, nn::Activation::relu, 0.01, policy);
            if (dropout_active()) h = nn::detail::dropout(std::span<const T>(h), cfg_.dropout_rate, cfg_.dropout_seed, i, policy);
        }
        VariantClassifierResult<T> out;
        out.rows = rows;
        out.classes = cfg_.num_classes;
        out.logits = output_.front().forward_unchecked(bind, std::span<const T>(h), rows, nn::Activation::none, 0.01, policy);
        out.probabilities = softmax(out.logits, rows);
        return out;
    }

    /// Softmax per row; for Var one node (p̄ → z̄_c = p_c (p̄_c − Σ_k p̄_k p_k)).
    template <class T>
    std::vector<T> softmax(const std::vector<T>& z, std::size_t rows) const {
        const std::size_t C = cfg_.num_classes;
        std::vector<T> p(z.size());
        if constexpr (soft::detail::is_var_v<T>) {
            ad::Tape& tape = ad::Tape::active();
            auto y = tape.record_node_uninitialised({std::span<const ad::Var>(z)}, z.size(), [rows, C](const ad::NodeGrad& g) {
                const auto gz = g.in_adjoint(0);
                if (gz.empty()) return;
                const auto pv = g.out_value();
                const auto gp = g.out_adjoint();
                for (std::size_t r = 0; r < rows; ++r) {
                    double dot = 0.0;
                    for (std::size_t c = 0; c < C; ++c) dot += gp[r * C + c] * pv[r * C + c];
                    for (std::size_t c = 0; c < C; ++c) gz[r * C + c] += pv[r * C + c] * (gp[r * C + c] - dot);
                }
            });
            const auto zv = soft::detail::forward_values(tape, std::span<const ad::Var>(z), {});
            classifier_detail::softmax_rows(zv.data(), rows, C, tape.values_of(y).data());
            for (std::size_t k = 0; k < y.size(); ++k) p[k] = y[k];
        } else {
            classifier_detail::softmax_rows(z.data(), rows, C, p.data());
        }
        return p;
    }

    /// relu(windows(x)·W_1 + b_1) as one node over the feature block, in blocks of rows.
    template <class X, class P>
    std::vector<ad::Var> window_layer_var(ad::Binder<ad::Var>& bind, std::span<const X> x, std::size_t L,
                                          const P& policy) const {
        namespace sd = soft::detail;
        ad::Tape& tape = ad::Tape::active();
        const nn::Linear& lin = hidden_[0];
        const std::span<const ad::Var> w = bind(lin.weight());
        const std::span<const ad::Var> b = bind(lin.bias());
        const std::size_t F = cfg_.features, W = cfg_.window, H = cfg_.hidden_dim, in = W * F;
        const auto saved_x = sd::saved_values(tape, x);
        const nn::detail::ActivationOp op = nn::detail::make_activation(nn::Activation::relu, 0.01, "VariantClassifier");
        auto y = tape.record_node_uninitialised(
            {sd::node_inputs(x), w, b}, L * H, [saved_x, L, F, W, H, in, op, policy](const ad::NodeGrad& g) {
                const auto xv = sd::input_values<X>(g, 0, saved_x);
                const auto wv = g.in_value(1);
                const auto gx = g.in_adjoint(0);
                const auto gw = g.in_adjoint(1);
                const auto gb = g.in_adjoint(2);
                std::vector<double> cols(classifier_detail::window_block * in), gcols;
                if (!gx.empty()) gcols.resize(classifier_detail::window_block * in);
                for (std::size_t r0 = 0; r0 < L; r0 += classifier_detail::window_block) {
                    const std::size_t nr = std::min(classifier_detail::window_block, L - r0);
                    classifier_detail::build_windows(xv.data(), L, F, W, r0, nr, cols.data());
                    if (!gx.empty()) std::fill(gcols.begin(), gcols.begin() + static_cast<std::ptrdiff_t>(nr * in), 0.0);
                    nn::detail::linear_backward_kernel(policy, cols.data(), wv.data(), g.out_value().data() + r0 * H,
                                                       g.out_adjoint().data() + r0 * H, nr, in, H, op,
                                                       gx.empty() ? nullptr : gcols.data(), gw.empty() ? nullptr : gw.data(),
                                                       gb.empty() ? nullptr : gb.data());
                    if (!gx.empty()) classifier_detail::scatter_windows(gcols.data(), L, F, W, r0, nr, gx.data());
                }
            });
        const auto xv = sd::forward_values(tape, x, saved_x);
        const auto wv = sd::forward_values(tape, w, {});
        const auto bv = sd::forward_values(tape, b, {});
        // Copies: the views above are invalidated by nothing below, but keep them stable anyway.
        const std::vector<double> wc(wv.begin(), wv.end()), bc(bv.begin(), bv.end()), xc(xv.begin(), xv.end());
        auto yv = tape.values_of(y);
        std::vector<double> cols(classifier_detail::window_block * in);
        for (std::size_t r0 = 0; r0 < L; r0 += classifier_detail::window_block) {
            const std::size_t nr = std::min(classifier_detail::window_block, L - r0);
            classifier_detail::build_windows(xc.data(), L, F, W, r0, nr, cols.data());
            nn::detail::linear_forward_kernel(policy, cols.data(), wc.data(), bc.data(), nr, in, H, op, yv.data() + r0 * H);
        }
        return std::vector<ad::Var>(y.begin(), y.end());
    }

    VariantClassifierConfig cfg_;
    std::vector<nn::Linear> hidden_;
    std::vector<nn::Linear> output_; // one layer (a vector: Linear has no default constructor)
    bool training_ = true;
};

} // namespace diffbio::ops
