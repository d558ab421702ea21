#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/io/fastq_record.hpp>

using namespace diffbio::io;

TEST_CASE("Phred encodings: offsets and names", "[io][fastq_record]") {
    STATIC_REQUIRE(phred_offset(PhredEncoding::Phred33) == 33);
    STATIC_REQUIRE(phred_offset(PhredEncoding::Phred64) == 64);
    CHECK_THROWS_AS(phred_offset(PhredEncoding::Auto), diffbio::InvalidArgument);
    CHECK(std::string(to_string(PhredEncoding::Phred33)) == "phred+33");
    CHECK(std::string(to_string(PhredEncoding::Phred64)) == "phred+64");
    CHECK(std::string(to_string(PhredEncoding::Auto)) == "auto");
}

TEST_CASE("decode_phred subtracts the offset", "[io][fastq_record]") {
    std::vector<float> q(4);
    decode_phred("!I~5", PhredEncoding::Phred33, q);
    CHECK(q == std::vector<float>{0, 40, 93, 20});
    decode_phred("@Jh~", PhredEncoding::Phred64, q);
    CHECK(q == std::vector<float>{0, 10, 40, 62});
    CHECK_THROWS_AS(decode_phred("II", PhredEncoding::Phred33, q), diffbio::ShapeError);
}

TEST_CASE("Headers split at the first whitespace; one separator is dropped", "[io][fastq_record]") {
    struct Case {
        std::string header, name, comment;
    };
    const std::vector<Case> cases{
        {"r1 1:N:0:ACGT extra", "r1", "1:N:0:ACGT extra"},
        {"r2\tRG:Z:x\tBC:Z:y", "r2", "RG:Z:x\tBC:Z:y"},
        {"r3", "r3", ""},
        {"r4  two", "r4", " two"},
        {"", "", ""},
    };
    std::string name, comment;
    for (const Case& c : cases) {
        detail::split_header(c.header, name, comment);
        CHECK(name == c.name);
        CHECK(comment == c.comment);
    }
}

TEST_CASE("Sequence characters: letters, '.', '-', '*'", "[io][fastq_record]") {
    for (const char c : std::string("ACGTNacgtnRYKMSWBDHVUu.-*")) CHECK(detail::is_sequence_char(c));
    for (const char c : std::string("0 @+\t\r>!")) CHECK_FALSE(detail::is_sequence_char(c));
    CHECK(detail::describe_char('\t') == "byte 0x09");
    CHECK(detail::describe_char('x') == "'x' (0x78)");
    // The printable range is '!' (0x21) to '~' (0x7e), both ends included.
    CHECK(detail::describe_char('!') == "'!' (0x21)");
    CHECK(detail::describe_char('~') == "'~' (0x7e)");
    CHECK(detail::describe_char('\x7f') == "byte 0x7f");
    CHECK(detail::describe_char(' ') == "a space (0x20)");
    CHECK(detail::describe_line(std::string(50, 'a')) == "'" + std::string(40, 'a') + "...'");
}
