#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/text_writer.hpp>

#include "io_fixtures.hpp"

using diffbio::ParseError;
using diffbio::ReadBatch;
using diffbio::io::FastqOptions;
using diffbio::io::FastqReader;
using diffbio::io::FastqRecord;
using diffbio::io::PhredEncoding;
using diffbio::io::read_fastq;
using diffbio::test::data_file;
using diffbio::test::read_records;
using diffbio::test::require_parse_error;

namespace {

void check_uniform(const ReadBatch& b, std::size_t read, std::size_t pos) {
    const float* o = b.one_hot.data() + (read * b.length + pos) * 4;
    for (int k = 0; k < 4; ++k) CHECK(o[k] == 0.25f);
}

void check_base(const ReadBatch& b, std::size_t read, std::size_t pos, int base) {
    const float* o = b.one_hot.data() + (read * b.length + pos) * 4;
    for (int k = 0; k < 4; ++k) CHECK(o[k] == (k == base ? 1.0f : 0.0f));
}

} // namespace

TEST_CASE("FastqReader reads a four-line FASTQ file record by record", "[io][fastq]") {
    const std::string path = data_file("valid.fq");
    FastqReader reader(path);
    CHECK(reader.encoding() == PhredEncoding::Phred33);
    CHECK(reader.line() == 0);
    FastqRecord r;

    REQUIRE(reader.next(r));
    CHECK(r == FastqRecord{"read1", "first read", "ACGTNACGTA", "IIIIIIIII#"});
    CHECK(reader.record_line() == 1);
    CHECK(reader.line() == 4);
    CHECK_FALSE(reader.is_fasta());

    REQUIRE(reader.next(r));
    CHECK(r == FastqRecord{"read2/1", "1:N:0:ACGT", "acgt.acgtRY", "!\"#$%&'()*5"});
    CHECK(reader.record_line() == 5);
    CHECK(reader.line() == 8);

    REQUIRE(reader.next(r));
    CHECK(r == FastqRecord{"read3", "", "GATTACA", "5555555"});
    CHECK(reader.line() == 12);
    CHECK(reader.records() == 3);

    CHECK_FALSE(reader.next(r));
    CHECK_FALSE(reader.next(r)); // stays at the end
}

TEST_CASE("read_fastq decodes bases to one-hot rows and qualities to Phred scores", "[io][fastq]") {
    const ReadBatch b = read_fastq(data_file("valid.fq"));
    REQUIRE(b.num_reads == 3);
    REQUIRE(b.length == 11);
    CHECK(b.lengths == std::vector<std::uint32_t>{10, 11, 7});
    CHECK(b.names == std::vector<std::string>{"read1", "read2/1", "read3"});
    CHECK(b.comments == std::vector<std::string>{"first read", "1:N:0:ACGT", ""});

    // read1: ACGTNACGTA / IIIIIIIII#
    check_base(b, 0, 0, 0);
    check_base(b, 0, 3, 3);
    check_uniform(b, 0, 4); // N
    CHECK(b.quality[0] == 40.0f);
    CHECK(b.quality[9] == 2.0f); // '#'
    CHECK(b.quality[10] == 0.0f); // padding
    for (int k = 0; k < 4; ++k) CHECK(b.one_hot[(0 * 11 + 10) * 4 + k] == 0.0f);

    // read2: acgt.acgtRY / !"#$%&'()*5 : lower case is one-hot, '.', R and Y are uniform
    check_base(b, 1, 0, 0);
    check_base(b, 1, 2, 2);
    check_uniform(b, 1, 4);
    check_uniform(b, 1, 9);
    check_uniform(b, 1, 10);
    for (std::size_t l = 0; l < 10; ++l) CHECK(b.quality[11 + l] == static_cast<float>(l));
    CHECK(b.quality[11 + 10] == 20.0f); // '5'
    CHECK(b.sequence(1) == "ACGTNACGTNN");

    // read3: GATTACA / 5555555
    CHECK(b.sequence(2) == "GATTACA");
    for (std::size_t l = 0; l < 7; ++l) CHECK(b.quality[22 + l] == 20.0f);
}

