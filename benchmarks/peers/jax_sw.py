"""JAX side of benchmarks/peers/jax_sw.sh: smooth Smith-Waterman in JAX, forward and
forward+backward, on the same batch of DNA pairs as bench_sw_peer.cpp.

  python jax_sw.py make-data --out FILE --pairs N --length L [--seed S]
  python jax_sw.py bench --data FILE [--reps N] [--impl diffbio,scan] [--x64]

make-data writes N pairs of uniform random ACGT sequences of length L (numpy default_rng(seed)),
one pair per line: "<query> <target>". Both sides read that file.

Config (both sides): DNA matrix match 2 / mismatch -1, local alignment, temperature tau = 1,
gap penalties open 10 / extend 1 in parasail's convention (a gap of length k costs
10 + (k - 1)). Loss = sum of the N pair scores; forward+backward = the loss and its gradient
w.r.t. the 4x4 substitution matrix and the gap parameters (value_and_grad).

Implementations:
  diffbio  DiffBio's SmoothSmithWaterman (PyPI `diffbio`, diffbio.operators.alignment): its
           config gap_open=-10, gap_extend=-1, i.e. a LINEAR gap of g = -11 per position, a
           4-way soft max with a restart 0 in every cell, a hard max over the DP matrix at the end
           and a soft max with 0 (spec section 3.2). Inputs are one-hot [L, 4] rows. The C++ side
           runs the same model with SmithWatermanConfig{gaps = Linear, diffbio_compat = true,
           GapOpen{10}, GapExtend{1}} (the scores agree up to float32 rounding). The operator's
           align() is vmapped over the batch; nnx.jit(loss) and
           nnx.jit(nnx.value_and_grad(loss)) (w.r.t. every nnx.Param: scoring matrix, gap_open,
           gap_extend).
  scan     SMURF-style anti-diagonal lax.scan written here from the recursion in
           include/diffbio/ops/alignment/smith_waterman.hpp, variants "linear" and "affine"
           (diffbio's model: the local score is a soft max over every cell's M state and the empty
           alignment; affine has three states M, X, Y and allows X<->Y turns at an open cost).
           The DP runs over the m + n - 1 anti-diagonals; each step updates the whole diagonal
           (a vector indexed by the row i) from the previous two, out-of-matrix cells hold -1e30
           (finite, so that no gradient is NaN). vmapped over the batch, jax.jit(loss) and
           jax.jit(jax.value_and_grad(loss, argnums=(S, open, extend))). Scores equal the C++
           linear / affine variants up to float32 rounding.

Timing: the first call (trace + XLA compile + one run) is timed separately and the compile time
is reported as its time minus the median run; then N timed calls (block_until_ready); output lines:
  compile <impl> <variant> <pass> seconds=<..>
  <impl> <variant> <pass> median_ms=<..> min_ms=<..> loss=<..> cells_per_s=<..>
with pass "forward" or "forward+backward". float32 (JAX's default) unless --x64.
"""

import statistics
import sys
import time

import numpy as np

from jax_common import run_cli, setup_jax, time_calls, value_and_grad_ready

CODE = {c: i for i, c in enumerate("ACGT")}
OPEN, EXTEND, TAU, MATCH, MISMATCH = 10.0, 1.0, 1.0, 2.0, -1.0
NEG = -1e30


def make_data(args):
    rng = np.random.default_rng(args.seed)
    letters = np.array(list("ACGT"))
    with open(args.out, "w") as f:
        for _ in range(args.pairs):
            q = "".join(letters[rng.integers(0, 4, size=args.length)])
            t = "".join(letters[rng.integers(0, 4, size=args.length)])
            f.write(f"{q} {t}\n")


def read_pairs(path):
    qs, ts = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            q, t = line.split()
            qs.append([CODE[c] for c in q])
            ts.append([CODE[c] for c in t])
    if not qs or len({len(q) for q in qs}) != 1 or len({len(t) for t in ts}) != 1:
        raise SystemExit(f"jax_sw: {path}: expected a non-empty batch of equal-length pairs")
    return np.asarray(qs, dtype=np.int32), np.asarray(ts, dtype=np.int32)


