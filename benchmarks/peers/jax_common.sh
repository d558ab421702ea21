# Shared by benchmarks/peers/jax_preprocessing.sh and jax_sw.sh (sourced, not run): the DiffBio
# (JAX) virtual environment, the build of the diffbio (C++) side, the work directory and the runs of
# both sides. The sourcing script sets `peer` (its name, for messages) first; functions that run the
# JAX side read `py`, `script`, `reps` and `jax_args` (extra options of `bench`, may be empty), and
# run_sides calls the script's own run_ours.
#
# Sets on sourcing: repo (the repository root), venv (VENV or the default below), x64 (the JAX
# option array for X64=1) and jax_dtype (float32, or float64 with X64=1).
# shellcheck shell=bash disable=SC2034,SC2154 # variables shared with the sourcing script

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/diffbio-peers/jax-venv}"
x64=()
jax_dtype=float32
if [[ "${X64:-0}" == 1 ]]; then
  x64=(--x64)
  jax_dtype=float64
fi
jax_args=()

# jax_env <module>: make sure $venv can import jax, flax and <module> (else create it and pip install
# diffbio jax flax); sets py (its python) and versions (of diffbio, jax, jaxlib and flax).
jax_env() {
  if ! "$venv/bin/python" -c "import jax, flax, $1" >/dev/null 2>&1; then
    echo "$peer: setting up $venv (pip install diffbio jax flax)" >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet diffbio jax flax
  fi
  py="$venv/bin/python"
  versions=$("$py" -c "import importlib.metadata as m; print(' '.join(p + ' ' + m.version(p) for p in ('diffbio', 'jax', 'jaxlib', 'flax')))")
}

# build_bench <build dir> <target> <jobs> [cmake options...]: configure <build dir> as Release with
# the options when it has no CMakeCache.txt, build the benchmark <target>; sets bench (its path).
build_bench() {
  local dir=$1 target=$2 jobs=$3; shift 3
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$repo" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  fi
  cmake --build "$dir" --target "$target" -j "$jobs" >/dev/null
  bench="$dir/benchmarks/$target"
}

# make_work [keep]: a fresh work directory in work, removed on exit unless keep is 1.
make_work() {
  work="$(mktemp -d)"
  if [[ "${1:-0}" == 1 ]]; then
    echo "$peer: raw outputs kept in $work" >&2
  else
    trap 'rm -rf "$work"' EXIT
  fi
}

# load_average: the first three fields of /proc/loadavg, or "?".
load_average() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }

# print_load <before>: the load-average line of the report.
print_load() {
  echo "load average before: $1, after: $(load_average) (other work on the machine skews the times)"
}

run_jax() { # <out> <cpus> <data> [env...]
  local out=$1 cpus=$2 data=$3; shift 3
  if ! env "$@" taskset -c "$cpus" "$py" "$script" bench --data "$data" --reps "$reps" "${jax_args[@]}" "${x64[@]}" \
    >"$out" 2>"$out.err"; then
    cat "$out.err" >&2; exit 1
  fi
}

# run_sides <label> <key> <data> <threads>: JAX pinned to CPU 0 with one thread, diffbio exec::Cpu,
# JAX on CPUs 0..threads-1, diffbio exec::CpuParallel{threads}, into $work/{jax,ours}_{1,threads}_<key>.
run_sides() {
  local label=$1 key=$2 data=$3 threads=$4
  local last_cpu=$((threads - 1))
  echo "$peer: $label: JAX 1 thread" >&2
  run_jax "$work/jax_1_$key" 0 "$data" XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  echo "$peer: $label: diffbio exec::Cpu" >&2
  run_ours "$work/ours_1_$key" 0 "$data" 1
  echo "$peer: $label: JAX $threads threads" >&2
  run_jax "$work/jax_${threads}_$key" "0-$last_cpu" "$data"
  echo "$peer: $label: diffbio exec::CpuParallel{$threads}" >&2
  run_ours "$work/ours_${threads}_$key" "0-$last_cpu" "$data" "$threads"
}
