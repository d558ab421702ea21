#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with an NVIDIA GPU, the CUDA toolkit (nvcc) and a host
# C++ compiler, but possibly without Debian's -dev packages or network access.
#
#   scripts/gpu_check.sh prepare      on the build machine: copies Eigen's headers into .gpu/eigen3
#                                     (.gpu/ is git-ignored) so that they can travel with the tree
#   scripts/gpu_check.sh run [OUT]    on the GPU machine: compiles every tests/cuda/*.cu and
#                                     benchmarks/cuda/*.cu with nvcc for the GPU found there (in
#                                     parallel), runs each test (exit 0 = passed, 77 = skipped,
#                                     anything else = failed), then each benchmark with its default
#                                     sizes, and writes the whole log to OUT/gpu_check.log (OUT
#                                     defaults to .gpu/out). Exits non-zero when a test failed.
#
# Environment: CUDA_ARCH (default: from nvidia-smi's compute capability, else 90), JOBS (parallel
#   compiles, default nproc), TEST_TIMEOUT (seconds per test, default 300), BENCH_TIMEOUT (seconds
#   per benchmark, default 240), SKIP_BENCH=1 (tests only), EIGEN_DIR (default .gpu/eigen3, else
#   /usr/include/eigen3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
mode="${1:-}"

case "$mode" in
prepare)
  src=/usr/include/eigen3
  [[ -d "$src/Eigen" ]] || { echo "gpu_check: $src/Eigen not found (apt-get install libeigen3-dev)" >&2; exit 1; }
  rm -rf .gpu/eigen3
  mkdir -p .gpu
  cp -r "$src" .gpu/eigen3
  echo "gpu_check: Eigen headers copied to .gpu/eigen3 ($(du -sh .gpu/eigen3 | cut -f1)); carry .gpu/eigen3"
  exit 0
  ;;
run) ;;
*)
  echo "usage: scripts/gpu_check.sh prepare | run [OUT]" >&2
  exit 2
  ;;
esac

out="${2:-$repo/.gpu/out}"
mkdir -p "$out" .gpu/bin
log="$out/gpu_check.log"
: >"$log"
say() { printf '%s\n' "$*" | tee -a "$log"; }

command -v nvcc >/dev/null || { say "gpu_check: nvcc not found"; exit 1; }
eigen="${EIGEN_DIR:-}"
if [[ -z "$eigen" ]]; then
  if [[ -d .gpu/eigen3/Eigen ]]; then eigen=.gpu/eigen3; else eigen=/usr/include/eigen3; fi
fi
[[ -d "$eigen/Eigen" ]] || { say "gpu_check: Eigen headers not found at $eigen (run 'prepare' where they are)"; exit 1; }

arch="${CUDA_ARCH:-}"
if [[ -z "$arch" ]]; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)"
  arch="${cc:-90}"
fi
say "gpu_check: $(nvcc --version | tail -n 1); sm_$arch; Eigen at $eigen"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$log" || true

# Compile in parallel; each source's compiler output goes to .gpu/bin/<name>.build.log.
compile_one() {
  local src="$1" name
  name="$(basename "$src" .cu)"
  if nvcc -std=c++20 -O2 -arch="sm_$ARCH" -Iinclude -Itests/support -isystem "$EIGEN" \
      -Xcompiler=-fopenmp "$src" -o ".gpu/bin/$name" -lcublas >".gpu/bin/$name.build.log" 2>&1; then
    echo "built $name"
  else
    echo "BUILD FAILED $name (see below)"
  fi
}
export -f compile_one
export ARCH="$arch" EIGEN="$eigen"
t0=$(date +%s)
ls tests/cuda/*.cu benchmarks/cuda/*.cu | xargs -P "${JOBS:-$(nproc)}" -I{} bash -c 'compile_one {}' | tee -a "$log"
say "gpu_check: compiled in $(( $(date +%s) - t0 )) s"

failed=0
for f in .gpu/bin/*.build.log; do
  name="$(basename "$f" .build.log)"
  if [[ ! -x ".gpu/bin/$name" ]]; then
    say "---- build log of $name"
    tail -n 40 "$f" | tee -a "$log"
    failed=1
  fi
done

for src in tests/cuda/*.cu; do
  name="$(basename "$src" .cu)"
  [[ -x ".gpu/bin/$name" ]] || continue
  say "==== test $name"
  rc=0
  timeout "${TEST_TIMEOUT:-300}" ".gpu/bin/$name" >>"$log" 2>&1 || rc=$?
  case $rc in
  0) say "PASSED $name" ;;
  77) say "SKIPPED $name" ;;
  *) say "FAILED $name (exit $rc)"; failed=1 ;;
  esac
done

if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
  for src in benchmarks/cuda/*.cu; do
    name="$(basename "$src" .cu)"
    [[ -x ".gpu/bin/$name" ]] || continue
    say "==== benchmark $name"
    rc=0
    timeout "${BENCH_TIMEOUT:-240}" ".gpu/bin/$name" >>"$log" 2>&1 || rc=$?
    say "benchmark $name exit $rc"
  done
fi

say "gpu_check: $([[ $failed == 0 ]] && echo 'all built tests passed or skipped' || echo 'FAILURES above')"
exit "$failed"
