#!/usr/bin/env bash
# Coverage-guided fuzzing of diffbio's file readers with libFuzzer, under AddressSanitizer and
# UndefinedBehaviorSanitizer (fuzz/README.md lists the targets). Optional: not part of the test
# command; a finding is fixed and gets a regression test in tests/ with the input that found it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     default: 60 seconds for each of every target
#
# Builds with clang++ (Debian `clang`, whose package brings libFuzzer) into build-fuzz/ (ignored by
# git), seeds each target's corpus from tests/data and, where installed, Debian's hmmer-doc
# (Stockholm alignments), htslib-test and samtools-test (SAM, VCF), then runs the targets one after
# the other. A target's findings are written to build-fuzz/artifacts/<target>-crash-<hash> (or
# -leak-, -oom-, -timeout-); the script exits 1 when any target found something.
# Environment: CXX (default clang++), JOBS (parallel compiles, default nproc), MAX_LEN (largest
# input, default 8192), RSS_MB (memory limit per input, default 2048).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=()
  for f in fuzz/fuzz_*.cpp; do t="${f#fuzz/fuzz_}"; targets+=("${t%.cpp}"); done
fi
cxx="${CXX:-clang++}"
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (apt-get install clang)" >&2; exit 1; }
pkg-config --exists htslib || { echo "fuzz.sh: htslib not found (apt-get install libhts-dev pkg-config)" >&2; exit 1; }
out="$repo/build-fuzz"
mkdir -p "$out/artifacts"

flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iinclude -isystem /usr/include/eigen3)
pids=()
for t in "${targets[@]}"; do
  [[ -f "fuzz/fuzz_$t.cpp" ]] || { echo "fuzz.sh: no target fuzz/fuzz_$t.cpp" >&2; exit 2; }
  "$cxx" "${flags[@]}" "fuzz/fuzz_$t.cpp" -o "$out/fuzz_$t" $(pkg-config --cflags --libs htslib) -lz &
  pids+=($!)
  if (( ${#pids[@]} >= ${JOBS:-$(nproc)} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

# Seeds: a file per input; the count-matrix target's first byte picks the reader (see its source).
seed() { # seed <target> <file>...
  local dir="$out/seeds/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [[ -f "$f" ]] && cp "$f" "$dir/"; done
  return 0
}
rm -rf "$out/seeds"
data=tests/data
seed fastq "$data"/*.fq "$data"/*.fa
seed reference "$data"/*.fa
seed sam_pileup "$data"/*.sam /usr/share/samtools/test/mpileup/*.sam
seed vcf /usr/share/htslib-test/test/formatcols.vcf /usr/share/htslib-test/test/tabix/vcf_file.vcf
seed msa /usr/share/doc/hmmer/examples/tutorial/globins4.sto /usr/share/doc/hmmer/examples/testsuite/*.sto
mkdir -p "$out/seeds/count_matrix"
i=0
for f in "$data"/*.mtx "$data"/count_10x_v2/matrix.mtx; do
  for pick in 00 01; do i=$((i + 1)); { printf "\x$pick"; cat "$f"; } > "$out/seeds/count_matrix/mtx_$i"; done
done
for f in "$data"/count_dense_* "$data"/err_dense_*; do
  for pick in 02 03 0a 12; do i=$((i + 1)); { printf "\x$pick"; cat "$f"; } > "$out/seeds/count_matrix/dense_$i"; done
done
tenx="$data/count_10x_v2"
{ printf '\x06'; cat "$tenx/matrix.mtx"; printf '\x00'; cat "$tenx/genes.tsv"; printf '\x00'; cat "$tenx/barcodes.tsv"; } \
  > "$out/seeds/count_matrix/tenx"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/seeds/$t"
  echo "== fuzz_$t: ${seconds} s"
  if "$out/fuzz_$t" "$out/corpus/$t" "$out/seeds/$t" -max_total_time="$seconds" -max_len="${MAX_LEN:-8192}" \
       -rss_limit_mb="${RSS_MB:-2048}" -malloc_limit_mb="${RSS_MB:-2048}" -timeout=10 \
       -artifact_prefix="$out/artifacts/$t-" -print_final_stats=1 > "$out/fuzz_$t.log" 2>&1; then
    grep -E "^#[0-9]+.*DONE" "$out/fuzz_$t.log" | tail -1 || true
  else
    status=1
    echo "fuzz_$t FOUND A PROBLEM (log: $out/fuzz_$t.log):"
    grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$out/fuzz_$t.log" | head -8
  fi
done
exit "$status"
