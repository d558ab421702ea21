#!/usr/bin/env bash
# k-means speed (issue 6): one hard Lloyd iteration and one soft k-means step (forward, and
# forward+backward) of diffbio, next to scikit-learn's Lloyd iteration on the same data, in one
# run; prints s/iteration, points/s and the ratios the issue's goals name.
#
#   benchmarks/peers/kmeans_speed.sh
#
# Environment (all optional):
#   SHAPES       "<n>x<F>x<K> ..." (default "100000x50x20 1000000x32x256")
#   REPS         timed repetitions per entry after one warm-up call (default 5; medians reported)
#   THREADS      threads of the parallel rows (default 2)
#   TAPE_MAX_GB  memory allowed to the tape entries (default: half of MemAvailable; they need about
#                40 bytes per entry of r, ~10 GB for 10^6 x 256; skipped above)
#   CXX, CXXFLAGS  compiler and extra flags for our side (default g++; -O3 -march=native always)
#   OPENBLAS_CORETYPE  passed to OpenBLAS; when unset and OpenBLAS reports its generic "Prescott"
#                kernels (this OpenBLAS does not know the CPU), the script sets SkylakeX on an
#                AVX-512 CPU and Haswell on an AVX2 one, so that scikit-learn gets fast GEMMs
#   KEEP=1       keep the data and raw outputs
# Requirements: Debian's python3-sklearn and libopenblas0-pthread (installed with apt-get when
# missing and the script runs as root), g++ with OpenMP, Eigen (libeigen3-dev), taskset.
#
# Data (benchmarks/peers/kmeans_speed.py make-data, seed 7): Gaussian blobs, n points in F
# dimensions around K centres, float64, and K distinct data points as initial centroids; both
# sides read the same file.
# scikit-learn (/usr/bin/python3, OpenBLAS: numpy's BLAS is forced to OpenBLAS for this run with
# LD_LIBRARY_PATH, never through the system's alternatives; the table's header says which BLAS
# threadpoolctl saw): KMeans(init=centroids, n_init=1, max_iter=1, algorithm="lloyd", tol=0).fit
# — its whole fit, nothing subtracted (validation, copy and centring of x, one Lloyd iteration,
# the final relabelling, the inertia). One thread: OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1,
# pinned to CPU 0; the THREADS row: OMP_NUM_THREADS=THREADS (its Lloyd loop is OpenMP) on CPUs
# 0..THREADS-1.
# diffbio (benchmarks/peers/kmeans_speed.cpp, g++ -O3 -march=native), exec::Cpu pinned to CPU 0
# and exec::CpuParallel{THREADS} on CPUs 0..THREADS-1, τ = F:
#   lloyd_max_iter_1    ops::lloyd(max_iter = 1, tol = 0): the same work as scikit-learn's fit;
#                       "our hard iteration" of the goals. Its labels are compared with
#                       scikit-learn's (column sk_labels_differ) and its inertia printed next to it
#   hard_assign         one labelling pass alone (half of lloyd_max_iter_1's GEMM work)
#   soft_fwd_f64/_f32   ops::soft_assign (a fresh n x K output each call)
#   soft_fwd_*_into     ops::soft_assign_into (the output buffer kept across calls)
#   soft_fwdbwd_tape    constant points, Var centroids and τ on a rewound tape: soft_assign, a loss
#                       Σ w r (one Tape::weighted_sum node), Tape::backward
#   soft_fwdbwd_tape_into  the same with soft_assign_into (the n x K Var handles in a buffer kept
#                       across steps, as a training loop keeps it)
#   soft_fwdbwd_node    the fused node's forward and backward kernels without the tape
# Columns: median_s (s per call), points/s, sklearn/ours (> 1: diffbio faster; against
# scikit-learn at the same thread count), x_lloyd (our time over lloyd_max_iter_1's, the goals:
# lloyd vs scikit-learn >= 1, soft forward <= 1.5, forward+backward <= 3), x_pass (over one
# labelling pass, hard_assign). Timings on a shared machine are noisy: the load average before and
# after is printed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
shapes="${SHAPES:-100000x50x20 1000000x32x256}"
reps="${REPS:-5}"
threads="${THREADS:-2}"
py=/usr/bin/python3
helper="$repo/benchmarks/peers/kmeans_speed.py"
openblas_dir=/usr/lib/x86_64-linux-gnu/openblas-pthread

# ---- peers -----------------------------------------------------------------------------------
missing=()
"$py" -c "import sklearn" >/dev/null 2>&1 || missing+=(python3-sklearn)
[[ -d "$openblas_dir" ]] || missing+=(libopenblas0-pthread)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "kmeans_speed: missing ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "kmeans_speed: apt-get install ${missing[*]}" >&2
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for t in taskset "${CXX:-g++}"; do
  command -v "$t" >/dev/null 2>&1 || { echo "kmeans_speed: $t not found" >&2; exit 1; }
done

