#!/usr/bin/env bash
# Pileup speed: diffbio's DifferentiablePileup (benchmarks/bench_pileup.cpp) against samtools
# mpileup on the same BAM and region, in one run; prints aligned bases/s and the ratios.
#
#   benchmarks/peers/pileup_speed.sh [BUILD_DIR]
#
# Data: the lambda phage genome of bowtie2-examples with read pairs simulated by dwgsim (DATA.md's
# recipe at COVERAGE, default 300x: ~145k reads of 100 bp), aligned with `bwa mem -t 1` and
# sorted; without dwgsim, bowtie2-examples' own 10k pairs, merged COPIES times (default 8).
# Needs samtools, bwa, bowtie2-examples, libhts-dev (and dwgsim).
#   samtools:  samtools mpileup -B -Q 0 -q 0 -A --ff 0 -f lambda.fa -r CONTIG sim.bam > /dev/null
#              (one thread; the same reads and positions our pileup counts)
#   diffbio:   bench_pileup --bam sim.bam --contig CONTIG --threads THREADS (default 2): in-memory
#              forward (float, quality weights; double hard counts), forward+backward (Var), and
#              end to end from the BAM (open, decode every record, pile up), on Cpu and
#              CpuParallel{THREADS}
# Ratios are given on wall time and on CPU time (user + sys; what the work costs on a shared,
# loaded machine).
# bench_pileup is taken from BUILD_DIR/benchmarks when it was built with htslib
# (DIFFBIO_BENCH_WITH_HTSLIB); otherwise this script compiles it with g++ -O3 (CXX, CXXFLAGS).
# Each measurement is repeated REPS times (default 7); medians are reported.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$repo/build}"
reps="${REPS:-7}"
copies="${COPIES:-8}"
coverage="${COVERAGE:-300}"
threads="${THREADS:-2}"
ex=/usr/share/doc/bowtie2/examples
contig='gi|9626243|ref|NC_001416.1|'

for t in samtools bwa; do
  command -v "$t" >/dev/null 2>&1 || { echo "pileup_speed: $t not installed (apt-get install $t)" >&2; exit 1; }
done
[[ -r "$ex/reads/reads_1.fq.gz" ]] || { echo "pileup_speed: bowtie2-examples not installed" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

bench="$build/benchmarks/bench_pileup"
if [[ ! -x "$bench" ]] || "$bench" --bam /dev/null --contig x --reps 1 2>&1 | grep -q "built without htslib"; then
  bench="$work/bench_pileup"
  ${CXX:-g++} -std=c++20 -O3 -DNDEBUG ${CXXFLAGS:-} -fopenmp -I"$repo/include" -DDIFFBIO_BENCH_WITH_HTSLIB \
    "$repo/benchmarks/bench_pileup.cpp" -o "$bench" $(pkg-config --cflags --libs htslib)
fi

zcat "$ex/reference/lambda_virus.fa.gz" > "$work/lambda.fa"
samtools faidx "$work/lambda.fa"
bwa index "$work/lambda.fa" 2>/dev/null
if command -v dwgsim >/dev/null 2>&1; then
  (cd "$work" && dwgsim -z 42 -C "$coverage" -1 100 -2 100 -r 0.001 -R 0.1 -e 0.002-0.01 -E 0.002-0.01 -y 0 \
     lambda.fa sim >/dev/null 2>&1)
  bwa mem -t 1 "$work/lambda.fa" "$work/sim.bwa.read1.fastq.gz" "$work/sim.bwa.read2.fastq.gz" 2>/dev/null |
    samtools sort -o "$work/sim.bam" - 2>/dev/null
else
  echo "# dwgsim not installed: bowtie2-examples' reads merged $copies times instead"
  bwa mem -t 1 "$work/lambda.fa" "$ex/reads/reads_1.fq.gz" "$ex/reads/reads_2.fq.gz" 2>/dev/null |
    samtools sort -o "$work/one.bam" - 2>/dev/null
  inputs=()
  for ((k = 0; k < copies; ++k)); do inputs+=("$work/one.bam"); done
  samtools merge -f -o "$work/sim.bam" "${inputs[@]}" 2>/dev/null
fi
samtools index "$work/sim.bam"

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# samtools, one thread: wall and CPU (user + sys) seconds per run
TIMEFORMAT='%R %U %S'
st_wall=() st_cpu=()
for ((r = 0; r < reps; ++r)); do
  t=$( { time samtools mpileup -B -Q 0 -q 0 -A --ff 0 -f "$work/lambda.fa" -r "$contig" "$work/sim.bam" \
         > /dev/null 2>&1; } 2>&1 )
  read -r real user sys <<< "$t"
  st_wall+=("$real")
  st_cpu+=("$(echo "$user + $sys" | bc -l)")
done
st_s=$(printf '%s\n' "${st_wall[@]}" | median)
st_cpu_s=$(printf '%s\n' "${st_cpu[@]}" | median)

out="$("$bench" --bam "$work/sim.bam" --contig "$contig" --reps "$reps" --threads "$threads")"
echo "$out"
bases=$(echo "$out" | awk '/^forward_float /{for (i = 1; i <= NF; ++i) if ($i ~ /^bases=/) {sub("bases=", "", $i); print $i; exit}}')
st_rate=$(echo "$bases / $st_s" | bc -l)
st_cpu_rate=$(echo "$bases / $st_cpu_s" | bc -l)
printf 'samtools_mpileup threads=1 median_ms=%.3f cpu_median_ms=%.3f bases=%s Gbases_per_s=%.4f Gbases_per_cpu_s=%.4f\n' \
  "$(echo "$st_s * 1000" | bc -l)" "$(echo "$st_cpu_s * 1000" | bc -l)" "$bases" \
  "$(echo "$st_rate / 1000000000" | bc -l)" "$(echo "$st_cpu_rate / 1000000000" | bc -l)"
echo "# ratios: diffbio bases/s over samtools bases/s, on wall time and on CPU time"
echo "# (goals: end_to_end threads=1 >= 2; in-memory forward >= 0.5 G bases/s per core)"
echo "$out" | awk -v st="$st_rate" -v stc="$st_cpu_rate" '$1 !~ /^#/ {
  rate = 0; crate = 0; th = "";
  for (i = 1; i <= NF; ++i) {
    split($i, a, "=");
    if (a[1] == "Gbases_per_s") rate = a[2] * 1e9;
    if (a[1] == "Gbases_per_cpu_s") crate = a[2] * 1e9;
    if (a[1] == "threads") th = $i;
  }
  printf "%s %s ratio_wall=%.2f ratio_cpu=%.2f\n", $1, th, rate / st, crate / stc }'
