#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/fastq_writer.hpp>

#include "io_fixtures.hpp"

using diffbio::ReadBatch;
using diffbio::io::FastqOptions;
using diffbio::io::FastqRecord;
using diffbio::io::FastqWriter;
using diffbio::io::PhredEncoding;
using diffbio::io::read_fastq;
using diffbio::test::data_file;
using diffbio::test::read_records;
using diffbio::test::ScratchFile;
using diffbio::test::slurp;

namespace {

void write_all(const std::string& path, const std::vector<FastqRecord>& recs) {
    FastqWriter w(path);
    for (const FastqRecord& r : recs) w.write(r);
    CHECK(w.records() == recs.size());
    w.close();
}

bool is_gzip(const std::string& bytes) {
    return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
}

} // namespace

TEST_CASE("FASTQ round trip: read, write plain and gzip, read again", "[io][fastq_writer]") {
    for (const char* fixture : {"valid.fq", "wrapped.fq", "phred64.fq", "crlf.fq", "valid.fq.gz"}) {
        INFO("fixture " << fixture);
        const std::string in = data_file(fixture);
        const auto recs = read_records(in);
        const ReadBatch decoded = read_fastq(in);
        for (const bool gz : {false, true}) {
            ScratchFile out(std::string("roundtrip_") + fixture + (gz ? ".gz" : ".plain"));
            write_all(out.path(), recs);
            CHECK(is_gzip(slurp(out.path())) == gz); // the name decides: ".gz" compresses
            CHECK(read_records(out.path()) == recs);
            const ReadBatch again = read_fastq(out.path());
            CHECK(again.quality == decoded.quality);
            CHECK(again.one_hot == decoded.one_hot);
            CHECK(again.names == decoded.names);
            CHECK(again.comments == decoded.comments);
        }
    }
}

TEST_CASE("FastqWriter writes the four-line layout, LF line endings", "[io][fastq_writer]") {
    ScratchFile out("layout.fq");
    write_all(out.path(), read_records(data_file("crlf.fq")));
    CHECK(slurp(out.path()) == "@read1 first read\nACGTNACGTA\n+\nIIIIIIIII#\n@read3\nGATTACA\n+\n5555555\n");

    ScratchFile forced("forced_plain.fq.gz");
    {
        FastqWriter w(forced.path(), false); // explicit choice beats the suffix
        w.write(FastqRecord{"a", "", "AC", "II"});
    } // the destructor closes
    CHECK(slurp(forced.path()) == "@a\nAC\n+\nII\n");
}

TEST_CASE("FastqWriter writes Phred scores: rounded, clamped, offset by the encoding", "[io][fastq_writer]") {
    ScratchFile out("scores.fq");
    const std::vector<float> q{-3.0f, 0.4f, 0.6f, 40.5f, 100.0f};
    {
        FastqWriter w(out.path());
        w.write("s33", "c", "ACGTN", q);
        w.write("s64", "", "ACGTN", q, PhredEncoding::Phred64);
        w.close();
    }
    CHECK(slurp(out.path()) == "@s33 c\nACGTN\n+\n!!\"J~\n@s64\nACGTN\n+\n@@Ai~\n");

    FastqOptions opt;
    opt.encoding = PhredEncoding::Phred64;
    ScratchFile p64("scores64.fq");
    {
        FastqWriter w(p64.path());
        w.write("s64", "", "ACGTN", q, PhredEncoding::Phred64);
    }
    const ReadBatch b = read_fastq(p64.path(), opt);
    CHECK(std::vector<float>(b.quality.begin(), b.quality.end()) == std::vector<float>{0, 0, 1, 41, 62});
}

TEST_CASE("FastqWriter writes a ReadBatch; phred+64 in, phred+33 out, same scores", "[io][fastq_writer]") {
    const ReadBatch in = read_fastq(data_file("phred64.fq"));
    ScratchFile out("batch.fq.gz");
    {
        FastqWriter w(out.path());
        w.write(in);
        w.close();
    }
    FastqOptions opt;
    opt.encoding = PhredEncoding::Phred33;
    const ReadBatch again = read_fastq(out.path(), opt);
    CHECK(again.quality == in.quality);
    CHECK(again.one_hot == in.one_hot);
    CHECK(again.lengths == in.lengths);
    CHECK(again.names == in.names);

    const ReadBatch fasta = read_fastq(data_file("reads.fa")); // 40 everywhere, one empty read
    ScratchFile fq("from_fasta.fq");
    {
        FastqWriter w(fq.path());
        w.write(fasta);
    }
    const auto recs = read_records(fq.path());
    REQUIRE(recs.size() == 4);
    CHECK(recs[0].quality == std::string(16, 'I'));
    CHECK(recs[2] == FastqRecord{"seq3", "empty", "", ""});
    CHECK(recs[3].sequence == "ACGTN");
}