TEST_CASE("FastqReader::read_batch appends at most max_reads reads", "[io][fastq]") {
    FastqReader reader(data_file("valid.fq"));
    ReadBatch b;
    CHECK(reader.read_batch(b, 2) == 2);
    CHECK(b.num_reads == 2);
    CHECK(reader.read_batch(b, 2) == 1);
    CHECK(b.num_reads == 3);
    CHECK(reader.read_batch(b, 2) == 0);
    CHECK(b.names.back() == "read3");
}

TEST_CASE("ReadBatch::add rejects a quality score that is not finite and keeps the batch as it was",
          "[io][fastq][errors]") {
    ReadBatch b;
    const std::vector<float> ok{30.0f, 20.0f}, with_nan{30.0f, std::nanf("")},
        with_inf{std::numeric_limits<float>::infinity(), 1.0f, 2.0f};
    b.add("r1", "AC", ok);
    CHECK_THROWS_WITH(b.add("r2", "GT", with_nan),
                      Catch::Matchers::Contains("read 'r2'") && Catch::Matchers::Contains("not finite") &&
                          Catch::Matchers::Contains("position 1"));
    CHECK_THROWS_AS(b.add("r3", "GTA", with_inf), diffbio::InvalidArgument);
    CHECK(b.num_reads == 1);
    CHECK(b.length == 2);
    CHECK(b.quality == ok);
    CHECK(b.names == std::vector<std::string>{"r1"});
}

TEST_CASE("FastqReader reads wrapped (multi-line) sequence and quality", "[io][fastq]") {
    // The quality lines begin with '@' and '+': they are read by length, not by their first character.
    const auto recs = read_records(data_file("wrapped.fq"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0] == FastqRecord{"wrapped1", "two lines", "ACGTACGTACGTACG", "@@@@@@@@@@+++++"});
    CHECK(recs[1] == FastqRecord{"wrapped2", "", "TTTTGG", "II@@@@"});

    FastqReader reader(data_file("wrapped.fq"));
    FastqRecord r;
    REQUIRE(reader.next(r));
    CHECK(reader.record_line() == 1);
    CHECK(reader.line() == 6);
    REQUIRE(reader.next(r));
    CHECK(reader.record_line() == 7);
    CHECK(reader.line() == 12);
}

TEST_CASE("FastqReader reads FASTA, with fasta_quality for every base", "[io][fastq]") {
    const std::string path = data_file("reads.fa");
    const auto recs = read_records(path);
    REQUIRE(recs.size() == 4);
    CHECK(recs[0] == FastqRecord{"seq1", "description one", "ACGTACGTACGTACGT", ""});
    CHECK(recs[1] == FastqRecord{"seq2", "", "NNNNACGT", ""});
    CHECK(recs[2] == FastqRecord{"seq3", "empty", "", ""});
    CHECK(recs[3] == FastqRecord{"seq4", "", "acgtn", ""}); // a blank line inside is skipped

    FastqReader reader(path);
    FastqRecord r;
    REQUIRE(reader.next(r));
    CHECK(reader.is_fasta());
    CHECK(reader.line() == 3);
    REQUIRE(reader.next(r));
    REQUIRE(reader.next(r));
    CHECK(reader.record_line() == 6);
    CHECK(reader.line() == 6);
    REQUIRE(reader.next(r));
    CHECK(reader.line() == 9);

    const ReadBatch b = read_fastq(path);
    REQUIRE(b.num_reads == 4);
    CHECK(b.lengths == std::vector<std::uint32_t>{16, 8, 0, 5});
    for (std::size_t l = 0; l < 16; ++l) CHECK(b.quality[l] == 40.0f);
    check_uniform(b, 3, 4);

    FastqOptions opt;
    opt.fasta_quality = 30.0f;
    const ReadBatch b30 = read_fastq(path, opt);
    CHECK(b30.quality[0] == 30.0f);
    opt.fasta_quality = -1.0f;
    CHECK_THROWS_AS(FastqReader(path, opt), diffbio::InvalidArgument);
}

