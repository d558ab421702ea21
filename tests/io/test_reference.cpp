// ReferenceFasta: the same sequences from a plain FASTA held in memory, through a faidx index,
// from BGZF with and without its index; contig/length checks against an alignment header;
// bad input.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <htslib/bgzf.h>
#include <htslib/faidx.h>

#include <diffbio/io/alignment.hpp>
#include <diffbio/io/reference.hpp>

#include "io_fixtures.hpp"

using namespace diffbio;
using diffbio::test::data_file;
using diffbio::test::ScratchFile;
using Catch::Matchers::Contains;

namespace {
const std::string chrA = "GCTAAAGACAATTACATAACATACACGTCAGCACGAAACTTGTTGGCCCAGTGTGAATCG";
const std::string chrB = "CTTAAGGGTTAAGTAAGTGTGATGCATACG";

void check_sequences(const io::ReferenceFasta& ref) {
    REQUIRE(ref.contigs().size() == 2);
    CHECK(ref.contigs()[0].name == "chrA"); // the description after the name is not part of it
    CHECK(ref.contigs()[0].length == 60);
    CHECK(ref.contigs()[1].name == "chrB");
    CHECK(ref.length("chrB") == 30);
    CHECK(ref.fetch("chrA", 0, 60) == chrA);
    CHECK(ref.fetch("chrA", 20, 31) == chrA.substr(20, 11)); // across a line break
    CHECK(ref.fetch("chrA", 59, 60) == "G");
    CHECK(ref.fetch("chrA", 7, 7).empty());
    CHECK(ref.fetch("chrB", 0, 30) == chrB); // stored lower case, returned upper case
    const std::vector<std::uint8_t> codes{1, 3, 3, 0};
    CHECK(ref.fetch_codes("chrB", 0, 4) == codes);
    CHECK_THROWS_WITH(ref.fetch("chrC", 0, 1), Contains("'chrC' is not in reference"));
    CHECK_THROWS_WITH(ref.fetch("chrA", 50, 61), Contains("not inside contig 'chrA' of length 60"));
    CHECK_THROWS_AS(ref.fetch("chrA", -1, 3), InvalidArgument);
}
} // namespace

TEST_CASE("ReferenceFasta: plain (in memory), indexed, BGZF with and without index", "[io][reference]") {
    SECTION("plain, no index: read into memory") {
        const io::ReferenceFasta ref(data_file("aln_ref.fa"));
        CHECK_FALSE(ref.indexed());
        check_sequences(ref);
    }
    SECTION("plain with a .fai") {
        ScratchFile fa("ref_plain.fa"), fai("ref_plain.fa.fai");
        diffbio::test::spit(fa.path(), diffbio::test::slurp(data_file("aln_ref.fa")));
        REQUIRE(fai_build(fa.path().c_str()) == 0);
        const io::ReferenceFasta ref(fa.path());
        CHECK(ref.indexed());
        check_sequences(ref);
    }
    SECTION("BGZF (gzip), with and without its index") {
        ScratchFile gz("ref_bgzf.fa.gz"), fai("ref_bgzf.fa.gz.fai"), gzi("ref_bgzf.fa.gz.gzi");
        const std::string text = diffbio::test::slurp(data_file("aln_ref.fa"));
        BGZF* out = bgzf_open(gz.path().c_str(), "w");
        REQUIRE(out != nullptr);
        REQUIRE(bgzf_write(out, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        REQUIRE(bgzf_close(out) == 0);
        {
            const io::ReferenceFasta ref(gz.path());
            CHECK_FALSE(ref.indexed());
            check_sequences(ref);
        }
        REQUIRE(fai_build(gz.path().c_str()) == 0);
        const io::ReferenceFasta ref(gz.path());
        CHECK(ref.indexed());
        check_sequences(ref);
    }
}

TEST_CASE("ReferenceFasta: contigs against an alignment header", "[io][reference]") {
    const io::ReferenceFasta ref(data_file("aln_ref.fa"));
    const io::AlignmentReader sam(data_file("aln_small.sam"));
    for (const ContigInfo& c : sam.contigs()) CHECK_NOTHROW(ref.check_contig(c.name, c.length));
    CHECK_THROWS_WITH(ref.check_contig("chrA", 61),
                      Contains("contig 'chrA' has length 60 in the reference but 61 in the alignment header"));
    CHECK_THROWS_WITH(ref.check_contig("17", 4200), Contains("'17' is not in reference"));
    CHECK_NOTHROW(ref.check_range("chrA", 10, 60));
    CHECK_NOTHROW(ref.check_range("chrA", 0, 60)); // the whole contig, 0-based half-open
    CHECK_NOTHROW(ref.check_range("chrA", 0, 0));
    CHECK_THROWS_WITH(ref.check_range("chrA", 10, 61), Contains("does not cover chrA"));
    CHECK_THROWS_WITH(ref.check_range("chrA", -1, 10), Contains("does not cover chrA:[-1, 10)"));
    CHECK_THROWS_WITH(ref.check_range("chrA", 20, 10), Contains("does not cover chrA:[20, 10)"));
}

TEST_CASE("ReferenceFasta: bad input", "[io][reference][errors]") {
    CHECK_THROWS_AS(io::ReferenceFasta(data_file("no_such_reference.fa")), Error);
    CHECK_THROWS_AS(io::ReferenceFasta(data_file("valid.fq")), ParseError);
    ScratchFile dup("ref_dup.fa"), bad("ref_bad.fa"), empty("ref_empty.fa");
    diffbio::test::spit(dup.path(), ">a\nAC\n>a\nGT\n");
    diffbio::test::require_parse_error([&] { io::ReferenceFasta r(dup.path()); }, dup.path(), 3, "duplicate sequence name 'a'");
    diffbio::test::spit(bad.path(), ">a\nAC\nG1T\n");
    diffbio::test::require_parse_error([&] { io::ReferenceFasta r(bad.path()); }, bad.path(), 3, "column 2");
    diffbio::test::spit(bad.path(), ">a\nAC\n1GT\n");
    diffbio::test::require_parse_error([&] { io::ReferenceFasta r(bad.path()); }, bad.path(), 3, "column 1 of sequence 'a'");
    diffbio::test::spit(empty.path(), "");
    CHECK_THROWS_AS(io::ReferenceFasta(empty.path()), ParseError);
}
