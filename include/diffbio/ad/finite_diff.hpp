#pragma once
// Central finite differences, the independent check of every derivative in the test-suite.
//
// Step h_i = step · max(1, |x_i|); error O(h²) from truncation plus O(ε/h) from rounding, so the
// default step 1e-6 gives about 1e-9 relative accuracy on smooth functions of O(1) scale.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <diffbio/ad/drivers.hpp>

namespace diffbio::ad {

/// ∇f by central differences: 2n evaluations of f: span<const double> -> double.
template <class F>
std::vector<double> finite_difference_gradient(F&& f, std::span<const double> x, double step = 1e-6) {
    std::vector<double> xp(x.begin(), x.end());
    std::vector<double> g(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double h = step * std::max(1.0, std::fabs(x[i]));
        xp[i] = x[i] + h;
        const double fp = f(std::span<const double>(xp));
        xp[i] = x[i] - h;
        const double fm = f(std::span<const double>(xp));
        xp[i] = x[i];
        g[i] = (fp - fm) / (2.0 * h);
    }
    return g;
}

/// Jacobian by central differences of f: span<const double> -> std::vector<double>.
template <class F>
Jacobian finite_difference_jacobian(F&& f, std::span<const double> x, double step = 1e-6) {
    std::vector<double> xp(x.begin(), x.end());
    Jacobian J{0, x.size(), {}};
    for (std::size_t j = 0; j < x.size(); ++j) {
        const double h = step * std::max(1.0, std::fabs(x[j]));
        xp[j] = x[j] + h;
        const std::vector<double> fp = f(std::span<const double>(xp));
        xp[j] = x[j] - h;
        const std::vector<double> fm = f(std::span<const double>(xp));
        xp[j] = x[j];
        if (j == 0) {
            J.rows = fp.size();
            J.data.assign(J.rows * J.cols, 0.0);
        }
        if (fp.size() != J.rows || fm.size() != J.rows) {
            throw ShapeError("finite_difference_jacobian: the function returned outputs of different sizes");
        }
        for (std::size_t i = 0; i < J.rows; ++i) J.data[i * J.cols + j] = (fp[i] - fm[i]) / (2.0 * h);
    }
    return J;
}

} // namespace diffbio::ad
