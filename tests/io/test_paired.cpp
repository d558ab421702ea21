#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/paired.hpp>

#include "io_fixtures.hpp"

using diffbio::ReadBatch;
using diffbio::io::FastqRecord;
using diffbio::io::PairedFastqReader;
using diffbio::io::strip_mate_suffix;
using diffbio::test::data_file;
using diffbio::test::require_parse_error;

TEST_CASE("strip_mate_suffix drops a trailing /1 or /2 only", "[io][paired]") {
    CHECK(strip_mate_suffix("read/1") == "read");
    CHECK(strip_mate_suffix("read/2") == "read");
    CHECK(strip_mate_suffix("read/3") == "read/3");
    CHECK(strip_mate_suffix("read") == "read");
    CHECK(strip_mate_suffix("/1") == "");
    CHECK(strip_mate_suffix("1") == "1");
}

TEST_CASE("PairedFastqReader reads two files in lockstep", "[io][paired]") {
    PairedFastqReader reader(data_file("pair_1.fq"), data_file("pair_2.fq"));
    FastqRecord a, b;
    REQUIRE(reader.next(a, b));
    CHECK(a == FastqRecord{"p1/1", "", "ACGT", "IIII"});
    CHECK(b == FastqRecord{"p1/2", "", "TTTT", "####"});
    REQUIRE(reader.next(a, b));
    CHECK(a.comment == "c");
    REQUIRE(reader.next(a, b));
    CHECK(reader.pairs() == 3);
    CHECK_FALSE(reader.next(a, b));

    const auto [m1, m2] = diffbio::io::read_paired_fastq(data_file("pair_1.fq"), data_file("pair_2.fq"));
    REQUIRE(m1.num_reads == 3);
    REQUIRE(m2.num_reads == 3);
    CHECK(m1.sequence(1) == "GGCC");
    CHECK(m2.sequence(1) == "CCGG");
    CHECK(m1.quality[0] == 40.0f);
    CHECK(m2.quality[0] == 2.0f);

    PairedFastqReader batched(data_file("pair_1.fq"), data_file("pair_2.fq"));
    ReadBatch b1, b2;
    CHECK(batched.read_batch(b1, b2, 2) == 2);
    CHECK(batched.read_batch(b1, b2, 2) == 1);
    CHECK(batched.read_batch(b1, b2, 2) == 0);
    CHECK(b1.names == m1.names);
    CHECK(b2.names == m2.names);
}

TEST_CASE("Mates whose names differ are a ParseError naming both files", "[io][paired][errors]") {
    const std::string r1 = data_file("pair_1.fq"), r2 = data_file("pair_2_mismatch.fq");
    PairedFastqReader reader(r1, r2);
    FastqRecord a, b;
    REQUIRE(reader.next(a, b));
    require_parse_error([&] { reader.next(a, b); }, r1, 5, "mate names differ: 'p2/1' here, but 'p9/2' at " + r2 + ":5");
}

TEST_CASE("One file ending before the other is a ParseError", "[io][paired][errors]") {
    const std::string full = data_file("pair_1.fq"), shorter = data_file("pair_2_short.fq");
    SECTION("R2 ends first") {
        require_parse_error([&] { diffbio::io::read_paired_fastq(full, shorter); }, shorter, 8,
                            "this file ends after 2 records, but '" + full + "' has more (record 'p3/1' at line 9)");
    }
    SECTION("R1 ends first") {
        require_parse_error([&] { diffbio::io::read_paired_fastq(shorter, full); }, shorter, 8,
                            "this file ends after 2 records, but '" + full + "' has more");
    }
    SECTION("a malformed mate file is its own ParseError") {
        diffbio::test::ScratchFile bad("truncated_2.fq");
        diffbio::test::spit(bad.path(), "@p1/2\nTTTT\n+\n####\n@p2/2\nCCGG\n");
        require_parse_error([&] { diffbio::io::read_paired_fastq(full, bad.path()); }, bad.path(), 6,
                            "truncated record 'p2/2'");
    }
}

TEST_CASE("SeqPrep's simulated paired run: 10,000 pairs with matching names", "[io][paired][data]") {
    const std::string dir = std::string(DIFFBIO_SEQPREP_DATA_DIR) + "/SimTest/";
    const std::string r1 = dir + "simSeq10k_1.fq.gz", r2 = dir + "simSeq10k_2.fq.gz";
    if (!std::filesystem::exists(r1) || !std::filesystem::exists(r2)) {
        WARN("seqprep-data not installed: skipping " << r1);
        return;
    }
    PairedFastqReader reader(r1, r2);
    FastqRecord a, b;
    while (reader.next(a, b)) {
    }
    CHECK(reader.pairs() == 10000);
    CHECK(reader.first().encoding() == diffbio::io::PhredEncoding::Phred33);
    CHECK(reader.second().encoding() == diffbio::io::PhredEncoding::Phred33);
}
