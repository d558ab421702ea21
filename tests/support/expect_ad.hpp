#pragma once
// expect_ad: the test harness every differentiable function goes through.
//
// Given a generic callable f (taking std::span<const T>, returning T or std::vector<T>) and a
// point x, it checks that
//   1. f gives the same value in double, Dual<double> and Var (and float, to float accuracy);
//   2. the forward-mode Jacobian (one Dual pass per input) equals the reverse-mode Jacobian
//      (one Var recording, one sweep per output);
//   3. both equal central finite differences of the double function;
//   4. every value and derivative is finite;
//   5. if f throws in one mode it throws the same diffbio exception type in every mode.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/finite_diff.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::test {

struct AdTolerance {
    double value_rel = 1e-12;  ///< double vs Dual vs Var values
    double mode_rel = 1e-10;   ///< forward vs reverse derivatives
    double fd_rel = 1e-6;      ///< AD vs finite differences, relative
    double fd_abs = 1e-7;      ///< AD vs finite differences, absolute floor
    double fd_step = 1e-6;     ///< relative step of the central differences
    double float_rel = 1e-4;   ///< float vs double values
    bool check_float = true;
};

inline bool close(double a, double b, double rel, double abs_tol = 0.0) {
    if (a == b) return true; // also equal infinities
    return std::fabs(a - b) <= abs_tol + rel * std::max(std::fabs(a), std::fabs(b));
}

namespace detail {
template <class T, class R>
std::vector<T> as_vector(R&& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, std::vector<T>>) {
        return std::forward<R>(r);
    } else {
        return std::vector<T>{static_cast<T>(r)};
    }
}

/// Runs g(); returns the name of the diffbio::Error subtype it threw, or "" when it did not throw.
template <class G>
std::string thrown_type(G&& g) {
    try {
        g();
    } catch (const diffbio::Error& e) {
        return typeid(e).name();
    }
    return "";
}
} // namespace detail

template <class F>
void expect_ad(F&& f, const std::vector<double>& x, const AdTolerance& tol = {}) {
    using ad::Dual;
    using ad::Var;
    const std::size_t n = x.size();

    // ---- double -------------------------------------------------------------------------------
    std::vector<double> yd;
    const std::string err_d = detail::thrown_type([&] { yd = detail::as_vector<double>(f(std::span<const double>(x))); });

    // ---- Dual (forward): column j of the Jacobian per pass ----------------------------------------
    std::vector<Dual<double>> xd(n);
    for (std::size_t i = 0; i < n; ++i) xd[i] = Dual<double>(x[i], 0.0);
    std::vector<std::vector<double>> jf; // jf[j][i] = ∂y_i/∂x_j
    std::vector<double> yf;
    std::string err_f;
    for (std::size_t j = 0; j < std::max<std::size_t>(n, 1); ++j) {
        if (n > 0) xd[j].tangent = 1.0;
        std::vector<Dual<double>> y;
        err_f = detail::thrown_type([&] { y = detail::as_vector<Dual<double>>(f(std::span<const Dual<double>>(xd))); });
        if (n > 0) xd[j].tangent = 0.0;
        if (!err_f.empty()) break;
        yf.clear();
        std::vector<double> col;
        for (const Dual<double>& d : y) {
            yf.push_back(d.value);
            col.push_back(d.tangent);
        }
        jf.push_back(std::move(col));
    }

    // ---- Var (reverse): row i of the Jacobian per sweep -------------------------------------------
    std::vector<double> yr;
    std::vector<std::vector<double>> jr; // jr[i][j]
    std::string err_r;
    {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto xv = tape.variables(x);
        std::vector<Var> y;
        err_r = detail::thrown_type([&] { y = detail::as_vector<Var>(f(std::span<const Var>(xv))); });
        if (err_r.empty()) {
            for (const Var& v : y) {
                yr.push_back(tape.value(v));
                tape.backward(v);
                std::vector<double> row(n);
                tape.adjoints(xv, row);
                jr.push_back(row);
            }
        }
    }

    // ---- same throwing behaviour ------------------------------------------------------------------
    INFO("exception types (double / Dual / Var): '" << err_d << "' / '" << err_f << "' / '" << err_r << "'");
    REQUIRE(err_d == err_f);
    REQUIRE(err_d == err_r);
    if (!err_d.empty()) return;

    // ---- float ----------------------------------------------------------------------------------
    if (tol.check_float) {
        std::vector<float> xf(x.begin(), x.end());
        std::vector<float> yfl;
        const std::string err_fl =
            detail::thrown_type([&] { yfl = detail::as_vector<float>(f(std::span<const float>(xf))); });
        REQUIRE(err_fl == err_d);
        REQUIRE(yfl.size() == yd.size());
        for (std::size_t i = 0; i < yd.size(); ++i) {
            INFO("float value " << i << ": " << yfl[i] << " vs double " << yd[i]);
            CHECK(std::isfinite(yfl[i]));
            CHECK(close(yfl[i], yd[i], tol.float_rel, 1e-6));
        }
    }

    // ---- values -----------------------------------------------------------------------------------
    const std::size_t m = yd.size();
    REQUIRE(yf.size() == m);
    REQUIRE(yr.size() == m);
    for (std::size_t i = 0; i < m; ++i) {
        INFO("output " << i << ": double " << yd[i] << ", Dual " << yf[i] << ", Var " << yr[i]);
        CHECK(std::isfinite(yd[i]));
        CHECK(close(yd[i], yf[i], tol.value_rel));
        CHECK(close(yd[i], yr[i], tol.value_rel));
    }

    // ---- derivatives --------------------------------------------------------------------------------
    const auto fd = ad::finite_difference_jacobian(
        [&](std::span<const double> v) { return detail::as_vector<double>(f(v)); }, x, tol.fd_step);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            const double fwd = jf[j][i];
            const double rev = jr[i][j];
            INFO("d y[" << i << "] / d x[" << j << "]: forward " << fwd << ", reverse " << rev << ", finite difference "
                        << fd(i, j));
            CHECK(std::isfinite(fwd));
            CHECK(std::isfinite(rev));
            CHECK(close(fwd, rev, tol.mode_rel, 1e-13));
            CHECK(close(fwd, fd(i, j), tol.fd_rel, tol.fd_abs));
        }
    }
}

} // namespace diffbio::test
