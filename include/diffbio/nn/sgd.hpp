#pragma once
// Stochastic gradient descent with optional (Nesterov) momentum, optax semantics:
//   trace ← g + μ·trace;  update = nesterov ? g + μ·trace : trace  (μ = 0: update = g)
//   θ ← θ − lr·update
// O(#parameters) per step. Non-finite gradients throw InvalidArgument naming the entry.

#include <cstddef>
#include <utility>
#include <vector>

#include <diffbio/nn/optimizer.hpp>

namespace diffbio::nn {

struct SGDConfig {
    double learning_rate = 1e-2;
    double momentum = 0.0;
    bool nesterov = false;
};

class SGD {
public:
    explicit SGD(ParameterList params, SGDConfig cfg = {}) : params_(std::move(params)), cfg_(cfg) {
        detail::check_parameters(params_, "SGD");
        check_positive(cfg_.learning_rate, "SGD", "learning_rate");
        if (!(cfg_.momentum >= 0.0 && cfg_.momentum < 1.0)) {
            throw InvalidArgument("SGD: 'momentum' must be in [0, 1), got " + diffbio::detail::format_value(cfg_.momentum));
        }
        for (const ad::Parameter* p : params_) trace_.emplace_back(p->size(), 0.0);
    }

    void step() {
        for (std::size_t k = 0; k < params_.size(); ++k) {
            ad::Parameter& p = *params_[k];
            detail::check_state_size(p, trace_[k].size(), "SGD::step");
            detail::check_gradient(p, "SGD::step");
        }
        for (std::size_t k = 0; k < params_.size(); ++k) {
            ad::Parameter& p = *params_[k];
            auto v = p.values();
            const auto g = p.grad();
            auto& tr = trace_[k];
            for (std::size_t i = 0; i < v.size(); ++i) {
                double u = g[i];
                if (cfg_.momentum > 0.0) {
                    tr[i] = g[i] + cfg_.momentum * tr[i];
                    u = cfg_.nesterov ? g[i] + cfg_.momentum * tr[i] : tr[i];
                }
                v[i] -= cfg_.learning_rate * u;
            }
        }
        ++steps_;
    }

    void zero_grad() { nn::zero_grad(params_); }
    std::size_t step_count() const noexcept { return steps_; }
    const SGDConfig& config() const noexcept { return cfg_; }
    void set_learning_rate(double lr) {
        check_positive(lr, "SGD::set_learning_rate", "learning_rate");
        cfg_.learning_rate = lr;
    }

private:
    ParameterList params_;
    SGDConfig cfg_;
    std::vector<std::vector<double>> trace_;
    std::size_t steps_ = 0;
};

} // namespace diffbio::nn
