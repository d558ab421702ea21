// Optional parity test: with hard weights (read weights and gates 1, no quality transform) the
// pileup's A/C/G/T, deletion and insertion counts equal `samtools mpileup -B -Q 0 -q 0 -A --ff 0`
// on every position of
//   - Debian samtools-test's mpileup.{1,2,3}.bam with mpileup.ref.fa (1000 Genomes reads on 17), and
//   - bowtie2-examples' lambda phage pairs aligned with `bwa mem` and sorted with samtools
//     (a scratch folder, built at run time).
// Each case WARNs and passes when samtools (or bwa, or the data) is not installed.
//
// Column 5 of mpileup is read as: '.' ',' the reference base; ACGTN acgtn a base; '*' '#' a
// deletion; '^' + one character a read start; '$' a read end; '+n…' an insertion after this
// position (counted) and '-n…' a deletion announced (its positions come as '*'); '<' '>' a
// reference skip.

#include <catch2/catch.hpp>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <diffbio/ad/binder.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/io/alignment.hpp>
#include <diffbio/ops/variant/pileup.hpp>

#include "io_fixtures.hpp"

#ifndef DIFFBIO_SAMTOOLS_TEST_DIR
#define DIFFBIO_SAMTOOLS_TEST_DIR "/usr/share/samtools/test/mpileup"
#endif
#ifndef DIFFBIO_BOWTIE2_EXAMPLES_DIR
#define DIFFBIO_BOWTIE2_EXAMPLES_DIR "/usr/share/doc/bowtie2/examples"
#endif

using namespace diffbio;
namespace fs = std::filesystem;