TEST_CASE("FastqReader detects phred+64 and decodes with offset 64", "[io][fastq]") {
    const std::string path = data_file("phred64.fq");
    FastqReader reader(path);
    CHECK(reader.encoding() == PhredEncoding::Phred64);
    const ReadBatch b = read_fastq(path);
    REQUIRE(b.num_reads == 2);
    const std::vector<float> q0(b.quality.begin(), b.quality.begin() + 8);
    CHECK(q0 == std::vector<float>{40, 40, 40, 40, 2, 2, 2, 2});
    const std::vector<float> q1(b.quality.begin() + 8, b.quality.begin() + 12);
    CHECK(q1 == std::vector<float>{0, 10, 36, 37});

    // An explicit encoding overrides detection.
    FastqOptions opt;
    opt.encoding = PhredEncoding::Phred33;
    const ReadBatch b33 = read_fastq(path, opt);
    CHECK(b33.quality[0] == 71.0f);
    CHECK(FastqReader(path, opt).encoding() == PhredEncoding::Phred33);
}

TEST_CASE("Phred auto-detection looks at the first auto_detect_records records only", "[io][fastq]") {
    // err_phred64_low.fq: record 1 "hhhh" (phred+64-like), record 2 "hh;h" (';' is below '@').
    const std::string path = data_file("err_phred64_low.fq");
    SECTION("both records seen: ';' is not below 59 but below 64, so phred+33") {
        FastqReader reader(path);
        CHECK(reader.encoding() == PhredEncoding::Phred33);
        CHECK(read_records(path).size() == 2);
    }
    SECTION("only the first record seen: phred+64, and the second record is an error") {
        FastqOptions opt;
        opt.auto_detect_records = 1;
        FastqReader reader(path, opt);
        CHECK(reader.encoding() == PhredEncoding::Phred64);
        FastqRecord r;
        REQUIRE(reader.next(r));
        require_parse_error([&] { reader.next(r); }, path, 8, "quality character ';' (0x3b) at column 3");
        require_parse_error([&] { reader.next(r); }, path, 8, "below the phred+64 offset"); // the reader stays failed
    }
    SECTION("explicit phred+64") {
        FastqOptions opt;
        opt.encoding = PhredEncoding::Phred64;
        require_parse_error([&] { read_fastq(path, opt); }, path, 8, "is below the phred+64 offset '@' (64)");
    }
    SECTION("no records looked at: phred+33") {
        FastqOptions opt;
        opt.auto_detect_records = 0;
        CHECK(FastqReader(path, opt).encoding() == PhredEncoding::Phred33);
    }
    SECTION("FASTA has no qualities: phred+33") {
        CHECK(FastqReader(data_file("reads.fa")).encoding() == PhredEncoding::Phred33);
    }
}

TEST_CASE("Phred auto-detection: qualities from '@' up to 'J' are Illumina 1.8 phred+33 (Q31..Q41)", "[io][fastq]") {
    // Every character is >= '@', but none is above 'J' (Q41 in phred+33): no evidence of phred+64.
    diffbio::test::ScratchFile f("phred33_at_to_j.fq");
    diffbio::test::spit(f.path(), "@r1\nACGT\n+\n@@JJ\n@r2\nAC\n+\nJ@\n");
    CHECK(FastqReader(f.path()).encoding() == PhredEncoding::Phred33);
    const ReadBatch b = read_fastq(f.path());
    CHECK(b.quality[0] == 31.0f);
    CHECK(b.quality[3] == 41.0f);
    // One character above 'J' makes it phred+64.
    diffbio::test::spit(f.path(), "@r1\nACGT\n+\n@@JK\n");
    CHECK(FastqReader(f.path()).encoding() == PhredEncoding::Phred64);
}

