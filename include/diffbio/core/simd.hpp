#pragma once
// Portable SIMD building blocks on GCC/Clang vector extensions, with two AVX-512 intrinsics where
// the build has them for the register width: exp's 2^n scaling (vscalefps/pd) and the double log's
// reciprocal (vrcp14pd and Newton steps instead of a division).
//
// Float registers of the widest width the build allows (the original API, used by QualityFilter):
//   simd::vf, simd::lanes          a register of floats and its lane count: 8 when compiled with AVX
//                                  (-mavx2, -march=native), else 4 (SSE on baseline x86-64, NEON)
//   simd::exp(v)                   e^v per lane (see exp below)
//   simd::sigmoid(v)               1/(1 + e^−v) per lane, in [0, 1]: |absolute error| ≤ 1.2e-7
//                                  everywhere, |relative error| ≤ 4e-7 for v ≥ −87 (below, the
//                                  clamp of exp leaves values under 1.3e-38 instead of 0)
//   simd::load / store             unaligned loads and stores of `lanes` floats
//
// Packs of any element type and width, for kernels written once for float and double:
//   simd::pack<T, N>               N values of T (float or double) in a GCC vector of N·sizeof(T)
//                                  bytes; N may exceed the hardware width (the compiler splits it into
//                                  several registers, which interleaves independent dependency chains).
//                                  Arithmetic (+ − * / unary −), comparisons giving simd::mask<T, N>,
//                                  select(m, a, b), min/max, load/store, broadcast, lane access.
//                                  Values cross function boundaries inside a struct: a bare GCC vector
//                                  wider than the hardware's would trip -Wpsabi at every call.
//   simd::native_lanes<T>          the lane count of one hardware register of T (16/32/64 bytes)
//   simd::exp(p)                   e^x per lane. float: |relative error| ≤ 2.5e-7 on [−87.3, 88.7];
//                                  double: ≤ 2.5e-16 on [−708.3, 709.7]. Above the range: the value at
//                                  its top (finite, no Inf); below it (−∞ included): exactly 0; NaN
//                                  stays NaN.
//   simd::exp_nonpos(p)            the same for x ≤ 0 only (skips the clamp above: the soft max's
//                                  max-shifted exponents)
//   simd::exp_zero_below<T>        the bound below which both give exactly 0
//   simd::any(m)                   whether any lane of a mask is set
//   simd::log_normal(p)            log for normal, positive, finite x only (skips the special cases)
//   simd::log(p)                   natural log per lane. float: |error| ≤ 1.2e-7 absolute where
//                                  |log x| < 1, ≤ 2e-7 relative elsewhere; double: ≤ 4e-16 absolute /
//                                  relative likewise; subnormals included; log(±0) = −∞, log(+∞) = +∞,
//                                  log(x < 0) = NaN,
//                                  log(NaN) = NaN.
//
// exp: x = n·ln2 + r with n = round(x/ln2) (the 1.5·2^p shifter trick, which also leaves n in the
// low bits of the shifted value), |r| ≤ ln2/2 (ln2 split in a high part with trailing zero bits and
// a low part, so that n·ln2_hi is exact), e^r by a polynomial in Horner form, times 2^n (vscalef, or
// built in the exponent bits). float: degree 5, p(r) = 1 + r·q(r) with q fitted to minimise the largest relative
// error on |r| ≤ ln2/2 (a Lawson-reweighted least-squares fit: 9.2e-8, one multiply-add fewer than
// the degree-6 Taylor polynomial and, with rounding, a smaller worst error: 1.8e-7 against 2.4e-7);
// double: degree 11, the same form with q fitted likewise (3.4e-18; scripts/fit_simd_polynomials.py
// refits the double polynomials). Double in 512-bit registers (AVX-512): x = (16·a + j)·ln2/16 + r,
// |r| ≤ ln2/32, e^x = 2^a·2^{j/16}·e^r with 2^{j/16} from a 16-entry table (one vpermi2pd) and
// e^r = 1 + r·q(r), q of degree 5 (7.0e-18): two multiply-adds fewer per exp than degree 11, the
// double soft-max kernels 6–13% faster; worst error 2.0e-16 on a 4M-value sweep (1.5e-16 before).
// log: x = 2^e·(1 + f) with 1 + f ∈ [√½, √2) (the exponent bits shifted so that the mantissa lands
// there), log(1 + f) = 2·atanh(s), s = f/(2 + f) ∈ [−0.172, 0.172], by its odd series
// 2s·(1 + z·q(z)), z = s² (double: q of degree 6 fitted to the series' sum 1/3 + z/5 + …, 1.2e-18
// relative; float: a polynomial in f instead, see log_normal_raw),
// plus e·ln2 in two parts. Double in 512-bit registers (AVX-512): m ∈ [0.75, 1.5) and e by
// vgetmantpd/vgetexppd instead of the exponent-bit arithmetic, q refitted for z ≤ 0.04 (the double
// lse cell +5%, the double soft-max kernels +1–5%; the worst errors on the sweep unchanged).

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include <diffbio/config.hpp>

