#!/usr/bin/env bash
# CNV segmentation on DNAcopy's coriell array-CGH data (Debian: r-bioc-dnacopy): diffbio's
# CNVSegmentation (examples/cnv_coriell.cpp) next to DNAcopy's circular binary segmentation (CBS)
# on the same probes, with the boundary agreement of the two.
#
#   benchmarks/peers/cnv_coriell.sh [CNV_CORIELL]
#     CNV_CORIELL: the cnv_coriell executable, or a build directory holding examples/cnv_coriell;
#     without it the script compiles examples/cnv_coriell.cpp with g++ -O2 (CXX, CXXFLAGS).
# Environment: WORKDIR (default a fresh temp dir, removed at the end unless KEEP=1), INSTALL=0 to
#   skip apt-get, SEED (R's seed for CBS's permutation p-values, default 25), EXTRA_ARGS (more
#   cnv_coriell options, e.g. "--tolerance 3 --input raw"), EXTRACT=FILE: also write the small
#   extract tests/ops/test_cnv_coriell.cpp reads (tests/data/cnv_coriell_extract.tsv: sample,
#   chrom, pos, smoothed ratio of every (sample, autosome) where CBS finds a segment with
#   |mean| > 0.2).
#
# Data: data(coriell): 2271 BAC clones on chromosomes 1-23 (23 = X), log2 ratios of the cell lines
# GM05296 and GM13330 (Snijders et al. 2001). Per sample the clones with a missing ratio are
# dropped; the rest are in CNA()'s order (chromosome, then position).
# DNAcopy (as in its vignette, default parameters):
#   CNA(cbind(Coriell.05296, Coriell.13330), Chromosome, Position, data.type = "logratio")
#   smooth.CNA(...)                      single-point outliers pulled in
#   segment(...)                         CBS, default alpha 0.01, nperm 10000, hybrid p-values
# Files handed to cnv_coriell:
#   probes.tsv  sample chrom pos raw smoothed   (smoothed: smooth.CNA's values, what CBS segments)
#   cbs.tsv     sample chrom loc.start loc.end num.mark seg.mean   (segment()$output)
set -euo pipefail

INSTALL=${INSTALL:-1}
SEED=${SEED:-25}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() { # packages...: install them quietly when apt-get can
    [[ $INSTALL == 1 ]] || return 1
    as_root apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1
}
have_dnacopy() { command -v Rscript >/dev/null 2>&1 && Rscript -e 'quit(status = !requireNamespace("DNAcopy", quietly = TRUE))' >/dev/null 2>&1; }
if ! have_dnacopy; then
    echo "installing r-bioc-dnacopy ..." >&2
    apt_install r-bioc-dnacopy || true
fi
have_dnacopy || { echo "cnv_coriell.sh: R package DNAcopy not found (Debian package r-bioc-dnacopy)" >&2; exit 2; }

WORKDIR=${WORKDIR:-$(mktemp -d -t cnv_coriell.XXXXXX)}
mkdir -p "$WORKDIR"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$WORKDIR"' EXIT

# --- our executable -------------------------------------------------------------------------
BIN=${1:-${CNV_CORIELL:-}}
[[ -n $BIN && -d $BIN ]] && BIN=$BIN/examples/cnv_coriell
if [[ -z $BIN ]]; then
    BIN=$WORKDIR/cnv_coriell
    # shellcheck disable=SC2086 # CXXFLAGS holds several flags
    ${CXX:-g++} -std=c++20 -O2 -DNDEBUG ${CXXFLAGS:-} -I"$ROOT/include" "$ROOT/examples/cnv_coriell.cpp" -o "$BIN"
fi
[[ -x $BIN ]] || { echo "cnv_coriell.sh: no cnv_coriell executable at '$BIN'" >&2; exit 2; }

# --- export and CBS ---------------------------------------------------------------------------
cat > "$WORKDIR/cbs.R" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]; seed <- as.integer(args[2]); extract <- if (length(args) >= 3) args[3] else ""
suppressMessages(library(DNAcopy))
data(coriell)
cna <- suppressWarnings(CNA(cbind(coriell$Coriell.05296, coriell$Coriell.13330), coriell$Chromosome,
                            coriell$Position, data.type = "logratio", sampleid = c("c05296", "c13330")))
sm <- smooth.CNA(cna)
probes <- NULL
for (s in c("c05296", "c13330")) {
  keep <- !is.na(cna[[s]])
  probes <- rbind(probes, data.frame(sample = s, chrom = cna$chrom[keep], pos = cna$maploc[keep],
                                     raw = cna[[s]][keep], smoothed = sm[[s]][keep]))
}
write.table(probes, file.path(out, "probes.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
set.seed(seed)
seg <- segment(sm, verbose = 0)
write.table(seg$output, file.path(out, "cbs.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
cat(sprintf("DNAcopy %s: %d probes (NA removed: %s), CBS %d segments (seed %d)\n",
            as.character(packageVersion("DNAcopy")), nrow(probes),
            paste(table(probes$sample), collapse = " + "), nrow(seg$output), seed))
if (nzchar(extract)) {
  # the test's extract: the chromosomes with CBS's gains and losses (|mean| > 0.2), autosomes only
  o <- seg$output
  hit <- unique(o[abs(o$seg.mean) > 0.2 & o$chrom != 23, c("ID", "chrom")])
  ex <- NULL
  for (i in seq_len(nrow(hit))) {
    ex <- rbind(ex, probes[probes$sample == hit$ID[i] & probes$chrom == hit$chrom[i], ])
  }
  ex <- data.frame(sample = ex$sample, chrom = ex$chrom, pos = ex$pos, smoothed = sprintf("%.6f", ex$smoothed))
  write.table(ex, extract, sep = "\t", quote = FALSE, row.names = FALSE)
  cat(sprintf("extract: %d probes in %s\n", nrow(ex), extract))
}
EOF
if [[ -n ${EXTRACT:-} ]]; then
    Rscript "$WORKDIR/cbs.R" "$WORKDIR" "$SEED" "$(realpath -m "$EXTRACT")"
else
    Rscript "$WORKDIR/cbs.R" "$WORKDIR" "$SEED"
fi

# shellcheck disable=SC2086
"$BIN" --probes "$WORKDIR/probes.tsv" --cbs "$WORKDIR/cbs.tsv" ${EXTRA_ARGS:-}
