// VcfWriter: write VCF / VCF.gz / BCF with htslib, read back with htslib (VcfReader) and, when
// it is installed, with `bcftools view` (the case WARNs and passes without bcftools).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/io/vcf_reader.hpp>
#include <diffbio/io/vcf_writer.hpp>

#include "io_fixtures.hpp"

using namespace diffbio;
using diffbio::test::ScratchFile;

namespace {

io::VcfHeader header() {
    return {.contigs = {{"chr1", 1000}, {"gi|9626243|ref|NC_001416.1|", 48502}},
            .samples = {"sim"},
            .extra_lines = {"##source=diffbio_test"}};
}

std::vector<io::VcfRecord> records() {
    return {
        {.contig = "chr1", .pos = 0, .ref = "A", .alts = {"T"}, .qual = 37.5, .depth = 12, .genotype = {0, 1},
         .genotype_quality = 30, .genotype_probs = {0.001f, 0.9f, 0.099f}},
        // a depth of 0 is a value (DP=0), not the missing depth (−1)
        {.contig = "chr1", .pos = 500, .ref = "C", .alts = {"A"}, .qual = 3.0, .depth = 0, .genotype = {0, 0}},
        {.contig = "chr1", .pos = 999, .id = "rs1", .ref = "G", .alts = {"C"}, .qual = 99.0, .depth = 40, .genotype = {1, 1},
         .genotype_quality = 60, .genotype_probs = {0.0f, 0.01f, 0.99f}},
        {.contig = "gi|9626243|ref|NC_001416.1|", .pos = 1355, .ref = "A", .alts = {"G", "T"}, .filter = "", .genotype = {1, 2}},
    };
}

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    REQUIRE(pclose(p) == 0);
    return out;
}

void check_read_back(const std::string& path) {
    io::VcfReader in(path);
    CHECK(in.samples() == std::vector<std::string>{"sim"});
    const auto sites = in.read_all();
    const auto want = records();
    REQUIRE(sites.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
        INFO("record " << k);
        CHECK(sites[k].contig == want[k].contig);
        CHECK(sites[k].pos == want[k].pos);
        CHECK(sites[k].id == want[k].id);
        CHECK(sites[k].ref == want[k].ref);
        CHECK(sites[k].alts == want[k].alts);
        if (std::isnan(want[k].qual)) {
            CHECK(std::isnan(sites[k].qual));
        } else {
            CHECK(sites[k].qual == Approx(want[k].qual));
        }
        CHECK(sites[k].depth == want[k].depth);
        CHECK(sites[k].genotype == want[k].genotype);
        CHECK(sites[k].genotype_quality == want[k].genotype_quality);
        REQUIRE(sites[k].genotype_probs.size() == want[k].genotype_probs.size());
        for (std::size_t g = 0; g < want[k].genotype_probs.size(); ++g) {
            CHECK(sites[k].genotype_probs[g] == Approx(want[k].genotype_probs[g]));
        }
        CHECK(sites[k].filters == (want[k].filter.empty() ? std::vector<std::string>{} : std::vector<std::string>{"PASS"}));
    }
    CHECK(sites[0].alt_allele_count() == 1);
    CHECK(sites[1].alt_allele_count() == 0);
    CHECK(sites[2].alt_allele_count() == 2);
    CHECK(sites[0].is_snv());
}

} // namespace

TEST_CASE("VcfWriter: VCF, VCF.gz and BCF read back with htslib", "[io][vcf]") {
    for (const char* ext : {".vcf", ".vcf.gz", ".bcf"}) {
        INFO("format " << ext);
        ScratchFile f(std::string("calls") + ext);
        {
            io::VcfWriter out(f.path(), header());
            for (const auto& r : records()) out.write(r);
            CHECK(out.records() == 4);
            out.close();
        }
        check_read_back(f.path());
    }
}