TEST_CASE("FastqReader strips the '\\r' of CRLF line endings", "[io][fastq]") {
    const auto recs = read_records(data_file("crlf.fq"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0] == FastqRecord{"read1", "first read", "ACGTNACGTA", "IIIIIIIII#"});
    CHECK(recs[1] == FastqRecord{"read3", "", "GATTACA", "5555555"});
}

TEST_CASE("FastqReader reads gzip-compressed files transparently", "[io][fastq]") {
    // valid.fq.gz was made with `gzip -n -9` (plain gzip, not BGZF); BGZF is covered by the writer tests.
    CHECK(read_records(data_file("valid.fq.gz")) == read_records(data_file("valid.fq")));
    const ReadBatch a = read_fastq(data_file("valid.fq.gz"));
    const ReadBatch b = read_fastq(data_file("valid.fq"));
    CHECK(a.quality == b.quality);
    CHECK(a.one_hot == b.one_hot);
}

TEST_CASE("Malformed FASTQ and FASTA raise ParseError with the file and line", "[io][fastq][errors]") {
    // Each fixture holds one error; the line is where it is.
    struct Case {
        const char* file;
        long line;
        const char* fragment;
    };
    const Case cases[] = {
        {"err_first_header.fq", 1, "expected a record header starting with '@' (FASTQ) or '>' (FASTA), found 'read1'"},
        {"err_header.fq", 5, "expected a FASTQ record header starting with '@', found 'r2'"},
        {"err_mixed.fq", 5, "expected a FASTQ record header starting with '@', found '>r2'"},
        {"err_missing_plus.fq", 7, "missing '+' separator: record 'r2' (header at line 5)"},
        {"err_qual_short.fq", 8, "quality length 4 differs from sequence length 6 in record 'r2' (header at line 5)"},
        {"err_qual_long.fq", 4, "quality length 5 differs from sequence length 4 in record 'r1'"},
        {"err_qual_char.fq", 8, "invalid quality character a space (0x20) at column 3 of record 'r2'"},
        {"err_truncated.fq", 6, "truncated record 'r2' (header at line 5): the file ends before its '+' separator"},
        {"err_truncated_qual.fq", 7, "truncated record 'r2' (header at line 5): the file ends after the '+' line"},
        {"empty.fq", 0, "no records: the file is empty"},
        {"blank.fq", 3, "no records: the file holds only blank lines"},
        {"err_seq_char.fq", 6, "invalid sequence character '1' (0x31) at column 3 of record 'r2'"},
        {"err_seq_char.fa", 3, "invalid sequence character a space (0x20) at column 3 of record 's1'"},
    };
    for (const Case& c : cases) {
        const std::string path = data_file(c.file);
        INFO("fixture " << c.file);
        require_parse_error([&] { read_fastq(path); }, path, c.line, c.fragment);
    }
    // A bad first base (column 1), in FASTQ and in FASTA.
    diffbio::test::ScratchFile fq("bad_first_base.fq"), fa("bad_first_base.fa");
    diffbio::test::spit(fq.path(), "@r1\n1CGT\n+\nIIII\n");
    require_parse_error([&] { read_fastq(fq.path()); }, fq.path(), 2, "'1' (0x31) at column 1 of record 'r1'");
    diffbio::test::spit(fa.path(), ">s1\nACGT\n#CGT\n");
    require_parse_error([&] { read_fastq(fa.path()); }, fa.path(), 3, "'#' (0x23) at column 1 of record 's1'");
}

TEST_CASE("Records before an error are returned first, then the error, then the same error again",
          "[io][fastq][errors]") {
    // The error lies inside the auto-detection window, so the constructor meets it while reading ahead.
    const std::string path = data_file("err_qual_short.fq");
    FastqReader reader(path);
    FastqRecord r;
    REQUIRE(reader.next(r));
    CHECK(r.name == "r1");
    require_parse_error([&] { reader.next(r); }, path, 8, "quality length 4 differs");
    require_parse_error([&] { reader.next(r); }, path, 8, "quality length 4 differs");

    FastqOptions opt;
    opt.encoding = PhredEncoding::Phred33; // no reading ahead: same behaviour
    FastqReader direct(path, opt);
    REQUIRE(direct.next(r));
    require_parse_error([&] { direct.next(r); }, path, 8, "quality length 4 differs");
    ReadBatch b;
    require_parse_error([&] { direct.read_batch(b, 10); }, path, 8, "quality length 4 differs");
}

