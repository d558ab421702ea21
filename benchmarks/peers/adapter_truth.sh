#!/usr/bin/env bash
# Adapter trimming against the truth of seqprep-data's simulated reads: diffbio's hard decision
# (examples/adapter_truth) and the peers AdapterRemoval, fastp, cutadapt and Trimmomatic, all on
# simSeq_1.fq.gz (R1, 100k reads of 100 bp) with the R1 adapter, adapter trimming only.
#
# Usage: benchmarks/peers/adapter_truth.sh [ADAPTER_TRUTH]
#   ADAPTER_TRUTH: the adapter_truth executable, or a build directory holding
#   examples/adapter_truth (default: $ADAPTER_TRUTH, else build/examples/adapter_truth).
#   Build it with
#     cmake -S . -B /tmp/atbuild -DDIFFBIO_ENABLE_CUDA=OFF -DDIFFBIO_BUILD_TESTS=OFF \
#           -DDIFFBIO_BUILD_BENCHMARKS=OFF && cmake --build /tmp/atbuild --target adapter_truth
# Environment: THREADS (default 2, every tool gets the same), WORKDIR (default a fresh temp dir,
#   removed at the end unless KEEP=1), FASTQ (default simSeq_1.fq.gz), INSTALL=0 to skip apt-get.
#
# Truth: read name SimSeq_<n>/<insert_len>/<mate>, true length min(insert_len, read length).
# Score per tool: share of reads whose output length equals the truth; a read missing from a
# tool's output counts as length 0. Over-trimmed: output shorter than the truth; under: longer.
# Seconds: wall clock of the whole command (gzip input, plain FASTQ output, THREADS threads).
#
# Commands (single end, quality trimming and filtering off everywhere: only adapters are cut):
#   AdapterRemoval --file1 R1 --adapter1 A --basename ar_se --minlength 0 --threads T
#       (2.3.3: no --trimns / --trimqualities, so no quality or N trimming)
#   fastp -i R1 -o fastp.fq -a A -Q -L -G -w T -j fastp.json -h fastp.html
#       (-Q no quality filter, -L no length filter, -G no polyG trimming; quality cutting is
#        off by default)
#   cutadapt -a A -j T -o cutadapt.fq R1          (defaults: -e 0.1, -O 3, no -q)
#   TrimmomaticSE -threads T -phred33 R1 trimmomatic.fq ILLUMINACLIP:adapter.fa:2:30:10
#       (the manual's standard settings; no LEADING/TRAILING/SLIDINGWINDOW/MINLEN steps)
#   diffbio: adapter_truth --fastq R1 --adapter A --threads T (recommended rule:
#       match 1, mismatch -3, tau_m 0.3, min_score 3.5, min_overlap 1), and once with the
#       library defaults (--threshold 0.5 --min-score -inf --min-overlap 6 --match 2 --mismatch -1)
# Paired-end rows (R1 scored; they use the mate overlap, which single-end trimming cannot;
# DATA.md's anchors AdapterRemoval 1.0000 / fastp 0.9993 are these):
#   diffbio: adapter_truth --fastq R1 --fastq2 R2 --adapter A --adapter2 A2 (ops::MateOverlap)
#   AdapterRemoval --file1 R1 --file2 R2 --adapter1 A --adapter2 A2 --basename ar_pe --minlength 0
#   fastp -i R1 -I R2 -o fastp_pe_1.fq -O fastp_pe_2.fq -a A --adapter_sequence_r2 A2 -Q -L -G
set -euo pipefail

SIMTEST=/usr/share/doc/seqprep/examples/SimTest
FASTQ=${FASTQ:-$SIMTEST/simSeq_1.fq.gz}
FASTQ2=${FASTQ2:-${FASTQ/_1.fq/_2.fq}}
ADAPTER=AGATCGGAAGAGCGGTTCAGCAGGAATGCCGAGA
ADAPTER2=AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGTA
THREADS=${THREADS:-2}
INSTALL=${INSTALL:-1}

# --- our executable -------------------------------------------------------------------------
AT=${1:-${ADAPTER_TRUTH:-build/examples/adapter_truth}}
[[ -d $AT ]] && AT=$AT/examples/adapter_truth
if [[ ! -x $AT ]]; then
    echo "adapter_truth.sh: no adapter_truth executable at '$AT' (give the path or the build dir)" >&2
    exit 2
fi

