#pragma once
// Parameter initialisers. Deterministic across platforms and standard libraries: the only random
// source is std::mt19937_64 (its output sequence is fixed by the standard), turned into normal
// draws by our own Box–Muller transform (std::normal_distribution differs between libraries).
//
//   lecun_normal(out, fan_in, seed)  truncated normal on ±2σ with σ = sqrt(1/fan_in)/0.8796…,
//                                    so that the variance of the draws is exactly 1/fan_in
//                                    (Flax's LeCun-normal: 0.8796… is the standard deviation
//                                    of a standard normal truncated to [−2, 2])
//   truncated_normal(out, σ, seed)   σ·z with z standard normal rejected outside [−2, 2]
//   zeros(out)
//   derive_seed(seed, k)             an independent seed for sub-module k (splitmix64 mixing)
//
// O(n); the rejection loop draws 1/0.9545 ≈ 1.05 normals per value on average.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::nn {

/// Standard deviation of a standard normal truncated to [−2, 2].
inline constexpr double truncated_normal_std = 0.87962566103423978;

namespace detail {

/// A double uniform in the open interval (0, 1) from the top 53 bits of one draw.
inline double uniform_open01(std::mt19937_64& rng) {
    return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

/// Standard normal draws by the Box–Muller transform; each pair of uniforms gives two normals.
class NormalSource {
public:
    explicit NormalSource(std::uint64_t seed) : rng_(seed) {}

    double next() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double u1 = uniform_open01(rng_);
        const double u2 = uniform_open01(rng_);
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double a = 6.283185307179586476925286766559 * u2;
        spare_ = r * std::sin(a);
        has_spare_ = true;
        return r * std::cos(a);
    }

private:
    std::mt19937_64 rng_;
    double spare_ = 0.0;
    bool has_spare_ = false;
};

} // namespace detail

/// A seed for sub-module k of a module seeded with `seed` (splitmix64 finaliser of seed + k·φ):
/// nearby (seed, k) pairs give unrelated streams.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t k) noexcept {
    std::uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/// out[i] = stddev·z_i, z_i standard normal conditioned on |z_i| ≤ 2 (rejection sampling).
/// The draws then have standard deviation stddev·0.8796… and lie in [−2·stddev, 2·stddev].
inline void truncated_normal(std::span<double> out, double stddev, std::uint64_t seed) {
    if (!(stddev >= 0.0) || !std::isfinite(stddev)) {
        throw InvalidArgument("truncated_normal: 'stddev' must be finite and >= 0, got " +
                              diffbio::detail::format_value(stddev));
    }
    detail::NormalSource src(seed);
    for (double& v : out) {
        double z = src.next();
        while (std::fabs(z) > 2.0) z = src.next();
        v = stddev * z;
    }
}

/// LeCun-normal initialisation for a layer with `fan_in` inputs: a normal truncated at ±2σ with
/// σ = sqrt(1/fan_in)/0.87962566103423978, whose variance is exactly 1/fan_in. Every value lies
/// in [−2σ, 2σ]. Deterministic for a given seed on every platform. fan_in = 0 throws.
inline void lecun_normal(std::span<double> out, std::size_t fan_in, std::uint64_t seed) {
    if (fan_in == 0) throw InvalidArgument("lecun_normal: 'fan_in' must be >= 1, got 0");
    truncated_normal(out, std::sqrt(1.0 / static_cast<double>(fan_in)) / truncated_normal_std, seed);
}

/// As above, returning n fresh values.
inline std::vector<double> lecun_normal(std::size_t n, std::size_t fan_in, std::uint64_t seed) {
    std::vector<double> v(n);
    lecun_normal(std::span<double>(v), fan_in, seed);
    return v;
}

/// out[i] = 0.
inline void zeros(std::span<double> out) { std::fill(out.begin(), out.end(), 0.0); }

} // namespace diffbio::nn
