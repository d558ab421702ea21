#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <diffbio/core/math.hpp>
#include <diffbio/core/simd.hpp>

#if DIFFBIO_HAVE_VECTOR_EXT
using namespace diffbio;

namespace {
/// Applies a lane function to every value (in blocks of simd::lanes) and returns the results.
template <class F>
std::vector<float> lanewise(const std::vector<float>& x, F f) {
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i + simd::lanes <= x.size(); i += simd::lanes) simd::store(out.data() + i, f(simd::load(x.data() + i)));
    return out;
}
} // namespace

TEST_CASE("simd::exp matches std::exp to 2.5e-7 relative over its whole range", "[core][simd]") {
    std::vector<float> x;
    for (int k = -873000; k <= 887000; k += 7) x.push_back(static_cast<float>(k) * 1e-4f);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int k = 0; k < 4096; ++k) x.push_back(u(rng));
    x.resize(x.size() / 8 * 8); // a multiple of the lane count (4 or 8)
    const auto y = lanewise(x, [](simd::vf v) { return simd::exp(v); });
    double worst = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double ref = std::exp(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(y[i] - ref) / ref);
    }
    INFO("worst relative error " << worst);
    CHECK(worst <= 2.5e-7);
}

TEST_CASE("simd::exp clamps above its range, flushes to 0 below it and keeps NaN", "[core][simd]") {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> x = {1e30f, -1e30f, inf, -inf, 88.7f, -87.3f, 0.0f, std::nanf("")};
    const auto y = lanewise(x, [](simd::vf v) { return simd::exp(v); });
    for (std::size_t i = 0; i < 7; ++i) CHECK(std::isfinite(y[i]));
    CHECK(y[0] == Approx(std::exp(static_cast<double>(88.7f))).epsilon(3e-7));
    CHECK(y[1] == 0.0f);
    CHECK(y[3] == 0.0f);
    CHECK(y[5] / std::exp(static_cast<double>(-87.3f)) == Approx(1.0).epsilon(3e-7));
    CHECK(y[6] == 1.0f);
    CHECK(std::isnan(y[7]));
}

TEST_CASE("simd::sigmoid matches the scalar sigmoid to 1.2e-7 absolute, in [0, 1]", "[core][simd]") {
    std::vector<float> x;
    for (int k = -200000; k < 200000; k += 3) x.push_back(static_cast<float>(k) * 1e-3f);
    for (float v : {1e4f, -1e4f, 1e30f, -1e30f, 1e-30f, -1e-30f, 0.0f, 17.0f}) x.push_back(v);
    x.resize(x.size() / 8 * 8); // a multiple of the lane count (4 or 8)
    const auto y = lanewise(x, [](simd::vf v) { return simd::sigmoid(v); });
    double worst = 0.0, worst_rel = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        REQUIRE(y[i] >= 0.0f);
        REQUIRE(y[i] <= 1.0f);
        const double ref = diffbio::sigmoid(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(y[i] - ref));
        if (x[i] >= -87.0f) worst_rel = std::max(worst_rel, std::fabs(y[i] - ref) / ref);
    }
    INFO("worst absolute error " << worst << ", worst relative error " << worst_rel);
    CHECK(worst <= 1.2e-7);
    CHECK(worst_rel <= 4e-7);
}

