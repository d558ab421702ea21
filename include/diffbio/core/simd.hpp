#pragma once
// Portable SIMD building blocks on GCC/Clang vector extensions (no intrinsics): one register of
// floats, 8 lanes when compiled with AVX (-mavx2, -march=native), else 4 (SSE on baseline x86-64,
// NEON on ARM), so the same code uses the widest vectors the build allows.
//
//   simd::vf, simd::lanes          a register of floats and its lane count
//   simd::exp(v)                   e^v per lane, |relative error| ≤ 2.5e-7 on [−87.3, 88.7]
//                                  (inputs are clamped to that range: no Inf from any v; NaN stays NaN)
//   simd::sigmoid(v)               1/(1 + e^−v) per lane, in [0, 1]: |absolute error| ≤ 1.2e-7
//                                  everywhere, |relative error| ≤ 4e-7 for v ≥ −87 (below, the
//                                  clamp of exp leaves values under 1.3e-38 instead of 0)
//   simd::load / store             unaligned loads and stores of `lanes` floats
//
// exp: v = n·ln2 + r with n = round(v/ln2) and |r| ≤ ln2/2 (ln2 split in two parts so that r is
// exact), e^r by a degree-6 Taylor polynomial in Horner form (truncation 1.3e-8 relative at
// |r| = ln2/2), times 2^n built in the exponent bits.

#include <cstdint>
#include <cstring>

namespace diffbio::simd {

#if defined(__GNUC__) || defined(__clang__)
#define DIFFBIO_HAVE_VECTOR_EXT 1
#if defined(__AVX__)
inline constexpr int lanes = 8;
#else
inline constexpr int lanes = 4;
#endif
typedef float vf __attribute__((vector_size(4 * lanes)));
typedef std::int32_t vi __attribute__((vector_size(4 * lanes)));
#else
#define DIFFBIO_HAVE_VECTOR_EXT 0
#endif

#if DIFFBIO_HAVE_VECTOR_EXT

inline vf broadcast(float x) { return vf{} + x; }

inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }

/// Lane-wise min/max that keep a NaN in `a` (a NaN input stays NaN through exp and sigmoid).
inline vf min(vf a, vf b) { return a > b ? b : a; }
inline vf max(vf a, vf b) { return a < b ? b : a; }

/// e^v per lane (see the header comment for the accuracy and the clamping).
inline vf exp(vf v) {
    const vf x = max(min(v, broadcast(88.7f)), broadcast(-87.3f));
    // n = round(x / ln2) by the 1.5·2^23 trick (exact for |x/ln2| < 2^22)
    const vf shifter = broadcast(12582912.0f);
    const vf n = (x * broadcast(1.44269504088896341f) + shifter) - shifter;
    const vf r = (x - n * broadcast(0.693359375f)) - n * broadcast(-2.12194440e-4f);
    vf p = broadcast(1.0f / 720.0f);
    p = p * r + broadcast(1.0f / 120.0f);
    p = p * r + broadcast(1.0f / 24.0f);
    p = p * r + broadcast(1.0f / 6.0f);
    p = p * r + broadcast(0.5f);
    p = p * r + broadcast(1.0f);
    p = p * r + broadcast(1.0f);
    // 2^n: n + 127 in the exponent field (n ∈ [−126, 128]; the clamp keeps 2^n·p finite)
    const vi ni = __builtin_convertvector(n, vi);
    vi bits = (ni + 127) << 23;
    vf scale;
    // n = 128 (x near 88.7) does not fit the exponent: use 2^127·(2p) instead
    const vi big = ni > 127;
    bits = big ? ((ni + 126) << 23) : bits;
    std::memcpy(&scale, &bits, sizeof(scale));
    const vf two_p = p + p;
    const vf out = scale * p;
    const vf out_big = scale * two_p;
    return big ? out_big : out;
}

/// σ(v) = 1/(1 + e^−v) per lane, in [0, 1] for every finite v.
inline vf sigmoid(vf v) { return broadcast(1.0f) / (broadcast(1.0f) + exp(-v)); }

#endif // DIFFBIO_HAVE_VECTOR_EXT

} // namespace diffbio::simd