TEST_CASE("VcfWriter: the plain text is VCF 4.2 with 1-based positions", "[io][vcf]") {
    ScratchFile f("calls_text.vcf");
    {
        io::VcfWriter out(f.path(), header());
        for (const auto& r : records()) out.write(r);
    } // the destructor closes
    const std::string text = diffbio::test::slurp(f.path());
    CHECK(text.rfind("##fileformat=VCFv4.2", 0) == 0);
    CHECK(text.find("##contig=<ID=chr1,length=1000>") != std::string::npos);
    CHECK(text.find("##source=diffbio_test") != std::string::npos);
    CHECK(text.find("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tsim\n") != std::string::npos);
    CHECK(text.find("\nchr1\t1\t.\tA\tT\t37.5\tPASS\tDP=12\tGT:GQ:GP\t0/1:30:0.001,0.9,0.099\n") != std::string::npos);
    CHECK(text.find("\nchr1\t501\t.\tC\tA\t3\tPASS\tDP=0\tGT\t0/0\n") != std::string::npos);
    CHECK(text.find("\nchr1\t1000\trs1\tG\tC\t99\tPASS\tDP=40\tGT:GQ:GP\t1/1:60:0,0.01,0.99\n") != std::string::npos);
    CHECK(text.find("\ngi|9626243|ref|NC_001416.1|\t1356\t.\tA\tG,T\t.\t.\t.\tGT\t1/2\n") != std::string::npos);
}

TEST_CASE("VcfWriter: bcftools view reads the output", "[io][vcf][peer]") {
    if (std::system("bcftools --version > /dev/null 2>&1") != 0) {
        WARN("bcftools is not installed (Debian: bcftools): skipping the bcftools read-back");
        return;
    }
    for (const char* ext : {".vcf.gz", ".bcf"}) {
        ScratchFile f(std::string("calls_bcftools") + ext);
        {
            io::VcfWriter out(f.path(), header());
            for (const auto& r : records()) out.write(r);
            out.close();
        }
        const std::string q = run("bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%INFO/DP[\\t%GT\\t%GQ]\\n' '" + f.path() + "'");
        CHECK(q == "chr1\t1\tA\tT\t12\t0/1\t30\n"
                   "chr1\t501\tC\tA\t0\t0/0\t.\n"
                   "chr1\t1000\tG\tC\t40\t1/1\t60\n"
                   "gi|9626243|ref|NC_001416.1|\t1356\tA\tG,T\t.\t1/2\t.\n");
        // bcftools' own validation pass: view the file and count its records
        CHECK(run("bcftools view -H '" + f.path() + "' | wc -l") == "4\n");
    }
}

TEST_CASE("VcfWriter: bad records and paths", "[io][vcf]") {
    ScratchFile f("bad.vcf");
    io::VcfWriter out(f.path(), header());
    CHECK_THROWS_AS(out.write({.contig = "chrX", .pos = 1, .ref = "A", .alts = {"T"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1000, .ref = "A", .alts = {"T"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = -1, .ref = "A", .alts = {"T"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1, .ref = "", .alts = {"T"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"A"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"<DEL>"}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}, .genotype = {0, 2}}), InvalidArgument);
    CHECK_THROWS_AS(out.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}, .filter = "LowQ"}), InvalidArgument);
    CHECK(out.records() == 0);
    CHECK_THROWS_AS(io::VcfWriter("/nonexistent_dir/x.vcf", header()), Error);
    CHECK_THROWS_AS(io::VcfWriter(f.path() + "2", {.contigs = {{"c", 0}}}), InvalidArgument);
    {
        ScratchFile g("nosample.vcf");
        io::VcfWriter ns(g.path(), {.contigs = {{"chr1", 10}}});
        CHECK_THROWS_AS(ns.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}, .genotype = {0, 1}}), InvalidArgument);
        // each sample field alone needs the sample column, GQ 0 included
        CHECK_THROWS_AS(ns.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}, .genotype_quality = 0}),
                        InvalidArgument);
        CHECK_THROWS_AS(ns.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}, .genotype_probs = {0.5f, 0.5f, 0.0f}}),
                        InvalidArgument);
        ns.write({.contig = "chr1", .pos = 1, .ref = "A", .alts = {"T"}});
        ns.close();
        io::VcfReader in(g.path());
        const auto s = in.read_all();
        REQUIRE(s.size() == 1);
        CHECK(s[0].genotype.empty());
        CHECK(s[0].alt_allele_count() == -1);
    }
    {
        // the smallest contig (length 1) and a record with the default position 0
        ScratchFile g("one_base.vcf");
        io::VcfWriter one(g.path(), {.contigs = {{"m", 1}}});
        const io::VcfRecord first{.contig = "m", .ref = "C", .alts = {"G"}};
        CHECK(first.pos == 0);
        one.write(first);
        CHECK_THROWS_AS(one.write({.contig = "m", .pos = 1, .ref = "C", .alts = {"G"}}), InvalidArgument);
        one.close();
        io::VcfReader in(g.path());
        const auto s = in.read_all();
        REQUIRE(s.size() == 1);
        CHECK(s[0].pos == 0);
    }
    CHECK_THROWS_AS(io::VcfReader("/nonexistent_dir/x.vcf"), Error);
}

