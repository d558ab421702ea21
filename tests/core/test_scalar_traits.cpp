#include <catch2/catch.hpp>

#include <type_traits>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/scalar_traits.hpp>

using diffbio::ad::Dual;
using diffbio::ad::Var;

static_assert(!diffbio::is_ad_v<double>);
static_assert(!diffbio::is_ad_v<float>);
static_assert(diffbio::is_ad_v<Dual<double>>);
static_assert(diffbio::is_ad_v<Var>);
static_assert(std::is_same_v<diffbio::promote_t<double, Var>, Var>);
static_assert(std::is_same_v<diffbio::promote_t<Var, double, double>, Var>);
static_assert(std::is_same_v<diffbio::promote_t<double, Dual<double>>, Dual<double>>);
static_assert(std::is_same_v<diffbio::promote_t<float, float>, float>);
static_assert(std::is_same_v<diffbio::promote_t<Dual<Dual<double>>, double>, Dual<Dual<double>>>);
static_assert(diffbio::Scalar<Dual<float>>);
static_assert(!diffbio::Scalar<int*>);

TEST_CASE("primal and value_of strip AD levels", "[core][traits]") {
    const Dual<Dual<double>> x{{1.5, 2.0}, {3.0, 4.0}};
    CHECK(diffbio::primal(x) == 1.5);
    CHECK(diffbio::value_of(x).value == 1.5);
    CHECK(diffbio::value_of(x).tangent == 2.0);
    CHECK(diffbio::primal(2.5f) == 2.5);

    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const Var v = tape.variable(-4.0);
    CHECK(diffbio::primal(v) == -4.0);
    const Var c = diffbio::passive<Var>(7.0);
    CHECK(c.value() == 7.0);
    const auto d = diffbio::passive<Dual<double>>(7.0);
    CHECK(d.value == 7.0);
    CHECK(d.tangent == 0.0);
}
