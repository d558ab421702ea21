#!/usr/bin/env bash
# The main job: installs what is needed, builds and runs the preprocessing walkthrough (DiffBio's
# seed example: a four-stage differentiable pipeline whose quality threshold Adam learns from 35
# down to ~19.5), then the two-mode soft-threshold training example. Figures are written as PNG.
#
# Environment: BUILD_DIR (default <repo>/build), OUT_DIR (default <BUILD_DIR>/walkthrough).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$repo/build}"
out_dir="${OUT_DIR:-$build_dir/walkthrough}"
export BUILD_DIR="$build_dir"

bash "$repo/scripts/setup.sh" python3-matplotlib
bash "$repo/scripts/build.sh" --target preprocessing_walkthrough train_soft_threshold

echo "== preprocessing walkthrough =="
"$build_dir/examples/preprocessing_walkthrough" --out "$out_dir"
echo
echo "== soft threshold, forward and reverse mode =="
"$build_dir/examples/train_soft_threshold"
echo
echo "Figures (PNG) and tables (TSV) of the walkthrough are in $out_dir"