TEST_CASE("A file that cannot be opened is a diffbio::Error naming it and the reason", "[io][fastq][errors]") {
    const std::string missing = data_file("no_such_file.fq");
    try {
        FastqReader reader(missing);
        FAIL("no exception");
    } catch (const ParseError&) {
        FAIL("a missing file is not a ParseError");
    } catch (const diffbio::Error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains(missing) && Catch::Matchers::Contains("No such file or directory"));
    }
    CHECK_THROWS_WITH(FastqReader(DIFFBIO_TEST_DATA_DIR), Catch::Matchers::Contains("Is a directory"));
}

TEST_CASE("Corrupt or truncated gzip data is a ParseError, not silent truncation", "[io][fastq][errors]") {
    const std::string gz = diffbio::test::slurp(data_file("valid.fq.gz"));
    diffbio::test::ScratchFile cut("truncated.fq.gz");
    diffbio::test::spit(cut.path(), gz.substr(0, gz.size() - 6)); // loses part of the CRC/size trailer
    require_parse_error([&] { read_fastq(cut.path()); }, cut.path(), 1, "read error");

    std::string flipped = gz;
    flipped[gz.size() / 2] = static_cast<char>(flipped[gz.size() / 2] ^ 0x55);
    diffbio::test::ScratchFile bad("corrupt.fq.gz");
    diffbio::test::spit(bad.path(), flipped);
    CHECK_THROWS_AS(read_fastq(bad.path()), ParseError);
}

TEST_CASE("Binary input is rejected with a ParseError", "[io][fastq][errors]") {
    diffbio::test::ScratchFile bin("binary.fq");
    diffbio::test::spit(bin.path(), std::string("\x00\x01\x02\xff\xfe@", 6) + "\n");
    require_parse_error([&] { read_fastq(bin.path()); }, bin.path(), 1, "expected a record header");
}

TEST_CASE("Randomly corrupted files either parse or raise ParseError, never anything else", "[io][fastq][errors]") {
    // Seeded byte flips, insertions and cuts of the valid fixtures, plain and BGZF-compressed.
    std::mt19937 rng(20261122);
    const std::string alphabet = "@+>\n\r \tACGTN.!I~#\x7f";
    std::size_t parsed = 0, rejected = 0;
    for (const char* fixture : {"valid.fq", "wrapped.fq", "reads.fa", "phred64.fq"}) {
        const std::string original = diffbio::test::slurp(data_file(fixture));
        for (int trial = 0; trial < 150; ++trial) {
            std::string bytes = original;
            const int edits = 1 + static_cast<int>(rng() % 3);
            for (int e = 0; e < edits && !bytes.empty(); ++e) {
                const std::size_t at = rng() % bytes.size();
                switch (rng() % 3) {
                case 0: bytes[at] = alphabet[rng() % alphabet.size()]; break;
                case 1: bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]); break;
                default: bytes.resize(at); break;
                }
            }
            for (const bool gz : {false, true}) {
                diffbio::test::ScratchFile f(gz ? "fuzz.fq.gz" : "fuzz.fq");
                if (gz) {
                    diffbio::io::TextWriter w(f.path(), true);
                    w.write(bytes);
                    w.close();
                } else {
                    diffbio::test::spit(f.path(), bytes);
                }
                try {
                    const ReadBatch b = read_fastq(f.path());
                    CHECK(b.num_reads > 0);
                    ++parsed;
                } catch (const ParseError& e) {
                    CHECK(e.file() == f.path());
                    CHECK_THAT(e.what(), Catch::Matchers::StartsWith(f.path() + ":" + std::to_string(e.line()) + ": "));
                    ++rejected;
                }
            }
        }
    }
    CHECK(parsed > 0);
    CHECK(rejected > 0);
}
