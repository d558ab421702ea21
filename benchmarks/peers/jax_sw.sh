#!/usr/bin/env bash
# diffbio's SmithWaterman against smooth Smith-Waterman in JAX: (a) DiffBio's SmoothSmithWaterman
# (PyPI `diffbio`, on `jax` and `flax`; jit + vmap over the batch) and (b) a SMURF-style
# anti-diagonal lax.scan written in benchmarks/peers/jax_sw.py (jit + vmap), on the same batch of
# random DNA pairs; forward and forward+backward (the loss Σ scores and its gradient w.r.t. the
# substitution matrix and the gap parameters); median times and the ratio JAX/diffbio
# (> 1: diffbio is faster). Optional: not part of the test command (scripts/test.sh); needs network
# access the first time (pip).
#
#   benchmarks/peers/jax_sw.sh
#
# Environment (all optional):
#   BUILD_DIR  build directory for bench_sw_peer (default <repo>/build-bench-sw; configured as
#              Release with -DDIFFBIO_NATIVE=ON (-march=native, as XLA compiles for the host CPU)
#              when it has no CMakeCache.txt)
#   VENV       Python virtual environment (default ${XDG_CACHE_HOME:-$HOME/.cache}/diffbio-peers/jax-venv,
#              shared with jax_preprocessing.sh); created with `python3 -m venv` + `pip install
#              diffbio jax flax` (CPU jax) when it cannot import them, reused otherwise
#   BATCHES    "<pairs>x<length> ..." (default "1024x150 16x1000"): each batch is that many pairs of
#              two random sequences of that length. 16 (not 64) long pairs: DiffBio's operator scans
#              the DP cell by cell (1e6 sequential steps for 1000x1000 whatever the batch), and its
#              forward+backward on 16 such pairs takes ~50 s per call on one core
#   REPS       timed repetitions per entry, after the first (compiling / warm-up) call (default 3)
#   THREADS    threads of the parallel rows (default 2)
#   JOBS       build parallelism (default 1)
#   X64=1      run JAX in float64 (JAX's default is float32)
#   KEEP=1     keep the raw outputs of both sides (every entry point's time, the gradients)
# Requirements: python3 with venv and pip, cmake and the diffbio build dependencies (Google
# Benchmark), taskset (util-linux), bc.
#
# Config on both sides: DNA match 2 / mismatch −1, local, τ = 1, gap open 10 / extend 1 in
# parasail's convention. Variants:
#   compat  DiffBio's model (linear gap g = open + extend = 11 per position, restart 0 in every
#           cell, hard max over the DP matrix, soft max with 0; spec §3.2): DiffBio's own operator
#           vs SmithWatermanConfig{gaps = Linear, diffbio_compat = true}
#   linear  diffbio's local linear model (1 per gap position; soft max over all end cells): the JAX
#           anti-diagonal scan vs SmithWatermanConfig{gaps = Linear}
#   affine  diffbio's local affine (Gotoh) model: the JAX scan vs SmithWatermanConfig{} (default)
# Both sides print the loss (and, for forward+backward, Σ∂/∂S, ∂/∂open, ∂/∂extend) so that a reader
# sees that they compute the same numbers (up to float32 rounding on the JAX side).
# diffbio entry points (bench_sw_peer): forward = the faster of apply() with Binder<float> and
# Binder<double>; forward+backward = the faster of the tape (Binder<Var> on a rewound tape, the
# fused node's backward, accumulate_grad) and SmithWaterman::value_and_grad<float/double> when the
# header has it; the column "diffbio_entry" names the one taken, every entry's time is in the
# raw output kept with KEEP=1.
# Thread counts match: row "1": JAX pinned to one CPU (taskset -c 0, XLA_FLAGS
# "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1") vs exec::Cpu (also pinned to
# CPU 0); row "$THREADS": JAX on CPUs 0..THREADS-1 (its default thread pool) vs
# exec::CpuParallel{THREADS}. JAX compile (trace + XLA) time is excluded from the medians and
# printed separately (jit_s).
set -euo pipefail

peer=jax_sw
# shellcheck source=jax_common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/jax_common.sh"
build="${BUILD_DIR:-$repo/build-bench-sw}"
batches="${BATCHES:-1024x150 16x1000}"
reps="${REPS:-3}"
threads="${THREADS:-2}"
jobs="${JOBS:-1}"
script="$repo/benchmarks/peers/jax_sw.py"