#if defined(__AVX512F__) && !defined(__CUDACC__)
#include <immintrin.h>
#define DIFFBIO_SIMD_AVX512 1
#elif defined(__SSE2__) && !defined(__CUDACC__)
#include <immintrin.h> // simd::any's lane tests
#endif

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

/// Full unrolling of the loops over a pack's sub-registers (at -O2 GCC would otherwise keep the
/// sub-registers in memory); nothing for compilers that do not know the pragma (nvcc's front end).
#if defined(__CUDACC__)
#define DIFFBIO_SIMD_UNROLL
#elif defined(__clang__)
#define DIFFBIO_SIMD_UNROLL _Pragma("clang loop unroll(full)")
#else
#define DIFFBIO_SIMD_UNROLL _Pragma("GCC unroll 16")
#endif

/// Bytes of one hardware vector register.
#if defined(__AVX512F__)
inline constexpr int native_bytes = 64;
#elif defined(__AVX__)
inline constexpr int native_bytes = 32;
#else
inline constexpr int native_bytes = 16;
#endif

template <class T>
inline constexpr int native_lanes = native_bytes / static_cast<int>(sizeof(T));

/// exp and exp_nonpos give exactly 0 below this (float: −87.3, double: −708.3), so that a kernel
/// may skip a term whose every lane's exponent is below it without changing a bit.
template <class T>
inline constexpr T exp_zero_below = sizeof(T) == 4 ? T(-87.3f) : T(-708.3);