namespace {
/// Worst errors of simd::exp / simd::log (packs of T, the native width and twice it) against long
/// double references over wide ranges: exp relative; log absolute where |log x| < 1, else relative.
template <class T, int N>
void check_pack_accuracy(double exp_tol, double log_abs_tol, double log_rel_tol) {
    using P = simd::pack<T, N>;
    std::mt19937_64 rng(11);
    const double lo = sizeof(T) == 4 ? -87.3 : -708.3, hi = sizeof(T) == 4 ? 88.7 : 709.7;
    std::uniform_real_distribution<double> ux(lo, hi), small(-1.0, 1.0), expo(sizeof(T) == 4 ? -149.0 : -1074.0,
                                                                             sizeof(T) == 4 ? 127.9 : 1023.9);
    double wexp = 0.0, wlog_abs = 0.0, wlog_rel = 0.0;
    for (int k = 0; k < 20000; ++k) {
        T xs[N], ys[N];
        for (int l = 0; l < N; ++l) xs[l] = static_cast<T>(l % 2 == 0 ? ux(rng) : small(rng));
        P::load(xs).store(ys);
        const P e = simd::exp(P::load(xs));
        for (int l = 0; l < N; ++l) {
            const long double ref = std::exp(static_cast<long double>(xs[l]));
            wexp = std::max(wexp, static_cast<double>(std::fabs((e[l] - ref) / ref)));
        }
        for (int l = 0; l < N; ++l) {
            // log-uniform over every binade (subnormals included) and a band around 1
            xs[l] = l % 3 == 0 ? static_cast<T>(1.0 + small(rng) * 0.3) : static_cast<T>(std::exp2(expo(rng)));
            if (xs[l] == T(0)) xs[l] = std::numeric_limits<T>::denorm_min();
        }
        const P g = simd::log(P::load(xs));
        for (int l = 0; l < N; ++l) {
            const long double ref = std::log(static_cast<long double>(xs[l]));
            const double err = static_cast<double>(std::fabs(g[l] - ref));
            if (std::fabs(ref) < 1.0L) {
                wlog_abs = std::max(wlog_abs, err);
            } else {
                wlog_rel = std::max(wlog_rel, err / static_cast<double>(std::fabs(ref)));
            }
        }
    }
    INFO("exp relative " << wexp << ", log absolute " << wlog_abs << ", log relative " << wlog_rel);
    CHECK(wexp <= exp_tol);
    CHECK(wlog_abs <= log_abs_tol);
    CHECK(wlog_rel <= log_rel_tol);
}

template <class T, int N>
void check_pack_edges() {
    using P = simd::pack<T, N>;
    constexpr T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    const T xs[] = {T(0), -T(0), T(-1), inf, -inf, nan, std::numeric_limits<T>::denorm_min(),
                    std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), T(1)};
    for (const T x : xs) {
        const T lg = simd::log(P::broadcast(x))[N - 1];
        const T ex = simd::exp(P::broadcast(x))[0];
        INFO("x = " << x << ": log " << lg << ", exp " << ex);
        if (std::isnan(x) || x < T(0)) {
            CHECK(std::isnan(lg));
        } else if (x == T(0)) {
            CHECK(lg == -inf);
        } else if (x == inf) {
            CHECK(lg == inf);
        } else {
            CHECK(static_cast<double>(lg) == Approx(std::log(static_cast<double>(x))).epsilon(3e-7).margin(1e-30));
        }
        if (std::isnan(x)) {
            CHECK(std::isnan(ex));
        } else {
            CHECK(std::isfinite(ex));
            CHECK(ex >= T(0));
        }
    }
    CHECK(simd::exp(P::broadcast(-inf))[0] == T(0));
    CHECK(simd::exp(P::broadcast(T(0)))[0] == T(1));
    CHECK(simd::log(P::broadcast(T(1)))[0] == T(0));
}
} // namespace

TEST_CASE("simd::exp and simd::log on float packs: accuracy over the whole range, edge values", "[core][simd]") {
    check_pack_accuracy<float, simd::native_lanes<float>>(2.5e-7, 1.2e-7, 2e-7);
    check_pack_accuracy<float, 2 * simd::native_lanes<float>>(2.5e-7, 1.2e-7, 2e-7);
    check_pack_edges<float, simd::native_lanes<float>>();
    check_pack_edges<float, 2 * simd::native_lanes<float>>();
}

TEST_CASE("simd::exp and simd::log on double packs: ~1e-16 accuracy, edge values", "[core][simd]") {
    // exp: the fitted degree-11 polynomial, 1.5e-16 worst on a 4M-value sweep with FMA, 1.9e-16 without;
    // AVX-512 (512-bit registers): the 16-entry table and degree 6, 2.0e-16
    check_pack_accuracy<double, simd::native_lanes<double>>(2.5e-16, 4e-16, 4e-16);
    check_pack_accuracy<double, 2 * simd::native_lanes<double>>(2.5e-16, 4e-16, 4e-16);
    check_pack_edges<double, simd::native_lanes<double>>();
    check_pack_edges<double, 2 * simd::native_lanes<double>>();
}

TEST_CASE("simd::exp_nonpos and simd::log_normal equal exp and log on their domains", "[core][simd]") {
    using P = simd::pack<float, 2 * simd::native_lanes<float>>;
    using D = simd::pack<double, 2 * simd::native_lanes<double>>;
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> neg(-800.0, 0.0), pos(1.0, 4.0);
    for (int k = 0; k < 2000; ++k) {
        const double x = neg(rng), y = pos(rng);
        CHECK(simd::exp_nonpos(P::broadcast(static_cast<float>(x)))[1] == simd::exp(P::broadcast(static_cast<float>(x)))[1]);
        CHECK(simd::exp_nonpos(D::broadcast(x))[1] == simd::exp(D::broadcast(x))[1]);
        CHECK(simd::log_normal(P::broadcast(static_cast<float>(y)))[0] == simd::log(P::broadcast(static_cast<float>(y)))[0]);
        CHECK(simd::log_normal(D::broadcast(y))[0] == simd::log(D::broadcast(y))[0]);
    }
}

