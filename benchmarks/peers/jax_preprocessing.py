"""JAX side of benchmarks/peers/jax_preprocessing.sh: DiffBio's (PyPI `diffbio`) preprocessing
pipeline, forward and forward+backward, on the same reads as bench_pipeline_fastq.

  python jax_preprocessing.py make-data --out FILE.fq [--reads N] [--length L] [--seed S]
  python jax_preprocessing.py bench --data FILE.fq [--reps N] [--x64] [--stages LIST]

make-data writes the batch as FASTQ (Phred+33): uniform random bases, 30% of the reads with an
adapter read-through (AGATCGGAAGAG... from a random insert length in [60, L)), quality
35 − 15·pos/L + N(0, 5²) rounded and clipped to [2, 41] (integers, so the FASTQ carries them
exactly). bench reads that file back, so both sides see the same batch.

Pipeline: PreprocessingPipelineConfig(read_length=150, quality_threshold=20,
adapter_sequence="AGATCGGAAGAG", adapter_match_threshold=0.8, adapter_temperature=1,
duplicate_similarity_threshold=0.95, error_correction_window=11, error_correction_hidden_dim=64,
the stages of --stages enabled: a comma-separated subset of adapter, duplicates,
error_correction, or "none" (default: all three; the quality filter always runs), as
bench_pipeline_fastq --stages), nnx.Rngs(42). Loss (same as bench_pipeline_fastq.cpp):
  loss = 1/(N·L) · Σ_i read_weights[i] · Σ_{l,k} (k+1) · preprocessed_reads[i,l,k]
forward = nnx.jit(loss); forward+backward = nnx.jit(nnx.value_and_grad(loss)) w.r.t. every
nnx.Param of the pipeline. The first call (trace + XLA compile) is timed separately; then each is
run N times (default 20) with block_until_ready and the median is printed:
  compile_<variant> seconds=<..>
  <variant> median_ms=<..> min_ms=<..> loss=<..>
float32 (JAX's default) unless --x64 (float64, as diffbio's C++ side computes).
"""

import statistics
import sys
import time

import numpy as np

from jax_common import run_cli, setup_jax, time_calls, value_and_grad_ready

ADAPTER_READTHROUGH = "AGATCGGAAGAGCGGTTCAGCAGGAATGCCGAGA"


def make_data(args):
    rng = np.random.default_rng(args.seed)
    length = args.length
    bases = np.array(list("ACGT"))
    with open(args.out, "w") as f:
        for r in range(args.reads):
            seq = bases[rng.integers(0, 4, size=length)]
            if rng.random() < 0.3:
                ins = int(rng.integers(60, length))
                for k in range(ins, length):
                    seq[k] = ADAPTER_READTHROUGH[(k - ins) % len(ADAPTER_READTHROUGH)]
            pos = np.arange(length)
            q = 35.0 - 15.0 * pos / length + rng.normal(0.0, 5.0, size=length)
            q = np.clip(np.rint(q), 2, 41).astype(int)
            f.write(f"@r{r}\n{''.join(seq)}\n+\n{''.join(chr(33 + v) for v in q)}\n")


def read_fastq(path):
    with open(path) as f:
        lines = f.read().split("\n")
    seqs, quals = lines[1::4], lines[3::4]
    n = min(len(seqs), len(quals))
    seqs, quals = seqs[:n], quals[:n]
    length = len(seqs[0])
    lookup = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate("ACGT"):
        lookup[ord(c)] = i
    idx = lookup[np.frombuffer("".join(seqs).encode(), dtype=np.uint8)].reshape(n, length)
    reads = np.zeros((n, length, 4), dtype=np.float64)
    known = idx >= 0
    reads[known] = np.eye(4)[idx[known]]
    reads[~known] = 0.25  # N
    quality = (np.frombuffer("".join(quals).encode(), dtype=np.uint8).reshape(n, length) - 33).astype(np.float64)
    return reads, quality


def bench(args):
    jax, jnp, dtype = setup_jax(args.x64)
    from flax import nnx
    from diffbio.pipelines.preprocessing import PreprocessingPipeline, PreprocessingPipelineConfig

    stages = {x for x in args.stages.split(",") if x and x != "none"}
    unknown = stages - {"adapter", "duplicates", "error_correction"}
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)} (adapter, duplicates, error_correction, none)")
    reads_np, quality_np = read_fastq(args.data)
    data = {"reads": jnp.asarray(reads_np, dtype=dtype), "quality": jnp.asarray(quality_np, dtype=dtype)}
    n, length = quality_np.shape

    config = PreprocessingPipelineConfig(
        read_length=150,
        quality_threshold=20.0,
        adapter_sequence="AGATCGGAAGAG",
        adapter_match_threshold=0.8,
        adapter_temperature=1.0,
        duplicate_similarity_threshold=0.95,
        error_correction_window=11,
        error_correction_hidden_dim=64,
        enable_adapter_removal="adapter" in stages,
        enable_duplicate_weighting="duplicates" in stages,
        enable_error_correction="error_correction" in stages,
    )
    pipeline = PreprocessingPipeline(config, rngs=nnx.Rngs(42))
    coef = jnp.arange(1, 5, dtype=dtype)

    def loss_fn(model, batch):
        out, _, _ = model.apply(batch, {}, None)
        per_read = jnp.einsum("nlk,k->n", out["preprocessed_reads"], coef)
        return jnp.sum(out["read_weights"] * per_read) / (n * length)

    forward = nnx.jit(loss_fn)
    grad_fn = nnx.jit(nnx.value_and_grad(loss_fn))  # w.r.t. every nnx.Param

    def run_forward():
        return forward(pipeline, data).block_until_ready()

    def run_gradient():
        return value_and_grad_ready(grad_fn, pipeline, data)

    num_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nnx.state(pipeline, nnx.Param)))
    print(f"reads={n} length={length} stages={args.stages} dtype={jnp.dtype(dtype).name} params={num_params} "
          f"devices={jax.devices()} jax={jax.__version__}", flush=True)
    for name, fn in (("forward", run_forward), ("forward+backward", run_gradient)):
        t0 = time.perf_counter()
        fn()
        print(f"compile_{name} seconds={time.perf_counter() - t0:.3f}", flush=True)
        fn()  # one more warm-up call after compilation
        times, value = time_calls(fn, args.reps)
        print(f"{name} median_ms={statistics.median(times):.4f} min_ms={min(times):.4f} loss={float(value):.9g}",
              flush=True)


def main():
    return run_cli(__doc__, make_data, bench,
                   [("--out", {"required": True}), ("--reads", {"type": int, "default": 1000}),
                    ("--length", {"type": int, "default": 150}), ("--seed", {"type": int, "default": 7})],
                   [("--data", {"required": True}), ("--reps", {"type": int, "default": 20}),
                    ("--x64", {"action": "store_true"}),
                    ("--stages", {"default": "adapter,duplicates,error_correction"})])


if __name__ == "__main__":
    sys.exit(main())