# numpy / scipy (scikit-learn's GEMM goes through scipy's BLAS) load libblas.so.3: OpenBLAS's
# directory first on the library path makes that OpenBLAS for these runs only.
sk_env=(LD_LIBRARY_PATH="$openblas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
blas_arch() {
  env "${sk_env[@]}" OPENBLAS_NUM_THREADS=1 "$py" -c '
from threadpoolctl import threadpool_info
import numpy, scipy.linalg
b = [i for i in threadpool_info() if i.get("user_api") == "blas"]
print(" ".join("{}:{}".format(i.get("internal_api"), i.get("architecture", "-")) for i in b) or "none")'
}
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && [[ "$(blas_arch)" == *"openblas:Prescott"* ]]; then
  if grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi
arch="$(blas_arch)"
if [[ "$arch" != *openblas* ]]; then
  echo "kmeans_speed: numpy does not use OpenBLAS ($arch): the comparison would be unfair" >&2
  exit 1
fi

# ---- diffbio ---------------------------------------------------------------------------------
work="$(mktemp -d)"
if [[ "${KEEP:-0}" == 1 ]]; then
  echo "kmeans_speed: data and raw outputs kept in $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi
eigen_flags="$(pkg-config --cflags eigen3 2>/dev/null || echo -isystem /usr/include/eigen3)"
# shellcheck disable=SC2086  # flag lists
"${CXX:-g++}" -std=c++20 -O3 -DNDEBUG -march=native -fopenmp ${CXXFLAGS:-} -I"$repo/include" $eigen_flags \
  "$repo/benchmarks/peers/kmeans_speed.cpp" -o "$work/kmeans_speed" 2>"$work/build.log" ||
  { cat "$work/build.log" >&2; exit 1; }

tape_max="${TAPE_MAX_GB:-$(awk '/^MemAvailable:/ { printf "%.1f", $2 / 1e6 / 2 }' /proc/meminfo)}"
last_cpu=$((threads - 1))
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# field <file> <entry> <key>: the value of key= on the entry's line
field() { awk -v e="$2" -v k="$3" '$1 == e { for (i = 2; i <= NF; ++i) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1"; }

rows=()
for spec in $shapes; do
  IFS=x read -r n f k <<<"$spec"
  data="$work/data_$spec.bin"
  "$py" "$helper" make-data --out "$data" --n "$n" --features "$f" --clusters "$k" --seed 7
  for t in 1 "$threads"; do
    cpus=0
    [[ $t != 1 ]] && cpus="0-$last_cpu"
    echo "kmeans_speed: $spec: scikit-learn, $t thread(s)" >&2
    env "${sk_env[@]}" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$t" taskset -c "$cpus" \
      "$py" "$helper" bench --data "$data" --reps "$reps" --labels-out "$work/sk_labels_${spec}_$t" >"$work/sk_${spec}_$t"
    echo "kmeans_speed: $spec: diffbio, $t thread(s)" >&2
    taskset -c "$cpus" "$work/kmeans_speed" --data "$data" --reps "$reps" --threads "$t" \
      --labels "$work/sk_labels_${spec}_$t" --tape-max-gb "$tape_max" >"$work/ours_${spec}_$t"
    sk_s=$(field "$work/sk_${spec}_$t" sklearn median_s)
    sk_inertia=$(field "$work/sk_${spec}_$t" sklearn inertia)
    lloyd_s=$(field "$work/ours_${spec}_$t" lloyd_max_iter_1 median_s)
    pass_s=$(field "$work/ours_${spec}_$t" hard_assign median_s)
    rows+=("$(awk -v s="$spec" -v t="$t" -v m="$sk_s" -v n="$n" -v in_="$sk_inertia" 'BEGIN {
      printf "%-15s %3s %-18s %10.4f %11.4g %13s %8s %7s  inertia=%s", s, t, "sklearn_fit_iter1", m, n / m, "1.00", "-", "-", in_ }')")
    for entry in lloyd_max_iter_1 hard_assign soft_fwd_f64 soft_fwd_f64_into soft_fwd_f32 soft_fwd_f32_into soft_fwdbwd_tape soft_fwdbwd_tape_into soft_fwdbwd_node; do
      o=$(field "$work/ours_${spec}_$t" "$entry" median_s)
      if [[ -z "$o" ]]; then
        rows+=("$(printf '%-15s %3s %-18s %s' "$spec" "$t" "$entry" "skipped ($(grep "^$entry " "$work/ours_${spec}_$t" | cut -d' ' -f3-))")")
        continue
      fi
      extra=""
      [[ $entry == lloyd_max_iter_1 ]] &&
        extra="inertia=$(field "$work/ours_${spec}_$t" "$entry" check) sk_labels_differ=$(field "$work/ours_${spec}_$t" "$entry" labels_differing_from_sklearn)"
      rows+=("$(awk -v s="$spec" -v t="$t" -v e="$entry" -v o="$o" -v m="$sk_s" -v l="$lloyd_s" -v p="$pass_s" -v n="$n" -v x="$extra" 'BEGIN {
        printf "%-15s %3s %-18s %10.4f %11.4g %13.2f %8.2f %7.2f  %s", s, t, e, o, n / o, m / o, o / l, o / p, x }')")
    done
  done
done

echo "scikit-learn $("$py" -c 'import sklearn; print(sklearn.__version__)') (numpy BLAS: $arch${OPENBLAS_CORETYPE:+, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE}) vs diffbio (g++ -O3 -march=native)"
echo "$reps timed runs each after a warm-up, medians; tau = F; threads 1: sklearn OMP/OpenBLAS 1 thread vs exec::Cpu (CPU 0); threads $threads: sklearn OMP_NUM_THREADS=$threads vs exec::CpuParallel{$threads}"
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the times)"
echo "goals (issue 6): sklearn/ours of lloyd_max_iter_1 >= 1; x_lloyd of soft forward <= 1.5 and of forward+backward <= 3"
printf '%-15s %3s %-18s %10s %11s %13s %8s %7s\n' shape thr entry median_s points/s sklearn/ours x_lloyd x_pass
printf '%s\n' "${rows[@]}"