namespace {

bool have_tool(const char* probe) { return std::system(probe) == 0; }

/// Per position [0, L) of the contig: A C G T deletion insertion counts from samtools.
struct Counts {
    std::vector<std::array<double, 6>> at;
    std::size_t lines = 0;
};

Counts samtools_counts(const std::string& command, const std::string& contig, std::size_t L) {
    Counts out;
    out.at.assign(L, {0, 0, 0, 0, 0, 0});
    FILE* p = popen(command.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string line;
    std::vector<char> buf(1 << 16);
    auto handle = [&](const std::string& ln) {
        // contig \t pos \t ref \t depth \t bases \t quals
        std::array<std::size_t, 5> tab{};
        std::size_t k = 0;
        for (std::size_t i = 0; i < ln.size() && k < 5; ++i) {
            if (ln[i] == '\t') tab[k++] = i;
        }
        REQUIRE(k >= 4);
        REQUIRE(ln.substr(0, tab[0]) == contig);
        const long pos = std::stol(ln.substr(tab[0] + 1, tab[1] - tab[0] - 1)) - 1;
        REQUIRE(pos >= 0);
        REQUIRE(static_cast<std::size_t>(pos) < L);
        const char ref = ln[tab[1] + 1];
        const std::size_t end = k >= 5 ? tab[4] : ln.size();
        auto& c = out.at[static_cast<std::size_t>(pos)];
        for (std::size_t i = tab[3] + 1; i < end; ++i) {
            const char ch = ln[i];
            if (ch == '^') {
                ++i; // the mapping quality character
            } else if (ch == '$' || ch == '<' || ch == '>') {
            } else if (ch == '+' || ch == '-') {
                std::size_t j = i + 1, n = 0;
                while (j < end && std::isdigit(static_cast<unsigned char>(ln[j]))) n = n * 10 + static_cast<std::size_t>(ln[j++] - '0');
                if (ch == '+') c[5] += 1;
                i = j + n - 1;
            } else if (ch == '*' || ch == '#') {
                c[4] += 1;
            } else if (ch == '.' || ch == ',') {
                const auto code = base_code(ref);
                if (code < 4) c[code] += 1;
            } else {
                const auto code = base_code(ch);
                if (code < 4) c[code] += 1;
            }
        }
        ++out.lines;
    };
    while (fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) {
        line += buf.data();
        if (!line.empty() && line.back() == '\n') {
            line.pop_back();
            handle(line);
            line.clear();
        }
    }
    if (!line.empty()) handle(line);
    REQUIRE(pclose(p) == 0);
    return out;
}

/// Compares our hard pileup of `bam` over [0, L) of `contig` with samtools' counts.
void compare(const std::string& bam, const std::string& ref, const std::string& contig, std::size_t L) {
    const std::string cmd = "samtools mpileup -B -Q 0 -q 0 -A --ff 0 -f '" + ref + "' -r '" + contig + "' '" + bam +
                            "' 2>/dev/null";
    const Counts want = samtools_counts(cmd, contig, L);
    REQUIRE(want.lines > 0);

    io::AlignmentReader in(bam);
    AlignedBatch batch;
    in.read_all(batch);
    const std::int32_t c = batch.contig_index(contig);
    REQUIRE(c >= 0);
    ops::PileupConfig cfg;
    cfg.use_quality_weights = false;
    ad::Binder<double> bind;
    const auto got = ops::DifferentiablePileup(cfg).apply(bind, batch, {c, 0, static_cast<std::int64_t>(L)});
    std::size_t mismatches = 0, bases = 0;
    for (std::size_t p = 0; p < L; ++p) {
        const auto& w = want.at[p];
        const std::array<double, 6> g{got.counts[4 * p], got.counts[4 * p + 1], got.counts[4 * p + 2],
                                      got.counts[4 * p + 3], got.deletions[p], got.insertions[p]};
        for (int k = 0; k < 4; ++k) bases += static_cast<std::size_t>(w[static_cast<std::size_t>(k)]);
        if (g != w) {
            if (++mismatches <= 5) {
                UNSCOPED_INFO(contig << ":" << p + 1 << " ours A C G T del ins = " << g[0] << " " << g[1] << " " << g[2]
                                     << " " << g[3] << " " << g[4] << " " << g[5] << "; samtools " << w[0] << " " << w[1]
                                     << " " << w[2] << " " << w[3] << " " << w[4] << " " << w[5]);
            }
        }
    }
    INFO(bam << ": " << want.lines << " samtools lines, " << bases << " bases, " << mismatches
             << " positions differ");
    CHECK(bases > 0);
    CHECK(mismatches == 0);
}

} // namespace

TEST_CASE("Pileup counts equal samtools mpileup on samtools-test's mpileup.{1,2,3}.bam", "[io][pileup][samtools]") {
    const fs::path dir = DIFFBIO_SAMTOOLS_TEST_DIR;
    if (!have_tool("samtools --version > /dev/null 2>&1") || !fs::exists(dir / "mpileup.ref.fa") ||
        !fs::exists(dir / "mpileup.1.bam")) {
        WARN("samtools or samtools-test not installed: skipping the samtools mpileup parity test (" << dir.string() << ")");
        return;
    }
    for (const char* name : {"mpileup.1.bam", "mpileup.2.bam", "mpileup.3.bam"}) {
        // samtools needs an index for -r; mpileup.2/3 have none, so copy and index them in scratch.
        const fs::path scratch = fs::path(DIFFBIO_TEST_SCRATCH_DIR) / ("samtools_" + std::to_string(::getpid()));
        fs::create_directories(scratch);
        const fs::path bam = scratch / name;
        fs::copy_file(dir / name, bam, fs::copy_options::overwrite_existing);
        REQUIRE(std::system(("samtools index '" + bam.string() + "'").c_str()) == 0);
        // The reads lie on 17:1-4200 (the reference holds only that part of 17); pile up 4500
        // positions so that reads hanging over the end are compared too.
        compare(bam.string(), (dir / "mpileup.ref.fa").string(), "17", 4500);
        fs::remove_all(scratch);
    }
}

TEST_CASE("Pileup counts equal samtools mpileup on bowtie2's lambda reads aligned with bwa", "[io][pileup][samtools]") {
    const fs::path ex = DIFFBIO_BOWTIE2_EXAMPLES_DIR;
    const fs::path ref_gz = ex / "reference" / "lambda_virus.fa.gz";
    const fs::path r1 = ex / "reads" / "reads_1.fq.gz", r2 = ex / "reads" / "reads_2.fq.gz";
    if (!have_tool("samtools --version > /dev/null 2>&1") || !have_tool("command -v bwa > /dev/null 2>&1") ||
        !fs::exists(ref_gz) || !fs::exists(r1) || !fs::exists(r2)) {
        WARN("samtools, bwa or bowtie2-examples not installed: skipping the lambda pileup parity test");
        return;
    }
    const fs::path dir = fs::path(DIFFBIO_TEST_SCRATCH_DIR) / ("lambda_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string fa = (dir / "lambda.fa").string(), bam = (dir / "lambda.bam").string();
    const std::string script = "set -e; zcat '" + ref_gz.string() + "' > '" + fa + "'; bwa index '" + fa +
                               "' 2>/dev/null; bwa mem -t 1 '" + fa + "' '" + r1.string() + "' '" + r2.string() +
                               "' 2>/dev/null | samtools sort -o '" + bam + "' - 2>/dev/null; samtools index '" + bam +
                               "'";
    REQUIRE(std::system(("bash -c \"" + script + "\"").c_str()) == 0);
    compare(bam, fa, "gi|9626243|ref|NC_001416.1|", 48502);
    fs::remove_all(dir);
}

TEST_CASE("Pileup of reads stored without SEQ ('*') counts unknown bases as samtools mpileup does", "[io][pileup]") {
    // The input fuzz_sam_pileup found (the pileup read past the batch's bases). Expected values
    // are samtools mpileup -B -Q 0 -q 0 -A --ff 0's column 5 on this file: every base an 'N', the
    // deletions '*'; they need no samtools to check.
    diffbio::test::ScratchFile file("pileup_noseq.sam");
    diffbio::test::spit(file.path(), "@SQ\tSN:ref\tLN:30\n"
                                     "r1\t0\tref\t1\t30\t20M\t*\t0\t0\t*\t*\n"
                                     "r2\t0\tref\t5\t30\t8M1D5M1D5M\t*\t0\t0\t*\t*\n"
                                     "r3\t0\tref\t10\t30\t9M1D8M1D1M\t*\t0\t0\t*\t*\n");
    io::AlignmentReader in(file.path());
    AlignedBatch batch;
    in.read_all(batch);
    ops::PileupConfig cfg;
    cfg.use_quality_weights = false;
    ad::Binder<double> bind;
    const auto got = ops::DifferentiablePileup(cfg).apply(bind, batch, {0, 0, 30});
    // 1-based positions 1..30
    const std::vector<double> n_bases{1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 2, 3, 3,
                                      3, 3, 3, 1, 3, 2, 2, 2, 2, 1, 1, 1, 0, 1, 0};
    std::vector<double> dels(30, 0.0);
    dels[12] = 1;
    dels[18] = 2;
    dels[27] = 1;
    for (std::size_t p = 0; p < 30; ++p) {
        INFO("position " << p + 1);
        for (int k = 0; k < 4; ++k) CHECK(got.counts[4 * p + static_cast<std::size_t>(k)] == 0.0);
        CHECK(got.coverage[p] == n_bases[p]);
        CHECK(got.deletions[p] == dels[p]);
        CHECK(got.insertions[p] == 0.0);
    }
}
