#!/usr/bin/python3
"""Refits the double-precision polynomials of include/diffbio/core/simd.hpp.

    /usr/bin/python3 scripts/fit_simd_polynomials.py exp   # q of degree 10, e^r = 1 + r*q(r)
    /usr/bin/python3 scripts/fit_simd_polynomials.py exp16 # q of degree 5 on |r| <= ln2/32 (AVX-512)
    /usr/bin/python3 scripts/fit_simd_polynomials.py log   # q of degree 6, log(1+f) = 2s(1 + z*q(z))
    /usr/bin/python3 scripts/fit_simd_polynomials.py log-avx512  # the same for m in [0.75, 1.5)

Needs mpmath (Debian: python3-mpmath). Each fit is a Lawson iteration (iteratively reweighted
least squares, whose weights converge to the minimax solution) on Chebyshev points, in 160-bit
arithmetic, in the scaled variable x/max|x| so that the least-squares problems stay well
conditioned. It prints the largest weighted error on the grid and the coefficients, constant
term first, as the nearest doubles (the values pasted into simd.hpp, highest degree first there).

exp: |r| <= ln2/2, weight |r|/e^r, so the error measured is the relative error of 1 + r*q(r).
log-avx512: the same for f in [-0.25, 0.5) (vgetmantpd's [0.75, 1.5)): s in [-1/7, 1/5], z <= 0.04.
exp16: the same on |r| <= ln2/32 (the 16-entry table form); also prints the table 2^(j/16) and
     ln2/16 split in a 32-bit high part and the rest.
log: s = f/(2+f) in [-(sqrt2-1)/(sqrt2+1), +...], z = s^2; q* = (atanh(s)/s - 1)/z; weight z, the
     relative error of 2s(1 + z*q) against log(1 + f) = 2*atanh(s) to first order.
"""
import sys

import mpmath as mp

mp.mp.prec = 160


def lawson(f, weight, a, b, degree, points=600, iterations=120):
    scale = max(abs(a), abs(b))
    xs = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (k + mp.mpf(0.5)) / points) for k in range(points)]
    xs += [mp.mpf(a), mp.mpf(b)]
    fv = [f(x) for x in xs]
    wv = [weight(x) for x in xs]
    lam = [mp.mpf(1) / len(xs)] * len(xs)
    best = None
    for _ in range(iterations):
        A = mp.matrix(len(xs), degree + 1)
        y = mp.matrix(len(xs), 1)
        for i, x in enumerate(xs):
            root = mp.sqrt(lam[i]) * wv[i]
            t, tk = x / scale, mp.mpf(1)
            for k in range(degree + 1):
                A[i, k] = root * tk
                tk *= t
            y[i] = root * fv[i]
        c, _ = mp.qr_solve(A, y)
        errs = []
        for i, x in enumerate(xs):
            t, p = x / scale, mp.mpf(0)
            for k in reversed(range(degree + 1)):
                p = p * t + c[k]
            errs.append(abs(wv[i] * (p - fv[i])))
        worst = max(errs)
        if best is None or worst < best[0]:
            best = (worst, [c[k] / scale**k for k in range(degree + 1)])
        total = sum(lam[i] * errs[i] for i in range(len(xs)))
        lam = [lam[i] * errs[i] / total for i in range(len(xs))]
    return best


def q_star(z):
    """(atanh(s)/s - 1)/z with s = sqrt(z): what z*q(z) approximates in log's series."""
    if z == 0:
        return mp.mpf(1) / 3
    s = mp.sqrt(z)
    return (mp.atanh(s) / s - 1) / z


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which == "exp":
        r = mp.log(2) / 2 * mp.mpf(1.0001)
        worst, c = lawson(lambda x: (mp.exp(x) - 1) / x if x != 0 else mp.mpf(1),
                          lambda x: abs(x) / mp.exp(x), -r, r, 10)
    elif which == "exp16":
        r = mp.log(2) / 32 * mp.mpf(1.0001)
        worst, c = lawson(lambda x: (mp.exp(x) - 1) / x if x != 0 else mp.mpf(1),
                          lambda x: abs(x) / mp.exp(x), -r, r, 5)
        print("  table:", ", ".join(repr(float(mp.power(2, mp.mpf(j) / 16))) for j in range(16)))
        m, e = mp.frexp(mp.log(2) / 16)
        hi = mp.ldexp(mp.floor(mp.ldexp(m, 32)), e - 32)
        print(f"  ln2/16 = {float(hi)!r} + {float(mp.log(2) / 16 - hi)!r}, 16/ln2 = {float(16 / mp.log(2))!r}")
    elif which == "log":
        smax = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
        worst, c = lawson(q_star, lambda z: z, mp.mpf(0), smax**2 * mp.mpf(1.0001), 6)
    elif which == "log-avx512":
        worst, c = lawson(q_star, lambda z: z, mp.mpf(0), mp.mpf(1) / 25 * mp.mpf(1.0001), 6)
    else:
        sys.exit("usage: fit_simd_polynomials.py exp|exp16|log|log-avx512")
    print(f"{which}: largest weighted error on the grid {mp.nstr(worst, 3)}")
    for k, ck in enumerate(c):
        print(f"  c{k} = {float(ck)!r}")


if __name__ == "__main__":
    main()
