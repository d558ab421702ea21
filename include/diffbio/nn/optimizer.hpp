#pragma once
// Shared pieces of the optimizers: the parameter list they step and the checks they make.
// Optimizers read Parameter::grad(), update Parameter::values() in place, and keep their state
// (momenta) per parameter in the order given at construction.

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <diffbio/ad/parameter.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::nn {

using ParameterList = std::vector<ad::Parameter*>;

namespace detail {
inline void check_parameters(const ParameterList& params, const char* where) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i] == nullptr) throw InvalidArgument(std::string(where) + ": parameter " + std::to_string(i) + " is null");
    }
}
/// A non-finite gradient would silently poison the parameters: refuse it, naming the entry.
inline void check_gradient(const ad::Parameter& p, const char* where) {
    const auto g = p.grad();
    for (std::size_t i = 0; i < g.size(); ++i) {
        if (!std::isfinite(g[i])) {
            throw InvalidArgument(std::string(where) + ": gradient of parameter '" + p.name() + "'[" + std::to_string(i) +
                                  "] is " + diffbio::detail::format_value(g[i]));
        }
    }
}
inline void check_state_size(const ad::Parameter& p, std::size_t state, const char* where) {
    if (p.size() != state) {
        throw ShapeError(std::string(where) + ": parameter '" + p.name() + "' changed size from " + std::to_string(state) +
                         " to " + std::to_string(p.size()) + " after the optimizer was created");
    }
}
} // namespace detail

/// Set every parameter's gradient to zero.
inline void zero_grad(const ParameterList& params) {
    for (ad::Parameter* p : params) p->zero_grad();
}

} // namespace diffbio::nn
