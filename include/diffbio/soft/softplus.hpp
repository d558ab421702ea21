#pragma once
// Smooth ReLU with temperature: softplus_τ(x) = τ·log(1 + e^{x/τ}) → max(x, 0) as τ → 0.
// max(x, 0) ≤ softplus_τ(x) ≤ max(x, 0) + τ·log 2.
// Gradient: ∂/∂x = σ(x/τ);  ∂/∂τ = softplus(x/τ) − (x/τ)·σ(x/τ).
// O(1); finite for any finite x and τ > 0 (the core softplus never overflows).

#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::soft {

template <class X, class Tau>
promote_t<X, Tau> softplus(const X& x, const Tau& tau) {
    check_temperature(tau, "softplus");
    using diffbio::softplus;
    return tau * softplus(x / tau);
}

} // namespace diffbio::soft