namespace detail {
template <class T, int N>
struct vec_of {
    typedef T type __attribute__((vector_size(sizeof(T) * N)));
};
template <class T>
using int_of_t = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
/// Lanes of one sub-register of a pack of N values of T: at most a hardware register.
template <class T, int N>
inline constexpr int sub_lanes = N < native_lanes<T> ? N : native_lanes<T>;

/// Whether this build has AVX-512 instructions for a register R of R's width (zmm; ymm and xmm with
/// AVX512VL): scale_by_pow2 and rcp14_f64 below exist for those widths only (div_f64 falls back).
template <class R>
inline constexpr bool avx512_width =
#if defined(DIFFBIO_SIMD_AVX512) && defined(__AVX512VL__)
    sizeof(R) == 64 || sizeof(R) == 32 || sizeof(R) == 16;
#elif defined(DIFFBIO_SIMD_AVX512)
    sizeof(R) == 64;
#else
    false;
#endif

#if defined(DIFFBIO_SIMD_AVX512)
// The masked intrinsics with every lane set: GCC 12's unmasked ones trip -Wuninitialized.

/// p·2^n for a register R of T with n integral and 2^n normal, by one vscalefps/pd (the same bits
/// as multiplying by 2^n built in the exponent field, which is exact). avx512_width<R> only.
template <class T, class R>
DIFFBIO_FORCE_INLINE R scale_by_pow2(const R& p, const R& n) {
    constexpr bool f32 = sizeof(T) == 4;
    if constexpr (sizeof(R) == 64) {
        if constexpr (f32) return R(_mm512_mask_scalef_ps(__m512(p), __mmask16(0xFFFF), __m512(p), __m512(n)));
        else return R(_mm512_mask_scalef_pd(__m512d(p), __mmask8(0xFF), __m512d(p), __m512d(n)));
    }
#if defined(__AVX512VL__)
    else if constexpr (sizeof(R) == 32) {
        if constexpr (f32) return R(_mm256_mask_scalef_ps(__m256(p), __mmask8(0xFF), __m256(p), __m256(n)));
        else return R(_mm256_mask_scalef_pd(__m256d(p), __mmask8(0xF), __m256d(p), __m256d(n)));
    } else {
        if constexpr (f32) return R(_mm_mask_scalef_ps(__m128(p), __mmask8(0xF), __m128(p), __m128(n)));
        else return R(_mm_mask_scalef_pd(__m128d(p), __mmask8(0x3), __m128d(p), __m128d(n)));
    }
#endif
}

/// 1/b to 14 bits (vrcp14pd) for a register R of double. avx512_width<R> only.
template <class R>
DIFFBIO_FORCE_INLINE R rcp14_f64(const R& b) {
    if constexpr (sizeof(R) == 64) return R(_mm512_mask_rcp14_pd(__m512d(b), __mmask8(0xFF), __m512d(b)));
#if defined(__AVX512VL__)
    else if constexpr (sizeof(R) == 32) return R(_mm256_mask_rcp14_pd(__m256d(b), __mmask8(0xF), __m256d(b)));
    else return R(_mm_mask_rcp14_pd(__m128d(b), __mmask8(0x3), __m128d(b)));
#endif
}
#endif

/// a/b for a register R of double with b normal (log's s = f/(2 + f)): where avx512_width<R>, 1/b
/// from vrcp14pd (relative error < 2^−14) refined by two Newton steps (< 2^−55), no division: its
/// unit takes 16 cycles per 512-bit register and stalled the kernels' log chains. Elsewhere the
/// division.
template <class R>
DIFFBIO_FORCE_INLINE R div_f64(const R& a, const R& b) {
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(b[0])>, double>, "div_f64: a register of double");
#if defined(DIFFBIO_SIMD_AVX512)
    if constexpr (avx512_width<R>) {
        R y = rcp14_f64(b);
        y = y + y * (1.0 - b * y);
        y = y + y * (1.0 - b * y);
        return a * y;
    }
#endif
    return a / b;
}

/// c₀·x^K + c₁·x^(K−1) + … + c_K in Horner form (coefficients highest degree first), one
/// multiply-add per coefficient after the first, unrolled by the fold.
template <class T, class R, class... C>
DIFFBIO_FORCE_INLINE R horner(const R& x, T c0, C... c) {
    R p = R{} + c0;
    ((p = p * x + T(c)), ...);
    return p;
}

