#!/usr/bin/env bash
# Configures diffbio (Release) into build/ and builds it. Shared by demo.sh and test.sh.
#
#   scripts/build.sh [cmake --build arguments, e.g. --target train_soft_threshold]
#
# Environment:
#   BUILD_DIR           build directory (default: <repo>/build)
#   DIFFBIO_CMAKE_ARGS  extra configure arguments, e.g. "-DDIFFBIO_ENABLE_CUDA=OFF"
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$repo/build}"
jobs="$(nproc 2>/dev/null || echo 2)"

read -r -a extra_cmake_args <<< "${DIFFBIO_CMAKE_ARGS:-}"

cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${extra_cmake_args[@]}"
cmake --build "$build_dir" -j"$jobs" "$@"