TEST_CASE("simd::pack arithmetic, comparisons and select are lane-wise", "[core][simd]") {
    using P = simd::pack<double, 4>;
    const double a[] = {1.0, -2.0, 3.0, -4.0}, b[] = {0.5, 5.0, -1.0, -4.0};
    const P x = P::load(a), y = P::load(b);
    const P s = simd::select(x < y, x + y, x * y), mn = simd::min(x, y), mx = simd::max(x, y);
    for (int l = 0; l < 4; ++l) {
        CHECK(s[l] == (a[l] < b[l] ? a[l] + b[l] : a[l] * b[l]));
        CHECK(mn[l] == std::min(a[l], b[l]));
        CHECK(mx[l] == std::max(a[l], b[l]));
        CHECK(simd::abs(x)[l] == std::fabs(a[l]));
    }
}

template <class T, int N>
void check_neg_abs() {
    using P = simd::pack<T, N>;
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    const T in[] = {T(1.5), T(-2.25), T(0), -T(0), inf, -inf, nan, std::numeric_limits<T>::denorm_min()};
    T xs[N];
    for (int l = 0; l < N; ++l) xs[l] = in[l % 8];
    const P r = simd::neg_abs(P::load(xs));
    for (int l = 0; l < N; ++l) {
        INFO("lane " << l << ": " << xs[l]);
        if (std::isnan(xs[l])) {
            CHECK(std::isnan(r[l]));
        } else {
            CHECK(r[l] == -std::fabs(xs[l]));
            CHECK(std::signbit(r[l]));
        }
    }
}

TEST_CASE("simd::neg_abs sets the sign bit: -|x|, -0 for +-0, NaN stays NaN", "[core][simd]") {
    check_neg_abs<float, simd::native_lanes<float>>();
    check_neg_abs<float, 2 * simd::native_lanes<float>>();
    check_neg_abs<double, simd::native_lanes<double>>();
    check_neg_abs<double, 2 * simd::native_lanes<double>>();
}
/// simd::sigmoid_with_derivative against the scalar pair on every value of xs (in whole packs):
/// |Δσ| ≤ rel_s·σ + floor, |Δσ'| ≤ rel_d·σ' + floor, both finite, σ in [0, 1].
template <class T>
void check_sigmoid_pair(const std::vector<T>& xs, T rel_s, T rel_d, T floor) {
    using P = simd::pack<T, simd::native_lanes<T>>;
    for (std::size_t i = 0; i + P::size <= xs.size(); i += P::size) {
        P sig, ds;
        simd::sigmoid_with_derivative(P::load(xs.data() + i), sig, ds);
        for (int l = 0; l < P::size; ++l) {
            T s0 = 0, d0 = 0;
            sigmoid_with_derivative(xs[i + l], s0, d0);
            INFO("x = " << xs[i + l]);
            CHECK(std::isfinite(sig[l]));
            CHECK(std::isfinite(ds[l]));
            CHECK(std::fabs(sig[l] - s0) <= rel_s * s0 + floor);
            CHECK(std::fabs(ds[l] - d0) <= rel_d * d0 + floor);
            CHECK(sig[l] >= T(0));
            CHECK(sig[l] <= T(1));
        }
    }
}

TEST_CASE("simd::sigmoid_with_derivative matches the scalar pair on double and float packs, extremes included", "[core][simd]") {
    std::vector<double> xs{0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 3.0, -3.0, 36.0, -36.0, 700.0, -700.0, 745.0, -745.0, 1e10, -1e10, 1e308, -1e308};
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> u(-40.0, 40.0);
    while (xs.size() % static_cast<std::size_t>(simd::native_lanes<float>) != 0 || xs.size() < 200) xs.push_back(u(rng));
    check_sigmoid_pair<double>(xs, 4e-16, 8e-16, 1e-300);
    check_sigmoid_pair<float>(std::vector<float>(xs.begin(), xs.end()), 1e-6f, 2e-6f, 1e-38f);
    // the exact values at 0: σ = 1/2, σ' = 1/4
    using D = simd::pack<double, simd::native_lanes<double>>;
    D sig, ds;
    simd::sigmoid_with_derivative(D::broadcast(0.0), sig, ds);
    CHECK(sig[0] == 0.5);
    CHECK(ds[0] == 0.25);
}
#endif