# ---- SMURF-style anti-diagonal smooth Smith-Waterman (diffbio's local model) -----------------------
def make_scan_score(jnp, lax, variant, m, n, tau):
    """Score of one pair of codes q [m], t [n] with matrix S [4, 4], open o, extend e."""

    from jax.scipy.special import logsumexp

    def smax(*c):  # tau * log sum_k exp(c_k / tau), elementwise over the diagonal, max-shifted
        mx = c[0]
        for v in c[1:]:
            mx = jnp.maximum(mx, v)
        mx = lax.stop_gradient(mx)  # the shift cancels in value and gradient
        total = jnp.exp((c[0] - mx) / tau)
        for v in c[1:]:
            total = total + jnp.exp((v - mx) / tau)
        return mx + tau * jnp.log(total)

    def shift(v):  # v[i - 1] at index i, NEG at i = 0
        return jnp.concatenate([jnp.full((1,), NEG, v.dtype), v[:-1]])

    # The DP in anti-diagonal layout (static index arrays): step d = i + j (2..m+n) updates the cells
    # (i, d - i) of the diagonal, stored at index i (0..m); row 0 and cells off the matrix are
    # masked. Cell scores are gathered into this layout once, before the scan (as SMURF does).
    d_all = np.arange(2, m + n + 1)[:, None]
    i_all = np.arange(m + 1)[None, :]
    j_all = d_all - i_all
    valid_np = (i_all >= 1) & (j_all >= 1) & (j_all <= n)
    qi = np.clip(i_all - 1, 0, m - 1) + 0 * d_all
    tj = np.clip(j_all - 1, 0, n - 1)

    def score(S, o, e, q, t):
        valid = jnp.asarray(valid_np)
        s_diag = jnp.where(valid, S[q[qi], t[tj]], NEG)  # [m + n - 1, m + 1]
        dtype = s_diag.dtype
        neg = jnp.full((m + 1,), NEG, dtype)

        if variant == "linear":
            # M_ij = s_ij + smax(0, P_{i-1,j-1});  P_ij = smax(M_ij, P_{i-1,j} - e, P_{i,j-1} - e)
            def step(carry, x):
                p1, p2, acc = carry  # P on diagonals d-1, d-2; running log-sum-exp of M / tau
                sd, valid = x
                mm = jnp.where(valid, sd + smax(jnp.zeros_like(sd), shift(p2)), NEG)
                p = jnp.where(valid, smax(mm, shift(p1) - e, p1 - e), NEG)
                acc = jnp.logaddexp(acc, logsumexp(mm / tau))
                return (p, p1, acc), None

            init = (neg, neg, jnp.zeros((), dtype))  # acc starts with the empty alignment, 0 / tau
        else:
            # M_ij = s_ij + smax(0, M, X, Y at (i-1, j-1))
            # X_ij = smax(M - o, X - e, Y - o at (i-1, j));  Y_ij = smax(M - o, Y - e, X - o at (i, j-1))
            def step(carry, x):
                m1, x1, y1, m2, x2, y2, acc = carry
                sd, valid = x
                mm = sd + smax(jnp.zeros_like(sd), shift(m2), shift(x2), shift(y2))
                xx = smax(shift(m1) - o, shift(x1) - e, shift(y1) - o)
                yy = smax(m1 - o, y1 - e, x1 - o)
                mm, xx, yy = (jnp.where(valid, v, NEG) for v in (mm, xx, yy))
                acc = jnp.logaddexp(acc, logsumexp(mm / tau))
                return (mm, xx, yy, m1, x1, y1, acc), None

            init = (neg, neg, neg, neg, neg, neg, jnp.zeros((), dtype))
        carry, _ = lax.scan(step, init, (s_diag, valid))
        return tau * carry[-1]

    return score


def timed(fn, reps):
    t0 = time.perf_counter()
    fn()  # trace + compile + one run
    first_s = time.perf_counter() - t0
    times, value = time_calls(fn, reps)
    median = statistics.median(times)
    return max(0.0, first_s - median * 1e-3), median, min(times), value