TEST_CASE("VcfReader: a record cut short after POS is a ParseError naming the record (found by fuzz_vcf)", "[io][vcf][errors]") {
    // htslib reads "1<TAB>30021<TAB>1/1:21:21" without an error code but with no alleles; the reader
    // used to dereference the missing REF.
    const std::string head = "##fileformat=VCFv4.2\n##contig=<ID=1,length=5000000>\n"
                             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
    ScratchFile f("short_record.vcf");
    diffbio::test::spit(f.path(), head + "1\t100\t.\tA\tT\t50\tPASS\t.\n1\t30021\t1/1:21:21\n");
    io::VcfReader in(f.path());
    io::VcfSite s;
    REQUIRE(in.next(s));
    CHECK(s.pos == 99);
    CHECK(s.ref == "A");
    try {
        in.next(s);
        FAIL("the short record was accepted");
    } catch (const ParseError& e) {
        CHECK(e.file() == f.path());
        CHECK(e.line() == 2);
        CHECK_THAT(e.what(), Catch::Matchers::Contains("no REF allele"));
    }
}

TEST_CASE("VcfReader: FORMAT fields that no sample fills are absent, not a process exit (found by fuzz_vcf)",
          "[io][vcf][errors]") {
    // FORMAT "DP:GT:GQ" with the sample columns "6" and ".": the trailing fields are dropped, as the
    // VCF specification allows. htslib 1.16 stores GT and GQ with value type 0 and its
    // bcf_get_format_values called exit(1) on them. bcftools shows GT and GQ as missing.
    const std::string head =
        "##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
        "##FORMAT=<ID=GQ,Number=1,Type=Integer,Description=\"Genotype quality\">\n"
        "##FORMAT=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n"
        "##FORMAT=<ID=GP,Number=G,Type=Float,Description=\"Genotype probabilities\">\n"
        "##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n##contig=<ID=1,length=5000000>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n";
    ScratchFile f("unfilled_format.vcf");
    diffbio::test::spit(f.path(), head + "1\t300\t.\tC\tT\t59.2\tPASS\tDP=14\tDP:GT:GQ:GP\t6\t.\n"
                                         "1\t400\t.\tG\tA\t60\tPASS\t.\tGT:GQ\t0/1:35\t1/1:20\n"
                                         // integers wider than 8 bits: BCF stores them as int16 / int32
                                         "1\t500\t.\tA\tG\t61\tPASS\tDP=300\tGT:GQ\t0/1:300\t0/0:99\n"
                                         "1\t600\t.\tA\tC\t62\tPASS\tDP=70000\tGT:GQ\t1/1:70000\t0/0:99\n");
    io::VcfReader in(f.path());
    const auto sites = in.read_all();
    REQUIRE(sites.size() == 4);
    CHECK(sites[0].pos == 299);
    CHECK(sites[0].depth == 14);
    CHECK(sites[0].genotype.empty());
    CHECK(sites[0].alt_allele_count() == -1);
    CHECK(sites[0].genotype_quality == -1);
    for (const float p : sites[0].genotype_probs) CHECK(std::isnan(p)); // missing values, as htslib gives them
    CHECK(sites[1].genotype == std::vector<std::int32_t>{0, 1});
    CHECK(sites[1].genotype_quality == 35);
    CHECK(sites[2].depth == 300);
    CHECK(sites[2].genotype_quality == 300);
    CHECK(sites[3].depth == 70000);
    CHECK(sites[3].genotype_quality == 70000);
}
