#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/io/fasta_writer.hpp>
#include <diffbio/io/fastq.hpp>

#include "io_fixtures.hpp"

using diffbio::io::FastaWriter;
using diffbio::io::FastqRecord;
using diffbio::test::data_file;
using diffbio::test::read_records;
using diffbio::test::ScratchFile;
using diffbio::test::slurp;

TEST_CASE("FASTA round trip, wrapped and unwrapped, plain and gzip", "[io][fasta_writer]") {
    const auto recs = read_records(data_file("reads.fa"));
    REQUIRE(recs.size() == 4);
    for (const bool gz : {false, true}) {
        for (const std::size_t width : {std::size_t{0}, std::size_t{4}}) {
            ScratchFile out("fasta_" + std::to_string(width) + (gz ? ".fa.gz" : ".fa"));
            {
                FastaWriter w(out.path(), gz, width);
                for (const FastqRecord& r : recs) w.write(r);
                CHECK(w.records() == 4);
                w.close();
            }
            CHECK(read_records(out.path()) == recs);
        }
    }
    ScratchFile wrapped("wrapped.fa");
    {
        FastaWriter w(wrapped.path(), false, 4);
        w.write("s", "a comment", "ACGTACGTAC");
        w.write("e", "", "");
    }
    CHECK(slurp(wrapped.path()) == ">s a comment\nACGT\nACGT\nAC\n>e\n");
}

TEST_CASE("FastaWriter drops qualities and refuses unwritable names", "[io][fasta_writer]") {
    ScratchFile out("from_fastq.fa");
    {
        FastaWriter w(out.path());
        for (const FastqRecord& r : read_records(data_file("valid.fq"))) w.write(r);
        CHECK_THROWS_AS(w.write("a b", "", "A"), diffbio::InvalidArgument);
        CHECK_THROWS_AS(w.write("a", "", "A C"), diffbio::InvalidArgument);
        w.close();
    }
    CHECK(slurp(out.path()) == ">read1 first read\nACGTNACGTA\n>read2/1 1:N:0:ACGT\nacgt.acgtRY\n>read3\nGATTACA\n");
}