def report(impl, variant, name, res, cells, grads=None):
    compile_s, med, mn, value = res
    extra = ""
    if grads is not None:  # (dS summed, d open, d extend) in diffbio's convention (penalties subtracted)
        extra = f" dS_sum={grads[0]:.9g} dopen={grads[1]:.9g} dextend={grads[2]:.9g}"
    print(f"compile {impl} {variant} {name} seconds={compile_s:.3f}", flush=True)
    print(f"{impl} {variant} {name} median_ms={med:.4f} min_ms={mn:.4f} loss={float(value):.9g} "
          f"cells_per_s={cells / (med * 1e-3):.4g}{extra}", flush=True)


def bench(args):
    jax, jnp, dtype = setup_jax(args.x64)
    from jax import lax

    q_np, t_np = read_pairs(args.data)
    N, m = q_np.shape
    n = t_np.shape[1]
    cells = N * m * n
    q, t = jnp.asarray(q_np), jnp.asarray(t_np)
    S0 = (jnp.eye(4, dtype=dtype) * (MATCH - MISMATCH) + MISMATCH).astype(dtype)
    impls = args.impl.split(",")
    print(f"pairs={N} m={m} n={n} dtype={jnp.dtype(dtype).name} devices={jax.devices()} jax={jax.__version__}",
          flush=True)

    if "diffbio" in impls:
        from flax import nnx
        from diffbio.operators.alignment.smith_waterman import SmithWatermanConfig, SmoothSmithWaterman
        from diffbio.operators.alignment.scoring import create_dna_scoring_matrix

        op = SmoothSmithWaterman(
            SmithWatermanConfig(temperature=TAU, gap_open=-OPEN, gap_extend=-EXTEND),
            scoring_matrix=create_dna_scoring_matrix(match=MATCH, mismatch=MISMATCH).astype(dtype),
            rngs=nnx.Rngs(0),
        )
        x = jax.nn.one_hot(q, 4, dtype=dtype)
        y = jax.nn.one_hot(t, 4, dtype=dtype)

        def loss_fn(model, x, y):
            return jnp.sum(jax.vmap(lambda a, b: model.align(a, b).score)(x, y))

        fwd = nnx.jit(loss_fn)
        vag = nnx.jit(nnx.value_and_grad(loss_fn))

        def run_fwd():
            return fwd(op, x, y).block_until_ready()

        def run_vag():
            return value_and_grad_ready(vag, op, x, y)

        report("diffbio", "compat", "forward", timed(run_fwd, args.reps), cells)
        res = timed(run_vag, args.reps)
        _, g = vag(op, x, y)
        # DiffBio adds g_o, g_e < 0: d/d(open) in diffbio's convention (open = -g_o) is -d/d(g_o).
        dg = (float(jnp.sum(g["scoring_matrix"][...])), -float(g["gap_open"][...]), -float(g["gap_extend"][...]))
        report("diffbio", "compat", "forward+backward", res, cells, dg)

    if "scan" in impls:
        for variant in ("linear", "affine"):
            score = make_scan_score(jnp, lax, variant, m, n, TAU)

            def loss_fn(S, o, e, q, t, score=score):
                return jnp.sum(jax.vmap(score, in_axes=(None, None, None, 0, 0))(S, o, e, q, t))

            fwd = jax.jit(loss_fn)
            vag = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1, 2)))
            o, e = jnp.asarray(OPEN, dtype), jnp.asarray(EXTEND, dtype)

            def run_fwd(fwd=fwd, o=o, e=e):
                return fwd(S0, o, e, q, t).block_until_ready()

            def run_vag(vag=vag, o=o, e=e):
                return value_and_grad_ready(vag, S0, o, e, q, t)

            report("scan", variant, "forward", timed(run_fwd, args.reps), cells)
            res = timed(run_vag, args.reps)
            _, g = vag(S0, o, e, q, t)
            dg = (float(jnp.sum(g[0])), float(g[1]), float(g[2]))
            report("scan", variant, "forward+backward", res, cells, dg)


def main():
    return run_cli(__doc__, make_data, bench,
                   [("--out", {"required": True}), ("--pairs", {"type": int, "default": 1024}),
                    ("--length", {"type": int, "default": 150}), ("--seed", {"type": int, "default": 11})],
                   [("--data", {"required": True}), ("--reps", {"type": int, "default": 10}),
                    ("--impl", {"default": "diffbio,scan"}), ("--x64", {"action": "store_true"})])


if __name__ == "__main__":
    sys.exit(main())