# --- data -----------------------------------------------------------------------------------
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() { # package: install it quietly when apt-get can
    [[ $INSTALL == 1 ]] || return 1
    if [[ -z ${APT_UPDATED:-} ]]; then as_root apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$1" >/dev/null 2>&1
}
if [[ ! -r $FASTQ ]]; then
    if [[ $FASTQ == $SIMTEST/* ]]; then apt_install seqprep-data || true; fi
    if [[ ! -r $FASTQ ]]; then echo "adapter_truth.sh: $FASTQ not found (Debian package seqprep-data)" >&2; exit 2; fi
fi

# --- peers (Debian packages) ------------------------------------------------------------------
declare -A PKG=([AdapterRemoval]=adapterremoval [fastp]=fastp [cutadapt]=cutadapt [TrimmomaticSE]=trimmomatic)
have() { command -v "$1" >/dev/null 2>&1; }
for exe in AdapterRemoval fastp cutadapt TrimmomaticSE; do
    if ! have "$exe"; then
        echo "installing ${PKG[$exe]} ..." >&2
        apt_install "${PKG[$exe]}" || true
        have "$exe" || echo "adapter_truth.sh: skipping $exe: package ${PKG[$exe]} could not be installed" >&2
    fi
done

WORKDIR=${WORKDIR:-$(mktemp -d -t adapter_truth.XXXXXX)}
mkdir -p "$WORKDIR"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$WORKDIR"' EXIT
cd "$WORKDIR"

# name<TAB>true length
zcat -f "$FASTQ" | awk 'NR % 4 == 1 { split(substr($1, 2), f, "/"); n = substr($1, 2) }
                        NR % 4 == 2 { t = f[2] + 0; if (t > length($0)) t = length($0); print n "\t" t }' > truth.tsv

# score OUTPUT_FASTQ -> "share<TAB>over<TAB>under"; names are compared up to the first blank
# (and without a trailing /1 that some tools may add).
score() {
    zcat -f "$1" | awk -F'\t' 'FNR == NR { truth[$1] = $2; next }
        FNR % 4 == 1 { split($0, h, /[ \t]/); name = substr(h[1], 2); next }
        FNR % 4 == 2 { if (!(name in truth)) sub(/\/1$/, "", name); got[name] = length($0) }
        END { for (n in truth) { g = (n in got) ? got[n] : 0; t = truth[n]; tot++
                                 if (g == t) ex++; else if (g < t) ov++; else un++ }
              printf "%.4f\t%d\t%d\n", ex / tot, ov, un }' truth.tsv -
}

now() { date +%s.%N; }
ROWS=()
row() { ROWS+=("$1"$'\t'"$2"$'\t'"$3"); } # tool, score line, seconds
timed() { # label output command...: run, time, score
    local label=$1 out=$2; shift 2
    local t0 t1
    t0=$(now)
    if ! "$@" > "$label.log" 2>&1; then
        echo "adapter_truth.sh: $label failed (see $WORKDIR/$label.log):" >&2
        tail -5 "$label.log" >&2
        return 0
    fi
    t1=$(now)
    row "$label" "$(score "$out")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}

printf '>TruSeq_R1\n%s\n' "$ADAPTER" > adapter.fa

if have AdapterRemoval; then
    timed "AdapterRemoval" ar_se.truncated \
        AdapterRemoval --file1 "$FASTQ" --adapter1 "$ADAPTER" --basename ar_se --minlength 0 --threads "$THREADS"
fi
if have fastp; then
    timed "fastp" fastp.fq \
        fastp -i "$FASTQ" -o fastp.fq -a "$ADAPTER" -Q -L -G -w "$THREADS" -j fastp.json -h fastp.html
fi
if have cutadapt; then
    timed "cutadapt" cutadapt.fq cutadapt -a "$ADAPTER" -j "$THREADS" -o cutadapt.fq "$FASTQ"
fi
if have TrimmomaticSE; then
    timed "Trimmomatic" trimmomatic.fq \
        TrimmomaticSE -threads "$THREADS" -phred33 "$FASTQ" trimmomatic.fq ILLUMINACLIP:adapter.fa:2:30:10
fi

# diffbio: adapter_truth scores itself (same truth, same rule for missing reads: it keeps all).
diffbio_row() { # label args...
    local label=$1; shift
    if "$AT" --fastq "$FASTQ" --adapter "$ADAPTER" --threads "$THREADS" "$@" > "$label.log" 2>&1; then
        local r
        r=$(awk -F'\t' '$1 == "RESULT" { print $3 "\t" $4 "\t" $5 "\t" $6 }' "$label.log")
        row "$label" "$(cut -f1-3 <<< "$r")" "$(printf "%.2f" "$(cut -f4 <<< "$r")")"
    else
        echo "adapter_truth.sh: $label failed:" >&2
        tail -5 "$label.log" >&2
    fi
}
diffbio_row "diffbio (min_score rule)"
diffbio_row "diffbio (library defaults)" --threshold 0.5 --min-score -inf --min-overlap 6 --match 2 --mismatch -1

# Paired end (R1 scored): diffbio's mate overlap and the peers' paired modes.
if [[ -r $FASTQ2 ]]; then
    diffbio_row "diffbio PE (mate overlap)" --fastq2 "$FASTQ2" --adapter2 "$ADAPTER2"
    if have AdapterRemoval; then
        timed "AdapterRemoval PE (ref)" ar_pe.pair1.truncated \
            AdapterRemoval --file1 "$FASTQ" --file2 "$FASTQ2" --adapter1 "$ADAPTER" --adapter2 "$ADAPTER2" \
            --basename ar_pe --minlength 0 --threads "$THREADS"
    fi
    if have fastp; then
        timed "fastp PE (ref)" fastp_pe_1.fq \
            fastp -i "$FASTQ" -I "$FASTQ2" -o fastp_pe_1.fq -O fastp_pe_2.fq -a "$ADAPTER" \
            --adapter_sequence_r2 "$ADAPTER2" -Q -L -G -w "$THREADS" -j fastp_pe.json -h fastp_pe.html
    fi
fi

echo
echo "$(wc -l < truth.tsv) reads of $FASTQ, adapter $ADAPTER, $THREADS threads"
printf '%-28s %11s %13s %14s %9s\n' tool "share exact" "over-trimmed" "under-trimmed" seconds
for r in "${ROWS[@]}"; do
    IFS=$'\t' read -r tool share over under secs <<< "$r"
    printf '%-28s %11s %13s %14s %9s\n' "$tool" "$share" "$over" "$under" "$secs"
done