/// e^x on one register-sized GCC vector R of T (see the header comment).
template <class T, class R, bool Nonpos = false>
DIFFBIO_FORCE_INLINE R exp_raw(const R& x0) {
    using I = int_of_t<T>;
    using IR = typename vec_of<I, sizeof(R) / sizeof(T)>::type;
    constexpr bool f32 = sizeof(T) == 4;
    constexpr T hi = f32 ? T(88.7f) : T(709.7);
    constexpr T lo = exp_zero_below<T>;
    // shifter 1.5·2^23 (float) / 1.5·2^52 (double): adding it rounds to an integer n kept in the low bits
    constexpr T shifter = f32 ? T(12582912.0f) : T(6755399441055744.0);
    constexpr I shifter_bits = f32 ? I(0x4B400000) : I(0x4338000000000000LL);
    constexpr int mant = f32 ? 23 : 52;
    constexpr I bias = f32 ? 127 : 1023;
    constexpr T ln2_hi = f32 ? T(0.693359375f) : T(6.93147180369123816490e-01);
    constexpr T ln2_lo = f32 ? T(-2.12194440e-4f) : T(1.90821492927058770002e-10);
    R x = x0;
    if constexpr (!Nonpos) x = x0 > hi ? R{} + hi : x0; // NaN stays NaN (both comparisons false)
#if defined(DIFFBIO_SIMD_AVX512)
    if constexpr (!f32 && sizeof(R) == 64) {
        // the table form (see the header comment): k = 16x/ln2 + shifter keeps n = 16a + j in its low
        // bits, j = n mod 16 (its low 4 bits, negative n included) indexes the two table registers,
        // r = x − n·ln2/16 (ln2/16 in two parts, the high one with 21 trailing zero bits), the
        // table entry folded into 1 + r·q by one multiply-add, and vscalefpd scales by 2^floor(n/16)
        alignas(64) static constexpr double tab[16] = {1.0, 1.0442737824274138, 1.0905077326652577,
            1.1387886347566916, 1.189207115002721, 1.241857812073484, 1.2968395546510096, 1.3542555469368927,
            1.4142135623730951, 1.4768261459394993, 1.5422108254079407, 1.6104903319492543, 1.681792830507429,
            1.7562521603732995, 1.8340080864093424, 1.9152065613971474};
        const R k = x * T(23.083120654223414) + shifter;
        const R n = k - shifter;
        const R r = (x - n * T(0.04332169877307024)) - n * T(1.1926343307941173e-11);
        const R q = horner<T>(r, T(0.0013888739704813393), T(0.00833349612879478), T(0.04166666668537555),
            T(0.16666666662853438), T(0.4999999999999968), T(1.0000000000000022));
        const R tj = R(_mm512_permutex2var_pd(_mm512_load_pd(tab), _mm512_castpd_si512(__m512d(k)), _mm512_load_pd(tab + 8)));
        const R out = tj + (tj * r) * q;
        return x0 < lo ? R{} : scale_by_pow2<T>(out, n * T(0.0625)); // vscalefpd takes floor(n/16)
    }
#endif
    const R k = x * T(1.44269504088896340736) + shifter;
    const R n = k - shifter;
    const R r = (x - n * ln2_hi) - n * ln2_lo;
    R p;
    if constexpr (f32) {
        p = horner<T>(r, T(0.00829029695f), T(0.0418979127f), T(0.166676363f), T(0.499991497f), T(0.999999707f),
            T(1.0));
    } else {
        // p = 1 + r·q(r), q of degree 10 fitted like float's (3.4e-18): one multiply-add fewer than Taylor's 12
        p = horner<T>(r, T(2.499142154852573e-08), T(2.76310503305349e-07), T(2.7557626826399816e-06),
            T(2.4801490593774713e-05), T(0.00019841269436536246), T(0.0013888888946390811),
            T(0.008333333333549879), T(0.0416666666665177), T(0.16666666666666216), T(0.5000000000000012), T(1.0),
            T(1.0));
    }
    // n from the low bits of k; 2^n = (n + bias) in the exponent field. n = bias + 1 (the top of the
    // range) does not fit: 2^(n−1)·(2p) instead. The integer arithmetic is unsigned: below the
    // range (x < lo, set to 0 at the end) k's bits minus the shifter's leave the signed range.
    using U = std::make_unsigned_t<I>;
    using UR = typename vec_of<U, sizeof(R) / sizeof(T)>::type;
    UR kb;
    std::memcpy(&kb, &k, sizeof(kb));
    const UR ni = kb - static_cast<U>(shifter_bits);
    R out;
#if defined(DIFFBIO_SIMD_AVX512)
    if constexpr (avx512_width<R>) return x0 < lo ? R{} : scale_by_pow2<T>(p, n); // n = bias + 1 included
#endif
    if constexpr (Nonpos) {
        const UR sbits = (ni + static_cast<U>(bias)) << mant;
        R scale;
        std::memcpy(&scale, &sbits, sizeof(scale));
        out = scale * p;
    } else {
        IR nis;
        std::memcpy(&nis, &ni, sizeof(nis));
        const IR big = nis > bias;
        const UR sbits = ((big ? ni - 1 : ni) + static_cast<U>(bias)) << mant;
        R scale;
        std::memcpy(&scale, &sbits, sizeof(scale));
        out = scale * (big ? p + p : p);
    }
    return x0 < lo ? R{} : out;
}

