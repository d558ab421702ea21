#!/usr/bin/env bash
# Hardened trimming speed: diffbio_preprocess apply against fastp on the same gzip FASTQ, one
# thread each, in one run; prints reads/s and the ratio.
#
#   benchmarks/peers/trim_speed.sh [BUILD_DIR] [FASTQ.gz]
#
# BUILD_DIR (default build/) must hold examples/diffbio_preprocess. FASTQ defaults to seqprep's
# simSeq_1.fq.gz (100k reads of 100 bp; package seqprep-data). fastp is installed from Debian
# when missing (apt-get as root, sudo otherwise). Both tools trim the same adapter with quality
# trimming and length filtering off on the fastp side (diffbio's learned quality threshold is
# set to 0 for the comparison):
#   fastp -w 1 -z 4 -i IN -o OUT.fq.gz -a ADAPTER -Q -L -G
#   diffbio_preprocess apply --threads 1 --compression-level 4 --in IN --params P.json --out OUT.fq.gz
# (gzip level 4 is fastp's default; both write gzip output.)
# Each tool runs REPS times (default 3); the median wall time is reported.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$repo/build}"
in="${2:-/usr/share/doc/seqprep/examples/SimTest/simSeq_1.fq.gz}"
reps="${REPS:-3}"
adapter=AGATCGGAAGAGCGGTTCAGCAGGAATGCCGAGA
tool="$build/examples/diffbio_preprocess"

[[ -x "$tool" ]] || { echo "trim_speed: $tool not built (cmake --build $build --target diffbio_preprocess)" >&2; exit 1; }
[[ -r "$in" ]] || { echo "trim_speed: $in not found (apt-get install seqprep-data)" >&2; exit 1; }
if ! command -v fastp >/dev/null 2>&1; then
  if [[ "$(id -u)" -eq 0 ]]; then apt-get install -y --no-install-recommends fastp >/dev/null;
  else sudo apt-get install -y --no-install-recommends fastp >/dev/null; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
reads=$(( $(zcat "$in" | wc -l) / 4 ))

# diffbio parameters: learned on a sample (not timed), quality threshold then set to 0 so that
# only adapter trimming differs from fastp's settings.
"$tool" learn --in "$in" --out "$work/p.json" --sample 2000 --steps 20 --adapter "$adapter" --min-length 0 >/dev/null
/usr/bin/python3 - "$work/p.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
def zero(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "quality_threshold" and isinstance(v, list): node[k] = [0.0]
            else: zero(v)
    elif isinstance(node, list):
        for v in node: zero(v)
zero(p)
json.dump(p, open(sys.argv[1], "w"))
PY

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_run() { # prints seconds
  local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

fastp_t=$(for _ in $(seq "$reps"); do time_run fastp -w 1 -z 4 -i "$in" -o "$work/fastp.fq.gz" -a "$adapter" -Q -L -G -j "$work/f.json" -h "$work/f.html"; done | median)
ours_t=$(for _ in $(seq "$reps"); do time_run "$tool" apply --threads 1 --compression-level 4 --in "$in" --params "$work/p.json" --out "$work/ours.fq.gz"; done | median)

printf '%-22s %10s %14s\n' tool seconds reads/s
printf '%-22s %10.3f %14.0f\n' "fastp -w 1" "$fastp_t" "$(echo "$reads / $fastp_t" | bc -l)"
printf '%-22s %10.3f %14.0f\n' "diffbio (1 thread)" "$ours_t" "$(echo "$reads / $ours_t" | bc -l)"
printf 'ratio diffbio/fastp speed: %.2f\n' "$(echo "$fastp_t / $ours_t" | bc -l)"
