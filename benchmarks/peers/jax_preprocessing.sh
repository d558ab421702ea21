#!/usr/bin/env bash
# diffbio's PreprocessingPipeline against the JAX library DiffBio (PyPI `diffbio`, on `jax` and
# `flax`): the same pipeline config, the same batch, the same loss; forward and forward+backward
# (gradient of every parameter) median times and the ratio JAX/diffbio (> 1: diffbio is faster).
# Optional: not part of the test command (scripts/test.sh); needs network access the first time.
#
#   benchmarks/peers/jax_preprocessing.sh
#
# Environment (all optional):
#   NATIVE     1 (default): build bench_pipeline_fastq with -DDIFFBIO_NATIVE=ON (-march=native, as
#              XLA JIT-compiles for the host CPU); 0: the default (baseline x86-64) flags
#   BUILD_DIR  build directory for bench_pipeline_fastq (default <repo>/build-bench-native, or
#              <repo>/build-bench with NATIVE=0; configured as Release when it has no CMakeCache.txt)
#   VENV       Python virtual environment for DiffBio (default
#              ${XDG_CACHE_HOME:-$HOME/.cache}/diffbio-peers/jax-venv, outside the repository);
#              created with `python3 -m venv` + `pip install diffbio jax flax` (CPU jax) when it
#              cannot import them, reused otherwise
#   READS      batch sizes, reads of 150 bp (default "100 1000")
#   REPS       timed repetitions per variant, after warm-up (default 10)
#   THREADS    threads of the parallel row (default 2)
#   JOBS       build parallelism (default 2)
#   X64=1      run JAX in float64 (JAX's default is float32)
#   FLOAT      diffbio's precision: 1 = float (Binder<float> forward, float GEMMs in the reverse
#              pass: PreprocessingPipelineConfig::float_gradient), 0 = double; default 1, or 0
#              with X64=1, so that both sides compute in the same precision
#   EC         1 (default): error correction on; 0: off (the seed walkthrough's config: adapter
#              removal and duplicate weighting on, error correction off)
#   STAGES     the optional stages on both sides, comma-separated from adapter, duplicates,
#              error_correction, or "none" (overrides EC; the quality filter always runs). One
#              stage at a time (e.g. STAGES=duplicates) times that stage plus the quality filter
# Requirements: python3 with venv and pip, cmake and the diffbio build dependencies, taskset
# (util-linux).
#
# What runs: benchmarks/peers/jax_preprocessing.py make-data writes each batch as FASTQ (seeded
# random bases, 30% adapter read-through, quality 35 − 15·pos/L + noise, integer Phred in [2, 41]);
# both sides read that file. Config on both sides: read_length 150, quality_threshold 20, adapter
# AGATCGGAAGAG, adapter_match_threshold 0.8, adapter_temperature 1,
# duplicate_similarity_threshold 0.95, error_correction_window 11, hidden 64, the stages of
# STAGES enabled (default: adapter removal, duplicate weighting and error correction). Loss on
# both sides:
#   loss = 1/(N·L) · Σ_i read_weights[i] · Σ_{l,k} (k+1) · preprocessed_reads[i,l,k]
# JAX: nnx.jit(loss) and nnx.jit(nnx.value_and_grad(loss)); compile time is excluded from the
# medians and printed separately. diffbio: bench_pipeline_fastq (Binder<float> forward, or
# Binder<double> with FLOAT=0; Binder<Var> on a rewound tape + backward + accumulate_grad).
# Thread counts match: row "1": JAX pinned to one CPU (taskset -c 0, Eigen multithreading off)
# vs exec::Cpu (also pinned to CPU 0); row "$THREADS": JAX on CPUs 0..THREADS-1 (its default
# thread pool) vs exec::CpuParallel{THREADS}.
# The two pipelines do not compute the same numbers (diffbio fixes documented DiffBio quirks:
# adapter trim position, error-correction renormalisation, ...), so the losses differ; both are
# printed so that a reader sees they are of the same order. The comparison is of cost only.
set -euo pipefail