/// log x on one register-sized vector, for x normal, positive and finite (no special cases).
template <class T, class R>
DIFFBIO_FORCE_INLINE R log_normal_raw(const R& x) {
    using I = int_of_t<T>;
    constexpr bool f32 = sizeof(T) == 4;
    constexpr int mant = f32 ? 23 : 52;
    constexpr I one_bits = f32 ? I(0x3f800000) : I(0x3ff0000000000000LL);
    constexpr I sqrt_half_bits = f32 ? I(0x3f3504f3) : I(0x3fe6a09e667f3bcdLL);
    constexpr I mant_mask = (I(1) << mant) - 1;
    constexpr T shifter = f32 ? T(12582912.0f) : T(6755399441055744.0);
    constexpr I shifter_bits = f32 ? I(0x4B400000) : I(0x4338000000000000LL);
    constexpr T ln2_hi = f32 ? T(0.693359375f) : T(6.93147180369123816490e-01);
    constexpr T ln2_lo = f32 ? T(-2.12194440e-4f) : T(1.90821492927058770002e-10);
#if defined(DIFFBIO_SIMD_AVX512)
    if constexpr (!f32 && sizeof(R) == 64) {
        // x = 2^e·m with m ∈ [0.75, 1.5) by vgetmantpd and e by vgetexppd (floor(log2 x), one more
        // where the mantissa was halved into [0.75, 1)): five operations instead of seven integer
        // ones; f = m − 1 ∈ [−0.25, 0.5), s = f/(2 + f) ∈ [−1/7, 1/5], z ≤ 0.04, q of degree 6
        // refitted on that range (1.5e-17; scripts/fit_simd_polynomials.py log-avx512)
        const __m512d xv = __m512d(x);
        const R m = R(_mm512_mask_getmant_pd(xv, __mmask8(0xFF), xv, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src));
        const R e0 = R(_mm512_mask_getexp_pd(xv, __mmask8(0xFF), xv));
        const R e = m < T(1) ? e0 + T(1) : e0;
        const R f = m - T(1);
        const R s = div_f64(f, T(2) + f);
        const R z = s * s;
        const R q = horner<T>(z, T(0.07684216287553709), T(0.07625078775235859), T(0.09093178809561266),
            T(0.11111069231864563), T(0.14285714697876584), T(0.19999999998079546), T(0.33333333333336357));
        const R two_s = f - s * f;
        const R lg = two_s + two_s * (z * q);
        return e * ln2_hi + (lg + e * ln2_lo);
    }
#endif
    // shift the exponent so that the mantissa lands in [√½, √2); unsigned integer arithmetic (the
    // same bits for the positive x this is for; lanes holding NaN or infinity, whose results a
    // caller discards, would leave the signed range)
    using U = std::make_unsigned_t<I>;
    using UR = typename vec_of<U, sizeof(R) / sizeof(T)>::type;
    UR b;
    std::memcpy(&b, &x, sizeof(b));
    b += static_cast<U>(one_bits - sqrt_half_bits);
    const UR e = (b >> mant) - static_cast<U>(f32 ? 127 : 1023) + static_cast<U>(shifter_bits); // e + the shifter's bits
    b = (b & static_cast<U>(mant_mask)) + static_cast<U>(sqrt_half_bits);
    R f, ef;
    std::memcpy(&f, &b, sizeof(f));
    std::memcpy(&ef, &e, sizeof(ef));
    f = f - T(1);
    ef = ef - shifter; // e as a float (|e| < 2^22)
    R lg;
    if constexpr (f32) {
        // log(1 + f) = f + f²·(f·h(f) − ½), h of degree 6 fitted to minimise the largest relative
        // error of log(1 + f) on [√½ − 1, √2 − 1] (Lawson-reweighted least squares: 3.2e-8
        // relative, 1.1e-8 absolute)
        const R h = horner<T>(f, T(0.0870043263f), T(-0.142674774f), T(0.149147645f), T(-0.165775865f),
            T(0.199630648f), T(-0.250013381f), T(0.333339095f));
        lg = f + (f * f) * (f * h - T(0.5));
    } else {
        // log(1 + f) = 2·atanh(s), s = f/(2 + f): 2s·(1 + z·q(z)), z = s² ∈ [0, 0.0295], q of degree
        // 6 fitted to minimise the largest |z·(q − q*)| (q* = (atanh(s)/s − 1)/z = 1/3 + z/5 + …; the
        // relative error of log(1 + f): 1.2e-18, against 11 terms of the series for the same), with
        // 2s = f − s·f (an identity of s), one rounding of the small s·f instead of 2·(rounded s)
        const R s = div_f64(f, T(2) + f);
        const R z = s * s;
        const R q = horner<T>(z, T(0.07398059749546033), T(0.07657017250748967), T(0.09091782457961672),
            T(0.11111099281297633), T(0.14285714371241487), T(0.19999999999707144), T(0.3333333333333367));
        const R two_s = f - s * f;
        lg = two_s + two_s * (z * q);
    }
    return ef * ln2_hi + (lg + ef * ln2_lo);
}

