#!/usr/bin/env bash
# Installs what is needed, builds everything and runs the whole test suite with ctest.
# Fails when a test fails, and also when no test ran at all.
#
# Environment: BUILD_DIR (default <repo>/build), DIFFBIO_CMAKE_ARGS (see build.sh),
#              CTEST_JOBS (parallel ctest jobs, default 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$repo/build}"
export BUILD_DIR="$build_dir"

# Data and peer packages of the optional comparison tests (each such test skips with a message
# when its package is absent): htslib-test and seqprep-data (FASTQ/FASTA files the io tests compare
# against htslib and check by hand), libparasail-dev (Smith-Waterman parity), bowtie2-examples
# (lambda phage reads and reference), hmmer-examples (profile HMM), samtools, samtools-test and bwa
# (pileup parity with samtools mpileup), bcftools (reads back the VCF/BCF that VcfWriter writes),
# r-cran-seurat (count-matrix test data) and python3-sklearn (clustering metrics against
# scikit-learn).
bash "$repo/scripts/setup.sh" htslib-test seqprep-data libparasail-dev bowtie2-examples hmmer-examples \
  samtools samtools-test bwa bcftools r-cran-seurat python3-sklearn
bash "$repo/scripts/build.sh"

# How many tests are registered?
listed="$(ctest --test-dir "$build_dir" -N)"
total="$(printf '%s\n' "$listed" | sed -n 's/^Total Tests: *\([0-9][0-9]*\).*/\1/p' | tail -n 1)"
if [[ -z "$total" || "$total" -eq 0 ]]; then
  echo "test: no tests are registered in $build_dir (ctest -N found none); refusing to report success" >&2
  exit 1
fi

status=0
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j"${CTEST_JOBS:-2}" \
  | tee "$build_dir/ctest-output.txt" || status=$?

# "100% tests passed, 0 tests failed out of N"
ran="$(sed -n 's/.*tests failed out of \([0-9][0-9]*\).*/\1/p' "$build_dir/ctest-output.txt" | tail -n 1)"
if [[ -z "$ran" || "$ran" -eq 0 ]]; then
  echo "test: ctest ran no tests; refusing to report success" >&2
  exit 1
fi
if [[ $status -ne 0 ]]; then
  echo "test: ctest failed (exit $status)" >&2
  exit "$status"
fi
echo "test: ctest passed: $ran tests ran (skipped ones, if any, are listed above)"
