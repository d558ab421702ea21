#!/usr/bin/env bash
# Variant calling end to end: trains diffbio's VariantCallingPipeline (examples/variant_calling.cpp)
# on a dwgsim simulation of the lambda phage and compares its SNV calls on a held-out simulation
# with `bcftools call` on the same BAM.
#
#   benchmarks/peers/variant_calling.sh [BUILD_DIR] [OUT_DIR]
#
# Data (DATA.md's recipe): lambda_virus.fa of bowtie2-examples;
#   training genome: dwgsim -z 42 -C 50 -1 100 -2 100 -r 0.001 -R 0.1 -e 0.002-0.01 -E 0.002-0.01 -y 0
#   held-out genome: the same with -z HELDOUT_SEED (default 7) and -r HELDOUT_RATE (default 0.002)
# each aligned with `bwa mem -t 1`, sorted and indexed with samtools;
#   bcftools:  bcftools mpileup -f lambda.fa test.bam | bcftools call -mv -Oz -o test.calls.vcf.gz
#   diffbio:   variant_calling --ref lambda.fa --bam train.bam --truth train.mutations.vcf
#              --test-bam test.bam --test-truth test.mutations.vcf --bcftools test.calls.vcf.gz
#              --steps STEPS (default 200) --out OUT_DIR
# Both are scored the same way (SNVs only; a call is right when the truth has a SNV at that
# position with the same ALT base). The training curve is plotted to OUT_DIR/training_curve.png
# (needs python3-matplotlib; skipped with a message without it).
# variant_calling is taken from BUILD_DIR/examples when built there; otherwise compiled with g++.
# Needs dwgsim, bwa, samtools, bcftools, bowtie2-examples, libhts-dev, libeigen3-dev.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$repo/build}"
out="${2:-$build/variant_calling}"
steps="${STEPS:-200}"
seed2="${HELDOUT_SEED:-7}"
rate2="${HELDOUT_RATE:-0.002}"
ex=/usr/share/doc/bowtie2/examples

for t in dwgsim bwa samtools bcftools; do
  command -v "$t" >/dev/null 2>&1 || { echo "variant_calling: $t not installed (apt-get install $t)" >&2; exit 1; }
done
[[ -r "$ex/reference/lambda_virus.fa.gz" ]] || { echo "variant_calling: bowtie2-examples not installed" >&2; exit 1; }

mkdir -p "$out"
data="$out/data"
mkdir -p "$data"
cd "$data"
zcat "$ex/reference/lambda_virus.fa.gz" > lambda.fa
samtools faidx lambda.fa
bwa index lambda.fa 2>/dev/null
simulate() { # name seed rate
  dwgsim -z "$2" -C 50 -1 100 -2 100 -r "$3" -R 0.1 -e 0.002-0.01 -E 0.002-0.01 -y 0 lambda.fa "$1" > "$1.dwgsim.log" 2>&1
  bwa mem -t 1 -R '@RG\tID:s\tSM:sim' lambda.fa "$1.bwa.read1.fastq.gz" "$1.bwa.read2.fastq.gz" 2>/dev/null |
    samtools sort -o "$1.bam" - 2>/dev/null
  samtools index "$1.bam"
}
simulate train 42 0.001
simulate test "$seed2" "$rate2"
bcftools mpileup -f lambda.fa test.bam 2>/dev/null | bcftools call -mv -Oz -o test.calls.vcf.gz 2>/dev/null
bcftools mpileup -f lambda.fa train.bam 2>/dev/null | bcftools call -mv -Oz -o train.calls.vcf.gz 2>/dev/null
echo "truth: training $(grep -vc '^#' train.mutations.vcf) variants, held-out $(grep -vc '^#' test.mutations.vcf)"
echo "bcftools SNV calls: training $(bcftools view -H -v snps train.calls.vcf.gz | wc -l), held-out $(bcftools view -H -v snps test.calls.vcf.gz | wc -l)"

bin="$build/examples/variant_calling"
if [[ ! -x "$bin" ]]; then
  bin="$out/variant_calling"
  echo "compiling examples/variant_calling.cpp (no $build/examples/variant_calling)"
  ${CXX:-g++} -std=c++20 -O3 -DNDEBUG -DEIGEN_DONT_PARALLELIZE ${CXXFLAGS:-} -I"$repo/include" -I/usr/include/eigen3 \
    "$repo/examples/variant_calling.cpp" -lhts -o "$bin"
fi
"$bin" --ref lambda.fa --bam train.bam --truth train.mutations.vcf --test-bam test.bam --test-truth test.mutations.vcf \
  --bcftools test.calls.vcf.gz --steps "$steps" --out "$out"

if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 - "$out" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = sys.argv[1]
rows = list(csv.DictReader(open(out + "/training.csv")))
step = [int(r["step"]) for r in rows]
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].plot(step, [float(r["loss"]) for r in rows])
ax[0].set_yscale("log"); ax[0].set_xlabel("step"); ax[0].set_ylabel("weighted cross entropy")
ax[0].set_title("VariantCallingPipeline training (lambda, dwgsim seed 42)")
ax[1].plot(step, [float(r["theta"]) for r in rows], label="quality threshold θ")
ax[1].set_xlabel("step"); ax[1].set_ylabel("θ")
ax2 = ax[1].twinx()
ax2.plot(step, [float(r["a"]) for r in rows], color="C1", label="pileup a")
ax2.plot(step, [float(r["b"]) for r in rows], color="C2", label="pileup b")
ax2.set_ylabel("a, b")
fig.legend(loc="lower right", fontsize=8)
fig.tight_layout()
fig.savefig(out + "/training_curve.png", dpi=120)
print("wrote", out + "/training_curve.png")
PY
else
  echo "variant_calling: python3-matplotlib not installed, no training_curve.png" >&2
fi