/// log x on one register-sized vector, every input (see the header comment).
template <class T, class R>
DIFFBIO_FORCE_INLINE R log_raw(const R& x0) {
    constexpr T min_normal = std::numeric_limits<T>::min();
    constexpr T two_p = sizeof(T) == 4 ? T(8388608.0f) : T(4503599627370496.0); // 2^23, 2^52
    constexpr T inf = std::numeric_limits<T>::infinity();
    const auto sub = x0 < min_normal;
    const R x = sub ? x0 * two_p : x0; // subnormals scaled into the normal range
    R res = log_normal_raw<T>(x);
    res = sub ? res - T(sizeof(T) == 4 ? 15.942385152878742 : 36.04365338911715) : res; // − log 2^23 / 2^52
    res = x0 == inf ? R{} + inf : res;
    res = x0 == T(0) ? R{} - inf : res;
    res = x0 < T(0) || x0 != x0 ? R{} + std::numeric_limits<T>::quiet_NaN() : res;
    return res;
}
} // namespace detail

/// Lane-wise truth values of a comparison of packs (all bits set = true).
template <class T, int N>
struct mask {
    static constexpr int W = detail::sub_lanes<T, N>, G = N / W;
    using raw = typename detail::vec_of<detail::int_of_t<T>, W>::type;
    raw v[G];
    friend mask operator&(const mask& a, const mask& b) {
        mask r;
        DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) r.v[g] = a.v[g] & b.v[g];
        return r;
    }
    friend mask operator|(const mask& a, const mask& b) {
        mask r;
        DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) r.v[g] = a.v[g] | b.v[g];
        return r;
    }
    friend mask operator!(const mask& a) {
        mask r;
        DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) r.v[g] = ~a.v[g];
        return r;
    }
    bool lane(int l) const { return v[l / W][l % W] != 0; }
};

#define DIFFBIO_SIMD_LANEWISE(expr)                                                                                    \
    pack r;                                                                                                            \
    DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) r.v[g] = (expr);                                              \
    return r
#define DIFFBIO_SIMD_MASKWISE(expr)                                                                                    \
    mask<T, N> r;                                                                                                      \
    DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) r.v[g] = (expr);                                              \
    return r

