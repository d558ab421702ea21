#!/usr/bin/env bash
# diffbio's ProfileHmm against HMMER on HMMER's tutorial globins (Debian: hmmer, hmmer-examples):
# a profile built from globins4.sto (4 aligned globins) scores the 45 globins of globins45.fa,
# and the table puts diffbio's forward log-odds (tau = 1, bits) next to hmmsearch's full-sequence
# bit scores, with their Spearman and Pearson correlations (examples/hmm_globins.cpp).
#
# Usage: benchmarks/peers/hmm_globins.sh [HMM_GLOBINS]
#   HMM_GLOBINS: the hmm_globins executable, or a build directory holding examples/hmm_globins.
#   Without it the script builds the target in $BUILD_DIR (default build/; configured as a Release
#   build without tests and benchmarks when it does not exist yet).
# Environment: THREADS (default 2), WORKDIR (default a fresh temp dir, removed at the end unless
#   KEEP=1), INSTALL=0 to skip apt-get, EXTRA_ARGS (more hmm_globins options, e.g. "--neff 1").
#
# Commands:
#   hmmbuild --amino globins4.hmm globins4.sto
#   hmmsearch --max -E 1e10 --domE 1e10 --noali --cpu THREADS --tblout hmmsearch.tbl globins4.hmm globins45.fa
#       (--max: no acceleration filters; the E-value thresholds report every sequence)
#   hmm_globins --msa globins4.sto --fasta globins45.fa --tblout hmmsearch.tbl --hmm globins4.hmm
# The diffbio profile is ProfileHmm::from_msa with its defaults; the second diffbio column scores
# the same sequences with hmmbuild's parameters read from globins4.hmm (entry uniform, inserts
# emitting the background), which isolates the forward algorithm from the model estimation.
# Sequences that hmmsearch does not report are listed and left out of the correlations.
set -euo pipefail

TUT=${TUT:-/usr/share/doc/hmmer/examples/tutorial}
THREADS=${THREADS:-2}
INSTALL=${INSTALL:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() { # packages...: install them quietly when apt-get can
    [[ $INSTALL == 1 ]] || return 1
    if [[ -z ${APT_UPDATED:-} ]]; then as_root apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1
}
if ! command -v hmmsearch >/dev/null 2>&1 || [[ ! -r $TUT/globins4.sto ]]; then
    echo "installing hmmer hmmer-examples ..." >&2
    apt_install hmmer hmmer-examples || true
fi
command -v hmmsearch >/dev/null 2>&1 || { echo "hmm_globins.sh: hmmsearch not found (Debian package hmmer)" >&2; exit 2; }
[[ -r $TUT/globins4.sto && -r $TUT/globins45.fa ]] ||
    { echo "hmm_globins.sh: $TUT/globins4.sto or globins45.fa missing (Debian package hmmer-examples)" >&2; exit 2; }

# --- our executable -------------------------------------------------------------------------
HG=${1:-${HMM_GLOBINS:-}}
if [[ -z $HG ]]; then
    BUILD_DIR=${BUILD_DIR:-$ROOT/build}
    if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DDIFFBIO_BUILD_TESTS=OFF \
              -DDIFFBIO_BUILD_BENCHMARKS=OFF >/dev/null
    fi
    cmake --build "$BUILD_DIR" --target hmm_globins -j "$THREADS" >/dev/null
    HG=$BUILD_DIR
fi
[[ -d $HG ]] && HG=$HG/examples/hmm_globins
[[ -x $HG ]] || { echo "hmm_globins.sh: no hmm_globins executable at '$HG'" >&2; exit 2; }

WORKDIR=${WORKDIR:-$(mktemp -d -t hmm_globins.XXXXXX)}
mkdir -p "$WORKDIR"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$WORKDIR"' EXIT
cd "$WORKDIR"

hmmbuild --amino globins4.hmm "$TUT/globins4.sto" > hmmbuild.log
t0=$(date +%s.%N)
hmmsearch --max -E 1e10 --domE 1e10 --noali --cpu "$THREADS" --tblout hmmsearch.tbl globins4.hmm "$TUT/globins45.fa" \
    > hmmsearch.log
t1=$(date +%s.%N)
echo "$(hmmsearch -h | sed -n 2p | sed 's/^# *//'): $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s"
# shellcheck disable=SC2086
"$HG" --msa "$TUT/globins4.sto" --fasta "$TUT/globins45.fa" --tblout hmmsearch.tbl --hmm globins4.hmm \
    --threads "$THREADS" ${EXTRA_ARGS:-}
