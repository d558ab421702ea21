#pragma once
// Temperature schedules for annealing τ during training (start soft, end close to hard).
//
//   ExponentialSchedule{τ0, τ_min, decay}:  τ_k = max(τ_min, τ0·decay^k)
//   LinearSchedule{τ0, τ_end, steps}:       τ_k = τ0 + (τ_end − τ0)·min(k/steps, 1)
//
// Constructors validate (InvalidArgument): temperatures finite and > 0, 0 < decay ≤ 1, steps > 0.

#include <cmath>
#include <cstddef>
#include <string>

#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::soft {

class ExponentialSchedule {
public:
    ExponentialSchedule(double tau0, double tau_min, double decay) : tau0_(tau0), tau_min_(tau_min), decay_(decay) {
        check_temperature(tau0, "ExponentialSchedule", "tau0");
        check_temperature(tau_min, "ExponentialSchedule", "tau_min");
        if (!(decay > 0.0 && decay <= 1.0)) {
            throw InvalidArgument("ExponentialSchedule: 'decay' must be in (0, 1], got " + diffbio::detail::format_value(decay));
        }
    }
    double operator()(std::size_t step) const {
        const double t = tau0_ * std::pow(decay_, static_cast<double>(step));
        return t > tau_min_ ? t : tau_min_;
    }

private:
    double tau0_, tau_min_, decay_;
};

class LinearSchedule {
public:
    LinearSchedule(double tau0, double tau_end, std::size_t steps) : tau0_(tau0), tau_end_(tau_end), steps_(steps) {
        check_temperature(tau0, "LinearSchedule", "tau0");
        check_temperature(tau_end, "LinearSchedule", "tau_end");
        if (steps == 0) throw InvalidArgument("LinearSchedule: 'steps' must be > 0");
    }
    double operator()(std::size_t step) const {
        const double f = step >= steps_ ? 1.0 : static_cast<double>(step) / static_cast<double>(steps_);
        return tau0_ + (tau_end_ - tau0_) * f;
    }

private:
    double tau0_, tau_end_;
    std::size_t steps_;
};

} // namespace diffbio::soft