/// N values of T as G = N/W GCC vectors of W ≤ one hardware register each (see the header comment).
template <class T, int N>
struct pack {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "simd::pack holds float or double");
    static constexpr int W = detail::sub_lanes<T, N>, G = N / W;
    static_assert(G * W == N, "simd::pack: N must be a power of two");
    using value_type = T;
    using raw = typename detail::vec_of<T, W>::type;
    static constexpr int size = N;
    raw v[G];

    static pack broadcast(T x) { DIFFBIO_SIMD_LANEWISE(raw{} + x); }
    // one memcpy per sub-register: one of the whole array GCC expands into narrower moves through
    // a stack temporary (256-bit ones under AVX-512 tuning), which the next full-width read of a
    // sub-register cannot take from the store buffer (a store-forwarding stall on every load)
    static pack load(const T* p) {
        pack r;
        DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) std::memcpy(&r.v[g], p + g * W, sizeof(raw));
        return r;
    }
    void store(T* p) const {
        DIFFBIO_SIMD_UNROLL for (int g = 0; g < G; ++g) std::memcpy(p + g * W, &v[g], sizeof(raw));
    }
    T operator[](int l) const { return v[l / W][l % W]; }
    void set(int l, T x) { v[l / W][l % W] = x; }

    friend pack operator+(const pack& a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a.v[g] + b.v[g]); }
    friend pack operator-(const pack& a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a.v[g] - b.v[g]); }
    friend pack operator*(const pack& a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a.v[g] * b.v[g]); }
    friend pack operator/(const pack& a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a.v[g] / b.v[g]); }
    friend pack operator+(const pack& a, T b) { DIFFBIO_SIMD_LANEWISE(a.v[g] + b); }
    friend pack operator-(const pack& a, T b) { DIFFBIO_SIMD_LANEWISE(a.v[g] - b); }
    friend pack operator*(const pack& a, T b) { DIFFBIO_SIMD_LANEWISE(a.v[g] * b); }
    friend pack operator+(T a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a + b.v[g]); }
    friend pack operator-(T a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a - b.v[g]); }
    friend pack operator*(T a, const pack& b) { DIFFBIO_SIMD_LANEWISE(a * b.v[g]); }
    friend pack operator-(const pack& a) { DIFFBIO_SIMD_LANEWISE(-a.v[g]); }
    pack& operator+=(const pack& b) { return *this = *this + b; }
    pack& operator-=(const pack& b) { return *this = *this - b; }
    pack& operator*=(const pack& b) { return *this = *this * b; }

    friend mask<T, N> operator<(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] < b.v[g]); }
    friend mask<T, N> operator<=(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] <= b.v[g]); }
    friend mask<T, N> operator>(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] > b.v[g]); }
    friend mask<T, N> operator>=(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] >= b.v[g]); }
    friend mask<T, N> operator==(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] == b.v[g]); }
    friend mask<T, N> operator!=(const pack& a, const pack& b) { DIFFBIO_SIMD_MASKWISE(a.v[g] != b.v[g]); }

};

#undef DIFFBIO_SIMD_LANEWISE
#define DIFFBIO_SIMD_LANEWISE(expr)                                                                                    \
    pack<T, N> r;                                                                                                      \
    DIFFBIO_SIMD_UNROLL for (int g = 0; g < pack<T, N>::G; ++g) r.v[g] = (expr);                                  \
    return r

template <class T, int N>
inline pack<T, N> select(const mask<T, N>& m, const pack<T, N>& a, const pack<T, N>& b) {
    DIFFBIO_SIMD_LANEWISE(m.v[g] ? a.v[g] : b.v[g]);
}
/// Whether any lane of m is set: one test of the OR of its sub-registers (for branches that skip
/// work no lane needs).
template <class T, int N>
DIFFBIO_FORCE_INLINE bool any(const mask<T, N>& m) {
    using R = typename mask<T, N>::raw;
    R acc = m.v[0];
    DIFFBIO_SIMD_UNROLL for (int g = 1; g < mask<T, N>::G; ++g) acc |= m.v[g];
#if defined(DIFFBIO_SIMD_AVX512)
    if constexpr (sizeof(R) == 64) {
        __m512i x;
        std::memcpy(&x, &acc, sizeof(x));
        return _mm512_test_epi32_mask(x, x) != 0;
    }
#endif
#if defined(__AVX__) && !defined(__CUDACC__)
    if constexpr (sizeof(R) == 32) {
        __m256i x;
        std::memcpy(&x, &acc, sizeof(x));
        return _mm256_testz_si256(x, x) == 0;
    }
#endif
#if defined(__SSE2__) && !defined(__CUDACC__)
    if constexpr (sizeof(R) == 16) {
        __m128i x;
        std::memcpy(&x, &acc, sizeof(x));
        return _mm_movemask_epi8(x) != 0; // mask lanes are all ones or all zeros
    }
#endif
    bool hit = false;
    for (int l = 0; l < mask<T, N>::W; ++l) hit = hit || acc[l] != 0;
    return hit;
}