TEST_CASE("FastqWriter refuses a ReadBatch whose arrays disagree, each one alone", "[io][fastq_writer][errors]") {
    const ReadBatch good = read_fastq(data_file("valid.fq"));
    REQUIRE(good.num_reads >= 2);
    ScratchFile out("bad_batch.fq");
    FastqWriter w(out.path());
    for (int which = 0; which < 4; ++which) {
        ReadBatch b = good;
        if (which == 0) b.lengths.pop_back();
        if (which == 1) b.names.pop_back();
        if (which == 2) b.comments.pop_back();
        if (which == 3) b.quality.pop_back();
        INFO("array " << which);
        CHECK_THROWS_AS(w.write(b), diffbio::ShapeError);
    }
    CHECK(w.records() == 0);
    w.write(good);
    CHECK(w.records() == good.num_reads);
}

TEST_CASE("FastqWriter compresses .gz output by default (level 0 stores)", "[io][fastq_writer]") {
    ScratchFile packed("default_level.fq.gz"), stored("level0.fq.gz");
    {
        FastqWriter a(packed.path());
        FastqWriter b(stored.path(), /*gzip=*/true, /*level=*/0);
        for (int i = 0; i < 200; ++i) {
            const FastqRecord r{"r", "", std::string(100, 'A'), std::string(100, 'I')};
            a.write(r);
            b.write(r);
        }
        a.close();
        b.close();
    }
    const std::string p = slurp(packed.path()), s = slurp(stored.path());
    CHECK(is_gzip(p));
    CHECK(is_gzip(s));
    CHECK(s.size() > 200 * 200);     // stored: at least the raw bytes
    CHECK(p.size() * 20 < s.size()); // the default level shrinks this repetitive file > 20×
    CHECK(read_records(packed.path()) == read_records(stored.path()));
}

TEST_CASE("An empty read round-trips", "[io][fastq_writer]") {
    ScratchFile out("empty_read.fq");
    {
        FastqWriter w(out.path());
        w.write(FastqRecord{"e", "", "", ""});
        w.write(FastqRecord{"f", "x", "A", "I"});
        w.write(FastqRecord{"g", "", "", ""});
    }
    CHECK(slurp(out.path()) == "@e\n\n+\n\n@f x\nA\n+\nI\n@g\n\n+\n\n");
    const auto recs = read_records(out.path());
    REQUIRE(recs.size() == 3);
    CHECK(recs[0] == FastqRecord{"e", "", "", ""});
    CHECK(recs[1] == FastqRecord{"f", "x", "A", "I"});
    CHECK(recs[2] == FastqRecord{"g", "", "", ""});
}

TEST_CASE("FastqWriter refuses records it cannot write faithfully", "[io][fastq_writer][errors]") {
    ScratchFile out("refused.fq");
    FastqWriter w(out.path());
    using diffbio::InvalidArgument;
    CHECK_THROWS_AS(w.write(FastqRecord{"two words", "", "A", "I"}), InvalidArgument);
    CHECK_THROWS_AS(w.write(FastqRecord{"a", "line\nbreak", "A", "I"}), InvalidArgument);
    CHECK_THROWS_WITH(w.write(FastqRecord{"a", "", "ACGT", ""}), Catch::Matchers::Contains("FASTA record"));
    CHECK_THROWS_AS(w.write(FastqRecord{"a", "", "A1", "II"}), InvalidArgument);
    CHECK_THROWS_AS(w.write(FastqRecord{"a", "", "AC", "I "}), InvalidArgument);
    // the first character is checked like the others
    CHECK_THROWS_WITH(w.write(FastqRecord{"a", "", "1A", "II"}), Catch::Matchers::Contains("at position 0"));
    CHECK_THROWS_WITH(w.write(FastqRecord{"a", "", "AC", " I"}), Catch::Matchers::Contains("at position 0"));
    const std::vector<float> two{1.0f, 2.0f};
    CHECK_THROWS_AS(w.write("a", "", "ACG", two), diffbio::ShapeError);
    const std::vector<float> nan{std::numeric_limits<float>::quiet_NaN()};
    CHECK_THROWS_AS(w.write("a", "", "A", nan), InvalidArgument);
    CHECK_THROWS_AS(w.write("a", "", "AC", two, PhredEncoding::Auto), InvalidArgument);
    CHECK(w.records() == 0);
    w.close();
    CHECK(slurp(out.path()).empty());
}

TEST_CASE("FastqWriter reports files it cannot create or write", "[io][fastq_writer][errors]") {
    const std::string bad = std::string(DIFFBIO_TEST_SCRATCH_DIR) + "/no_such_dir/x.fq";
    CHECK_THROWS_WITH(FastqWriter(bad), Catch::Matchers::Contains(bad) &&
                                           Catch::Matchers::Contains("No such file or directory"));

    // /dev/full accepts the open and fails every write: the error surfaces at close().
    FastqWriter full("/dev/full", false);
    full.write(FastqRecord{"a", "", "ACGT", "IIII"});
    CHECK_THROWS_AS(full.close(), diffbio::Error);
    full.close(); // already closed: nothing more to report
    CHECK_THROWS_WITH(full.write(FastqRecord{"a", "", "A", "I"}), Catch::Matchers::Contains("closed"));
}
