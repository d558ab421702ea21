#pragma once
// Binder<T>: how an operator written once for a scalar T sees its Parameters.
//
// Parameters (ad::Parameter) hold plain doubles outside any tape. An operator's apply<T> asks a
// Binder<T> for each parameter and gets std::span<const T>:
//   Binder<double>       the values themselves (no copy)
//   Binder<float>        a float copy
//   Binder<Var>          the values bound as input Vars on the tape (once per parameter per
//                        step); after tape.backward(loss), accumulate_grad() adds ∂loss/∂p into
//                        every bound parameter's grad()
//   Binder<Dual<double>> Dual values whose tangents come from a seed direction (by default
//                        zero; seed(p, i) sets ∂/∂p[i] = 1), for forward-mode derivatives
// Binders cache per parameter, so an operator may ask for the same parameter many times.

#include <cstddef>
#include <deque>
#include <map>
#include <span>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::ad {

template <class T>
class Binder;

template <>
class Binder<double> {
public:
    std::span<const double> operator()(const Parameter& p) const { return p.values(); }
};

template <>
class Binder<float> {
public:
    std::span<const float> operator()(const Parameter& p) {
        auto it = cache_.find(&p);
        if (it == cache_.end()) {
            std::vector<float> v(p.values().begin(), p.values().end());
            it = cache_.emplace(&p, std::move(v)).first;
        }
        return it->second;
    }

private:
    std::map<const Parameter*, std::vector<float>> cache_;
};

template <>
class Binder<Var> {
public:
    explicit Binder(Tape& tape) : tape_(&tape) {}
    /// Takes the parameter by const reference so that const operators can bind; its gradient
    /// buffer (state owned for the optimizer, not the parameter's value) is what
    /// accumulate_grad() later writes.
    std::span<const Var> operator()(const Parameter& p) {
        auto it = cache_.find(&p);
        if (it != cache_.end()) return bound_[it->second].vars;
        bound_.push_back(bind(*tape_, const_cast<Parameter&>(p)));
        cache_.emplace(&p, bound_.size() - 1);
        return bound_.back().vars;
    }
    /// After tape.backward(loss): add ∂loss/∂p into p.grad() for every bound parameter.
    void accumulate_grad() const {
        for (const BoundParameter& b : bound_) ad::accumulate_grad(*tape_, b);
    }
    Tape& tape() const noexcept { return *tape_; }

private:
    Tape* tape_;
    std::vector<BoundParameter> bound_;
    std::map<const Parameter*, std::size_t> cache_;
};

template <class U>
class Binder<Dual<U>> {
public:
    /// Differentiate with respect to p[i] (tangent 1 there, 0 everywhere else).
    void seed(const Parameter& p, std::size_t i) {
        if (i >= p.size()) throw InvalidArgument("Binder::seed: index out of range for parameter '" + p.name() + "'");
        seed_param_ = &p;
        seed_index_ = i;
        cache_.clear();
    }
    std::span<const Dual<U>> operator()(const Parameter& p) {
        auto it = cache_.find(&p);
        if (it == cache_.end()) {
            std::vector<Dual<U>> v(p.size());
            for (std::size_t i = 0; i < p.size(); ++i) {
                v[i] = Dual<U>(U(p.values()[i]), U(&p == seed_param_ && i == seed_index_ ? 1.0 : 0.0));
            }
            it = cache_.emplace(&p, std::move(v)).first;
        }
        return it->second;
    }

private:
    const Parameter* seed_param_ = nullptr;
    std::size_t seed_index_ = 0;
    std::map<const Parameter*, std::vector<Dual<U>>> cache_;
};

} // namespace diffbio::ad