/// Lane-wise min/max; a NaN in `a` is kept.
template <class T, int N>
inline pack<T, N> min(const pack<T, N>& a, const pack<T, N>& b) {
    DIFFBIO_SIMD_LANEWISE(a.v[g] > b.v[g] ? b.v[g] : a.v[g]);
}
template <class T, int N>
inline pack<T, N> max(const pack<T, N>& a, const pack<T, N>& b) {
    DIFFBIO_SIMD_LANEWISE(a.v[g] < b.v[g] ? b.v[g] : a.v[g]);
}
template <class T, int N>
inline pack<T, N> abs(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE(a.v[g] < T(0) ? -a.v[g] : a.v[g]);
}
namespace detail {
/// −|x| on one register: the sign bit set (one OR; NaN stays NaN, ±0 → −0).
template <class T, class R>
DIFFBIO_FORCE_INLINE R neg_abs_raw(const R& x) {
    using I = int_of_t<T>;
    using IR = typename vec_of<I, sizeof(R) / sizeof(T)>::type;
    IR b;
    std::memcpy(&b, &x, sizeof(b));
    b |= IR{} + static_cast<I>(std::make_unsigned_t<I>(1) << (8 * sizeof(I) - 1));
    R out;
    std::memcpy(&out, &b, sizeof(out));
    return out;
}
} // namespace detail
/// −|a| per lane by the sign bit (the kernels' exponents −|x − y|/τ: one operation where
/// min(x, −x) takes two and −abs(x) three).
template <class T, int N>
DIFFBIO_FORCE_INLINE pack<T, N> neg_abs(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE(detail::neg_abs_raw<T>(a.v[g]));
}
/// e^x per lane.
template <class T, int N>
DIFFBIO_FORCE_INLINE pack<T, N> exp(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE(detail::exp_raw<T>(a.v[g]));
}
/// e^x per lane for x ≤ 0 only (the kernels' max-shifted exponents; no clamp above, same accuracy).
template <class T, int N>
DIFFBIO_FORCE_INLINE pack<T, N> exp_nonpos(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE((detail::exp_raw<T, typename pack<T, N>::raw, true>(a.v[g])));
}
/// σ(x) = 1/(1 + e^−x) and σ'(x) = σ(x)·(1 − σ(x)) per lane, from e = e^−|x| ∈ (0, 1] so that
/// neither overflows for any x (the pack form of diffbio::sigmoid_with_derivative).
template <class T, int N>
DIFFBIO_FORCE_INLINE void sigmoid_with_derivative(const pack<T, N>& x, pack<T, N>& sig, pack<T, N>& dsig) {
    const pack<T, N> e = exp_nonpos(neg_abs(x));
    const pack<T, N> r = pack<T, N>::broadcast(T(1)) / (e + T(1));
    const pack<T, N> er = e * r;
    sig = select(x >= pack<T, N>::broadcast(T(0)), r, er);
    dsig = er * r;
}
/// log x per lane, every input.
template <class T, int N>
DIFFBIO_FORCE_INLINE pack<T, N> log(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE(detail::log_raw<T>(a.v[g]));
}
/// log x per lane for normal, positive, finite x only (no special cases: the kernels' log(1 + r)).
template <class T, int N>
DIFFBIO_FORCE_INLINE pack<T, N> log_normal(const pack<T, N>& a) {
    DIFFBIO_SIMD_LANEWISE(detail::log_normal_raw<T>(a.v[g]));
}

#undef DIFFBIO_SIMD_LANEWISE
#undef DIFFBIO_SIMD_MASKWISE

// ---- the original float API --------------------------------------------------------------------

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

/// e^v per lane (pack exp: ≤ 2.5e-7 relative on [−87.3, 88.7], 0 below, finite above).
inline vf exp(vf v) { return detail::exp_raw<float>(v); }

/// log v per lane (pack log).
inline vf log(vf v) { return detail::log_raw<float>(v); }

/// σ(v) = 1/(1 + e^−v) per lane, in [0, 1] for every finite v.
inline vf sigmoid(vf v) { return broadcast(1.0f) / (broadcast(1.0f) + exp(-v)); }

#endif // DIFFBIO_HAVE_VECTOR_EXT

} // namespace diffbio::simd
