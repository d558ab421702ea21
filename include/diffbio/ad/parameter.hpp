#pragma once
// Learnable parameters live outside the tape: plain values plus a gradient buffer. Each
// training step binds them as tape inputs (Tape::variables over the values), runs the model on
// the bound Vars, sweeps, and accumulates the adjoints into the gradient buffer; an optimizer
// (nn::Adam, nn::SGD) then steps the values. Nothing about a parameter depends on a tape, so
// the same Parameter also serves forward mode (seed tangents from it) and plain double runs.

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::ad {

class Parameter {
public:
    Parameter() = default;
    Parameter(std::string name, std::vector<double> values)
        : name_(std::move(name)), value_(std::move(values)), grad_(value_.size(), 0.0) {}
    Parameter(std::string name, double value) : Parameter(std::move(name), std::vector<double>{value}) {}

    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept { return value_.size(); }
    std::span<double> values() noexcept { return value_; }
    std::span<const double> values() const noexcept { return value_; }
    std::span<double> grad() noexcept { return grad_; }
    std::span<const double> grad() const noexcept { return grad_; }
    double& operator[](std::size_t i) { return value_.at(i); }
    double operator[](std::size_t i) const { return value_.at(i); }
    /// The value of a one-element parameter.
    double scalar() const {
        if (value_.size() != 1) throw ShapeError("Parameter '" + name_ + "' has " + std::to_string(value_.size()) + " elements, not 1");
        return value_[0];
    }
    void zero_grad() noexcept { std::fill(grad_.begin(), grad_.end(), 0.0); }

private:
    std::string name_;
    std::vector<double> value_;
    std::vector<double> grad_;
};

/// A parameter bound to a tape for one step: its values as a contiguous block of input Vars.
struct BoundParameter {
    Parameter* param = nullptr;
    std::span<const Var> vars;
    Var operator[](std::size_t i) const { return vars[i]; }
    std::size_t size() const noexcept { return vars.size(); }
};

/// Record the parameter's current values as input Vars on `tape`.
inline BoundParameter bind(Tape& tape, Parameter& p) { return {&p, tape.variables(p.values())}; }

/// After tape.backward(loss): add ∂loss/∂p into p.grad().
inline void accumulate_grad(const Tape& tape, const BoundParameter& b) {
    tape.adjoints(b.vars, b.param->grad(), /*accumulate=*/true);
}

} // namespace diffbio::ad
