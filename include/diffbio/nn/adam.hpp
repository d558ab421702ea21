#pragma once
// Adam with optax semantics (optax.adam defaults b1 = 0.9, b2 = 0.999, eps = 1e-8, eps_root = 0):
//   m ← b1·m + (1 − b1)·g;   v ← b2·v + (1 − b2)·g²;   t ← t + 1
//   m̂ = m/(1 − b1^t);        v̂ = v/(1 − b2^t)
//   θ ← θ − lr·m̂/(√(v̂ + eps_root) + eps)
// O(#parameters) per step. Non-finite gradients throw InvalidArgument naming the entry.

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include <diffbio/nn/optimizer.hpp>

namespace diffbio::nn {

struct AdamConfig {
    double learning_rate = 1e-3;
    double b1 = 0.9;
    double b2 = 0.999;
    double eps = 1e-8;
    double eps_root = 0.0;
};

class Adam {
public:
    explicit Adam(ParameterList params, AdamConfig cfg = {}) : params_(std::move(params)), cfg_(cfg) {
        detail::check_parameters(params_, "Adam");
        check_positive(cfg_.learning_rate, "Adam", "learning_rate");
        check_unit(cfg_.b1, "b1");
        check_unit(cfg_.b2, "b2");
        if (!(cfg_.eps >= 0.0) || !(cfg_.eps_root >= 0.0) || !std::isfinite(cfg_.eps) || !std::isfinite(cfg_.eps_root)) {
            throw InvalidArgument("Adam: 'eps' and 'eps_root' must be finite and >= 0");
        }
        for (const ad::Parameter* p : params_) {
            m_.emplace_back(p->size(), 0.0);
            v_.emplace_back(p->size(), 0.0);
        }
    }

    void step() {
        for (std::size_t k = 0; k < params_.size(); ++k) {
            detail::check_state_size(*params_[k], m_[k].size(), "Adam::step");
            detail::check_gradient(*params_[k], "Adam::step");
        }
        ++steps_;
        const double t = static_cast<double>(steps_);
        const double c1 = 1.0 - std::pow(cfg_.b1, t);
        const double c2 = 1.0 - std::pow(cfg_.b2, t);
        for (std::size_t k = 0; k < params_.size(); ++k) {
            ad::Parameter& p = *params_[k];
            auto x = p.values();
            const auto g = p.grad();
            auto& m = m_[k];
            auto& v = v_[k];
            for (std::size_t i = 0; i < x.size(); ++i) {
                m[i] = cfg_.b1 * m[i] + (1.0 - cfg_.b1) * g[i];
                v[i] = cfg_.b2 * v[i] + (1.0 - cfg_.b2) * g[i] * g[i];
                const double mh = m[i] / c1;
                const double vh = v[i] / c2;
                x[i] -= cfg_.learning_rate * mh / (std::sqrt(vh + cfg_.eps_root) + cfg_.eps);
            }
        }
    }

    void zero_grad() { nn::zero_grad(params_); }
    std::size_t step_count() const noexcept { return steps_; }
    const AdamConfig& config() const noexcept { return cfg_; }
    void set_learning_rate(double lr) {
        check_positive(lr, "Adam::set_learning_rate", "learning_rate");
        cfg_.learning_rate = lr;
    }

private:
    static void check_unit(double b, const char* name) {
        if (!(b >= 0.0 && b < 1.0)) {
            throw InvalidArgument(std::string("Adam: '") + name + "' must be in [0, 1), got " + diffbio::detail::format_value(b));
        }
    }

    ParameterList params_;
    AdamConfig cfg_;
    std::vector<std::vector<double>> m_, v_;
    std::size_t steps_ = 0;
};

} // namespace diffbio::nn
