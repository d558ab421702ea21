#!/usr/bin/env bash
# Installs what is needed, builds the soft-threshold example and runs it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$repo/build}"
export BUILD_DIR="$build_dir"

bash "$repo/scripts/setup.sh"
bash "$repo/scripts/build.sh" --target train_soft_threshold
"$build_dir/examples/train_soft_threshold"