peer=jax_preprocessing
# shellcheck source=jax_common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/jax_common.sh"
native="${NATIVE:-1}"
if [[ "$native" == 1 ]]; then
  build="${BUILD_DIR:-$repo/build-bench-native}"
else
  build="${BUILD_DIR:-$repo/build-bench}"
fi
if [[ "${X64:-0}" == 1 ]]; then
  use_float="${FLOAT:-0}"
else
  use_float="${FLOAT:-1}"
fi
if [[ -n "${STAGES:-}" ]]; then
  stages="$STAGES"
elif [[ "${EC:-1}" == 0 ]]; then
  stages="adapter,duplicates"
else
  stages="adapter,duplicates,error_correction"
fi
sizes="${READS:-100 1000}"
reps="${REPS:-10}"
threads="${THREADS:-2}"
jobs="${JOBS:-2}"
script="$repo/benchmarks/peers/jax_preprocessing.py"
jax_args=(--stages "$stages")

# ---- DiffBio (JAX) environment ------------------------------------------------------------
jax_env diffbio.pipelines.preprocessing

# ---- diffbio (C++) ------------------------------------------------------------------------
if [[ "$native" == 1 ]]; then
  # GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (a false positive in
  # the compiler's own intrinsics headers), which -Werror would turn into a build failure.
  build_bench "$build" bench_pipeline_fastq "$jobs" -DDIFFBIO_NATIVE=ON -DCMAKE_CXX_FLAGS="-Wno-maybe-uninitialized"
else
  build_bench "$build" bench_pipeline_fastq "$jobs"
fi

make_work 0

# field <file> <variant> <key>: value of key= on the line of that variant
field() { awk -v v="$2" -v k="$3" '$1 == v { for (i = 2; i <= NF; ++i) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1"; }
run_ours() { # <out> <cpus> <data> <threads>
  taskset -c "$2" "$bench" --data "$3" --reps "$reps" --threads "$4" --stages "$stages" --float "$use_float" >"$1"
}

load_before=$(load_average)
rows=()
for n in $sizes; do
  data="$work/reads_$n.fq"
  "$py" "$script" make-data --out "$data" --reads "$n" --length 150 --seed 7
  run_sides "$n reads" "$n" "$data" "$threads"
  for t in 1 "$threads"; do
    for v in forward forward+backward; do
      j=$(field "$work/jax_${t}_$n" "$v" median_ms)
      o=$(field "$work/ours_${t}_$n" "$v" median_ms)
      jm=$(field "$work/jax_${t}_$n" "$v" min_ms)
      om=$(field "$work/ours_${t}_$n" "$v" min_ms)
      c=$(field "$work/jax_${t}_$n" "compile_$v" seconds)
      rows+=("$(printf '%-6s %-17s %-3s %10.2f %11.2f %9.2f %9.2f %10.2f %12.6g %12.6g' "$n" "$v" "$t" "$j" "$o" \
        "$(echo "$j / $o" | bc -l)" "$(echo "$jm / $om" | bc -l)" "$c" \
        "$(field "$work/jax_${t}_$n" "$v" loss)" "$(field "$work/ours_${t}_$n" "$v" loss)")")
    done
  done
done

ours_dtype=double
[[ "$use_float" == 1 ]] && ours_dtype=float
flags="default flags"
[[ "$native" == 1 ]] && flags="-march=native"
echo "DiffBio (JAX, $jax_dtype): $versions; diffbio C++ ($ours_dtype, $flags); stages: quality filter + $stages"
echo "$reps timed runs each, medians in ms; 150 bp reads"
print_load "$load_before"
echo "ratio = JAX/diffbio of the medians (> 1: diffbio faster); ratio_min = the same of the fastest runs"
printf '%-6s %-17s %-3s %10s %11s %9s %9s %10s %12s %12s\n' reads variant thr JAX_ms diffbio_ms ratio ratio_min jax_jit_s JAX_loss diffbio_loss
printf '%s\n' "${rows[@]}"