# ---- DiffBio (JAX) environment ------------------------------------------------------------
jax_env diffbio.operators.alignment.smith_waterman

# ---- diffbio (C++) ------------------------------------------------------------------------
build_bench "$build" bench_sw_peer "$jobs" -DDIFFBIO_NATIVE=ON

make_work "${KEEP:-0}"

# field <file> <col1> <col2> <col3> <key>: value of key= on the line whose first fields match
field() {
  awk -v a="$2" -v b="$3" -v c="$4" -v k="$5" \
    '$1 == a && $2 == b && (c == "" || $3 == c) { for (i = 3; i <= NF; ++i) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1"
}
run_ours() { # <out> <cpus> <data> <threads>
  if ! taskset -c "$2" "$bench" --data "$3" --reps "$reps" --threads "$4" >"$1" 2>"$1.err"; then
    cat "$1.err" >&2; exit 1
  fi
}
# best <file> <variant> <entries...>: "<median_ms> <entry> <loss>" of the fastest entry present
best() {
  local f=$1 v=$2; shift 2
  local e ms out=""
  for e in "$@"; do
    ms=$(field "$f" "$v" "$e" "" median_ms)
    [[ -z "$ms" ]] && continue
    if [[ -z "$out" ]] || (( $(echo "$ms < ${out%% *}" | bc -l) )); then
      out="$ms $e $(field "$f" "$v" "$e" "" loss)"
    fi
  done
  echo "$out"
}

load_before=$(load_average)
rows=()
for spec in $batches; do
  pairs=${spec%x*}
  len=${spec#*x}
  data="$work/pairs_$spec.txt"
  "$py" "$script" make-data --out "$data" --pairs "$pairs" --length "$len" --seed 11
  cells=$((pairs * len * len))
  run_sides "$spec" "$spec" "$data" "$threads"
  for t in 1 "$threads"; do
    for v in compat linear affine; do
      impl=scan
      [[ $v == compat ]] && impl=diffbio
      for pass in forward forward+backward; do
        j=$(field "$work/jax_${t}_$spec" "$impl" "$v" "$pass" median_ms)
        jl=$(field "$work/jax_${t}_$spec" "$impl" "$v" "$pass" loss)
        c=$(awk -v i="$impl" -v v="$v" -v p="$pass" '$1 == "compile" && $2 == i && $3 == v && $4 == p { sub("seconds=", "", $5); print $5 }' "$work/jax_${t}_$spec")
        if [[ $pass == forward ]]; then
          read -r o entry ol <<<"$(best "$work/ours_${t}_$spec" "$v" forward_f32 forward_f64)"
        else
          read -r o entry ol <<<"$(best "$work/ours_${t}_$spec" "$v" tape vag_f32 vag_f64)"
        fi
        rows+=("$(printf '%-9s %-7s %-16s %-3s %-8s %10.2f %11.2f %-12s %8.2f %9.3g %7.2f %13.7g %13.7g' \
          "$spec" "$v" "$pass" "$t" "$impl" "$j" "$o" "$entry" "$(echo "$j / $o" | bc -l)" \
          "$(echo "$cells / ($o / 1000)" | bc -l)" "$c" "$jl" "$ol")")
      done
    done
  done
done

echo "JAX ($jax_dtype): $versions; diffbio C++ (-march=native); $reps timed runs each, medians in ms"
echo "batches: <pairs>x<length> of random DNA pairs; local, tau = 1, DNA 2/-1, gap open 10 / extend 1"
echo "JAX impl: diffbio = DiffBio's SmoothSmithWaterman (compat model); scan = anti-diagonal lax.scan (jax_sw.py)"
print_load "$load_before"
echo "ratio = JAX/diffbio of the medians (> 1: diffbio faster); cells/s of diffbio; jit_s = JAX trace + compile"
printf '%-9s %-7s %-16s %-3s %-8s %10s %11s %-12s %8s %9s %7s %13s %13s\n' batch variant pass thr JAX JAX_ms diffbio_ms diffbio_entry ratio cells/s jit_s JAX_loss diffbio_loss
printf '%s\n' "${rows[@]}"
