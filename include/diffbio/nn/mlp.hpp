#pragma once
// Multi-layer perceptron, the spec's "MLP[h1..hm](f→g)" (Artifex MLP, spec §0):
//
//   h_0 = x;  for layer i = 1..m:  h_i = act_i(h_{i−1}·W_i + b_i),  act_i = f for i < m, g for i = m
//   (g = Activation::none by default), then, when dropout is on, h_i ← dropout(h_i) after EVERY
//   layer, the last one included (as in the spec).
//
// Dropout is inverted dropout: keep an element with probability 1 − p and scale it by 1/(1 − p).
// It is off by default (rate 0) and only acts in training mode (train(); the default mode) —
// eval() turns it off. The keep mask is a pure function of (dropout seed, layer, element index)
// (splitmix64), so a forward pass is deterministic and identical in every scalar type;
// call set_dropout_seed(seed) once per training step to draw new masks.
// Cost: that of the m Linear layers. Var: one fused node per layer (Linear + activation), plus one
// node per layer for dropout when it is active.

#include <cstddef>
#include <cstdint>
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
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/nn/activation.hpp>
#include <diffbio/nn/init.hpp>
#include <diffbio/nn/linear.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::nn {

struct MLPConfig {
    std::size_t in_features = 0;
    std::vector<std::size_t> dims;                   ///< h1..hm: widths of the m layers (hm = output width)
    Activation activation = Activation::relu;        ///< f, after layers 1..m−1
    Activation output_activation = Activation::none; ///< g, after layer m
    double negative_slope = 0.01;                    ///< of leaky_relu, where used
    double dropout_rate = 0.0;                       ///< p in [0, 1); 0 = no dropout
    std::uint64_t dropout_seed = 0;                  ///< seed of the dropout masks
    std::uint64_t seed = 0;                          ///< seed of the weight initialisation
    std::string name = "mlp";                        ///< parameters are "<name>.<i>.weight" / ".bias"

    void validate() const {
        const std::string where = "MLPConfig '" + name + "'";
        if (in_features == 0) throw InvalidArgument(where + ": 'in_features' must be >= 1, got 0");
        if (dims.empty()) throw InvalidArgument(where + ": 'dims' must name at least one layer");
        for (std::size_t i = 0; i < dims.size(); ++i) {
            if (dims[i] == 0) throw InvalidArgument(where + ": 'dims[" + std::to_string(i) + "]' must be >= 1, got 0");
        }
        if (activation == Activation::leaky_relu || output_activation == Activation::leaky_relu) {
            detail::check_negative_slope(negative_slope, where.c_str());
        }
        if (!(dropout_rate >= 0.0 && dropout_rate < 1.0)) {
            throw InvalidArgument(where + ": 'dropout_rate' must be in [0, 1), got " +
                                  diffbio::detail::format_value(dropout_rate));
        }
    }
};

namespace detail {

/// Keep/drop decision of element `index` of layer `layer` (true = keep): a uniform from the
/// splitmix64 hash of (seed, layer, index), compared with the rate.
inline bool dropout_keep(std::uint64_t seed, std::size_t layer, std::size_t index, double rate) noexcept {
    const std::uint64_t h = derive_seed(derive_seed(seed, layer), index);
    const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
    return u >= rate;
}

/// y_i = x_i·s_i with s_i = keep ? 1/(1 − p) : 0. Var: one node (x̄_i += ȳ_i·s_i; the mask is
/// recomputed from the hash, nothing is stored).
template <class X, class P>
std::vector<X> dropout(std::span<const X> x, double rate, std::uint64_t seed, std::size_t layer, const P& policy) {
    std::vector<X> out(x.size());
    const double scale = 1.0 / (1.0 - rate);
    const auto s = [=](std::size_t i) { return dropout_keep(seed, layer, i, rate) ? scale : 0.0; };
    if constexpr (soft::detail::is_var_v<X>) {
        if (x.empty()) return out;
        ad::Tape& tape = ad::Tape::active();
        auto y = tape.record_node_uninitialised({std::span<const ad::Var>(x)}, x.size(), [s, policy](const ad::NodeGrad& g) {
            const auto gy = g.out_adjoint();
            const auto gx = g.in_adjoint(0);
            parallel_for(policy, gx.size(), [&](std::size_t i) { gx[i] += gy[i] * s(i); });
        });
        const auto xv = soft::detail::forward_values(tape, x, {});
        const auto yv = tape.values_of(y);
        for (std::size_t i = 0; i < x.size(); ++i) yv[i] = xv[i] * s(i);
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i];
    } else {
        using V = typename ScalarTraits<X>::value_type;
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * static_cast<V>(s(i));
    }
    return out;
}

} // namespace detail

