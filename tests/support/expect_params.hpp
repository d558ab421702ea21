#pragma once
// Parameter-gradient checks for operators written once for a Binder<T>.
//
// expect_parameter_gradients(params, loss): `loss` is a generic callable taking an
// ad::Binder<T>& and returning a scalar T. For sampled entries of every parameter it checks that
// the reverse-mode gradient (one tape, one sweep) equals the forward-mode tangent (a Dual pass
// seeded on that entry) and a central finite difference of the double loss.
//
// make_binder<T>(): the Binder for scalar T (for Var: on the thread's active tape), so that an
// expect_ad lambda can build one whatever scalar it is called with.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>

namespace diffbio::test {

template <class T>
ad::Binder<T> make_binder() {
    if constexpr (std::is_same_v<T, ad::Var>) {
        return ad::Binder<ad::Var>(ad::Tape::active());
    } else {
        return ad::Binder<T>();
    }
}

struct ParameterTolerance {
    double mode_rel = 1e-9;  ///< reverse vs forward
    double mode_abs = 1e-11;
    double fd_rel = 1e-5;    ///< reverse vs central differences
    double fd_abs = 1e-7;
    double fd_step = 1e-6;
    std::size_t samples = 4; ///< entries checked per parameter (evenly spaced; all when fewer)
};

template <class Loss>
void expect_parameter_gradients(const std::vector<ad::Parameter*>& params, Loss&& loss,
                                const ParameterTolerance& tol = {}) {
    for (ad::Parameter* p : params) p->zero_grad();
    {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        tape.backward(loss(bind));
        bind.accumulate_grad();
    }
    for (ad::Parameter* p : params) {
        const std::size_t stride = p->size() > tol.samples ? p->size() / tol.samples + 1 : 1;
        for (std::size_t k = 0; k < p->size(); k += stride) {
            ad::Binder<ad::Dual<double>> fwd_bind;
            fwd_bind.seed(*p, k);
            const double fwd = loss(fwd_bind).tangent;
            const double v0 = p->values()[k];
            ad::Binder<double> plain;
            p->values()[k] = v0 + tol.fd_step;
            const double up = loss(plain);
            p->values()[k] = v0 - tol.fd_step;
            const double down = loss(plain);
            p->values()[k] = v0;
            const double rev = p->grad()[k];
            INFO(p->name() << "[" << k << "]: reverse " << rev << ", forward " << fwd << ", finite difference "
                           << (up - down) / (2 * tol.fd_step));
            CHECK(std::isfinite(rev));
            CHECK(rev == Approx(fwd).epsilon(tol.mode_rel).margin(tol.mode_abs));
            CHECK(rev == Approx((up - down) / (2 * tol.fd_step)).epsilon(tol.fd_rel).margin(tol.fd_abs));
        }
    }
}

} // namespace diffbio::test