class MLP {
public:
    explicit MLP(MLPConfig cfg) : cfg_(std::move(cfg)) {
        cfg_.validate();
        layers_.reserve(cfg_.dims.size());
        std::size_t in = cfg_.in_features;
        for (std::size_t i = 0; i < cfg_.dims.size(); ++i) {
            layers_.emplace_back(in, cfg_.dims[i], derive_seed(cfg_.seed, i), cfg_.name + "." + std::to_string(i));
            in = cfg_.dims[i];
        }
    }
    /// MLP[dims](activation → output_activation) on in_features inputs, no dropout.
    MLP(std::size_t in_features, std::vector<std::size_t> dims, Activation activation = Activation::relu,
        Activation output_activation = Activation::none, std::uint64_t seed = 0, std::string name = "mlp")
        : MLP(MLPConfig{.in_features = in_features,
                        .dims = std::move(dims),
                        .activation = activation,
                        .output_activation = output_activation,
                        .seed = seed,
                        .name = std::move(name)}) {}

    const MLPConfig& config() const noexcept { return cfg_; }
    std::size_t in_features() const noexcept { return cfg_.in_features; }
    std::size_t out_features() const noexcept { return cfg_.dims.back(); }
    std::size_t num_layers() const noexcept { return layers_.size(); }
    Linear& layer(std::size_t i) { return layers_.at(i); }
    const Linear& layer(std::size_t i) const { return layers_.at(i); }
    /// The activation after layer i (f, or g for the last layer).
    Activation activation_of(std::size_t i) const noexcept {
        return i + 1 == layers_.size() ? cfg_.output_activation : cfg_.activation;
    }

    /// Every weight and bias, layer by layer.
    std::vector<ad::Parameter*> parameters() {
        std::vector<ad::Parameter*> p;
        for (Linear& l : layers_) {
            p.push_back(&l.weight());
            p.push_back(&l.bias());
        }
        return p;
    }

    // ---- dropout ----------------------------------------------------------------------------
    void train(bool on = true) noexcept { training_ = on; }
    void eval() noexcept { training_ = false; }
    bool training() const noexcept { return training_; }
    /// Seed of the dropout masks (change it every training step for fresh masks).
    void set_dropout_seed(std::uint64_t seed) noexcept { cfg_.dropout_seed = seed; }
    /// True when a forward pass applies dropout (rate > 0 and training mode).
    bool dropout_active() const noexcept { return training_ && cfg_.dropout_rate > 0.0; }

    /// The network on x [rows × in_features] (plain numbers or T); returns [rows × out_features].
    /// InvalidArgument when an entry of x is NaN or ±inf.
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    std::vector<T> forward(ad::Binder<T>& bind, std::span<const X> x, std::size_t rows, const P& policy = {}) const {
        check_all_finite(x, "MLP::forward", "input");
        return forward_layers(0, bind, x, rows, policy);
    }

    /// Layers first..m−1 on h [rows × width], the output of layer first−1 (after its activation
    /// and dropout), or the input when first = 0. Lets a caller compute the first layer itself
    /// (e.g. fused with a gather, as ops::ErrorCorrection does) and continue here. h is not scanned
    /// for NaN and ±inf (it is the caller's own activations; forward() scans its input).
    template <class T, class X, exec::HostPolicy P = exec::Cpu>
    std::vector<T> forward_layers(std::size_t first, ad::Binder<T>& bind, std::span<const X> h, std::size_t rows,
                                  const P& policy = {}) const {
        static_assert(std::is_arithmetic_v<X> || std::is_same_v<X, T>,
                      "MLP::forward: x must hold plain numbers or the binder's scalar T");
        if (first > layers_.size()) {
            throw InvalidArgument("MLP '" + cfg_.name + "': first layer " + std::to_string(first) + " of " +
                                  std::to_string(layers_.size()));
        }
        if (first == layers_.size()) {
            std::vector<T> out(h.size());
            for (std::size_t i = 0; i < h.size(); ++i) out[i] = T(h[i]);
            return out;
        }
        std::vector<T> cur = layer_forward(first, bind, h, rows, policy);
        for (std::size_t i = first + 1; i < layers_.size(); ++i) {
            cur = layer_forward(i, bind, std::span<const T>(cur), rows, policy);
        }
        return cur;
    }

private:
    template <class T, class X, class P>
    std::vector<T> layer_forward(std::size_t i, ad::Binder<T>& bind, std::span<const X> h, std::size_t rows,
                                 const P& policy) const {
        std::vector<T> y = layers_[i].forward_unchecked(bind, h, rows, activation_of(i), cfg_.negative_slope, policy);
        if (dropout_active()) y = detail::dropout(std::span<const T>(y), cfg_.dropout_rate, cfg_.dropout_seed, i, policy);
        return y;
    }

    MLPConfig cfg_;
    std::vector<Linear> layers_;
    bool training_ = true;
};

} // namespace diffbio::nn
